//! `wasmpipe run` limits: `--timeout` (exit 124), `--memory` and `--fuel` (exit 134), each with one
//! `wasmpipe:` line on stderr saying which limit the guest hit.

use std::process::Stdio;
use std::time::{Duration, Instant};

mod common;
use common::*;

/// How long a guest timed out after `--timeout 1s` may take, from spawning `wasmpipe` to its exit.
const TIMEOUT_1S_DEADLINE: Duration = Duration::from_secs(3);

#[test]
fn a_computing_guest_times_out_with_124() {
    let scratch = scratch!();
    let started = Instant::now();
    let output = scratch.wasmpipe().args(["run", "--timeout", "1s", guests::SPIN]).output().unwrap();
    let elapsed = started.elapsed();
    eprintln!("spin --timeout 1s: wasmpipe exited after {elapsed:.3?}");
    assert_eq!(code(&output), 124, "{}", describe(&output));
    assert_eq!(the_wasmpipe_line(&output), "wasmpipe: guest timed out after 1s", "{}", describe(&output));
    assert!(elapsed >= Duration::from_secs(1), "timed out early, after {elapsed:?}");
    assert!(elapsed < TIMEOUT_1S_DEADLINE, "took {elapsed:?} to time out after 1s");
}

#[test]
fn a_guest_blocked_reading_stdin_times_out_with_124() {
    let scratch = scratch!();
    let started = Instant::now();
    let mut child = scratch
        .wasmpipe()
        .args(["run", "--timeout", "1s", guests::BLOCK_READ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Held open (never written, never closed) until wasmpipe has exited: the guest never sees EOF.
    let stdin = child.stdin.take().unwrap();
    let output = child.wait_with_output().unwrap();
    let elapsed = started.elapsed();
    drop(stdin);
    eprintln!("block_read --timeout 1s: wasmpipe exited after {elapsed:.3?}");
    assert_eq!(code(&output), 124, "{}", describe(&output));
    assert_eq!(the_wasmpipe_line(&output), "wasmpipe: guest timed out after 1s", "{}", describe(&output));
    assert_eq!(output.stdout, b"", "the guest saw EOF\n{}", describe(&output));
    assert!(elapsed >= Duration::from_secs(1), "timed out early, after {elapsed:?}");
    assert!(elapsed < TIMEOUT_1S_DEADLINE, "took {elapsed:?} to time out after 1s");
}

#[test]
fn a_timeout_in_milliseconds_is_reported_in_milliseconds() {
    let scratch = scratch!();
    let started = Instant::now();
    let output = scratch.wasmpipe().args(["run", "--timeout", "500ms", guests::SPIN]).output().unwrap();
    let elapsed = started.elapsed();
    eprintln!("spin --timeout 500ms: wasmpipe exited after {elapsed:.3?}");
    assert_eq!(code(&output), 124, "{}", describe(&output));
    assert_eq!(the_wasmpipe_line(&output), "wasmpipe: guest timed out after 500ms", "{}", describe(&output));
    assert!(elapsed >= Duration::from_millis(500), "timed out early, after {elapsed:?}");
    assert!(elapsed < Duration::from_millis(2500), "took {elapsed:?} to time out after 500ms");
}

#[test]
fn a_guest_that_finishes_in_time_is_not_affected_by_the_timeout() {
    let scratch = scratch!();
    // Warm the cache first, so that even a slow (debug) compilation cannot eat the 2s.
    let output = scratch.wasmpipe().args(["run", guests::EXIT_CODE, "--", "5"]).output().unwrap();
    assert_eq!(code(&output), 5, "{}", describe(&output));
    for limit in ["2s", "1m"] {
        let output =
            scratch.wasmpipe().args(["run", "--timeout", limit, guests::EXIT_CODE, "--", "5"]).output().unwrap();
        assert_eq!(code(&output), 5, "--timeout {limit}\n{}", describe(&output));
        assert_eq!(output.stdout, b"exiting with 5\n", "--timeout {limit}\n{}", describe(&output));
        assert_eq!(output.stderr, b"", "--timeout {limit}\n{}", describe(&output));
    }
}

#[test]
fn a_guest_over_the_memory_limit_exits_134() {
    let scratch = scratch!();
    let output = scratch.wasmpipe().args(["run", "--memory", "64MiB", guests::GROW_MEMORY]).output().unwrap();
    assert_eq!(code(&output), 134, "{}", describe(&output));
    assert_eq!(
        the_wasmpipe_line(&output),
        "wasmpipe: guest exceeded the memory limit of 64 MiB",
        "{}",
        describe(&output)
    );
}

#[test]
fn the_default_memory_limit_is_512_mib() {
    let scratch = scratch!();
    let output = scratch.wasmpipe().args(["run", guests::GROW_MEMORY]).output().unwrap();
    assert_eq!(code(&output), 134, "{}", describe(&output));
    assert_eq!(
        the_wasmpipe_line(&output),
        "wasmpipe: guest exceeded the memory limit of 512 MiB",
        "{}",
        describe(&output)
    );
    // The guest got close to the limit before it was refused (it reports every 64 MiB).
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("allocated 448 MiB"), "{}", describe(&output));
}

#[test]
fn a_guest_within_the_memory_limit_is_not_affected() {
    let scratch = scratch!();
    for limit in ["64MiB", "1GiB"] {
        let output =
            scratch.wasmpipe().args(["run", "--memory", limit, guests::EXIT_CODE, "--", "9"]).output().unwrap();
        assert_eq!(code(&output), 9, "--memory {limit}\n{}", describe(&output));
        assert_eq!(output.stdout, b"exiting with 9\n", "--memory {limit}\n{}", describe(&output));
        assert_eq!(output.stderr, b"", "--memory {limit}\n{}", describe(&output));
    }
}

#[test]
fn a_guest_out_of_fuel_exits_134() {
    let scratch = scratch!();
    let started = Instant::now();
    let output = scratch.wasmpipe().args(["run", "--fuel", "1000000", guests::SPIN]).output().unwrap();
    eprintln!("spin --fuel 1000000: wasmpipe exited after {:.3?}", started.elapsed());
    assert_eq!(code(&output), 134, "{}", describe(&output));
    let line = the_wasmpipe_line(&output);
    assert!(line.contains("fuel"), "the `wasmpipe:` line does not mention fuel: {line:?}\n{}", describe(&output));
}

#[test]
fn a_guest_within_its_fuel_is_not_affected() {
    let scratch = scratch!();
    let output =
        scratch.wasmpipe().args(["run", "--fuel", "100000000", guests::EXIT_CODE, "--", "7"]).output().unwrap();
    assert_eq!(code(&output), 7, "{}", describe(&output));
    assert_eq!(output.stdout, b"exiting with 7\n", "{}", describe(&output));
    assert_eq!(output.stderr, b"", "{}", describe(&output));
}
