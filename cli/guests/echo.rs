// Copies every line from stdin to stdout unchanged (binary-safe) until EOF.
//
// The guest behind `wasmpipe bench`: compiled for wasm32-wasip1 and embedded, and compiled
// natively (through `include!`) as the baseline, so both sides run the same source. Plain std,
// no dependencies, so the CLI's build script can compile it with `rustc` alone from the packaged
// files. Like the guest SDK, it flushes only when it is about to block on a read (or its buffer
// fills): replies go out in batches under load, one by one in a ping-pong.
//
// Plain comments rather than `//!`: `include!` rejects inner doc comments.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::os::fd::FromRawFd;

fn main() -> io::Result<()> {
    // SAFETY: fds 0 and 1 are this process's stdin and stdout, used by nothing else here.
    let (stdin, stdout) = unsafe { (File::from_raw_fd(0), File::from_raw_fd(1)) };
    let mut input = BufReader::with_capacity(64 * 1024, stdin);
    let mut output = BufWriter::with_capacity(64 * 1024, stdout);
    let mut line = Vec::new();
    loop {
        if input.buffer().is_empty() {
            output.flush()?;
        }
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        output.write_all(&line)?;
    }
    output.flush()
}
