//! Echoes JSON Lines messages as `{"echo": <value>}`, and answers a bad line with
//! `{"error": "<what the SDK said>"}` before going on with the next one.
//!
//! Used by the typed-message tests: the host's `send`/`recv` and `JsonLinesCodec` against the
//! SDK's `recv`/`send`, and the SDK's handling of malformed and over-long lines from the host.
//! An optional argument sets the maximum line length.

use serde_json::{Value, json};
use std::io;

fn main() -> io::Result<()> {
    let (mut rx, mut tx) = wasmpipe_guest::duplex();
    if let Some(max) = std::env::args().nth(1) {
        rx.set_max_line_length(max.parse().expect("the argument is a maximum line length"));
    }
    loop {
        match rx.recv::<Value>() {
            Ok(Some(value)) => tx.send(&json!({ "echo": value }))?,
            Ok(None) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => tx.send(&json!({ "error": e.to_string() }))?,
            Err(e) => return Err(e),
        }
    }
}
