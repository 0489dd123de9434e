//! Bounded line reading for typed messages, independent of where the bytes come from.
//!
//! [`Rx::recv`](crate::Rx) must not let a peer that never sends `'\n'` grow the guest's memory
//! without bound, so unlike `BufRead::read_until` this gives up as soon as a line passes the
//! maximum, and skips the rest of that line on the next call.

use std::io::{self, BufRead};

/// Default maximum length of a message line, `'\n'` included: 1 MiB, as on the host.
pub const DEFAULT_MAX_LINE_LENGTH: usize = 1 << 20;

/// Line-splitting state kept across calls: the count for error messages, the limit, and
/// whether the rest of an over-long line still has to be skipped.
#[derive(Debug)]
pub(crate) struct Lines {
    /// Lines started so far (complete, over-long, or the unterminated last one).
    count: u64,
    max: usize,
    // Only `recv` (feature `json`) reads bounded lines; the count is kept regardless.
    #[cfg_attr(not(feature = "json"), allow(dead_code))]
    discarding: bool,
}

impl Lines {
    pub(crate) const fn new() -> Self {
        Self { count: 0, max: DEFAULT_MAX_LINE_LENGTH, discarding: false }
    }

    pub(crate) fn set_max(&mut self, max: usize) {
        // A line always holds at least one byte, so 0 would reject everything.
        self.max = max.max(1);
    }

    /// Counts a line read by other means (`read_line`), so numbers stay those of the stream.
    pub(crate) fn count_one(&mut self) -> u64 {
        self.count += 1;
        self.count
    }

    /// Reads the next line (with its `'\n'`, if any) and returns its 1-based number, or
    /// `None` at end of input.
    ///
    /// A line longer than the maximum is an [`io::ErrorKind::InvalidData`] error naming it; it
    /// is reported as soon as the maximum is passed, having buffered at most `max` bytes, and
    /// the next call first skips the rest of it.
    #[cfg_attr(not(feature = "json"), allow(dead_code))]
    pub(crate) fn read(&mut self, reader: &mut impl BufRead) -> io::Result<Option<(u64, Vec<u8>)>> {
        if self.discarding {
            if !skip_line(reader)? {
                return Ok(None);
            }
            self.discarding = false;
        }
        let mut line = Vec::new();
        loop {
            let chunk = reader.fill_buf()?;
            if chunk.is_empty() {
                if line.is_empty() {
                    return Ok(None);
                }
                return Ok(Some((self.count_one(), line)));
            }
            let newline = chunk.iter().position(|&b| b == b'\n');
            let wanted = newline.map_or(chunk.len(), |at| at + 1);
            if line.len() + wanted > self.max {
                reader.consume(wanted);
                self.discarding = newline.is_none();
                let number = self.count_one();
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("line {number}: longer than the maximum of {} bytes", self.max),
                ));
            }
            line.extend_from_slice(&chunk[..wanted]);
            reader.consume(wanted);
            if newline.is_some() {
                return Ok(Some((self.count_one(), line)));
            }
        }
    }
}

/// Consumes input up to and including the next `'\n'`; `false` if input ended first.
#[cfg_attr(not(feature = "json"), allow(dead_code))]
fn skip_line(reader: &mut impl BufRead) -> io::Result<bool> {
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(false);
        }
        match chunk.iter().position(|&b| b == b'\n') {
            Some(at) => {
                reader.consume(at + 1);
                return Ok(true);
            }
            None => {
                let len = chunk.len();
                reader.consume(len);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    fn all(input: &[u8], max: usize) -> Vec<Result<(u64, Vec<u8>), String>> {
        // A tiny buffer, so lines span many `fill_buf` calls.
        let mut reader = BufReader::with_capacity(3, input);
        let mut lines = Lines::new();
        lines.set_max(max);
        let mut out = Vec::new();
        loop {
            match lines.read(&mut reader) {
                Ok(Some(line)) => out.push(Ok(line)),
                Ok(None) => return out,
                Err(e) => {
                    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
                    out.push(Err(e.to_string()));
                }
            }
        }
    }

    #[test]
    fn lines_are_numbered_and_the_last_may_lack_its_newline() {
        assert_eq!(all(b"a\nbb\nc", 10), [Ok((1, b"a\n".to_vec())), Ok((2, b"bb\n".to_vec())), Ok((3, b"c".to_vec()))]);
        assert!(all(b"", 10).is_empty());
    }

    #[test]
    fn an_over_long_line_is_reported_once_and_skipped() {
        assert_eq!(
            all(b"ok\nmuch too long\nnext\n", 5),
            [
                Ok((1, b"ok\n".to_vec())),
                Err("line 2: longer than the maximum of 5 bytes".into()),
                Ok((3, b"next\n".to_vec())),
            ]
        );
        // Exactly the maximum, newline included, fits.
        assert_eq!(all(b"abcd\n", 5), [Ok((1, b"abcd\n".to_vec()))]);
    }

    #[test]
    fn an_endless_line_is_reported_without_reading_to_its_end() {
        // An infinite reader: if the error waited for the newline, this would never return.
        let mut endless = BufReader::with_capacity(16, io::repeat(b'x'));
        let mut lines = Lines::new();
        lines.set_max(100);
        let err = lines.read(&mut endless).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn an_over_long_last_line_then_eof_ends_cleanly() {
        assert_eq!(all(b"xxxxxxxx", 4), [Err("line 1: longer than the maximum of 4 bytes".into())]);
    }
}
