//! The zygote: a pre-initialised, single-threaded process that forks ready runners.
//!
//! Started once (see [`Zygote`](crate::Zygote)) by exec'ing this binary with
//! [`ZYGOTE_MARKER`](crate::protocol::ZYGOTE_MARKER); it pays for the exec, the dynamic linking
//! and the wasmtime engines once. Then, per request: four fds arrive on its socket (the runner's
//! control socket, and the guest's stdin, stdout and stderr), and it answers with the pid of a
//! fresh runner, cloned from itself with `CLONE_PARENT` so that the runner is the *host's*
//! child (the host reaps it, and it shows up as the host's child, exactly like an exec'd one).
//! The child puts the fds at 0–3 and continues as a normal runner: config from the control
//! socket, the module through the cache, hardening, the guest.
//!
//! It never sees module bytes: untrusted input is only ever handled in a runner. It does keep
//! compiled artifacts that the host sends it (cache entries whose MAC the host verified) when a
//! request names one, so that its runners start with the artifact already in memory; it keeps
//! them as bytes and never deserializes them, which each runner does behind its own walls. It
//! runs with `no_new_privs`, no capabilities and a seccomp filter (see `harden::harden_zygote`)
//! from before the first request. It must stay single-threaded, because `clone` copies only the calling
//! thread; wasmtime engines start no threads of their own.
//!
//! The raw `clone` syscall (glibc has no `fork` with `CLONE_PARENT`) skips glibc's fork
//! handlers. That is sound here: with one thread, no lock can be held by another thread at the
//! fork, and glibc's `raise`/`abort` look up the calling thread's id from the kernel rather than
//! the (now stale) cached one.

use super::{PRELOADED, PREPARED_ENGINES, guest, harden};
use crate::protocol::{self, PreloadHint, ZygoteAnswer};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::FromRawFd;

/// The zygote's end of its socket to the host: its initial stdin, as for runners.
const SOCKET_FD: i32 = 0;

/// How many compiled modules a zygote keeps loaded.
const MAX_PRELOADED: usize = 16;

/// How many bytes of compiled modules a zygote keeps loaded.
const MAX_PRELOADED_BYTES: usize = 256 << 20;

pub(super) fn serve() -> ! {
    // SAFETY: first thing in a single-threaded process, as in `run_and_exit`.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    harden::close_inherited_fds();
    match (guest::engine_for(false), guest::engine_for(true)) {
        (Ok(plain), Ok(fuel)) => {
            let _ = PREPARED_ENGINES.set([plain, fuel]);
        }
        (Err(message), _) | (_, Err(message)) => exit_with(&message),
    }
    // Before it loads a single cache entry.
    if let Err(message) = harden::harden_zygote() {
        exit_with(&format!("cannot harden the zygote: {message}"));
    }
    // SAFETY: fd 0 is the zygote's socket, owned by this function for the life of the process.
    let mut socket = unsafe { File::from_raw_fd(SOCKET_FD) };
    loop {
        let (fds, payload) = match protocol::receive_fds(&socket) {
            Ok((fds, payload)) if fds.len() >= 4 => (fds, payload),
            // EOF: the host is gone (or dropped its `Zygote`); so is our reason to live.
            Ok((fds, _)) if fds.is_empty() => unsafe { libc::_exit(0) },
            Ok(_) => exit_with("a fork request must carry at least four fds"),
            Err(e) => exit_with(&format!("cannot receive a fork request: {e}")),
        };
        let preloaded = protocol::decode_preload_hint(&payload).is_some_and(|hint| preload(&mut socket, &hint));
        // SAFETY: a raw clone with a null stack behaves like fork; see the module docs for why
        // skipping glibc's fork handlers is sound in this single-threaded process.
        let pid = unsafe { libc::syscall(libc::SYS_clone, libc::CLONE_PARENT | libc::SIGCHLD, 0, 0, 0, 0) };
        if pid == 0 {
            super::become_runner(fds, None);
        }
        drop(fds);
        // A failed clone (-1) is reported as such; the host turns it into a spawn error.
        let answer = match u32::try_from(pid) {
            Ok(pid @ 1..) => ZygoteAnswer::Forked { pid, preloaded },
            _ => ZygoteAnswer::ForkFailed,
        };
        if socket.write_all(&answer.encode()).is_err() {
            unsafe { libc::_exit(0) };
        }
    }
}

/// Makes sure the module the hint names is loaded; whether it now is. A module not held yet is
/// asked for: the host answers with its verified cache entry (or nothing), which is
/// deserialized here, under the zygote's filter.
fn preload(socket: &mut File, hint: &PreloadHint) -> bool {
    if super::preloaded(&hint.digest, hint.fuel).is_some() {
        return true;
    }
    let mut len = [0u8; 8];
    if socket.write_all(&ZygoteAnswer::SendArtifact.encode()).and_then(|()| socket.read_exact(&mut len)).is_err() {
        unsafe { libc::_exit(0) };
    }
    let len = u64::from_le_bytes(len);
    let mut artifact = Vec::with_capacity(usize::try_from(len).unwrap_or(0).min(MAX_PRELOADED_BYTES));
    if (&mut *socket).take(len).read_to_end(&mut artifact).is_err() || artifact.len() as u64 != len {
        unsafe { libc::_exit(0) };
    }
    if artifact.is_empty() || artifact.len() > MAX_PRELOADED_BYTES {
        return false;
    }
    // Kept as bytes, never deserialized here: deserializing trusts the artifact, which is only
    // as trustworthy as the runner that compiled it, and the zygote is less confined than a
    // runner (no Landlock). Each forked runner deserializes its copy behind its own walls.
    let mut preloaded = PRELOADED.lock().unwrap_or_else(|e| e.into_inner());
    preloaded.push((hint.digest, hint.fuel, artifact.into()));
    // Bounded in count and in bytes: a long-lived zygote keeps the most recent artifacts.
    while preloaded.len() > MAX_PRELOADED
        || preloaded.iter().map(|entry| entry.2.len()).sum::<usize>() > MAX_PRELOADED_BYTES
    {
        preloaded.remove(0);
    }
    true
}

fn exit_with(message: &str) -> ! {
    let _ = writeln!(std::io::stderr(), "wasmpipe zygote: {message}");
    // SAFETY: exiting without running destructors is what we want here.
    unsafe { libc::_exit(125) }
}
