//! The one error type of the library, and the report of a guest that ran to completion.

use std::io;
use std::time::Duration;

/// Everything that can go wrong when spawning, talking to or waiting for a sandboxed guest.
///
/// Guest misbehaviour (a trap, a timeout, a blown memory limit) is reported here, next to the
/// host-side failures, so one `match` covers every way a sandbox can end other than a normal exit.
///
/// ```no_run
/// # async fn demo(mut child: wasmpipe::SandboxChild) {
/// use wasmpipe::Error;
/// match child.wait().await {
///     Ok(exit) if exit.success() => println!("guest finished"),
///     Ok(exit) => println!("guest exited with {}", exit.code()),
///     Err(Error::Timeout(limit)) => println!("guest ran longer than {limit:?}"),
///     Err(Error::Trap { message, .. }) => println!("guest trapped: {message}"),
///     Err(other) => println!("sandbox failed: {other}"),
/// }
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The guest exceeded its wall-clock limit (time blocked in reads included) and was stopped.
    #[error("guest timed out after {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// The guest tried to grow its linear memory or tables beyond the limit (in bytes) and died
    /// of it.
    #[error("guest exceeded the memory limit of {}", crate::limits::format_size(*.0))]
    MemoryLimit(u64),
    /// Compiling the module took longer than its limit
    /// ([`Limits::compile_timeout`](crate::Limits::compile_timeout)); nothing ran.
    #[error("module compilation timed out after {}", humantime::format_duration(*.0))]
    CompileTimeout(Duration),
    /// The runner process ran out of memory under its process-wide backstop (`RLIMIT_DATA`,
    /// in bytes): typically a module whose compilation needs more memory than the limits allow.
    #[error("sandbox runner ran out of memory (process limit {})", crate::limits::format_size(*.0))]
    OutOfMemory(u64),
    /// The runner made a system call its seccomp filter forbids, and was stopped. A guest cannot
    /// do this through WASI; it means native code in the runner went astray (or the allowlist
    /// misses a call that a legitimate WASI operation needs: please report it).
    #[error("sandbox runner made a forbidden system call: {}", describe_syscall(*number, name.as_deref()))]
    ForbiddenSyscall {
        /// The syscall number (x86_64), unless the runner died before it could say (the call
        /// was made with signals blocked, as when creating a thread).
        number: Option<i64>,
        /// Its name, when known.
        name: Option<String>,
    },
    /// A directory grant was refused: the path does not exist or is not a directory, or it is
    /// dangerous (`/`, or it contains or lies within `/proc`, `/sys`, `/dev`, the
    /// compiled-module cache or its key) and the sandbox was not told
    /// [`unsafe_allow_dangerous_dirs`](crate::Sandbox::unsafe_allow_dangerous_dirs).
    #[error("cannot grant directory {}: {reason}", path.display())]
    DirGrant {
        /// The directory as given.
        path: std::path::PathBuf,
        /// Why it was refused.
        reason: String,
    },
    #[doc(hidden)]
    /// Test hook: what each [`Probe`](crate::probe::Probe) returned.
    #[error("probes returned {0:?}")]
    Probed(Vec<i64>),
    /// The guest used up its instruction budget (see [`Limits::fuel`](crate::Limits::fuel)).
    #[error("guest ran out of fuel")]
    FuelExhausted,
    /// The guest trapped: a Rust panic, `unreachable`, an out-of-bounds access, a stack overflow…
    #[error("guest trapped: {message}")]
    Trap {
        /// What the trap was, e.g. ``wasm trap: wasm `unreachable` instruction executed``.
        message: String,
        /// The guest's wasm call stack at the trap, one frame per line, when available.
        wasm_backtrace: Option<String>,
    },
    /// The sandbox runner process itself died of this signal (for example `SIGSYS` from the
    /// seccomp filter, or `SIGKILL` from [`SandboxChild::kill`](crate::SandboxChild::kill)).
    /// Never a success.
    #[error("sandbox runner was killed by signal {0}")]
    Killed(i32),
    /// The module could not be loaded: not a file, not WebAssembly, not a WASI command (`_start`
    /// missing), or it imports something the sandbox does not provide.
    #[error("invalid module: {0}")]
    InvalidModule(String),
    /// The sandbox runner could not be started or set up: outside a tokio runtime, a zygote
    /// that could not fork, or a runner that reported it could not prepare itself.
    #[error("cannot start the sandbox: {0}")]
    Spawn(String),
    /// An operating-system call needed to start the runner failed (pipes, sockets, the exec);
    /// the I/O error is kept as the [`source`](std::error::Error::source).
    #[error("cannot start the sandbox: {context}")]
    SpawnIo {
        /// What was being done.
        context: String,
        /// The error the system returned.
        #[source]
        source: io::Error,
    },
    /// A [`Pool`](crate::Pool) has no worker left: each gave up after repeated failures in a row
    /// (see [`PoolBuilder::max_restarts`](crate::PoolBuilder::max_restarts)).
    #[error("no pool worker is left: each gave up after repeated failures in a row")]
    PoolExhausted,
    /// A [`Pool`](crate::Pool) guest ended (or closed its stdout) before replying to the request:
    /// with `Some(code)` it exited with that code, with `None` it closed its stdout and lives on.
    #[error("the guest {} before replying", match .0 { Some(code) => format!("exited with code {code}"), None => "closed its stdout".into() })]
    NoReply(Option<i32>),
    /// A [`Pool`](crate::Pool) was shut down or aborted: the request was made after
    /// [`shutdown`](crate::Pool::shutdown) began, or was still queued or in flight when
    /// [`abort`](crate::Pool::abort) was called.
    #[error("the pool was shut down")]
    PoolClosed,
    /// A [`Pool`](crate::Pool) request was not a single line (it held a `\n` before its end).
    #[error("invalid pool request: {0}")]
    InvalidRequest(String),
    /// A line read from a guest was longer than the configured maximum (in bytes). The rest of
    /// that line is skipped; the next read starts at the following line.
    #[error("line longer than {limit} bytes")]
    LineTooLong {
        /// The maximum line length that was exceeded.
        limit: usize,
    },
    /// A JSON Lines message was not valid JSON, or not of the expected type. The line was
    /// consumed: the next read starts at the following line.
    #[error("line {line}: malformed JSON: {message} at column {column}")]
    MalformedJson {
        /// The line's 1-based number in the stream.
        line: u64,
        /// The byte column within the line where serde gave up (1-based; 0 for an empty line).
        column: usize,
        /// serde's description, e.g. `expected value` or ``missing field `id` ``.
        message: String,
    },
    /// A binary frame was longer than the maximum (in bytes). When reading, this is decided
    /// from the frame's header alone, so nothing of the claimed size is allocated, and the
    /// payload is skipped: the next read starts at the following frame. When writing, nothing
    /// was written.
    #[error("frame of {length} bytes is larger than the maximum of {max}")]
    FrameTooLarge {
        /// The length the header announced (or the payload given to send).
        length: u64,
        /// The maximum frame length that was exceeded.
        max: usize,
    },
    /// The runner broke its protocol with the parent (no verdict, or a garbled one).
    #[error("sandbox runner failed: {0}")]
    Runner(String),
    /// An I/O error on a pipe or on the runner process.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl Error {
    /// A copy of this error, for the several requests one worker failure fails at once (I/O
    /// errors keep their kind and message, not their source chain).
    pub(crate) fn duplicate(&self) -> Error {
        let io = |e: &io::Error| io::Error::new(e.kind(), e.to_string());
        match self {
            Error::Timeout(limit) => Error::Timeout(*limit),
            Error::MemoryLimit(bytes) => Error::MemoryLimit(*bytes),
            Error::CompileTimeout(limit) => Error::CompileTimeout(*limit),
            Error::OutOfMemory(bytes) => Error::OutOfMemory(*bytes),
            Error::ForbiddenSyscall { number, name } => Error::ForbiddenSyscall { number: *number, name: name.clone() },
            Error::DirGrant { path, reason } => Error::DirGrant { path: path.clone(), reason: reason.clone() },
            Error::Probed(results) => Error::Probed(results.clone()),
            Error::FuelExhausted => Error::FuelExhausted,
            Error::Trap { message, wasm_backtrace } => {
                Error::Trap { message: message.clone(), wasm_backtrace: wasm_backtrace.clone() }
            }
            Error::Killed(signal) => Error::Killed(*signal),
            Error::InvalidModule(message) => Error::InvalidModule(message.clone()),
            Error::Spawn(message) => Error::Spawn(message.clone()),
            Error::SpawnIo { context, source } => Error::SpawnIo { context: context.clone(), source: io(source) },
            Error::PoolExhausted => Error::PoolExhausted,
            Error::PoolClosed => Error::PoolClosed,
            Error::NoReply(code) => Error::NoReply(*code),
            Error::InvalidRequest(message) => Error::InvalidRequest(message.clone()),
            Error::LineTooLong { limit } => Error::LineTooLong { limit: *limit },
            Error::MalformedJson { line, column, message } => {
                Error::MalformedJson { line: *line, column: *column, message: message.clone() }
            }
            Error::FrameTooLarge { length, max } => Error::FrameTooLarge { length: *length, max: *max },
            Error::Runner(message) => Error::Runner(message.clone()),
            Error::Io(e) => Error::Io(io(e)),
        }
    }
}

fn describe_syscall(number: Option<i64>, name: Option<&str>) -> String {
    match (number, name) {
        (Some(number), Some(name)) => format!("{name} ({number})"),
        (Some(number), None) => format!("number {number}"),
        (None, _) => "unknown (the runner was killed by SIGSYS before it could report which)".into(),
    }
}

/// `Result` with [`Error`] as the error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How a guest ended when it ran to completion: it returned from `_start` (code 0) or called
/// `proc_exit(code)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestExit {
    code: i32,
}

impl GuestExit {
    pub(crate) fn new(code: i32) -> Self {
        Self { code }
    }

    /// The guest's exit code.
    pub fn code(&self) -> i32 {
        self.code
    }

    /// Whether the exit code is 0.
    pub fn success(&self) -> bool {
        self.code == 0
    }
}
