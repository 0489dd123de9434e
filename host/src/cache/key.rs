//! The per-user secret that authenticates cache entries.
//!
//! It lives outside the cache directory (see [`key_path`]), in a private file created with 32
//! random bytes on first use. Whoever can write the cache directory but cannot read this file
//! cannot make an entry the cache will load. Runners never see it: the parent verifies entries
//! before sending them, and computes the MAC of what runners compiled.

use super::trust;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether this process has read a cache key: a runner forked from it would start with the key
/// in its memory, so [`Sandbox::prefer_fork`](crate::Sandbox::prefer_fork) then execs instead.
static LOADED: AtomicBool = AtomicBool::new(false);

/// Whether a cache key has been read into this process's memory.
pub(crate) fn loaded() -> bool {
    LOADED.load(Ordering::SeqCst)
}

/// The key: 32 bytes for BLAKE3's keyed mode.
pub(crate) type Key = [u8; 32];

/// Where the key lives: `$WASMPIPE_CACHE_KEY`, else `$XDG_CONFIG_HOME/wasmpipe/cache.key`, else
/// `~/.config/wasmpipe/cache.key`. `None` when none of these variables is set.
pub fn key_path() -> Option<PathBuf> {
    let var = |name| std::env::var_os(name).filter(|value| !value.is_empty()).map(PathBuf::from);
    var("WASMPIPE_CACHE_KEY")
        .or_else(|| var("XDG_CONFIG_HOME").map(|dir| dir.join("wasmpipe").join("cache.key")))
        .or_else(|| var("HOME").map(|home| home.join(".config").join("wasmpipe").join("cache.key")))
}

/// The key at `path`, created if missing; read once per process and path.
pub(crate) fn load_or_create(path: &Path) -> io::Result<Key> {
    static KEYS: Mutex<Option<HashMap<PathBuf, Key>>> = Mutex::new(None);
    let mut keys = KEYS.lock().unwrap_or_else(|e| e.into_inner());
    let keys = keys.get_or_insert_with(HashMap::new);
    if let Some(key) = keys.get(path) {
        return Ok(*key);
    }
    // Set before reading: a key half-read by a failed call is in memory all the same.
    LOADED.store(true, Ordering::SeqCst);
    let key = read_or_create(path)?;
    keys.insert(path.to_path_buf(), key);
    Ok(key)
}

fn read_or_create(path: &Path) -> io::Result<Key> {
    let (dir_path, name) = match (path.parent(), path.file_name().and_then(|name| name.to_str())) {
        (Some(dir), Some(name)) => (dir, name),
        _ => return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("bad key path {}", path.display()))),
    };
    let dir = trust::open_private_dir(dir_path)?;
    loop {
        match trust::open_private_file(&dir, dir_path, name) {
            Ok((file, stat)) => {
                if stat.st_size != 32 {
                    return Err(trust::untrusted(
                        path,
                        format!("a cache key is 32 bytes, this one is {}", stat.st_size),
                    ));
                }
                let mut key = [0u8; 32];
                std::fs::File::from(file).read_exact(&mut key)?;
                return Ok(key);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => create(&dir, name)?,
            Err(e) => return Err(e),
        }
    }
}

/// Writes a fresh key under a random name, then links it into place without replacing one
/// that a concurrent process created first (whose key everyone then uses).
fn create(dir: &rustix::fd::OwnedFd, name: &str) -> io::Result<()> {
    let mut key = [0u8; 32];
    rustix::rand::getrandom(&mut key, rustix::rand::GetRandomFlags::empty())?;
    let temp = trust::random_name(".cache.key.tmp-")?;
    let mut file = trust::create_private_file(dir, &temp)?;
    let written = file.write_all(&key).and_then(|()| file.sync_all());
    let linked = written.and_then(|()| {
        match rustix::fs::renameat_with(dir, &temp, dir, name, rustix::fs::RenameFlags::NOREPLACE) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => Ok(()),
            Err(e) => Err(e.into()),
        }
    });
    let _ = rustix::fs::unlinkat(dir, &temp, rustix::fs::AtFlags::empty());
    linked
}
