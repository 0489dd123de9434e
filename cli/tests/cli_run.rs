//! `wasmpipe run`: the guest's argv and environment, `--dir` preopens, exit statuses, failures to
//! start, `--no-cache` and `--help`, through the real `wasmpipe` binary.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::*;

/// The lines of stderr that start with `wasmpipe:`.
fn wasmpipe_lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter(|line| line.starts_with("wasmpipe:"))
        .map(Into::into)
        .collect()
}

/// The only line of stderr, which must start with `wasmpipe:`.
fn only_stderr_line(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected exactly one line on stderr\n{}", describe(output));
    assert!(lines[0].starts_with("wasmpipe:"), "the stderr line must start with `wasmpipe:`\n{}", describe(output));
    assert!(lines[0].len() > "wasmpipe:".len() + 5, "the stderr line says nothing\n{}", describe(output));
    lines[0].to_owned()
}

fn stdout_lines(output: &Output) -> Vec<String> {
    String::from_utf8(output.stdout.clone()).unwrap().lines().map(Into::into).collect()
}

// ---------------------------------------------------------------------------------------------
// argv

#[test]
fn argv0_is_the_module_file_name_then_the_guest_args() {
    let scratch = scratch!();
    let output = scratch
        .wasmpipe()
        .args(["run", guests::ARGS_ENV, "--", "one", "two words", "", "héllo ✓", "--env", "X=1", "--", "-v"])
        .output()
        .unwrap();
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert_eq!(
        stdout_lines(&output),
        [
            "arg:args_env.wasm",
            "arg:one",
            "arg:two words",
            "arg:",
            "arg:héllo ✓",
            "arg:--env",
            "arg:X=1",
            "arg:--",
            "arg:-v"
        ],
        "{}",
        describe(&output)
    );
    assert_eq!(output.stderr, b"", "{}", describe(&output));
}

#[test]
fn without_guest_args_argv_is_only_the_module_file_name() {
    let scratch = scratch!();
    for args in [&["run", guests::ARGS_ENV][..], &["run", guests::ARGS_ENV, "--"][..]] {
        let output = scratch.wasmpipe().args(args).output().unwrap();
        assert_eq!(code(&output), 0, "{args:?}\n{}", describe(&output));
        assert_eq!(stdout_lines(&output), ["arg:args_env.wasm"], "{args:?}\n{}", describe(&output));
    }
}

#[test]
fn argv0_is_the_file_name_whatever_the_file_is_called_and_however_it_is_reached() {
    let scratch = scratch!();
    let plugin_dir = scratch.path().join("plugins");
    fs::create_dir_all(&plugin_dir).unwrap();
    fs::copy(guests::ARGS_ENV, plugin_dir.join("my-plugin.wasm")).unwrap();
    fs::copy(guests::ARGS_ENV, plugin_dir.join("no_extension")).unwrap();

    let absolute = plugin_dir.join("my-plugin.wasm");
    let cases: [(&Path, &str, &str); 4] = [
        (scratch.path(), "plugins/my-plugin.wasm", "arg:my-plugin.wasm"),
        (&plugin_dir, "my-plugin.wasm", "arg:my-plugin.wasm"),
        (&plugin_dir, "./no_extension", "arg:no_extension"),
        (Path::new("/"), absolute.to_str().unwrap(), "arg:my-plugin.wasm"),
    ];
    for (cwd, module, argv0) in cases {
        let output = scratch.wasmpipe().current_dir(cwd).args(["run", module, "--", "x"]).output().unwrap();
        assert_eq!(code(&output), 0, "{module}\n{}", describe(&output));
        assert_eq!(stdout_lines(&output), [argv0, "arg:x"], "{module}\n{}", describe(&output));
    }
}

// ---------------------------------------------------------------------------------------------
// --env

#[test]
fn the_guest_sees_no_environment_variables_by_default() {
    let scratch = scratch!();
    let output = scratch
        .wasmpipe()
        .env("HOME", "/home/someone")
        .env("PATH", "/usr/bin:/bin")
        .env("WASMPIPE_TEST_SECRET", "do not leak")
        .args(["run", guests::ARGS_ENV])
        .output()
        .unwrap();
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert_eq!(stdout_lines(&output), ["arg:args_env.wasm"], "{}", describe(&output));
}

#[test]
fn the_guest_sees_exactly_the_env_options() {
    let scratch = scratch!();
    let output = scratch
        .wasmpipe()
        .env("HOME", "/home/someone")
        .env("WASMPIPE_TEST_SECRET", "do not leak")
        .args(["run", "--env", "A=1", "--env", "B=two", guests::ARGS_ENV])
        .output()
        .unwrap();
    assert_eq!(code(&output), 0, "{}", describe(&output));
    let lines = stdout_lines(&output);
    assert_eq!(lines[0], "arg:args_env.wasm", "{}", describe(&output));
    let mut env: Vec<&str> = lines[1..].iter().map(String::as_str).collect();
    env.sort_unstable();
    assert_eq!(env, ["env:A=1", "env:B=two"], "{}", describe(&output));
}

#[test]
fn env_values_keep_everything_after_the_first_equals_sign() {
    let scratch = scratch!();
    let output = scratch
        .wasmpipe()
        .args(["run", "--env", "EQ=a=b==c", "--env", "EMPTY=", "--env", "SPACE=x y", guests::ARGS_ENV])
        .output()
        .unwrap();
    assert_eq!(code(&output), 0, "{}", describe(&output));
    let mut env: Vec<String> = stdout_lines(&output).into_iter().filter(|line| line.starts_with("env:")).collect();
    env.sort_unstable();
    assert_eq!(env, ["env:EMPTY=", "env:EQ=a=b==c", "env:SPACE=x y"], "{}", describe(&output));
}

// ---------------------------------------------------------------------------------------------
// --dir

/// `<scratch>/data` holding `file.txt` and `sub/inner.txt`, and `<scratch>/outside.txt` next to it.
fn data_dir(scratch: &Scratch) -> PathBuf {
    let data = scratch.path().join("data");
    fs::create_dir_all(data.join("sub")).unwrap();
    fs::write(data.join("file.txt"), "hello from the host\n").unwrap();
    fs::write(data.join("sub/inner.txt"), "nested\n").unwrap();
    fs::write(scratch.path().join("outside.txt"), "outside the preopen\n").unwrap();
    data
}

fn dir_option(host: &Path, guest: &str) -> String {
    format!("{}::{guest}", host.to_str().unwrap())
}

#[test]
fn a_dir_preopen_makes_files_readable_at_the_guest_path() {
    let scratch = scratch!();
    let data = data_dir(&scratch);
    let output = scratch
        .wasmpipe()
        .args(["run", "--dir", &dir_option(&data, "/data"), guests::CAT, "--", "/data/file.txt", "/data/sub/inner.txt"])
        .output()
        .unwrap();
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert_eq!(output.stdout, b"hello from the host\nnested\n", "{}", describe(&output));
    assert_eq!(output.stderr, b"", "{}", describe(&output));
}

#[test]
fn without_dir_nothing_is_preopened() {
    let scratch = scratch!();
    data_dir(&scratch);
    let output = scratch.wasmpipe().args(["run", guests::CAT, "--", "/data/file.txt"]).output().unwrap();
    assert_eq!(code(&output), 1, "{}", describe(&output));
    assert_eq!(output.stdout, b"", "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("error:/data/file.txt:"), "{}", describe(&output));

    // Not even the host path itself, nor the current directory.
    let host_path = scratch.path().join("data/file.txt");
    let output = scratch
        .wasmpipe()
        .current_dir(scratch.path())
        .args(["run", guests::CAT, "--", host_path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(code(&output), 1, "{}", describe(&output));
    let output = scratch
        .wasmpipe()
        .current_dir(scratch.path().join("data"))
        .args(["run", guests::CAT, "--", "file.txt"])
        .output()
        .unwrap();
    assert_eq!(code(&output), 1, "{}", describe(&output));
}

#[test]
fn a_dir_without_guest_path_appears_at_its_host_path() {
    let scratch = scratch!();
    let data = data_dir(&scratch);
    let file = data.join("file.txt");
    let output = scratch
        .wasmpipe()
        .args(["run", "--dir", data.to_str().unwrap(), guests::CAT, "--", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert_eq!(output.stdout, b"hello from the host\n", "{}", describe(&output));
}

#[test]
fn dir_is_repeatable() {
    let scratch = scratch!();
    let data = data_dir(&scratch);
    let output = scratch
        .wasmpipe()
        .args(["run", "--dir", &dir_option(&data, "/a"), "--dir", &dir_option(&data.join("sub"), "/b")])
        .args([guests::CAT, "--", "/a/file.txt", "/b/inner.txt"])
        .output()
        .unwrap();
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert_eq!(output.stdout, b"hello from the host\nnested\n", "{}", describe(&output));
}

#[test]
fn a_dir_preopen_does_not_reach_outside_the_directory() {
    let scratch = scratch!();
    let data = data_dir(&scratch);
    std::os::unix::fs::symlink("../outside.txt", data.join("link-out")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", data.join("link-abs")).unwrap();
    for path in ["/data/../outside.txt", "/data/link-out", "/data/link-abs", "/outside.txt"] {
        let output = scratch
            .wasmpipe()
            .args(["run", "--dir", &dir_option(&data, "/data"), guests::CAT, "--", path])
            .output()
            .unwrap();
        assert_eq!(code(&output), 1, "{path}\n{}", describe(&output));
        assert_eq!(output.stdout, b"", "{path}\n{}", describe(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.starts_with(&format!("error:{path}:")), "{path}\n{}", describe(&output));
    }
}

#[test]
fn a_dir_preopen_is_read_only() {
    let scratch = scratch!();
    let data = data_dir(&scratch);
    let dir = dir_option(&data, "/data");

    // Creating a new file fails, and nothing appears on the host.
    let output =
        scratch.wasmpipe().args(["run", "--dir", &dir, guests::WRITE_FILE, "--", "/data/new.txt"]).output().unwrap();
    assert_eq!(code(&output), 1, "{}", describe(&output));
    assert!(String::from_utf8_lossy(&output.stderr).starts_with("error:/data/new.txt:"), "{}", describe(&output));
    assert!(!data.join("new.txt").exists(), "the guest created a file in a read-only preopen");

    // Overwriting an existing file fails, and it keeps its contents.
    let output =
        scratch.wasmpipe().args(["run", "--dir", &dir, guests::WRITE_FILE, "--", "/data/file.txt"]).output().unwrap();
    assert_eq!(code(&output), 1, "{}", describe(&output));
    assert!(String::from_utf8_lossy(&output.stderr).starts_with("error:/data/file.txt:"), "{}", describe(&output));
    assert_eq!(fs::read_to_string(data.join("file.txt")).unwrap(), "hello from the host\n");

    // The same preopen is readable, so the failures above are about writing.
    let output = scratch.wasmpipe().args(["run", "--dir", &dir, guests::CAT, "--", "/data/file.txt"]).output().unwrap();
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert_eq!(output.stdout, b"hello from the host\n", "{}", describe(&output));
}

// ---------------------------------------------------------------------------------------------
// exit status

#[test]
fn the_exit_status_is_the_guest_exit_code() {
    let scratch = scratch!();
    for n in [0, 3, 42] {
        let output = scratch.wasmpipe().args(["run", guests::EXIT_CODE, "--", &n.to_string()]).output().unwrap();
        assert_eq!(code(&output), n, "exit_code {n}\n{}", describe(&output));
        assert_eq!(output.stdout, format!("exiting with {n}\n").as_bytes(), "exit_code {n}\n{}", describe(&output));
        assert_eq!(wasmpipe_lines(&output), Vec::<String>::new(), "exit_code {n}\n{}", describe(&output));
    }
}

#[test]
fn the_exit_status_is_0_when_start_returns() {
    let scratch = scratch!();
    let output = scratch.wasmpipe().args(["run", guests::SIMPLEX]).output().unwrap();
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert_eq!(output.stdout, b"hi from the child process\n", "{}", describe(&output));
    assert_eq!(output.stderr, b"", "{}", describe(&output));
}

#[test]
fn a_trap_exits_134_with_one_wasmpipe_line_naming_the_trap() {
    let scratch = scratch!();
    let output = scratch.wasmpipe().args(["run", guests::TRAP]).output().unwrap();
    assert_eq!(code(&output), 134, "{}", describe(&output));
    let line = the_wasmpipe_line(&output);
    assert!(line.contains("trap"), "the `wasmpipe:` line does not name the trap: {line:?}\n{}", describe(&output));
    // The guest's own stderr (its panic message) still reaches ours.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("guest panicked on purpose"), "{}", describe(&output));
}

// ---------------------------------------------------------------------------------------------
// failures to start: 125

#[test]
fn a_missing_module_exits_125_with_one_line() {
    let scratch = scratch!();
    let missing = scratch.path().join("no-such-module.wasm");
    let output = scratch.wasmpipe().args(["run", missing.to_str().unwrap()]).output().unwrap();
    assert_eq!(code(&output), 125, "{}", describe(&output));
    assert_eq!(output.stdout, b"", "{}", describe(&output));
    let line = only_stderr_line(&output);
    assert!(line.contains("no-such-module.wasm"), "the line does not name the module: {line:?}");
}

#[test]
fn a_module_that_is_not_wasm_exits_125_with_one_line() {
    let scratch = scratch!();
    let text = scratch.path().join("notes.txt");
    fs::write(&text, "this is not WebAssembly\n").unwrap();
    let output = scratch.wasmpipe().args(["run", text.to_str().unwrap()]).output().unwrap();
    assert_eq!(code(&output), 125, "{}", describe(&output));
    assert_eq!(output.stdout, b"", "{}", describe(&output));
    only_stderr_line(&output);
}

#[test]
fn a_module_without_start_exits_125_with_one_line() {
    let scratch = scratch!();
    let empty = scratch.path().join("empty.wasm");
    fs::write(&empty, b"\0asm\x01\0\0\0").unwrap();
    let output = scratch.wasmpipe().args(["run", empty.to_str().unwrap()]).output().unwrap();
    assert_eq!(code(&output), 125, "{}", describe(&output));
    assert_eq!(output.stdout, b"", "{}", describe(&output));
    let line = only_stderr_line(&output);
    assert!(line.contains("_start"), "the line does not say `_start` is missing: {line:?}");
}

#[test]
fn a_directory_as_module_exits_125_with_one_line() {
    let scratch = scratch!();
    let output = scratch.wasmpipe().args(["run", scratch.path().to_str().unwrap()]).output().unwrap();
    assert_eq!(code(&output), 125, "{}", describe(&output));
    assert_eq!(output.stdout, b"", "{}", describe(&output));
    only_stderr_line(&output);
}

// ---------------------------------------------------------------------------------------------
// cache

#[test]
fn runs_use_the_cache_in_wasmpipe_cache_dir_and_no_cache_leaves_it_alone() {
    let scratch = scratch!();
    let cache = scratch.path().join("cache");
    let entries = || fs::read_dir(&cache).unwrap().count();

    let output = scratch.wasmpipe().args(["run", "--no-cache", guests::SIMPLEX]).output().unwrap();
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert_eq!(output.stdout, b"hi from the child process\n", "{}", describe(&output));
    assert_eq!(entries(), 0, "--no-cache wrote to the cache");

    for _ in 0..2 {
        let output = scratch.wasmpipe().args(["run", guests::SIMPLEX]).output().unwrap();
        assert_eq!(code(&output), 0, "{}", describe(&output));
        assert_eq!(output.stdout, b"hi from the child process\n", "{}", describe(&output));
        assert!(entries() > 0, "a run did not use WASMPIPE_CACHE_DIR");
    }
}

/// `wasmpipe run` forks its runner and names the cache entry with the hash of the engine that
/// runner made; `wasmpipe compile` computes the hash itself. Both must name the same entry, with
/// fuel and without, or every forked run would compile again and store a duplicate.
#[test]
fn a_forked_run_finds_the_entry_compile_stored_and_stores_one_per_engine() {
    let scratch = scratch!();
    let cache = scratch.path().join("cache");
    let output = scratch.wasmpipe().args(["compile", guests::SIMPLEX]).output().unwrap();
    assert_eq!(code(&output), 0, "{}", describe(&output));
    let compiled = cache_entries(&cache);
    assert_eq!(compiled.len(), 1, "{compiled:?}");

    let output = scratch.wasmpipe().args(["run", guests::SIMPLEX]).output().unwrap();
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert_eq!(cache_entries(&cache), compiled, "the forked run did not find the compiled entry");

    // With fuel, another engine: one more entry, found again by the next run.
    for _ in 0..2 {
        let output = scratch.wasmpipe().args(["run", "--fuel", "100000000", guests::SIMPLEX]).output().unwrap();
        assert_eq!(code(&output), 0, "{}", describe(&output));
        assert_eq!(output.stdout, b"hi from the child process\n", "{}", describe(&output));
        assert_eq!(cache_entries(&cache).len(), 2, "{:?}", cache_entries(&cache));
    }
}

/// The engine hash in a cache entry's name (`<module digest>-<engine hash>.cwasm`).
fn engine_of(entry: &Path) -> u64 {
    let name = entry.file_stem().unwrap().to_str().unwrap();
    u64::from_str_radix(name.rsplit('-').next().unwrap(), 16).unwrap()
}

/// A forked run looks its entry up under the engine hash an earlier forked run reported (the
/// `engine-hashes` hint in the cache directory) while its runner makes its engine. A wrong hint
/// costs time only: here it names the entry of the engine *with* fuel, a valid entry that a
/// runner without fuel cannot load. The run must still succeed, compile and store its own entry,
/// and correct the hint, which the next run then uses.
#[test]
fn a_wrong_engine_hint_is_corrected_and_never_used() {
    let scratch = scratch!();
    let cache = scratch.path().join("cache");
    let run = |fuel: bool| {
        let mut command = scratch.wasmpipe();
        command.arg("run");
        if fuel {
            command.args(["--fuel", "100000000"]);
        }
        let output = command.arg(guests::SIMPLEX).output().unwrap();
        assert_eq!(code(&output), 0, "{}", describe(&output));
        assert_eq!(output.stdout, b"hi from the child process\n", "{}", describe(&output));
    };
    run(true);
    let with_fuel = cache_entries(&cache);
    assert_eq!(with_fuel.len(), 1, "{with_fuel:?}");
    let fuel_engine = engine_of(&with_fuel[0]);
    let hint = cache.join("engine-hashes");
    let both_fuel: Vec<u8> = [fuel_engine.to_le_bytes(), fuel_engine.to_le_bytes()].concat();
    fs::write(&hint, &both_fuel).unwrap();

    run(false);
    let entries = cache_entries(&cache);
    assert_eq!(entries.len(), 2, "the run without fuel stored its own entry: {entries:?}");
    let plain_engine = entries.iter().map(|entry| engine_of(entry)).find(|&engine| engine != fuel_engine).unwrap();
    let corrected = fs::read(&hint).unwrap();
    assert_eq!(corrected[..8], plain_engine.to_le_bytes(), "the hint without fuel was corrected");
    assert_eq!(corrected[8..], fuel_engine.to_le_bytes(), "the hint with fuel was right and stays");

    for fuel in [false, true] {
        run(fuel);
    }
    assert_eq!(cache_entries(&cache), entries, "right hints found both entries");
}

/// Whether this process runs as root (the user id on the `Uid:` line of /proc/self/status).
fn running_as_root() -> bool {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    status.lines().find_map(|line| line.strip_prefix("Uid:")).and_then(|ids| ids.split_whitespace().next()) == Some("0")
}

/// Unmounts a mount point when dropped, also when the test fails.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A runner runs a cached module's code where it maps the entry. On a mount that forbids
/// executable mappings (a `noexec` /tmp or home, as many systems have) that is refused, and the
/// module must still run, from a copy: every run here, after the first, loads from that cache.
/// Mounting a tmpfs needs root (as in CI); elsewhere the test says so and checks nothing.
#[test]
fn a_cache_on_a_noexec_mount_still_runs_its_entries() {
    if !running_as_root() {
        eprintln!("skipped: mounting a noexec tmpfs needs root");
        return;
    }
    let scratch = scratch!();
    let cache = scratch.path().join("cache");
    fs::create_dir_all(&cache).unwrap();
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "noexec,mode=0700", "wasmpipe-noexec"])
        .arg(&cache)
        .status()
        .unwrap();
    assert!(status.success(), "mount: {status}");
    let _mounted = Mounted(cache.clone());
    for fuel in [None, None, Some("100000000"), Some("100000000")] {
        let mut command = scratch.wasmpipe();
        command.arg("run");
        if let Some(fuel) = fuel {
            command.args(["--fuel", fuel]);
        }
        let output = command.arg(guests::SIMPLEX).output().unwrap();
        assert_eq!(code(&output), 0, "{}", describe(&output));
        assert_eq!(output.stdout, b"hi from the child process\n", "{}", describe(&output));
    }
    assert_eq!(cache_entries(&cache).len(), 2, "one entry per engine, reused: {:?}", cache_entries(&cache));
}

// ---------------------------------------------------------------------------------------------
// --help

#[test]
fn run_help_mentions_every_option() {
    let scratch = scratch!();
    let output = scratch.wasmpipe().args(["run", "--help"]).output().unwrap();
    assert_eq!(code(&output), 0, "{}", describe(&output));
    let help = String::from_utf8_lossy(&output.stdout);
    for word in ["--env", "--dir", "--timeout", "--memory", "--fuel", "--no-cache", "MODULE", "GUEST_ARGS"] {
        assert!(help.contains(word), "`wasmpipe run --help` does not mention {word}\n{help}");
    }
}

#[test]
fn an_exit_code_above_255_is_never_reported_as_success() {
    let scratch = scratch!();
    for n in [256, 512, 1000] {
        let output = scratch.wasmpipe().args(["run", guests::EXIT_CODE, "--", &n.to_string()]).output().unwrap();
        assert_eq!(code(&output), 1, "exit_code {n}\n{}", describe(&output));
    }
}

// ---------------------------------------------------------------------------------------------
// dangerous grants, writable grants

#[test]
fn granting_the_root_or_proc_is_refused_unless_explicitly_unsafe() {
    let scratch = scratch!();
    for dir in ["/", "/proc", "/::/host"] {
        let output = scratch.wasmpipe().args(["run", "--dir", dir, guests::SIMPLEX]).output().unwrap();
        assert_eq!(code(&output), 125, "{}", describe(&output));
        let line = only_stderr_line(&output);
        assert!(line.contains("cannot grant directory"), "{line}");
    }
    let output = scratch
        .wasmpipe()
        .args(["run", "--unsafe-allow-dangerous-dirs", "--dir", "/::/host", guests::SIMPLEX])
        .output()
        .unwrap();
    assert_eq!(code(&output), 0, "{}", describe(&output));
}

#[test]
fn dir_rw_grants_a_writable_directory_where_every_preview1_call_works() {
    let scratch = scratch!();
    let work = scratch.path().join("work");
    fs::create_dir_all(&work).unwrap();
    let grant = format!("{}::/work", work.display());
    let output = scratch.wasmpipe().args(["run", "--dir-rw", &grant, guests::WASI_ALL]).output().unwrap();
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert!(!String::from_utf8_lossy(&output.stdout).contains("FAIL"), "{}", describe(&output));
    // Read-only, the same guest fails at its first write, reported by the guest itself.
    let output = scratch.wasmpipe().args(["run", "--dir", &grant, guests::WASI_ALL]).output().unwrap();
    assert_eq!(code(&output), 1, "{}", describe(&output));
}

// ---------------------------------------------------------------------------------------------
// compile

#[test]
fn compile_says_where_it_stored_the_module_and_when_it_could_not() {
    let scratch = scratch!();
    let output = scratch.wasmpipe().args(["compile", guests::SIMPLEX]).output().unwrap();
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert!(only_stderr_line(&output).contains("compiled"), "{}", describe(&output));
    let output = scratch.wasmpipe().args(["compile", guests::SIMPLEX]).output().unwrap();
    assert!(only_stderr_line(&output).contains("already compiled"), "{}", describe(&output));

    // A cache directory others can write is not trusted: nothing is stored, and compile says so.
    let shared = scratch.path().join("shared");
    fs::create_dir_all(&shared).unwrap();
    fs::set_permissions(&shared, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let output =
        scratch.wasmpipe().env("WASMPIPE_CACHE_DIR", &shared).args(["compile", guests::SIMPLEX]).output().unwrap();
    assert_ne!(code(&output), 0, "{}", describe(&output));
    let line = only_stderr_line(&output);
    assert!(line.contains("nothing was stored") && line.contains("others write"), "{line}");
    assert_eq!(fs::read_dir(&shared).unwrap().count(), 0);
    // And running from it still works, uncached.
    let output = scratch.wasmpipe().env("WASMPIPE_CACHE_DIR", &shared).args(["run", guests::SIMPLEX]).output().unwrap();
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert_eq!(fs::read_dir(&shared).unwrap().count(), 0);
}

/// The `.cwasm` entries in a cache directory.
fn cache_entries(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "cwasm"))
        .collect();
    entries.sort();
    entries
}

#[test]
fn an_entry_planted_under_another_modules_name_never_runs() {
    let scratch = scratch!();
    let cache = scratch.path().join("cache");
    let compile = |module| scratch.wasmpipe().args(["compile", module]).output().unwrap();
    assert_eq!(code(&compile(guests::SIMPLEX)), 0);
    let simplex_entry = cache_entries(&cache).remove(0);
    assert_eq!(code(&compile(guests::EXIT_CODE)), 0);
    let exit_code_entry = cache_entries(&cache).into_iter().find(|entry| entry != &simplex_entry).unwrap();
    // Whoever can write the directory swaps in another module's (genuine, MAC'd) entry.
    fs::copy(&exit_code_entry, &simplex_entry).unwrap();
    let output = scratch.wasmpipe().args(["run", guests::SIMPLEX]).output().unwrap();
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert_eq!(output.stdout, b"hi from the child process\n", "{}", describe(&output));
}

#[test]
fn stats_prints_what_the_guest_used_as_one_json_line() {
    let scratch = scratch!();
    for (args, expected_status) in [(vec![guests::EXIT_CODE, "--", "3"], 3), (vec![guests::TRAP], 134)] {
        let output = scratch.wasmpipe().args(["run", "--stats", "--fuel", "100000000"]).args(&args).output().unwrap();
        assert_eq!(code(&output), expected_status, "{}", describe(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        let line = stderr.lines().find(|line| line.starts_with('{')).unwrap_or_else(|| panic!("{stderr}"));
        let stats: serde_json::Value = serde_json::from_str(line).unwrap();
        for key in ["wall_ms", "cpu_user_ms", "cpu_system_ms", "peak_memory_bytes", "fuel_consumed"] {
            assert!(stats[key].as_f64().is_some_and(|value| value >= 0.0), "{key} in {line}");
        }
        assert!(stats["wall_ms"].as_f64().unwrap() > 0.0, "{line}");
        assert!(stats["peak_memory_bytes"].as_u64().unwrap() >= 65536, "{line}");
    }
}
