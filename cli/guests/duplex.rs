//! aiopipe's duplex child: writes `hello` (no newline), reads one line, and writes it back
//! uppercased (`"hello world\n"` gets `"HELLO WORLD\n"`).

use std::io::{self, BufRead, Write};

fn main() -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    stdout.write_all(b"hello")?;
    stdout.flush()?;
    let mut line = String::new();
    io::stdin().lock().read_line(&mut line)?;
    stdout.write_all(line.to_uppercase().as_bytes())?;
    stdout.flush()
}
