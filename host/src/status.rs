//! The exit-status contract, in one place: what `wasmpipe run` exits with, and what a runner
//! process itself exits with (the same numbers, so even a parent that never reads the verdict
//! sees a meaningful status).
//!
//! ```
//! use wasmpipe::{Error, status};
//! assert_eq!(status::of_guest_exit(3), 3);
//! assert_eq!(status::of_guest_exit(256), status::EXIT_CODE_OUT_OF_RANGE);
//! assert_eq!(status::of_error(&Error::FuelExhausted), status::GUEST_CRASHED);
//! ```

use crate::error::Error;

/// The guest exceeded its time limit, or its compilation did (as `timeout(1)` does).
pub const TIMEOUT: u8 = 124;

/// wasmpipe itself could not start or run the guest: a missing or invalid module, a refused
/// directory, a runner that broke its protocol.
pub const WASMPIPE_FAILED: u8 = 125;

/// The guest trapped, exceeded its memory limit or ran out of fuel, or the runner ran out of
/// memory (as `abort` does).
pub const GUEST_CRASHED: u8 = 134;

/// The runner made a system call its seccomp filter forbids: 128 + `SIGSYS`, as if it had been
/// killed by that signal.
pub const FORBIDDEN_SYSCALL: u8 = 128 + libc::SIGSYS as u8;

/// The guest exited with a code outside 0–255 (WASI allows any 32-bit code): never 0, so a
/// failing guest never looks successful, as a plain truncation would make 256.
pub const EXIT_CODE_OUT_OF_RANGE: u8 = 1;

/// The status for a guest that exited with `code`: the code itself when it fits.
pub fn of_guest_exit(code: i32) -> u8 {
    u8::try_from(code).unwrap_or(EXIT_CODE_OUT_OF_RANGE)
}

/// The status for a guest that did not run to completion.
pub fn of_error(error: &Error) -> u8 {
    match error {
        Error::Timeout(_) | Error::CompileTimeout(_) => TIMEOUT,
        Error::Trap { .. } | Error::MemoryLimit(_) | Error::OutOfMemory(_) | Error::FuelExhausted => GUEST_CRASHED,
        Error::Killed(signal) => 128u8.saturating_add(*signal as u8),
        Error::ForbiddenSyscall { .. } => FORBIDDEN_SYSCALL,
        _ => WASMPIPE_FAILED,
    }
}
