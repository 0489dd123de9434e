//! Starting a runner as a fork of the calling process (see
//! [`Sandbox::prefer_fork`](crate::Sandbox::prefer_fork)): no `exec`, no dynamic linking, no
//! second start of this (large) binary. That is most of what a short-lived command such as
//! `wasmpipe run` pays to start a guest.
//!
//! A fork copies only the calling thread, and any lock another thread holds at that moment is
//! never released in the copy; so this is done only in a single-threaded process. Even then, the
//! calling thread may be inside a tokio runtime (`block_on`), whose thread-local state would make
//! wasmtime-wasi's own `block_on` panic in the runner. So the fork is made from a fresh thread,
//! spawned for it while the caller waits in `join`: the child's only thread has no tokio state,
//! and the caller, parked in `join`, holds no lock.
//!
//! The child starts as a copy of this process's memory. It wipes the environment strings before
//! anything else, and the fork is refused while a compiled-module cache key is in memory (see
//! [`fork_is_safe`]). Whatever else the caller holds is readable by native code that escapes
//! wasmtime in the runner: that is the documented caveat of `prefer_fork`.

use crate::protocol::RunnerConfig;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The stack of the thread that forks, which becomes the runner's only thread: the size of a
/// main thread's, as an exec'd runner would have (the guest's wasm runs on it).
const RUNNER_STACK: usize = 8 << 20;

/// Whether a runner may be forked from this process: it has one thread, and no cache key has
/// been read into its memory.
pub(crate) fn fork_is_safe() -> bool {
    !crate::cache::key::loaded() && thread_count() == Some(1)
}

/// This process's thread count, from `/proc/self/stat`.
fn thread_count() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // After "pid (comm)": state is the first field and num_threads the eighteenth.
    stat.rsplit_once(')')?.1.split_whitespace().nth(17)?.parse().ok()
}

/// Forks a runner that takes `fds` (control socket, stdin, stdout, stderr, then the granted
/// directories, as a zygote receives them) and `config`, and returns its pid. The caller checked
/// [`fork_is_safe`]. The parent's copies of `fds` are closed on return.
///
/// The config goes to the child in the fork's copy of memory rather than over the control
/// socket: a parent that sent it after forking made the child wait 0.3 ms for it (right after a
/// fork, each first write to a page is a copy-on-write fault, in both processes).
pub(crate) fn fork_runner(fds: Vec<OwnedFd>, config: RunnerConfig) -> io::Result<u32> {
    std::thread::scope(|scope| {
        let forking = std::thread::Builder::new().stack_size(RUNNER_STACK).spawn_scoped(scope, move || {
            // SAFETY: the process had one thread when the caller checked, and that thread waits
            // in `join` for this one; see the module docs. The child never returns from here.
            match unsafe { libc::fork() } {
                0 => become_runner(fds, config),
                -1 => Err(io::Error::last_os_error()),
                pid => Ok(pid as u32),
            }
        })?;
        forking.join().unwrap_or_else(|_| Err(io::Error::other("the forking thread panicked")))
    })
}

/// In the forked child: a clean slate as an exec would give, then the runner.
fn become_runner(fds: Vec<OwnedFd>, config: RunnerConfig) -> ! {
    wipe_environment();
    // SAFETY: plain signal-mask and name calls in this single-threaded child. The mask is what
    // `posix_spawn` would have given an exec'd runner; handlers stay, since wasmtime's trap
    // handlers, once installed in this process, are not installed again.
    unsafe {
        let mut empty = std::mem::zeroed::<libc::sigset_t>();
        libc::sigemptyset(&mut empty);
        libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        libc::prctl(libc::PR_SET_NAME, c"wasmpipe-runner".as_ptr());
    }
    super::become_runner(raised(fds), Some(config))
}

/// The fds, each at 4 or above: `become_runner` fills 0–3 from them in order, which is only
/// safe when none of them is one of those targets (a parent with a closed stdio fd may have
/// made its control socket at 0).
fn raised(fds: Vec<OwnedFd>) -> Vec<OwnedFd> {
    fds.into_iter()
        .map(|fd| {
            if fd.as_raw_fd() > crate::protocol::CONTROL_FD {
                return fd;
            }
            // SAFETY: F_DUPFD makes a new fd, owned by the returned `OwnedFd`; the original is
            // overwritten or closed by `become_runner`.
            let raised = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD, crate::protocol::CONTROL_FD + 1) };
            if raised < 0 {
                super::exit_with("cannot set up the runner's fds");
            }
            std::mem::forget(fd);
            unsafe { OwnedFd::from_raw_fd(raised) }
        })
        .collect()
}

/// Overwrites every environment string in place: an exec'd runner starts with an empty
/// environment, and a forked one must not keep the host's secrets (tokens, keys) in memory.
fn wipe_environment() {
    unsafe extern "C" {
        static mut environ: *mut *mut libc::c_char;
    }
    // SAFETY: single-threaded child; `environ` is a null-terminated array of C strings owned by
    // libc, overwritten byte for byte and then emptied.
    unsafe {
        let mut entry = environ;
        while !entry.is_null() && !(*entry).is_null() {
            let string = *entry;
            std::ptr::write_bytes(string, 0, libc::strlen(string));
            entry = entry.add(1);
        }
        libc::clearenv();
    }
}
