//! JSON Lines as a tokio-util codec: one compact JSON value per `'\n'`-terminated line.

use bytes::{Buf, BufMut, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::io;
use std::marker::PhantomData;
use tokio_util::codec::{Decoder, Encoder};

use crate::error::{Error, Result};
use crate::line::{Fed, LineAssembler};
use crate::pipe::DEFAULT_MAX_LINE_LENGTH;

/// A [`Decoder`] and [`Encoder`] of JSON Lines messages of type `T`.
///
/// Each line is one UTF-8 JSON value ended by `'\n'` (the last line of a stream may lack it;
/// whitespace around the value, `'\r'` included, is ignored). Lines are split exactly as
/// [`AsyncReader::read_line`](crate::AsyncReader::read_line) splits them, with the same bound
/// and the same line numbers, so this codec and
/// [`AsyncReader::recv`](crate::AsyncReader::recv) agree byte for byte. Bad input never ends
/// the stream from the decoder's point of view:
///
/// - a line that is not a JSON `T` is [`Error::MalformedJson`], naming the line; the next
///   call decodes the next line;
/// - a line longer than the maximum is [`Error::LineTooLong`] as soon as the maximum is
///   passed, with at most the maximum buffered; the rest of that line is skipped.
///
/// With tokio-util's `FramedRead`, note that after any decoder error the stream yields `None`
/// once and then, if polled again, waits for *new* input before decoding what it had already
/// buffered. To keep reading past bad lines, prefer
/// [`AsyncReader::recv`](crate::AsyncReader::recv).
///
/// # Examples
///
/// ```
/// use futures_util::{SinkExt, StreamExt};
/// use wasmpipe::codec::{FramedRead, FramedWrite, JsonLinesCodec};
///
/// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
/// struct Job { id: u32 }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), wasmpipe::Error> {
/// let (rx, tx) = wasmpipe::pipe()?;
/// let mut sink = FramedWrite::new(tx.open()?, JsonLinesCodec::<Job>::new());
/// let mut jobs = FramedRead::new(rx.open()?, JsonLinesCodec::<Job>::new());
/// sink.send(Job { id: 1 }).await?;
/// assert_eq!(jobs.next().await.transpose()?, Some(Job { id: 1 }));
/// # Ok(()) }
/// ```
pub struct JsonLinesCodec<T> {
    lines: LineAssembler,
    _decodes: PhantomData<fn() -> T>,
}

impl<T> JsonLinesCodec<T> {
    /// A codec with the default maximum line length,
    /// [`DEFAULT_MAX_LINE_LENGTH`](crate::DEFAULT_MAX_LINE_LENGTH) (1 MiB).
    ///
    /// # Examples
    ///
    /// ```
    /// use wasmpipe::codec::JsonLinesCodec;
    /// let codec = JsonLinesCodec::<serde_json::Value>::new();
    /// assert_eq!(codec.max_length(), wasmpipe::DEFAULT_MAX_LINE_LENGTH);
    /// ```
    pub fn new() -> Self {
        Self::with_max_length(DEFAULT_MAX_LINE_LENGTH)
    }

    /// A codec whose decoder rejects lines longer than `max` bytes, `'\n'` included.
    ///
    /// # Examples
    ///
    /// ```
    /// let codec = wasmpipe::codec::JsonLinesCodec::<serde_json::Value>::with_max_length(4096);
    /// assert_eq!(codec.max_length(), 4096);
    /// ```
    pub fn with_max_length(max: usize) -> Self {
        Self { lines: LineAssembler::new(max), _decodes: PhantomData }
    }

    /// The maximum line length, in bytes including the `'\n'`.
    pub fn max_length(&self) -> usize {
        self.lines.max()
    }

    #[cfg(test)]
    pub(crate) fn buffered_capacity(&self) -> usize {
        self.lines.buffered_capacity()
    }
}

impl<T> Default for JsonLinesCodec<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> std::fmt::Debug for JsonLinesCodec<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonLinesCodec").field("lines", &self.lines).finish()
    }
}

impl<T: DeserializeOwned> Decoder for JsonLinesCodec<T> {
    type Item = T;
    type Error = Error;

    /// Takes all of `src` and returns the next complete message, if any.
    ///
    /// # Errors
    ///
    /// [`Error::MalformedJson`] or [`Error::LineTooLong`] for a bad line; decoding goes on
    /// with the next line.
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<T>> {
        match self.lines.feed(src) {
            Fed::NeedMore => {
                src.clear();
                Ok(None)
            }
            Fed::Line { line, consumed } => {
                src.advance(consumed);
                parse_line(self.lines.count(), &line).map(Some)
            }
            Fed::TooLong { consumed } => {
                src.advance(consumed);
                Err(Error::LineTooLong { limit: self.lines.max() })
            }
        }
    }

    /// As [`decode`](Self::decode), then the unterminated last line, if any.
    ///
    /// # Errors
    ///
    /// As for `decode`.
    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<T>> {
        match self.decode(src)? {
            Some(message) => Ok(Some(message)),
            None => self.lines.finish().map(|line| parse_line(self.lines.count(), &line)).transpose(),
        }
    }
}

// One item type only, so that `SinkExt::close`/`flush` on a `FramedWrite` can infer it. Use
// separate codecs (a `FramedRead` and a `FramedWrite`) when requests and replies differ.
impl<T: Serialize> Encoder<T> for JsonLinesCodec<T> {
    type Error = Error;

    /// Appends `value` as one line of compact JSON, `'\n'` included, to `dst`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] of kind [`io::ErrorKind::InvalidInput`] if `value` cannot be serialized
    /// (a map with non-string keys, a failing `Serialize` impl); nothing is appended then.
    fn encode(&mut self, value: T, dst: &mut BytesMut) -> Result<()> {
        let start = dst.len();
        if let Err(e) = serde_json::to_writer(dst.writer(), &value) {
            // serde_json may have written part of the value before failing.
            dst.truncate(start);
            return Err(serialize_error(e));
        }
        dst.put_u8(b'\n');
        Ok(())
    }
}

/// Parses line number `number` of a stream as one JSON value of type `T`.
pub(crate) fn parse_line<T: DeserializeOwned>(number: u64, line: &[u8]) -> Result<T> {
    // Without its terminator, so that serde's column is one within this line.
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    serde_json::from_slice(line).map_err(|e| {
        // serde counts lines within the text it was given, always 1 here: the stream's line
        // number replaces it, and only serde's reason and column are kept.
        let full = e.to_string();
        let position = format!(" at line {} column {}", e.line(), e.column());
        let message = full.strip_suffix(&position).unwrap_or(&full).to_owned();
        Error::MalformedJson { line: number, column: e.column(), message }
    })
}

/// `value` as one line of compact JSON, `'\n'` included.
pub(crate) fn encode_line<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut line = serde_json::to_vec(value).map_err(serialize_error)?;
    line.push(b'\n');
    Ok(line)
}

fn serialize_error(e: serde_json::Error) -> Error {
    Error::Io(io::Error::new(io::ErrorKind::InvalidInput, e))
}
