//! `wasmpipe run` stdio: wasmpipe's stdin is the guest's stdin and the guest's stdout is wasmpipe's
//! stdout, byte for byte, whether they are pipes or files; the guest's stderr is wasmpipe's stderr.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Output, Stdio};
use std::thread;

mod common;
use common::*;

/// Runs `command` with `input` written to its stdin (a pipe, closed after the input) from another
/// thread, while its stdout and stderr are collected through pipes.
fn run_with_input(command: &mut Command, input: &[u8]) -> Output {
    let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().expect("writing the guest's stdin");
    output
}

/// Every byte value, invalid UTF-8 (a lone continuation byte, a truncated sequence, an overlong
/// encoding, a surrogate), CRs, NULs, empty lines, and a last line without a newline.
fn binary_input() -> Vec<u8> {
    let mut input: Vec<u8> = (0..=255u8).collect();
    input.extend_from_slice(b"\n");
    input.extend((0..=255u8).rev());
    input.extend_from_slice(b"\n\n\r\n\0\0\n\x80\n\xc3\n\xc0\xaf\n\xed\xa0\x80\n\xff\xfe\xfd");
    input.extend_from_slice("valid UTF-8 too: héllo ✓\n".as_bytes());
    input.extend((0..=255u8).cycle().take(3 * 256 + 17));
    input.extend_from_slice(b"last line, no newline");
    input
}

/// Deterministic pseudo-random bytes with a newline now and then (lines up to ~1000 bytes).
fn bulk_input(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut data = Vec::with_capacity(len);
    while data.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let byte = (state >> 24) as u8;
        data.push(if state.is_multiple_of(997) { b'\n' } else { byte });
    }
    data
}

#[test]
fn every_byte_value_and_invalid_utf8_pass_through_pipes() {
    let scratch = scratch!();
    let input = binary_input();
    let output = run_with_input(scratch.wasmpipe().args(["run", guests::ECHO]), &input);
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert!(output.stdout == input, "stdout differs from stdin\n{}", describe(&output));
    assert_eq!(output.stderr, b"", "{}", describe(&output));
}

#[test]
fn a_last_line_without_newline_is_not_lost() {
    let scratch = scratch!();
    let output = run_with_input(scratch.wasmpipe().args(["run", guests::UPPER]), b"first\nsecond");
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert_eq!(output.stdout, b"FIRST\nSECOND", "{}", describe(&output));

    let output = run_with_input(scratch.wasmpipe().args(["run", guests::ECHO]), b"x");
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert_eq!(output.stdout, b"x", "{}", describe(&output));
}

#[test]
fn empty_stdin_gives_empty_stdout() {
    let scratch = scratch!();
    let output = scratch.wasmpipe().args(["run", guests::ECHO]).stdin(Stdio::null()).output().unwrap();
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert_eq!(output.stdout, b"", "{}", describe(&output));
    let output = run_with_input(scratch.wasmpipe().args(["run", guests::ECHO]), b"");
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert_eq!(output.stdout, b"", "{}", describe(&output));
}

#[test]
fn bulk_binary_data_passes_through_pipes() {
    let scratch = scratch!();
    let input = bulk_input(16 << 20);
    let output = run_with_input(scratch.wasmpipe().args(["run", guests::ECHO]), &input);
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert_eq!(output.stdout.len(), input.len(), "{}", describe(&output));
    assert!(output.stdout == input, "stdout differs from stdin\n{}", describe(&output));
}

#[test]
fn stdin_and_stdout_can_be_files() {
    let scratch = scratch!();
    let mut input = bulk_input(4 << 20);
    input.extend_from_slice(&binary_input());
    let in_path = scratch.path().join("in.bin");
    let out_path = scratch.path().join("out.bin");
    fs::write(&in_path, &input).unwrap();

    let output = scratch
        .wasmpipe()
        .args(["run", guests::ECHO])
        .stdin(File::open(&in_path).unwrap())
        .stdout(File::create(&out_path).unwrap())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(code(&output), 0, "{}", describe(&output));
    let written = fs::read(&out_path).unwrap();
    assert_eq!(written.len(), input.len(), "{}", describe(&output));
    assert!(written == input, "the stdout file differs from the stdin file");
}

#[test]
fn stdin_a_file_and_stdout_a_pipe() {
    let scratch = scratch!();
    let input = binary_input();
    let in_path = scratch.path().join("in.bin");
    fs::write(&in_path, &input).unwrap();
    let output = scratch.wasmpipe().args(["run", guests::ECHO]).stdin(File::open(&in_path).unwrap()).output().unwrap();
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert!(output.stdout == input, "stdout differs from the stdin file\n{}", describe(&output));
}

#[test]
fn stdin_a_pipe_and_stdout_a_file() {
    let scratch = scratch!();
    let input = binary_input();
    let out_path = scratch.path().join("out.bin");
    let mut child = scratch
        .wasmpipe()
        .args(["run", guests::ECHO])
        .stdin(Stdio::piped())
        .stdout(File::create(&out_path).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert!(fs::read(&out_path).unwrap() == input, "the stdout file differs from stdin");
}

#[test]
fn stdout_opened_for_append_is_appended_to() {
    let scratch = scratch!();
    let out_path = scratch.path().join("log.txt");
    fs::write(&out_path, "already there\n").unwrap();
    for line in ["one\n", "two"] {
        let mut child = scratch
            .wasmpipe()
            .args(["run", guests::UPPER])
            .stdin(Stdio::piped())
            .stdout(OpenOptions::new().append(true).open(&out_path).unwrap())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(line.as_bytes()).unwrap();
        let output = child.wait_with_output().unwrap();
        assert_eq!(code(&output), 0, "{}", describe(&output));
    }
    assert_eq!(fs::read_to_string(&out_path).unwrap(), "already there\nONE\nTWO");
}

#[test]
fn a_large_file_read_by_the_guest_reaches_a_stdout_file_intact() {
    let scratch = scratch!();
    let data = scratch.path().join("data");
    fs::create_dir_all(&data).unwrap();
    let contents = bulk_input(8 << 20);
    fs::write(data.join("big.bin"), &contents).unwrap();
    let out_path = scratch.path().join("out.bin");
    let output = scratch
        .wasmpipe()
        .args(["run", "--dir", &format!("{}::/data", data.display()), guests::CAT, "--", "/data/big.bin"])
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).unwrap())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert!(fs::read(&out_path).unwrap() == contents, "the stdout file differs from the guest's input file");
}

/// Replies come back while stdin is still open: nothing is held back until EOF.
#[test]
fn request_and_reply_interleave_over_pipes() {
    let scratch = scratch!();
    let mut child = scratch
        .wasmpipe()
        // A safety net so that a broken implementation fails this test instead of hanging it.
        .args(["run", "--timeout", "60s", guests::UPPER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    for request in [&b"hello\n"[..], b"w\xc3\xb6rld \xff?\n", b"\n", b"third line\n"] {
        stdin.write_all(request).unwrap();
        stdin.flush().unwrap();
        let mut reply = Vec::new();
        stdout.read_until(b'\n', &mut reply).unwrap();
        assert_eq!(reply, request.to_ascii_uppercase());
    }
    drop(stdin);
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"");
    let output = child.wait_with_output().unwrap();
    assert_eq!(code(&output), 0, "{}", describe(&output));
}

#[test]
fn a_guest_that_exits_without_reading_stdin_still_exits_cleanly() {
    let scratch = scratch!();
    let mut child = scratch
        .wasmpipe()
        .args(["run", guests::EXIT_EARLY])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // Whether these writes fail (broken pipe) depends on timing; either way is fine.
    let writer = thread::spawn(move || {
        let block = vec![b'z'; 64 * 1024];
        for _ in 0..64 {
            if stdin.write_all(&block).is_err() {
                break;
            }
        }
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert_eq!(output.stdout, b"bye\n", "{}", describe(&output));
}

#[test]
fn the_guest_stderr_is_wasmpipe_stderr_byte_for_byte() {
    const TOTAL: usize = 64 * 1024 * 1024;
    const PADDING: &str = "..........................................";
    let scratch = scratch!();
    let output = scratch.wasmpipe().args(["run", guests::STDERR_FLOOD]).stdin(Stdio::null()).output().unwrap();
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert_eq!(output.stdout, b"", "{}", describe(&output));
    assert_eq!(output.stderr.len(), TOTAL, "{}", describe(&output));
    let mut expected = String::with_capacity(TOTAL);
    for n in 0..TOTAL / 64 {
        use std::fmt::Write as _;
        writeln!(expected, "stderr line {n:08} {PADDING}").unwrap();
    }
    assert!(output.stderr == expected.as_bytes(), "stderr differs from what the guest wrote");
}

#[test]
fn the_guest_stderr_and_stdout_stay_apart() {
    let scratch = scratch!();
    let output = scratch.wasmpipe().args(["run", guests::CAT, "--", "/no/such/file"]).output().unwrap();
    assert_eq!(code(&output), 1, "{}", describe(&output));
    assert_eq!(output.stdout, b"", "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("error:/no/such/file:"), "{}", describe(&output));
    assert!(!stderr.contains("wasmpipe:"), "{}", describe(&output));
}

#[test]
fn a_c_guest_filters_wasmpipes_stdin_to_its_stdout_and_logs_to_its_stderr() {
    let scratch = scratch!();
    let output = run_with_input(scratch.wasmpipe().args(["run", guests::C_UPPER]), b"one\ntwo\n\nlast");
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert_eq!(output.stdout, b"ONE\nTWO\n\nLAST", "{}", describe(&output));
    assert_eq!(String::from_utf8_lossy(&output.stderr), "c-upper: 4 lines\n", "{}", describe(&output));
}

#[test]
fn a_wasi_0_2_component_runs_with_the_same_stdio_args_and_exit_status() {
    let scratch = scratch!();
    // The `upper` guest built for wasm32-wasip2: a component, detected from its header.
    let output = run_with_input(scratch.wasmpipe().args(["run", guests::P2_UPPER]), b"one\ntwo \xff\n");
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert_eq!(output.stdout, b"ONE\nTWO \xff\n", "{}", describe(&output));
    // Rust's `std::process::exit(3)` is WASI 0.2's `exit(err)` in a component: status 1.
    let output = scratch.wasmpipe().args(["run", guests::P2_EXIT_CODE, "--", "3"]).output().unwrap();
    assert_eq!(code(&output), 1, "{}", describe(&output));
    assert_eq!(output.stdout, b"exiting with 3\n", "{}", describe(&output));
}
