//! `wasmpipe map`: stdin's lines fanned out to sandboxed workers, replies in input order,
//! binary-safe; failures reported per line, `--keep-going`, `--timeout` per request, `--max-line`
//! and guests that stop answering, through the real `wasmpipe` binary.

use std::io::Write;
use std::process::{Output, Stdio};

mod common;
use common::*;

/// Runs `wasmpipe map <args>` with `input` on its stdin.
fn map(scratch: &Scratch, args: &[&str], input: &[u8]) -> Output {
    let mut child = scratch
        .wasmpipe()
        .arg("map")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // Written from a thread: the replies flow while the input does.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    output
}

/// The `wasmpipe:` lines of stderr.
fn reports(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stderr).lines().filter(|l| l.starts_with("wasmpipe:")).map(Into::into).collect()
}

#[test]
fn replies_come_in_input_order_binary_safe_and_a_last_line_without_newline_counts() {
    let scratch = scratch!();
    let mut input = Vec::new();
    for i in 0..500u32 {
        // Bytes that are not UTF-8, a NUL, a CR: all passed through as they are.
        input.extend_from_slice(format!("line {i} ").as_bytes());
        input.extend_from_slice(&[0xff, 0x00, b'\r', (i % 250) as u8 + 1]);
        input.push(b'\n');
    }
    input.extend_from_slice(b"the last one");
    let output = map(&scratch, &["-j", "3", guests::ECHO], &input);
    assert_eq!(code(&output), 0, "{}", describe(&output));
    let mut expected = input.clone();
    expected.push(b'\n');
    assert_eq!(output.stdout, expected, "{}", describe(&output));
}

#[test]
fn empty_input_gives_empty_output() {
    let scratch = scratch!();
    let output = map(&scratch, &[guests::UPPER], b"");
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert!(output.stdout.is_empty());
}

#[test]
fn a_crash_stops_the_run_with_1_and_names_the_line_and_its_input() {
    let scratch = scratch!();
    let output = map(&scratch, &["-j", "2", guests::CRASH_ON], b"a\nb\ncrash\nc\nd\n");
    assert_eq!(code(&output), 1, "{}", describe(&output));
    let line = the_wasmpipe_line(&output);
    assert!(line.starts_with("wasmpipe: line 3: guest trapped: "), "{line}");
    assert!(line.ends_with(" (input: crash)"), "{line}");
    // What came before the failure is out, in order.
    assert!(output.stdout.starts_with(b"A\nB\n"), "{}", describe(&output));
}

#[test]
fn keep_going_reports_every_failed_line_and_answers_the_rest() {
    let scratch = scratch!();
    let output = map(&scratch, &["--keep-going", "-j", "2", guests::CRASH_ON], b"a\ncrash\nb\nc\ncrash\nd\n");
    assert_eq!(code(&output), 1, "{}", describe(&output));
    let reports = reports(&output);
    assert_eq!(reports.len(), 2, "{}", describe(&output));
    assert!(reports[0].starts_with("wasmpipe: line 2: guest trapped: ") && reports[0].ends_with("(input: crash)"));
    assert!(reports[1].starts_with("wasmpipe: line 5: guest trapped: ") && reports[1].ends_with("(input: crash)"));
    assert_eq!(output.stdout, b"A\nB\nC\nD\n", "{}", describe(&output));
}

#[test]
fn the_timeout_applies_to_each_request() {
    let scratch = scratch!();
    // block_read never answers.
    let output = map(&scratch, &["--timeout", "300ms", guests::BLOCK_READ], b"anyone?\n");
    assert_eq!(code(&output), 1, "{}", describe(&output));
    assert_eq!(the_wasmpipe_line(&output), "wasmpipe: line 1: guest timed out after 300ms (input: anyone?)");
    // A guest that answers in time is not affected, however long the whole run.
    let input: Vec<u8> = (0..300).flat_map(|i| format!("{i}\n").into_bytes()).collect();
    let output = map(&scratch, &["--timeout", "2s", "-j", "2", guests::UPPER], &input);
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert_eq!(output.stdout, input);
}

#[test]
fn a_reply_over_max_line_is_an_error_not_a_hang() {
    let scratch = scratch!();
    let mut input = b"short\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', 4096));
    input.push(b'\n');
    let output = map(&scratch, &["--max-line", "1KiB", guests::ECHO], &input);
    assert_eq!(code(&output), 1, "{}", describe(&output));
    let line = the_wasmpipe_line(&output);
    assert!(line.starts_with("wasmpipe: line 2: line longer than 1024 bytes (input: xxxx"), "{line}");
    // The input shown is its first 80 bytes.
    assert!(line.ends_with(&format!("(input: {})", "x".repeat(80))), "{line}");
    assert_eq!(output.stdout, b"short\n");

    // A guest that writes one endless line: memory stays bounded, and the run ends.
    let output = map(&scratch, &["--max-line", "64KiB", guests::ENDLESS_LINE], b"go\n");
    assert_eq!(code(&output), 1, "{}", describe(&output));
    assert!(the_wasmpipe_line(&output).starts_with("wasmpipe: line 1: line longer than 65536 bytes"));
}

#[test]
fn a_guest_that_exits_before_answering_everything_names_the_first_unanswered_line() {
    let scratch = scratch!();
    // exit_early answers its first line with `bye` and exits.
    let output = map(&scratch, &["-j", "1", guests::EXIT_EARLY], b"one\ntwo\nthree\n");
    assert_eq!(code(&output), 1, "{}", describe(&output));
    assert_eq!(output.stdout, b"bye\n");
    assert_eq!(
        the_wasmpipe_line(&output),
        "wasmpipe: line 2: the guest exited with code 0 before replying (input: two)"
    );
}

#[test]
fn a_module_that_cannot_run_is_one_report_whatever_keep_going_says() {
    let scratch = scratch!();
    let missing = scratch.path().join("missing.wasm");
    let output = map(&scratch, &["--keep-going", missing.to_str().unwrap()], b"a\nb\nc\n");
    assert_eq!(code(&output), 125, "{}", describe(&output));
    let line = the_wasmpipe_line(&output);
    assert!(line.starts_with("wasmpipe: invalid module: cannot read "), "{line}");
}

#[test]
fn jobs_must_be_at_least_one() {
    let scratch = scratch!();
    let output = map(&scratch, &["-j", "0", guests::UPPER], b"a\n");
    assert_eq!(code(&output), 2, "{}", describe(&output));
}

#[test]
fn the_options_of_run_apply_to_every_worker() {
    let scratch = scratch!();
    // args_env prints its argv and environment, then ends: each worker answers its first line
    // with `arg:args_env.wasm` (lines beyond what it prints are not the point here).
    let output = map(&scratch, &["-j", "1", "--env", "K=v", guests::ARGS_ENV, "--", "x"], b"1\n2\n3\n");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("arg:args_env.wasm\narg:x\nenv:K=v\n"), "{}", describe(&output));
}
