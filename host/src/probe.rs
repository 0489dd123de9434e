//! Test hook: raw system calls that stand in for a compromised runner.
//!
//! The second wall is built for the day a guest finds a bug in wasmtime and runs native code in
//! the runner. Tests cannot wait for that day, so a runner asked to with
//! [`Sandbox::probe_after_hardening`](crate::Sandbox::probe_after_hardening) makes these calls
//! itself, once fully hardened and just before the guest would run, and reports what each
//! returned. A probe the seccomp filter refuses ends the runner with
//! [`Error::ForbiddenSyscall`](crate::Error::ForbiddenSyscall) instead.

use serde::{Deserialize, Serialize};

/// One raw system call a compromised runner might make. Signals sent to the parent are
/// `SIGCONT`, harmless should every wall fail.
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Probe {
    /// `socket(AF_INET, SOCK_STREAM, 0)`.
    Socket,
    /// `tgkill(parent, parent, SIGCONT)`.
    SignalParentThread,
    /// `kill(parent, SIGCONT)`.
    SignalParent,
    /// `openat(AT_FDCWD, path, O_RDONLY)`.
    Open(String),
    /// `openat(AT_FDCWD, path, O_WRONLY | O_CREAT | O_EXCL, 0600)`.
    Create(String),
    /// `mkdirat(AT_FDCWD, path, 0700)`.
    MakeDir(String),
    /// `newfstatat(AT_FDCWD, path, &stat, 0)`.
    Stat(String),
    /// `ioctl(0, TIOCSTI, "x")`: push a byte into the terminal's input.
    FakeTerminalInput,
    /// `fcntl(0, F_SETOWN, parent)`.
    SetOwner,
    /// `fcntl(1, F_SETFL, O_NONBLOCK)` on stdout, a file description shared with the host.
    SetStdoutFlags,
    /// `fcntl(1, F_DUPFD_CLOEXEC, 4)`: a new fd sharing stdout's file description, on which
    /// `F_SETFL` would then be allowed.
    DuplicateStdout,
    /// `fcntl((1 << 32) | 1, F_SETFL, O_NONBLOCK)`: the kernel reads fd 1 (an `unsigned int`),
    /// a 64-bit compare would see a number above 3.
    SetStdoutFlagsThroughHighBits,
    /// `mmap` of shared anonymous memory, which `RLIMIT_DATA` does not count.
    MapShared,
    /// `prctl(PR_SET_NO_NEW_PRIVS, 1)`: allowed while the filters are stacked, never after.
    Prctl,
    /// `seccomp(SECCOMP_SET_MODE_FILTER, 0, NULL)`: likewise.
    Seccomp,
    /// `mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)`.
    MapExecutable,
    /// `mprotect` of a fresh read-write page to `PROT_READ | PROT_EXEC`.
    ProtectExecutable,
    /// `execve("/bin/sh", ...)`.
    Exec,
}

#[cfg(unix)]
impl Probe {
    /// Makes the call (`parent` is the runner's parent, learned before hardening); its return
    /// value, or `-errno`.
    pub(crate) fn run(&self, parent: i32) -> i64 {
        use std::ffi::CString;
        let path = |path: &str| CString::new(path).unwrap_or_default();
        // SAFETY: each arm is one system call with valid pointers to locals; none of them can
        // corrupt this process's memory (mappings are fresh and unused).
        let result: i64 = unsafe {
            match self {
                Probe::Socket => libc::syscall(libc::SYS_socket, libc::AF_INET, libc::SOCK_STREAM, 0),
                Probe::SignalParentThread => libc::syscall(libc::SYS_tgkill, parent, parent, libc::SIGCONT),
                Probe::SignalParent => libc::syscall(libc::SYS_kill, parent, libc::SIGCONT),
                Probe::Open(p) => libc::syscall(libc::SYS_openat, libc::AT_FDCWD, path(p).as_ptr(), libc::O_RDONLY),
                Probe::Create(p) => libc::syscall(
                    libc::SYS_openat,
                    libc::AT_FDCWD,
                    path(p).as_ptr(),
                    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
                    0o600,
                ),
                Probe::MakeDir(p) => libc::syscall(libc::SYS_mkdirat, libc::AT_FDCWD, path(p).as_ptr(), 0o700),
                Probe::Stat(p) => {
                    let mut stat: libc::stat = std::mem::zeroed();
                    libc::syscall(libc::SYS_newfstatat, libc::AT_FDCWD, path(p).as_ptr(), &mut stat, 0)
                }
                Probe::FakeTerminalInput => libc::syscall(libc::SYS_ioctl, 0, libc::TIOCSTI, c"x".as_ptr()),
                Probe::SetOwner => libc::syscall(libc::SYS_fcntl, 0, libc::F_SETOWN, parent),
                Probe::SetStdoutFlags => libc::syscall(libc::SYS_fcntl, 1, libc::F_SETFL, libc::O_NONBLOCK),
                Probe::DuplicateStdout => libc::syscall(libc::SYS_fcntl, 1, libc::F_DUPFD_CLOEXEC, 4),
                Probe::SetStdoutFlagsThroughHighBits => {
                    libc::syscall(libc::SYS_fcntl, (1u64 << 32) | 1, libc::F_SETFL, libc::O_NONBLOCK)
                }
                Probe::MapShared => {
                    let flags = libc::MAP_SHARED | libc::MAP_ANONYMOUS;
                    libc::syscall(libc::SYS_mmap, 0, 1 << 20, libc::PROT_READ | libc::PROT_WRITE, flags, -1, 0)
                }
                Probe::Prctl => libc::syscall(libc::SYS_prctl, libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0),
                Probe::Seccomp => {
                    libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, std::ptr::null::<u8>())
                }
                Probe::MapExecutable => {
                    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
                    libc::syscall(libc::SYS_mmap, 0, 4096, libc::PROT_READ | libc::PROT_EXEC, flags, -1, 0)
                }
                Probe::ProtectExecutable => {
                    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
                    let page = libc::syscall(libc::SYS_mmap, 0, 4096, libc::PROT_READ | libc::PROT_WRITE, flags, -1, 0);
                    libc::syscall(libc::SYS_mprotect, page, 4096, libc::PROT_READ | libc::PROT_EXEC)
                }
                Probe::Exec => {
                    let sh = path("/bin/sh");
                    let argv = [sh.as_ptr(), std::ptr::null()];
                    libc::syscall(libc::SYS_execve, sh.as_ptr(), argv.as_ptr(), std::ptr::null::<*const i8>())
                }
            }
        };
        if result < 0 { -i64::from(std::io::Error::last_os_error().raw_os_error().unwrap_or(0)) } else { result }
    }
}
