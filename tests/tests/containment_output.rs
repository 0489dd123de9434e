//! Guests that flood the host: memory stays bounded, nothing is lost.

use std::time::Duration;
use tokio::io::AsyncReadExt;
use wasmpipe::{Error, Sandbox};
use wasmpipe_tests::guests;

/// A memory figure of this process from `/proc/self/status` (`VmRSS`, `VmHWM`), in bytes.
fn memory(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|line| line.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

fn rss() -> u64 {
    memory("VmRSS:")
}

#[tokio::test]
async fn a_flooding_guest_with_a_slow_reader_leaves_host_memory_flat() {
    let (rx, tx) = wasmpipe::pipe().unwrap();
    let mut child = Sandbox::new(guests::FLOOD).stdout(tx).spawn().unwrap();
    let mut rx = rx.open().unwrap();
    let before = rss();
    let mut chunk = vec![0u8; 4096];
    let mut total = 0usize;
    // A reader much slower than the guest: small reads, with a pause every 256 KiB.
    while total < 64 << 20 {
        total += rx.read(&mut chunk).await.unwrap();
        if total % (256 << 10) < 4096 {
            tokio::task::yield_now().await;
        }
    }
    let grown = rss().saturating_sub(before);
    eprintln!(
        "flood: read {} MiB, host RSS grew by {} KiB, host peak RSS {} MiB",
        total >> 20,
        grown >> 10,
        memory("VmHWM:") >> 20
    );
    assert!(grown < 16 << 20, "host RSS grew by {grown} bytes while reading a flood");
    child.kill().unwrap();
    assert!(matches!(child.wait().await, Err(Error::Killed(9))));
}

#[tokio::test]
async fn an_endless_line_is_line_too_long_not_unbounded_buffering() {
    let (rx, tx) = wasmpipe::pipe().unwrap();
    let mut child = Sandbox::new(guests::ENDLESS_LINE).stdout(tx).spawn().unwrap();
    let mut rx = rx.open().unwrap();
    rx.set_max_line_length(1 << 20);
    let result = rx.read_line().await;
    assert!(matches!(result, Err(Error::LineTooLong { limit }) if limit == 1 << 20), "{result:?}");
    child.kill().unwrap();
    assert!(matches!(child.wait().await, Err(Error::Killed(9))));
}

#[tokio::test]
async fn a_long_line_is_skipped_and_the_next_one_is_intact() {
    let (mainpipe, chpipe) = wasmpipe::duplex().unwrap();
    let mut child = Sandbox::new(guests::ECHO).duplex(chpipe).spawn().unwrap();
    let (mut rx, mut tx) = mainpipe.open().unwrap();
    rx.set_max_line_length(1000);
    let long = [vec![b'x'; 5000], b"\n".to_vec()].concat();
    tx.write_all(&[&b"short\n"[..], &long, b"after\n"].concat()).await.unwrap();
    drop(tx);
    assert_eq!(rx.read_line().await.unwrap().as_deref(), Some(&b"short\n"[..]));
    assert!(matches!(rx.read_line().await, Err(Error::LineTooLong { limit: 1000 })));
    assert_eq!(rx.read_line().await.unwrap().as_deref(), Some(&b"after\n"[..]));
    assert_eq!(rx.read_line().await.unwrap(), None);
    assert!(child.wait().await.unwrap().success());
}

#[tokio::test]
async fn captured_stderr_keeps_a_bounded_tail() {
    let mut child =
        Sandbox::new(guests::STDERR_FLOOD).capture_stderr(64 * 1024).timeout(Duration::from_secs(60)).spawn().unwrap();
    assert!(child.wait().await.unwrap().success());
    let tail = child.captured_stderr();
    assert_eq!(tail.len(), 64 * 1024);
    assert!(tail.ends_with(b"\n"));
}
