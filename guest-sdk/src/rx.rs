//! [`Rx`]: the buffered receiving end, reading the guest's stdin.

use std::io::{self, BufRead, BufReader, Read};

use crate::{out, sys};

/// Size of the input buffer: stdin is read in chunks of up to this many bytes.
const CAPACITY: usize = 64 * 1024;

/// The receiving end of the pipe: buffered reads from stdin (fd 0).
///
/// `Rx` has its own 64 KiB buffer and reads fd 0 directly, without going through
/// [`std::io::Stdin`]'s buffer. It implements [`Read`] and [`BufRead`], so everything from
/// [`Read::read_exact`] to [`Read::read_to_end`] works on it, and adds the convenience
/// methods [`read_line`](Rx::read_line) and [`read_line_bytes`](Rx::read_line_bytes).
///
/// # Flushing before blocking
///
/// Whenever `Rx` has consumed its buffer and is about to wait for more input, it first
/// flushes the output buffer shared by every [`Tx`](crate::Tx). A guest answering requests
/// therefore never deadlocks with its parent, even if it forgets to flush: the reply is
/// sent before the guest waits for the next request. If that flush fails (say, the parent
/// closed its end of stdout), the read returns the error.
///
/// Create one `Rx` per process: each `Rx` has its own buffer, so input buffered by one is
/// invisible to another.
///
/// Because the inherent [`read_line`](Rx::read_line) takes precedence over
/// [`BufRead::read_line`], call the latter as `BufRead::read_line(&mut rx, &mut string)`.
///
/// # Examples
///
/// ```no_run
/// use std::io::Read;
///
/// let mut rx = wasmpipe_guest::Rx::new();
/// let mut header = [0u8; 4];
/// rx.read_exact(&mut header)?;
/// let mut rest = Vec::new();
/// rx.read_to_end(&mut rest)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Rx {
    inner: BufReader<Stdin>,
}

impl Rx {
    /// Creates a reader on stdin with an empty 64 KiB buffer.
    ///
    /// # Examples
    ///
    /// ```
    /// let rx = wasmpipe_guest::Rx::new();
    /// # drop(rx);
    /// ```
    pub fn new() -> Self {
        Self { inner: BufReader::with_capacity(CAPACITY, Stdin) }
    }

    /// Reads the next line as UTF-8 text, or returns `None` at end of input.
    ///
    /// The returned string **includes** the trailing `'\n'` (and a `'\r'` before it, if
    /// any). Only the last line of the input can lack the newline; it is returned as-is.
    /// So `Some(line)` is never empty, and an empty line is returned as `"\n"`.
    ///
    /// # Errors
    ///
    /// Returns any error from reading stdin (or from the flush before it, see
    /// [the flushing rule](Rx#flushing-before-blocking)), and an error of kind
    /// [`io::ErrorKind::InvalidData`] if the line is not valid UTF-8; the line is consumed
    /// either way. Use [`read_line_bytes`](Rx::read_line_bytes) for binary data.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let (mut rx, mut tx) = wasmpipe_guest::duplex();
    /// while let Some(line) = rx.read_line()? {
    ///     // `line` still ends in '\n', so the reply does too.
    ///     tx.write(line.to_uppercase().as_bytes())?;
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn read_line(&mut self) -> io::Result<Option<String>> {
        read_line_from(&mut self.inner)
    }

    /// Reads the next line as raw bytes, or returns `None` at end of input.
    ///
    /// Binary-safe version of [`read_line`](Rx::read_line) with the same semantics: the
    /// returned bytes include the trailing `b'\n'` if present, and a final line without one
    /// is returned as-is.
    ///
    /// # Errors
    ///
    /// Returns any error from reading stdin (or from the flush before it, see
    /// [the flushing rule](Rx#flushing-before-blocking)).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let (mut rx, mut tx) = wasmpipe_guest::duplex();
    /// while let Some(line) = rx.read_line_bytes()? {
    ///     tx.write(&line)?;
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn read_line_bytes(&mut self) -> io::Result<Option<Vec<u8>>> {
        read_line_bytes_from(&mut self.inner)
    }
}

impl Default for Rx {
    fn default() -> Self {
        Self::new()
    }
}

impl Read for Rx {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }

    fn read_to_end(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        self.inner.read_to_end(buf)
    }
}

impl BufRead for Rx {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        self.inner.consume(amount);
    }
}

/// Raw fd 0. `BufReader` only calls [`Stdin::read`] once its buffer is empty, which is
/// exactly when the pending output must go out.
#[derive(Debug)]
struct Stdin;

impl Read for Stdin {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        out::flush()?;
        sys::stdin().read(buf)
    }
}

fn read_line_bytes_from(reader: &mut impl BufRead) -> io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    match reader.read_until(b'\n', &mut line)? {
        0 => Ok(None),
        _ => Ok(Some(line)),
    }
}

fn read_line_from(reader: &mut impl BufRead) -> io::Result<Option<String>> {
    read_line_bytes_from(reader)?
        .map(|line| String::from_utf8(line).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Returns at most `step` bytes per `read`, to exercise lines split across reads.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// Splits `data` into lines through a tiny buffer fed a few bytes at a time.
    fn lines(data: &[u8], step: usize) -> Vec<Vec<u8>> {
        let mut reader = BufReader::with_capacity(4, Trickle { data, step });
        std::iter::from_fn(|| read_line_bytes_from(&mut reader).unwrap()).collect()
    }

    #[test]
    fn lines_keep_their_newline_and_the_last_may_lack_it() {
        for step in 1..=5 {
            assert_eq!(
                lines(b"one\n\ntwo\r\nlonger line\nlast", step),
                [&b"one\n"[..], b"\n", b"two\r\n", b"longer line\n", b"last"],
                "step {step}"
            );
        }
    }

    #[test]
    fn empty_input_has_no_lines() {
        assert!(lines(b"", 1).is_empty());
    }

    #[test]
    fn input_ending_in_newline_has_no_empty_last_line() {
        assert_eq!(lines(b"a\nb\n", 3), [b"a\n", b"b\n"]);
    }

    #[test]
    fn lines_are_binary_safe() {
        assert_eq!(lines(b"\0\xff\n\x80", 2), [&b"\0\xff\n"[..], b"\x80"]);
    }

    #[test]
    fn text_lines() {
        let mut reader = "héllo\nwörld".as_bytes();
        assert_eq!(read_line_from(&mut reader).unwrap().as_deref(), Some("héllo\n"));
        assert_eq!(read_line_from(&mut reader).unwrap().as_deref(), Some("wörld"));
        assert_eq!(read_line_from(&mut reader).unwrap(), None);
    }

    #[test]
    fn invalid_utf8_is_invalid_data_and_consumes_the_line() {
        let mut reader = &b"bad \xff\nok\n"[..];
        let err = read_line_from(&mut reader).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(read_line_from(&mut reader).unwrap().as_deref(), Some("ok\n"));
    }
}
