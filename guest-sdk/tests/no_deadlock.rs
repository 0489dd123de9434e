//! End-to-end check of the flushing rule over real pipes: a child that never flushes
//! explicitly must still answer each request before waiting for the next one.
//!
//! The test binary re-executes itself as the child (selected by an environment variable).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const CHILD_ENV: &str = "WASMPIPE_GUEST_TEST_CHILD";

/// The child: echoes lines prefixed with `reply:`, never flushing explicitly, until EOF.
#[test]
fn child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let (mut rx, mut tx) = wasmpipe_guest::duplex();
    while let Some(line) = rx.read_line().unwrap() {
        tx.write(b"reply:").unwrap();
        tx.write(line.as_bytes()).unwrap();
    }
    std::mem::forget(tx); // prove the final flush comes from `exit`, not from `drop`
    wasmpipe_guest::exit(0);
}

#[test]
fn replies_arrive_before_the_child_blocks_again() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();

    // Forward the child's replies, skipping the test harness's own output (which may share a
    // line with the first reply: libtest prints `test child ... ` without a newline).
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (replies, received) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in stdout.lines() {
            let line = line.unwrap();
            if let Some((_, reply)) = line.split_once("reply:") {
                replies.send(reply.to_owned()).unwrap();
            }
        }
    });

    for request in ["ping", "pong", "last"] {
        writeln!(stdin, "{request}").unwrap();
        stdin.flush().unwrap();
        let reply = received
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no reply to {request:?}: the child did not flush"));
        assert_eq!(reply, request);
    }

    drop(stdin);
    assert!(child.wait().unwrap().success());
    reader.join().unwrap();
}
