//! OS-level hardening of the runner: the second wall, for the case where a guest (or a module
//! built to exploit the compiler) finds a bug in wasmtime and gets to run native code.
//!
//! It goes up in two steps, both before any untrusted byte is parsed:
//!
//! 1. [`lock_down_files`], while the runner is still single-threaded: `RLIMIT_CORE = 0`,
//!    `no_new_privs`, every capability dropped, and a Landlock domain that allows file access
//!    only beneath the granted directories (read-only or writable per grant) and scopes signals
//!    and abstract sockets to the sandbox. Landlock applies to the calling thread and the
//!    threads it starts later, so every thread of the runner is started after this. Once the
//!    module's bytes are in, [`limit_data`] adds an `RLIMIT_DATA` backstop under the memory
//!    limit, sized by them.
//! 2. [`apply_syscall_filter`], once the helper threads run and the granted directories are
//!    open: a seccomp allowlist on every thread ([`filter`]), with argument checks where a
//!    syscall is only safe in some forms. Then the module is parsed, compiled or deserialized,
//!    and after that [`forbid_new_code`] stacks a filter that refuses every new executable
//!    mapping (and, without granted directories, every path-taking call), before the module is
//!    instantiated (so before any `start` function runs).
//!
//! A syscall outside the allowlist raises `SIGSYS`; [`on_sigsys`] reports which one on the
//! control socket and exits, so the parent can say `forbidden system call: pwritev2 (328)`.

use crate::protocol::{CONTROL_FD, ModuleSource, RunnerConfig};
use std::sync::atomic::{AtomicU64, Ordering};

/// Memory the runner itself needs beyond the guest's limit, for the `RLIMIT_DATA` backstop:
/// heap, thread stacks, wasmtime's and wasmtime-wasi's own state.
const RUNTIME_DATA_ALLOWANCE: u64 = 192 << 20;

/// Compiling takes memory in proportion to the module (Cranelift's IR, the artifact being
/// built): this many bytes per byte of module, on top of [`RUNTIME_DATA_ALLOWANCE`].
const COMPILE_DATA_PER_MODULE_BYTE: u64 = 24;

/// The `RLIMIT_DATA` in force, for the `SIGABRT` handler's report.
static DATA_LIMIT: AtomicU64 = AtomicU64::new(0);

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

/// Closes every fd from `first` up except those in `keep`; nothing in the process may own the
/// others.
pub(super) fn close_fds_except(first: i32, keep: &[i32]) {
    let mut keep: Vec<i32> = keep.iter().copied().filter(|&fd| fd >= first).collect();
    keep.sort_unstable();
    let mut from = first;
    for fd in keep {
        for closing in from..fd {
            // SAFETY: as in `close_fds_from`; only the few fds below a kept one, one by one.
            unsafe { libc::close(closing) };
        }
        from = fd + 1;
    }
    close_fds_from(from);
}

/// Step 1: no core dumps, `no_new_privs`, capabilities, Landlock. Must run while the runner has
/// one thread. Returns the Landlock ABI that was enforced, if any.
pub(super) fn lock_down_files(config: &RunnerConfig) -> Result<Option<i32>, String> {
    use rustix::process::{Resource, Rlimit, setrlimit};
    let zero = Rlimit { current: Some(0), maximum: Some(0) };
    setrlimit(Resource::Core, zero).map_err(|e| format!("RLIMIT_CORE: {e}"))?;
    // No RLIMIT_FSIZE: the guest's stdout may legitimately be a regular file (`wasmpipe run >
    // out`), and the limit would kill the runner with SIGXFSZ on its first write.
    rustix::thread::set_no_new_privs(true).map_err(|e| format!("no_new_privs: {e}"))?;
    drop_capabilities()?;
    let abi = landlock(config)?;
    if abi.is_none() && !config.dirs.is_empty() && !config.allow_unconfined_dirs {
        // Without Landlock, the seccomp filter alone cannot hold native code to the grants.
        return Err("this kernel has no Landlock, so the runner cannot be confined to the granted \
                    directories; refusing the grants (see Sandbox::unsafe_allow_dangerous_dirs)"
            .into());
    }
    Ok(abi)
}

/// Step 2, once the module (`module_len` bytes of `source`) is in: `RLIMIT_DATA`, sized by it.
pub(super) fn limit_data(config: &RunnerConfig, source: &ModuleSource, module_len: u64) -> Result<(), String> {
    use rustix::process::{Resource, Rlimit, setrlimit};
    let data = data_limit(config, source, module_len);
    setrlimit(Resource::Data, Rlimit { current: Some(data), maximum: Some(data) })
        .map_err(|e| format!("RLIMIT_DATA: {e}"))?;
    DATA_LIMIT.store(data, Ordering::Relaxed);
    Ok(())
}

/// The process-wide backstop under the memory limit: wasmtime reserves address space with
/// `PROT_NONE` (which `RLIMIT_DATA` does not count) and makes it writable as memories and
/// tables grow (which it does count), so this holds even if wasmtime's own accounting fails.
fn data_limit(config: &RunnerConfig, source: &ModuleSource, module_len: u64) -> u64 {
    let compile = match source {
        ModuleSource::Wasm { .. } => module_len.saturating_mul(COMPILE_DATA_PER_MODULE_BYTE),
        // The received artifact and wasmtime's copy of it, both counted.
        ModuleSource::Compiled { .. } | ModuleSource::Mapped { .. } | ModuleSource::Preloaded { .. } => {
            module_len.saturating_mul(2)
        }
    };
    config.limits.memory_limit().saturating_add(RUNTIME_DATA_ALLOWANCE).saturating_add(compile)
}

/// Drops every capability (a host running as root would otherwise hand them all to the runner):
/// the bounding and ambient sets first, then the effective, permitted and inheritable ones.
fn drop_capabilities() -> Result<(), String> {
    use rustix::thread::{CapabilitySet, CapabilitySets, capabilities, set_capabilities};
    let held = capabilities(None).map_err(|e| format!("capget: {e}"))?;
    if held.permitted.is_empty() && held.effective.is_empty() && held.inheritable.is_empty() {
        return Ok(());
    }
    let _ = rustix::thread::clear_ambient_capability_set();
    if held.effective.contains(CapabilitySet::SETPCAP) {
        for bit in 0..64u32 {
            // SAFETY: PR_CAPBSET_DROP takes a capability number; the first one the kernel does
            // not know fails with EINVAL, and so would every later one.
            if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, bit as libc::c_ulong, 0, 0, 0) } != 0 {
                break;
            }
        }
    }
    let none = CapabilitySets {
        effective: CapabilitySet::empty(),
        permitted: CapabilitySet::empty(),
        inheritable: CapabilitySet::empty(),
    };
    set_capabilities(None, none).map_err(|e| format!("capset: {e}"))
}

/// A Landlock domain: file access only beneath the grants, signals and abstract unix sockets
/// only within the sandbox. Best effort on older kernels (the other walls stand alone).
fn landlock(config: &RunnerConfig) -> Result<Option<i32>, String> {
    use landlock::{
        ABI, Access, AccessFs, LandlockStatus, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
    };
    let abi = ABI::V6;
    let error = |e: landlock::RulesetError| format!("landlock: {e}");
    use landlock::PathBeneath;
    // The parent's fds of the grants, in the config's order: the directories it checked.
    let fds = super::grant_fds();
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .map_err(error)?
        .scope(Scope::Signal | Scope::AbstractUnixSocket)
        .map_err(error)?
        .create()
        .map_err(error)?
        .add_rules(config.dirs.iter().zip(fds.iter()).map(|(grant, fd)| {
            let access = if grant.writable { AccessFs::from_all(abi) } else { AccessFs::from_read(abi) };
            Ok::<_, landlock::RulesetError>(PathBeneath::new(fd, access))
        }))
        .map_err(error)?
        .restrict_self()
        .map_err(error)?;
    Ok(match (status.ruleset, status.landlock) {
        (RulesetStatus::NotEnforced, _) => None,
        (_, LandlockStatus::Available { effective_abi, .. }) => Some(effective_abi as i32),
        _ => None,
    })
}

/// The programs of step 2, compiled (in this process, nothing attached yet): made while the
/// runner still waits for its module, attached by [`apply_syscall_filter`].
#[cfg(target_arch = "x86_64")]
pub(super) fn syscall_filter(config: &RunnerConfig) -> Result<Vec<seccompiler::BpfProgram>, String> {
    let pid = rustix::process::getpid().as_raw_nonzero().get();
    filter::syscall_wall(pid, !config.dirs.is_empty())
}

#[cfg(not(target_arch = "x86_64"))]
pub(super) fn syscall_filter(_config: &RunnerConfig) -> Result<Vec<()>, String> {
    Ok(Vec::new())
}

/// Step 2: the seccomp allowlist (`programs`, from [`syscall_filter`]), on every thread.
/// Installs the `SIGSYS` reporter first.
#[cfg(target_arch = "x86_64")]
pub(super) fn apply_syscall_filter(programs: Vec<seccompiler::BpfProgram>) -> Result<(), String> {
    install_reporters();
    for program in programs {
        seccompiler::apply_filter_all_threads(&program).map_err(|e| format!("seccomp: {e}"))?;
    }
    Ok(())
}

#[cfg(not(target_arch = "x86_64"))]
pub(super) fn apply_syscall_filter(_programs: Vec<()>) -> Result<(), String> {
    Ok(())
}

/// Step 3, once the module is loaded: no new executable mappings, ever, and no mappings that
/// escape `RLIMIT_DATA`.
#[cfg(target_arch = "x86_64")]
pub(super) fn forbid_new_code(_config: &RunnerConfig) -> Result<(), String> {
    let program = filter::after_load()?;
    seccompiler::apply_filter_all_threads(&program).map_err(|e| format!("seccomp: {e}"))
}

#[cfg(not(target_arch = "x86_64"))]
pub(super) fn forbid_new_code(_config: &RunnerConfig) -> Result<(), String> {
    Ok(())
}

/// Hardening for a zygote, right after it made its engines: `no_new_privs` and a filter that
/// forbids what neither a zygote nor a runner before its own lock-down ever does (exec, the
/// network, tracing, kernel keyrings, mounts...). It loads cache entries under it.
#[cfg(target_arch = "x86_64")]
pub(super) fn harden_zygote() -> Result<(), String> {
    rustix::thread::set_no_new_privs(true).map_err(|e| format!("no_new_privs: {e}"))?;
    // Once here rather than in every runner it forks: they inherit an empty set.
    drop_capabilities()?;
    // No SIGSYS reporter: fd 3 is not a control socket here. A denied call kills the zygote.
    let program = filter::zygote()?;
    seccompiler::apply_filter(&program).map_err(|e| format!("seccomp: {e}"))
}

#[cfg(not(target_arch = "x86_64"))]
pub(super) fn harden_zygote() -> Result<(), String> {
    rustix::thread::set_no_new_privs(true).map_err(|e| format!("no_new_privs: {e}"))?;
    drop_capabilities()
}

/// Installs the `SIGSYS` and `SIGABRT` handlers that put a verdict on the control socket.
fn install_reporters() {
    // SAFETY: plain sigaction calls installing async-signal-safe handlers.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigsys as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO;
        libc::sigaction(libc::SIGSYS, &action, std::ptr::null_mut());
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigabrt as *const () as usize;
        action.sa_flags = libc::SA_RESETHAND;
        libc::sigaction(libc::SIGABRT, &action, std::ptr::null_mut());
    }
}

/// `SIGSYS` from the filter: report the syscall number, exit. Async-signal-safe: formats into
/// a stack buffer and makes only `write` and `exit_group`.
extern "C" fn on_sigsys(_signal: libc::c_int, info: *mut libc::siginfo_t, _context: *mut libc::c_void) {
    // SAFETY: for SIGSYS the kernel fills `_sigsys`, whose `_syscall` (an int) follows the
    // three int header fields, padding and the `_call_addr` pointer: offset 24 on 64-bit Linux.
    let nr = unsafe { *(info as *const u8).add(24).cast::<libc::c_int>() };
    let mut buffer = [0u8; 96];
    let len = compose(&mut buffer, &[b"{\"outcome\":\"forbidden_syscall\",\"nr\":"], nr.max(0) as u64);
    super::report_raw(&buffer[..len], i32::from(crate::status::FORBIDDEN_SYSCALL));
}

/// `SIGABRT`: Rust aborts when an allocation fails, as it does under `RLIMIT_DATA`, but also on a
/// stack overflow. If a fresh 1 MiB of memory cannot be had either, it was the memory.
extern "C" fn on_sigabrt(_signal: libc::c_int) {
    const PROBE: usize = 1 << 20;
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
    // SAFETY: mmap and munmap are async-signal-safe; the mapping is fresh and unused.
    let probe = unsafe { libc::mmap(std::ptr::null_mut(), PROBE, libc::PROT_READ | libc::PROT_WRITE, flags, -1, 0) };
    if probe != libc::MAP_FAILED {
        // SAFETY: as above.
        unsafe { libc::munmap(probe, PROBE) };
        super::report_raw(b"{\"outcome\":\"failed\",\"message\":\"the sandbox runner aborted\"}", 134);
    }
    let mut buffer = [0u8; 96];
    let limit = DATA_LIMIT.load(Ordering::Relaxed);
    let len = compose(&mut buffer, &[b"{\"outcome\":\"out_of_memory\",\"limit\":"], limit);
    super::report_raw(&buffer[..len], 134);
}

/// Writes `prefix`, `number` and a closing brace into `buffer`; returns the length.
fn compose(buffer: &mut [u8], prefix: &[&[u8]], number: u64) -> usize {
    let mut len = 0;
    for part in prefix {
        buffer[len..len + part.len()].copy_from_slice(part);
        len += part.len();
    }
    let mut digits = [0u8; 20];
    let mut n = number;
    let mut count = 0;
    loop {
        digits[count] = b'0' + (n % 10) as u8;
        count += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for digit in digits[..count].iter().rev() {
        buffer[len] = *digit;
        len += 1;
    }
    buffer[len] = b'}';
    len + 1
}

/// The control socket's raw fd, for the signal handlers.
pub(super) const REPORT_FD: i32 = CONTROL_FD;

#[cfg(target_arch = "x86_64")]
mod dispatch;
mod filter;

#[cfg(test)]
mod tests {
    #[test]
    fn verdicts_composed_in_a_signal_handler_parse() {
        let mut buffer = [0u8; 96];
        let len = super::compose(&mut buffer, &[b"{\"outcome\":\"forbidden_syscall\",\"nr\":"], 328);
        let verdict = crate::protocol::decode_verdict(&buffer[..len]).unwrap();
        assert_eq!(verdict, crate::protocol::Verdict::ForbiddenSyscall { nr: 328 });
    }
}
