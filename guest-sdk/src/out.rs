//! The process-global output buffer shared by every [`Tx`](crate::Tx).
//!
//! Keeping a single buffer (rather than one per `Tx`) is what lets an independently created
//! [`Rx`](crate::Rx) flush pending output before it blocks on input.

use std::io::{self, Write};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::sys;

/// Size of the output buffer: output reaches fd 1 in writes of up to this many bytes.
pub(crate) const CAPACITY: usize = 64 * 1024;

static GLOBAL: Mutex<OutBuf> = Mutex::new(OutBuf::new());

/// Appends every part to the global buffer, writing to stdout whenever it fills up.
///
/// The parts are appended under one lock, so they are never interleaved with other writes.
pub(crate) fn write_all(parts: &[&[u8]]) -> io::Result<()> {
    let mut out = lock();
    let mut sink = sys::stdout();
    parts.iter().try_for_each(|part| out.write_all(&mut *sink, part))
}

/// Writes everything buffered so far to stdout.
pub(crate) fn flush() -> io::Result<()> {
    lock().flush(&mut *sys::stdout())
}

fn lock() -> MutexGuard<'static, OutBuf> {
    // The buffer is a plain byte vector that is consistent between calls, so a panic in
    // another thread while it held the lock leaves nothing to repair.
    GLOBAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A write buffer that is independent of where its bytes go, so its logic is testable.
#[derive(Debug)]
pub(crate) struct OutBuf {
    buf: Vec<u8>,
}

impl OutBuf {
    pub(crate) const fn new() -> Self {
        Self { buf: Vec::new() }
    }

    /// Buffers `data`, first flushing to `sink` if it would not fit. Data at least as large
    /// as the whole buffer skips it and goes to `sink` in one write.
    pub(crate) fn write_all(&mut self, sink: &mut impl Write, data: &[u8]) -> io::Result<()> {
        if self.buf.len() + data.len() > CAPACITY {
            self.flush(sink)?;
        }
        if data.len() >= CAPACITY {
            return sink.write_all(data);
        }
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(CAPACITY);
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    /// Writes the buffered bytes to `sink`. The buffer is emptied even if this fails: after
    /// a failed `write_all` it is unknown how much reached the sink, and retrying would
    /// duplicate output (or fail forever on a closed pipe).
    pub(crate) fn flush(&mut self, sink: &mut impl Write) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let result = sink.write_all(&self.buf);
        self.buf.clear();
        result?;
        sink.flush()
    }

    #[cfg(test)]
    pub(crate) fn buffered(&self) -> &[u8] {
        &self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that records each `write` call separately.
    #[derive(Default)]
    struct Calls(Vec<Vec<u8>>);

    impl Write for Calls {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.push(buf.to_vec());
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn small_writes_are_buffered_until_flush() {
        let (mut out, mut sink) = (OutBuf::new(), Calls::default());
        out.write_all(&mut sink, b"hello ").unwrap();
        out.write_all(&mut sink, b"world\n").unwrap();
        assert!(sink.0.is_empty());
        assert_eq!(out.buffered(), b"hello world\n");

        out.flush(&mut sink).unwrap();
        assert_eq!(sink.0, [b"hello world\n".to_vec()]);
        assert!(out.buffered().is_empty());
    }

    #[test]
    fn flushing_an_empty_buffer_writes_nothing() {
        let (mut out, mut sink) = (OutBuf::new(), Calls::default());
        out.flush(&mut sink).unwrap();
        assert!(sink.0.is_empty());
    }

    #[test]
    fn a_write_that_does_not_fit_flushes_first() {
        let (mut out, mut sink) = (OutBuf::new(), Calls::default());
        let almost_full = vec![b'a'; CAPACITY - 1];
        out.write_all(&mut sink, &almost_full).unwrap();
        out.write_all(&mut sink, b"b").unwrap();
        assert!(sink.0.is_empty(), "exactly full is still buffered");

        out.write_all(&mut sink, b"c").unwrap();
        assert_eq!(sink.0.len(), 1);
        assert_eq!(sink.0[0].len(), CAPACITY);
        assert_eq!(out.buffered(), b"c");
    }

    #[test]
    fn large_writes_bypass_the_buffer_in_order() {
        let (mut out, mut sink) = (OutBuf::new(), Calls::default());
        let large = vec![b'x'; CAPACITY];
        out.write_all(&mut sink, b"head").unwrap();
        out.write_all(&mut sink, &large).unwrap();
        assert_eq!(sink.0, [b"head".to_vec(), large]);
        assert!(out.buffered().is_empty());
    }

    #[test]
    fn a_failed_flush_discards_the_buffer() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }

        let mut out = OutBuf::new();
        out.write_all(&mut Broken, b"lost").unwrap();
        let err = out.flush(&mut Broken).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        assert!(out.buffered().is_empty());
    }
}
