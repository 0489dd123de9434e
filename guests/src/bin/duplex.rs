//! The aiopipe duplex child: writes `hello` (no newline), reads one line, and writes it
//! back uppercased (`"hello world\n"` gets `"HELLO WORLD\n"`).
//!
//! Used by the host's duplex pipe test. `hello` is never flushed explicitly: it goes out
//! because `Rx` flushes before blocking on the read.

use std::io;

fn main() -> io::Result<()> {
    let (mut rx, mut tx) = wasmpipe_guest::duplex();
    tx.write(b"hello")?;
    if let Some(line) = rx.read_line()? {
        tx.write(line.to_uppercase().as_bytes())?;
    }
    tx.flush()
}
