//! Guest side of wasmpipe: buffered channels over a plugin's stdin and stdout.
//!
//! A wasmpipe guest is a `wasm32-wasip1` program (or a `wasm32-wasip2` component) that talks to
//! its host through two pipes:
//! it reads requests from stdin with an [`Rx`] and writes replies to stdout with a [`Tx`].
//! Both are buffered (64 KiB each) and cooperate so that a request/response loop can never
//! deadlock: before an `Rx` blocks waiting for input, it flushes everything written by any
//! `Tx` (see [when output is flushed](Tx#when-output-is-flushed)).
//!
//! Besides raw bytes and lines, both ends speak the two message formats of the host library
//! (the README's "Wire formats" section specifies them for other languages):
//!
//! - **binary frames**, [`Rx::recv_frame`] and [`Tx::send_frame`]: a 4-byte big-endian payload
//!   length, then the payload, at most [`DEFAULT_MAX_FRAME_LENGTH`] by default;
//! - **JSON Lines**, with the `json` feature, `Rx::recv` and `Tx::send`: one serde value
//!   per `'\n'`-terminated line, at most [`DEFAULT_MAX_LINE_LENGTH`] by default.
//!
//! Without features the crate only uses `std`, so it also compiles natively, where it behaves
//! the same on file descriptors 0 and 1.
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
//!
//! A typed worker (feature `json`): a malformed request is answered with an error and the
//! loop goes on.
//!
//! ```no_run
//! # #[cfg(feature = "json")]
//! fn main() -> std::io::Result<()> {
//!     #[derive(serde::Deserialize)]
//!     struct Request { a: i64, b: i64 }
//!
//!     let (mut rx, mut tx) = wasmpipe_guest::duplex();
//!     loop {
//!         match rx.recv::<Request>() {
//!             Ok(Some(r)) => tx.send(&serde_json::json!({ "sum": r.a + r.b }))?,
//!             Ok(None) => return Ok(()),
//!             Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
//!                 tx.send(&serde_json::json!({ "error": e.to_string() }))?
//!             }
//!             Err(e) => return Err(e),
//!         }
//!     }
//! }
//! # #[cfg(not(feature = "json"))] fn main() {}
//! ```
#![deny(missing_docs)]

mod frames;
#[cfg(feature = "json")]
mod json;
mod lines;
mod out;
mod rx;
mod sys;
mod tx;

pub use frames::DEFAULT_MAX_FRAME_LENGTH;
pub use lines::DEFAULT_MAX_LINE_LENGTH;
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
/// `0..126` (plain Wasmtime treats them as a trap); wasmpipe reports any code as it is. On
/// `wasm32-wasip2`, WASI 0.2's `exit` says only success or failure: any code but 0 ends the
/// component with 1.
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
