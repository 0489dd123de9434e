//! Sleeps for the number of milliseconds in its first argument (default 1000), then writes
//! `slept` and exits 0.
//!
//! Used by the test that stops and continues a sleeping runner: the interrupted sleep resumes
//! through `restart_syscall`, which the seccomp filter must allow.

use std::time::Duration;

fn main() {
    let millis = std::env::args().nth(1).and_then(|arg| arg.parse().ok()).unwrap_or(1000);
    std::thread::sleep(Duration::from_millis(millis));
    println!("slept");
}
