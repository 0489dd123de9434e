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

/// `cli/build.rs` hands the linker `startup-order/symbols.txt`: the listed functions this build
/// has come first in `.text`, in the list's order, so that a start faults in a few pages of code
/// rather than most of it.
#[test]
#[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
fn the_start_up_functions_come_first_in_the_listed_order() {
    use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};
    use std::collections::{HashMap, HashSet};
    let binary = std::fs::read(env!("CARGO_BIN_EXE_wasmpipe")).unwrap();
    let file = object::File::parse(&*binary).unwrap();
    let functions: HashMap<&str, u64> = file
        .symbols()
        .filter(|symbol| symbol.kind() == SymbolKind::Text && symbol.size() > 0)
        .filter_map(|symbol| Some((symbol.name().ok()?, symbol.address())))
        .collect();
    let listed: Vec<&str> = include_str!("../startup-order/symbols.txt")
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect();
    // A debug build shares only the standard library's names with the (release) list.
    let placed: Vec<u64> = listed.iter().filter_map(|name| functions.get(name).copied()).collect();
    assert!(
        placed.len() >= 20,
        "only {} listed functions are in this build: after a toolchain upgrade, run \
         cli/startup-order/regenerate.sh",
        placed.len()
    );
    assert!(placed.windows(2).all(|pair| pair[0] <= pair[1]), "the listed functions are out of order");
    let text = file.section_by_name(".text").unwrap().address();
    let listed: HashSet<&str> = listed.into_iter().collect();
    let at_listed: HashSet<u64> = placed.iter().copied().collect();
    let last = *placed.last().unwrap();
    // Other names for a listed function (the standard library folds identical ones) don't count.
    let unlisted_before = functions
        .iter()
        .filter(|&(name, address)| (text..last).contains(address) && !listed.contains(name))
        .filter(|&(_, address)| !at_listed.contains(address))
        .count();
    assert!(
        unlisted_before * 10 <= placed.len(),
        "{unlisted_before} unlisted functions come before the last of {} listed ones",
        placed.len()
    );
}
