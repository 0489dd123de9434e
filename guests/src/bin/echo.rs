// Copies every line from stdin to stdout unchanged (binary-safe) until EOF.
//
// Used by the host's ping-pong and bulk throughput tests and benchmarks. It never
// flushes per line: replies go out when `Rx` is about to block, or when the buffer fills.
//
// Plain comments rather than `//!`: `wasmpipe bench` also compiles this file natively, through
// `include!`, as its baseline, and `include!` rejects inner doc comments.

use std::io;

fn main() -> io::Result<()> {
    let (mut rx, mut tx) = wasmpipe_guest::duplex();
    while let Some(line) = rx.read_line_bytes()? {
        tx.write(&line)?;
    }
    tx.flush()
}
