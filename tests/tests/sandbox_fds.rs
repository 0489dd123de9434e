//! The runner holds only the guest's stdio and its control socket.

use wasmpipe::Sandbox;
use wasmpipe_tests::{guests, open_fds};

#[tokio::test]
async fn the_runner_holds_only_fds_0_to_3_while_the_guest_runs() {
    // An fd the parent opened without CLOEXEC must not reach the runner either.
    let leaky = std::fs::File::open("/dev/null").unwrap();
    // SAFETY: clearing FD_CLOEXEC on an fd we own.
    unsafe { libc_clear_cloexec(std::os::fd::AsRawFd::as_raw_fd(&leaky)) };

    // From the cache: the runner maps the artifact from a memfd the parent passes, and must
    // close that too.
    Sandbox::new(guests::DUPLEX).compile().await.unwrap();
    let (mainpipe, chpipe) = wasmpipe::duplex().unwrap();
    let mut child = Sandbox::new(guests::DUPLEX).duplex(chpipe).spawn().unwrap();
    assert!(
        matches!(child.cache_outcome(), Some(wasmpipe::CacheOutcome::AlreadyCached(_))),
        "{:?}",
        child.cache_outcome()
    );
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

// ---------------------------------------------------------------------------------------------
// The two stdio paths: without a grant the runner serves fds 0-2 itself (the fast path), with
// one wasmtime-wasi does. A guest must not be able to tell which.

/// What a run of the `stdio_calls` guest showed: its stdout, its stderr (the report), and how
/// it ended.
async fn stdio_calls(case: &str, grant: Option<&std::path::Path>) -> (String, String, String) {
    let mut sandbox = Sandbox::new(guests::STDIO_CALLS).arg(case).capture_stderr(1 << 16);
    if let Some(dir) = grant {
        sandbox = sandbox.dir(dir, "/granted");
    }
    let (mut child, mut tx, mut rx) = sandbox.spawn_piped().unwrap();
    // The guest may close its stdin before reading: a failed write is part of the scenario.
    let _ = tx.write_all(b"stdin-data\n").await;
    drop(tx);
    let mut out = Vec::new();
    rx.read_to_end(&mut out).await.unwrap();
    let ended = match child.wait().await {
        Ok(exit) => format!("exit {}", exit.code()),
        Err(wasmpipe::Error::Trap { message, .. }) => format!("trap: {message}"),
        Err(other) => format!("{other:?}"),
    };
    let err = String::from_utf8_lossy(child.captured_stderr()).into_owned();
    (String::from_utf8_lossy(&out).into_owned(), err, ended)
}

#[tokio::test]
async fn every_stdio_call_gives_the_same_result_with_and_without_a_grant() {
    let dir = std::env::temp_dir().join(format!("wasmpipe-stdio-calls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        "calls",
        "close",
        "renumber",
        "renumber-stdin",
        "write-misaligned-iovecs",
        "write-misaligned-iovecs-bad-fd",
        "write-out-of-bounds-iovecs",
        "write-out-of-bounds-buffer",
        "write-buffer-past-the-end",
        "write-misaligned-result",
        "write-out-of-bounds-result",
        "read-misaligned-iovecs",
        "read-out-of-bounds-buffer",
        "read-misaligned-result",
    ];
    let mut differences = Vec::new();
    let mut results = std::collections::BTreeMap::new();
    for case in cases {
        let fast = stdio_calls(case, None).await;
        let wasi = stdio_calls(case, Some(&dir)).await;
        if fast != wasi {
            differences.push(format!("{case}:\n  without a grant: {fast:?}\n  with a grant:    {wasi:?}"));
        }
        results.insert(case, wasi);
    }
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(differences.is_empty(), "the stdio paths differ:\n{}", differences.join("\n"));

    // And the shared behaviour is preview1's: bad pointers trap, only the first non-empty
    // buffer is written, and a closed fd is gone for every call.
    let (_, _, ended) = &results["write-misaligned-iovecs"];
    assert!(ended.starts_with("trap: ") && ended.contains("not aligned"), "{ended}");
    let (_, _, ended) = &results["write-out-of-bounds-buffer"];
    assert!(ended.starts_with("trap: "), "{ended}");
    let (out, report, ended) = &results["calls"];
    assert_eq!(ended, "exit 0");
    assert!(out.starts_with("hello\nbc\nc\n"), "{out:?}");
    assert!(report.contains("write two buffers: 0 1\n"), "{report}");
    let (_, report, _) = &results["close"];
    assert!(report.contains("close 1: 0 \nwrite 1: 8 \nfdstat 1: 8 \n"), "{report}");
}
