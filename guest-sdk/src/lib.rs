//! Guest side of wasmpipe: buffered channels over a plugin's stdin and stdout.
//!
//! A wasmpipe guest is a `wasm32-wasip1` program that talks to its host through two pipes:
//! it reads requests from stdin with an [`Rx`] and writes replies to stdout with a [`Tx`].
//! Both are buffered (64 KiB each) and cooperate so that a request/response loop can never
//! deadlock: before an `Rx` blocks waiting for input, it flushes everything written by any
//! `Tx` (see [when output is flushed](Tx#when-output-is-flushed)).
//!
//! The crate only uses `std`, so it also compiles natively, where it behaves the same on
//! file descriptors 0 and 1.
//!
//! # Examples
//!
//! An uppercasing line server. No explicit flush is needed inside the loop: each reply goes
//! out when the guest waits for the next request, and the rest when `tx` is dropped.
//!
//! ```no_run
//! fn main() -> std::io::Result<()> {
//!     let (mut rx, mut tx) = wasmpipe_guest::duplex();
//!     while let Some(mut line) = rx.read_line_bytes()? {
//!         line.make_ascii_uppercase();
//!         tx.write(&line)?;
//!     }
//!     Ok(())
//! }
//! ```
#![deny(missing_docs)]

mod out;
mod rx;
mod sys;
mod tx;

pub use rx::Rx;
pub use tx::Tx;

/// Returns both ends of the pipe: an [`Rx`] on stdin and a [`Tx`] on stdout.
///
/// Equivalent to `(Rx::new(), Tx::new())`; ends created separately cooperate just the same.
///
/// # Examples
///
/// ```no_run
/// let (mut rx, mut tx) = wasmpipe_guest::duplex();
/// tx.write(b"ready> ")?;
/// let request = rx.read_line()?; // "ready> " is flushed before this blocks
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn duplex() -> (Rx, Tx) {
    (Rx::new(), Tx::new())
}

/// Flushes the output buffered by every [`Tx`], then exits the process with `code`.
///
/// Use this instead of [`std::process::exit`], which skips destructors and would therefore
/// lose buffered output. A flush error is ignored, since the process is exiting anyway;
/// call [`Tx::flush`] first to handle it.
///
/// On `wasm32-wasip1` this is the WASI `proc_exit` call. Hosts may reject codes outside
/// `0..126` (plain Wasmtime treats them as a trap); wasmpipe reports any code as it is.
///
/// # Examples
///
/// ```no_run
/// let mut tx = wasmpipe_guest::Tx::new();
/// tx.write_line("error: bad request")?;
/// wasmpipe_guest::exit(2); // the line above is not lost
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn exit(code: i32) -> ! {
    let _ = out::flush();
    std::process::exit(code)
}
