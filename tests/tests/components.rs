//! WASI 0.2 command components (`wasm32-wasip2`) next to preview1 modules (`wasm32-wasip1`): the
//! same guest sources built both ways, run through real runners over real pipes, with the same
//! assertions on both kinds.

use std::time::{Duration, Instant};
use wasmpipe::{CacheOutcome, Error, Pool, Sandbox, Zygote};
use wasmpipe_tests::guests;

/// A guest source as a preview1 module and as a component: (kind, path).
fn both(p1: &'static str, p2: &'static str) -> [(&'static str, &'static str); 2] {
    [("p1", p1), ("p2", p2)]
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wasmpipe-components-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Everything the guest writes to stdout, and how it ended.
async fn run_to_end(mut sandbox: Sandbox) -> (String, wasmpipe::Result<wasmpipe::GuestExit>) {
    let (mut child, tx, mut rx) = sandbox.spawn_piped().unwrap();
    drop(tx);
    let mut out = Vec::new();
    rx.read_to_end(&mut out).await.unwrap();
    (String::from_utf8(out).unwrap(), child.wait().await)
}

#[test]
fn the_component_guests_really_are_components_and_the_others_modules() {
    let component = std::fs::read(guests::P2_ECHO).unwrap();
    let module = std::fs::read(guests::ECHO).unwrap();
    // The layer field of the header: 1 for a component, 0 for a core module.
    assert_eq!(&component[..8], b"\0asm\x0d\0\x01\0");
    assert_eq!(&module[..8], b"\0asm\x01\0\0\0");
}

#[tokio::test]
async fn stdin_and_stdout_are_the_pipes_for_both_kinds() {
    for (kind, path) in both(guests::ECHO, guests::P2_ECHO) {
        let (mut child, mut tx, mut rx) = Sandbox::new(path).spawn_piped().unwrap();
        // A request and its reply, then another: the guest answers while its stdin stays open.
        tx.write_all(b"first line\n").await.unwrap();
        assert_eq!(rx.read_line().await.unwrap().as_deref(), Some(&b"first line\n"[..]), "{kind}");
        tx.write_all(b"second \xff binary\n").await.unwrap();
        assert_eq!(rx.read_line().await.unwrap().as_deref(), Some(&b"second \xff binary\n"[..]), "{kind}");
        drop(tx);
        assert_eq!(rx.read_line().await.unwrap(), None, "{kind}: EOF after stdin closed");
        let exit = child.wait().await.unwrap();
        assert!(exit.success(), "{kind}: {exit:?}");
    }
}

#[tokio::test]
async fn args_and_env_reach_both_kinds() {
    for (kind, path) in both(guests::ARGS_ENV, guests::P2_ARGS_ENV) {
        let bytes = std::fs::read(path).unwrap();
        let sandbox = Sandbox::from_bytes("plugin.wasm", bytes).arg("one").arg("two words").env("GREETING", "hi");
        let (out, exit) = run_to_end(sandbox).await;
        assert_eq!(out, "arg:plugin.wasm\narg:one\narg:two words\nenv:GREETING=hi\n", "{kind}");
        assert!(exit.unwrap().success(), "{kind}");
    }
}

#[tokio::test]
async fn granted_directories_are_the_same_for_both_kinds() {
    let dir = temp_dir("dirs");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("data/file.txt"), "granted contents\n").unwrap();
    std::fs::write(dir.join("secret.txt"), "not granted\n").unwrap();
    for (kind, cat, write_file) in
        [("p1", guests::CAT, guests::WRITE_FILE), ("p2", guests::P2_CAT, guests::P2_WRITE_FILE)]
    {
        let (out, exit) = run_to_end(Sandbox::new(cat).dir(dir.join("data"), "/data").arg("/data/file.txt")).await;
        assert_eq!(out, "granted contents\n", "{kind}");
        assert!(exit.unwrap().success(), "{kind}");

        // Outside the grant (by absolute path or through `..`), nothing is readable.
        for path in ["/data/../secret.txt", "/secret.txt", dir.join("secret.txt").to_str().unwrap()] {
            let sandbox = Sandbox::new(cat).dir(dir.join("data"), "/data").arg(path).capture_stderr(4096);
            let (out, exit) = run_to_end(sandbox).await;
            assert_eq!(out, "", "{kind}: {path}");
            assert_eq!(exit.unwrap().code(), 1, "{kind}: {path}");
        }

        // `dir` is read-only, `dir_writable` is not.
        let target = format!("/data/{kind}.txt");
        let read_only = Sandbox::new(write_file).dir(dir.join("data"), "/data").arg(&target).capture_stderr(4096);
        assert_eq!(run_to_end(read_only).await.1.unwrap().code(), 1, "{kind}: wrote to a read-only grant");
        assert!(!dir.join(format!("data/{kind}.txt")).exists(), "{kind}");
        let writable = Sandbox::new(write_file).dir_writable(dir.join("data"), "/data").arg(&target);
        assert!(run_to_end(writable).await.1.unwrap().success(), "{kind}");
        assert_eq!(std::fs::read_to_string(dir.join(format!("data/{kind}.txt"))).unwrap(), "written by write_file\n");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn exit_codes_follow_the_same_contract() {
    for (kind, path) in both(guests::EXIT_CODE, guests::P2_EXIT_CODE) {
        for code in [0, 1, 3] {
            let (out, exit) = run_to_end(Sandbox::new(path).arg(code.to_string())).await;
            assert_eq!(out, format!("exiting with {code}\n"), "{kind}");
            // Rust's std for wasm32-wasip2 (through wasi-libc) exits through WASI 0.2's `exit`,
            // which says only ok or err: `std::process::exit(3)` is 1 there, as in `wasmtime run`.
            let expected = if kind == "p2" { i32::from(code != 0) } else { code };
            assert_eq!(exit.unwrap().code(), expected, "{kind}: exit({code})");
        }
    }
}

#[tokio::test]
async fn a_component_calling_exit_with_code_exits_with_that_code() {
    // A hand-written command whose `run` calls `wasi:cli/exit.exit-with-code(3)` (WASI 0.2.12),
    // the one way a component states a code other than 0 or 1.
    let component = wat::parse_str(
        r#"(component
            (import "wasi:cli/exit@0.2.12" (instance $exit
                (export "exit-with-code" (func (param "status-code" u8)))))
            (core func $exit_with_code (canon lower (func $exit "exit-with-code")))
            (core module $m
                (import "wasi" "exit-with-code" (func $exit_with_code (param i32)))
                (func (export "run") (result i32) (call $exit_with_code (i32.const 3)) unreachable))
            (core instance $i (instantiate $m
                (with "wasi" (instance (export "exit-with-code" (func $exit_with_code))))))
            (func $run (result (result)) (canon lift (core func $i "run")))
            (instance $run_instance (export "run" (func $run)))
            (export "wasi:cli/run@0.2.0" (instance $run_instance)))"#,
    )
    .unwrap();
    let exit = Sandbox::from_bytes("exit3.wasm", component).no_cache().spawn().unwrap().wait().await.unwrap();
    assert_eq!(exit.code(), 3);
}

#[tokio::test]
async fn a_component_whose_run_returns_err_exits_1() {
    // `echo` writing to a stdout nobody reads fails (EPIPE), and its `main` returns `Err`: for a
    // component that ends in `wasi:cli/run` returning `err` (or `exit(err)`), for a module in
    // `proc_exit(1)`; 1 both ways.
    for (kind, path) in both(guests::ECHO, guests::P2_ECHO) {
        let (stdout_rx, stdout_tx) = wasmpipe::pipe().unwrap();
        drop(stdout_rx);
        let (mut child, mut tx, _) = Sandbox::new(path).stdout(stdout_tx).capture_stderr(4096).spawn_piped().unwrap();
        tx.write_all(b"nobody reads this\n").await.unwrap();
        drop(tx);
        let exit = child.wait().await.unwrap();
        assert_eq!(exit.code(), 1, "{kind}: {exit:?}");
    }
}

#[tokio::test]
async fn a_trap_is_a_trap_for_both_kinds() {
    for (kind, path) in both(guests::TRAP, guests::P2_TRAP) {
        let mut child = Sandbox::new(path).capture_stderr(4096).spawn().unwrap();
        let result = child.wait().await;
        assert!(matches!(result, Err(Error::Trap { .. })), "{kind}: {result:?}");
        let stderr = String::from_utf8_lossy(child.captured_stderr()).into_owned();
        assert!(stderr.contains("guest panicked on purpose"), "{kind}: {stderr}");
    }
}

#[tokio::test]
async fn a_spinning_guest_is_stopped_at_its_timeout() {
    const LIMIT: Duration = Duration::from_millis(500);
    for (kind, path) in both(guests::SPIN, guests::P2_SPIN) {
        let started = Instant::now();
        let result = Sandbox::new(path).timeout(LIMIT).spawn().unwrap().wait().await;
        assert!(matches!(result, Err(Error::Timeout(limit)) if limit == LIMIT), "{kind}: {result:?}");
        assert!(started.elapsed() < LIMIT + Duration::from_secs(10), "{kind}: {:?}", started.elapsed());
    }
}

#[tokio::test]
async fn a_guest_blocked_reading_stdin_is_stopped_at_its_timeout() {
    const LIMIT: Duration = Duration::from_millis(500);
    for (kind, path) in both(guests::BLOCK_READ, guests::P2_BLOCK_READ) {
        let (stdin, keep_open) = wasmpipe::pipe().unwrap();
        let started = Instant::now();
        let result = Sandbox::new(path).timeout(LIMIT).stdin(stdin).spawn().unwrap().wait().await;
        assert!(matches!(result, Err(Error::Timeout(limit)) if limit == LIMIT), "{kind}: {result:?}");
        let elapsed = started.elapsed();
        assert!(elapsed >= LIMIT && elapsed < LIMIT + Duration::from_secs(10), "{kind}: {elapsed:?}");
        drop(keep_open);
    }
}

#[tokio::test]
async fn the_memory_limit_and_fuel_apply_to_both_kinds() {
    for (kind, path) in both(guests::GROW_MEMORY, guests::P2_GROW_MEMORY) {
        let result = Sandbox::new(path).memory(64 << 20).capture_stderr(4096).spawn().unwrap().wait().await;
        assert!(matches!(result, Err(Error::MemoryLimit(limit)) if limit == 64 << 20), "{kind}: {result:?}");
    }
    for (kind, path) in both(guests::SPIN, guests::P2_SPIN) {
        let result = Sandbox::new(path).fuel(1_000_000).timeout(Duration::from_secs(60)).spawn().unwrap().wait().await;
        assert!(matches!(result, Err(Error::FuelExhausted)), "{kind}: {result:?}");
    }
}

#[tokio::test]
async fn a_component_is_cached_under_its_own_name_and_loaded_from_the_cache() {
    let cache = temp_dir("cache");
    for (kind, path) in both(guests::UPPER, guests::P2_UPPER) {
        let outcomes: Vec<_> = spawn_twice(path, &cache).await;
        assert!(matches!(outcomes[0], Some(CacheOutcome::Stored(_))), "{kind}: first spawn {:?}", outcomes[0]);
        assert!(matches!(outcomes[1], Some(CacheOutcome::AlreadyCached(_))), "{kind}: second spawn {:?}", outcomes[1]);
    }
    let mut names: Vec<String> =
        std::fs::read_dir(&cache).unwrap().map(|entry| entry.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(names.iter().filter(|name| name.ends_with("-component.cwasm")).count(), 1, "{names:?}");
    std::fs::remove_dir_all(&cache).unwrap();
}

/// Spawns `path` twice with the cache in `cache`, checking each reply; the cache outcome of each.
async fn spawn_twice(path: &str, cache: &std::path::Path) -> Vec<Option<CacheOutcome>> {
    let mut outcomes = Vec::new();
    for _ in 0..2 {
        let (mut child, mut tx, mut rx) = Sandbox::new(path).cache_dir(cache).spawn_piped().unwrap();
        tx.write_all(b"cached\n").await.unwrap();
        drop(tx);
        assert_eq!(rx.read_line().await.unwrap().as_deref(), Some(&b"CACHED\n"[..]), "{path}");
        assert!(child.wait().await.unwrap().success(), "{path}");
        outcomes.push(child.cache_outcome().cloned());
    }
    outcomes
}

#[tokio::test]
async fn a_zygote_starts_components_from_its_preloaded_artifact() {
    let cache = temp_dir("zygote");
    let zygote = Zygote::start().unwrap();
    // The first spawn compiles and stores; the second has the zygote preload the artifact.
    for round in 0..2 {
        let (mut child, mut tx, mut rx) =
            Sandbox::new(guests::P2_UPPER).cache_dir(&cache).zygote(&zygote).spawn_piped().unwrap();
        tx.write_all(b"from a zygote\n").await.unwrap();
        drop(tx);
        assert_eq!(rx.read_line().await.unwrap().as_deref(), Some(&b"FROM A ZYGOTE\n"[..]), "round {round}");
        assert!(child.wait().await.unwrap().success(), "round {round}");
        // The second round's artifact came from the cache, through the zygote's preload.
        let cached = matches!(child.cache_outcome(), Some(CacheOutcome::AlreadyCached(_)));
        assert_eq!(cached, round == 1, "round {round}: {:?}", child.cache_outcome());
    }
    std::fs::remove_dir_all(&cache).unwrap();
}

#[tokio::test]
async fn a_pool_of_component_workers_answers_calls() {
    let pool = Pool::new(|| Sandbox::new(guests::P2_UPPER), 2);
    assert_eq!(pool.call(b"hello").await.unwrap(), b"HELLO\n");
    let results = pool.map((0..8).map(|i| format!("request {i}").into_bytes())).await;
    for (i, result) in results.into_iter().enumerate() {
        assert_eq!(result.unwrap(), format!("REQUEST {i}\n").into_bytes());
    }
    pool.shutdown().await;
}

#[tokio::test]
async fn the_function_limit_counts_the_functions_inside_a_component() {
    let bytes = std::fs::read(guests::P2_ECHO).unwrap();
    let limits = wasmpipe::Limits::default().max_functions(10);
    let result = Sandbox::from_bytes("echo.wasm", bytes).limits(limits).no_cache().spawn().unwrap().wait().await;
    let Err(Error::InvalidModule(message)) = result else { panic!("{result:?}") };
    assert!(message.contains("the component defines") && message.contains("limit of 10"), "{message}");
}

#[tokio::test]
async fn a_component_that_is_not_a_command_is_an_invalid_module() {
    // A valid component that exports no `wasi:cli/run`.
    let empty = wat::parse_str("(component)").unwrap();
    let result = Sandbox::from_bytes("empty.wasm", empty).no_cache().spawn().unwrap().wait().await;
    assert!(matches!(result, Err(Error::InvalidModule(_))), "{result:?}");
}
