//! Compiles the guests `wasmpipe demo` and `wasmpipe bench` embed (`guests/*.rs`: plain std, no
//! dependencies) for wasm32-wasip1 (and the bench's echo for wasm32-wasip2) with `rustc` alone, so the binary needs no files and the
//! package builds from its own files.

use std::fmt::Write;
use std::path::PathBuf;
use std::process::Command;

/// The guests the CLI embeds: source name, target, and the constant that holds it.
const EMBEDDED: &[(&str, &str, &str)] = &[
    ("simplex", "wasm32-wasip1", "SIMPLEX"),
    ("duplex", "wasm32-wasip1", "DUPLEX"),
    ("echo", "wasm32-wasip1", "ECHO"),
    // The bench compares a WASI 0.2 component (what rustc makes for wasm32-wasip2) with the
    // preview 1 module of the same source.
    ("echo", "wasm32-wasip2", "ECHO_P2"),
];

fn main() {
    // Start-up: every `wasmpipe run` execs this binary (and the library's exec'd spawn execs it
    // again for the runner). Packed relative relocations (RELR) leave the dynamic loader a
    // fraction of the work of RELA's relative entries, and keep the binary position-independent
    // (ASLR stays on).
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    // The functions a start executes, laid out together (startup-order/README.md): each fault
    // on the code maps 16 pages, and each mapped page costs again at exit. The option is LLD's,
    // which rustc links with on this target; WASMPIPE_NO_STARTUP_ORDER=1 leaves it out (for
    // another linker, or to measure what it gains).
    println!("cargo:rerun-if-env-changed=WASMPIPE_NO_STARTUP_ORDER");
    let wanted = std::env::var_os("WASMPIPE_NO_STARTUP_ORDER").is_none_or(|value| value == "0");
    if wanted && std::env::var("TARGET").as_deref() == Ok("x86_64-unknown-linux-gnu") {
        let order = manifest_dir.join("startup-order").join("symbols.txt");
        println!("cargo:rerun-if-changed={}", order.display());
        println!("cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}", order.display());
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let mut code = String::new();
    for &(name, target, constant) in EMBEDDED {
        let source = manifest_dir.join("guests").join(format!("{name}.rs"));
        println!("cargo:rerun-if-changed={}", source.display());
        let wasm = out_dir.join(format!("{name}-{target}.wasm"));
        let status = Command::new(&rustc)
            .args(["--edition", "2024", "--target", target, "-C", "opt-level=3", "-C", "strip=debuginfo", "-o"])
            .arg(&wasm)
            .arg(&source)
            // The outer build's flags are for the host, not for the guest.
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("RUSTFLAGS")
            .status()
            .unwrap_or_else(|e| panic!("cannot run rustc to build the `{name}` guest: {e}"));
        assert!(
            status.success(),
            "building the `{name}` guest for {target} failed; is the target installed? (`rustup target add {target}`)"
        );
        writeln!(code, "/// The `{name}` guest (`guests/{name}.rs`), compiled for {target}.").unwrap();
        writeln!(code, "pub const {constant}: &[u8] = include_bytes!({wasm:?});").unwrap();
    }
    // The whole-process start-up row of `wasmpipe bench` compares `wasmpipe run simplex.wasm`
    // with an exec of the same program compiled natively.
    let native = out_dir.join("simplex-native");
    let status = Command::new(&rustc)
        .args(["--edition", "2024", "-C", "opt-level=3", "-C", "strip=debuginfo", "-o"])
        .arg(&native)
        .arg(manifest_dir.join("guests").join("simplex.rs"))
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .status()
        .unwrap_or_else(|e| panic!("cannot run rustc to build the native simplex: {e}"));
    assert!(status.success(), "building the native simplex failed");
    writeln!(code, "/// The `simplex` guest compiled for this machine, for the start-up baseline.").unwrap();
    writeln!(code, "pub const SIMPLEX_NATIVE: &[u8] = include_bytes!({native:?});").unwrap();
    std::fs::write(out_dir.join("embedded_guests.rs"), code).unwrap();
}
