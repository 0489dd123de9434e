//! A guest probing its prison finds every door shut; the runner's second wall holds.

use wasmpipe::probe::Probe;
use wasmpipe::{Error, Sandbox};
use wasmpipe_tests::guests;

const PROBES: &[&str] = &[
    "read-passwd",
    "list-root",
    "list-cwd",
    "write-outside",
    "dotdot",
    "env",
    "fds",
    "tcp-connect",
    "tcp-bind",
    "udp-bind",
];

#[tokio::test]
async fn every_escape_attempt_fails_inside_the_guest() {
    // Host environment variables exist (HOME, PATH, ...); the guest must see none of them.
    assert!(std::env::vars_os().next().is_some());
    let (rx, tx) = wasmpipe::pipe().unwrap();
    let mut child = Sandbox::new(guests::PROBE).stdout(tx).spawn().unwrap();
    let mut rx = rx.open().unwrap();
    let mut report = Vec::new();
    while let Some(line) = rx.read_line().await.unwrap() {
        report.push(String::from_utf8(line).unwrap());
    }
    let result = child.wait().await;
    for probe in PROBES {
        let line = report.iter().find(|line| line.split_whitespace().nth(1) == Some(&format!("{probe}:")));
        let line = line.unwrap_or_else(|| panic!("no report for {probe}: {report:?}"));
        assert!(line.starts_with("blocked "), "{line}");
    }
    assert!(result.unwrap().success(), "the probe saw an escape: {report:?}");
}

/// The seccomp filter exists on x86_64 only.
#[cfg(target_arch = "x86_64")]
#[tokio::test]
async fn a_forbidden_syscall_stops_the_runner_and_is_named() {
    let mut child = Sandbox::new(guests::SIMPLEX).forbidden_syscall_after_hardening().spawn().unwrap();
    let result = child.wait().await;
    assert!(
        matches!(&result, Err(Error::ForbiddenSyscall { number, name: Some(name) }) if *number == Some(libc::SYS_socket) && name == "socket"),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_killed_runner_is_reported_as_killed_never_as_success() {
    let (stdin, _keep_open) = wasmpipe::pipe().unwrap();
    let (rx, tx) = wasmpipe::pipe().unwrap();
    let mut child = Sandbox::new(guests::UPPER).stdin(stdin).stdout(tx).spawn().unwrap();
    child.kill().unwrap();
    assert!(matches!(child.wait().await, Err(Error::Killed(libc::SIGKILL))));
    // And the guest's stdout reaches EOF with it.
    assert_eq!(rx.open().unwrap().read_line().await.unwrap(), None);
}

#[tokio::test]
async fn a_granted_directory_is_readable_but_not_writable() {
    let dir = std::env::temp_dir().join(format!("wasmpipe-dir-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("file.txt"), b"granted contents\n").unwrap();
    let (rx, tx) = wasmpipe::pipe().unwrap();
    let mut child = Sandbox::new(guests::CAT).dir(&dir, "/data").arg("/data/file.txt").stdout(tx).spawn().unwrap();
    let mut out = Vec::new();
    rx.open().unwrap().read_to_end(&mut out).await.unwrap();
    assert!(child.wait().await.unwrap().success());
    assert_eq!(out, b"granted contents\n");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs a guest that reports on its stdout, and returns the report and how it ended.
async fn report_of(sandbox: Sandbox) -> (String, wasmpipe::Result<wasmpipe::GuestExit>) {
    let (rx, tx) = wasmpipe::pipe().unwrap();
    let mut child = sandbox.stdout(tx).spawn().unwrap();
    let mut out = Vec::new();
    rx.open().unwrap().read_to_end(&mut out).await.unwrap();
    (String::from_utf8(out).unwrap(), child.wait().await)
}

#[tokio::test]
async fn the_hardened_runner_allows_clocks_sleep_and_randomness() {
    let (report, result) = report_of(Sandbox::new(guests::WASI_TOUR)).await;
    assert!(result.as_ref().is_ok_and(|exit| exit.success()), "{result:?}\n{report}");
    assert_eq!(report, "ok clock\nok sleep\nok random\n");
}

#[tokio::test]
async fn the_hardened_runner_allows_file_work_in_a_writable_directory() {
    let dir = std::env::temp_dir().join(format!("wasmpipe-tour-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("input.txt"), b"input\n").unwrap();
    let (report, result) = report_of(Sandbox::new(guests::WASI_TOUR).dir_writable(&dir, "/data").arg("--dir")).await;
    assert!(result.as_ref().is_ok_and(|exit| exit.success()), "{result:?}\n{report}");
    assert_eq!(report, "ok clock\nok sleep\nok random\nok list\nok read\nok create\nok rename\nok mkdir\nok remove\n");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_read_only_directory_refuses_writes() {
    let dir = std::env::temp_dir().join(format!("wasmpipe-tour-ro-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("input.txt"), b"input\n").unwrap();
    let (report, result) = report_of(Sandbox::new(guests::WASI_TOUR).dir(&dir, "/data").arg("--dir")).await;
    assert_eq!(result.unwrap().code(), 1, "{report}");
    assert!(report.contains("ok list\nok read\nfailed create"), "{report}");
    assert!(!dir.join("created.txt").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---------------------------------------------------------------------------------------------
// A compromised runner: the probes stand in for native code that escaped wasmtime, running
// raw syscalls once the runner is fully hardened (seccomp and Landlock apply on x86_64 Linux).

/// What a probe returned, or the error that ended the runner.
async fn probe(sandbox: Sandbox, probe: Probe) -> wasmpipe::Result<wasmpipe::GuestExit> {
    let mut child = sandbox.probe_after_hardening(probe).capture_stderr(4096).spawn().unwrap();
    child.wait().await
}

fn assert_forbidden(result: &wasmpipe::Result<wasmpipe::GuestExit>, syscall: &str) {
    assert!(
        matches!(result, Err(Error::ForbiddenSyscall { name: Some(name), .. }) if name == syscall),
        "expected the filter to stop {syscall}: {result:?}"
    );
}

fn assert_refused(result: &wasmpipe::Result<wasmpipe::GuestExit>, errnos: &[i32]) {
    let Err(Error::Probed(results)) = result else { panic!("expected a probe result: {result:?}") };
    assert!(errnos.iter().any(|errno| results[0] == -i64::from(*errno)), "expected -{errnos:?}, got {results:?}");
}

/// A scratch directory for one test.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wasmpipe-walls-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("granted")).unwrap();
    dir
}

#[cfg(target_arch = "x86_64")]
#[tokio::test]
async fn a_compromised_runner_cannot_signal_the_host() {
    assert_forbidden(&probe(Sandbox::new(guests::SIMPLEX), Probe::SignalParentThread).await, "tgkill");
    assert_forbidden(&probe(Sandbox::new(guests::SIMPLEX), Probe::SignalParent).await, "kill");
}

#[cfg(target_arch = "x86_64")]
#[tokio::test]
async fn a_compromised_runner_cannot_exec_or_use_the_network() {
    assert_forbidden(&probe(Sandbox::new(guests::SIMPLEX), Probe::Exec).await, "execve");
    assert_forbidden(&probe(Sandbox::new(guests::SIMPLEX), Probe::Socket).await, "socket");
}

#[cfg(target_arch = "x86_64")]
#[tokio::test]
async fn a_compromised_runner_cannot_fake_terminal_input_or_touch_shared_fds() {
    assert_forbidden(&probe(Sandbox::new(guests::SIMPLEX), Probe::FakeTerminalInput).await, "ioctl");
    assert_forbidden(&probe(Sandbox::new(guests::SIMPLEX), Probe::SetOwner).await, "fcntl");
    assert_forbidden(&probe(Sandbox::new(guests::SIMPLEX), Probe::SetStdoutFlags).await, "fcntl");
    assert_forbidden(&probe(Sandbox::new(guests::SIMPLEX), Probe::DuplicateStdout).await, "fcntl");
    assert_forbidden(&probe(Sandbox::new(guests::SIMPLEX), Probe::SetStdoutFlagsThroughHighBits).await, "fcntl");
}

#[cfg(target_arch = "x86_64")]
#[tokio::test]
async fn a_compromised_runner_cannot_map_new_code() {
    assert_refused(&probe(Sandbox::new(guests::SIMPLEX), Probe::MapExecutable).await, &[libc::EPERM]);
    assert_refused(&probe(Sandbox::new(guests::SIMPLEX), Probe::ProtectExecutable).await, &[libc::EPERM]);
}

#[cfg(target_arch = "x86_64")]
#[tokio::test]
async fn a_compromised_runner_cannot_map_memory_the_backstop_does_not_count() {
    assert_refused(&probe(Sandbox::new(guests::SIMPLEX), Probe::MapShared).await, &[libc::EPERM]);
}

#[cfg(target_arch = "x86_64")]
#[tokio::test]
async fn the_calls_that_stack_the_filters_are_closed_once_they_are_stacked() {
    for probe_call in [Probe::Prctl, Probe::Seccomp] {
        assert_refused(&probe(Sandbox::new(guests::SIMPLEX), probe_call).await, &[libc::EPERM]);
    }
}

#[cfg(target_arch = "x86_64")]
#[tokio::test]
async fn without_grants_no_path_is_reachable() {
    for probe_path in [Probe::Open("/etc/passwd".into()), Probe::Stat("/etc/passwd".into())] {
        assert_refused(&probe(Sandbox::new(guests::SIMPLEX), probe_path).await, &[libc::EPERM]);
    }
}

#[cfg(target_arch = "x86_64")]
#[tokio::test]
async fn with_a_read_only_grant_files_outside_it_stay_out_of_reach() {
    let dir = scratch("ro");
    let granted = || Sandbox::new(guests::SIMPLEX).dir(dir.join("granted"), "/data");
    let host_environ = format!("/proc/{}/environ", std::process::id());
    for outside in ["/etc/passwd", host_environ.as_str()] {
        assert_refused(&probe(granted(), Probe::Open(outside.into())).await, &[libc::EACCES]);
    }
    let escapee = dir.join("escapee");
    assert_refused(&probe(granted(), Probe::Create(escapee.display().to_string())).await, &[libc::EACCES]);
    assert!(!escapee.exists());
    let inside = dir.join("granted").join("new");
    assert_refused(&probe(granted(), Probe::Create(inside.display().to_string())).await, &[libc::EACCES]);
    assert_refused(&probe(granted(), Probe::MakeDir(inside.display().to_string())).await, &[libc::EACCES]);
    assert!(!inside.exists(), "a read-only grant stays read-only for native code too");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(target_arch = "x86_64")]
#[tokio::test]
async fn a_writable_grant_is_writable_and_nothing_else_is() {
    let dir = scratch("rw");
    let granted = || Sandbox::new(guests::SIMPLEX).dir_writable(dir.join("granted"), "/data");
    let inside = dir.join("granted").join("new");
    let Err(Error::Probed(results)) = probe(granted(), Probe::Create(inside.display().to_string())).await else {
        panic!("expected a probe result")
    };
    assert!(results[0] >= 0, "creating inside a writable grant works: {results:?}");
    assert!(inside.exists());
    let outside = dir.join("outside");
    assert_refused(&probe(granted(), Probe::Create(outside.display().to_string())).await, &[libc::EACCES]);
    assert!(!outside.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `/proc/<pid>/status` of a runner whose guest is blocked reading stdin.
async fn status_of_a_running_runner(sandbox: Sandbox) -> String {
    let (stdin, keep_open) = wasmpipe::pipe().unwrap();
    let mut child = sandbox.stdin(stdin).spawn().unwrap();
    let pid = child.id().unwrap();
    // Once its guest blocks in its first read, the runner is fully hardened.
    wasmpipe_tests::blocked_in(pid, "pipe_read").await;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    drop(keep_open);
    let _ = child.wait().await;
    status
}

fn field<'a>(status: &'a str, name: &str) -> &'a str {
    status.lines().find_map(|line| line.strip_prefix(name)).map(str::trim).unwrap_or_default()
}

#[tokio::test]
async fn the_runner_holds_no_capabilities_even_when_the_host_is_root() {
    let status = status_of_a_running_runner(Sandbox::new(guests::BLOCK_READ)).await;
    for set in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
        assert_eq!(field(&status, set), "0000000000000000", "{set} in\n{status}");
    }
    assert_eq!(field(&status, "NoNewPrivs:"), "1");
}

#[cfg(target_arch = "x86_64")]
#[tokio::test]
async fn a_start_function_runs_behind_both_walls() {
    // A module whose wasm `start` function spins: it runs inside instantiation.
    let module = wat::parse_str(
        r#"(module (func $spin (loop $l (br $l))) (start $spin)
                   (memory (export "memory") 1) (func (export "_start")))"#,
    )
    .unwrap();
    let mut child =
        Sandbox::from_bytes("start.wasm", module).timeout(std::time::Duration::from_secs(3)).spawn().unwrap();
    let pid = child.id().unwrap();
    // The filter must be there while the runner spins in `start` (before 18f88b2 it came only
    // after instantiation, which this module never finishes): look until the timeout nears.
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(2500);
    let status = loop {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        if field(&status, "Seccomp:") == "2" || std::time::Instant::now() > deadline {
            break status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(field(&status, "Seccomp:"), "2", "{status}");
    assert_eq!(field(&status, "NoNewPrivs:"), "1", "{status}");
    // And it did spin in `start` until the timeout.
    assert!(matches!(child.wait().await, Err(Error::Timeout(_))));
}

#[tokio::test]
async fn the_runner_reports_the_landlock_abi_it_enforced() {
    let mut child = Sandbox::new(guests::SIMPLEX).spawn().unwrap();
    assert!(child.wait().await.unwrap().success());
    let abi = child.landlock_abi().expect("a hardened runner reports");
    let kernel = landlock_abi_of_this_kernel();
    assert_eq!(abi > 0, kernel > 0, "runner {abi}, kernel {kernel}");
}

/// `landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)`: the kernel's ABI, or 0.
fn landlock_abi_of_this_kernel() -> i64 {
    // SAFETY: the version query takes no pointers.
    let abi = unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, std::ptr::null::<u8>(), 0usize, 1u32) };
    abi.max(0)
}

// ---------------------------------------------------------------------------------------------
// Grants that would expose the host or the cache are refused.

#[tokio::test]
async fn granting_the_root_or_system_trees_is_refused_unless_explicitly_unsafe() {
    for dangerous in ["/", "/proc", "/dev", "/sys"] {
        let result = Sandbox::new(guests::SIMPLEX).dir(dangerous, "/host").spawn();
        assert!(matches!(result, Err(Error::DirGrant { .. })), "{dangerous}: {result:?}");
    }
    let mut child = Sandbox::new(guests::SIMPLEX).dir("/", "/host").unsafe_allow_dangerous_dirs().spawn().unwrap();
    assert!(child.wait().await.unwrap().success());
}

#[tokio::test]
async fn a_grant_containing_the_cache_is_refused() {
    let dir = scratch("cache-grant");
    let cache = dir.join("granted").join("cache");
    let result = Sandbox::new(guests::SIMPLEX).cache_dir(&cache).dir_writable(dir.join("granted"), "/data").spawn();
    let Err(Error::DirGrant { reason, .. }) = result else { panic!("{result:?}") };
    assert!(reason.contains("cache"), "{reason}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_missing_directory_fails_at_spawn() {
    let result = Sandbox::new(guests::SIMPLEX).dir("/no/such/dir", "/data").spawn();
    assert!(matches!(result, Err(Error::DirGrant { .. })), "{result:?}");
}

// ---------------------------------------------------------------------------------------------
// Every preview1 function works behind the walls (the allowlist was derived from this guest).

#[tokio::test]
async fn every_preview1_function_works_in_a_writable_directory() {
    let dir = scratch("wasi-all");
    let (report, result) = report_of(Sandbox::new(guests::WASI_ALL).dir_writable(dir.join("granted"), "/work")).await;
    assert!(result.as_ref().is_ok_and(|exit| exit.success()), "{result:?}\n{report}");
    assert!(!report.contains("FAIL"), "{report}");
    for function in ["fd_write", "fd_pwrite", "fd_allocate", "fd_advise", "path_symlink", "path_link", "poll_oneoff"] {
        assert!(report.lines().any(|line| line.split_whitespace().nth(1) == Some(function)), "{function}:\n{report}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_sleeping_guest_survives_being_stopped_and_continued() {
    let (rx, tx) = wasmpipe::pipe().unwrap();
    let mut child = Sandbox::new(guests::SLEEP).arg("1500").stdout(tx).spawn().unwrap();
    let raw_pid = child.id().unwrap();
    let pid = rustix::process::Pid::from_raw(raw_pid as i32).unwrap();
    // Stopped in the middle of its sleep, the only way to need `restart_syscall`.
    wasmpipe_tests::blocked_in(raw_pid, "nanosleep").await;
    rustix::process::kill_process(pid, rustix::process::Signal::STOP).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::CONT).unwrap();
    let result = child.wait().await;
    assert!(result.as_ref().is_ok_and(|exit| exit.success()), "{result:?}");
    assert_eq!(rx.open().unwrap().read_line().await.unwrap().as_deref(), Some(&b"slept\n"[..]));
}

#[tokio::test]
async fn a_grant_swapped_for_a_symlink_after_spawn_is_not_followed() {
    let dir = scratch("swap");
    let granted = dir.join("granted");
    std::fs::write(granted.join("file.txt"), b"the checked directory\n").unwrap();
    let elsewhere = dir.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("file.txt"), b"somewhere else\n").unwrap();
    let (rx, tx) = wasmpipe::pipe().unwrap();
    let mut child = Sandbox::new(guests::CAT).dir(&granted, "/data").arg("/data/file.txt").stdout(tx).spawn().unwrap();
    // As soon as spawn returns, someone who controls the parent directory swaps the grant.
    std::fs::rename(&granted, dir.join("moved")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &granted).unwrap();
    let mut out = Vec::new();
    rx.open().unwrap().read_to_end(&mut out).await.unwrap();
    assert!(child.wait().await.unwrap().success());
    assert_eq!(out, b"the checked directory\n");
    std::fs::remove_dir_all(&dir).unwrap();
}
