//! The on-disk cache of compiled modules, kept by the parent.
//!
//! Compiling a large module takes seconds; loading its compiled form takes milliseconds. But a
//! compiled artifact is machine code that will run, so the cache only ever loads what this
//! user's own runners compiled:
//!
//! - entries carry a BLAKE3 MAC keyed with a per-user secret kept outside the cache directory
//!   ([`key`]), over the entry's name (module digest and engine configuration) and the artifact.
//!   Whoever can write the directory but not read the key cannot make a valid entry, nor pass
//!   one module's entry off as another's;
//! - the directory is created `0700` and entries `0600`; a directory, ancestor or entry that
//!   someone else owns or can write is refused, as ssh refuses such files ([`trust`]);
//! - entries are opened with `O_NOFOLLOW` and written under random names with
//!   `O_EXCL|O_NOFOLLOW`, then renamed into place;
//! - only the parent reads and writes the directory and holds the key. A runner gets a verified
//!   artifact (the entry's file, or a sealed memfd, passed over its control socket; it maps it
//!   and closes the fd), or compiles and sends the artifact back for the parent to store.
//!   Runners cannot reach the cache directory at all.
//!
//! The cache is bounded in bytes ([`DEFAULT_CACHE_MAX_BYTES`]); storing an entry evicts the
//! least recently used ones beyond that.

pub(crate) mod key;
mod trust;

use crate::protocol::ModuleKind;
use bytes::Bytes;
use rustix::fd::OwnedFd;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// Marks an entry written by this code; bump the version when the layout changes.
const MAGIC: &[u8; 16] = b"wasmpipe-cwasm-4";
/// The magic and the MAC.
const HEADER_LEN: usize = MAGIC.len() + 32;

/// Where an entry's artifact starts in its file: the header, then zeros up to a page boundary,
/// so that a runner can map the artifact by itself, page-aligned, and run its code in place
/// instead of copying it (wasmtime makes the code executable page by page).
const ARTIFACT_OFFSET: usize = 4096;

/// The file in a cache directory that remembers the engine hashes that forked runners reported
/// last, without fuel then with: two little-endian `u64`s, zero for none. Only ever a guess (see
/// [`Cache::engine_hint`]); eviction leaves it alone (it is no `.cwasm`).
const ENGINE_HINT_FILE: &str = "engine-hashes";

/// Temporary files being written start with this; stale ones are removed by eviction.
const TEMP_PREFIX: &str = ".tmp-";

/// The default bound on the cache directory's total size: 1 GiB.
pub const DEFAULT_CACHE_MAX_BYTES: u64 = 1 << 30;

/// Verified artifacts kept in this process's memory, so repeated spawns of one module skip the
/// read and the MAC: at most this many bytes.
const MEMO_MAX_BYTES: usize = 64 << 20;

/// The default cache directory: `$WASMPIPE_CACHE_DIR`, else `$XDG_CACHE_HOME/wasmpipe`, else
/// `~/.cache/wasmpipe`. `None` when none of these variables is set.
///
/// The per-user key that authenticates its entries lives elsewhere, at
/// [`cache_key_path`](crate::cache_key_path).
pub fn default_cache_dir() -> Option<PathBuf> {
    let var = |name| std::env::var_os(name).filter(|value| !value.is_empty()).map(PathBuf::from);
    var("WASMPIPE_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|dir| dir.join("wasmpipe")))
        .or_else(|| var("HOME").map(|home| home.join(".cache").join("wasmpipe")))
}

/// The digest that identifies a module's bytes in the cache.
pub(crate) fn module_digest(bytes: &[u8]) -> [u8; 32] {
    *blake3::hash(bytes).as_bytes()
}

/// Names one entry: the module's digest, its kind and the engine configuration's compatibility
/// hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EntryName {
    module: [u8; 32],
    kind: ModuleKind,
    engine: u64,
}

impl EntryName {
    /// The entry for `module`, of this kind, compiled by a runner engine with or without fuel.
    pub(crate) fn new(module: [u8; 32], kind: ModuleKind, fuel: bool) -> Self {
        Self::for_engine(module, kind, engine_hash(fuel))
    }

    /// The entry for `module`, of this kind, compiled by the engine with this compatibility hash.
    pub(crate) fn for_engine(module: [u8; 32], kind: ModuleKind, engine: u64) -> Self {
        Self { module, kind, engine }
    }

    /// The kind is part of the name (and so of the MAC): a component's artifact is never handed
    /// to a runner as a core module's, nor the reverse. Core entries keep the name they had
    /// before components existed, so existing caches stay valid.
    fn file_name(&self) -> String {
        let kind = match self.kind {
            ModuleKind::Core => "",
            ModuleKind::Component => "-component",
        };
        format!("{}-{:016x}{kind}.cwasm", hex(&self.module), self.engine)
    }
}

/// The compatibility hash of the runners' engine (same binary, same configuration): covers the
/// wasmtime version, the target and every setting that changes the code.
fn engine_hash(fuel: bool) -> u64 {
    *ENGINE_HASHES[usize::from(fuel)].get_or_init(|| compute_engine_hash(fuel))
}

/// Whether this process knows the engine hash for this configuration already.
pub(crate) fn engine_hash_known(fuel: bool) -> bool {
    ENGINE_HASHES[usize::from(fuel)].get().is_some()
}

/// Records the engine hash for this configuration, as a runner forked from this process (so
/// with this binary and configuration) computed it.
pub(crate) fn set_engine_hash(fuel: bool, hash: u64) {
    let _ = ENGINE_HASHES[usize::from(fuel)].set(hash);
}

/// One hash per configuration actually used, computed once per process.
static ENGINE_HASHES: [OnceLock<u64>; 2] = [OnceLock::new(), OnceLock::new()];

fn compute_engine_hash(fuel: bool) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    match crate::runner::engine_for(fuel) {
        Ok(engine) => return compatibility_hash(&engine),
        // No engine, no runner either: whatever is stored under this name never loads.
        Err(message) => message.hash(&mut hasher),
    }
    hasher.finish()
}

/// Starts computing the engine hash on a thread of its own, unless it is known: making the
/// engine it needs takes about 0.2 ms, which then overlaps reading and hashing the module
/// instead of adding to the first start. [`EntryName::new`] waits for it.
pub(crate) fn prepare_engine_hash(fuel: bool) {
    if ENGINE_HASHES[usize::from(fuel)].get().is_none() {
        // A thread that cannot start is no loss: `engine_hash` computes it on the spot.
        let _ = std::thread::Builder::new().name("wasmpipe-engine-hash".into()).spawn(move || engine_hash(fuel));
    }
}

/// wasmtime's compatibility hash of `engine`: its target, compiler flags, tunables (the GC
/// collector among them) and enabled wasm features, so an artifact compiled with another
/// proposal set gets another name.
pub(crate) fn compatibility_hash(engine: &wasmtime::Engine) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.finish()
}

/// What happened to an artifact offered to the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheOutcome {
    /// The compiled module is now in the cache, at this path.
    Stored(PathBuf),
    /// The cache already held it; nothing was compiled.
    AlreadyCached(PathBuf),
    /// Nothing was stored, for this reason (an untrusted directory, an entry over the size cap,
    /// a write error, or no cache configured).
    NotStored(String),
}

/// An opened, trusted cache directory and the key for its entries.
#[derive(Debug)]
pub(crate) struct Cache {
    dir: OwnedFd,
    path: PathBuf,
    key: key::Key,
    max_bytes: u64,
}

impl Cache {
    /// Opens (creating it if missing) the cache at `path`, with the key at `key_path`.
    ///
    /// # Errors
    ///
    /// The directory, an ancestor, or the key is not this user's alone (see [`trust`]), or
    /// cannot be created.
    pub(crate) fn open(path: &Path, key_path: Option<&Path>, max_bytes: u64) -> io::Result<Cache> {
        let key_path = key_path
            .map(Path::to_path_buf)
            .or_else(key::key_path)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no place for the cache key: set HOME"))?;
        let key = key::load_or_create(&key_path)?;
        let dir = trust::open_private_dir(path)?;
        Ok(Cache { dir, path: std::path::absolute(path)?, key, max_bytes })
    }

    /// [`open`](Self::open), with the expensive checks (ancestors, key) done once per process
    /// and directory: later calls open the directory again and re-check only its owner and mode,
    /// and that it is the same directory (device and inode) that passed the full checks.
    pub(crate) fn shared(path: &Path, max_bytes: u64) -> io::Result<Arc<Cache>> {
        static VERIFIED: Mutex<Vec<(PathBuf, u64, u64, key::Key)>> = Mutex::new(Vec::new());
        let path = std::path::absolute(path)?;
        let known = VERIFIED.lock().unwrap_or_else(|e| e.into_inner()).iter().find(|(p, ..)| p == &path).cloned();
        if let Some((_, dev, ino, key)) = known
            && let Ok(dir) = rustix::fs::open(
                &path,
                rustix::fs::OFlags::RDONLY
                    | rustix::fs::OFlags::DIRECTORY
                    | rustix::fs::OFlags::NOFOLLOW
                    | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            && let Ok(stat) = rustix::fs::fstat(&dir)
            && stat.st_dev == dev
            && stat.st_ino == ino
            && trust::check_private(&path, &stat, rustix::fs::FileType::Directory, 0o022).is_ok()
        {
            return Ok(Arc::new(Cache { dir, path, key, max_bytes }));
        }
        let cache = Cache::open(&path, None, max_bytes)?;
        let stat = rustix::fs::fstat(&cache.dir)?;
        let mut verified = VERIFIED.lock().unwrap_or_else(|e| e.into_inner());
        verified.retain(|(p, ..)| p != &path);
        // A handful of directories per process at most; bounded all the same.
        if verified.len() >= 16 {
            verified.remove(0);
        }
        verified.push((path, stat.st_dev, stat.st_ino, cache.key));
        Ok(Arc::new(cache))
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Largest artifact the cache takes.
    pub(crate) fn max_entry_bytes(&self) -> u64 {
        self.max_bytes.saturating_sub(ARTIFACT_OFFSET as u64)
    }

    /// The verified artifact stored under `name`, if there is one.
    #[cfg(test)]
    pub(crate) fn load(&self, name: &EntryName) -> Option<Bytes> {
        self.load_with_file(name).map(|(artifact, _)| artifact)
    }

    /// The verified artifact stored under `name`, with the entry's own file when it was read
    /// from disk just now, for a runner to map the artifact from. Memoised bytes come without a
    /// file (see [`sealed_memfd`]).
    ///
    /// The entry is mapped, not read: verifying it then touches the page cache's pages in place
    /// instead of copying them into fresh memory (0.1 ms of a start, for a small guest). Entries
    /// are only ever replaced by rename, never written in place, and only this user can write
    /// them (see [`trust`]): what was verified stays what the file holds.
    ///
    /// # Caveats
    ///
    /// A mapped file that shrinks raises `SIGBUS` on access. No wasmpipe process ever shrinks
    /// an entry; this user truncating their own cache files by hand while a host runs could.
    pub(crate) fn load_with_file(&self, name: &EntryName) -> Option<(Bytes, Option<ArtifactFile>)> {
        if let Some(artifact) = memo_get(&self.path, name) {
            return Some((artifact, None));
        }
        let file_name = name.file_name();
        let (file, stat) = trust::open_private_file(&self.dir, &self.path, &file_name).ok()?;
        let len = u64::try_from(stat.st_size).ok()?;
        if len > self.max_bytes {
            return None;
        }
        let len = usize::try_from(len).ok().filter(|&len| len >= ARTIFACT_OFFSET)?;
        let file = std::fs::File::from(file);
        let entry = Bytes::from_owner(crate::mapping::Mapping::of(&file, 0, len).ok()?);
        let header: &[u8; HEADER_LEN] = entry[..HEADER_LEN].try_into().ok()?;
        let artifact = entry.slice(ARTIFACT_OFFSET..);
        if !self.verified(name, header, &artifact) {
            return None;
        }
        // Mark it recently used for eviction (entries are ours, so this is allowed).
        let _ = rustix::fs::utimensat(
            &self.dir,
            file_name.as_str(),
            &rustix::fs::Timestamps { last_access: now(), last_modification: now() },
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        );
        memo_put(&self.path, *name, artifact.clone());
        Some((artifact, Some(ArtifactFile { file, offset: ARTIFACT_OFFSET as u64 })))
    }

    fn mac(&self, name: &EntryName, artifact: &[u8]) -> blake3::Hash {
        let mut mac = blake3::Hasher::new_keyed(&self.key);
        mac.update(MAGIC).update(name.file_name().as_bytes()).update(artifact);
        mac.finalize()
    }

    /// Whether `header` holds the magic and the MAC of `artifact` under `name`.
    fn verified(&self, name: &EntryName, header: &[u8; HEADER_LEN], artifact: &[u8]) -> bool {
        // `blake3::Hash` compares in constant time.
        let claimed = blake3::Hash::from_bytes(header[MAGIC.len()..].try_into().expect("32 bytes"));
        header[..MAGIC.len()] == MAGIC[..] && claimed == self.mac(name, artifact)
    }

    /// Stores `artifact` under `name`, then evicts the least recently used entries beyond the
    /// size cap.
    pub(crate) fn store(&self, name: &EntryName, artifact: &[u8]) -> CacheOutcome {
        if artifact.len() as u64 > self.max_entry_bytes() {
            return CacheOutcome::NotStored(format!(
                "the compiled module ({} bytes) is larger than the cache's size cap ({} bytes)",
                artifact.len(),
                self.max_bytes
            ));
        }
        let file_name = name.file_name();
        match self.write(&file_name, name, artifact) {
            Ok(()) => {
                memo_put(&self.path, *name, Bytes::copy_from_slice(artifact));
                self.evict(&file_name);
                CacheOutcome::Stored(self.path.join(file_name))
            }
            Err(e) => CacheOutcome::NotStored(format!("cannot write to {}: {e}", self.path.display())),
        }
    }

    fn write(&self, file_name: &str, name: &EntryName, artifact: &[u8]) -> io::Result<()> {
        let mut header = [0u8; ARTIFACT_OFFSET];
        header[..MAGIC.len()].copy_from_slice(MAGIC);
        header[MAGIC.len()..HEADER_LEN].copy_from_slice(self.mac(name, artifact).as_bytes());
        self.replace(file_name, &[&header, artifact])
    }

    /// Writes `parts` to a fresh private file and renames it over `file_name`: readers see the
    /// old file or the new one, whole, never a file being written.
    fn replace(&self, file_name: &str, parts: &[&[u8]]) -> io::Result<()> {
        let temp = trust::random_name(TEMP_PREFIX)?;
        let result = (|| {
            let mut file = trust::create_private_file(&self.dir, &temp)?;
            for part in parts {
                file.write_all(part)?;
            }
            file.sync_data()?;
            rustix::fs::renameat(&self.dir, temp.as_str(), &self.dir, file_name)?;
            Ok(())
        })();
        if result.is_err() {
            let _ = rustix::fs::unlinkat(&self.dir, temp.as_str(), rustix::fs::AtFlags::empty());
        }
        result
    }

    /// The compatibility hash that a runner forked by an earlier process reported for an engine
    /// with or without fuel (see [`remember_engine`](Self::remember_engine)). A forked runner
    /// reports its engine's hash only once it has made the engine; this guess lets the parent
    /// look the entry up meanwhile. It is only ever a name to try: what is used is the entry
    /// named by the hash the runner then reports, so a stale or wrong hint costs one lookup.
    pub(crate) fn engine_hint(&self, fuel: bool) -> Option<u64> {
        let hash = u64::from_le_bytes(self.engine_hints()?[usize::from(fuel)]);
        (hash != 0).then_some(hash)
    }

    /// Remembers the hash a forked runner reported for an engine with or without fuel, for
    /// [`engine_hint`](Self::engine_hint). Best effort: a hint that is not written costs a later
    /// process the overlap, nothing else.
    pub(crate) fn remember_engine(&self, fuel: bool, hash: u64) {
        let mut hints = self.engine_hints().unwrap_or_default();
        hints[usize::from(fuel)] = hash.to_le_bytes();
        let _ = self.replace(ENGINE_HINT_FILE, &[&hints[0], &hints[1]]);
    }

    fn engine_hints(&self) -> Option<[[u8; 8]; 2]> {
        let (file, stat) = trust::open_private_file(&self.dir, &self.path, ENGINE_HINT_FILE).ok()?;
        if stat.st_size != 16 {
            return None;
        }
        let mut bytes = [0u8; 16];
        std::fs::File::from(file).read_exact(&mut bytes).ok()?;
        let (without, with) = bytes.split_at(8);
        Some([without.try_into().ok()?, with.try_into().ok()?])
    }

    /// Removes the oldest entries until the directory fits the cap (never `keep`, just
    /// written), and temporary files left by writers that died more than an hour ago.
    fn evict(&self, keep: &str) {
        // Listed through the directory fd that was checked, not by path.
        let Ok(dir) = rustix::fs::Dir::read_from(&self.dir) else { return };
        let mut files = Vec::new();
        let mut total = 0u64;
        let now = rustix::time::clock_gettime(rustix::time::ClockId::Realtime).tv_sec;
        for entry in dir.flatten() {
            let Ok(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
            let Ok(stat) = rustix::fs::statat(&self.dir, name.as_str(), rustix::fs::AtFlags::SYMLINK_NOFOLLOW) else {
                continue;
            };
            let modified = (stat.st_mtime, stat.st_mtime_nsec);
            if name.starts_with(TEMP_PREFIX) {
                if now - stat.st_mtime > 3600 {
                    let _ = rustix::fs::unlinkat(&self.dir, name.as_str(), rustix::fs::AtFlags::empty());
                }
                continue;
            }
            if name.ends_with(".cwasm") && rustix::fs::FileType::from_raw_mode(stat.st_mode).is_file() {
                total += stat.st_size as u64;
                files.push((modified, stat.st_size as u64, name));
            }
        }
        files.sort();
        for (_, len, name) in files {
            if total <= self.max_bytes {
                break;
            }
            if name != keep && rustix::fs::unlinkat(&self.dir, name.as_str(), rustix::fs::AtFlags::empty()).is_ok() {
                total -= len;
            }
        }
    }
}

fn now() -> rustix::fs::Timespec {
    rustix::fs::Timespec { tv_sec: 0, tv_nsec: rustix::fs::UTIME_NOW }
}

type Memo = Vec<(PathBuf, EntryName, Bytes)>;

fn memo() -> &'static Mutex<Memo> {
    static MEMO: Mutex<Memo> = Mutex::new(Vec::new());
    &MEMO
}

fn memo_get(dir: &Path, name: &EntryName) -> Option<Bytes> {
    let mut memo = memo().lock().unwrap_or_else(|e| e.into_inner());
    let at = memo.iter().position(|(d, n, _)| n == name && d == dir)?;
    // Most recently used last.
    let hit = memo.remove(at);
    let artifact = hit.2.clone();
    memo.push(hit);
    Some(artifact)
}

fn memo_put(dir: &Path, name: EntryName, artifact: Bytes) {
    if artifact.len() > MEMO_MAX_BYTES {
        return;
    }
    let mut memo = memo().lock().unwrap_or_else(|e| e.into_inner());
    memo.retain(|(d, n, _)| !(n == &name && d == dir));
    memo.push((dir.to_path_buf(), name, artifact));
    while memo.iter().map(|(_, _, a)| a.len()).sum::<usize>() > MEMO_MAX_BYTES {
        memo.remove(0);
    }
}

/// A file a runner can map its artifact from: `offset` bytes in, to the end.
#[derive(Debug)]
pub(crate) struct ArtifactFile {
    pub file: std::fs::File,
    pub offset: u64,
}

/// A memfd holding `bytes`, sealed so that nobody (this process included) can change, shrink or
/// grow it: a runner may map it and trust the bytes to stay what they were.
pub(crate) fn sealed_memfd(bytes: &[u8]) -> io::Result<OwnedFd> {
    use rustix::fs::{MemfdFlags, SealFlags};
    let memfd = rustix::fs::memfd_create("wasmpipe-artifact", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
    let mut file = std::fs::File::from(memfd);
    file.write_all(bytes)?;
    let seals = SealFlags::SEAL | SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE;
    rustix::fs::fcntl_add_seals(&file, seals)?;
    Ok(file.into())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
