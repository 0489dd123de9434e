//! [`Tx`]: the buffered sending end, writing the guest's stdout.

use std::io::{self, Write};

use crate::frames::{self, DEFAULT_MAX_FRAME_LENGTH};
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
#[derive(Debug)]
pub struct Tx {
    /// Largest payload [`send_frame`](Tx::send_frame) accepts; per `Tx`, unlike the buffer.
    max_frame: usize,
}

impl Default for Tx {
    fn default() -> Self {
        Self::new()
    }
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
        Self { max_frame: DEFAULT_MAX_FRAME_LENGTH }
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

    /// Writes `value` as one line of compact JSON followed by `'\n'` (JSON Lines). Requires
    /// the `json` feature.
    ///
    /// The line is buffered like any other write (see
    /// [when output is flushed](Tx#when-output-is-flushed)). Compact JSON escapes newlines
    /// inside strings, so a value is always exactly one line.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::InvalidInput`] if `value` cannot be serialized as JSON (for example a
    /// map with non-string keys, or a `Serialize` impl that fails); nothing is written then.
    /// Otherwise the error of a write to stdout, if this call had to perform one.
    ///
    /// # Examples
    ///
    /// ```
    /// #[derive(serde::Serialize)]
    /// struct Reply<'a> { id: u64, status: &'a str }
    ///
    /// let mut tx = wasmpipe_guest::Tx::new();
    /// tx.send(&Reply { id: 7, status: "done" })?; // {"id":7,"status":"done"}\n
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[cfg(feature = "json")]
    pub fn send<T: serde::Serialize + ?Sized>(&mut self, value: &T) -> io::Result<()> {
        out::write_all(&[&crate::json::encode(value)?])
    }

    /// Writes one binary frame: the payload's length as 4 big-endian bytes, then the payload.
    ///
    /// The layout is the default of tokio-util's `LengthDelimitedCodec` (see
    /// [`Rx::recv_frame`](crate::Rx::recv_frame)). Header and payload enter the buffer
    /// together, so frames from several `Tx` never interleave; they are flushed like any other
    /// write (see [when output is flushed](Tx#when-output-is-flushed)).
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::InvalidData`] if `payload` is longer than
    /// [the maximum frame length](Tx::set_max_frame_length); nothing is written then.
    /// Otherwise the error of a write to stdout, if this call had to perform one.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut tx = wasmpipe_guest::Tx::new();
    /// tx.send_frame(b"\x00binary\nsafe")?; // 00 00 00 0c, then the 12 bytes
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn send_frame(&mut self, payload: &[u8]) -> io::Result<()> {
        let header = frames::header(payload.len(), self.max_frame)?;
        out::write_all(&[&header, payload])
    }

    /// Sets the maximum payload length [`send_frame`](Tx::send_frame) accepts, for this `Tx`;
    /// the default is [`DEFAULT_MAX_FRAME_LENGTH`](crate::DEFAULT_MAX_FRAME_LENGTH), 8 MiB, the
    /// host's default limit for reading. Payloads over 4 GiB − 1 never fit the header.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut tx = wasmpipe_guest::Tx::new();
    /// tx.set_max_frame_length(1024);
    /// assert!(tx.send_frame(&[0; 2048]).is_err());
    /// ```
    pub fn set_max_frame_length(&mut self, max: usize) {
        self.max_frame = max;
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
