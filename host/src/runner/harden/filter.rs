//! The seccomp programs (x86_64 syscall numbers).
//!
//! The allowlist was derived by running every WASI preview1 function (the `wasi_all` guest) with
//! and without granted directories under `strace -f`, plus the runtime's own needs once the
//! module loads (memory management for linear-memory growth, futexes between the already-running
//! threads, timers, signal delivery for wasm traps). Each entry says why it is here.

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition as Cond, SeccompFilter,
    SeccompRule, TargetArch,
};
use std::collections::BTreeMap;

type Rules = BTreeMap<i64, Vec<SeccompRule>>;

/// A filter before compilation: its rules, the action when none matches, the action on a match.
type Filter = (Rules, SeccompAction, SeccompAction);

/// I/O on fds the runner holds, memory, threads' synchronisation, time, signals, exit.
const ALWAYS: &[i64] = &[
    libc::SYS_read,
    libc::SYS_readv,
    libc::SYS_write,
    libc::SYS_writev,
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_preadv,
    libc::SYS_pwritev,
    // `fd_write` on a file opened with APPEND: std's write_at with RWF_APPEND.
    libc::SYS_preadv2,
    libc::SYS_pwritev2,
    libc::SYS_lseek,
    libc::SYS_close,
    libc::SYS_fstat,
    libc::SYS_poll,
    libc::SYS_ppoll,
    libc::SYS_munmap,
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
    libc::SYS_rt_sigreturn,
    // An interrupted sleep or futex wait resumes through it after SIGSTOP/SIGCONT.
    libc::SYS_restart_syscall,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigaction,
    libc::SYS_sigaltstack,
    libc::SYS_exit,
    libc::SYS_exit_group,
];

/// Path-taking and file-only calls, for guests granted directories: wasmtime-wasi reaches files
/// through cap-std, relative to the preopened directory fds. Exactly what the `wasi_all` guest
/// (every preview1 function) used under `strace -f`, plus `newfstatat` (glibc's `fstat`).
/// Landlock confines every open, create, link, rename and delete to the grants (read-only
/// grants refuse the writing ones); `statx`, `newfstatat` and `readlinkat` it does not cover,
/// so with a grant native code could learn the metadata of paths outside it, never contents.
const FILES: &[i64] = &[
    libc::SYS_openat,
    libc::SYS_openat2,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    libc::SYS_getdents64,
    libc::SYS_readlinkat,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
    libc::SYS_ftruncate,
    libc::SYS_fadvise64,
    libc::SYS_utimensat,
    libc::SYS_mkdirat,
    libc::SYS_unlinkat,
    libc::SYS_renameat,
    libc::SYS_linkat,
    libc::SYS_symlinkat,
];

/// `fcntl` commands that only read or set per-fd state.
const FCNTL_ANY_FD: &[u64] = &[libc::F_GETFD as u64, libc::F_SETFD as u64, libc::F_GETFL as u64];

/// `ioctl` requests: terminal queries (`isatty`, window size), bytes available, and the close-
/// on-exec and non-blocking flags. Never `TIOCSTI` (faking terminal input) or anything else.
const IOCTL_ANY_FD: &[u64] = &[libc::TCGETS, libc::TIOCGWINSZ, libc::FIONREAD, libc::FIOCLEX];

/// The first fd a guest's own opened files get: 0–2 are stdio and 3 the control socket, all
/// shared with (or a lifeline to) the parent, so their file status flags stay as they are.
const FIRST_GUEST_FD: u64 = 4;

fn cond(arg: u8, op: Op, value: u64) -> Result<Cond, String> {
    Cond::new(arg, Len::Qword, op, value).map_err(|e| format!("seccomp rule: {e}"))
}

/// A condition on an `int`/`unsigned int` argument (an fd, an `fcntl` command, an `ioctl`
/// request): the kernel reads only its low 32 bits, so only those are compared. A 64-bit
/// compare would let `fd = 1 << 32` pass `fd >= 4` and act on fd 0.
fn cond32(arg: u8, op: Op, value: u64) -> Result<Cond, String> {
    Cond::new(arg, Len::Dword, op, value).map_err(|e| format!("seccomp rule: {e}"))
}

fn rule(conditions: Vec<Cond>) -> Result<SeccompRule, String> {
    SeccompRule::new(conditions).map_err(|e| format!("seccomp rule: {e}"))
}

/// The runner's syscall wall, as the programs to attach in order: the allowlist ([`ALWAYS`],
/// [`FILES`], and the calls that are only allowed with some arguments). Without granted
/// directories (`files` false), every call of [`FILES`] fails with `EPERM` instead (Landlock
/// already refuses every open): one program that decides that too, or, should the dispatch not
/// fit, the allowlist with [`no_files_rules`] stacked on it, which decide the same.
pub(super) fn syscall_wall(pid: i32, files: bool) -> Result<Vec<BpfProgram>, String> {
    if files {
        return Ok(vec![compile(allowlist_rules(pid)?)?]);
    }
    let (mut rules, mismatch, matched) = allowlist_rules(pid)?;
    let refused = no_files_rules();
    let fixed: Vec<(i64, u32)> = refused.0.keys().map(|&nr| (nr, u32::from(refused.2.clone()))).collect();
    rules.retain(|nr, _| !refused.0.contains_key(nr));
    match compile_dispatched((rules, mismatch, matched), &fixed)? {
        Some(program) => Ok(vec![program]),
        None => Ok(vec![compile(allowlist_rules(pid)?)?, compile(refused)?]),
    }
}

fn allowlist_rules(pid: i32) -> Result<Filter, String> {
    let mut rules: Rules = ALWAYS.iter().chain(FILES).map(|&nr| (nr, Vec::new())).collect();
    // Signals only to the runner's own threads (wasmtime's traps, `abort`).
    rules.insert(libc::SYS_tgkill, vec![rule(vec![cond(0, Op::Eq, pid as u64)?])?]);
    let mut fcntl: Vec<SeccompRule> =
        FCNTL_ANY_FD.iter().map(|&cmd| rule(vec![cond32(1, Op::Eq, cmd)?])).collect::<Result<_, _>>()?;
    // F_SETFL changes the open file description, which fds 0-3 share with the parent; a
    // duplicate of one of those (F_DUPFD*) would share it too, so neither is allowed on them.
    for cmd in [libc::F_SETFL, libc::F_DUPFD_CLOEXEC] {
        fcntl.push(rule(vec![cond32(0, Op::Ge, FIRST_GUEST_FD)?, cond32(1, Op::Eq, cmd as u64)?])?);
    }
    rules.insert(libc::SYS_fcntl, fcntl);
    let mut ioctl: Vec<SeccompRule> =
        IOCTL_ANY_FD.iter().map(|&request| rule(vec![cond32(1, Op::Eq, request)?])).collect::<Result<_, _>>()?;
    ioctl.push(rule(vec![cond32(0, Op::Ge, FIRST_GUEST_FD)?, cond32(1, Op::Eq, libc::FIONBIO)?])?);
    rules.insert(libc::SYS_ioctl, ioctl);
    // Stacking the next filter (seccompiler sets no_new_privs again first): both only ever
    // take rights away.
    rules.insert(libc::SYS_prctl, vec![rule(vec![cond(0, Op::Eq, libc::PR_SET_NO_NEW_PRIVS as u64)?])?]);
    rules.insert(libc::SYS_seccomp, vec![rule(vec![cond(0, Op::Eq, libc::SECCOMP_SET_MODE_FILTER as u64)?])?]);
    // Mappings: anything while the module loads; `forbid_new_code` then refuses PROT_EXEC.
    rules.insert(libc::SYS_mmap, Vec::new());
    rules.insert(libc::SYS_mprotect, Vec::new());
    Ok((rules, SeccompAction::Trap, SeccompAction::Allow))
}

/// For a guest without granted directories, every call of [`FILES`] fails with `EPERM`, so that
/// no path (absolute or not) is reachable even by `stat`, which Landlock does not cover: as a
/// filter of its own to stack on the allowlist, the fallback of [`syscall_wall`].
///
/// An error rather than `SIGSYS`: glibc's allocator itself probes
/// `/proc/sys/vm/overcommit_memory` when it first trims a heap, and copes with a refusal.
fn no_files_rules() -> Filter {
    let rules: Rules = FILES.iter().map(|&nr| (nr, Vec::new())).collect();
    (rules, SeccompAction::Allow, SeccompAction::Errno(libc::EPERM as u32))
}

/// Stacked on the allowlist once the module is loaded, the last filter, failing with `EPERM`:
/// `mmap`, `mprotect` and `pkey_mprotect` with `PROT_EXEC` (no new machine code can appear in
/// the runner); `mmap` with `MAP_SHARED` or `MAP_GROWSDOWN`, which `RLIMIT_DATA` does not count;
/// and `prctl` and `seccomp`, which the allowlist lets through only to stack this very filter.
pub(super) fn after_load() -> Result<BpfProgram, String> {
    compile(after_load_rules()?)
}

fn after_load_rules() -> Result<Filter, String> {
    let exec = libc::PROT_EXEC as u64;
    let mut rules: Rules = BTreeMap::new();
    for nr in [libc::SYS_mmap, libc::SYS_mprotect, libc::SYS_pkey_mprotect] {
        rules.insert(nr, vec![rule(vec![cond(2, Op::MaskedEq(exec), exec)?])?]);
    }
    let mmap = rules.get_mut(&libc::SYS_mmap).expect("inserted above");
    for flag in [libc::MAP_SHARED as u64, libc::MAP_GROWSDOWN as u64] {
        mmap.push(rule(vec![cond(3, Op::MaskedEq(flag), flag)?])?);
    }
    rules.insert(libc::SYS_prctl, Vec::new());
    rules.insert(libc::SYS_seccomp, Vec::new());
    Ok((rules, SeccompAction::Allow, SeccompAction::Errno(libc::EPERM as u32)))
}

/// What a zygote (and a runner it forks, before its own lock-down) never needs.
pub(super) fn zygote() -> Result<BpfProgram, String> {
    compile(zygote_rules())
}

fn zygote_rules() -> Filter {
    let denied = [
        libc::SYS_execve,
        libc::SYS_execveat,
        libc::SYS_socket,
        libc::SYS_socketpair,
        libc::SYS_connect,
        libc::SYS_bind,
        libc::SYS_listen,
        libc::SYS_accept,
        libc::SYS_accept4,
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_kill,
        libc::SYS_tkill,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_userfaultfd,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_kexec_load,
        libc::SYS_reboot,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_setuid,
        libc::SYS_setgid,
        libc::SYS_setreuid,
        libc::SYS_setregid,
        libc::SYS_setresuid,
        libc::SYS_setresgid,
        libc::SYS_setgroups,
        libc::SYS_pidfd_open,
        libc::SYS_pidfd_getfd,
        libc::SYS_pidfd_send_signal,
        libc::SYS_memfd_create,
        libc::SYS_open_by_handle_at,
    ];
    let rules: Rules = denied.iter().map(|&nr| (nr, Vec::new())).collect();
    (rules, SeccompAction::Allow, SeccompAction::Trap)
}

/// The program for `filter`: with a binary-search dispatch in front of seccompiler's chains
/// for the rules on arguments (see [`dispatch`](super::dispatch)), or seccompiler's chains
/// alone if the dispatch does not fit. The same decisions either way; the first at a fraction
/// of the kernel's cost of attaching it.
fn compile(filter: Filter) -> Result<BpfProgram, String> {
    match compile_dispatched(filter.clone(), &[])? {
        Some(program) => Ok(program),
        None => compile_chains(filter),
    }
}

/// `filter` as a dispatch in front of seccompiler's chains of its rules on arguments only; the
/// syscalls of `fixed` (none of which `filter` names) return their own action (a
/// `SECCOMP_RET_*` value). `None` if the dispatch does not fit.
fn compile_dispatched((rules, mismatch, matched): Filter, fixed: &[(i64, u32)]) -> Result<Option<BpfProgram>, String> {
    use super::dispatch::{Rule, with_dispatch};
    let kinds: Vec<(i64, Rule)> = rules
        .iter()
        .map(|(&nr, chain)| (nr, if chain.is_empty() { Rule::Always } else { Rule::Arguments }))
        .chain(fixed.iter().map(|&(nr, action)| (nr, Rule::Fixed(action))))
        .collect();
    let (matched_code, mismatch_code) = (u32::from(matched.clone()), u32::from(mismatch.clone()));
    let on_arguments: Rules =
        rules.iter().filter(|(_, chain)| !chain.is_empty()).map(|(nr, chain)| (*nr, chain.clone())).collect();
    // With no rule on arguments the dispatch decides everything and only the architecture check
    // and number load in front of the chains are kept; seccompiler emits no number load for an
    // empty filter, so those come from the full chains.
    let chains = compile_chains((if on_arguments.is_empty() { rules } else { on_arguments }, mismatch, matched))?;
    Ok(with_dispatch(chains, &kinds, matched_code, mismatch_code))
}

/// seccompiler's program for `rules`: one linear chain.
fn compile_chains((rules, mismatch, matched): Filter) -> Result<BpfProgram, String> {
    let arch: TargetArch = std::env::consts::ARCH.try_into().map_err(|e| format!("seccomp: {e:?}"))?;
    let filter = SeccompFilter::new(rules, mismatch, matched, arch).map_err(|e| format!("seccomp filter: {e}"))?;
    filter.try_into().map_err(|e: seccompiler::BackendError| format!("seccomp program: {e}"))
}

#[cfg(test)]
mod tests {
    use super::super::dispatch::tests::{Data, run};
    use super::*;

    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;

    /// Every filter, built both ways: with the dispatch and as seccompiler's plain chains.
    fn both_ways() -> Vec<(&'static str, BpfProgram, BpfProgram)> {
        let filters = [
            ("allowlist", allowlist_rules(4242).unwrap()),
            ("no_files", no_files_rules()),
            ("after_load", after_load_rules().unwrap()),
            ("zygote", zygote_rules()),
        ];
        filters
            .into_iter()
            .map(|(name, filter)| {
                let dispatched = compile_dispatched(filter.clone(), &[]).unwrap().expect("the dispatch fits");
                (name, dispatched, compile_chains(filter).unwrap())
            })
            .collect()
    }

    /// Argument values at each rule's edges: small fds, the fcntl and ioctl commands,
    /// PROT_EXEC and MAP_* bits, the pid, and high bits that a 64-bit compare would see.
    fn edge_values() -> Vec<u64> {
        [0u64, 1, 2, 3, 4, 5, 7, 0x20, 0x22, 0x100, 0x406, 0x5401, 0x5413, 0x541b, 0x5421, 0x5451]
            .into_iter()
            .chain([4242, 1 << 32, (1 << 32) | 4, 0x1_0000_0406, u64::MAX])
            .collect()
    }

    /// Every syscall number (and some past the table), both architectures, many arguments.
    fn each_call(mut check: impl FnMut(&Data)) -> u64 {
        let values = edge_values();
        let mut checked = 0;
        for nr in (0..=470u32).chain([0x4000_0000, 0x4000_0001, 0x4000_0200, u32::MAX]) {
            for arch in [AUDIT_ARCH_X86_64, 0x4000_0003] {
                for (i, &first) in values.iter().enumerate() {
                    let pick = |step: usize| values[(i * step + 1) % values.len()];
                    check(&Data { nr, arch, args: [first, pick(7), pick(5), pick(3), pick(11), 0] });
                    checked += 1;
                }
            }
        }
        checked
    }

    /// What the kernel does with stacked filters: the action of highest precedence, which is
    /// the lowest as a signed number (`SECCOMP_RET_KILL_PROCESS` is negative).
    fn stacked(actions: impl IntoIterator<Item = u32>) -> u32 {
        actions.into_iter().min_by_key(|&action| (action & 0xffff_0000) as i32).expect("one filter at least")
    }

    #[test]
    fn the_wall_without_files_is_one_program_deciding_as_the_two_stacked_filters() {
        let wall = syscall_wall(4242, false).unwrap();
        assert_eq!(wall.len(), 1, "the dispatch did not fit: two filters to attach");
        let allowlist = compile_chains(allowlist_rules(4242).unwrap()).unwrap();
        let refuse_files = compile_chains(no_files_rules()).unwrap();
        let checked = each_call(|data| {
            let expected = stacked([run(&allowlist, data).0, run(&refuse_files, data).0]);
            assert_eq!(run(&wall[0], data).0, expected, "syscall {} with args {:?}", data.nr, data.args);
        });
        assert!(checked > 15_000, "{checked}");
        let eperm = u32::from(SeccompAction::Errno(libc::EPERM as u32));
        let openat = Data { nr: libc::SYS_openat as u32, arch: AUDIT_ARCH_X86_64, args: [0; 6] };
        assert_eq!(run(&wall[0], &openat).0, eperm);
    }

    #[test]
    fn the_wall_with_files_is_the_allowlist() {
        let wall = syscall_wall(4242, true).unwrap();
        assert_eq!(wall.len(), 1);
        let allowlist = compile_chains(allowlist_rules(4242).unwrap()).unwrap();
        each_call(|data| assert_eq!(run(&wall[0], data).0, run(&allowlist, data).0, "syscall {}", data.nr));
        let openat = Data { nr: libc::SYS_openat as u32, arch: AUDIT_ARCH_X86_64, args: [0; 6] };
        assert_eq!(run(&wall[0], &openat).0, u32::from(SeccompAction::Allow));
    }

    #[test]
    fn a_dispatched_program_keeps_only_the_chains_on_arguments() {
        // The kernel converts and JIT-compiles every instruction at attach time: the whole
        // wall, files refused included, must be shorter than seccompiler's chain for the
        // allowlist alone (which the runner attached, plus a dispatch and a second filter, before).
        let wall = syscall_wall(4242, false).unwrap();
        let chain = compile_chains(allowlist_rules(4242).unwrap()).unwrap().len();
        assert!(wall[0].len() < chain, "{} instructions, against {chain} for the chain", wall[0].len());
    }

    #[test]
    fn the_dispatch_decides_every_syscall_as_the_plain_chains_do() {
        let mut checked = 0u64;
        for (name, dispatched, plain) in both_ways() {
            checked += each_call(|data| {
                let (ours, theirs) = (run(&dispatched, data), run(&plain, data));
                assert_eq!(ours.0, theirs.0, "{name}: syscall {} with args {:?}", data.nr, data.args);
            });
        }
        assert!(checked > 50_000, "{checked}");
    }

    #[test]
    fn the_dispatch_decides_an_unlisted_syscall_in_a_few_steps() {
        let (_, dispatched, plain) = both_ways().into_iter().next().unwrap();
        let unlisted = Data { nr: 450, arch: AUDIT_ARCH_X86_64, args: [0; 6] };
        let (ours, theirs) = (run(&dispatched, &unlisted), run(&plain, &unlisted));
        assert_eq!(ours.0, theirs.0);
        assert!(ours.1 * 10 < theirs.1, "{} steps with the dispatch, {} without", ours.1, theirs.1);
    }
}
