//! OS-level hardening of the runner, applied after the module is loaded and before `_start`.
//!
//! wasmtime is the first wall; this is the second, for the case where a guest finds a bug in it.
//! After [`apply`], the runner cannot gain privileges, dump core, create files (unless a writable
//! directory was granted), open anything (unless a directory was granted), create processes or
//! threads, or use the network: any syscall outside [`ALWAYS_ALLOWED`] (plus [`FILE_ACCESS`] when
//! directories were granted) kills it with `SIGSYS`.

use crate::protocol::RunnerConfig;
use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};
use std::collections::BTreeMap;

/// Syscalls the runner needs once the guest runs: I/O on the fds it already holds, memory
/// management for linear-memory growth and the allocator, futexes and the wasi runtime's event
/// loop (its threads exist already), clocks and sleeping, signal delivery for wasm traps, exit.
#[cfg(target_arch = "x86_64")]
const ALWAYS_ALLOWED: &[i64] = &[
    libc::SYS_read,
    libc::SYS_readv,
    libc::SYS_write,
    libc::SYS_writev,
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_lseek,
    libc::SYS_close,
    libc::SYS_fstat,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    libc::SYS_fcntl,
    libc::SYS_ioctl,
    libc::SYS_poll,
    libc::SYS_ppoll,
    libc::SYS_epoll_wait,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_ctl,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mprotect,
    libc::SYS_madvise,
    libc::SYS_mremap,
    libc::SYS_brk,
    libc::SYS_futex,
    libc::SYS_sched_yield,
    libc::SYS_sched_getaffinity,
    libc::SYS_getrandom,
    libc::SYS_clock_gettime,
    libc::SYS_clock_getres,
    libc::SYS_clock_nanosleep,
    libc::SYS_nanosleep,
    libc::SYS_gettid,
    libc::SYS_getpid,
    libc::SYS_tgkill,
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigaction,
    libc::SYS_sigaltstack,
    libc::SYS_exit,
    libc::SYS_exit_group,
];

/// Extra syscalls for guests that were granted directories (wasmtime-wasi reaches files through
/// cap-std, relative to the preopened directory fds).
#[cfg(target_arch = "x86_64")]
const FILE_ACCESS: &[i64] = &[
    libc::SYS_openat,
    libc::SYS_openat2,
    libc::SYS_getdents64,
    libc::SYS_readlinkat,
    libc::SYS_fstatfs,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
    libc::SYS_ftruncate,
    libc::SYS_fallocate,
    libc::SYS_fadvise64,
    libc::SYS_utimensat,
    libc::SYS_mkdirat,
    libc::SYS_unlinkat,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_linkat,
    libc::SYS_symlinkat,
    libc::SYS_dup,
    libc::SYS_dup3,
];

/// Closes every fd above stdio, whatever the parent leaked to us (the control socket arrives as
/// fd 0 and is moved to fd 3 afterwards).
pub(super) fn close_inherited_fds() {
    close_fds_from(3);
}

/// Closes every fd from `first` up; nothing in the process may own one of them.
pub(super) fn close_fds_from(first: i32) {
    // SAFETY: close_range only closes descriptors, and the caller guarantees that none of them
    // is owned by anything in this process.
    let closed = unsafe { libc::syscall(libc::SYS_close_range, first as u32, u32::MAX, 0u32) };
    if closed != 0 {
        // Kernels before 5.9: close what the soft fd limit allows.
        let max = rustix::process::getrlimit(rustix::process::Resource::Nofile).current.unwrap_or(1024).min(65536);
        for fd in first..max as i32 {
            // SAFETY: as above.
            unsafe { libc::close(fd) };
        }
    }
}

/// Applies rlimits, `no_new_privs` and the seccomp filter to the whole process.
pub(super) fn apply(config: &RunnerConfig) -> Result<(), String> {
    use rustix::process::{Resource, Rlimit, setrlimit};
    let zero = Rlimit { current: Some(0), maximum: Some(0) };
    setrlimit(Resource::Core, zero).map_err(|e| format!("RLIMIT_CORE: {e}"))?;
    // No RLIMIT_FSIZE: the guest's stdout may legitimately be a regular file (`wasmpipe run >
    // out`), and the limit would kill the runner with SIGXFSZ on its first write.
    rustix::thread::set_no_new_privs(true).map_err(|e| format!("no_new_privs: {e}"))?;
    apply_seccomp(config)
}

/// The syscall allowlist is written against x86_64's syscall table.
#[cfg(target_arch = "x86_64")]
fn apply_seccomp(config: &RunnerConfig) -> Result<(), String> {
    let mut allowed: Vec<i64> = ALWAYS_ALLOWED.to_vec();
    if !config.dirs.is_empty() {
        allowed.extend_from_slice(FILE_ACCESS);
    }
    let program = filter(&allowed)?;
    seccompiler::apply_filter_all_threads(&program).map_err(|e| format!("seccomp: {e}"))
}

#[cfg(not(target_arch = "x86_64"))]
fn apply_seccomp(_config: &RunnerConfig) -> Result<(), String> {
    Ok(())
}

#[cfg(target_arch = "x86_64")]
fn filter(allowed: &[i64]) -> Result<BpfProgram, String> {
    let rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>> = allowed.iter().map(|&nr| (nr, Vec::new())).collect();
    let arch: TargetArch = std::env::consts::ARCH.try_into().map_err(|e| format!("seccomp: {e:?}"))?;
    let filter = SeccompFilter::new(rules, SeccompAction::KillProcess, SeccompAction::Allow, arch)
        .map_err(|e| format!("seccomp filter: {e}"))?;
    filter.try_into().map_err(|e: seccompiler::BackendError| format!("seccomp program: {e}"))
}

/// Test hook: a syscall outside the allowlist (`socket`), which must kill the runner.
pub(super) fn make_forbidden_syscall() {
    // SAFETY: creating a socket has no memory-safety implications; the filter kills us first.
    unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
}
