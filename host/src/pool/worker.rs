//! One pool worker: a task that owns one guest at a time and keeps up to `depth` requests in
//! flight with it.
//!
//! Requests go out in batches (every request the queue holds, up to the depth, in one write)
//! and replies come back in order, so the worker matches each reply to the oldest request in
//! flight. Writing and reading happen in the same `select!`, never one after the other: a guest
//! that replies before it has read everything would otherwise deadlock with us once both pipes
//! are full.

use super::wire::Framing;
use super::{Factory, Shared};
use crate::child::SandboxChild;
use crate::error::{Error, Result};
use crate::pipe::{AsyncReader, AsyncWriter};
use crate::zygote::Zygote;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::time::Instant;

/// How long a guest gets to exit on its own (after stdin EOF) before it is killed: long enough
/// for a runner to report a trap, short enough that a guest ignoring EOF cannot stall the pool.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// A worker takes no more requests while this many bytes of earlier ones wait to be written:
/// large requests are then in flight one write at a time rather than `depth` at once.
const MAX_PENDING_WRITE: usize = 256 << 10;

/// One request, encoded for the wire, with where its answer goes.
pub(super) struct Job {
    pub(super) request: Vec<u8>,
    pub(super) reply: oneshot::Sender<Result<Vec<u8>>>,
}

/// What a worker needs to know, the same for every worker of a pool.
#[derive(Debug, Clone, Copy)]
pub(super) struct Settings {
    pub(super) framing: Framing,
    pub(super) depth: usize,
    pub(super) max_restarts: u32,
    pub(super) max_line_length: usize,
    pub(super) max_frame_length: usize,
    pub(super) request_timeout: Option<Duration>,
}

/// One worker task: owns at most one guest at a time and serves queued requests with it.
pub(super) struct Worker {
    pub(super) index: usize,
    pub(super) factory: Factory,
    pub(super) zygote: Option<Zygote>,
    pub(super) queue: Arc<Mutex<mpsc::Receiver<Job>>>,
    pub(super) shared: Arc<Shared>,
    pub(super) settings: Settings,
}

/// A running guest and the parent's ends of its stdin and stdout.
pub(super) struct Guest {
    child: Process,
    stdin: AsyncWriter,
    stdout: AsyncReader,
}

/// A guest's process: a sandbox, or a native child (the bench's baseline).
enum Process {
    Sandbox(Box<SandboxChild>),
    Native(tokio::process::Child),
}

impl Process {
    /// How the guest ended, as a sandbox would report it.
    async fn wait(&mut self) -> Result<crate::GuestExit> {
        match self {
            Process::Sandbox(child) => child.wait().await,
            Process::Native(child) => {
                let status = child.wait().await?;
                match (status.code(), std::os::unix::process::ExitStatusExt::signal(&status)) {
                    (Some(code), _) => Ok(crate::GuestExit::new(code)),
                    (None, signal) => Err(Error::Killed(signal.unwrap_or(0))),
                }
            }
        }
    }
}

/// What woke the worker up.
enum Event {
    Abort,
    Reply(Result<Option<Vec<u8>>>),
    Wrote(std::io::Result<usize>),
    TimedOut(Duration),
    Job(Option<Job>),
}

/// The worker's state between events.
struct Flight {
    /// Sent (or being sent) to the current guest, oldest first: replies arrive in this order.
    sent: VecDeque<Job>,
    /// Sent to a guest that failed with them in flight, to send again, one at a time: which of
    /// them the guest failed on is not known (it may have read ahead, and lost the replies it
    /// had not flushed), and alone, each one's fate is its own.
    resend: VecDeque<Job>,
    /// `sent` holds exactly one request from `resend`: nothing more goes out until its reply.
    isolating: bool,
    /// Bytes of `sent` not yet written, from `written` on.
    out: Vec<u8>,
    written: usize,
    /// The guest stopped reading its stdin: send nothing more, read what it still says.
    write_broken: bool,
    /// When the oldest request in flight became the one the guest works on.
    front_since: Instant,
    /// Whether the queue may still bring requests.
    accepting: bool,
    /// Failed requests in a row.
    failures: u32,
}

impl Worker {
    /// Serves requests until the queue closes (and everything taken is answered), the pool is
    /// aborted, or the guest has failed more than `max_restarts` times in a row.
    pub(super) async fn run(self, mut guest: Option<Guest>) {
        let mut flight = Flight {
            sent: VecDeque::new(),
            resend: VecDeque::new(),
            isolating: false,
            out: Vec::new(),
            written: 0,
            write_broken: false,
            front_since: Instant::now(),
            accepting: true,
            failures: 0,
        };
        self.shared.idle.fetch_add(1, Ordering::SeqCst);
        loop {
            if guest.is_none() {
                if flight.failures > self.settings.max_restarts {
                    break;
                }
                match self.restart(&mut flight).await {
                    Some(started) => guest = Some(started),
                    None if !flight.accepting => break,
                    None => continue,
                }
            }
            let Some(current) = guest.as_mut() else { continue };
            if flight.sent.is_empty()
                && !flight.write_broken
                && let Some(job) = flight.resend.pop_front()
            {
                self.send(&mut flight, job);
                flight.isolating = true;
            }
            if !flight.accepting && flight.sent.is_empty() && flight.resend.is_empty() {
                break;
            }
            match self.next_event(current, &flight).await {
                Event::Abort => {
                    self.abort(&mut flight, guest.take());
                    return;
                }
                Event::Reply(Ok(Some(reply))) => {
                    let job = self.take_oldest(&mut flight);
                    let _ = job.reply.send(Ok(reply));
                    self.shared.completed.fetch_add(1, Ordering::Relaxed);
                    flight.failures = 0;
                    flight.isolating = false;
                    flight.front_since = Instant::now();
                }
                Event::Reply(Ok(None)) => self.fail(&mut flight, &mut guest, Error::NoReply(None)).await,
                Event::Reply(Err(cause)) => self.fail(&mut flight, &mut guest, cause).await,
                Event::TimedOut(limit) => self.fail(&mut flight, &mut guest, Error::Timeout(limit)).await,
                Event::Wrote(Ok(n)) if n > 0 => {
                    flight.written += n;
                    if flight.written == flight.out.len() {
                        flight.out.clear();
                        flight.written = 0;
                    }
                }
                Event::Wrote(_) => {
                    // The guest closed its stdin or exited: what it still writes (replies to
                    // what it read, then EOF) tells the rest.
                    flight.write_broken = true;
                    flight.out.clear();
                    flight.written = 0;
                }
                Event::Job(None) => flight.accepting = false,
                Event::Job(Some(job)) => {
                    self.send(&mut flight, job);
                    // Batch: whatever else is queued goes out in the same write, as long as no
                    // other worker sits idle (it should have it instead).
                    while flight.sent.len() < self.settings.depth
                        && flight.out.len() - flight.written < MAX_PENDING_WRITE
                        && self.shared.idle.load(Ordering::SeqCst) == 0
                        && let Some(job) = self.try_next_job()
                    {
                        self.send(&mut flight, job);
                    }
                }
            }
        }
        if flight.sent.is_empty() {
            self.shared.idle.fetch_sub(1, Ordering::SeqCst);
        }
        // Left over only when the worker gives up: they fail with the pool.
        for job in flight.sent.drain(..).chain(flight.resend.drain(..)) {
            self.shared.in_flight.fetch_sub(1, Ordering::SeqCst);
            self.shared.failed.fetch_add(1, Ordering::Relaxed);
            let _ = job.reply.send(Err(Error::PoolExhausted));
        }
        if let Some(guest) = guest {
            guest.close().await;
        }
        self.set_pid(None);
    }

    /// Waits for whatever happens next: the pool aborted, a reply, a write done, the oldest
    /// request's time up, or a new request (when there is room for one).
    async fn next_event(&self, guest: &mut Guest, flight: &Flight) -> Event {
        let Guest { stdin, stdout, .. } = guest;
        let framing = self.settings.framing;
        let timeout = self.settings.request_timeout.filter(|_| !flight.sent.is_empty());
        let deadline = timeout.map(|limit| flight.front_since + limit);
        let idle_elsewhere = self.shared.idle.load(Ordering::SeqCst) > 0;
        // An idle worker takes any request; a busy one takes more only while none is idle.
        let may_take = flight.accepting
            && !flight.write_broken
            && !flight.isolating
            && flight.resend.is_empty()
            && flight.out.len() - flight.written < MAX_PENDING_WRITE
            && flight.sent.len() < self.settings.depth
            && (flight.sent.is_empty() || !idle_elsewhere);
        tokio::select! {
            biased;
            () = self.shared.abort.cancelled() => Event::Abort,
            reply = framing.read(stdout), if !flight.sent.is_empty() => Event::Reply(reply),
            wrote = stdin.write(&flight.out[flight.written..]), if flight.written < flight.out.len() => {
                Event::Wrote(wrote)
            }
            () = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                Event::TimedOut(timeout.unwrap_or_default())
            }
            job = self.next_job(), if may_take => Event::Job(job),
        }
    }

    /// Puts `job` in flight: its bytes join the pending write.
    fn send(&self, flight: &mut Flight, job: Job) {
        if flight.sent.is_empty() {
            flight.front_since = Instant::now();
            self.shared.idle.fetch_sub(1, Ordering::SeqCst);
        }
        flight.out.extend_from_slice(&job.request);
        flight.sent.push_back(job);
    }

    /// The oldest request in flight, answered now.
    fn take_oldest(&self, flight: &mut Flight) -> Job {
        let job = flight.sent.pop_front().expect("a reply is read only with a request in flight");
        self.shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        if flight.sent.is_empty() {
            self.shared.idle.fetch_add(1, Ordering::SeqCst);
        }
        job
    }

    /// The guest failed with `cause` while requests were in flight. With one in flight, or when
    /// the guest ended without a trap (it exited, or closed its stdout), the oldest fails with
    /// the guest's fate. Otherwise which one the guest failed on is not known: a guest that
    /// reads ahead and buffers its replies loses the replies it had not flushed, so the oldest
    /// unanswered request need not be the culprit. The unblamed ones go to the replacement
    /// guest again, one at a time, where each one's fate is its own. Then the guest is
    /// replaced, unless requests failed too often in a row.
    async fn fail(&self, flight: &mut Flight, slot: &mut Option<Guest>, cause: Error) {
        let guest = slot.take().expect("a guest fails only while it runs");
        self.set_pid(None);
        let fate = guest.fail(cause).await;
        flight.out.clear();
        flight.written = 0;
        flight.write_broken = false;
        let mut unanswered = std::mem::take(&mut flight.sent);
        // The oldest is to blame when it was alone, or when the guest simply ended (exited or
        // closed its stdout) instead of answering it.
        let blame_oldest = unanswered.len() == 1 || flight.isolating || matches!(fate, Error::NoReply(_));
        if blame_oldest && let Some(oldest) = unanswered.pop_front() {
            self.finish_failed(oldest, fate.duplicate());
            flight.failures += 1;
        }
        // Ahead of any still waiting to be resent: they were sent later.
        for job in unanswered.into_iter().rev() {
            flight.resend.push_front(job);
        }
        flight.isolating = false;
        self.shared.idle.fetch_add(1, Ordering::SeqCst);
        if flight.failures > self.settings.max_restarts {
            for job in std::mem::take(&mut flight.resend) {
                self.finish_failed(job, fate.duplicate());
            }
            return;
        }
        self.shared.restarts.fetch_add(1, Ordering::Relaxed);
        // Restart now rather than on the next request, so that request does not wait for the
        // start; a failure here is retried, and reported, by that request.
        *slot = self.start().ok();
    }

    /// Answers `job` with `error`.
    fn finish_failed(&self, job: Job, error: Error) {
        self.shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.shared.failed.fetch_add(1, Ordering::Relaxed);
        let _ = job.reply.send(Err(error));
    }

    /// Starts a guest for the next request (a resent one first), or fails that request with
    /// the reason it could not start. `None` when there is no guest, for that reason or because
    /// the queue is closed and drained.
    async fn restart(&self, flight: &mut Flight) -> Option<Guest> {
        let job = match flight.resend.pop_front() {
            Some(job) => job,
            None => {
                if !flight.accepting {
                    return None;
                }
                tokio::select! {
                    biased;
                    () = self.shared.abort.cancelled() => {
                        self.abort(flight, None);
                        flight.accepting = false;
                        return None;
                    }
                    job = self.next_job() => match job {
                        Some(job) => job,
                        None => {
                            flight.accepting = false;
                            return None;
                        }
                    },
                }
            }
        };
        match self.start() {
            Ok(guest) => {
                flight.resend.push_front(job);
                Some(guest)
            }
            Err(error) => {
                self.finish_failed(job, error);
                flight.failures += 1;
                None
            }
        }
    }

    /// The pool was aborted: everything this worker holds, and everything still queued, fails
    /// with [`Error::PoolClosed`]; the guest is killed.
    fn abort(&self, flight: &mut Flight, guest: Option<Guest>) {
        // Dropping the child kills and reaps it.
        drop(guest);
        self.set_pid(None);
        for job in flight.sent.drain(..).chain(flight.resend.drain(..)) {
            self.finish_failed(job, Error::PoolClosed);
        }
        while let Some(job) = self.try_next_job() {
            self.finish_failed(job, Error::PoolClosed);
        }
    }

    /// The next request, or `None` once the pool is shut down (or dropped) and the queue drained.
    async fn next_job(&self) -> Option<Job> {
        // Idle workers wait in line for the receiver; each takes one request and lets go.
        let job = self.queue.lock().await.recv().await;
        if job.is_some() {
            self.shared.in_flight.fetch_add(1, Ordering::SeqCst);
        }
        job
    }

    /// A request already queued, if any, without waiting.
    fn try_next_job(&self) -> Option<Job> {
        let job = self.queue.try_lock().ok()?.try_recv().ok();
        if job.is_some() {
            self.shared.in_flight.fetch_add(1, Ordering::SeqCst);
        }
        job
    }

    /// Spawns a fresh guest from the factory, through the pool's zygote when there is one.
    pub(super) fn start(&self) -> Result<Guest> {
        let (child, stdin, mut stdout) = match &self.factory {
            Factory::Sandbox(factory) => {
                let mut sandbox = factory();
                if let Some(zygote) = &self.zygote
                    && !sandbox.has_zygote()
                {
                    sandbox = sandbox.zygote(zygote);
                }
                let (child, stdin, stdout) = sandbox.spawn_piped()?;
                (Process::Sandbox(Box::new(child)), stdin, stdout)
            }
            Factory::Native(command) => {
                let (ours, theirs) = crate::pipe::duplex()?;
                let (their_stdin, their_stdout) = theirs.into_parts();
                let mut command = tokio::process::Command::from(command());
                command
                    .stdin(std::os::fd::OwnedFd::from(their_stdin))
                    .stdout(std::os::fd::OwnedFd::from(their_stdout))
                    .kill_on_drop(true);
                let child = command.spawn().map_err(|e| Error::SpawnIo { context: e.to_string(), source: e })?;
                // Our copies of the child's ends went with `command`.
                drop(command);
                let (stdout, stdin) = ours.open()?;
                (Process::Native(child), stdin, stdout)
            }
        };
        stdout.set_max_line_length(self.settings.max_line_length);
        stdout.set_max_frame_length(self.settings.max_frame_length);
        self.set_pid(match &child {
            Process::Sandbox(child) => child.id(),
            Process::Native(child) => child.id(),
        });
        Ok(Guest { child, stdin, stdout })
    }

    fn set_pid(&self, pid: Option<u32>) {
        self.shared.pids.lock().unwrap_or_else(|e| e.into_inner())[self.index] = pid;
    }
}

impl Guest {
    /// Ends a guest whose request failed with `cause`, and returns the error for the caller: the
    /// guest's own fate (its trap, timeout, ...) when it died, otherwise `cause`.
    async fn fail(self, cause: Error) -> Error {
        let Guest { mut child, stdin, stdout } = self;
        if let Error::LineTooLong { .. } | Error::FrameTooLarge { .. } | Error::Timeout(_) = cause {
            // The guest is alive but we lost our place in its output (or it is stuck): it cannot
            // serve again. Dropping the child kills and reaps it.
            return cause;
        }
        drop((stdin, stdout));
        match tokio::time::timeout(EXIT_GRACE, child.wait()).await {
            Ok(Err(fate)) => fate,
            Ok(Ok(exit)) => Error::NoReply(Some(exit.code())),
            // Still running, though it broke the exchange: `cause` is all we know. Drop kills it.
            Err(_) => cause,
        }
    }

    /// Closes the guest's stdin (EOF, its cue to exit) and waits for it, killing it if it lingers.
    async fn close(self) {
        let Guest { mut child, stdin, stdout } = self;
        drop((stdin, stdout));
        // Timed out or not, dropping the child afterwards kills and reaps whatever is left.
        let _ = tokio::time::timeout(EXIT_GRACE, child.wait()).await;
    }
}
