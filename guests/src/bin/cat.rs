//! Writes the contents of each file named in its arguments to stdout, in order.
//!
//! On the first file it cannot read, writes `error:<path>:<error>` to stderr and exits 1
//! (after flushing what it already wrote). Used by the host's preopened directory tests:
//! files inside a preopen are readable, paths outside are not.

use std::io;

fn main() -> io::Result<()> {
    let mut tx = wasmpipe_guest::Tx::new();
    for path in std::env::args().skip(1) {
        match std::fs::read(&path) {
            Ok(contents) => tx.write(&contents)?,
            Err(e) => {
                eprintln!("error:{path}:{e}");
                wasmpipe_guest::exit(1);
            }
        }
    }
    tx.flush()
}
