//! Ports of aiopipe's own test suite (`tests/test_aiopipe.py`), plus its PR #3 regression.
//!
//! These tests look at this process's fd table, so they run in one `#[test]`, one after the
//! other: parallel tests would open and close fds underneath each other.

use std::os::fd::AsRawFd;
use wasmpipe::Sandbox;
use wasmpipe_tests::{guests, is_open, own_open_fds};

#[test]
fn aiopipe_suite() {
    unused_ends_are_closed();
    opening_and_closing_both_ends_in_one_process_is_fine();
    all_fds_are_closed_after_the_runtime_ends();
    simplex_closes_the_handed_end_in_the_parent();
    duplex_exchanges_bytes_both_ways();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// aiopipe `test_unused_ends`: dropping unopened ends closes their fds.
fn unused_ends_are_closed() {
    let (rx, tx) = wasmpipe::pipe().unwrap();
    let fds = [rx.as_raw_fd(), tx.as_raw_fd()];
    assert!(fds.iter().all(|&fd| is_open(fd)));
    drop((rx, tx));
    assert!(fds.iter().all(|&fd| !is_open(fd)), "dropped ends must close their fds");

    let (a, b) = wasmpipe::duplex().unwrap();
    let (a_rx, a_tx) = a.into_parts();
    let (b_rx, b_tx) = b.into_parts();
    let fds = [a_rx.as_raw_fd(), a_tx.as_raw_fd(), b_rx.as_raw_fd(), b_tx.as_raw_fd()];
    drop((a_rx, a_tx, b_rx, b_tx));
    assert!(fds.iter().all(|&fd| !is_open(fd)));
}

/// aiopipe `test_open_close`: opening both ends in one process and closing them raises nothing,
/// and closing is idempotent (a shut-down writer can be shut down again).
fn opening_and_closing_both_ends_in_one_process_is_fine() {
    runtime().block_on(async {
        let (rx, tx) = wasmpipe::pipe().unwrap();
        let (rx, mut tx) = (rx.open().unwrap(), tx.open().unwrap());
        tx.shutdown().await.unwrap();
        tx.shutdown().await.unwrap();
        assert_eq!(tx.write_all(b"x").await.unwrap_err().kind(), std::io::ErrorKind::BrokenPipe);
        rx.close();
    });
}

/// aiopipe `test_fds_closed` (and PR #3): after a whole exchange with a child and the runtime's
/// end, this process holds exactly the fds it held before — none leaked, none closed twice.
fn all_fds_are_closed_after_the_runtime_ends() {
    let before = own_open_fds();
    runtime().block_on(async {
        let (mainpipe, chpipe) = wasmpipe::duplex().unwrap();
        let mut child = Sandbox::new(guests::ECHO).duplex(chpipe).spawn().unwrap();
        let (mut rx, mut tx) = mainpipe.open().unwrap();
        tx.write_all(b"ping\n").await.unwrap();
        assert_eq!(rx.read_line().await.unwrap().as_deref(), Some(&b"ping\n"[..]));
        drop(tx);
        assert_eq!(rx.read_line().await.unwrap(), None);
        assert!(child.wait().await.unwrap().success());
    });
    assert_eq!(own_open_fds(), before);
}

/// aiopipe `test_simplex`: the parent's copy of the handed end is closed right after the
/// handoff, the child writes, the child exits 0.
fn simplex_closes_the_handed_end_in_the_parent() {
    runtime().block_on(async {
        let (rx, tx) = wasmpipe::pipe().unwrap();
        let pipe = fd_target(tx.as_raw_fd());
        let kept = rx.as_raw_fd();
        let mut child = Sandbox::new(guests::SIMPLEX).stdout(tx).spawn().unwrap();
        // The fd number may have been reused since; what must be gone is any fd on this pipe
        // other than the read end we keep.
        let still_held = own_open_fds().into_iter().any(|fd| fd != kept && fd_target(fd) == pipe);
        assert!(!still_held, "the parent must not keep the end it handed over");
        let mut rx = rx.open().unwrap();
        let mut all = Vec::new();
        // Reaching EOF at all proves it too: a copy of the write end here would keep it open.
        rx.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"hi from the child process\n");
        assert_eq!(child.wait().await.unwrap().code(), 0);
    });
}

/// What fd `fd` refers to, e.g. `pipe:[1234]`.
fn fd_target(fd: i32) -> Option<std::path::PathBuf> {
    std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()
}

/// aiopipe `test_duplex`: the parent writes `abc`, the child reads exactly 3 bytes and replies
/// with them plus `def`.
fn duplex_exchanges_bytes_both_ways() {
    runtime().block_on(async {
        let (mainpipe, chpipe) = wasmpipe::duplex().unwrap();
        let mut child = Sandbox::new(guests::ABCDEF).duplex(chpipe).spawn().unwrap();
        let (mut rx, mut tx) = mainpipe.open().unwrap();
        tx.write_all(b"abc").await.unwrap();
        let mut reply = [0u8; 6];
        rx.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"abcdef");
        assert_eq!(child.wait().await.unwrap().code(), 0);
    });
}
