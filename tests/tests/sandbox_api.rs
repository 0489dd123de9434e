//! The `Sandbox` builder's conveniences, through real runners.

use wasmpipe::{Error, Sandbox};
use wasmpipe_tests::{children, guests};

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wasmpipe-api-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[tokio::test]
async fn spawn_piped_gives_the_parent_both_ends() {
    let (mut child, mut tx, mut rx) = Sandbox::new(guests::UPPER).spawn_piped().unwrap();
    tx.write_all(b"piped\n").await.unwrap();
    assert_eq!(rx.read_line().await.unwrap().as_deref(), Some(&b"PIPED\n"[..]));
    drop(tx);
    assert_eq!(rx.read_line().await.unwrap(), None);
    assert!(child.wait().await.unwrap().success());
}

#[tokio::test]
async fn a_module_from_bytes_runs_and_is_named_as_given() {
    let bytes = std::fs::read(guests::ARGS_ENV).unwrap();
    let (mut child, tx, mut rx) =
        Sandbox::from_bytes("plugin.wasm", bytes).arg("one").env("GREETING", "hi").spawn_piped().unwrap();
    drop(tx);
    let mut lines = Vec::new();
    while let Some(line) = rx.read_line().await.unwrap() {
        lines.push(String::from_utf8(line).unwrap());
    }
    assert_eq!(lines, ["arg:plugin.wasm\n", "arg:one\n", "env:GREETING=hi\n"]);
    assert!(child.wait().await.unwrap().success());
}

#[tokio::test]
async fn compile_warms_the_cache_and_spawns_use_it() {
    let cache = temp_dir("compile");
    let mut sandbox = Sandbox::new(guests::SIMPLEX).cache_dir(&cache);
    sandbox.compile().await.unwrap();
    let entries: Vec<_> = std::fs::read_dir(&cache).unwrap().collect();
    assert_eq!(entries.len(), 1, "one compiled entry");
    let (rx, tx) = wasmpipe::pipe().unwrap();
    let mut child = sandbox.stdout(tx).spawn().unwrap();
    assert_eq!(rx.open().unwrap().read_line().await.unwrap().as_deref(), Some(&b"hi from the child process\n"[..]));
    assert!(child.wait().await.unwrap().success());
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1, "the spawn reused the entry");
    std::fs::remove_dir_all(&cache).unwrap();
}

#[tokio::test]
async fn compiling_garbage_is_an_invalid_module_and_caches_nothing() {
    let cache = temp_dir("garbage");
    let result = Sandbox::from_bytes("junk.wasm", b"junk".to_vec()).cache_dir(&cache).compile().await;
    assert!(matches!(result, Err(Error::InvalidModule(_))), "{result:?}");
    assert!(!cache.exists() || std::fs::read_dir(&cache).unwrap().count() == 0);
}

#[tokio::test]
async fn no_cache_leaves_the_cache_directory_alone() {
    let cache = temp_dir("nocache");
    let mut child = Sandbox::new(guests::SIMPLEX).cache_dir(&cache).no_cache().spawn().unwrap();
    assert!(child.wait().await.unwrap().success());
    assert!(!cache.exists());
}

#[tokio::test]
async fn a_builder_spawned_twice_uses_up_given_fds_but_keeps_settings() {
    let (rx, tx) = wasmpipe::pipe().unwrap();
    let mut sandbox = Sandbox::new(guests::TRAP).capture_stderr(4096).stdout(tx);
    for _ in 0..2 {
        let mut child = sandbox.spawn().unwrap();
        assert!(matches!(child.wait().await, Err(Error::Trap { .. })));
        let stderr = String::from_utf8_lossy(child.captured_stderr()).into_owned();
        assert!(stderr.contains("guest panicked on purpose"), "captured both times: {stderr}");
    }
    // The pipe's write end went to the first guest only: with both guests gone, EOF.
    let mut out = Vec::new();
    rx.open().unwrap().read_to_end(&mut out).await.unwrap();
    assert!(out.is_empty());
}

#[test]
fn spawn_outside_a_tokio_runtime_fails_before_anything_starts() {
    // In a process of its own, where no other test starts runners meanwhile.
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "spawn_outside_a_runtime_in_isolation", "--include-ignored", "--test-threads=1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Run by the test above, alone in its process.
#[test]
#[ignore = "run in its own process by spawn_outside_a_tokio_runtime_fails_before_anything_starts"]
fn spawn_outside_a_runtime_in_isolation() {
    let result = Sandbox::new(guests::SIMPLEX).spawn();
    let Err(Error::Spawn(message)) = result else { panic!("{result:?}") };
    assert!(message.contains("tokio runtime"), "{message}");
    assert_eq!(children(), Vec::<u32>::new(), "no runner was started: none runs, none is a zombie");
}

#[tokio::test]
async fn try_wait_reports_nothing_while_running_then_the_end_and_id_goes_away() {
    let (mut child, tx, mut rx) = Sandbox::new(guests::BLOCK_READ).spawn_piped().unwrap();
    assert!(child.id().is_some());
    assert!(child.try_wait().unwrap().is_none(), "blocked reading stdin");
    drop(tx);
    assert_eq!(rx.read_line().await.unwrap().as_deref(), Some(&b"eof\n"[..]));
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert!(exit.success());
    assert_eq!(child.id(), None, "reaped: the pid may belong to another process now");
    assert!(child.wait().await.unwrap().success(), "wait agrees");
    assert!(child.usage().is_some());
}

#[tokio::test]
async fn a_kill_handle_cancels_a_guest_another_task_is_waiting_for() {
    let (stdin, _keep_open) = wasmpipe::pipe().unwrap();
    let mut child = Sandbox::new(guests::BLOCK_READ).stdin(stdin).spawn().unwrap();
    let killer = child.kill_handle();
    let pid = child.id().unwrap();
    let waiter = tokio::spawn(async move { child.wait().await });
    // The guest is blocked reading, and the waiter is waiting, when the kill comes.
    wasmpipe_tests::blocked_in(pid, "pipe_read").await;
    killer.clone().kill().unwrap();
    let ended = waiter.await.unwrap();
    assert!(matches!(ended, Err(Error::Killed(libc::SIGKILL))), "{ended:?}");
    killer.kill().unwrap(); // Once reaped, killing again is a no-op.
}

#[tokio::test]
async fn a_grant_that_is_not_a_directory_fails_at_spawn_naming_the_path() {
    let file = temp_dir("not-a-dir");
    std::fs::write(&file, b"a file").unwrap();
    let result = Sandbox::new(guests::SIMPLEX).dir(&file, "/data").spawn();
    let Err(error @ Error::DirGrant { .. }) = result else { panic!("{result:?}") };
    assert!(error.to_string().contains(&*file.to_string_lossy()), "{error}");
    std::fs::remove_file(&file).unwrap();
}

#[tokio::test]
async fn a_trap_message_is_the_one_line_cause_and_the_backtrace_is_apart() {
    let result = Sandbox::new(guests::TRAP).capture_stderr(4096).spawn().unwrap().wait().await;
    let Err(Error::Trap { message, wasm_backtrace }) = result else { panic!("{result:?}") };
    assert!(!message.contains('\n'), "{message}");
    assert!(message.contains("unreachable"), "{message}");
    assert!(wasm_backtrace.is_some_and(|trace| !trace.contains(&message)));
}

// ---------------------------------------------------------------------------------------------
// usage

/// A command module whose `_start` runs `body`.
fn module(declarations: &str, body: &str) -> Vec<u8> {
    wat::parse_str(format!(r#"(module {declarations} (func (export "_start") {body}))"#)).unwrap()
}

#[tokio::test]
async fn usage_reports_the_peak_of_linear_memory() {
    // 10 pages at start, grown by 5: 15 pages of 64 KiB at the peak.
    let bytes = module(r#"(memory (export "memory") 10)"#, "i32.const 5 memory.grow drop");
    let mut child = Sandbox::from_bytes("grow.wasm", bytes).spawn().unwrap();
    assert!(child.wait().await.unwrap().success());
    assert_eq!(child.usage().unwrap().peak_memory, Some(15 * 65536));
}

#[tokio::test]
async fn usage_reports_fuel_consumed() {
    let fuel_for = |pairs: usize| {
        let bytes = module("", &"i32.const 1 drop ".repeat(pairs));
        async move {
            let mut child = Sandbox::from_bytes("fuel.wasm", bytes).fuel(1_000_000).spawn().unwrap();
            assert!(child.wait().await.unwrap().success());
            child.usage().unwrap().fuel_consumed.unwrap()
        }
    };
    let (small, large) = (fuel_for(100).await, fuel_for(200).await);
    assert_eq!(large - small, 100, "one unit per i32.const: {small} vs {large}");
    let mut child = Sandbox::new(guests::SIMPLEX).spawn().unwrap();
    child.wait().await.unwrap();
    assert_eq!(child.usage().unwrap().fuel_consumed, None, "no budget, no count");
}

#[tokio::test]
async fn usage_reports_wall_and_cpu_time_even_on_failure() {
    let limit = std::time::Duration::from_millis(800);
    let mut child = Sandbox::new(guests::SPIN).timeout(limit).spawn().unwrap();
    assert!(matches!(child.wait().await, Err(Error::Timeout(_))));
    let usage = child.usage().unwrap();
    assert!(usage.wall_time >= limit, "{usage:?}");
    // It spun the whole time: at least an eighth of a CPU even with other tests on both cores
    // (wait4's rusage, not a guess), and never more than the wall time on one thread.
    assert!(usage.cpu_user >= limit / 8, "{usage:?}");
    assert!(usage.cpu_user <= usage.wall_time * 2, "{usage:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefer_fork_in_a_process_with_threads_execs_the_runner_instead() {
    let (mut child, mut tx, mut rx) = Sandbox::new(guests::UPPER).prefer_fork().spawn_piped().unwrap();
    tx.write_all(b"forked?\n").await.unwrap();
    assert_eq!(rx.read_line().await.unwrap().as_deref(), Some(&b"FORKED?\n"[..]));
    // A fork of this multi-threaded process would be unsound: the runner was exec'd, so its
    // name comes from /proc/self/exe rather than the name a forked runner gives itself.
    let pid = child.id().unwrap();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim_end(), "exe");
    drop(tx);
    assert!(child.wait().await.unwrap().success());
}

// ---------------------------------------------------------------------------------------------
// a guest in C

#[tokio::test]
async fn a_c_guest_built_with_wasi_libc_filters_lines_and_logs_to_stderr() {
    let (mut child, mut tx, mut rx) = Sandbox::new(guests::C_UPPER).capture_stderr(4096).spawn_piped().unwrap();
    // One line at a time: each reply comes before the next request, so the guest flushes.
    for line in ["hello from c\n", "ünïcode stays, ascii goes UP\n"] {
        tx.write_all(line.as_bytes()).await.unwrap();
        let reply = rx.read_line().await.unwrap().unwrap();
        assert_eq!(String::from_utf8(reply).unwrap(), line.to_ascii_uppercase());
    }
    // A line longer than any fixed buffer, and a last line without a newline.
    let long = "x".repeat(100_000);
    tx.write_all(format!("{long}\nend").as_bytes()).await.unwrap();
    drop(tx);
    assert_eq!(rx.read_line().await.unwrap().unwrap(), format!("{}\n", long.to_uppercase()).into_bytes());
    assert_eq!(rx.read_line().await.unwrap().as_deref(), Some(&b"END"[..]));
    assert_eq!(rx.read_line().await.unwrap(), None);
    assert!(child.wait().await.unwrap().success());
    assert_eq!(String::from_utf8_lossy(child.captured_stderr()), "c-upper: 4 lines\n");
}

#[tokio::test]
async fn a_pool_of_c_guests_answers_in_order() {
    let pool = wasmpipe::Pool::new(|| Sandbox::new(guests::C_UPPER), 2);
    let replies = pool.map((0..20).map(|i| format!("c line {i}").into_bytes())).await;
    let replies: Vec<String> = replies.into_iter().map(|reply| String::from_utf8(reply.unwrap()).unwrap()).collect();
    assert_eq!(replies, (0..20).map(|i| format!("C LINE {i}\n")).collect::<Vec<_>>());
    pool.shutdown().await;
}
