//! A pool of sandboxed workers for line-oriented request/response guests.
//!
//! [`Pool`] keeps N guests running, each in its own sandbox, and hands every request line to a
//! free one. Requests wait in a bounded queue (a tokio `mpsc` channel) that N worker tasks drain;
//! each worker owns one guest, sends it one line, reads one line back and answers the caller
//! through a `oneshot` channel. A worker whose guest dies replaces it with a fresh sandbox from
//! the factory.

use crate::child::SandboxChild;
use crate::error::{Error, Result};
use crate::pipe::{AsyncReader, AsyncWriter, DEFAULT_MAX_LINE_LENGTH};
use crate::sandbox::Sandbox;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;

/// Default capacity of the request queue of a [`PoolBuilder`].
const DEFAULT_QUEUE: usize = 64;

/// Default of [`PoolBuilder::max_restarts`].
const DEFAULT_MAX_RESTARTS: u32 = 3;

/// How long a guest gets to exit on its own (after stdin EOF) before it is killed: long enough
/// for a runner to report a trap, short enough that a guest ignoring EOF cannot stall the pool.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// Builds a sandbox for one worker; called again for every restart.
type Factory = Arc<dyn Fn() -> Sandbox + Send + Sync>;

/// One request waiting in the queue, with where its answer goes.
struct Job {
    request: Vec<u8>,
    reply: oneshot::Sender<Result<Vec<u8>>>,
}

/// N sandboxed workers behind one async handle, for guests that answer each request line with
/// exactly one reply line (like the `upper` and `echo` example guests).
///
/// [`call`](Self::call) takes `&self`, so one pool serves many tasks at once: share it with an
/// `Arc`. Each worker has at most one request in flight; callers beyond that wait in a bounded
/// queue. A guest that dies mid-request fails that request with the reason (the trap, the
/// timeout, ...) and is replaced by a fresh sandbox from the factory.
///
/// ```no_run
/// # async fn demo() -> Result<(), wasmpipe::Error> {
/// use wasmpipe::{Pool, Sandbox};
/// let pool = Pool::new(|| Sandbox::new("upper.wasm"), 4);
/// assert_eq!(pool.call(b"hello").await?, b"HELLO\n");
/// let replies = pool.map([b"a".to_vec(), b"b".to_vec()]).await;
/// assert_eq!(replies[1].as_deref().ok(), Some(&b"B\n"[..]));
/// pool.shutdown().await;
/// # Ok(()) }
/// ```
///
/// # Caveats
///
/// - One line per message: a request may not contain `\n` except at its end (one is appended if
///   missing), and the guest must write exactly one line per request line. A guest that answers
///   with more or fewer lines desynchronises its worker, and later callers get replies meant for
///   others: the pool cannot detect a guest that replies twice.
/// - Reply lines are bounded by [`PoolBuilder::max_line_length`] (default
///   [`DEFAULT_MAX_LINE_LENGTH`](crate::DEFAULT_MAX_LINE_LENGTH)); a longer reply fails the
///   request with [`Error::LineTooLong`], and the worker's guest is killed and restarted, since
///   its position in the stream is no longer known.
/// - A guest that never answers blocks its worker (and [`shutdown`](Self::shutdown)) until
///   [`PoolBuilder::request_timeout`] (none by default) fails the request with
///   [`Error::Timeout`] and replaces the guest, or its sandbox's wall-clock
///   [timeout](Sandbox::timeout) ends it (that one counts from the guest's start).
/// - A guest that ends while idle (for example at its timeout) is noticed by the next request
///   sent to it, which fails; the worker then restarts.
/// - A cancelled call (its future dropped) still runs once it is queued; only the reply is lost.
#[derive(Debug)]
pub struct Pool {
    queue: mpsc::Sender<Job>,
    workers: Vec<JoinHandle<()>>,
    pids: Pids,
}

/// Configures a [`Pool`]: how many workers, how long the queue, how many restarts.
///
/// ```no_run
/// # async fn demo() {
/// use wasmpipe::{Pool, Sandbox};
/// let pool = Pool::builder(|| Sandbox::new("upper.wasm").memory(64 << 20))
///     .workers(8)
///     .queue(256)
///     .max_restarts(5)
///     .build();
/// # }
/// ```
pub struct PoolBuilder {
    factory: Factory,
    workers: usize,
    queue: usize,
    max_restarts: u32,
    max_line_length: usize,
    request_timeout: Option<Duration>,
}

impl std::fmt::Debug for PoolBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("workers", &self.workers)
            .field("queue", &self.queue)
            .field("max_restarts", &self.max_restarts)
            .field("max_line_length", &self.max_line_length)
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// A pool of `workers` guests, each in a sandbox made by `sandbox_factory` (which is called
    /// again whenever a worker restarts), with the default queue and restart limit.
    ///
    /// Shorthand for `Pool::builder(sandbox_factory).workers(workers).build()`; see
    /// [`PoolBuilder::build`] for when it panics.
    ///
    /// ```no_run
    /// # async fn demo() {
    /// let pool = wasmpipe::Pool::new(|| wasmpipe::Sandbox::new("echo.wasm"), 2);
    /// # }
    /// ```
    pub fn new(sandbox_factory: impl Fn() -> Sandbox + Send + Sync + 'static, workers: usize) -> Pool {
        Pool::builder(sandbox_factory).workers(workers).build()
    }

    /// A [`PoolBuilder`] with one worker per available CPU, a queue of 64 requests and at most 3
    /// restarts in a row per worker.
    ///
    /// ```no_run
    /// # async fn demo() {
    /// let pool = wasmpipe::Pool::builder(|| wasmpipe::Sandbox::new("echo.wasm")).workers(2).build();
    /// # }
    /// ```
    pub fn builder(sandbox_factory: impl Fn() -> Sandbox + Send + Sync + 'static) -> PoolBuilder {
        PoolBuilder {
            factory: Arc::new(sandbox_factory),
            workers: std::thread::available_parallelism().map_or(1, usize::from),
            queue: DEFAULT_QUEUE,
            max_restarts: DEFAULT_MAX_RESTARTS,
            max_line_length: DEFAULT_MAX_LINE_LENGTH,
            request_timeout: None,
        }
    }

    /// Sends `request` as one line (a `\n` is appended if missing) to the next free worker and
    /// returns its reply line, `\n` included.
    ///
    /// # Errors
    ///
    /// The guest's fate if it died before replying ([`Error::Trap`], [`Error::Timeout`],
    /// [`Error::MemoryLimit`], [`Error::InvalidModule`], ..., [`Error::NoReply`] if it exited
    /// normally or closed its stdout), [`Error::LineTooLong`] for an overlong reply,
    /// [`Error::InvalidRequest`] if `request` holds a `\n` before its end, and
    /// [`Error::PoolExhausted`] once every worker has given up.
    ///
    /// ```no_run
    /// # async fn demo(pool: &wasmpipe::Pool) -> Result<(), wasmpipe::Error> {
    /// let reply = pool.call(b"hello").await?;
    /// assert_eq!(reply, b"HELLO\n");
    /// # Ok(()) }
    /// ```
    pub async fn call(&self, request: &[u8]) -> Result<Vec<u8>> {
        let answer = self.submit(one_line(request.to_vec())?).await?;
        receive(answer).await
    }

    /// Calls the pool once per input and returns the results in input order, with up to one
    /// request in flight per worker. Inputs are queued as fast as the queue accepts them, so a
    /// long input list does not starve the workers; other callers' requests interleave fairly.
    ///
    /// ```no_run
    /// # async fn demo(pool: &wasmpipe::Pool) {
    /// let lines = ["one", "two", "three"].map(|s| s.as_bytes().to_vec());
    /// for result in pool.map(lines).await {
    ///     println!("{:?}", result.map(|reply| String::from_utf8_lossy(&reply).into_owned()));
    /// }
    /// # }
    /// ```
    pub async fn map<I: IntoIterator<Item = Vec<u8>>>(&self, inputs: I) -> Vec<Result<Vec<u8>>> {
        // Queue everything first (the workers start at once), then collect answers in order.
        let mut answers = Vec::new();
        for input in inputs {
            let queued = match one_line(input) {
                Ok(line) => self.submit(line).await,
                Err(e) => Err(e),
            };
            answers.push(queued);
        }
        let mut results = Vec::with_capacity(answers.len());
        for answer in answers {
            results.push(match answer {
                Ok(answer) => receive(answer).await,
                Err(e) => Err(e),
            });
        }
        results
    }

    /// Closes the queue, lets the workers answer what is in flight and already queued, closes
    /// each guest's stdin (EOF) and waits for the guests to exit (killing any that take longer
    /// than two seconds). Dropping the pool instead does the same in the background; either way
    /// no guest process outlives the pool's tokio runtime.
    ///
    /// ```no_run
    /// # async fn demo(pool: wasmpipe::Pool) {
    /// pool.shutdown().await;
    /// # }
    /// ```
    pub async fn shutdown(self) {
        let Pool { queue, workers, .. } = self;
        // Workers see the end of the queue once it is drained and every sender is gone.
        drop(queue);
        for worker in workers {
            // A worker that panicked (a panicking factory) has nothing left to close.
            let _ = worker.await;
        }
    }

    /// Process ids of the live guests' runners (test hook; not a stable API).
    #[doc(hidden)]
    pub fn worker_pids(&self) -> Vec<u32> {
        self.pids.lock().expect("pid table lock").iter().flatten().copied().collect()
    }

    /// Queues one line; fails only when no worker is left to take it.
    async fn submit(&self, request: Vec<u8>) -> Result<oneshot::Receiver<Result<Vec<u8>>>> {
        let (reply, answer) = oneshot::channel();
        self.queue.send(Job { request, reply }).await.map_err(|_| no_workers())?;
        Ok(answer)
    }
}

impl PoolBuilder {
    /// How many guests run at once (at least 1).
    ///
    /// ```no_run
    /// # async fn demo() {
    /// use wasmpipe::{Pool, Sandbox};
    /// let pool = Pool::builder(|| Sandbox::new("echo.wasm")).workers(4).build();
    /// # }
    /// ```
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// How many requests may wait for a free worker before callers wait to queue (at least 1).
    ///
    /// ```no_run
    /// # async fn demo() {
    /// use wasmpipe::{Pool, Sandbox};
    /// let pool = Pool::builder(|| Sandbox::new("echo.wasm")).queue(16).build();
    /// # }
    /// ```
    pub fn queue(mut self, capacity: usize) -> Self {
        self.queue = capacity;
        self
    }

    /// How many times in a row a worker restarts its guest after a failed request (the guest
    /// died, would not start, or sent an overlong line) before the worker gives up. A success
    /// resets the count. Once every worker has given up, requests fail with [`Error::PoolExhausted`].
    ///
    /// ```no_run
    /// # async fn demo() {
    /// use wasmpipe::{Pool, Sandbox};
    /// let pool = Pool::builder(|| Sandbox::new("echo.wasm")).max_restarts(0).build();
    /// # }
    /// ```
    pub fn max_restarts(mut self, restarts: u32) -> Self {
        self.max_restarts = restarts;
        self
    }

    /// The longest reply line accepted, in bytes including the `\n` (see
    /// [`AsyncReader::set_max_line_length`](crate::AsyncReader::set_max_line_length)).
    ///
    /// ```no_run
    /// # async fn demo() {
    /// use wasmpipe::{Pool, Sandbox};
    /// let pool = Pool::builder(|| Sandbox::new("echo.wasm")).max_line_length(4096).build();
    /// # }
    /// ```
    pub fn max_line_length(mut self, bytes: usize) -> Self {
        self.max_line_length = bytes;
        self
    }

    /// How long one request may wait for its reply once a worker has it. A guest that takes
    /// longer fails the request with [`Error::Timeout`] and is killed and replaced.
    ///
    /// ```no_run
    /// # async fn demo() {
    /// use std::time::Duration;
    /// use wasmpipe::{Pool, Sandbox};
    /// let pool = Pool::builder(|| Sandbox::new("echo.wasm")).request_timeout(Duration::from_secs(5)).build();
    /// # }
    /// ```
    pub fn request_timeout(mut self, limit: Duration) -> Self {
        self.request_timeout = Some(limit);
        self
    }

    /// Starts the workers, each with its first guest already spawned, and returns the pool.
    ///
    /// # Panics
    ///
    /// If `workers` or `queue` is 0, or outside a tokio runtime.
    ///
    /// ```no_run
    /// # async fn demo() {
    /// use wasmpipe::{Pool, Sandbox};
    /// let pool = Pool::builder(|| Sandbox::new("echo.wasm")).build();
    /// # }
    /// ```
    pub fn build(self) -> Pool {
        assert!(self.workers > 0, "a pool needs at least one worker");
        assert!(self.queue > 0, "a pool's queue needs room for at least one request");
        let (queue, receiver) = mpsc::channel(self.queue);
        // Shared by the workers; it is dropped with the last of them, which fails every queued
        // and future request instead of leaving it waiting forever.
        let receiver = Arc::new(Mutex::new(receiver));
        let pids: Pids = Arc::new(StdMutex::new(vec![None; self.workers]));
        let workers = (0..self.workers)
            .map(|index| {
                let worker = Worker {
                    index,
                    factory: self.factory.clone(),
                    queue: receiver.clone(),
                    pids: pids.clone(),
                    max_restarts: self.max_restarts,
                    max_line_length: self.max_line_length,
                    request_timeout: self.request_timeout,
                };
                // Spawned here, synchronously, so the guests start while the caller gets ready.
                // A failure is not lost: the first request retries the start and reports it.
                let guest = worker.start().ok();
                tokio::spawn(worker.run(guest))
            })
            .collect();
        Pool { queue, workers, pids }
    }
}

/// The runner pid of each worker's current guest, by worker index.
type Pids = Arc<StdMutex<Vec<Option<u32>>>>;

/// One worker task: owns at most one guest at a time and serves queued requests with it.
struct Worker {
    index: usize,
    factory: Factory,
    queue: Arc<Mutex<mpsc::Receiver<Job>>>,
    pids: Pids,
    max_restarts: u32,
    max_line_length: usize,
    request_timeout: Option<Duration>,
}

/// A running guest and the parent's ends of its stdin and stdout.
struct Guest {
    child: SandboxChild,
    stdin: AsyncWriter,
    stdout: AsyncReader,
}

impl Worker {
    /// Serves requests until the queue closes or the guest has failed more than `max_restarts`
    /// times in a row, then closes its guest.
    async fn run(self, mut guest: Option<Guest>) {
        let mut failures = 0;
        while let Some(job) = self.next_job().await {
            let result = self.serve(&mut guest, &job.request).await;
            failures = if result.is_ok() { 0 } else { failures + 1 };
            // The caller may have given up waiting; the answer is then simply dropped.
            let _ = job.reply.send(result);
            if failures > self.max_restarts {
                break;
            }
            if guest.is_none() {
                // Restart now rather than on the next request, so that request does not wait
                // for the start; a failure here is retried, and reported, by that request.
                guest = self.start().ok();
            }
        }
        if let Some(guest) = guest {
            guest.close().await;
        }
        self.set_pid(None);
    }

    /// The next request, or `None` once the pool is shut down (or dropped) and the queue drained.
    async fn next_job(&self) -> Option<Job> {
        // Idle workers wait in line for the receiver; each takes one request and lets go.
        self.queue.lock().await.recv().await
    }

    /// Answers one request with the current guest (starting one if there is none). On any failure
    /// the guest is ended and the slot left empty, so the worker restarts it.
    async fn serve(&self, slot: &mut Option<Guest>, request: &[u8]) -> Result<Vec<u8>> {
        let guest = match slot {
            Some(guest) => guest,
            None => slot.insert(self.start()?),
        };
        let exchanged = match self.request_timeout {
            Some(limit) => {
                tokio::time::timeout(limit, guest.exchange(request)).await.unwrap_or(Err(Error::Timeout(limit)))
            }
            None => guest.exchange(request).await,
        };
        match exchanged {
            Ok(reply) => Ok(reply),
            Err(cause) => {
                let guest = slot.take().expect("the slot was filled above");
                let error = guest.fail(cause).await;
                self.set_pid(None);
                Err(error)
            }
        }
    }

    /// Spawns a fresh guest from the factory.
    fn start(&self) -> Result<Guest> {
        let (child, stdin, mut stdout) = (self.factory)().spawn_piped()?;
        stdout.set_max_line_length(self.max_line_length);
        self.set_pid(child.id());
        Ok(Guest { child, stdin, stdout })
    }

    fn set_pid(&self, pid: Option<u32>) {
        self.pids.lock().expect("pid table lock")[self.index] = pid;
    }
}

impl Guest {
    /// Sends one request line and reads one reply line.
    async fn exchange(&mut self, request: &[u8]) -> Result<Vec<u8>> {
        // Write and read at the same time: a guest that starts replying before it has read the
        // whole request (a streaming echo) would otherwise deadlock with us once both pipe
        // buffers are full. A read error ends both at once; a write error (the guest is gone)
        // waits for the read, which then finds either a line the guest wrote before going or EOF.
        let stdin = &mut self.stdin;
        let write = async move { Ok(stdin.write_all(request).await) };
        let (written, reply) = tokio::try_join!(write, self.stdout.read_line())?;
        match reply {
            // A line without `\n` is what was left at EOF: the guest closed its stdout mid-reply.
            Some(line) if line.ends_with(b"\n") => Ok(line),
            _ => Err(written.err().map_or_else(|| Error::NoReply(None), Error::from)),
        }
    }

    /// Ends a guest whose request failed with `cause`, and returns the error for the caller: the
    /// guest's own fate (its trap, timeout, ...) when it died, otherwise `cause`.
    async fn fail(self, cause: Error) -> Error {
        let Guest { mut child, stdin, stdout } = self;
        if let Error::LineTooLong { .. } | Error::Timeout(_) = cause {
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

/// Checks that `request` is a single line and terminates it with `\n`.
fn one_line(mut request: Vec<u8>) -> Result<Vec<u8>> {
    let body = request.strip_suffix(b"\n").unwrap_or(&request);
    if body.contains(&b'\n') {
        let message = "a pool request must be a single line (a newline only at its end)";
        return Err(Error::InvalidRequest(message.into()));
    }
    if !request.ends_with(b"\n") {
        request.push(b'\n');
    }
    Ok(request)
}

/// Waits for a queued request's answer. A request dropped unanswered means its worker gave up
/// (the last one to go drops the queue with everything still in it).
async fn receive(answer: oneshot::Receiver<Result<Vec<u8>>>) -> Result<Vec<u8>> {
    answer.await.unwrap_or_else(|_| Err(no_workers()))
}

fn no_workers() -> Error {
    Error::PoolExhausted
}
