//! The runner's helper threads, all started before hardening.
//!
//! Two threads, whatever the guest does:
//! - the **watchman** sleeps in `poll(2)` on the control socket with the timeout as its deadline.
//!   It starts watching once the module has arrived; from then on the socket becomes readable
//!   only when the parent dies, and then the runner exits at once. At the deadline it bumps the engine's epoch, which makes a
//!   computing guest trap; if the guest is stuck in a host call instead and has not ended after a
//!   short grace, the watchman reports the timeout itself and ends the runner.
//! - the **timer driver** drives the tokio runtime wasmtime-wasi uses for its timers.
//!
//! A new thread makes syscalls of its own before reaching its closure (glibc registers `rseq` and
//! the robust futex list, Rust sets up its stack guard); on a loaded machine that can happen
//! arbitrarily late, and after the seccomp filter lands those syscalls are fatal. So threads are
//! started through [`Starting`], and [`Starting::wait`] returns once all of them run: started
//! together, they come up in parallel with the module loading instead of one after another.

use super::{CONTROL_FD, report_and_exit};
use crate::protocol::Verdict;
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::fd::BorrowedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::time::{Duration, Instant};

/// How long a guest that is blocked in a host call (typically a read of stdin) may outlive its
/// timeout before the watchman ends the runner without waiting for the guest to return.
const BLOCKED_GUEST_GRACE: Duration = Duration::from_millis(200);

/// Exit status when the parent is gone: nobody is left to read a verdict.
const PARENT_GONE_STATUS: i32 = 137;

/// Threads that have been spawned and may still be starting up.
#[derive(Default)]
pub(super) struct Starting {
    running: Vec<Receiver<()>>,
}

impl Starting {
    pub(super) fn spawn(&mut self, body: impl FnOnce() + Send + 'static) {
        let (running, is_running) = sync_channel(1);
        std::thread::spawn(move || {
            let _ = running.send(());
            body()
        });
        self.running.push(is_running);
    }

    /// Tracks a thread that someone else starts: `start` gets the callback the thread must call
    /// once running.
    pub(super) fn track(&mut self, start: impl FnOnce(Box<dyn FnOnce() + Send>)) {
        let (running, is_running) = sync_channel(1);
        start(Box::new(move || {
            let _ = running.send(());
        }));
        self.running.push(is_running);
    }

    /// Returns once every spawned thread has reached its closure.
    pub(super) fn wait(self) {
        for is_running in self.running {
            // A thread that failed to start made `spawn` panic already; a closed channel here
            // means it ran and finished, which is running enough.
            let _ = is_running.recv();
        }
    }
}

/// Set once the module is compiled or loaded: the compile deadline no longer applies.
static COMPILED: AtomicBool = AtomicBool::new(false);

/// Tells the watchman that compilation is over.
pub(super) fn compiled() {
    COMPILED.store(true, Ordering::Release);
}

/// Set when the runner compiles the module (rather than loading an artifact): only then does
/// the compile deadline apply.
static COMPILING: AtomicBool = AtomicBool::new(false);

/// Tells the watchman that the module is being compiled.
pub(super) fn compiling() {
    COMPILING.store(true, Ordering::Release);
}

/// Starts the watchman: parent-death detection, the timeout (`deadline`, `limit`) if any, and
/// the compile deadline while the module is still compiling.
///
/// It watches the control socket only once `armed` fires (or is dropped): until then the
/// parent is still sending the module on it, and the main thread's reads see the parent die.
pub(super) fn start_watchman(
    starting: &mut Starting,
    engine: wasmtime::Engine,
    timeout: Option<(Instant, Duration)>,
    compile: Option<(Instant, Duration)>,
    armed: Receiver<()>,
) {
    starting.spawn(move || {
        if armed.recv().is_err() {
            // The main thread gave up before the module arrived; it reports why.
            return;
        }
        let mut deadline = timeout.map(|(at, _)| at);
        let mut interrupted = false;
        loop {
            // Whether this runner compiles may be learnt after the wake-up time is chosen, so
            // the compile deadline is always a wake-up until the module is loaded.
            let compile_pending = compile.filter(|_| !COMPILED.load(Ordering::Acquire));
            let wake = match (deadline, compile_pending) {
                (Some(at), Some((compile_at, _))) => Some(at.min(compile_at)),
                (at, compile_at) => at.or(compile_at.map(|(at, _)| at)),
            };
            if parent_gone_before(wake) {
                // SAFETY: _exit is async-signal-safe and skips destructors, which may hold locks.
                unsafe { libc::_exit(PARENT_GONE_STATUS) };
            }
            if let Some((compile_at, limit)) = compile_pending
                && Instant::now() >= compile_at
                && COMPILING.load(Ordering::Acquire)
                && !COMPILED.load(Ordering::Acquire)
            {
                report_and_exit(&Verdict::CompileTimeout { limit });
            }
            let Some((_, limit)) = timeout else { continue };
            if deadline.is_some_and(|at| Instant::now() < at) {
                continue;
            }
            if interrupted {
                report_and_exit(&Verdict::Timeout { limit });
            }
            engine.increment_epoch();
            interrupted = true;
            deadline = Some(Instant::now() + BLOCKED_GUEST_GRACE);
        }
    });
}

/// Waits on the control socket until `deadline` (forever if `None`); true if the parent is gone.
fn parent_gone_before(deadline: Option<Instant>) -> bool {
    // SAFETY: fd 3 is the control socket, open until the runner exits (`CONTROL` keeps it).
    let control = unsafe { BorrowedFd::borrow_raw(CONTROL_FD) };
    loop {
        let timeout = deadline.map(|at| {
            let left = at.saturating_duration_since(Instant::now());
            Timespec { tv_sec: left.as_secs() as _, tv_nsec: left.subsec_nanos() as _ }
        });
        let mut fds = [PollFd::new(&control, PollFlags::IN | PollFlags::RDHUP)];
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(0) if deadline.is_some_and(|at| Instant::now() >= at) => return false,
            Ok(0) | Err(rustix::io::Errno::INTR) => continue,
            // Readable, hung up, or broken: the parent is not there any more.
            Ok(_) | Err(_) => return true,
        }
    }
}

/// Starts the thread that drives `runtime` (its timers) for as long as the runner lives.
pub(super) fn start_timer_driver(starting: &mut Starting, runtime: tokio::runtime::Runtime) {
    starting.spawn(move || runtime.block_on(std::future::pending::<()>()));
}
