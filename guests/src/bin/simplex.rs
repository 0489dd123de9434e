//! Writes one line to stdout and exits 0: the simplest one-way pipe.
//!
//! Used by the host's simplex (child-to-parent) pipe test.

use std::io;

fn main() -> io::Result<()> {
    let mut tx = wasmpipe_guest::Tx::new();
    tx.write_line("hi from the child process")?;
    tx.flush()
}
