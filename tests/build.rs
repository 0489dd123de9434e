//! Compiles every guest in `guests/` (Rust, and C in `guests/c/`) for wasm32-wasip1, and the
//! guests that the component tests run both ways for wasm32-wasip2, and generates a path constant
//! for each, so a plain `cargo test` builds and runs everything end to end.

#[path = "build-support/guests.rs"]
mod guests;

use std::path::PathBuf;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    let mut built = guests::build_guests(&manifest_dir.join("../guests"), &out_dir);
    built.extend(guests::build_c_guests(&manifest_dir.join("../guests"), &out_dir));
    // The same sources as WASI 0.2 command components (`tests/tests/components.rs`).
    built.extend(guests::build_p2_guests(&manifest_dir.join("../guests"), &out_dir, P2_GUESTS));
    guests::write_path_constants(&built, &out_dir);
}

/// The guests built a second time, as components.
const P2_GUESTS: &[&str] =
    &["args_env", "block_read", "cat", "echo", "exit_code", "grow_memory", "spin", "trap", "upper", "write_file"];
