//! Hostile: writes the same 1 KiB line (1023 `x` and a newline) to stdout forever.
//!
//! Used by the host's output limit and backpressure tests. It writes and flushes 64 lines
//! at a time itself instead of relying on the SDK's buffering, and exits with an error
//! once stdout is closed.

use std::io;

const LINE_LEN: usize = 1024;
const LINES_PER_WRITE: usize = 64;

fn main() -> io::Result<()> {
    let mut line = vec![b'x'; LINE_LEN];
    line[LINE_LEN - 1] = b'\n';
    let block = line.repeat(LINES_PER_WRITE);

    let mut tx = wasmpipe_guest::Tx::new();
    loop {
        tx.write(&block)?;
        tx.flush()?;
    }
}
