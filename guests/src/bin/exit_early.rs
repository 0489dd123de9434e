//! Hostile: writes `bye`, flushes, and exits 0 without ever reading stdin.
//!
//! Used by the host's test for a guest that exits while the parent still writes to it
//! (the parent's writes must fail cleanly with a broken pipe, not hang or crash).

use std::io;

fn main() -> io::Result<()> {
    let mut tx = wasmpipe_guest::Tx::new();
    tx.write_line("bye")?;
    tx.flush()?;
    wasmpipe_guest::exit(0)
}
