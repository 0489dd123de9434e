//! Copies every line from stdin to stdout, ASCII-uppercased (binary-safe), until EOF.
//!
//! Used by the host's request/response tests, to tell replies from echoed input.

use std::io;

fn main() -> io::Result<()> {
    let (mut rx, mut tx) = wasmpipe_guest::duplex();
    while let Some(mut line) = rx.read_line_bytes()? {
        line.make_ascii_uppercase();
        tx.write(&line)?;
    }
    tx.flush()
}
