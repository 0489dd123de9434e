//! Build-script support: compiles the guests workspace for `wasm32-wasip1`, some of its guests
//! again for `wasm32-wasip2` (WASI 0.2 command components), and the C guests in `guests/c/`
//! with clang and wasi-libc.
//!
//! Not a crate: build scripts include it with
//! `#[path = "build-support/guests.rs"] mod guests;`, then typically
//!
//! ```ignore
//! let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap());
//! let guests = guests::build_guests(Path::new("../guests"), &out_dir);
//! guests::write_path_constants(&guests, &out_dir);
//! // and in the crate: include!(concat!(env!("OUT_DIR"), "/guests.rs"));
//! ```

use std::env;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip1";

/// The target whose binaries are WASI 0.2 command components.
const P2_TARGET: &str = "wasm32-wasip2";

/// Variables a build script inherits that describe the *outer* build. Passed on, they would
/// make the nested cargo compile for the wrong target, with the wrong flags or compiler, or
/// into the outer target directory.
const OUTER_BUILD_VARS: &[&str] = &[
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_BUILD_RUSTC",
    "CARGO_BUILD_RUSTC_WRAPPER",
    "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_MAKEFLAGS",
    "TARGET",
    "HOST",
    "OUT_DIR",
    "OPT_LEVEL",
    "PROFILE",
    "DEBUG",
    "NUM_JOBS",
    "RUSTC",
    "RUSTDOC",
    "RUSTC_LINKER",
];

/// Prefixes of the per-package variables cargo sets for a build script.
const OUTER_BUILD_PREFIXES: &[&str] = &["CARGO_FEATURE_", "CARGO_CFG_", "CARGO_PKG_", "CARGO_MANIFEST_", "DEP_"];

/// Builds every binary of the guests workspace for wasm32-wasip1 (release) and returns
/// (name, absolute path of the .wasm) sorted by name.
///
/// Runs a nested `$CARGO` (or `cargo`) with its own target directory,
/// `<out_dir>/guests-target`, and an environment cleaned of the outer build's settings.
/// Prints `cargo:rerun-if-changed` for the guest sources and the guest SDK.
///
/// # Panics
///
/// If the guests cannot be listed or built (with cargo's output in the message), or a
/// built binary is missing.
pub fn build_guests(guests_dir: &Path, out_dir: &Path) -> Vec<(String, PathBuf)> {
    build_guests_for(guests_dir, out_dir, TARGET, None)
}

/// Builds the guests named in `names` (from the same sources as [`build_guests`]) for
/// wasm32-wasip2, where each binary is a WASI 0.2 command component, and returns
/// (`p2-<name>`, path) sorted by name: `echo` built this way is the guest `p2-echo`, constant
/// `P2_ECHO`.
///
/// # Panics
///
/// As [`build_guests`], and if a name is not a guest.
pub fn build_p2_guests(guests_dir: &Path, out_dir: &Path, names: &[&str]) -> Vec<(String, PathBuf)> {
    build_guests_for(guests_dir, out_dir, P2_TARGET, Some(names))
        .into_iter()
        .map(|(name, wasm)| (format!("p2-{name}"), wasm))
        .collect()
}

fn build_guests_for(guests_dir: &Path, out_dir: &Path, target: &str, only: Option<&[&str]>) -> Vec<(String, PathBuf)> {
    let guests_dir = fs::canonicalize(guests_dir)
        .unwrap_or_else(|e| panic!("cannot find the guests in {}: {e}", guests_dir.display()));
    let sdk_dir = guests_dir.with_file_name("guest-sdk");
    for watched in [
        guests_dir.join("src"),
        guests_dir.join("Cargo.toml"),
        guests_dir.join("Cargo.lock"),
        sdk_dir.join("src"),
        sdk_dir.join("Cargo.toml"),
    ] {
        println!("cargo:rerun-if-changed={}", watched.display());
    }

    let mut names = guest_names(&guests_dir);
    if let Some(only) = only {
        for name in only {
            assert!(names.iter().any(|n| n == name), "no guest named `{name}` in {}", guests_dir.display());
        }
        names.retain(|name| only.contains(&name.as_str()));
    }
    let target_dir = absolute(out_dir).join("guests-target");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(&cargo);
    command
        .args(["build", "--release", "--target", target, "--manifest-path"])
        .arg(guests_dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    if only.is_some() {
        for name in &names {
            command.args(["--bin", name]);
        }
    }
    for (key, _) in env::vars_os() {
        if is_outer_build_var(&key) {
            command.env_remove(key);
        }
    }

    let output = command
        .output()
        .unwrap_or_else(|e| panic!("failed to run {} to build the guests: {e}", cargo.to_string_lossy()));
    if !output.status.success() {
        panic!(
            "building the guests in {} failed ({})\n--- cargo stderr ---\n{}\n\
             hint: is the {target} target installed? run `rustup target add {target}`",
            guests_dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr),
        );
    }

    let release_dir = target_dir.join(target).join("release");
    names
        .into_iter()
        .map(|name| {
            let wasm = release_dir.join(format!("{name}.wasm"));
            assert!(wasm.is_file(), "guest `{name}` was built but {} is missing", wasm.display());
            (name, wasm)
        })
        .collect()
}

/// The C compiler for the C guests: `$WASMPIPE_GUEST_CC`, else `clang`.
const CC_VAR: &str = "WASMPIPE_GUEST_CC";
/// An optional wasi-libc sysroot (wasi-sdk's `share/wasi-sysroot`); Debian's clang finds the
/// `wasi-libc` package's headers and libraries without one.
const SYSROOT_VAR: &str = "WASI_SYSROOT";
/// clang's name for wasm32-wasip1: clang 14 (Debian 12) knows only `wasm32-wasi`, which later
/// versions still accept.
const C_TARGET: &str = "wasm32-wasi";
/// What to install when the C toolchain is missing.
const C_TOOLCHAIN_HINT: &str = "the C guests need clang and wasi-libc: on Debian or Ubuntu, \
     `apt-get install clang lld wasi-libc libclang-rt-dev-wasm32`; elsewhere, wasi-sdk's clang with \
     WASMPIPE_GUEST_CC=/path/to/wasi-sdk/bin/clang and WASI_SYSROOT=/path/to/wasi-sdk/share/wasi-sysroot";

/// Compiles every `<guests_dir>/c/<name>.c` for wasm32-wasip1 with clang and wasi-libc into
/// `<out_dir>/c-guests/<name>.wasm`, and returns (`c-<name>`, path) sorted by name: the C
/// `upper.c` is the guest `c-upper`, constant `C_UPPER`.
///
/// # Panics
///
/// If clang cannot be run or a guest does not compile, with the compiler's output and what to
/// install.
pub fn build_c_guests(guests_dir: &Path, out_dir: &Path) -> Vec<(String, PathBuf)> {
    let c_dir = fs::canonicalize(guests_dir).unwrap_or_else(|_| absolute(guests_dir)).join("c");
    println!("cargo:rerun-if-changed={}", c_dir.display());
    println!("cargo:rerun-if-env-changed={CC_VAR}");
    println!("cargo:rerun-if-env-changed={SYSROOT_VAR}");
    let Ok(entries) = fs::read_dir(&c_dir) else { return Vec::new() };
    let mut sources: Vec<PathBuf> =
        entries.flatten().map(|entry| entry.path()).filter(|path| path.extension() == Some(OsStr::new("c"))).collect();
    sources.sort();
    let wasm_dir = absolute(out_dir).join("c-guests");
    fs::create_dir_all(&wasm_dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", wasm_dir.display()));
    let cc = env::var_os(CC_VAR).unwrap_or_else(|| "clang".into());
    sources
        .into_iter()
        .map(|source| {
            let stem = source.file_stem().and_then(OsStr::to_str);
            let stem = stem.unwrap_or_else(|| panic!("C guest file name {} is not UTF-8", source.display()));
            let wasm = wasm_dir.join(format!("{stem}.wasm"));
            let mut command = Command::new(&cc);
            command.arg(format!("--target={C_TARGET}")).args(["-O2", "-Wall", "-Wextra", "-Werror", "-o"]).arg(&wasm);
            if let Some(sysroot) = env::var_os(SYSROOT_VAR) {
                command.arg("--sysroot").arg(sysroot);
            }
            let output = command.arg(&source).output().unwrap_or_else(|e| {
                panic!(
                    "cannot run the C compiler `{}` for {}: {e}\nhint: {C_TOOLCHAIN_HINT}",
                    cc.to_string_lossy(),
                    source.display()
                )
            });
            if !output.status.success() {
                panic!(
                    "compiling the C guest {} failed ({})\n--- compiler stderr ---\n{}\nhint: {C_TOOLCHAIN_HINT}",
                    source.display(),
                    output.status,
                    String::from_utf8_lossy(&output.stderr),
                );
            }
            (format!("c-{stem}"), wasm)
        })
        .collect()
}

/// Writes `<out_dir>/guests.rs` with one `pub const <NAME_UPPERCASE>: &str = "<abs path>";`
/// per guest and `pub const ALL: &[(&str, &str)]` (name, path).
///
/// # Panics
///
/// If a path is not UTF-8 or the file cannot be written.
pub fn write_path_constants(guests: &[(String, PathBuf)], out_dir: &Path) {
    let mut code = String::from("// @generated by build-support/guests.rs; do not edit.\n\n");
    let mut all = String::new();
    for (name, path) in guests {
        let path = absolute(path);
        let path = path.to_str().unwrap_or_else(|| panic!("guest path {} is not UTF-8", path.display()));
        let constant = name.to_uppercase().replace('-', "_");
        // `{:?}` of a `str` is a valid Rust string literal, escapes included.
        let target = if name.starts_with("p2-") { P2_TARGET } else { TARGET };
        writeln!(code, "/// Path of the `{name}` guest (`{target}`).").unwrap();
        writeln!(code, "pub const {constant}: &str = {path:?};").unwrap();
        writeln!(all, "    ({name:?}, {constant}),").unwrap();
    }
    writeln!(code, "\n/// Every guest, as (name, path of the `.wasm`).").unwrap();
    writeln!(code, "pub const ALL: &[(&str, &str)] = &[\n{all}];").unwrap();

    let file = out_dir.join("guests.rs");
    fs::write(&file, code).unwrap_or_else(|e| panic!("cannot write {}: {e}", file.display()));
}

/// Names of the guest binaries: the stems of `<guests_dir>/src/bin/*.rs`, sorted.
fn guest_names(guests_dir: &Path) -> Vec<String> {
    let bin_dir = guests_dir.join("src/bin");
    let entries = fs::read_dir(&bin_dir).unwrap_or_else(|e| panic!("cannot list guests in {}: {e}", bin_dir.display()));
    let mut names: Vec<String> = entries
        .map(|entry| entry.unwrap_or_else(|e| panic!("cannot list guests in {}: {e}", bin_dir.display())).path())
        .filter(|path| path.is_file() && path.extension() == Some(OsStr::new("rs")))
        .map(|path| {
            let stem = path.file_stem().and_then(OsStr::to_str);
            stem.unwrap_or_else(|| panic!("guest file name {} is not UTF-8", path.display())).to_owned()
        })
        .collect();
    names.sort();
    names
}

fn is_outer_build_var(key: &OsStr) -> bool {
    key.to_str().is_some_and(|key| {
        OUTER_BUILD_VARS.contains(&key) || OUTER_BUILD_PREFIXES.iter().any(|prefix| key.starts_with(prefix))
    })
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|e| panic!("cannot make {} absolute: {e}", path.display()))
}
