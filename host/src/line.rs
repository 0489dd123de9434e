//! Splitting a byte stream into bounded lines, independent of where the bytes come from.
//!
//! The async reader feeds this whatever its buffer holds; keeping the logic synchronous makes it
//! easy to property-test and keeps partial lines in one place, which is what makes
//! [`AsyncReader::read_line`](crate::AsyncReader::read_line) cancel-safe.

/// Assembles lines from chunks, never holding more than `max` bytes.
#[derive(Debug)]
pub(crate) struct LineAssembler {
    pending: Vec<u8>,
    /// Skipping the rest of a line that was already reported as too long.
    discarding: bool,
    max: usize,
    /// Lines produced so far (complete, too long, or the unterminated last one), so that
    /// message errors can name the line of the stream they are about.
    count: u64,
}

/// What one [`LineAssembler::feed`] produced.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Fed {
    /// Every byte offered was taken; feed more.
    NeedMore,
    /// A complete line (with its `\n`); `consumed` bytes of the chunk were taken.
    Line { line: Vec<u8>, consumed: usize },
    /// The current line passed `max` bytes; `consumed` bytes were taken and the rest of the line
    /// will be skipped by later feeds.
    TooLong { consumed: usize },
}

impl LineAssembler {
    pub(crate) fn new(max: usize) -> Self {
        Self { pending: Vec::new(), discarding: false, max: max.max(1), count: 0 }
    }

    pub(crate) fn set_max(&mut self, max: usize) {
        self.max = max.max(1);
    }

    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// How many lines [`feed`](Self::feed) and [`finish`](Self::finish) have produced: after
    /// one produced a line (or `TooLong`), that line's 1-based number.
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// Capacity held for a partial line: at most about twice the maximum (`Vec` growth).
    #[cfg(test)]
    pub(crate) fn buffered_capacity(&self) -> usize {
        self.pending.capacity()
    }

    /// Offers `chunk`; the caller must drop the `consumed` prefix (all of it for `NeedMore`).
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Fed {
        let newline = memchr::memchr(b'\n', chunk);
        if self.discarding {
            return match newline {
                Some(at) => {
                    self.discarding = false;
                    match self.feed(&chunk[at + 1..]) {
                        Fed::NeedMore => Fed::NeedMore,
                        Fed::Line { line, consumed } => Fed::Line { line, consumed: consumed + at + 1 },
                        Fed::TooLong { consumed } => Fed::TooLong { consumed: consumed + at + 1 },
                    }
                }
                None => Fed::NeedMore,
            };
        }
        let wanted = newline.map_or(chunk.len(), |at| at + 1);
        if self.pending.len() + wanted > self.max {
            // Report now rather than buffering on: an endless line must not cost memory. Whatever
            // of this line remains is skipped, so the next line starts clean.
            self.pending.clear();
            self.discarding = newline.is_none();
            self.count += 1;
            return Fed::TooLong { consumed: wanted };
        }
        self.pending.extend_from_slice(&chunk[..wanted]);
        match newline {
            Some(_) => {
                self.count += 1;
                Fed::Line { line: std::mem::take(&mut self.pending), consumed: wanted }
            }
            None => Fed::NeedMore,
        }
    }

    /// End of input: the unterminated last line, if any.
    pub(crate) fn finish(&mut self) -> Option<Vec<u8>> {
        self.discarding = false;
        let last = (!self.pending.is_empty()).then(|| std::mem::take(&mut self.pending));
        self.count += u64::from(last.is_some());
        last
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A line exceeded the maximum length.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct LineTooLong;

    /// Feeds `input` in chunks of the given sizes and collects lines (`Err` for too long).
    fn split(input: &[u8], chunk_sizes: &[usize], max: usize) -> Vec<Result<Vec<u8>, LineTooLong>> {
        let mut assembler = LineAssembler::new(max);
        let mut out = Vec::new();
        let mut rest = input;
        let mut sizes = chunk_sizes.iter().cycle();
        while !rest.is_empty() {
            let take = (*sizes.next().unwrap()).clamp(1, rest.len());
            let mut chunk = &rest[..take];
            while !chunk.is_empty() {
                match assembler.feed(chunk) {
                    Fed::NeedMore => chunk = &[],
                    Fed::Line { line, consumed } => {
                        out.push(Ok(line));
                        chunk = &chunk[consumed..];
                    }
                    Fed::TooLong { consumed } => {
                        out.push(Err(LineTooLong));
                        chunk = &chunk[consumed..];
                    }
                }
            }
            rest = &rest[take..];
        }
        out.extend(assembler.finish().map(Ok));
        out
    }

    /// What `split` must produce: every line kept if it fits, else exactly one `Err`.
    fn expected(input: &[u8], max: usize) -> Vec<Result<Vec<u8>, LineTooLong>> {
        input
            .split_inclusive(|&b| b == b'\n')
            .map(|line| if line.len() <= max { Ok(line.to_vec()) } else { Err(LineTooLong) })
            .collect()
    }

    #[test]
    fn a_line_of_exactly_max_bytes_fits() {
        assert_eq!(split(b"abc\n", &[1], 4), vec![Ok(b"abc\n".to_vec())]);
        assert_eq!(split(b"abcd\nef\n", &[2], 4), vec![Err(LineTooLong), Ok(b"ef\n".to_vec())]);
    }

    #[test]
    fn an_endless_line_is_reported_without_buffering_it() {
        let mut assembler = LineAssembler::new(8);
        assert_eq!(assembler.feed(b"xxxx"), Fed::NeedMore);
        assert_eq!(assembler.feed(b"xxxxxxxx"), Fed::TooLong { consumed: 8 });
        assert_eq!(assembler.feed(&[b'x'; 1000]), Fed::NeedMore);
        assert!(assembler.pending.capacity() <= 16);
        assert_eq!(assembler.feed(b"x\nok\n"), Fed::Line { line: b"ok\n".to_vec(), consumed: 5 });
    }

    proptest! {
        #[test]
        fn arbitrary_chunks_reassemble_exactly(
            input in proptest::collection::vec(prop_oneof![Just(b'\n'), any::<u8>()], 0..2000),
            chunks in proptest::collection::vec(1usize..300, 1..20),
        ) {
            let lines = split(&input, &chunks, usize::MAX);
            let joined: Vec<u8> = lines.into_iter().flat_map(Result::unwrap).collect();
            prop_assert_eq!(joined, input);
        }

        #[test]
        fn long_lines_are_reported_and_nothing_else_is_lost_or_duplicated(
            input in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'a'), any::<u8>()], 0..2000),
            chunks in proptest::collection::vec(1usize..300, 1..20),
            max in 1usize..64,
        ) {
            prop_assert_eq!(split(&input, &chunks, max), expected(&input, max));
        }
    }
}
