//! Hostile: writes `x` to stdout forever, never a newline.
//!
//! Used by the host's maximum line length test: a line reader must give up instead of
//! buffering without bound. Writes and flushes 64 KiB at a time itself, and exits with an
//! error once stdout is closed.

use std::io;

fn main() -> io::Result<()> {
    let block = vec![b'x'; 64 * 1024];
    let mut tx = wasmpipe_guest::Tx::new();
    loop {
        tx.write(&block)?;
        tx.flush()?;
    }
}
