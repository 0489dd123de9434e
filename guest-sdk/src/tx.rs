//! [`Tx`]: the buffered sending end, writing the guest's stdout.

use std::io::{self, Write};

use crate::out;

/// The sending end of the pipe: buffered writes to stdout (fd 1).
///
/// Every `Tx` writes into one process-global 64 KiB buffer, which reaches fd 1 directly in
/// large writes (bypassing [`std::io::Stdout`] and its line buffering). Do not mix `Tx` with
/// `print!`/[`std::io::stdout`]: the two buffers are independent, so the output of one may
/// overtake the other.
///
/// # When output is flushed
///
/// The buffer is written to stdout:
///
/// - on an explicit [`flush`](Tx::flush);
/// - when a `Tx` is dropped;
/// - when the buffer is full (data at least as large as the whole buffer is written
///   directly);
/// - whenever an [`Rx`](crate::Rx) is about to block waiting for input, so a request/response
///   guest never deadlocks with its parent even if it forgets to flush;
/// - in [`exit`](crate::exit).
///
/// Nothing else flushes it. In particular [`std::process::exit`] skips destructors and a
/// panic aborts a `wasm32-wasip1` guest without unwinding, so output still buffered at that
/// point is lost: use [`crate::exit`], or flush first.
///
/// Write errors are reported by whichever call performs the write (possibly a later
/// `write`, `flush`, or an `Rx` read); the data of a failed write is discarded. Errors while
/// flushing in `drop` are ignored.
///
/// The inherent [`write`](Tx::write) writes the whole slice, and takes precedence over
/// [`Write::write`]; [`write!`]/[`writeln!`] work through the [`Write`] impl.
///
/// # Examples
///
/// ```
/// use std::io::Write;
///
/// let mut tx = wasmpipe_guest::Tx::new();
/// tx.write(b"raw bytes, ")?;
/// write!(tx, "formatted {}, ", 42)?;
/// tx.write_line("and a line")?;
/// tx.flush()?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct Tx {
    _private: (),
}

impl Tx {
    /// Creates a writer on stdout. All writers share the process-global buffer, so creating
    /// one is free.
    ///
    /// # Examples
    ///
    /// ```
    /// let tx = wasmpipe_guest::Tx::new();
    /// # drop(tx);
    /// ```
    pub fn new() -> Self {
        Self { _private: () }
    }

    /// Writes all of `data` (into the buffer, see [when output is flushed](Tx#when-output-is-flushed)).
    ///
    /// # Errors
    ///
    /// Returns the error of a write to stdout, if this call had to perform one.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut tx = wasmpipe_guest::Tx::new();
    /// tx.write(b"no newline needed")?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        out::write_all(&[data])
    }

    /// Writes `line` followed by `'\n'`.
    ///
    /// # Errors
    ///
    /// Returns the error of a write to stdout, if this call had to perform one.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut tx = wasmpipe_guest::Tx::new();
    /// tx.write_line("hello")?; // sends "hello\n"
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn write_line(&mut self, line: &str) -> io::Result<()> {
        out::write_all(&[line.as_bytes(), b"\n"])
    }

    /// Writes everything buffered so far (by any `Tx`) to stdout.
    ///
    /// # Errors
    ///
    /// Returns the error of the write to stdout; the buffered data is discarded either way.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut tx = wasmpipe_guest::Tx::new();
    /// tx.write_line("ready")?;
    /// tx.flush()?; // the parent sees "ready\n" now
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn flush(&mut self) -> io::Result<()> {
        out::flush()
    }
}

impl Write for Tx {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Tx::write(self, buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        Tx::write(self, buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Tx::flush(self)
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        // Errors cannot be reported from `drop`; flush explicitly to observe them.
        let _ = out::flush();
    }
}
