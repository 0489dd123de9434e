//! Builds the plugin (`guest/upper.rs`) for wasm32-wasip1, as a user's build would.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap()).join("upper.wasm");
    println!("cargo:rerun-if-changed=guest/upper.rs");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let status = Command::new(rustc)
        .args(["--edition", "2024", "--target", "wasm32-wasip1", "-C", "opt-level=2", "-o"])
        .arg(&out)
        .arg("guest/upper.rs")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .expect("rustc runs");
    assert!(status.success(), "building the plugin failed: is wasm32-wasip1 installed?");
    println!("cargo:rustc-env=PLUGIN_WASM={}", out.display());
}
