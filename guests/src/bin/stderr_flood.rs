//! Hostile: writes 64 MiB of numbered 64-byte lines to stderr, then exits 0.
//!
//! Used by the host's stderr capture limit test: the host must drain stderr (so the guest
//! does not block) while keeping only a bounded amount of it. Line `n` (counting from 0)
//! starts at byte `64 * n`.

use std::io::{self, BufWriter, Write};

const TOTAL: usize = 64 * 1024 * 1024;
const LINE_LEN: usize = 64;
/// Pads `stderr line <8 digits> ` (21 bytes) plus the newline to `LINE_LEN` bytes.
const PADDING: &str = "..........................................";

fn main() -> io::Result<()> {
    let mut stderr = BufWriter::with_capacity(64 * 1024, io::stderr().lock());
    for n in 0..TOTAL / LINE_LEN {
        writeln!(stderr, "stderr line {n:08} {PADDING}")?;
    }
    stderr.flush()
}
