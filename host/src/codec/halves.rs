//! Typed messages directly on the pipe halves: `recv`/`send` (JSON Lines) and
//! `recv_frame`/`send_frame` (binary frames), for code that does not want `Framed`.

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::AsyncBufReadExt;

use super::frame_assembler::Fed;
use super::frames::{header, unexpected_eof};
use super::json_lines::{encode_line, parse_line};
use crate::error::{Error, Result};
use crate::pipe::{AsyncReader, AsyncWriter};

/// Payloads up to this size go out in one write together with their header; larger ones in two
/// writes rather than being copied.
const COALESCE_LIMIT: usize = 64 * 1024;

impl AsyncReader {
    /// Reads the next line as one JSON value of type `T` (JSON Lines); `Ok(None)` at EOF.
    ///
    /// The line is read by [`read_line`](Self::read_line), so it is bounded by the same
    /// [maximum](Self::set_max_line_length) and numbered with the lines read before it; the
    /// last line of the stream may lack its `\n`, and whitespace around the value (`\r`
    /// included) is ignored. Cancel-safe, like `read_line`.
    ///
    /// # Errors
    ///
    /// Each bad line is consumed, so the next call reads the line after it:
    ///
    /// - [`Error::MalformedJson`] if the line is not a JSON `T`, with its line number, serde's
    ///   reason and the column;
    /// - [`Error::LineTooLong`] if it passes the maximum (with at most the maximum buffered).
    ///
    /// Otherwise [`Error::Io`] if reading failed.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), wasmpipe::Error> {
    /// #[derive(serde::Deserialize, Debug, PartialEq)]
    /// struct Reply { ok: bool }
    ///
    /// let (rx, tx) = wasmpipe::pipe()?;
    /// let (mut rx, mut tx) = (rx.open()?, tx.open()?);
    /// tx.write_all(b"{\"ok\": true}\n{oops\n{\"ok\": false}\n").await?;
    /// assert_eq!(rx.recv::<Reply>().await?, Some(Reply { ok: true }));
    /// let err = rx.recv::<Reply>().await.unwrap_err();
    /// assert!(matches!(err, wasmpipe::Error::MalformedJson { line: 2, .. }), "{err}");
    /// assert_eq!(rx.recv::<Reply>().await?, Some(Reply { ok: false })); // the stream goes on
    /// # Ok(()) }
    /// ```
    pub async fn recv<T: DeserializeOwned>(&mut self) -> Result<Option<T>> {
        match self.read_line().await? {
            Some(line) => parse_line(self.lines.count(), &line).map(Some),
            None => Ok(None),
        }
    }

    /// Reads the next binary frame (a `u32` big-endian length, then the payload) and returns its
    /// payload; `Ok(None)` if the stream ends cleanly between frames.
    ///
    /// The format is that of [`FrameCodec`](crate::codec::FrameCodec), tokio-util's
    /// `LengthDelimitedCodec` defaults and the guest SDK's `send_frame`. Cancel-safe: a partial
    /// frame is kept for the next call. Do not mix with the line methods in the middle of a
    /// frame.
    ///
    /// # Errors
    ///
    /// - [`Error::FrameTooLarge`] if the header announces more than the
    ///   [maximum](Self::set_max_frame_length). Decided from the header alone, so nothing of the
    ///   claimed size is allocated; the payload is skipped and the next call reads the frame
    ///   after it.
    /// - [`Error::Io`] of kind [`std::io::ErrorKind::UnexpectedEof`] if the stream ends inside a
    ///   header or a payload (the skipped one included).
    /// - [`Error::Io`] if reading failed.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), wasmpipe::Error> {
    /// let (rx, tx) = wasmpipe::pipe()?;
    /// let (mut rx, mut tx) = (rx.open()?, tx.open()?);
    /// tx.send_frame(b"\x00\xff").await?;
    /// tx.write_all(&[0, 0, 0, 9, b'c', b'u', b't']).await?; // 9 bytes announced, 3 sent
    /// tx.shutdown().await?;
    /// assert_eq!(rx.recv_frame().await?, Some(vec![0, 0xff]));
    /// match rx.recv_frame().await {
    ///     Err(wasmpipe::Error::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof),
    ///     other => panic!("{other:?}"),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn recv_frame(&mut self) -> Result<Option<Vec<u8>>> {
        loop {
            let chunk = self.inner.fill_buf().await?;
            if chunk.is_empty() {
                return self.frames.finish().map(|()| None).map_err(|cut| unexpected_eof(&cut));
            }
            let chunk_len = chunk.len();
            match self.frames.feed(chunk) {
                Fed::NeedMore => self.inner.consume(chunk_len),
                Fed::Frame { payload, consumed } => {
                    self.inner.consume(consumed);
                    return Ok(Some(payload));
                }
                Fed::TooLarge { length, consumed } => {
                    self.inner.consume(consumed);
                    return Err(Error::FrameTooLarge { length, max: self.frames.max() });
                }
            }
        }
    }

    /// Sets the maximum payload length [`recv_frame`](Self::recv_frame) accepts, in bytes. The
    /// default is [`DEFAULT_MAX_FRAME_LENGTH`](crate::codec::DEFAULT_MAX_FRAME_LENGTH), 8 MiB.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// let (rx, _tx) = wasmpipe::pipe()?;
    /// let mut rx = rx.open()?;
    /// rx.set_max_frame_length(64 * 1024);
    /// # Ok(()) }
    /// ```
    pub fn set_max_frame_length(&mut self, max: usize) {
        self.frames.set_max(max);
    }
}

impl AsyncWriter {
    /// Writes `value` as one line of compact JSON followed by `\n` (JSON Lines).
    ///
    /// Compact JSON escapes newlines inside strings, so a value is always exactly one line. Not
    /// cancel-safe, like [`write_all`](Self::write_all): a cancelled send may leave part of a
    /// line in the pipe.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] of kind [`std::io::ErrorKind::InvalidInput`] if `value` cannot be
    /// serialized (nothing is written then), or as for [`write_all`](Self::write_all).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), wasmpipe::Error> {
    /// let (rx, tx) = wasmpipe::pipe()?;
    /// let (mut rx, mut tx) = (rx.open()?, tx.open()?);
    /// tx.send(&serde_json::json!({ "id": 1, "text": "two\nlines" })).await?;
    /// assert_eq!(rx.read_line().await?.unwrap(), b"{\"id\":1,\"text\":\"two\\nlines\"}\n");
    /// # Ok(()) }
    /// ```
    pub async fn send<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        let line = encode_line(value)?;
        Ok(self.write_all(&line).await?)
    }

    /// Writes one binary frame: `payload`'s length as a `u32` big-endian, then `payload`.
    ///
    /// Not cancel-safe, like [`write_all`](Self::write_all).
    ///
    /// # Errors
    ///
    /// [`Error::FrameTooLarge`] if `payload` is longer than the
    /// [maximum](Self::set_max_frame_length) (nothing is written then), or as for
    /// [`write_all`](Self::write_all).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), wasmpipe::Error> {
    /// let (rx, tx) = wasmpipe::pipe()?;
    /// let (mut rx, mut tx) = (rx.open()?, tx.open()?);
    /// tx.send_frame(b"abc").await?;
    /// tx.shutdown().await?;
    /// let mut wire = Vec::new();
    /// rx.read_to_end(&mut wire).await?;
    /// assert_eq!(wire, b"\x00\x00\x00\x03abc");
    /// # Ok(()) }
    /// ```
    pub async fn send_frame(&mut self, payload: &[u8]) -> Result<()> {
        let header = header(payload.len(), self.max_frame)?;
        if payload.len() <= COALESCE_LIMIT {
            // One write, so a small frame costs one syscall (the writer is unbuffered).
            self.write_all(&[&header[..], payload].concat()).await?;
        } else {
            self.write_all(&header).await?;
            self.write_all(payload).await?;
        }
        Ok(())
    }

    /// Sets the maximum payload length [`send_frame`](Self::send_frame) accepts, in bytes. The
    /// default is [`DEFAULT_MAX_FRAME_LENGTH`](crate::codec::DEFAULT_MAX_FRAME_LENGTH), 8 MiB,
    /// the guest SDK's default limit for reading.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), wasmpipe::Error> {
    /// let (_rx, tx) = wasmpipe::pipe()?;
    /// let mut tx = tx.open()?;
    /// tx.set_max_frame_length(4);
    /// let err = tx.send_frame(b"too long").await.unwrap_err();
    /// assert!(matches!(err, wasmpipe::Error::FrameTooLarge { length: 8, max: 4 }));
    /// # Ok(()) }
    /// ```
    pub fn set_max_frame_length(&mut self, max: usize) {
        self.max_frame = max;
    }
}
