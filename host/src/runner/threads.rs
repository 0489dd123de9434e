//! The runner's helper threads, all started before hardening.
//!
//! One thread, whatever the guest does: the **timer driver** drives the tokio runtime
//! wasmtime-wasi uses for its timers, and runs the [`watchman`] (the timeout and the compile
//! deadline) as a task of that runtime. The parent's death needs no thread: once the module is
//! in, the control socket raises `SIGIO` when it turns readable ([`watch_parent`]).
//!
//! A new thread makes syscalls of its own before reaching its closure (glibc registers `rseq` and
//! the robust futex list, Rust sets up its stack guard); on a loaded machine that can happen
//! arbitrarily late, and after the seccomp filter lands those syscalls are fatal. So threads are
//! started through [`Starting`], and [`Starting::wait`] returns once all of them run: started
//! together, they come up in parallel with the module loading instead of one after another.

use super::{CONTROL_FD, report_and_exit};
use crate::protocol::Verdict;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::time::{Duration, Instant};

/// How long a guest that is blocked in a host call (typically a read of stdin) may outlive its
/// timeout before the watchman ends the runner without waiting for the guest to return.
const BLOCKED_GUEST_GRACE: Duration = Duration::from_millis(200);

/// How often the watchman looks again, once the compile deadline has passed before the runner
/// knew whether it compiles.
const COMPILE_RECHECK: Duration = Duration::from_millis(10);

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

/// The watchman: the timeout (`timeout`: deadline and limit) if any, and the compile deadline
/// (`compile`) while the module is still compiling. It runs on the timer driver's thread, as
/// the future that thread drives ([`start_timer_driver`]): one thread fewer to start.
///
/// At the deadline it bumps the engine's epoch, which makes a computing guest trap; if the guest
/// is stuck in a host call instead and has not ended after a short grace, it reports the timeout
/// itself and ends the runner. The parent's death is watched by [`watch_parent`]. Never
/// returns.
pub(super) async fn watchman(
    engine: wasmtime::Engine,
    timeout: Option<(Instant, Duration)>,
    mut compile: Option<(Instant, Duration)>,
) {
    let mut deadline = timeout.map(|(at, _)| at);
    let mut interrupted = false;
    loop {
        if COMPILED.load(Ordering::Acquire) {
            compile = None;
        }
        let wake = match (deadline, compile) {
            (Some(at), Some((compile_at, _))) => at.min(compile_at),
            (Some(at), None) | (None, Some((at, _))) => at,
            (None, None) => return std::future::pending().await,
        };
        tokio::time::sleep_until(wake.into()).await;
        if let Some((compile_at, limit)) = compile
            && Instant::now() >= compile_at
        {
            if COMPILING.load(Ordering::Acquire) && !COMPILED.load(Ordering::Acquire) {
                report_and_exit(&Verdict::CompileTimeout { limit });
            }
            // Past the deadline, and whether this runner compiles is not known yet (the module
            // has not arrived): look again shortly. Loading it ends this (`COMPILED`).
            compile = Some((Instant::now() + COMPILE_RECHECK, limit));
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
}

/// Arms the parent-death watch, once the module has arrived: the parent sends nothing more, so
/// from now on the control socket turning readable (end of file, hang-up) means it died, and
/// the runner exits at once. The kernel signals that with `SIGIO` (`O_ASYNC`), whatever the
/// runner's threads are doing; no thread has to sleep on the socket.
pub(super) fn watch_parent() -> Result<(), String> {
    // SAFETY: installs an async-signal-safe handler, then sets the owner and the async flag of
    // fd 3, which stays open until the runner exits.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigio as *const () as usize;
        action.sa_flags = libc::SA_RESTART;
        if libc::sigaction(libc::SIGIO, &action, std::ptr::null_mut()) != 0
            || libc::fcntl(CONTROL_FD, libc::F_SETOWN, libc::getpid()) != 0
        {
            return Err(format!("cannot watch the parent: {}", std::io::Error::last_os_error()));
        }
        let flags = libc::fcntl(CONTROL_FD, libc::F_GETFL);
        if flags < 0 || libc::fcntl(CONTROL_FD, libc::F_SETFL, flags | libc::O_ASYNC) != 0 {
            return Err(format!("cannot watch the parent: {}", std::io::Error::last_os_error()));
        }
    }
    // Gone before the watch was armed: no signal will come for that.
    if parent_gone() {
        // SAFETY: _exit skips destructors, which other threads may be racing with.
        unsafe { libc::_exit(PARENT_GONE_STATUS) };
    }
    Ok(())
}

/// `SIGIO` on the control socket: the parent died, unless the signal says only that there is
/// room to write again (after a large artifact frame filled the socket), which `poll` tells
/// apart. Async-signal-safe: `poll` and `_exit`.
extern "C" fn on_sigio(_signal: libc::c_int) {
    if parent_gone() {
        // SAFETY: as in `watch_parent`.
        unsafe { libc::_exit(PARENT_GONE_STATUS) };
    }
}

/// Whether the control socket is readable, hung up or broken right now: the parent is gone.
fn parent_gone() -> bool {
    let mut fds = [libc::pollfd { fd: CONTROL_FD, events: libc::POLLIN | libc::POLLRDHUP, revents: 0 }];
    // SAFETY: polls one fd without waiting; `fds` outlives the call.
    let ready = unsafe { libc::poll(fds.as_mut_ptr(), 1, 0) };
    ready > 0 && fds[0].revents != 0
}

/// Starts the thread that drives `runtime` (its timers) for as long as the runner lives, by
/// running the [`watchman`] on it.
pub(super) fn start_timer_driver(
    starting: &mut Starting,
    runtime: tokio::runtime::Runtime,
    watchman: impl std::future::Future<Output = ()> + Send + 'static,
) {
    starting.spawn(move || {
        runtime.block_on(watchman);
        // The watchman never returns; were it to, the guest's timers must still fire.
        runtime.block_on(std::future::pending::<()>())
    });
}
