//! The sandbox runner: what runs inside the child process.
//!
//! The parent starts the runner by re-executing its own binary (`/proc/self/exe`) with
//! [`RUNNER_MARKER`] in an otherwise empty environment. A load-time constructor ([`hook`]) sees
//! the marker before `main` (or the test harness) gets a chance to run, turns the process into a
//! runner, and never returns. That is why library users, examples and `cargo test` binaries need
//! no separate runner executable.
//!
//! Inside, in order: close every fd but 0–3; read the config from the control socket (fd 3);
//! start the watchdog (timeout) and the lifeline (parent death); compile or load the module
//! through the cache; build the WASI context; harden the process (rlimits, no_new_privs,
//! seccomp); run `_start`; send the verdict on fd 3; `_exit`.

mod guest;
mod harden;
mod stdio;

use crate::protocol::{self, CONTROL_FD, ModuleSource, RUNNER_MARKER, Verdict};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a guest that is blocked in a host call (typically a read of stdin) may outlive its
/// timeout before the watchdog ends the runner without waiting for the guest to return.
const BLOCKED_GUEST_GRACE: Duration = Duration::from_millis(200);

/// The control socket, shared by whoever reports the verdict first (main thread or watchdog).
/// `None` once the verdict has been sent: there is exactly one verdict per run.
static CONTROL: Mutex<Option<File>> = Mutex::new(None);

/// Runs before `main` in every process that links wasmpipe; does nothing unless the process was
/// started as a sandbox runner.
#[ctor::ctor(unsafe)]
fn hook() {
    if std::env::var_os(RUNNER_MARKER).is_some() {
        run_and_exit();
    }
}

/// Makes sure the linker keeps [`hook`]: a constructor in an rlib's object file is only linked if
/// something references that object file, and the spawning code does, through this.
pub(crate) fn ensure_hook_linked() {
    std::hint::black_box(hook as fn());
}

fn run_and_exit() -> ! {
    // SAFETY: called first thing in a single-threaded process; ignoring SIGPIPE makes a write to
    // a vanished reader an EPIPE error for the guest rather than a silent death of the runner.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    harden::close_inherited_fds();
    // SAFETY: the parent placed the control socket at this fd number, and nothing else owns it.
    let control = unsafe { File::from_raw_fd(CONTROL_FD) };
    let verdict = match run(control) {
        Ok(verdict) => verdict,
        Err(message) => Verdict::Failed { message },
    };
    report_and_exit(&verdict)
}

fn run(mut control: File) -> Result<Verdict, String> {
    let started = Instant::now();
    let config = protocol::read_config(&mut control).map_err(|e| format!("cannot read the runner config: {e}"))?;
    let inline_module = match config.module {
        ModuleSource::Inline(len) => {
            // Sized up front: growing from empty costs a dozen small reads for a typical module.
            let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0).min(1 << 30));
            (&mut control).take(len).read_to_end(&mut bytes).map_err(|e| format!("cannot receive the module: {e}"))?;
            Some(bytes)
        }
        ModuleSource::Path(_) => None,
    };
    *CONTROL.lock().unwrap() = Some(control);
    watch_lifeline();

    let engine = guest::engine_for(config.limits.fuel_limit().is_some())?;
    // Compilation counts against the timeout: an untrusted module may be built to compile slowly.
    if let Some(limit) = config.limits.timeout_limit() {
        start_watchdog(engine.clone(), started + limit, limit);
    }
    let module = match guest::compile(&engine, &config, inline_module) {
        Ok(module) => module,
        Err(verdict) => return Ok(verdict),
    };
    if config.compile_only {
        return Ok(Verdict::Exited { code: 0 });
    }
    let prepared = match guest::prepare(engine, module, &config) {
        Ok(prepared) => prepared,
        Err(verdict) => return Ok(verdict),
    };
    let _runtime = enter_wasi_runtime()?;
    let prepared = match prepared.instantiate() {
        Ok(ready) => ready,
        Err(verdict) => return Ok(verdict),
    };
    harden::apply(&config).map_err(|e| format!("cannot harden the runner: {e}"))?;
    if config.forbidden_syscall_after_hardening {
        harden::make_forbidden_syscall();
    }
    Ok(prepared.run())
}

/// Gives wasmtime-wasi the tokio runtime it runs its (synchronous, for us) calls on.
///
/// Left to itself, wasmtime-wasi would lazily start a multi-threaded runtime with an epoll fd, an
/// eventfd and worker threads, on the guest's first WASI call: after hardening, where neither
/// threads nor new fds are allowed. Instead: a current-thread runtime with only the time driver
/// (no fds at all), driven by one thread of ours so that timers (`poll_oneoff`, sleeps) fire, and
/// entered on this thread so wasmtime-wasi's `in_tokio` finds it. The driver thread is running
/// before this returns, so no thread is still starting up when the seccomp filter lands.
fn enter_wasi_runtime() -> Result<tokio::runtime::EnterGuard<'static>, String> {
    static HANDLE: std::sync::OnceLock<tokio::runtime::Handle> = std::sync::OnceLock::new();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| format!("cannot start the wasi runtime: {e}"))?;
    let handle = HANDLE.get_or_init(|| runtime.handle().clone());
    spawn_running(move || runtime.block_on(std::future::pending::<()>()));
    Ok(handle.enter())
}

/// Parent death detection that cannot race: the parent never writes after the config, so a read
/// returning (EOF, or anything at all) means the parent is gone or wants us gone.
///
/// It reads fd 3 in place rather than through a duplicate, which would be one more fd in the
/// runner; the `File` in [`CONTROL`] keeps it open until exit.
fn watch_lifeline() {
    spawn_running(move || {
        // SAFETY: fd 3 stays open until the process exits; ManuallyDrop never closes it here.
        let lifeline = std::mem::ManuallyDrop::new(unsafe { File::from_raw_fd(CONTROL_FD) });
        let mut byte = [0u8; 1];
        let _ = (&*lifeline).read(&mut byte);
        // SAFETY: _exit is async-signal-safe and skips destructors, which may hold locks.
        unsafe { libc::_exit(137) };
    });
}

/// Interrupts a computing guest at the deadline (epoch interruption makes it trap), and ends the
/// runner shortly after if the guest is stuck in a host call and never comes back to wasm.
fn start_watchdog(engine: wasmtime::Engine, deadline: Instant, limit: Duration) {
    spawn_running(move || {
        std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
        engine.increment_epoch();
        std::thread::sleep(BLOCKED_GUEST_GRACE);
        report_and_exit(&Verdict::Timeout { limit });
    });
}

/// Spawns a thread and returns once it runs `body`.
///
/// A new thread makes a few syscalls of its own before it gets to its closure (glibc registers
/// `rseq` and the robust futex list, Rust sets up its stack guard); on a loaded machine that can
/// happen arbitrarily late, and after hardening those syscalls are fatal. So every runner thread
/// is known to be running before the seccomp filter is applied.
fn spawn_running(body: impl FnOnce() + Send + 'static) {
    let (running, is_running) = std::sync::mpsc::sync_channel(0);
    std::thread::spawn(move || {
        let _ = running.send(());
        body()
    });
    // If the thread could not start, spawn has already panicked; a closed channel cannot happen.
    let _ = is_running.recv();
}

/// Sends the verdict (first caller wins) and exits with its status.
pub(crate) fn report_and_exit(verdict: &Verdict) -> ! {
    let mut control = CONTROL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(mut socket) = control.take() {
        let _ = socket.write_all(&protocol::encode_verdict(verdict));
    } else if let Verdict::Failed { message } = verdict {
        // No control socket yet: stderr is the only way left to say why.
        let _ = writeln!(std::io::stderr(), "wasmpipe runner: {message}");
    }
    // SAFETY: _exit skips atexit handlers and destructors, which other threads (the guest, the
    // wasi runtime) may be racing with; everything the guest wrote went straight to its fds.
    unsafe { libc::_exit(verdict.exit_status()) }
}

#[cfg(test)]
pub(crate) use guest::engine_for;
