//! [`Rx`]: the buffered receiving end, reading the guest's stdin.

use std::io::{self, BufRead, BufReader, Read};

use crate::frames::Frames;
use crate::lines::Lines;
use crate::{out, sys};

/// Size of the input buffer: stdin is read in chunks of up to this many bytes.
const CAPACITY: usize = 64 * 1024;

/// The receiving end of the pipe: buffered reads from stdin (fd 0).
///
/// `Rx` has its own 64 KiB buffer and reads fd 0 directly, without going through
/// [`std::io::Stdin`]'s buffer. It implements [`Read`] and [`BufRead`], so everything from
/// [`Read::read_exact`] to [`Read::read_to_end`] works on it, and adds the convenience
/// methods [`read_line`](Rx::read_line) and [`read_line_bytes`](Rx::read_line_bytes), binary
/// frames with [`recv_frame`](Rx::recv_frame), and (with the `json` feature) typed JSON Lines
/// messages with `recv`.
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
    lines: Lines,
    frames: Frames,
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
        Self { inner: BufReader::with_capacity(CAPACITY, Stdin), lines: Lines::new(), frames: Frames::new() }
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
        let line = read_line_bytes_from(&mut self.inner)?;
        self.count(&line);
        line.map(into_string).transpose()
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
        let line = read_line_bytes_from(&mut self.inner)?;
        self.count(&line);
        Ok(line)
    }

    /// Keeps the line numbers in `recv`'s errors those of the whole stream.
    fn count(&mut self, line: &Option<Vec<u8>>) {
        if line.is_some() {
            self.lines.count_one();
        }
    }

    /// Reads the next line as one JSON value of type `T` (JSON Lines), or returns `None` at
    /// end of input. Requires the `json` feature.
    ///
    /// A line is UTF-8 JSON ended by `'\n'` (the last line may lack it); surrounding
    /// whitespace, `'\r'` included, is ignored. Lines are numbered from 1 over everything this
    /// `Rx` has read as lines, [`read_line`](Rx::read_line) included. At most
    /// [the maximum line length](Rx::set_max_line_length) is buffered.
    ///
    /// # Errors
    ///
    /// Each of these consumes the offending line, so the next call reads the line after it:
    ///
    /// - [`io::ErrorKind::InvalidData`] if the line is not a JSON `T` (the message names the
    ///   line number, serde's reason and the column);
    /// - [`io::ErrorKind::InvalidData`] if the line is longer than the maximum (the message
    ///   names the line); the error comes as soon as the maximum is passed, and the next call
    ///   skips the rest of that line first.
    ///
    /// Any error from reading stdin (or from the flush before it, see
    /// [the flushing rule](Rx#flushing-before-blocking)) is returned as is.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// #[derive(serde::Deserialize)]
    /// struct Job { id: u64, text: String }
    ///
    /// let (mut rx, mut tx) = wasmpipe_guest::duplex();
    /// loop {
    ///     match rx.recv::<Job>() {
    ///         Ok(Some(job)) => tx.send(&(job.id, job.text.len()))?,
    ///         Ok(None) => break,
    ///         // A bad line is reported and skipped; the stream goes on.
    ///         Err(e) if e.kind() == std::io::ErrorKind::InvalidData => eprintln!("{e}"),
    ///         Err(e) => return Err(e),
    ///     }
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[cfg(feature = "json")]
    pub fn recv<T: serde::de::DeserializeOwned>(&mut self) -> io::Result<Option<T>> {
        recv_from(&mut self.lines, &mut self.inner)
    }

    /// Sets the maximum length of a line read by `recv`, in bytes including the
    /// `'\n'`; the default is [`DEFAULT_MAX_LINE_LENGTH`](crate::DEFAULT_MAX_LINE_LENGTH), 1 MiB.
    /// [`read_line`](Rx::read_line) is not limited.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut rx = wasmpipe_guest::Rx::new();
    /// rx.set_max_line_length(64 * 1024);
    /// ```
    pub fn set_max_line_length(&mut self, max: usize) {
        self.lines.set_max(max);
    }

    /// Reads the next binary frame and returns its payload, or `None` if input ends cleanly
    /// between two frames.
    ///
    /// A frame is a 4-byte big-endian payload length followed by that many bytes: the default
    /// layout of tokio-util's `LengthDelimitedCodec`, which is what the host's frame API
    /// speaks (see the README's wire formats).
    ///
    /// # Errors
    ///
    /// - [`io::ErrorKind::InvalidData`] if the header announces more than
    ///   [the maximum frame length](Rx::set_max_frame_length). This is decided from the header
    ///   alone, so nothing of the claimed size is allocated; the next call skips that payload
    ///   and reads the frame after it.
    /// - [`io::ErrorKind::UnexpectedEof`] if input ends inside a header or a payload (or while
    ///   skipping an oversized payload).
    ///
    /// Any error from reading stdin (or from the flush before it, see
    /// [the flushing rule](Rx#flushing-before-blocking)) is returned as is.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let (mut rx, mut tx) = wasmpipe_guest::duplex();
    /// while let Some(mut payload) = rx.recv_frame()? {
    ///     payload.reverse();
    ///     tx.send_frame(&payload)?;
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn recv_frame(&mut self) -> io::Result<Option<Vec<u8>>> {
        self.frames.read(&mut self.inner)
    }

    /// Sets the maximum payload length accepted by [`recv_frame`](Rx::recv_frame), in bytes;
    /// the default is [`DEFAULT_MAX_FRAME_LENGTH`](crate::DEFAULT_MAX_FRAME_LENGTH), 8 MiB.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut rx = wasmpipe_guest::Rx::new();
    /// rx.set_max_frame_length(1024);
    /// ```
    pub fn set_max_frame_length(&mut self, max: usize) {
        self.frames.set_max(max);
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

fn into_string(line: Vec<u8>) -> io::Result<String> {
    String::from_utf8(line).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
fn read_line_from(reader: &mut impl BufRead) -> io::Result<Option<String>> {
    read_line_bytes_from(reader)?.map(into_string).transpose()
}

/// [`Rx::recv`] over any reader, so it is testable without stdin.
#[cfg(feature = "json")]
fn recv_from<T: serde::de::DeserializeOwned>(lines: &mut Lines, reader: &mut impl BufRead) -> io::Result<Option<T>> {
    match lines.read(reader)? {
        Some((number, line)) => crate::json::parse(number, &line).map(Some),
        None => Ok(None),
    }
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

    #[cfg(feature = "json")]
    mod json {
        use super::*;

        #[derive(Debug, PartialEq, serde::Deserialize)]
        struct Msg {
            n: u32,
        }

        fn recv_all(input: &[u8], max: usize) -> Vec<Result<Msg, (io::ErrorKind, String)>> {
            let mut reader = BufReader::with_capacity(4, Trickle { data: input, step: 3 });
            let mut lines = Lines::new();
            lines.set_max(max);
            let mut out = Vec::new();
            loop {
                match recv_from::<Msg>(&mut lines, &mut reader) {
                    Ok(Some(msg)) => out.push(Ok(msg)),
                    Ok(None) => return out,
                    Err(e) => out.push(Err((e.kind(), e.to_string()))),
                }
            }
        }

        #[test]
        fn good_messages_in_any_layout() {
            let input = b"{\"n\":1}\n  { \"n\" : 2 }\r\n{\"n\":3}";
            assert_eq!(recv_all(input, 100), [Ok(Msg { n: 1 }), Ok(Msg { n: 2 }), Ok(Msg { n: 3 })]);
        }

        #[test]
        fn malformed_json_names_its_line_and_the_next_line_reads_fine() {
            let out = recv_all(b"{\"n\":1}\n{\"n\":\n\n{\"n\":4}\n", 100);
            let kind = io::ErrorKind::InvalidData;
            assert_eq!(
                out,
                [
                    Ok(Msg { n: 1 }),
                    Err((kind, "line 2: malformed JSON: EOF while parsing a value at column 5".into())),
                    Err((kind, "line 3: malformed JSON: EOF while parsing a value at column 0".into())),
                    Ok(Msg { n: 4 }),
                ]
            );
        }

        #[test]
        fn an_over_long_line_is_an_error_and_the_next_line_reads_fine() {
            let long = format!("{{\"n\":1,\"pad\":\"{}\"}}\n{{\"n\":2}}\n", "x".repeat(100));
            let out = recv_all(long.as_bytes(), 32);
            assert_eq!(
                out,
                [
                    Err((io::ErrorKind::InvalidData, "line 1: longer than the maximum of 32 bytes".into())),
                    Ok(Msg { n: 2 }),
                ]
            );
        }

        #[test]
        fn wrong_shape_is_malformed_too() {
            let out = recv_all(b"[1,2]\n", 100);
            assert!(matches!(&out[..], [Err((io::ErrorKind::InvalidData, m))] if m.starts_with("line 1: ")), "{out:?}");
        }
    }
}
