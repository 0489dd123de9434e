//! The sandbox runner of `wasmpipe run`: a child process of `wasmpipe` that dies with it, even
//! when `wasmpipe` is killed with SIGKILL; and a runner killed by signal N makes `wasmpipe` exit
//! with 128+N.

use std::fs;
use std::io::Read;
use std::process::{Child, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

mod common;
use common::*;

/// How long to wait for a process to show up or to go away.
const DEADLINE: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(10);

/// The children of `pid`, from `/proc/<pid>/task/<tid>/children` over all its threads.
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    let mut children: Vec<u32> = tasks
        .filter_map(|task| fs::read_to_string(task.ok()?.path().join("children")).ok())
        .flat_map(|list| list.split_whitespace().map(|child| child.parse().unwrap()).collect::<Vec<u32>>())
        .collect();
    children.sort_unstable();
    children.dedup();
    children
}

/// Polls until `pid` has a child, and returns its children.
fn wait_for_children(pid: u32) -> Vec<u32> {
    let started = Instant::now();
    loop {
        let found = children(pid);
        if !found.is_empty() {
            return found;
        }
        assert!(started.elapsed() < DEADLINE, "wasmpipe (pid {pid}) started no runner within {DEADLINE:?}");
        thread::sleep(POLL);
    }
}

/// `(state, parent pid)` from `/proc/<pid>/stat`, or `None` once the process is gone.
fn state_and_parent(pid: u32) -> Option<(char, u32)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`, where comm may contain anything, including `) `.
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?.chars().next()?;
    let parent = fields.next()?.parse().ok()?;
    Some((state, parent))
}

/// Whether `pid` is gone, or a zombie (dead, waiting to be reaped by whoever inherited it).
fn is_dead(pid: u32) -> bool {
    matches!(state_and_parent(pid), None | Some(('Z' | 'X', _)))
}

/// Polls until every pid in `pids` is dead; returns how long that took.
fn wait_until_dead(pids: &[u32]) -> Duration {
    let started = Instant::now();
    while !pids.iter().all(|&pid| is_dead(pid)) {
        let alive: Vec<_> =
            pids.iter().filter(|&&pid| !is_dead(pid)).map(|&pid| (pid, state_and_parent(pid))).collect();
        assert!(started.elapsed() < DEADLINE, "still alive after {DEADLINE:?}: {alive:?} (pid, (state, parent))");
        thread::sleep(POLL);
    }
    started.elapsed()
}

/// Starts `wasmpipe run <module>` with all stdio piped; stdin stays open while the `Child` lives.
fn spawn_run(scratch: &Scratch, module: &str) -> Child {
    scratch
        .wasmpipe()
        .args(["run", module])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Starts the `duplex` guest and returns once it has written `hello`: the runner is then past its
/// setup, running the guest, which now blocks reading stdin.
fn spawn_running_duplex(scratch: &Scratch) -> Child {
    let mut child = spawn_run(scratch, guests::DUPLEX);
    let mut hello = [0u8; 5];
    child.stdout.as_mut().unwrap().read_exact(&mut hello).unwrap();
    assert_eq!(&hello, b"hello");
    child
}

/// Kills `wasmpipe` with SIGKILL and checks that its runners die too.
fn kill_wasmpipe_and_check_the_runner_dies(mut wasmpipe: Child, runners: &[u32], what: &str) {
    let pid = wasmpipe.id();
    for &runner in runners {
        let (_, parent) = state_and_parent(runner).expect("the runner vanished before wasmpipe was killed");
        assert_eq!(parent, pid, "runner {runner} is not a child of wasmpipe {pid}");
    }
    wasmpipe.kill().unwrap();
    let status = wasmpipe.wait().unwrap();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9), "{status}");
    let took = wait_until_dead(runners);
    eprintln!("{what}: runner(s) {runners:?} dead {took:.3?} after wasmpipe was SIGKILLed");
}

#[test]
fn the_runner_is_a_child_of_wasmpipe_and_dies_when_wasmpipe_is_sigkilled() {
    let scratch = scratch!();
    let wasmpipe = spawn_run(&scratch, guests::BLOCK_READ);
    let runners = wait_for_children(wasmpipe.id());
    kill_wasmpipe_and_check_the_runner_dies(wasmpipe, &runners, "block_read");
}

#[test]
fn a_runner_running_its_guest_dies_when_wasmpipe_is_sigkilled() {
    let scratch = scratch!();
    let wasmpipe = spawn_running_duplex(&scratch);
    let runners = children(wasmpipe.id());
    assert!(!runners.is_empty(), "the guest runs, but wasmpipe {} has no child", wasmpipe.id());
    kill_wasmpipe_and_check_the_runner_dies(wasmpipe, &runners, "duplex");
}

/// Kills the runner of a running guest with `signal`, and returns what `wasmpipe` then reported.
fn kill_the_runner(scratch: &Scratch, signal: i32) -> Output {
    let mut wasmpipe = spawn_running_duplex(scratch);
    let runners = children(wasmpipe.id());
    assert_eq!(runners.len(), 1, "expected one runner, wasmpipe has children {runners:?}");
    // SAFETY: plain kill(2) on a process we just saw as wasmpipe's child (it cannot have been
    // reaped and its pid reused: wasmpipe is blocked waiting for the guest, which waits for us).
    assert_eq!(unsafe { libc::kill(runners[0] as i32, signal) }, 0, "{}", std::io::Error::last_os_error());
    // Kept open until wasmpipe exits, so that its exit is due to the signal, not to EOF.
    let stdin = wasmpipe.stdin.take();
    let output = wasmpipe.wait_with_output().unwrap();
    drop(stdin);
    output
}

#[test]
fn a_runner_killed_by_sigkill_makes_wasmpipe_exit_137() {
    let scratch = scratch!();
    let output = kill_the_runner(&scratch, libc::SIGKILL);
    assert_eq!(output.status.code(), Some(128 + 9), "{}", describe(&output));
    the_wasmpipe_line(&output);
}

#[test]
fn a_runner_killed_by_sigterm_makes_wasmpipe_exit_143() {
    let scratch = scratch!();
    let output = kill_the_runner(&scratch, libc::SIGTERM);
    assert_eq!(output.status.code(), Some(128 + 15), "{}", describe(&output));
    the_wasmpipe_line(&output);
}

/// `comm` of process `pid`: the name its threads show in `ps`.
fn comm(pid: u32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim_end().to_owned()
}

#[test]
fn the_runner_is_forked_and_keeps_none_of_the_environment_of_wasmpipe() {
    let scratch = scratch!();
    let secret = format!("hunter2-{}", std::process::id());
    let mut wasmpipe = scratch
        .wasmpipe()
        .env("WASMPIPE_TEST_SECRET", &secret)
        .args(["run", guests::DUPLEX])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut hello = [0u8; 5];
    wasmpipe.stdout.as_mut().unwrap().read_exact(&mut hello).unwrap();
    let runners = children(wasmpipe.id());
    assert_eq!(runners.len(), 1, "expected one runner, wasmpipe has children {runners:?}");
    let runner = runners[0];
    // A forked runner names itself; an exec'd one would be `exe` (from /proc/self/exe).
    assert_eq!(comm(runner), "wasmpipe-runner", "the runner was not forked");
    let environ = |pid: u32| fs::read(format!("/proc/{pid}/environ")).unwrap();
    let holds_secret = |bytes: &[u8]| bytes.windows(secret.len()).any(|window| window == secret.as_bytes());
    assert!(holds_secret(&environ(wasmpipe.id())), "the test's own check is broken");
    assert!(!holds_secret(&environ(runner)), "the forked runner still holds wasmpipe's environment");
    drop(wasmpipe.stdin.take());
    let output = wasmpipe.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
}
