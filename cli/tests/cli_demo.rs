//! `wasmpipe demo`, the default command: aiopipe's two README examples through sandboxed guests.
//! And `wasmpipe --help`, which lists the commands.

use std::process::Output;

mod common;
use common::*;

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
