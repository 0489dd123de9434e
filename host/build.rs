//! Builds the example guests for wasm32-wasip1 and embeds the ones `wasmpipe demo` and
//! `wasmpipe bench` run, so the binary needs no files.

#[path = "../build-support/guests.rs"]
mod guests;

use std::fmt::Write;
use std::path::PathBuf;

/// The guests the CLI embeds.
const EMBEDDED: &[&str] = &["simplex", "duplex", "echo"];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    let built = guests::build_guests(&manifest_dir.join("../guests"), &out_dir);
    // Paths of every guest, for the CLI's integration tests (tests/cli_*.rs).
    guests::write_path_constants(&built, &out_dir);
    let mut code = String::new();
    for name in EMBEDDED {
        let (_, path) = built.iter().find(|(built, _)| built == name).unwrap_or_else(|| panic!("no guest `{name}`"));
        writeln!(code, "/// The `{name}` guest, compiled for wasm32-wasip1.").unwrap();
        writeln!(code, "pub const {}: &[u8] = include_bytes!({:?});", name.to_uppercase(), path).unwrap();
    }
    std::fs::write(out_dir.join("embedded_guests.rs"), code).unwrap();
}
