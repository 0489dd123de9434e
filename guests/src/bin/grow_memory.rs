//! Hostile: allocates 1 MiB chunks forever, writing to every byte and keeping them all
//! alive, and reports `allocated <N> MiB` on stderr every 64 MiB.
//!
//! Used by the host's memory limit test: the guest must die (allocation failure aborts it)
//! once linear memory reaches the host's limit. Do not run it natively.

use std::hint::black_box;
use std::io::{self, Write};

const MIB: usize = 1024 * 1024;

fn main() {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        // A non-zero fill writes every byte, so the memory is really committed.
        chunks.push(black_box(vec![0xa5; MIB]));
        if chunks.len().is_multiple_of(64) {
            // stderr is unbuffered; ignore errors, the parent may not be listening.
            let _ = writeln!(io::stderr(), "allocated {} MiB", chunks.len());
        }
    }
}
