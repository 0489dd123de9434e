//! Checking directory grants before a runner starts.
//!
//! A grant is checked in the parent, where a clear error is cheap: the directory must exist,
//! and must not expose the host. `/`, or anything containing or inside `/proc`, `/sys` or
//! `/dev`, would show the guest the host's processes (`/proc/<pid>/environ`, `/proc/<pid>/mem`)
//! and devices; a grant containing or inside the compiled-module cache or its key would let a
//! guest plant or forge native code for later runs. Those are refused unless the caller opts in
//! explicitly. The runner gets the canonical path, so the grant it opens (and the Landlock rule
//! it installs) is the directory that was checked.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Host trees a guest must never see.
const SYSTEM_TREES: &[&str] = &["/proc", "/sys", "/dev"];

/// The canonical form of `host`, if it may be granted.
///
/// # Errors
///
/// [`Error::DirGrant`] when it does not exist, is not a directory, or is dangerous (see the
/// module docs) and `allow_dangerous` is false.
pub(crate) fn check(host: &Path, protected: &[PathBuf], allow_dangerous: bool) -> Result<PathBuf> {
    let refuse = |reason: String| Error::DirGrant { path: host.to_path_buf(), reason };
    let canonical = std::fs::canonicalize(host).map_err(|e| refuse(e.to_string()))?;
    if !canonical.is_dir() {
        return Err(refuse("not a directory".into()));
    }
    if allow_dangerous {
        return Ok(canonical);
    }
    let overlaps = |other: &Path| other.starts_with(&canonical) || canonical.starts_with(other);
    if canonical == Path::new("/") {
        return Err(refuse("it is the root of the file system (it contains /proc, /sys and /dev)".into()));
    }
    if let Some(tree) = SYSTEM_TREES.iter().map(Path::new).find(|tree| overlaps(tree)) {
        return Err(refuse(format!("it exposes {}, the host's own system interface", tree.display())));
    }
    if let Some(secret) = protected.iter().find(|path| overlaps(path)) {
        return Err(refuse(format!(
            "it overlaps {}, the compiled-module cache or its key (a guest could plant code for later runs)",
            secret.display()
        )));
    }
    Ok(canonical)
}

/// Opens a checked grant (its canonical path) without following any symlink on the way, so the
/// directory the runner gets is the one that was checked, even if someone swaps a component of
/// the path for a symlink in between. The runner uses this fd, never the path.
///
/// # Errors
///
/// [`Error::DirGrant`] when the path no longer leads, symlink-free, to a directory.
pub(crate) fn open(host: &Path, canonical: &Path) -> Result<rustix::fd::OwnedFd> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let opened = match rustix::fs::openat2(rustix::fs::CWD, canonical, flags, Mode::empty(), ResolveFlags::NO_SYMLINKS)
    {
        // Kernels before 5.6: at least the last component must not be a symlink.
        Err(rustix::io::Errno::NOSYS) => rustix::fs::open(canonical, flags | OFlags::NOFOLLOW, Mode::empty()),
        other => other,
    };
    opened.map_err(|e| Error::DirGrant {
        path: host.to_path_buf(),
        reason: format!("it changed while it was being granted ({e})"),
    })
}

/// The paths a grant must not overlap: the cache directory and the key file, canonical where
/// they exist.
pub(crate) fn protected_paths(cache_dir: Option<&Path>) -> Vec<PathBuf> {
    let key = crate::cache::key::key_path();
    cache_dir
        .map(Path::to_path_buf)
        .into_iter()
        .chain(key)
        .map(|path| std::fs::canonicalize(&path).unwrap_or_else(|_| std::path::absolute(&path).unwrap_or(path)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_trees_and_the_root_are_refused_unless_allowed() {
        for path in ["/", "/proc", "/proc/self", "/sys/kernel", "/dev"] {
            assert!(matches!(check(Path::new(path), &[], false), Err(Error::DirGrant { .. })), "{path}");
        }
        assert!(check(Path::new("/"), &[], true).is_ok());
    }

    #[test]
    fn grants_overlapping_a_protected_path_are_refused() {
        let dir = std::env::temp_dir().join(format!("wasmpipe-grant-{}", std::process::id()));
        let cache = dir.join("cache");
        std::fs::create_dir_all(&cache).unwrap();
        let protected = [cache.canonicalize().unwrap()];
        assert!(check(&dir, &protected, false).is_err(), "contains the cache");
        assert!(check(&cache, &protected, false).is_err(), "is the cache");
        let sibling = dir.join("data");
        std::fs::create_dir_all(&sibling).unwrap();
        assert_eq!(check(&sibling, &protected, false).unwrap(), sibling.canonicalize().unwrap());
        assert!(check(&dir.join("missing"), &protected, false).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
