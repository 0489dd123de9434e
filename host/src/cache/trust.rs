//! Deciding whether a directory or file may be trusted, the way ssh treats `~/.ssh`.
//!
//! A cache entry is native code that will run, so the cache only trusts what this user wrote:
//! every directory on the way to it must be owned by this user (or root) and not writable by
//! anyone else (a sticky directory such as `/tmp` is fine: others cannot rename what we own in
//! it), and the last directory and its files must be owned by this user and private to them.

use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawMode, Stat};
use std::io;
use std::path::Path;

/// Why a path is not trusted.
pub(crate) fn untrusted(path: &Path, why: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, format!("refusing {}: {why}", path.display()))
}

fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Opens (creating it `0700` if missing) a private directory: owned by this user, not writable
/// by group or others, reached through trusted ancestors, and not a symlink.
pub(crate) fn open_private_dir(path: &Path) -> io::Result<OwnedFd> {
    let path = std::path::absolute(path)?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    match rustix::fs::mkdir(&path, Mode::from_raw_mode(0o700)) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
        Err(e) => return Err(e.into()),
    }
    check_ancestors(&path)?;
    let dir =
        rustix::fs::open(&path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| match e {
                rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => {
                    untrusted(&path, "it is a symlink or not a directory")
                }
                e => e.into(),
            })?;
    check_private(&path, &rustix::fs::fstat(&dir)?, FileType::Directory, 0o022)?;
    Ok(dir)
}

/// Checks that `stat` (of `path`) is of `kind`, owned by this user, and has none of the
/// permission bits in `forbidden`.
pub(crate) fn check_private(path: &Path, stat: &Stat, kind: FileType, forbidden: RawMode) -> io::Result<()> {
    if FileType::from_raw_mode(stat.st_mode) != kind {
        return Err(untrusted(
            path,
            format!("it is not a {}", if kind == FileType::Directory { "directory" } else { "regular file" }),
        ));
    }
    if stat.st_uid != euid() {
        return Err(untrusted(path, format!("it is owned by uid {}, not by this user (uid {})", stat.st_uid, euid())));
    }
    let mode = stat.st_mode & 0o7777;
    if mode & forbidden != 0 {
        return Err(untrusted(
            path,
            format!("its mode {mode:04o} lets others write{}", if forbidden & 0o044 != 0 { " or read" } else { "" }),
        ));
    }
    Ok(())
}

/// Every ancestor of `path` must be owned by root or this user, and not writable by others
/// unless sticky: otherwise someone else could swap a component for one of theirs.
fn check_ancestors(path: &Path) -> io::Result<()> {
    for ancestor in path.ancestors().skip(1) {
        let stat = rustix::fs::statat(rustix::fs::CWD, ancestor, AtFlags::empty())?;
        let sticky = stat.st_mode & 0o1000 != 0;
        if stat.st_uid != 0 && stat.st_uid != euid() {
            return Err(untrusted(
                path,
                format!("its ancestor {} is owned by uid {}", ancestor.display(), stat.st_uid),
            ));
        }
        if stat.st_mode & 0o022 != 0 && !sticky {
            return Err(untrusted(
                path,
                format!(
                    "its ancestor {} is writable by others (mode {:04o})",
                    ancestor.display(),
                    stat.st_mode & 0o7777
                ),
            ));
        }
    }
    Ok(())
}

/// Opens `name` in `dir` for reading, without following a symlink, and checks it is a private
/// regular file of this user (no permission bits for group or others).
pub(crate) fn open_private_file(dir: impl AsFd, dir_path: &Path, name: &str) -> io::Result<(OwnedFd, Stat)> {
    let file = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )?;
    let stat = rustix::fs::fstat(&file)?;
    check_private(&dir_path.join(name), &stat, FileType::RegularFile, 0o077)?;
    Ok((file, stat))
}

/// A name no one can have planted in advance: `prefix` and 16 random hex digits.
pub(crate) fn random_name(prefix: &str) -> io::Result<String> {
    let mut bytes = [0u8; 8];
    rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::empty())?;
    Ok(format!("{prefix}{}", super::hex(&bytes)))
}

/// Creates a new private file `name` in `dir`: `O_EXCL|O_NOFOLLOW`, mode `0600`.
pub(crate) fn create_private_file(dir: impl AsFd, name: &str) -> io::Result<std::fs::File> {
    let file = rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?;
    Ok(std::fs::File::from(file))
}
