//! Length-prefixed binary frames: a 4-byte big-endian payload length, then the payload.
//!
//! This is the default layout of tokio-util's `LengthDelimitedCodec`, which is what the host
//! side speaks; the README's "Wire formats" section is the reference for other languages.

use std::io::{self, BufRead, Read};

/// Default maximum payload size of a frame: 8 MiB, the default of tokio-util's
/// `LengthDelimitedCodec` and of the host.
pub const DEFAULT_MAX_FRAME_LENGTH: usize = 8 << 20;

/// Size of the length prefix.
const HEADER_LEN: usize = 4;

/// Frame-reading state kept across calls: the limit, and how much of a rejected frame's
/// payload still has to be skipped before the next header.
#[derive(Debug)]
pub(crate) struct Frames {
    max: usize,
    skip: u64,
}

impl Frames {
    pub(crate) const fn new() -> Self {
        Self { max: DEFAULT_MAX_FRAME_LENGTH, skip: 0 }
    }

    pub(crate) fn set_max(&mut self, max: usize) {
        self.max = max;
    }

    /// Reads the next frame's payload, or `None` if input ends cleanly between frames.
    ///
    /// A payload longer than the maximum is an [`io::ErrorKind::InvalidData`] error, returned
    /// before any of it is read (nothing of the claimed size is allocated); the next call skips
    /// it. Input that ends inside a header or a payload is [`io::ErrorKind::UnexpectedEof`].
    pub(crate) fn read(&mut self, reader: &mut impl BufRead) -> io::Result<Option<Vec<u8>>> {
        if self.skip > 0 {
            let skipped = io::copy(&mut reader.take(self.skip), &mut io::sink())?;
            self.skip -= skipped;
            if self.skip > 0 {
                return Err(cut_short("the payload of an oversized frame"));
            }
        }
        let mut header = [0; HEADER_LEN];
        let got = read_up_to(reader, &mut header)?;
        if got == 0 {
            return Ok(None);
        }
        if got < HEADER_LEN {
            return Err(cut_short("a frame header"));
        }
        let len = u32::from_be_bytes(header);
        if u64::from(len) > self.max as u64 {
            self.skip = u64::from(len);
            return Err(too_large(u64::from(len), self.max));
        }
        // Grow with what actually arrives rather than trusting the header for an allocation:
        // a peer that claims the maximum and sends nothing costs one small buffer.
        let mut payload = Vec::with_capacity((len as usize).min(64 * 1024));
        reader.take(u64::from(len)).read_to_end(&mut payload)?;
        if payload.len() < len as usize {
            return Err(cut_short(&format!("a frame of {len} bytes (got {})", payload.len())));
        }
        Ok(Some(payload))
    }
}

/// The length prefix for a payload of `len` bytes, if it is within `max`.
pub(crate) fn header(len: usize, max: usize) -> io::Result<[u8; HEADER_LEN]> {
    match u32::try_from(len) {
        Ok(prefix) if len <= max => Ok(prefix.to_be_bytes()),
        _ => Err(too_large(len as u64, max)),
    }
}

fn too_large(len: u64, max: usize) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("frame of {len} bytes is larger than the maximum of {max}"))
}

fn cut_short(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, format!("input ended inside {what}"))
}

/// Like `read_exact`, but returns how much was read when input ends early instead of failing.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut out = (payload.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(payload);
        out
    }

    fn reader(bytes: &[u8]) -> BufReader<&[u8]> {
        // A tiny buffer, so headers and payloads span several reads.
        BufReader::with_capacity(3, bytes)
    }

    #[test]
    fn frames_round_trip_and_eof_between_frames_is_the_end() {
        let input = [frame(b"hello"), frame(b""), frame(&[0, 0xff, b'\n'])].concat();
        let (mut r, mut frames) = (reader(&input), Frames::new());
        assert_eq!(frames.read(&mut r).unwrap().as_deref(), Some(&b"hello"[..]));
        assert_eq!(frames.read(&mut r).unwrap().as_deref(), Some(&b""[..]));
        assert_eq!(frames.read(&mut r).unwrap().as_deref(), Some(&[0, 0xff, b'\n'][..]));
        assert_eq!(frames.read(&mut r).unwrap(), None);
    }

    #[test]
    fn the_header_is_four_big_endian_bytes() {
        assert_eq!(header(0x0102_0304, usize::MAX).unwrap(), [1, 2, 3, 4]);
    }

    #[test]
    fn an_oversized_frame_is_rejected_unread_then_skipped() {
        let input = [frame(b"0123456789"), frame(b"ok")].concat();
        let (mut r, mut frames) = (reader(&input), Frames::new());
        frames.set_max(4);
        let err = frames.read(&mut r).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(err.to_string(), "frame of 10 bytes is larger than the maximum of 4");
        assert_eq!(frames.read(&mut r).unwrap().as_deref(), Some(&b"ok"[..]));
    }

    #[test]
    fn a_huge_claim_allocates_nothing_of_its_size() {
        // Claims 4 GiB and sends nothing: rejected from the header alone.
        let (mut r, mut frames) = (reader(&[0xff; 4]), Frames::new());
        assert_eq!(frames.read(&mut r).unwrap_err().kind(), io::ErrorKind::InvalidData);
        // Skipping the claimed payload runs into EOF.
        assert_eq!(frames.read(&mut r).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn truncated_frames_are_unexpected_eof() {
        for cut in [&[0u8, 0][..], &[0, 0, 0, 5, b'a', b'b']] {
            let err = Frames::new().read(&mut reader(cut)).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{cut:?}");
        }
    }

    #[test]
    fn writing_checks_the_maximum() {
        assert_eq!(header(4, 4).unwrap(), [0, 0, 0, 4]);
        assert_eq!(header(5, 4).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }
}
