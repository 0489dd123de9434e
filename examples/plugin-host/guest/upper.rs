//! The plugin: upper-cases each line it reads. Plain std, built for wasm32-wasip1 by `build.rs`.

use std::io::{self, BufRead, Write};

fn main() -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    for line in io::stdin().lock().lines() {
        writeln!(stdout, "{}", line?.to_uppercase())?;
        stdout.flush()?;
    }
    Ok(())
}
