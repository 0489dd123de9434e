//! Writes `done`, closes its stdout, then reads stdin to the end and exits 0: a guest that
//! signals "no more output" while it keeps running.
//!
//! Used by the host's test that closing fd 1 in the guest is EOF for the parent right away.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::FromRawFd;

fn main() -> io::Result<()> {
    // SAFETY: fd 1 is this program's stdout; nothing else here uses it after this point.
    let mut stdout = unsafe { File::from_raw_fd(1) };
    stdout.write_all(b"done\n")?;
    drop(stdout);
    io::stdin().read_to_end(&mut Vec::new())?;
    Ok(())
}
