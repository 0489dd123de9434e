//! Real OS pipes for talking to child processes: the aiopipe model in Rust.
//!
//! The user-facing story is in the crate docs (`# Pipes`), where users can see it.

use crate::codec::{DEFAULT_MAX_FRAME_LENGTH, FrameAssembler};
use crate::error::{Error, Result};
use crate::line::{Fed, LineAssembler};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::process::Stdio;
use std::task::{Context, Poll};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::unix::pipe;

/// Default maximum length of a line returned by [`AsyncReader::read_line`]: 1 MiB.
pub const DEFAULT_MAX_LINE_LENGTH: usize = 1 << 20;

/// Capacity of the parent's read buffer: big enough that bulk transfers take few syscalls.
const READ_BUFFER_CAPACITY: usize = 64 * 1024;

/// Creates a simplex pipe: bytes written to the [`PipeWriter`] come out of the [`PipeReader`].
///
/// Both ends are `O_CLOEXEC` and blocking until [opened](PipeReader::open).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), wasmpipe::Error> {
/// let (rx, tx) = wasmpipe::pipe()?;
/// let (mut rx, mut tx) = (rx.open()?, tx.open()?);
/// tx.write_all(b"hello\n").await?;
/// tx.shutdown().await?;
/// assert_eq!(rx.read_line().await?, Some(b"hello\n".to_vec()));
/// assert_eq!(rx.read_line().await?, None);
/// # Ok(()) }
/// ```
///
/// # Errors
///
/// `pipe2` failed: typically the process or system ran out of file descriptors (`EMFILE`,
/// `ENFILE`).
pub fn pipe() -> io::Result<(PipeReader, PipeWriter)> {
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    Ok((PipeReader { fd: read }, PipeWriter { fd: write }))
}

/// Creates a duplex pipe: two [`Duplex`] ends, where what one end writes the other reads.
///
/// Typically one end stays in the parent and the other is handed to a sandbox with
/// [`Sandbox::duplex`](crate::Sandbox::duplex), where it becomes the guest's stdin and stdout.
///
/// # Errors
///
/// As for [`pipe()`]: creating one of the two pipes failed.
pub fn duplex() -> io::Result<(Duplex, Duplex)> {
    let (a_rx, b_tx) = pipe()?;
    let (b_rx, a_tx) = pipe()?;
    Ok((Duplex { rx: a_rx, tx: a_tx }, Duplex { rx: b_rx, tx: b_tx }))
}

/// The receiving end of a pipe, not yet opened for async use.
#[derive(Debug)]
pub struct PipeReader {
    fd: OwnedFd,
}

/// The sending end of a pipe, not yet opened for async use.
#[derive(Debug)]
pub struct PipeWriter {
    fd: OwnedFd,
}

/// One end of a duplex pipe: the receiving half of one pipe and the sending half of another.
#[derive(Debug)]
pub struct Duplex {
    rx: PipeReader,
    tx: PipeWriter,
}

impl PipeReader {
    /// Opens this end in the parent for async reading (aiopipe's `open`). Must be called within a
    /// tokio runtime.
    ///
    /// # Errors
    ///
    /// The fd cannot be made non-blocking or registered with tokio's I/O driver (for example
    /// when the runtime was built without I/O enabled).
    pub fn open(self) -> io::Result<AsyncReader> {
        let receiver = pipe::Receiver::from_owned_fd(self.fd)?;
        Ok(AsyncReader {
            inner: BufReader::with_capacity(READ_BUFFER_CAPACITY, receiver),
            lines: LineAssembler::new(DEFAULT_MAX_LINE_LENGTH),
            frames: FrameAssembler::new(DEFAULT_MAX_FRAME_LENGTH),
        })
    }
}

impl PipeWriter {
    /// Opens this end in the parent for async writing (aiopipe's `open`). Must be called within a
    /// tokio runtime.
    ///
    /// # Errors
    ///
    /// As for [`PipeReader::open`].
    pub fn open(self) -> io::Result<AsyncWriter> {
        Ok(AsyncWriter { inner: Some(pipe::Sender::from_owned_fd(self.fd)?), max_frame: DEFAULT_MAX_FRAME_LENGTH })
    }
}

impl Duplex {
    /// Opens both halves for async use, as `(reader, writer)`.
    ///
    /// # Errors
    ///
    /// As for [`PipeReader::open`], for either half.
    pub fn open(self) -> io::Result<(AsyncReader, AsyncWriter)> {
        Ok((self.rx.open()?, self.tx.open()?))
    }

    /// Splits this end into its unopened halves.
    pub fn into_parts(self) -> (PipeReader, PipeWriter) {
        (self.rx, self.tx)
    }
}

macro_rules! fd_conversions {
    ($end:ty) => {
        impl AsFd for $end {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.fd.as_fd()
            }
        }
        impl AsRawFd for $end {
            fn as_raw_fd(&self) -> RawFd {
                self.fd.as_raw_fd()
            }
        }
        impl From<$end> for OwnedFd {
            /// Gives up the end as a plain descriptor (still `O_CLOEXEC`).
            fn from(end: $end) -> OwnedFd {
                end.fd
            }
        }
        impl From<$end> for Stdio {
            /// Hands the end to a `std::process::Command` child as one of its stdio streams.
            fn from(end: $end) -> Stdio {
                Stdio::from(end.fd)
            }
        }
    };
}
fd_conversions!(PipeReader);
fd_conversions!(PipeWriter);

/// The parent's async receiving half: buffered, with a bounded [`read_line`](Self::read_line).
///
/// Typed messages come with [`recv`](Self::recv) (JSON Lines) and
/// [`recv_frame`](Self::recv_frame) (binary frames); see [`codec`](crate::codec).
///
/// Implements tokio's [`AsyncRead`] and [`AsyncBufRead`], so every `tokio::io` utility works on
/// it too, and tokio-util's `FramedRead` with the codecs of [`codec`](crate::codec).
#[derive(Debug)]
pub struct AsyncReader {
    // Crate-visible for the typed message methods in `codec::halves`.
    pub(crate) inner: BufReader<pipe::Receiver>,
    pub(crate) lines: LineAssembler,
    pub(crate) frames: FrameAssembler,
}

impl AsyncReader {
    /// Reads one line, `\n` included; the last line of the stream may lack it. `Ok(None)` at EOF.
    ///
    /// A line longer than the [maximum](Self::set_max_line_length) fails with
    /// [`Error::LineTooLong`] as soon as the limit is passed, without buffering the rest; the
    /// remainder of that line is skipped and the next call returns the line after it.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: if the future is dropped before completing, the bytes of a partial line are
    /// kept and the next call continues where it stopped.
    ///
    /// # Errors
    ///
    /// [`Error::LineTooLong`](crate::Error::LineTooLong) for a line over the maximum (see
    /// above), [`Error::Io`](crate::Error::Io) when reading the pipe fails.
    pub async fn read_line(&mut self) -> Result<Option<Vec<u8>>> {
        loop {
            let chunk = self.inner.fill_buf().await?;
            if chunk.is_empty() {
                return Ok(self.lines.finish());
            }
            let chunk_len = chunk.len();
            match self.lines.feed(chunk) {
                Fed::NeedMore => self.inner.consume(chunk_len),
                Fed::Line { line, consumed } => {
                    self.inner.consume(consumed);
                    return Ok(Some(line));
                }
                Fed::TooLong { consumed } => {
                    self.inner.consume(consumed);
                    return Err(Error::LineTooLong { limit: self.lines.max() });
                }
            }
        }
    }

    /// Sets the maximum line length for [`read_line`](Self::read_line), in bytes including the
    /// `\n`. The default is [`DEFAULT_MAX_LINE_LENGTH`].
    pub fn set_max_line_length(&mut self, max: usize) {
        self.lines.set_max(max);
    }

    /// Reads exactly `buf.len()` bytes; fails with `UnexpectedEof` if the stream ends first.
    ///
    /// # Errors
    ///
    /// `UnexpectedEof` as said, or the read failed.
    pub async fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        AsyncReadExt::read_exact(&mut self.inner, buf).await.map(drop)
    }

    /// Reads everything up to EOF, appending to `buf`; returns the number of bytes read.
    ///
    /// # Errors
    ///
    /// A read failed; what was read until then is in `buf`.
    pub async fn read_to_end(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        AsyncReadExt::read_to_end(&mut self.inner, buf).await
    }

    /// Closes the reader. Dropping it does the same; a writer on the other side then gets
    /// `BrokenPipe`.
    pub fn close(self) {}
}

impl AsyncRead for AsyncReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncBufRead for AsyncReader {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        Pin::new(&mut self.get_mut().inner).poll_fill_buf(cx)
    }

    fn consume(mut self: Pin<&mut Self>, amt: usize) {
        Pin::new(&mut self.inner).consume(amt)
    }
}

/// The parent's async sending half.
///
/// Typed messages go out with [`send`](Self::send) (JSON Lines) and
/// [`send_frame`](Self::send_frame) (binary frames); it implements tokio's [`AsyncWrite`], so
/// tokio-util's `FramedWrite` works with the codecs of [`codec`](crate::codec) too.
///
/// Unbuffered: every write goes straight to the pipe, so [`flush`](Self::flush) has nothing to do
/// but exists for symmetry. [`shutdown`](Self::shutdown) closes the descriptor, which is how the
/// child learns of EOF; it is idempotent, and writing after it fails with `BrokenPipe`.
#[derive(Debug)]
pub struct AsyncWriter {
    inner: Option<pipe::Sender>,
    /// Largest payload `send_frame` (in `codec::halves`) accepts.
    pub(crate) max_frame: usize,
}

impl AsyncWriter {
    /// Writes all of `buf`. Fails with `BrokenPipe` if the reading side has gone (e.g. the guest
    /// exited).
    ///
    /// # Errors
    ///
    /// `BrokenPipe` as said, or the write failed otherwise.
    pub async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        AsyncWriteExt::write_all(self, buf).await
    }

    /// Flushes buffered data (there is none; see the type docs).
    ///
    /// # Errors
    ///
    /// None in practice: there is nothing to flush.
    pub async fn flush(&mut self) -> io::Result<()> {
        AsyncWriteExt::flush(self).await
    }

    /// Closes the pipe so the reader sees EOF. Calling it again does nothing.
    ///
    /// # Errors
    ///
    /// None in practice: closing an fd we own cannot fail in a way that leaves it open.
    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.inner = None;
        Ok(())
    }

    fn sender(&mut self) -> io::Result<&mut pipe::Sender> {
        self.inner.as_mut().ok_or_else(|| io::Error::new(io::ErrorKind::BrokenPipe, "pipe writer was shut down"))
    }
}

impl AsyncWrite for AsyncWriter {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut().sender() {
            Ok(sender) => Pin::new(sender).poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().sender() {
            Ok(sender) => Pin::new(sender).poll_write_vectored(cx, bufs),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().inner = None;
        Poll::Ready(Ok(()))
    }
}
