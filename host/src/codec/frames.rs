//! Binary frames as a tokio-util codec: a 4-byte big-endian length, then the payload.

use bytes::{Buf, BufMut, BytesMut};
use std::io;
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

use super::frame_assembler::{Fed, FrameAssembler, HEADER_LEN};
use crate::error::{Error, Result};

/// Default maximum payload length of a frame: 8 MiB, the default of tokio-util's
/// [`LengthDelimitedCodec`] and of the guest SDK.
pub const DEFAULT_MAX_FRAME_LENGTH: usize = 8 << 20;

/// A [`Decoder`] and [`Encoder`] of length-prefixed binary frames with typed errors.
///
/// The wire format is the default one of tokio-util's [`LengthDelimitedCodec`] (a `u32`
/// big-endian payload length, then the payload) and of the guest SDK's `recv_frame` /
/// `send_frame`; the README's "Wire formats" section specifies it for other languages.
/// Compared with a [`length_delimited_codec`], errors are typed and a stream survives an
/// oversized frame:
///
/// - a header announcing more than the maximum is [`Error::FrameTooLarge`] at once, before
///   any of its payload is buffered, and the payload is then skipped;
/// - input that ends inside a frame is [`Error::Io`] of kind [`io::ErrorKind::UnexpectedEof`].
///
/// The decoder takes every byte it is given and keeps a partial frame itself (never more than
/// the frame's announced length, hence never more than the maximum), so a `FramedRead`'s buffer
/// stays at one read's worth.
///
/// With tokio-util's `FramedRead`, note that after any decoder error the stream yields `None`
/// once and then, if polled again, waits for *new* input before decoding what it had already
/// buffered. To keep reading past an oversized frame, prefer
/// [`AsyncReader::recv_frame`](crate::AsyncReader::recv_frame), which uses the same decoder.
///
/// # Examples
///
/// ```
/// use futures_util::{SinkExt, StreamExt};
/// use wasmpipe::codec::{FrameCodec, FramedRead, FramedWrite};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), wasmpipe::Error> {
/// let (rx, tx) = wasmpipe::pipe()?;
/// let mut sink = FramedWrite::new(tx.open()?, FrameCodec::new());
/// let mut frames = FramedRead::new(rx.open()?, FrameCodec::new());
/// sink.send(&b"\x00binary\n"[..]).await?;
/// assert_eq!(frames.next().await.transpose()?, Some(b"\x00binary\n".to_vec()));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct FrameCodec {
    frames: FrameAssembler,
}

impl FrameCodec {
    /// A codec with the default maximum, [`DEFAULT_MAX_FRAME_LENGTH`].
    ///
    /// # Examples
    ///
    /// ```
    /// use wasmpipe::codec::{DEFAULT_MAX_FRAME_LENGTH, FrameCodec};
    /// assert_eq!(FrameCodec::new().max_length(), DEFAULT_MAX_FRAME_LENGTH);
    /// ```
    pub fn new() -> Self {
        Self::with_max_length(DEFAULT_MAX_FRAME_LENGTH)
    }

    /// A codec that rejects payloads longer than `max` bytes, both decoding and encoding.
    ///
    /// # Examples
    ///
    /// ```
    /// let codec = wasmpipe::codec::FrameCodec::with_max_length(64 * 1024);
    /// assert_eq!(codec.max_length(), 64 * 1024);
    /// ```
    pub fn with_max_length(max: usize) -> Self {
        Self { frames: FrameAssembler::new(max) }
    }

    /// The maximum payload length, in bytes.
    pub fn max_length(&self) -> usize {
        self.frames.max()
    }

    #[cfg(test)]
    pub(crate) fn buffered_capacity(&self) -> usize {
        self.frames.buffered_capacity()
    }
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder for FrameCodec {
    type Item = Vec<u8>;
    type Error = Error;

    /// Takes all of `src` and returns the next complete payload, if any.
    ///
    /// # Errors
    ///
    /// [`Error::FrameTooLarge`] for a header announcing more than the maximum; decoding goes on
    /// after its payload.
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Vec<u8>>> {
        match self.frames.feed(src) {
            Fed::NeedMore => {
                src.clear();
                Ok(None)
            }
            Fed::Frame { payload, consumed } => {
                src.advance(consumed);
                Ok(Some(payload))
            }
            Fed::TooLarge { length, consumed } => {
                src.advance(consumed);
                Err(Error::FrameTooLarge { length, max: self.frames.max() })
            }
        }
    }

    /// As [`decode`](Self::decode), at the end of input.
    ///
    /// # Errors
    ///
    /// As for `decode`, and [`Error::Io`] of kind [`io::ErrorKind::UnexpectedEof`] if input
    /// ended inside a frame.
    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Vec<u8>>> {
        match self.decode(src)? {
            Some(payload) => Ok(Some(payload)),
            None => self.frames.finish().map(|()| None).map_err(|cut| unexpected_eof(&cut)),
        }
    }
}

pub(crate) fn unexpected_eof(cut: &impl std::fmt::Display) -> Error {
    Error::Io(io::Error::new(io::ErrorKind::UnexpectedEof, cut.to_string()))
}

/// The length prefix for a payload of `len` bytes, if it is within `max`.
pub(crate) fn header(len: usize, max: usize) -> Result<[u8; HEADER_LEN]> {
    match u32::try_from(len) {
        Ok(prefix) if len <= max => Ok(prefix.to_be_bytes()),
        _ => Err(Error::FrameTooLarge { length: len as u64, max }),
    }
}

// One item type only, so that `SinkExt::close`/`flush` on a `FramedWrite` can infer it.
impl Encoder<&[u8]> for FrameCodec {
    type Error = Error;

    /// Appends the frame of `payload` to `dst`.
    ///
    /// # Errors
    ///
    /// [`Error::FrameTooLarge`] if `payload` is longer than the maximum (or than `u32::MAX`);
    /// nothing is appended then.
    fn encode(&mut self, payload: &[u8], dst: &mut BytesMut) -> Result<()> {
        dst.reserve(HEADER_LEN + payload.len());
        dst.put_slice(&header(payload.len(), self.frames.max())?);
        dst.put_slice(payload);
        Ok(())
    }
}

/// tokio-util's own [`LengthDelimitedCodec`], set to the same wire format as [`FrameCodec`] and
/// the guest SDK, with the maximum payload length `max`.
///
/// Use it when you want tokio-util's behaviour exactly (`BytesMut` frames, untyped
/// [`io::Error`]s of kind `InvalidData` for an oversized frame, and no skipping past one);
/// [`FrameCodec`] is the typed equivalent.
///
/// # Examples
///
/// ```
/// use futures_util::{SinkExt, StreamExt};
/// use wasmpipe::codec::{Bytes, FramedRead, FramedWrite, length_delimited_codec};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// let (rx, tx) = wasmpipe::pipe()?;
/// let mut sink = FramedWrite::new(tx.open()?, length_delimited_codec(1024));
/// sink.send(Bytes::from_static(b"hi")).await?;
/// let mut frames = FramedRead::new(rx.open()?, length_delimited_codec(1024));
/// assert_eq!(&frames.next().await.unwrap()?[..], b"hi");
/// # Ok(()) }
/// ```
pub fn length_delimited_codec(max: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder().length_field_type::<u32>().big_endian().max_frame_length(max).new_codec()
}
