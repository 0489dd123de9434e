//! The on-disk cache of compiled modules.
//!
//! Compiling a large module takes seconds; loading its compiled form takes milliseconds. Entries
//! live in one directory (see [`default_cache_dir`]) as `<module blake3>-<engine hash>.cwasm`.
//! The engine hash covers wasmtime's `precompile_compatibility_hash` (version, target, and every
//! setting that changes the code), so an artifact from another build or configuration is never
//! even looked at.
//!
//! Loading a compiled artifact is `unsafe` in wasmtime: it is machine code that will run. So
//! each entry starts with a header holding a BLAKE3 digest of the artifact, and an entry is only
//! deserialized when the digest matches; a truncated or corrupted entry is recompiled and
//! replaced. Entries are written to a temporary file in the same directory and renamed into
//! place, so concurrent runners never see a partial file.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use wasmtime::{Engine, Module};

/// Marks an entry written by this code; bump the version when the layout changes.
const MAGIC: &[u8; 16] = b"wasmpipe-cwasm-2";
const HEADER_LEN: usize = MAGIC.len() + 32;

/// The default cache directory: `$WASMPIPE_CACHE_DIR`, else `$XDG_CACHE_HOME/wasmpipe`, else
/// `~/.cache/wasmpipe`. `None` when none of these variables is set.
pub fn default_cache_dir() -> Option<PathBuf> {
    let var = |name| std::env::var_os(name).filter(|value| !value.is_empty()).map(PathBuf::from);
    var("WASMPIPE_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|dir| dir.join("wasmpipe")))
        .or_else(|| var("HOME").map(|home| home.join(".cache").join("wasmpipe")))
}

/// The digest that identifies a module's bytes in the cache. BLAKE3: a cached start hashes the
/// whole module and the whole artifact, and BLAKE3 does that several times faster than SHA-256.
pub(crate) fn module_digest(bytes: &[u8]) -> [u8; 32] {
    *blake3::hash(bytes).as_bytes()
}

/// Compiles `bytes`, going through the cache in `cache_dir` when there is one. `digest` is
/// [`module_digest`] of `bytes` when the caller already knows it (the parent computes it once
/// per in-memory module instead of every runner hashing the module again).
///
/// Cache trouble (unwritable directory, corrupt entry) never fails the load: the module is
/// compiled as if there were no cache.
pub(crate) fn load_module(
    engine: &Engine,
    bytes: &[u8],
    digest: Option<[u8; 32]>,
    cache_dir: Option<&Path>,
) -> Result<Module, String> {
    let Some(dir) = cache_dir else {
        return compile(engine, bytes);
    };
    let entry = dir.join(entry_name(engine, &digest.unwrap_or_else(|| module_digest(bytes))));
    if let Some(module) = read_entry(engine, &entry) {
        return Ok(module);
    }
    let compiled = engine.precompile_module(bytes).map_err(|e| invalid(&e));
    settle_compiler_threads();
    let compiled = compiled?;
    // Best effort: a failure to store only costs the next start a compilation.
    let _ = write_entry(dir, &entry, &compiled);
    // SAFETY: `compiled` was produced just now by `precompile_module` on this very engine.
    unsafe { Module::deserialize(engine, &compiled) }.map_err(|e| format!("cannot load the compiled module: {e:#}"))
}

/// The cached module with this digest, if the cache holds an intact entry for it; never
/// compiles (a zygote uses this: it must not handle module bytes).
pub(crate) fn cached_module(engine: &Engine, digest: &[u8; 32], cache_dir: &Path) -> Option<Module> {
    read_entry(engine, &cache_dir.join(entry_name(engine, digest)))
}

fn compile(engine: &Engine, bytes: &[u8]) -> Result<Module, String> {
    let module = Module::new(engine, bytes).map_err(|e| invalid(&e));
    settle_compiler_threads();
    module
}

/// Waits until every thread of the parallel compiler's pool has started.
///
/// wasmtime compiles on rayon's global pool, whose threads start asynchronously; on a loaded
/// machine one may still be starting (making its own setup syscalls) when the runner applies its
/// seccomp filter, which would kill the runner. A broadcast returns only once each thread ran it.
fn settle_compiler_threads() {
    rayon::broadcast(|_| ());
}

fn invalid(error: &wasmtime::Error) -> String {
    format!("not a valid WebAssembly module: {error:#}")
}

fn entry_name(engine: &Engine, module_digest: &[u8; 32]) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("{}-{:016x}.cwasm", hex(module_digest), hasher.finish())
}

/// The entry's artifact, if the entry exists and is intact.
fn read_entry(engine: &Engine, path: &Path) -> Option<Module> {
    let contents = std::fs::read(path).ok()?;
    let artifact = verified_artifact(&contents)?;
    // SAFETY: the header proves this is exactly what `write_entry` stored after
    // `precompile_module` on an engine with the same compatibility hash (part of the name).
    unsafe { Module::deserialize(engine, artifact) }.ok()
}

fn verified_artifact(contents: &[u8]) -> Option<&[u8]> {
    let header = contents.get(..HEADER_LEN)?;
    let artifact = &contents[HEADER_LEN..];
    (header[..MAGIC.len()] == MAGIC[..] && header[MAGIC.len()..] == blake3::hash(artifact).as_bytes()[..])
        .then_some(artifact)
}

fn write_entry(dir: &Path, path: &Path, artifact: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let temp = dir.join(format!(".tmp-{}-{:?}", std::process::id(), std::thread::current().id()));
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(MAGIC)?;
        file.write_all(blake3::hash(artifact).as_bytes())?;
        file.write_all(artifact)?;
        file.sync_data()?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODULE: &[u8] = &[0, b'a', b's', b'm', 1, 0, 0, 0];

    fn engine(fuel: bool) -> Engine {
        crate::runner::engine_for(fuel).unwrap()
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wasmpipe-cache-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn entries(dir: &Path) -> Vec<PathBuf> {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        entries
    }

    #[test]
    fn a_second_load_uses_the_stored_entry() {
        let dir = temp_dir("hit");
        let engine = engine(false);
        load_module(&engine, MODULE, None, Some(&dir)).unwrap();
        let stored = entries(&dir);
        assert_eq!(stored.len(), 1);
        assert!(read_entry(&engine, &stored[0]).is_some());
        load_module(&engine, MODULE, None, Some(&dir)).unwrap();
        assert_eq!(entries(&dir), stored);
    }

    #[test]
    fn a_corrupt_or_truncated_entry_is_recompiled_and_replaced() {
        let dir = temp_dir("corrupt");
        let engine = engine(false);
        load_module(&engine, MODULE, None, Some(&dir)).unwrap();
        let entry = entries(&dir).remove(0);
        let good = std::fs::read(&entry).unwrap();
        let mut flipped = good.clone();
        *flipped.last_mut().unwrap() ^= 0xff;
        for bad in [flipped, good[..good.len() / 2].to_vec(), b"garbage".to_vec()] {
            std::fs::write(&entry, &bad).unwrap();
            assert!(read_entry(&engine, &entry).is_none(), "a damaged entry must not load");
            load_module(&engine, MODULE, None, Some(&dir)).unwrap();
            assert_eq!(std::fs::read(&entry).unwrap(), good, "the entry is rewritten");
        }
    }

    #[test]
    fn an_entry_from_another_engine_configuration_is_never_used() {
        let dir = temp_dir("config");
        load_module(&engine(false), MODULE, None, Some(&dir)).unwrap();
        load_module(&engine(true), MODULE, None, Some(&dir)).unwrap();
        assert_eq!(entries(&dir).len(), 2, "fuel changes the code, so it changes the key");
    }

    #[test]
    fn concurrent_writers_leave_one_intact_entry() {
        let dir = temp_dir("concurrent");
        let engine = engine(false);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| load_module(&engine, MODULE, None, Some(&dir)).unwrap());
            }
        });
        let stored = entries(&dir);
        assert_eq!(stored.len(), 1, "no temporary file is left behind: {stored:?}");
        assert!(read_entry(&engine, &stored[0]).is_some());
    }

    #[test]
    fn invalid_bytes_are_reported_not_cached() {
        let dir = temp_dir("invalid");
        let error = load_module(&engine(false), b"not wasm", None, Some(&dir)).unwrap_err();
        assert!(error.contains("not a valid WebAssembly module"), "{error}");
        assert!(!dir.exists() || entries(&dir).is_empty());
    }
}
