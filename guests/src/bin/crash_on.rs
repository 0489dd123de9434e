//! Replies to every line with the line ASCII-uppercased, like `upper`, but traps (a Rust panic)
//! when the line is exactly `crash`.
//!
//! Used by the host's pool tests (`tests/tests/pool_workers.rs`): a worker that dies mid-request
//! must fail that request with the trap and be restarted for the next one.

use std::io;

fn main() -> io::Result<()> {
    let (mut rx, mut tx) = wasmpipe_guest::duplex();
    while let Some(mut line) = rx.read_line_bytes()? {
        if line == b"crash\n" {
            panic!("asked to crash");
        }
        line.make_ascii_uppercase();
        tx.write(&line)?;
    }
    tx.flush()
}
