//! Hostile: writes `written by write_file` and a newline to the file named by its first
//! argument (creating or truncating it), then exits 0.
//!
//! On failure writes `error:<path>:<error>` to stderr and exits 1; without an argument it
//! exits 2. Used by the CLI's preopened directory test: `--dir` preopens are read-only, so
//! writing inside one must fail.

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: write_file <path>");
        std::process::exit(2);
    };
    if let Err(e) = std::fs::write(&path, b"written by write_file\n") {
        eprintln!("error:{path}:{e}");
        std::process::exit(1);
    }
}
