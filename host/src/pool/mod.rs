//! A pool of sandboxed workers for request/response guests.
//!
//! [`Pool`] keeps N guests running, each in its own sandbox, and hands every request to one of
//! them. Requests wait in a bounded queue (a tokio `mpsc` channel) that N worker tasks drain
//! (`worker.rs`); each worker keeps up to a few requests in flight with its guest, written in
//! batches, and matches the replies in order (`wire.rs` says how a message travels). A worker
//! whose guest dies replaces it with a fresh sandbox from the factory, forked from the pool's
//! zygote.

mod wire;
mod worker;

pub use wire::Framing;

use crate::error::{Error, Result};
use crate::pipe::DEFAULT_MAX_LINE_LENGTH;
use crate::sandbox::Sandbox;
use crate::zygote::Zygote;
use futures_util::stream::{Stream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use worker::{Job, Settings, Worker};

/// Default capacity of the request queue of a [`PoolBuilder`].
const DEFAULT_QUEUE: usize = 64;

/// Default of [`PoolBuilder::max_restarts`].
const DEFAULT_MAX_RESTARTS: u32 = 3;

/// Default of [`PoolBuilder::pipeline_depth`]: enough to amortise a write and a wake-up over
/// many small requests (on a 2-core VM, 1 KiB echo requests went from 400–470 MB/s at depth 16
/// to 550–650 at 64); a busy worker takes more than one only while no worker is idle, so a slow
/// request holds up others only when every worker is busy anyway.
pub const DEFAULT_PIPELINE_DEPTH: usize = 64;

/// Makes one worker's guest; called again for every restart.
#[derive(Clone)]
enum Factory {
    Sandbox(Arc<dyn Fn() -> Sandbox + Send + Sync>),
    /// A native child speaking the same protocol: the bench's baseline.
    Native(Arc<dyn Fn() -> std::process::Command + Send + Sync>),
}

/// What the workers and the handle share: counters, runner pids, the abort signal.
#[derive(Debug)]
struct Shared {
    pids: StdMutex<Vec<Option<u32>>>,
    completed: AtomicU64,
    failed: AtomicU64,
    restarts: AtomicU64,
    in_flight: AtomicUsize,
    /// Workers with nothing in flight: while one exists, busy workers take no more requests.
    idle: AtomicUsize,
    abort: CancellationToken,
}

/// A snapshot of a [`Pool`]'s activity, from [`Pool::stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PoolStats {
    /// Requests answered with a reply.
    pub completed: u64,
    /// Requests that failed after reaching a worker (a guest's trap, timeout, exit, ...).
    pub failed: u64,
    /// Guests replaced after a failure.
    pub restarts: u64,
    /// Requests taken by a worker and not yet answered.
    pub in_flight: usize,
    /// Requests waiting in the queue for a worker.
    pub queued: usize,
}

/// N sandboxed workers behind one async handle, for guests that answer each request with
/// exactly one reply: a line per line by default (like the `upper` and `echo` example guests),
/// or a frame per frame (see [`PoolBuilder::framing`]).
///
/// Every method takes `&self`, so one pool serves many tasks at once: share it with an `Arc`.
/// Each worker keeps up to [`PoolBuilder::pipeline_depth`] requests in flight with its guest,
/// written in batches and answered in order; callers beyond that wait in a bounded queue. A
/// guest that dies mid-request fails that request with the reason (the trap, the timeout, ...)
/// and is replaced by a fresh sandbox from the factory.
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
/// Typed messages travel as JSON, one value per line (or per frame):
///
/// ```no_run
/// # async fn demo(pool: &wasmpipe::Pool) -> Result<(), wasmpipe::Error> {
/// #[derive(serde::Serialize)]
/// struct Request { n: u32 }
/// #[derive(serde::Deserialize)]
/// struct Reply { square: u64 }
/// let reply: Reply = pool.call_json(&Request { n: 12 }).await?;
/// assert_eq!(reply.square, 144);
/// # Ok(()) }
/// ```
///
/// # Caveats
///
/// - One message per reply: with [`Framing::Lines`], a request may not contain `\n` except at
///   its end (one is appended if missing), and the guest must write exactly one line per
///   request line. A guest that answers with more or fewer messages desynchronises its worker,
///   and later callers get replies meant for others: the pool cannot detect a guest that
///   replies twice.
/// - When a guest fails with one request in flight, that request fails with the guest's fate;
///   so does the oldest of several when the guest exited (or closed its stdout) instead of
///   answering. When it trapped or timed out with several in flight, which one it failed on
///   is not known (a guest that reads ahead loses the replies it had not flushed), so they are
///   all sent again to the replacement guest, one at a time, and each then meets its own
///   fate. Requests not blamed are sent again in both cases: a guest may see a request twice,
///   so requests should be safe to repeat.
/// - Replies are bounded by [`PoolBuilder::max_line_length`] (default
///   [`DEFAULT_MAX_LINE_LENGTH`](crate::DEFAULT_MAX_LINE_LENGTH)) or
///   [`PoolBuilder::max_frame_length`]; a longer reply fails the request with
///   [`Error::LineTooLong`] or [`Error::FrameTooLarge`], and the worker's guest is killed and
///   restarted, since it cannot be trusted to be in step any more.
/// - A guest that never answers blocks its worker (and [`shutdown`](Self::shutdown)) until
///   [`PoolBuilder::request_timeout`] (none by default) fails the request with
///   [`Error::Timeout`] and replaces the guest, or its sandbox's wall-clock
///   [timeout](Sandbox::timeout) ends it (that one counts from the guest's start).
/// - A guest that ends while idle (for example at its timeout) is noticed by the next request
///   sent to it; that request is then sent to its replacement.
/// - A cancelled call (its future dropped) still runs once it is queued; only the reply is lost.
#[derive(Debug)]
pub struct Pool {
    /// `None` once [`shutdown`](Self::shutdown) or [`abort`](Self::abort) began.
    queue: StdMutex<Option<mpsc::Sender<Job>>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    shared: Arc<Shared>,
    framing: Framing,
    max_frame_length: usize,
    /// How many requests the pool can work on at once (workers × depth): the window of `map`.
    capacity: usize,
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
    zygote: bool,
    settings: Settings,
}

impl std::fmt::Debug for PoolBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("workers", &self.workers)
            .field("queue", &self.queue)
            .field("zygote", &self.zygote)
            .field("settings", &self.settings)
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

    /// A [`PoolBuilder`] with one worker per available CPU, a queue of 64 requests, up to
    /// [`DEFAULT_PIPELINE_DEPTH`] requests in flight per worker, lines as messages, guests
    /// forked from a zygote, and at most 3 restarts in a row per worker.
    ///
    /// ```no_run
    /// # async fn demo() {
    /// let pool = wasmpipe::Pool::builder(|| wasmpipe::Sandbox::new("echo.wasm")).workers(2).build();
    /// # }
    /// ```
    pub fn builder(sandbox_factory: impl Fn() -> Sandbox + Send + Sync + 'static) -> PoolBuilder {
        PoolBuilder {
            factory: Factory::Sandbox(Arc::new(sandbox_factory)),
            workers: std::thread::available_parallelism().map_or(1, usize::from),
            queue: DEFAULT_QUEUE,
            zygote: true,
            settings: Settings {
                framing: Framing::Lines,
                depth: DEFAULT_PIPELINE_DEPTH,
                max_restarts: DEFAULT_MAX_RESTARTS,
                max_line_length: DEFAULT_MAX_LINE_LENGTH,
                max_frame_length: crate::codec::DEFAULT_MAX_FRAME_LENGTH,
                request_timeout: None,
            },
        }
    }

    /// Bench hook, not a stable API: the same pool, driving native child processes made by
    /// `command` (stdin and stdout are set by the pool) instead of sandboxes: the baseline
    /// `wasmpipe bench` measures the pool against.
    #[doc(hidden)]
    pub fn native_builder(command: impl Fn() -> std::process::Command + Send + Sync + 'static) -> PoolBuilder {
        let mut builder = Pool::builder(|| unreachable!("a native pool makes no sandboxes"));
        builder.factory = Factory::Native(Arc::new(command));
        builder.zygote = false;
        builder
    }

    /// Sends `request` to the next free worker and returns the guest's reply: with
    /// [`Framing::Lines`] `request` is one line (a `\n` is appended if missing) and the reply
    /// keeps its `\n`; with [`Framing::Frames`] both are a frame's payload.
    ///
    /// # Errors
    ///
    /// The guest's fate if it died before replying ([`Error::Trap`], [`Error::Timeout`],
    /// [`Error::MemoryLimit`], [`Error::InvalidModule`], ..., [`Error::NoReply`] if it exited
    /// normally or closed its stdout), [`Error::LineTooLong`] or [`Error::FrameTooLarge`] for
    /// an overlong reply, [`Error::InvalidRequest`] if a line request holds a `\n` before its
    /// end, [`Error::FrameTooLarge`] for a frame request over the maximum,
    /// [`Error::PoolClosed`] after [`shutdown`](Self::shutdown) or [`abort`](Self::abort), and
    /// [`Error::PoolExhausted`] once every worker has given up.
    ///
    /// ```no_run
    /// # async fn demo(pool: &wasmpipe::Pool) -> Result<(), wasmpipe::Error> {
    /// let reply = pool.call(b"hello").await?;
    /// assert_eq!(reply, b"HELLO\n");
    /// # Ok(()) }
    /// ```
    pub async fn call(&self, request: &[u8]) -> Result<Vec<u8>> {
        self.call_encoded(self.framing.encode(request, self.max_frame_length)).await
    }

    /// Sends `request` as JSON (one line, or one frame) and parses the reply as JSON.
    ///
    /// # Errors
    ///
    /// Those of [`call`](Self::call); [`Error::MalformedJson`] (its `line` is 1: the reply is
    /// one message) when the reply is not JSON of type `R`; [`Error::Io`] of kind
    /// `InvalidInput` when `request` cannot be serialized.
    ///
    /// ```no_run
    /// # async fn demo(pool: &wasmpipe::Pool) -> Result<(), wasmpipe::Error> {
    /// let total: u64 = pool.call_json(&[1, 2, 3]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn call_json<T: Serialize + ?Sized, R: DeserializeOwned>(&self, request: &T) -> Result<R> {
        let mut message = crate::codec::encode_json_line(request)?;
        if self.framing == Framing::Frames {
            message.pop();
        }
        let reply = self.call(&message).await?;
        crate::codec::parse_json_line(1, &reply)
    }

    /// Calls the pool once per input and returns the results in input order. Inputs are queued
    /// as the pool takes them, so all workers are kept busy; other callers' requests interleave
    /// fairly.
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
        self.map_stream(futures_util::stream::iter(inputs)).collect().await
    }

    /// Calls the pool once per item of `inputs` and yields the results in input order, as they
    /// are ready. At most as many requests as the pool can work on at once (workers × pipeline
    /// depth) are outstanding: a slow consumer stops the reading of `inputs`, so memory stays
    /// bounded however long the stream.
    ///
    /// ```no_run
    /// # async fn demo(pool: &wasmpipe::Pool) {
    /// use futures_util::StreamExt;
    /// let inputs = futures_util::stream::iter((0..1000).map(|i| format!("item {i}").into_bytes()));
    /// let mut replies = std::pin::pin!(pool.map_stream(inputs));
    /// while let Some(reply) = replies.next().await {
    ///     println!("{:?}", reply);
    /// }
    /// # }
    /// ```
    pub fn map_stream<'a, S>(&'a self, inputs: S) -> impl Stream<Item = Result<Vec<u8>>> + 'a
    where
        S: Stream<Item = Vec<u8>> + 'a,
    {
        inputs.map(move |input| self.call_owned(input)).buffered(self.capacity)
    }

    /// Like [`map_stream`](Self::map_stream), but yields each result as soon as it is ready,
    /// with the index of its input: a slow request holds up no other.
    ///
    /// ```no_run
    /// # async fn demo(pool: &wasmpipe::Pool) {
    /// use futures_util::StreamExt;
    /// let inputs = futures_util::stream::iter([b"a".to_vec(), b"b".to_vec()]);
    /// let mut replies = std::pin::pin!(pool.map_stream_unordered(inputs));
    /// while let Some((index, reply)) = replies.next().await {
    ///     println!("{index}: {:?}", reply);
    /// }
    /// # }
    /// ```
    pub fn map_stream_unordered<'a, S>(&'a self, inputs: S) -> impl Stream<Item = (usize, Result<Vec<u8>>)> + 'a
    where
        S: Stream<Item = Vec<u8>> + 'a,
    {
        inputs
            .enumerate()
            .map(move |(index, input)| async move { (index, self.call_owned(input).await) })
            .buffer_unordered(self.capacity)
    }

    /// Stops taking requests, lets the workers answer what is in flight and already queued,
    /// closes each guest's stdin (EOF) and waits for the guests to exit (killing any that take
    /// longer than two seconds). Later calls fail with [`Error::PoolClosed`]. Calling it again,
    /// or concurrently, waits for the same end. Dropping the pool instead does the same in the
    /// background; either way no guest process outlives the pool's tokio runtime.
    ///
    /// ```no_run
    /// # async fn demo(pool: wasmpipe::Pool) {
    /// pool.shutdown().await;
    /// # }
    /// ```
    pub async fn shutdown(&self) {
        // Workers see the end of the queue once it is drained and every sender is gone.
        drop(self.queue.lock().unwrap_or_else(|e| e.into_inner()).take());
        let mut workers = self.workers.lock().await;
        for worker in workers.drain(..) {
            // A worker that panicked (a panicking factory) has nothing left to close.
            let _ = worker.await;
        }
    }

    /// Ends the pool now: every queued and in-flight request fails with [`Error::PoolClosed`],
    /// every guest is killed (and reaped), and later calls fail with [`Error::PoolClosed`].
    /// Returns once the workers are gone.
    ///
    /// ```no_run
    /// # async fn demo(pool: std::sync::Arc<wasmpipe::Pool>) {
    /// let stopper = pool.clone();
    /// tokio::spawn(async move { stopper.abort().await });
    /// # }
    /// ```
    pub async fn abort(&self) {
        self.shared.abort.cancel();
        self.shutdown().await;
    }

    /// What the pool has done so far, and what it is doing now.
    ///
    /// ```no_run
    /// # fn demo(pool: &wasmpipe::Pool) {
    /// let stats = pool.stats();
    /// println!("{} done, {} failed, {} in flight", stats.completed, stats.failed, stats.in_flight);
    /// # }
    /// ```
    pub fn stats(&self) -> PoolStats {
        let queued = self
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map_or(0, |queue| queue.max_capacity() - queue.capacity());
        PoolStats {
            completed: self.shared.completed.load(Ordering::Relaxed),
            failed: self.shared.failed.load(Ordering::Relaxed),
            restarts: self.shared.restarts.load(Ordering::Relaxed),
            in_flight: self.shared.in_flight.load(Ordering::SeqCst),
            queued,
        }
    }

    /// Process ids of the live guests' runners (test hook; not a stable API).
    #[doc(hidden)]
    pub fn worker_pids(&self) -> Vec<u32> {
        self.shared.pids.lock().unwrap_or_else(|e| e.into_inner()).iter().flatten().copied().collect()
    }

    async fn call_owned(&self, request: Vec<u8>) -> Result<Vec<u8>> {
        self.call(&request).await
    }

    async fn call_encoded(&self, request: Result<Vec<u8>>) -> Result<Vec<u8>> {
        let request = request?;
        let (reply, answer) = oneshot::channel();
        let queue = self.queue.lock().unwrap_or_else(|e| e.into_inner()).clone().ok_or(Error::PoolClosed)?;
        queue.send(Job { request, reply }).await.map_err(|_| self.gone())?;
        drop(queue);
        // Dropped unanswered: the last worker to go dropped the queue with it still inside.
        answer.await.unwrap_or_else(|_| Err(self.gone()))
    }

    /// Why no worker will answer: the pool was aborted, or every worker gave up.
    fn gone(&self) -> Error {
        if self.shared.abort.is_cancelled() { Error::PoolClosed } else { Error::PoolExhausted }
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

    /// How many requests one worker may have in flight with its guest (at least 1; default
    /// [`DEFAULT_PIPELINE_DEPTH`]). More amortises writes and wake-ups over small requests;
    /// 1 sends each request only once the previous one is answered. A worker takes more than
    /// one only while no other worker is idle.
    ///
    /// ```no_run
    /// # async fn demo() {
    /// use wasmpipe::{Pool, Sandbox};
    /// let pool = Pool::builder(|| Sandbox::new("echo.wasm")).pipeline_depth(64).build();
    /// # }
    /// ```
    pub fn pipeline_depth(mut self, depth: usize) -> Self {
        self.settings.depth = depth;
        self
    }

    /// How messages travel: lines (the default) or length-prefixed frames.
    ///
    /// ```no_run
    /// # async fn demo() {
    /// use wasmpipe::{Framing, Pool, Sandbox};
    /// let pool = Pool::builder(|| Sandbox::new("frame_echo.wasm")).framing(Framing::Frames).build();
    /// # }
    /// ```
    pub fn framing(mut self, framing: Framing) -> Self {
        self.settings.framing = framing;
        self
    }

    /// How many times in a row a worker restarts its guest after a failed request (the guest
    /// died, would not start, or sent an overlong reply) before the worker gives up. A success
    /// resets the count. Once every worker has given up, requests fail with [`Error::PoolExhausted`].
    ///
    /// ```no_run
    /// # async fn demo() {
    /// use wasmpipe::{Pool, Sandbox};
    /// let pool = Pool::builder(|| Sandbox::new("echo.wasm")).max_restarts(0).build();
    /// # }
    /// ```
    pub fn max_restarts(mut self, restarts: u32) -> Self {
        self.settings.max_restarts = restarts;
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
        self.settings.max_line_length = bytes;
        self
    }

    /// The largest frame accepted, as a request or a reply, with [`Framing::Frames`] (default
    /// [`codec::DEFAULT_MAX_FRAME_LENGTH`](crate::codec::DEFAULT_MAX_FRAME_LENGTH)).
    ///
    /// ```no_run
    /// # async fn demo() {
    /// use wasmpipe::{Framing, Pool, Sandbox};
    /// let pool = Pool::builder(|| Sandbox::new("frame_echo.wasm"))
    ///     .framing(Framing::Frames)
    ///     .max_frame_length(64 << 10)
    ///     .build();
    /// # }
    /// ```
    pub fn max_frame_length(mut self, bytes: usize) -> Self {
        self.settings.max_frame_length = bytes;
        self
    }

    /// How long the guest may work on one request: the clock starts when the request is the
    /// oldest one in flight with its worker. A guest that takes longer fails the request with
    /// [`Error::Timeout`] and is killed and replaced.
    ///
    /// The first request to a fresh guest also waits for the guest to start, compilation
    /// included on a cache miss: [`Sandbox::compile`] the module before building the pool to
    /// keep that out of the clock.
    ///
    /// ```no_run
    /// # async fn demo() {
    /// use std::time::Duration;
    /// use wasmpipe::{Pool, Sandbox};
    /// let pool = Pool::builder(|| Sandbox::new("echo.wasm")).request_timeout(Duration::from_secs(5)).build();
    /// # }
    /// ```
    pub fn request_timeout(mut self, limit: Duration) -> Self {
        self.settings.request_timeout = Some(limit);
        self
    }

    /// Whether guests start by a fork of a [`Zygote`] the pool starts (the default, and faster
    /// than an exec) or by an exec of this binary each. A factory's sandbox that names a zygote
    /// of its own keeps it. Without a zygote (it could not start), the pool execs.
    ///
    /// ```no_run
    /// # async fn demo() {
    /// use wasmpipe::{Pool, Sandbox};
    /// let pool = Pool::builder(|| Sandbox::new("echo.wasm")).zygote(false).build();
    /// # }
    /// ```
    pub fn zygote(mut self, enabled: bool) -> Self {
        self.zygote = enabled;
        self
    }

    /// Starts the workers, each with its first guest already spawned, and returns the pool.
    ///
    /// # Panics
    ///
    /// If `workers`, `queue` or the pipeline depth is 0, or outside a tokio runtime.
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
        assert!(self.settings.depth > 0, "a pool's pipeline depth must be at least 1");
        let (queue, receiver) = mpsc::channel(self.queue);
        // Shared by the workers; it is dropped with the last of them, which fails every queued
        // and future request instead of leaving it waiting forever.
        let receiver = Arc::new(Mutex::new(receiver));
        let shared = Arc::new(Shared {
            pids: StdMutex::new(vec![None; self.workers]),
            completed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            idle: AtomicUsize::new(0),
            abort: CancellationToken::new(),
        });
        // One zygote for all workers and their restarts; if it cannot start, guests are exec'd.
        let zygote = self.zygote.then(Zygote::start).and_then(Result::ok);
        let workers = (0..self.workers)
            .map(|index| {
                let worker = Worker {
                    index,
                    factory: self.factory.clone(),
                    zygote: zygote.clone(),
                    queue: receiver.clone(),
                    shared: shared.clone(),
                    settings: self.settings,
                };
                // Spawned here, synchronously, so the guests start while the caller gets ready.
                // A failure is not lost: the first request retries the start and reports it.
                let guest = worker.start().ok();
                tokio::spawn(worker.run(guest))
            })
            .collect();
        Pool {
            queue: StdMutex::new(Some(queue)),
            workers: Mutex::new(workers),
            shared,
            framing: self.settings.framing,
            max_frame_length: self.settings.max_frame_length,
            capacity: self.workers.saturating_mul(self.settings.depth),
        }
    }
}
