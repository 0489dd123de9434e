//! The runner holds only the guest's stdio and its control socket.

use wasmpipe::Sandbox;
use wasmpipe_tests::{guests, open_fds};

#[tokio::test]
async fn the_runner_holds_only_fds_0_to_3_while_the_guest_runs() {
    // An fd the parent opened without CLOEXEC must not reach the runner either.
    let leaky = std::fs::File::open("/dev/null").unwrap();
    // SAFETY: clearing FD_CLOEXEC on an fd we own.
    unsafe { libc_clear_cloexec(std::os::fd::AsRawFd::as_raw_fd(&leaky)) };

    let (mainpipe, chpipe) = wasmpipe::duplex().unwrap();
    let mut child = Sandbox::new(guests::DUPLEX).duplex(chpipe).spawn().unwrap();
    let (mut rx, mut tx) = mainpipe.open().unwrap();
    let mut hello = [0u8; 5];
    // The guest wrote "hello" and now blocks reading stdin: it is running, hardened.
    rx.read_exact(&mut hello).await.unwrap();
    let fds = open_fds(child.id().unwrap());
    assert_eq!(fds.into_iter().collect::<Vec<_>>(), vec![0, 1, 2, 3]);

    tx.write_all(b"bye\n").await.unwrap();
    assert_eq!(rx.read_line().await.unwrap().as_deref(), Some(&b"BYE\n"[..]));
    assert!(child.wait().await.unwrap().success());
    drop(leaky);
}

unsafe fn libc_clear_cloexec(fd: i32) {
    // SAFETY: forwarded.
    unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
}
