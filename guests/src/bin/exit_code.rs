//! Writes `exiting with N`, then exits with code N, taken from the first argument
//! (default 0), through WASI `proc_exit`.
//!
//! Used by the host's exit status tests. An argument that is not an integer exits 2 with a
//! message on stderr. (Plain Wasmtime rejects codes outside `0..126` as a trap; wasmpipe reports them.)

use std::io;

fn main() -> io::Result<()> {
    let code = match std::env::args().nth(1) {
        None => 0,
        Some(arg) => arg.parse().unwrap_or_else(|e| {
            eprintln!("exit_code: invalid exit code {arg:?}: {e}");
            std::process::exit(2)
        }),
    };
    let mut tx = wasmpipe_guest::Tx::new();
    tx.write_line(&format!("exiting with {code}"))?;
    tx.flush()?;
    wasmpipe_guest::exit(code)
}
