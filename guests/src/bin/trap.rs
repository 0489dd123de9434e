//! Hostile: panics with the message `guest panicked on purpose`, which on wasm32-wasip1
//! aborts the guest with a trap after printing the message to stderr.
//!
//! Used by the host's guest crash test (trap reported as an error, stderr captured).

fn main() {
    panic!("guest panicked on purpose");
}
