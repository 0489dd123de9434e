//! Prints each argument as `arg:<value>`, then each environment variable as
//! `env:<KEY>=<VALUE>`, one per line, in the order the guest receives them.
//!
//! Used by the host's argument and environment passing tests. Values are written as raw
//! bytes, so non-UTF-8 arguments or variables do not make it fail.

use std::ffi::OsStr;
use std::io;

fn main() -> io::Result<()> {
    let mut tx = wasmpipe_guest::Tx::new();
    for arg in std::env::args_os() {
        tx.write(b"arg:")?;
        tx.write(arg.as_encoded_bytes())?;
        tx.write(b"\n")?;
    }
    for (key, value) in std::env::vars_os() {
        for part in [OsStr::new("env:"), &key, OsStr::new("="), &value, OsStr::new("\n")] {
            tx.write(part.as_encoded_bytes())?;
        }
    }
    tx.flush()
}
