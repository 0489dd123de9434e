//! A file mapped read-only and private, owned: unmapped when dropped. The parent verifies cache
//! entries in one ([`crate::cache`]); a runner maps the artifact it is passed in one.

use std::io;
use std::os::fd::AsFd;
use std::ptr::NonNull;

/// `len` bytes of a file from `offset` (a multiple of the page size), mapped read-only and
/// private.
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: a read-only mapping owned by this value alone: shared references to it are only ever
// reads, from any thread.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes of `file` from `offset`. `len` must not be zero and the bytes must be in
    /// the file (its size, just checked): reading a page past its end raises `SIGBUS`.
    pub(crate) fn of(file: impl AsFd, offset: u64, len: usize) -> io::Result<Self> {
        // SAFETY: a fresh private read-only mapping, owned by the returned value, which unmaps
        // it.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                rustix::mm::ProtFlags::READ,
                rustix::mm::MapFlags::PRIVATE,
                file,
                offset,
            )
        }?;
        Ok(Self { ptr: NonNull::new(ptr.cast()).ok_or(io::ErrorKind::InvalidData)?, len })
    }
}

impl std::ops::Deref for Mapping {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` readable bytes until drop.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl AsRef<[u8]> for Mapping {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly this mapping; nothing borrows it any more.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
