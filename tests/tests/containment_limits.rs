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
