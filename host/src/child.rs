//! A spawned guest: waiting for it, killing it, and how it ended.
//!
//! [`SandboxChild`] supervises one runner process: it reads the runner's reports from the
//! control socket (bounded, see `control`), learns the exit status through a pidfd, enforces the
//! timeout's last-resort backstop, and turns all of that into an `Ok(GuestExit)` or a typed
//! [`Error`], with the [`Usage`] of the run.

use crate::cache::CacheOutcome;
use crate::control::{self, ArtifactSink, Reports};
use crate::error::{Error, GuestExit, Result};
use crate::pipe::PipeReader;
use crate::process::ChildProcess;
use crate::protocol::Verdict;
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, unix::AsyncFd};
use tokio::task::JoinHandle;

/// How long after its limit the parent kills a runner whose own watchdog failed to end it.
const BACKSTOP_GRACE: Duration = Duration::from_secs(1);

/// Keeps the last `max` bytes of what arrives on `reader`.
fn spawn_stderr_capture(reader: PipeReader, max: usize) -> Result<JoinHandle<Vec<u8>>> {
    let mut reader = reader.open()?;
    Ok(tokio::spawn(async move {
        let mut tail = std::collections::VecDeque::with_capacity(max.min(64 * 1024));
        let mut chunk = vec![0u8; 16 * 1024];
        while let Ok(n @ 1..) = reader.read(&mut chunk).await {
            tail.extend(&chunk[..n]);
            let excess = tail.len().saturating_sub(max);
            tail.drain(..excess);
        }
        tail.into()
    }))
}

/// A running (or finished) sandboxed guest.
///
/// Dropping it kills and reaps the runner with `SIGKILL`, blocking briefly for the reap; see
/// [`Sandbox`](crate::Sandbox) for which fds the runner holds and how it dies with its parent.
#[derive(Debug)]
pub struct SandboxChild {
    process: Option<ChildProcess>,
    /// Readable when the process has exited (`None` on kernels without pidfds: then we poll).
    exit_signal: Option<AsyncFd<OwnedFd>>,
    /// The control socket, read by `wait` when no artifact is expected.
    control: Option<tokio::net::UnixStream>,
    /// Reads the runner's reports while it runs, when it compiles: its artifact must be stored
    /// as soon as it is sent (the guest starts only once it is), not when `wait` is called.
    reports: Option<JoinHandle<Reports>>,
    /// What the compiled-module cache did for this guest, once known.
    cache_outcome: Option<CacheOutcome>,
    /// The Landlock ABI the runner reported enforcing.
    landlock_abi: Option<u8>,
    stderr_capture: Option<JoinHandle<Vec<u8>>>,
    captured_stderr: Vec<u8>,
    /// When the runner started, and its wall-clock limit.
    deadline: Option<(Instant, Duration)>,
    /// An end seen by `try_wait` while the stderr capture was still draining.
    pending: Option<(Option<Verdict>, ExitStatus)>,
    /// When the runner was started, for the wall time in [`Usage`].
    started: Instant,
    /// What the runner reported it used.
    runner_usage: Option<crate::protocol::RunnerUsage>,
    ended: Option<Ending>,
}

/// What a guest used, known once it has ended ([`SandboxChild::usage`]), whichever way it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Usage {
    /// From spawn until the end was seen (compilation included).
    pub wall_time: Duration,
    /// CPU time the runner process spent in user mode (the guest, compilation, the runtime).
    pub cpu_user: Duration,
    /// CPU time the runner process spent in the kernel on its behalf.
    pub cpu_system: Duration,
    /// The most the guest's linear memories, tables and GC heap held at once, in bytes; `None`
    /// if the runner ended without saying (killed, or stopped by a signal).
    pub peak_memory: Option<u64>,
    /// Fuel the guest burned, when a budget was set ([`Limits::fuel`](crate::Limits::fuel)) and
    /// its run ended inside the runner (returned, exited, trapped or ran out).
    pub fuel_consumed: Option<u64>,
}

/// Kills a guest from anywhere: cloneable, and usable while another task awaits
/// [`SandboxChild::wait`] (which then reports [`Error::Killed`]`(9)`). Get one with
/// [`SandboxChild::kill_handle`].
///
/// ```no_run
/// # async fn demo(mut child: wasmpipe::SandboxChild) {
/// let killer = child.kill_handle();
/// tokio::spawn(async move {
///     tokio::time::sleep(std::time::Duration::from_secs(1)).await;
///     let _ = killer.kill();
/// });
/// let ended = child.wait().await; // Err(Killed(9)) if it was still running after a second
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct KillHandle {
    /// A pidfd of the runner: signals through it can never reach a reused pid.
    pidfd: Option<Arc<OwnedFd>>,
    pid: rustix::process::Pid,
    reaped: Arc<std::sync::atomic::AtomicBool>,
}

impl KillHandle {
    /// Sends `SIGKILL` to the runner, unless it has already ended.
    ///
    /// # Errors
    ///
    /// The underlying `pidfd_send_signal` or `kill` failed for another reason than the runner
    /// being gone.
    pub fn kill(&self) -> io::Result<()> {
        if self.reaped.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(());
        }
        send_kill(self.pidfd.as_deref().map(AsFd::as_fd), self.pid)
    }
}

/// `SIGKILL` to a runner not yet reaped: through its pidfd when there is one. Without pidfds
/// (old kernels) the pid is ours until reaped, which the caller checked it is not (a reap
/// racing that check is the one window left).
fn send_kill(pidfd: Option<BorrowedFd<'_>>, pid: rustix::process::Pid) -> io::Result<()> {
    use rustix::process::Signal;
    let sent = match pidfd {
        Some(pidfd) => rustix::process::pidfd_send_signal(pidfd, Signal::KILL),
        None => rustix::process::kill_process(pid, Signal::KILL),
    };
    match sent {
        Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// What `wait` learned, kept so it can be asked again.
#[derive(Debug, Clone)]
struct Ending {
    verdict: Option<Verdict>,
    status: ExitStatus,
    /// The parent killed the runner because its watchdog did not end it in time.
    backstop_timeout: Option<Duration>,
    usage: Usage,
}

/// The result of a task known to have finished.
fn poll_finished<T>(task: &mut JoinHandle<T>) -> std::result::Result<T, tokio::task::JoinError> {
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::Pin::new(task).poll(&mut context) {
        std::task::Poll::Ready(result) => result,
        std::task::Poll::Pending => unreachable!("the task has finished"),
    }
}

impl SandboxChild {
    /// Supervises `process`; if that cannot be set up, the runner is killed rather than leaked.
    pub(crate) fn new(
        process: ChildProcess,
        control: UnixStream,
        deadline: Option<(Instant, Duration)>,
        sink: Option<ArtifactSink>,
    ) -> Result<Self> {
        let watch = || -> io::Result<_> {
            let exit_signal = match rustix::process::pidfd_open(process.pid(), rustix::process::PidfdFlags::empty()) {
                // SAFETY: the AsyncFd owns the pidfd, so the fd stays open and unchanged while it
                // is registered.
                Ok(pidfd) => Some(
                    unsafe { AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE) }
                        .map_err(|e| io::Error::other(e.to_string()))?,
                ),
                Err(_) => None,
            };
            control.set_nonblocking(true)?;
            Ok((exit_signal, tokio::net::UnixStream::from_std(control)?))
        };
        let (exit_signal, control) = match watch() {
            Ok(watched) => watched,
            Err(error) => return Err(crate::sandbox::kill_and_fail(process, error.into())),
        };
        let (control, reports) = match sink {
            Some(sink) => (None, Some(tokio::spawn(control::read(control, Some(sink))))),
            None => (Some(control), None),
        };
        Ok(Self {
            process: Some(process),
            exit_signal,
            control,
            reports,
            cache_outcome: None,
            landlock_abi: None,
            stderr_capture: None,
            captured_stderr: Vec::new(),
            deadline,
            started: deadline.map_or_else(Instant::now, |(started, _)| started),
            runner_usage: None,
            pending: None,
            ended: None,
        })
    }

    /// A handle that kills this guest from another task or thread; see [`KillHandle`].
    pub fn kill_handle(&self) -> KillHandle {
        let process = self.process.as_ref().expect("process is present until drop");
        let pidfd = self.exit_signal.as_ref().and_then(|fd| rustix::io::dup(fd.get_ref()).ok()).map(Arc::new);
        KillHandle { pidfd, pid: process.pid(), reaped: process.reaped_flag() }
    }

    /// What the guest used: wall and CPU time, peak memory, fuel. Available once the guest has
    /// ended ([`wait`](Self::wait) or [`try_wait`](Self::try_wait) returned its end), whichever
    /// way it ended; `None` before.
    pub fn usage(&self) -> Option<Usage> {
        self.ended.as_ref().map(|ending| ending.usage)
    }

    /// Whether the guest has ended, without waiting: `Ok(None)` while it runs, then what
    /// [`wait`](Self::wait) would return. Reaps the runner once it has exited.
    ///
    /// # Errors
    ///
    /// As for [`wait`](Self::wait), once the guest has ended.
    pub fn try_wait(&mut self) -> Result<Option<GuestExit>> {
        if let Some(ending) = &self.ended {
            return ending.to_result().map(Some);
        }
        let process = self.process.as_mut().expect("process is present until drop");
        let Some(status) = process.try_wait()? else { return Ok(None) };
        // The runner has exited: everything it reported is in the socket, followed by EOF.
        let reports = match (self.control.take(), &mut self.reports) {
            (Some(control), _) => {
                let mut control = control.into_std()?;
                control.set_nonblocking(false)?;
                let mut bytes = Vec::new();
                let bound = u64::from(crate::protocol::MAX_VERDICT_LEN) + 4096;
                io::Read::read_to_end(&mut io::Read::take(&mut control, bound), &mut bytes)?;
                Some(control::parse(&bytes))
            }
            (None, Some(task)) if task.is_finished() => poll_finished(task).ok(),
            // Still storing the artifact it sent: not quite over.
            (None, Some(_)) => return Ok(None),
            (None, None) => None,
        };
        self.reports = None;
        let verdict = match reports {
            Some(reports) => self.absorb(reports)?,
            None => None,
        };
        if let Some(capture) = &mut self.stderr_capture {
            if !capture.is_finished() {
                // The pipe's last bytes are on their way: the next call completes.
                self.pending = Some((verdict, status));
                return Ok(None);
            }
            self.captured_stderr = poll_finished(capture).unwrap_or_default();
            self.stderr_capture = None;
        }
        self.end(Ending::new(verdict, status, None));
        self.ended.as_ref().expect("set above").to_result().map(Some)
    }

    /// Starts keeping the tail of the guest's stderr, read from `capture`'s pipe.
    pub(crate) fn capture_stderr(&mut self, capture: Option<(PipeReader, usize)>) -> Result<()> {
        self.stderr_capture = capture.map(|(reader, max)| spawn_stderr_capture(reader, max)).transpose()?;
        Ok(())
    }

    pub(crate) fn set_cache_outcome(&mut self, outcome: Option<CacheOutcome>) {
        self.cache_outcome = outcome;
    }

    /// What the compiled-module cache did for this guest: known from spawn when the cache held
    /// the module, after [`wait`](Self::wait) when the runner compiled it (`None` until then).
    pub fn cache_outcome(&self) -> Option<&CacheOutcome> {
        self.cache_outcome.as_ref()
    }

    /// The Landlock ABI version the runner enforced on itself, once [`wait`](Self::wait) has
    /// returned: `Some(0)` on a kernel without Landlock (the other walls then stand alone),
    /// `None` if the runner ended before hardening.
    pub fn landlock_abi(&self) -> Option<u8> {
        self.landlock_abi
    }

    /// The runner's process id, until the runner is reaped (by [`wait`](Self::wait) or
    /// [`try_wait`](Self::try_wait)); `None` after, when the kernel may give the pid to another
    /// process.
    pub fn id(&self) -> Option<u32> {
        self.process.as_ref().filter(|process| !process.is_reaped()).map(ChildProcess::id)
    }

    /// Kills the runner with `SIGKILL`; [`wait`](Self::wait) then reports
    /// [`Error::Killed`]`(9)`. Does nothing if the guest already ended. To kill from another task
    /// while one awaits `wait`, use a [`kill_handle`](Self::kill_handle).
    ///
    /// # Errors
    ///
    /// Sending the signal failed for another reason than the runner being gone.
    pub fn kill(&self) -> io::Result<()> {
        match &self.process {
            Some(process) if self.ended.is_none() && !process.is_reaped() => {
                send_kill(self.exit_signal.as_ref().map(|pidfd| pidfd.get_ref().as_fd()), process.pid())
            }
            _ => Ok(()),
        }
    }

    /// Waits for the guest to end and reports how: `Ok` with its exit code when it ran to
    /// completion, otherwise the typed failure ([`Error::Timeout`], [`Error::Trap`],
    /// [`Error::MemoryLimit`], [`Error::Killed`], …). Calling it again returns the same answer.
    ///
    /// With a timeout configured, this also enforces it as a last resort: a runner still alive one
    /// second after the limit is killed, and the result is [`Error::Timeout`].
    ///
    /// # Errors
    ///
    /// How the guest failed: [`Error::Timeout`], [`Error::CompileTimeout`], [`Error::Trap`],
    /// [`Error::MemoryLimit`], [`Error::OutOfMemory`], [`Error::FuelExhausted`],
    /// [`Error::InvalidModule`], [`Error::Killed`], [`Error::ForbiddenSyscall`]; or
    /// [`Error::Runner`] when the runner broke its protocol (it is killed), [`Error::Spawn`]
    /// when it could not set itself up, [`Error::Io`] when waiting for it failed.
    pub async fn wait(&mut self) -> Result<GuestExit> {
        if self.ended.is_none() {
            let ending = match self.pending.take() {
                Some((verdict, status)) => Ending::new(verdict, status, None),
                None => self.wait_for_ending().await?,
            };
            if let Some(capture) = self.stderr_capture.take() {
                self.captured_stderr = capture.await.unwrap_or_default();
            }
            self.end(ending);
        }
        self.ended.as_ref().expect("set above").to_result()
    }

    /// Records how the guest ended, with its usage.
    fn end(&mut self, mut ending: Ending) {
        let process = self.process.as_ref().expect("process is present until drop");
        let (cpu_user, cpu_system) = process.cpu_time().unwrap_or_default();
        ending.usage = Usage {
            wall_time: self.started.elapsed(),
            cpu_user,
            cpu_system,
            peak_memory: self.runner_usage.map(|usage| usage.peak_memory),
            fuel_consumed: self.runner_usage.and_then(|usage| usage.fuel_consumed),
        };
        self.ended = Some(ending);
    }

    /// Takes in what the runner reported; its verdict, or the protocol violation as an error
    /// (the runner is killed then).
    fn absorb(&mut self, reports: Reports) -> Result<Option<Verdict>> {
        if let Some(violation) = reports.violation {
            let process = self.process.as_mut().expect("process is present until drop");
            let _ = process.kill();
            let _ = process.wait();
            return Err(Error::Runner(violation));
        }
        if let Some(stored) = reports.stored {
            self.cache_outcome = Some(stored);
        }
        self.landlock_abi = reports.landlock_abi;
        self.runner_usage = reports.usage;
        Ok(reports.verdict)
    }

    /// The tail of the guest's stderr, when it was [captured](crate::Sandbox::capture_stderr); complete
    /// once [`wait`](Self::wait) has returned.
    pub fn captured_stderr(&self) -> &[u8] {
        &self.captured_stderr
    }

    async fn wait_for_ending(&mut self) -> Result<Ending> {
        let backstop = self.deadline.map(|(started, limit)| (started + limit + BACKSTOP_GRACE, limit));
        let outcome = match backstop {
            Some((deadline, _)) => tokio::time::timeout_at(deadline.into(), self.verdict_and_status()).await.ok(),
            None => Some(self.verdict_and_status().await),
        };
        match outcome {
            Some(result) => {
                let (verdict, status) = result?;
                Ok(Ending::new(verdict, status, None))
            }
            None => {
                let process = self.process.as_mut().expect("process is present until drop");
                let _ = process.kill();
                let status = process.wait()?;
                Ok(Ending::new(None, status, backstop.map(|(_, limit)| limit)))
            }
        }
    }

    async fn verdict_and_status(&mut self) -> Result<(Option<Verdict>, ExitStatus)> {
        let reports = match (self.control.take(), &mut self.reports) {
            (Some(control), _) => Some(control::read(control, None).await),
            (None, Some(task)) => Some(task.await.unwrap_or_default()),
            (None, None) => None,
        };
        self.reports = None;
        let verdict = match reports {
            Some(reports) => self.absorb(reports)?,
            None => None,
        };
        let status = self.exit_status().await?;
        Ok((verdict, status))
    }

    async fn exit_status(&mut self) -> Result<ExitStatus> {
        let process = self.process.as_mut().expect("process is present until drop");
        loop {
            if let Some(status) = process.try_wait()? {
                return Ok(status);
            }
            match &self.exit_signal {
                Some(pidfd) => pidfd.readable().await?.clear_ready(),
                None => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }
}

impl Ending {
    fn new(verdict: Option<Verdict>, status: ExitStatus, backstop_timeout: Option<Duration>) -> Self {
        let usage = Usage {
            wall_time: Duration::ZERO,
            cpu_user: Duration::ZERO,
            cpu_system: Duration::ZERO,
            peak_memory: None,
            fuel_consumed: None,
        };
        Self { verdict, status, backstop_timeout, usage }
    }

    fn to_result(&self) -> Result<GuestExit> {
        if let Some(limit) = self.backstop_timeout {
            return Err(Error::Timeout(limit));
        }
        if let Some(signal) = self.status.signal() {
            if signal == libc::SIGSYS && self.verdict.is_none() {
                return Err(Error::ForbiddenSyscall { number: None, name: None });
            }
            return Err(Error::Killed(signal));
        }
        match self.verdict.clone() {
            Some(Verdict::Exited { code }) => Ok(GuestExit::new(code)),
            Some(Verdict::Timeout { limit }) => Err(Error::Timeout(limit)),
            Some(Verdict::CompileTimeout { limit }) => Err(Error::CompileTimeout(limit)),
            Some(Verdict::OutOfMemory { limit }) => Err(Error::OutOfMemory(limit)),
            Some(Verdict::ForbiddenSyscall { nr }) => Err(Error::ForbiddenSyscall {
                number: Some(nr),
                name: syscalls::Sysno::new(nr as usize).map(|sysno| sysno.name().to_string()),
            }),
            Some(Verdict::Probed { results }) => Err(Error::Probed(results)),
            Some(Verdict::MemoryLimit { limit }) => Err(Error::MemoryLimit(limit)),
            Some(Verdict::FuelExhausted) => Err(Error::FuelExhausted),
            Some(Verdict::Trap { message, wasm_backtrace }) => Err(Error::Trap { message, wasm_backtrace }),
            Some(Verdict::InvalidModule { message }) => Err(Error::InvalidModule(message)),
            Some(Verdict::Failed { message }) => Err(Error::Spawn(message)),
            None => Err(Error::Runner(format!("the runner exited with {} without reporting a verdict", self.status))),
        }
    }
}

impl Drop for SandboxChild {
    fn drop(&mut self) {
        if let Some(reports) = self.reports.take() {
            reports.abort();
        }
        if let Some(mut process) = self.process.take() {
            if self.ended.is_none() {
                let _ = process.kill();
            }
            let _ = process.wait();
        }
    }
}
