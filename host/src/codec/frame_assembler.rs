//! Reassembling length-prefixed frames from chunks, independent of where the bytes come from.
//!
//! Like the line assembler, it takes every byte it is offered and keeps partial frames itself,
//! which makes [`AsyncReader::recv_frame`](crate::AsyncReader::recv_frame) cancel-safe and lets
//! the same core serve [`FrameCodec`](super::FrameCodec) and the reader.

/// Size of the length prefix: a big-endian `u32`.
pub(crate) const HEADER_LEN: usize = 4;

/// Payload capacity reserved up front: a header is a claim, not a promise, so memory follows
/// the bytes that actually arrive beyond this.
const INITIAL_RESERVE: usize = 64 * 1024;

/// Assembles frames from chunks, never holding more than `max` payload bytes.
#[derive(Debug)]
pub(crate) struct FrameAssembler {
    max: usize,
    header: [u8; HEADER_LEN],
    header_len: usize,
    /// The current frame's payload length, once its header is complete.
    expected: Option<usize>,
    payload: Vec<u8>,
    /// Bytes of a rejected (oversized) payload still to be skipped, and its announced length.
    skip: u64,
    skip_total: u64,
}

/// What one [`FrameAssembler::feed`] produced.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Fed {
    /// Every byte offered was taken; feed more.
    NeedMore,
    /// A complete payload; `consumed` bytes of the chunk were taken.
    Frame { payload: Vec<u8>, consumed: usize },
    /// A header announced `length` bytes, more than the maximum; `consumed` bytes were taken
    /// and the payload will be skipped by later feeds.
    TooLarge { length: u64, consumed: usize },
}

/// Where input ended, if not cleanly between two frames.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CutShort {
    /// Inside a header, after this many of its 4 bytes.
    Header { got: usize },
    /// Inside a payload of `expected` bytes (skipped or not), after `got` of them.
    Payload { expected: u64, got: u64 },
}

impl std::fmt::Display for CutShort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Header { got } => write!(f, "stream ended inside a frame header ({got} of 4 bytes)"),
            Self::Payload { expected, got } => {
                write!(f, "stream ended inside a frame of {expected} bytes ({got} received)")
            }
        }
    }
}

impl FrameAssembler {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max,
            header: [0; HEADER_LEN],
            header_len: 0,
            expected: None,
            payload: Vec::new(),
            skip: 0,
            skip_total: 0,
        }
    }

    pub(crate) fn set_max(&mut self, max: usize) {
        self.max = max;
    }

    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// Offers `chunk`; the caller must drop the `consumed` prefix (all of it for `NeedMore`).
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Fed {
        let mut at = 0;
        if self.skip > 0 {
            let n = usize::try_from(self.skip).unwrap_or(usize::MAX).min(chunk.len());
            self.skip -= n as u64;
            at += n;
        }
        while at < chunk.len() {
            let Some(expected) = self.expected else {
                let n = (HEADER_LEN - self.header_len).min(chunk.len() - at);
                self.header[self.header_len..self.header_len + n].copy_from_slice(&chunk[at..at + n]);
                self.header_len += n;
                at += n;
                if self.header_len < HEADER_LEN {
                    break;
                }
                self.header_len = 0;
                let length = u32::from_be_bytes(self.header);
                match usize::try_from(length) {
                    Ok(length) if length <= self.max => {
                        self.payload.reserve_exact(length.min(INITIAL_RESERVE));
                        self.expected = Some(length);
                        if length == 0 {
                            return self.complete(at);
                        }
                    }
                    // Decided from the header alone: nothing of the claimed size is allocated,
                    // and skipping keeps the stream in step for the next frame.
                    _ => {
                        self.skip = u64::from(length);
                        self.skip_total = self.skip;
                        return Fed::TooLarge { length: u64::from(length), consumed: at };
                    }
                }
                continue;
            };
            let n = (expected - self.payload.len()).min(chunk.len() - at);
            self.grow_for(n, expected);
            self.payload.extend_from_slice(&chunk[at..at + n]);
            at += n;
            if self.payload.len() == expected {
                return self.complete(at);
            }
        }
        Fed::NeedMore
    }

    /// End of input: `Ok` if it came cleanly between frames. Either way the assembler is reset.
    pub(crate) fn finish(&mut self) -> Result<(), CutShort> {
        let cut = if self.skip > 0 {
            Some(CutShort::Payload { expected: self.skip_total, got: self.skip_total - self.skip })
        } else if let Some(expected) = self.expected {
            Some(CutShort::Payload { expected: expected as u64, got: self.payload.len() as u64 })
        } else if self.header_len > 0 {
            Some(CutShort::Header { got: self.header_len })
        } else {
            None
        };
        *self = Self::new(self.max);
        cut.map_or(Ok(()), Err)
    }

    /// Capacity held for a partial frame: never more than the frame's announced length.
    #[cfg(test)]
    pub(crate) fn buffered_capacity(&self) -> usize {
        self.payload.capacity()
    }

    fn complete(&mut self, consumed: usize) -> Fed {
        self.expected = None;
        Fed::Frame { payload: std::mem::take(&mut self.payload), consumed }
    }

    /// Makes room for `n` more bytes, doubling as usual but never past the announced length.
    fn grow_for(&mut self, n: usize, expected: usize) {
        let needed = self.payload.len() + n;
        if needed > self.payload.capacity() {
            let target = needed.max(self.payload.capacity() * 2).min(expected);
            self.payload.reserve_exact(target - self.payload.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: &[u8]) -> Vec<u8> {
        [&(payload.len() as u32).to_be_bytes()[..], payload].concat()
    }

    /// Feeds `input` one byte at a time and collects what comes out.
    fn bytewise(input: &[u8], max: usize) -> (Vec<Fed>, Result<(), CutShort>) {
        let mut frames = FrameAssembler::new(max);
        let mut out = Vec::new();
        for byte in input {
            match frames.feed(std::slice::from_ref(byte)) {
                Fed::NeedMore => {}
                fed => out.push(fed),
            }
        }
        (out, frames.finish())
    }

    #[test]
    fn frames_split_anywhere_reassemble() {
        let input = [frame(b"ab"), frame(b""), frame(b"cde")].concat();
        let (out, end) = bytewise(&input, 8);
        assert_eq!(
            out,
            [
                Fed::Frame { payload: b"ab".to_vec(), consumed: 1 },
                Fed::Frame { payload: vec![], consumed: 1 },
                Fed::Frame { payload: b"cde".to_vec(), consumed: 1 },
            ]
        );
        assert_eq!(end, Ok(()));
    }

    #[test]
    fn one_chunk_yields_one_frame_at_a_time() {
        let input = [frame(b"ab"), frame(b"c")].concat();
        let mut frames = FrameAssembler::new(8);
        assert_eq!(frames.feed(&input), Fed::Frame { payload: b"ab".to_vec(), consumed: 6 });
        assert_eq!(frames.feed(&input[6..]), Fed::Frame { payload: b"c".to_vec(), consumed: 5 });
    }

    #[test]
    fn an_oversized_frame_is_reported_from_its_header_and_skipped() {
        let input = [frame(b"0123456789"), frame(b"ok")].concat();
        let mut frames = FrameAssembler::new(4);
        assert_eq!(frames.feed(&input), Fed::TooLarge { length: 10, consumed: 4 });
        assert_eq!(frames.buffered_capacity(), 0);
        assert_eq!(frames.feed(&input[4..]), Fed::Frame { payload: b"ok".to_vec(), consumed: 16 });
    }

    #[test]
    fn a_claim_of_4_gib_reserves_little() {
        let mut frames = FrameAssembler::new(usize::MAX);
        assert_eq!(frames.feed(&[0xff, 0xff, 0xff, 0xff, 1]), Fed::NeedMore);
        assert!(frames.buffered_capacity() <= INITIAL_RESERVE);
        assert_eq!(frames.finish(), Err(CutShort::Payload { expected: u32::MAX as u64, got: 1 }));
    }

    #[test]
    fn ends_inside_a_frame_are_cut_short() {
        assert_eq!(bytewise(&[0, 0], 8).1, Err(CutShort::Header { got: 2 }));
        assert_eq!(bytewise(&[0, 0, 0, 3, 1], 8).1, Err(CutShort::Payload { expected: 3, got: 1 }));
        assert_eq!(bytewise(&[0, 0, 0, 9, 1], 8).1, Err(CutShort::Payload { expected: 9, got: 1 }));
    }
}
