//! Running a cached artifact's code where the runner mapped it, instead of from a copy.
//!
//! `Module::deserialize` copies the artifact into fresh anonymous memory (for a small guest,
//! about 60 pages to fault in, zero and fill) before making its code executable. A mapped
//! artifact ([`MappedArtifact`]: the cache entry's file, or a sealed memfd) needs no copy: with
//! [`InPlace`] publishing the code, `Module::deserialize_raw` uses the mapping itself, and only
//! the pages the guest touches are ever read in.
//!
//! The mapping is private and read-only, its file never written in place (a sealed memfd, or a
//! cache entry, which is only ever replaced by rename), and it lives until the runner exits.
//! Where the kernel refuses executable file mappings (a `noexec` mount, or memfds under
//! `vm.memfd_noexec`), the artifact is loaded from a copy as before.

use super::{Artifact, MappedArtifact};
use std::ptr::NonNull;
use wasmtime::{CustomCodeMemory, Engine};

/// Makes compiled code executable with `mprotect`, as wasmtime itself does for memory it owns;
/// unlike wasmtime's own path, also for memory it does not own (a mapped artifact).
///
/// Only on x86_64, where instruction and data caches are coherent: other architectures would
/// need an instruction-cache flush here, and keep wasmtime's own path.
#[cfg(target_arch = "x86_64")]
pub(crate) struct InPlace {
    page: usize,
}

#[cfg(target_arch = "x86_64")]
impl InPlace {
    pub(crate) fn new() -> Self {
        Self { page: rustix::param::page_size() }
    }
}

#[cfg(target_arch = "x86_64")]
impl CustomCodeMemory for InPlace {
    fn required_alignment(&self) -> usize {
        self.page
    }

    fn publish_executable(&self, ptr: *const u8, len: usize) -> wasmtime::Result<()> {
        protect(ptr, len, rustix::mm::MprotectFlags::READ | rustix::mm::MprotectFlags::EXEC)
    }

    fn unpublish_executable(&self, ptr: *const u8, len: usize) -> wasmtime::Result<()> {
        protect(ptr, len, rustix::mm::MprotectFlags::READ | rustix::mm::MprotectFlags::WRITE)
    }
}

#[cfg(target_arch = "x86_64")]
fn protect(ptr: *const u8, len: usize, flags: rustix::mm::MprotectFlags) -> wasmtime::Result<()> {
    if len == 0 {
        return Ok(());
    }
    // SAFETY: wasmtime passes the page-aligned text section of a code image it is publishing
    // (or retiring): memory of that image alone, which no Rust reference writes to.
    unsafe { rustix::mm::mprotect(ptr.cast_mut().cast(), len, flags) }
        .map_err(|e| wasmtime::format_err!("cannot change the protection of compiled code: {e}"))
}

/// Whether an engine made by `engine_config` runs mapped artifacts in place.
pub(crate) const SUPPORTED: bool = cfg!(target_arch = "x86_64");

/// Loads a verified artifact: in place when it is a page-aligned mapping, else (or should that
/// fail) from a copy. `copy` and `raw` are the kind's `deserialize` and `deserialize_raw`.
///
/// # Safety
///
/// `artifact` must be exactly what `precompile_module`/`precompile_component` made for this
/// engine's configuration (the parent verified its MAC), as `deserialize` requires.
pub(crate) unsafe fn load<T>(
    engine: &Engine,
    artifact: Artifact,
    copy: unsafe fn(&Engine, &[u8]) -> wasmtime::Result<T>,
    raw: unsafe fn(&Engine, NonNull<[u8]>) -> wasmtime::Result<T>,
) -> wasmtime::Result<T> {
    if let Artifact::Mapped(mapped) = &artifact
        && SUPPORTED
        && mapped.is_page_aligned()
    {
        // SAFETY: the caller vouches for the bytes; the mapping is never written (read-only,
        // private, of a file nobody writes in place) and outlives the module: forgotten below,
        // it stays mapped until the runner exits.
        if let Ok(loaded) = unsafe { raw(engine, NonNull::from(&**mapped)) } {
            if let Artifact::Mapped(mapped) = artifact {
                std::mem::forget::<MappedArtifact>(mapped);
            }
            return Ok(loaded);
        }
    }
    // SAFETY: as above.
    unsafe { copy(engine, &artifact) }
}
