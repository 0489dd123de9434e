//! End of file travels both ways, and a vanished reader is an error, not a signal.

use std::io::ErrorKind;
use wasmpipe::Sandbox;
use wasmpipe_tests::guests;

#[tokio::test]
async fn eof_reaches_the_guest_and_comes_back() {
    let (mainpipe, chpipe) = wasmpipe::duplex().unwrap();
    let mut child = Sandbox::new(guests::ECHO).duplex(chpipe).spawn().unwrap();
    let (mut rx, mut tx) = mainpipe.open().unwrap();
    for i in 0..100 {
        tx.write_all(format!("line {i}\n").as_bytes()).await.unwrap();
    }
    // Closing our writer is the guest's EOF; its exit is our EOF.
    tx.shutdown().await.unwrap();
    for i in 0..100 {
        assert_eq!(rx.read_line().await.unwrap(), Some(format!("line {i}\n").into_bytes()));
    }
    assert_eq!(rx.read_line().await.unwrap(), None);
    assert!(child.wait().await.unwrap().success());
}

#[tokio::test]
async fn the_last_line_without_a_newline_is_not_lost() {
    let (mainpipe, chpipe) = wasmpipe::duplex().unwrap();
    let mut child = Sandbox::new(guests::UPPER).duplex(chpipe).spawn().unwrap();
    let (mut rx, mut tx) = mainpipe.open().unwrap();
    tx.write_all(b"first\nno newline").await.unwrap();
    drop(tx);
    assert_eq!(rx.read_line().await.unwrap().as_deref(), Some(&b"FIRST\n"[..]));
    assert_eq!(rx.read_line().await.unwrap().as_deref(), Some(&b"NO NEWLINE"[..]));
    assert_eq!(rx.read_line().await.unwrap(), None);
    assert!(child.wait().await.unwrap().success());
}

#[tokio::test]
async fn a_guest_that_exits_early_gives_the_writer_broken_pipe() {
    let (mainpipe, chpipe) = wasmpipe::duplex().unwrap();
    let mut child = Sandbox::new(guests::EXIT_EARLY).duplex(chpipe).spawn().unwrap();
    let (mut rx, mut tx) = mainpipe.open().unwrap();
    assert_eq!(rx.read_line().await.unwrap().as_deref(), Some(&b"bye\n"[..]));
    assert!(child.wait().await.unwrap().success());
    // The guest is gone: writing must fail with BrokenPipe, and this process must live on
    // (were SIGPIPE not ignored, the test binary would die here).
    let chunk = vec![b'x'; 64 * 1024];
    let error = loop {
        if let Err(error) = tx.write_all(&chunk).await {
            break error;
        }
    };
    assert_eq!(error.kind(), ErrorKind::BrokenPipe);
}

#[tokio::test]
async fn a_guest_closing_its_stdout_is_eof_for_the_parent_while_it_runs_on() {
    let (mainpipe, chpipe) = wasmpipe::duplex().unwrap();
    let mut child = Sandbox::new(guests::CLOSE_STDOUT).duplex(chpipe).spawn().unwrap();
    let (mut rx, tx) = mainpipe.open().unwrap();
    assert_eq!(rx.read_line().await.unwrap().as_deref(), Some(&b"done\n"[..]));
    // The guest is still running (it waits for our EOF), yet its output has ended.
    assert_eq!(rx.read_line().await.unwrap(), None);
    drop(tx);
    assert!(child.wait().await.unwrap().success());
}

#[tokio::test]
async fn a_guest_closing_its_stdout_is_eof_for_the_parent_with_a_directory_granted_too() {
    // With a grant, wasmtime-wasi serves the guest's fds; closing stdout must still reach the
    // parent as EOF while the guest runs on, as without one (the test above).
    let dir = std::env::temp_dir().join(format!("wasmpipe-eof-grant-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (mainpipe, chpipe) = wasmpipe::duplex().unwrap();
    // The timeout turns a missing EOF into a failure instead of a hang.
    let mut child = Sandbox::new(guests::CLOSE_STDOUT)
        .dir(&dir, "/data")
        .timeout(std::time::Duration::from_secs(10))
        .duplex(chpipe)
        .spawn()
        .unwrap();
    let (mut rx, tx) = mainpipe.open().unwrap();
    assert_eq!(rx.read_line().await.unwrap().as_deref(), Some(&b"done\n"[..]));
    assert_eq!(rx.read_line().await.unwrap(), None);
    drop(tx);
    assert!(child.wait().await.unwrap().success());
    std::fs::remove_dir_all(&dir).unwrap();
}
