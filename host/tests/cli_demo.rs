//! `wasmpipe demo`, the default command: aiopipe's two README examples through sandboxed guests.
//! And `wasmpipe --help`, which lists the commands.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};

/// A scratch directory for one test, `<tmp>/wasmpipe-cli-<pid>-<test>`, removed when dropped.
/// Its `cache/` subdirectory is the test's own compiled-module cache.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("wasmpipe-cli-{}-{test}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("cache")).unwrap();
        Self(dir)
    }

    /// A `wasmpipe` command that uses this test's cache and nothing of the user's.
    fn wasmpipe(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wasmpipe"));
        command.env("WASMPIPE_CACHE_DIR", self.0.join("cache"));
        command
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A [`Scratch`] named after the enclosing test function.
macro_rules! scratch {
    () => {{
        fn here() {}
        let name = std::any::type_name_of_val(&here).trim_end_matches("::here");
        Scratch::new(name.rsplit("::").next().unwrap())
    }};
}

fn describe(output: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn assert_demo_ran(output: &Output) {
    assert_eq!(output.status.code(), Some(0), "{}", describe(output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("hi from the child process"), "no simplex line\n{}", describe(output));
    assert!(stdout.contains("HELLO WORLD"), "no duplex line\n{}", describe(output));
}

#[test]
fn demo_runs_both_aiopipe_examples() {
    let scratch = scratch!();
    let output = scratch.wasmpipe().arg("demo").output().unwrap();
    assert_demo_ran(&output);
}

#[test]
fn demo_is_the_default_command() {
    let scratch = scratch!();
    let output = scratch.wasmpipe().output().unwrap();
    assert_demo_ran(&output);
}

#[test]
fn demo_needs_no_guest_files_and_works_from_any_directory() {
    let scratch = scratch!();
    let output = scratch.wasmpipe().arg("demo").current_dir("/").output().unwrap();
    assert_demo_ran(&output);
}

#[test]
fn help_lists_the_commands() {
    let scratch = scratch!();
    let output = scratch.wasmpipe().arg("--help").output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let help = String::from_utf8_lossy(&output.stdout);
    for command in ["run", "demo", "compile", "bench"] {
        assert!(help.contains(command), "`wasmpipe --help` does not list `{command}`\n{help}");
    }
}
