//! Shared helpers for the end-to-end tests in `tests/`.

/// Paths of the guests in `guests/`, compiled for wasm32-wasip1 by `build.rs`.
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}

use std::collections::BTreeSet;
use std::path::Path;

/// The fd numbers open in process `pid`, from `/proc/<pid>/fd`.
pub fn open_fds(pid: u32) -> BTreeSet<i32> {
    open_fds_in(&Path::new("/proc").join(pid.to_string()).join("fd"))
}

/// The fd numbers open in this process (excluding the one used to list them).
pub fn own_open_fds() -> BTreeSet<i32> {
    let mut fds = BTreeSet::new();
    for entry in std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd is readable") {
        fds.insert(entry.unwrap().file_name().to_string_lossy().parse().unwrap());
    }
    // The directory listing itself held one fd, which is closed by now.
    fds.retain(|&fd| is_open(fd));
    fds
}

fn open_fds_in(dir: &Path) -> BTreeSet<i32> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().parse().unwrap())
        .collect()
}

/// Whether `fd` is an open descriptor in this process.
pub fn is_open(fd: i32) -> bool {
    // SAFETY: F_GETFD only queries the descriptor table.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// `(pid, state)` of every child of this process, zombies included, from `/proc/<pid>/stat`.
fn children_with_state() -> Vec<(u32, String)> {
    let me = std::process::id();
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // Format: pid (comm) state ppid ...; comm may contain spaces, so split after the ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(1).and_then(|ppid| ppid.parse().ok()) == Some(me) {
            children.push((pid, fields[0].to_owned()));
        }
    }
    children
}

/// Every child of this process, zombies included.
pub fn children() -> Vec<u32> {
    children_with_state().into_iter().map(|(pid, _)| pid).collect()
}

/// Zombie children of this process (state `Z` in `/proc/<pid>/stat`).
pub fn zombie_children() -> Vec<u32> {
    children_with_state().into_iter().filter(|(_, state)| state == "Z").map(|(pid, _)| pid).collect()
}

/// Waits (up to 10 s, however loaded the machine) until process `pid`'s main thread sleeps in
/// a kernel function whose name contains `wchan` (`pipe_read`, `nanosleep`, ...): the guest has
/// reached that call, so everything before it (the runner's hardening) is done.
pub async fn blocked_in(pid: u32, wchan: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        let current = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let sleeping = stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('S'));
        if sleeping && current.contains(wchan) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("process {pid} never blocked in {wchan}");
}

#[cfg(test)]
mod coverage {
    use std::path::Path;

    /// Every `.rs` file of the end-to-end and CLI test suites, with its contents.
    fn test_sources() -> Vec<(String, String)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut sources = Vec::new();
        for dir in ["tests/tests", "cli/tests"] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|ext| ext == "rs") {
                    sources.push((path.display().to_string(), std::fs::read_to_string(&path).unwrap()));
                }
            }
        }
        sources
    }

    /// The mechanical check that no guest in `guests/` goes untested: each one's constant must be
    /// used by some test. A new guest without a test fails here, by name.
    #[test]
    fn every_guest_is_exercised_by_some_test() {
        let sources = test_sources();
        let untested: Vec<&str> = super::guests::ALL
            .iter()
            .map(|(name, _)| *name)
            .filter(|name| {
                let constant = format!("guests::{}", name.to_uppercase().replace('-', "_"));
                !sources.iter().any(|(_, text)| {
                    text.match_indices(&constant).any(|(at, _)| {
                        // A whole identifier: `guests::ECHO` must not count for `guests::ECHO_FAST`.
                        !text[at + constant.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
                    })
                })
            })
            .collect();
        assert!(untested.is_empty(), "guests with no test using them: {untested:?}");
    }
}
