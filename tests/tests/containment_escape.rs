//! A guest probing its prison finds every door shut; the runner's second wall holds.

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
        matches!(&result, Err(Error::ForbiddenSyscall { number, name: Some(name) }) if *number == libc::SYS_socket && name == "socket"),
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

/// Runs the `wasi_tour` guest and returns its report and result.
async fn wasi_tour(sandbox: Sandbox) -> (String, wasmpipe::Result<wasmpipe::GuestExit>) {
    let (rx, tx) = wasmpipe::pipe().unwrap();
    let mut child = sandbox.stdout(tx).spawn().unwrap();
    let mut out = Vec::new();
    rx.open().unwrap().read_to_end(&mut out).await.unwrap();
    (String::from_utf8(out).unwrap(), child.wait().await)
}

#[tokio::test]
async fn the_hardened_runner_allows_clocks_sleep_and_randomness() {
    let (report, result) = wasi_tour(Sandbox::new(guests::WASI_TOUR)).await;
    assert!(result.as_ref().is_ok_and(|exit| exit.success()), "{result:?}\n{report}");
    assert_eq!(report, "ok clock\nok sleep\nok random\n");
}

#[tokio::test]
async fn the_hardened_runner_allows_file_work_in_a_writable_directory() {
    let dir = std::env::temp_dir().join(format!("wasmpipe-tour-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("input.txt"), b"input\n").unwrap();
    let (report, result) = wasi_tour(Sandbox::new(guests::WASI_TOUR).dir_writable(&dir, "/data").arg("--dir")).await;
    assert!(result.as_ref().is_ok_and(|exit| exit.success()), "{result:?}\n{report}");
    assert_eq!(report, "ok clock\nok sleep\nok random\nok list\nok read\nok create\nok rename\nok mkdir\nok remove\n");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_read_only_directory_refuses_writes() {
    let dir = std::env::temp_dir().join(format!("wasmpipe-tour-ro-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("input.txt"), b"input\n").unwrap();
    let (report, result) = wasi_tour(Sandbox::new(guests::WASI_TOUR).dir(&dir, "/data").arg("--dir")).await;
    assert_eq!(result.unwrap().code(), 1, "{report}");
    assert!(report.contains("ok list\nok read\nfailed create"), "{report}");
    assert!(!dir.join("created.txt").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
