//! Reads exactly 3 bytes from stdin, writes them followed by `def`, and exits 0
//! (parent sends `abc`, gets `abcdef`).
//!
//! Used by the host's exact-read test (reads that do not end on a line boundary).

use std::io::{self, Read};

fn main() -> io::Result<()> {
    let (mut rx, mut tx) = wasmpipe_guest::duplex();
    let mut head = [0u8; 3];
    rx.read_exact(&mut head)?;
    tx.write(&head)?;
    tx.write(b"def")?;
    tx.flush()
}
