//! Limits end misbehaving guests with the exact typed failure.

use std::time::{Duration, Instant};
use wasmpipe::{Error, Sandbox};
use wasmpipe_tests::guests;

const LIMIT: Duration = Duration::from_secs(1);
/// "Ends within ~1 s of its limit": the bound the timeout tests hold the sandbox to.
const MAX_OVERSHOOT: Duration = Duration::from_millis(1500);

#[tokio::test]
async fn a_guest_that_spins_is_stopped_at_its_timeout() {
    let started = Instant::now();
    let mut child = Sandbox::new(guests::SPIN).timeout(LIMIT).spawn().unwrap();
    let result = child.wait().await;
    let elapsed = started.elapsed();
    eprintln!("spin: ended {:?} after spawn (limit {LIMIT:?})", elapsed);
    assert!(matches!(result, Err(Error::Timeout(limit)) if limit == LIMIT), "{result:?}");
    assert!(elapsed >= LIMIT && elapsed < LIMIT + MAX_OVERSHOOT, "ended after {elapsed:?}");
}

#[tokio::test]
async fn a_guest_blocked_reading_stdin_is_stopped_at_its_timeout() {
    let (stdin, keep_open) = wasmpipe::pipe().unwrap();
    let started = Instant::now();
    let mut child = Sandbox::new(guests::BLOCK_READ).timeout(LIMIT).stdin(stdin).spawn().unwrap();
    let result = child.wait().await;
    let elapsed = started.elapsed();
    eprintln!("block_read: ended {:?} after spawn (limit {LIMIT:?})", elapsed);
    assert!(matches!(result, Err(Error::Timeout(limit)) if limit == LIMIT), "{result:?}");
    assert!(elapsed >= LIMIT && elapsed < LIMIT + MAX_OVERSHOOT, "ended after {elapsed:?}");
    drop(keep_open);
}

#[tokio::test]
async fn a_guest_within_its_timeout_is_not_disturbed() {
    let mut child = Sandbox::new(guests::SIMPLEX).timeout(Duration::from_secs(30)).spawn().unwrap();
    assert!(child.wait().await.unwrap().success());
}

#[tokio::test]
async fn a_guest_that_grows_memory_without_bound_hits_the_memory_limit() {
    let mut child = Sandbox::new(guests::GROW_MEMORY).memory(64 << 20).capture_stderr(4096).spawn().unwrap();
    let result = child.wait().await;
    assert!(matches!(result, Err(Error::MemoryLimit(limit)) if limit == 64 << 20), "{result:?}");
    assert_eq!(result.unwrap_err().to_string(), "guest exceeded the memory limit of 64 MiB");
}

#[tokio::test]
async fn a_guest_that_runs_out_of_fuel_is_stopped() {
    let mut child = Sandbox::new(guests::SPIN).fuel(1_000_000).timeout(Duration::from_secs(60)).spawn().unwrap();
    let result = child.wait().await;
    assert!(matches!(result, Err(Error::FuelExhausted)), "{result:?}");
}

#[tokio::test]
async fn a_guest_with_enough_fuel_finishes() {
    let mut child = Sandbox::new(guests::SIMPLEX).fuel(1_000_000_000).spawn().unwrap();
    assert!(child.wait().await.unwrap().success());
}

#[tokio::test]
async fn a_panicking_guest_is_reported_as_a_trap_with_a_backtrace() {
    let mut child = Sandbox::new(guests::TRAP).capture_stderr(64 * 1024).spawn().unwrap();
    let result = child.wait().await;
    let Err(Error::Trap { message, wasm_backtrace }) = result else { panic!("expected a trap, got {result:?}") };
    assert!(message.contains("unreachable"), "{message}");
    assert!(wasm_backtrace.is_some_and(|bt| !bt.is_empty()));
    // The guest's own words arrive on its stderr, separately from the verdict.
    let stderr = String::from_utf8_lossy(child.captured_stderr()).into_owned();
    assert!(stderr.contains("guest panicked on purpose"), "{stderr}");
}

#[tokio::test]
async fn guest_exit_codes_are_reported() {
    for code in [0, 3, 42, 126, 200, 255] {
        let mut child = Sandbox::new(guests::EXIT_CODE).arg(code.to_string()).spawn().unwrap();
        assert_eq!(child.wait().await.unwrap().code(), code);
    }
}

// ---------------------------------------------------------------------------------------------
// The memory limit is a total, and compile bombs are bounded.

/// A command module with these extra declarations (memories, tables, functions).
fn module(declarations: &str) -> Vec<u8> {
    wat::parse_str(format!(r#"(module {declarations} (func (export "_start")))"#)).unwrap()
}

#[tokio::test]
async fn the_memory_limit_is_the_total_over_all_memories() {
    // Four memories of 20 MiB each: each fits the 64 MiB limit, together they do not.
    let memories = "(memory 320) ".repeat(4);
    let result = Sandbox::from_bytes("memories.wasm", module(&memories)).memory(64 << 20).spawn().unwrap().wait().await;
    assert!(matches!(result, Err(Error::MemoryLimit(limit)) if limit == 64 << 20), "{result:?}");
    // Three fit.
    let memories = "(memory 320) ".repeat(3);
    let result = Sandbox::from_bytes("memories.wasm", module(&memories)).memory(64 << 20).spawn().unwrap().wait().await;
    assert!(result.unwrap().success());
}

#[tokio::test]
async fn the_memory_limit_counts_tables_too() {
    // Four tables of 1M entries (8 MiB each), against a 24 MiB limit.
    let tables = "(table 1048576 funcref) ".repeat(4);
    let result = Sandbox::from_bytes("tables.wasm", module(&tables)).memory(24 << 20).spawn().unwrap().wait().await;
    assert!(matches!(result, Err(Error::MemoryLimit(_))), "{result:?}");
}

#[tokio::test]
async fn the_runner_has_a_process_wide_memory_backstop() {
    let (stdin, keep_open) = wasmpipe::pipe().unwrap();
    let mut child = Sandbox::new(guests::BLOCK_READ).memory(64 << 20).stdin(stdin).spawn().unwrap();
    let pid = child.id().unwrap();
    // The limit is set early in the runner's start-up: wait for it, however loaded the machine.
    let deadline = Instant::now() + Duration::from_secs(10);
    let data = loop {
        let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
        let data = limits.lines().find(|line| line.starts_with("Max data size")).unwrap().to_owned();
        if !data.contains("unlimited") || Instant::now() > deadline {
            break data;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let soft: u64 = data.split_whitespace().nth(3).unwrap().parse().unwrap();
    // The limit, the runtime's allowance, and twice the (small) cached artifact.
    let floor = (64 << 20) + (192 << 20);
    assert!(soft >= floor && soft < floor + (16 << 20), "{data}");
    drop(keep_open);
    let _ = child.wait().await;
}

fn many_functions(count: usize) -> Vec<u8> {
    module(&"(func (result i32) i32.const 1 i32.const 2 i32.add) ".repeat(count))
}

#[tokio::test]
async fn compilation_has_a_time_limit_of_its_own() {
    let mut sandbox = Sandbox::from_bytes("slow.wasm", many_functions(20_000))
        .no_cache()
        .compile_timeout(Some(Duration::from_millis(50)));
    let started = Instant::now();
    let result = sandbox.spawn().unwrap().wait().await;
    assert!(matches!(result, Err(Error::CompileTimeout(limit)) if limit == Duration::from_millis(50)), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert_eq!(wasmpipe::Limits::default().compile_timeout_limit(), Some(wasmpipe::DEFAULT_COMPILE_TIMEOUT));
}

#[tokio::test]
async fn modules_over_the_size_or_function_limits_are_refused_before_compiling() {
    let bytes = many_functions(101);
    let limits = wasmpipe::Limits::default().max_functions(100);
    let result = Sandbox::from_bytes("many.wasm", bytes.clone()).limits(limits).spawn().unwrap().wait().await;
    let Err(Error::InvalidModule(message)) = result else { panic!("{result:?}") };
    assert!(message.contains("102 functions"), "{message}"); // and `_start`
    let limits = wasmpipe::Limits::default().max_module_size(100);
    let result = Sandbox::from_bytes("big.wasm", bytes).limits(limits).spawn();
    let Err(Error::InvalidModule(message)) = result else { panic!("{result:?}") };
    assert!(message.contains("more than the limit of 100 bytes"), "{message}");
}
