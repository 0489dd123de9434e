//! Hostile: reads stdin to the end, then writes `eof`. Blocks forever if the parent keeps
//! its end of stdin open.
//!
//! Used by the host's timeout test for a guest blocked in a host call (`fd_read`), and by
//! the test that closing stdin delivers EOF.

use std::io;

fn main() -> io::Result<()> {
    let (mut rx, mut tx) = wasmpipe_guest::duplex();
    io::copy(&mut rx, &mut io::sink())?;
    tx.write_line("eof")?;
    tx.flush()
}
