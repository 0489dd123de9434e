//! # wasmpipe
//!
//! Run untrusted WebAssembly plugins in sandboxed child processes and talk to them over real OS
//! pipes from async Rust: Python's [aiopipe](https://github.com/kchmck/aiopipe) model
//! (`pipe()`, `duplex()`, hand an end to a child, `open()` the other) for `wasm32-wasip1` guests.
//!
//! Each guest runs in its own runner process: a fresh `exec` of the current binary in which
//! wasmtime runs the module, with the handed pipe ends as the guest's WASI stdin and stdout.
//! The parent reads and writes asynchronously and supervises the runner: limits, timeouts, exit
//! status, typed failure reports.
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> Result<(), wasmpipe::Error> {
//! // aiopipe's simplex example: the child writes one line, the parent reads it.
//! let (rx, tx) = wasmpipe::pipe()?;
//! let mut child = wasmpipe::Sandbox::new("simplex.wasm").stdout(tx).spawn()?;
//! let mut rx = rx.open()?;
//! let msg = rx.read_line().await?;
//! child.wait().await?;
//! assert_eq!(msg.as_deref(), Some(&b"hi from the child process\n"[..]));
//! # Ok(()) }
//! ```
//!
//! Guests are ordinary WASI command modules that talk over stdin/stdout, built by any toolchain;
//! Rust guests can use the `wasmpipe-guest` crate for buffered, deadlock-free channels.
//!
//! Besides bytes and lines, both sides speak typed messages: JSON Lines
//! ([`AsyncReader::recv`], [`AsyncWriter::send`]) and length-prefixed binary frames
//! ([`AsyncReader::recv_frame`], [`AsyncWriter::send_frame`]), also as tokio-util codecs in
//! [`codec`]. The README's "Wire formats" section specifies both for guests in any language.
//!
//! # Pipes
//!
//! [`pipe()`] gives a simplex pipe as a ([`PipeReader`], [`PipeWriter`]) pair and [`duplex()`]
//! two [`Duplex`] ends, each holding the receiving half of one pipe and the sending half of the
//! other. Every end starts out as a plain blocking file descriptor with `O_CLOEXEC` set, so no
//! unrelated child process ever inherits it. From there an end goes one of two ways:
//!
//! - **handed to a child** by moving it into [`Sandbox::stdin`](crate::Sandbox::stdin) /
//!   [`Sandbox::stdout`](crate::Sandbox::stdout) / [`Sandbox::duplex`](crate::Sandbox::duplex)
//!   (aiopipe's `detach`). The move consumes the end, so once the child is spawned the parent
//!   holds no copy of it, and end-of-file works: when the child exits, the parent's reader sees
//!   EOF, and when the parent drops its writer, the child sees EOF;
//! - **opened** for async use in the parent with [`PipeReader::open`] / [`PipeWriter::open`] /
//!   [`Duplex::open`] (aiopipe's `open`): the descriptor is switched to non-blocking mode and
//!   registered with tokio, and the result implements tokio's `AsyncRead` + `AsyncBufRead` or
//!   `AsyncWrite`.
//!
//! ## Caveats
//!
//! - `open` must be called from within a tokio runtime with I/O enabled.
//! - A descriptor is owned by exactly one value and closed exactly once, when that value is
//!   dropped or explicitly closed; closing twice is impossible by construction (aiopipe PR #3 was
//!   a stale owner closing an fd number that had since been reused).
//! - Writing to a pipe whose reader has gone returns an [`std::io::ErrorKind::BrokenPipe`] error.
//!   This relies on `SIGPIPE` being ignored, which Rust's `main` arranges; a host embedded
//!   elsewhere (a C program, a `cdylib`) must ignore `SIGPIPE` itself.
//!
//! # How the runner starts
//!
//! [`Sandbox::spawn`] re-executes `/proc/self/exe` with a marker in an otherwise empty
//! environment; a load-time constructor in this crate recognises the marker before `main` runs
//! and turns the process into the runner. Your binary, your tests and your examples therefore
//! work as they are, with no separate runner to install. A binary that links wasmpipe must not
//! itself depend on the environment variables `WASMPIPE_SANDBOX_RUNNER` and
//! `WASMPIPE_SANDBOX_ZYGOTE`.
//!
//! For many short-lived sandboxes, a [`Zygote`] pays for that exec once and clones ready runners
//! instead ([`Sandbox::zygote`]): faster, and otherwise identical (the runner is still this
//! process's child, with the same fds, limits and seccomp filter).
//!
//! # Security
//!
//! The threat model: the guest and every byte it writes are hostile; so is any file another
//! local user can write; and wasmtime itself may have bugs, so the runner process must hold even
//! against native code that escaped WebAssembly. What a guest can reach, and which layer stops it:
//!
//! | Threat | Protection |
//! |---|---|
//! | Reading or writing host memory, calling host code | wasmtime: the guest is WebAssembly, confined to its linear memory and WASI imports |
//! | Files, directories | WASI capabilities: nothing is preopened unless granted with [`Sandbox::dir`] (read-only) or [`Sandbox::dir_writable`]; no `..` or symlink escapes (cap-std); `/`, `/proc`, `/sys`, `/dev` and the cache are refused ([`Error::DirGrant`]) unless [`Sandbox::unsafe_allow_dangerous_dirs`]; the runner gets each checked directory as an fd the parent opened without following symlinks |
//! | Host environment variables | the guest sees only variables set with [`Sandbox::env`]; the runner itself starts with an empty environment |
//! | Other fds of the host | the runner holds only fds 0, 1, 2 and its control socket (fd 3, not visible to the guest) |
//! | Network | wasm32-wasip1 has no socket creation; a WASI 0.2 component's TCP, UDP and name lookups are refused by its WASI context before any system call; the seccomp filter forbids `socket` anyway |
//! | Endless loops, blocking forever | wall-clock [`Limits::timeout`]: epoch interruption, runner watchdog, parent kill as backstop |
//! | Memory exhaustion | [`Limits::memory`] caps the total of all linear memories, tables and the GC heap (default [`DEFAULT_MEMORY_LIMIT`]); `RLIMIT_DATA` backs it up for the whole runner process ([`Error::OutOfMemory`]) |
//! | Compile bombs | [`Limits::compile_timeout`] (default [`DEFAULT_COMPILE_TIMEOUT`]), the `RLIMIT_DATA` backstop, [`Limits::max_module_size`] and [`Limits::max_functions`] |
//! | Flooding the host | pipes apply back-pressure; [`AsyncReader::read_line`] is bounded ([`Error::LineTooLong`]), and so are typed messages ([`Error::FrameTooLarge`], decided from a frame's header alone); captured stderr keeps a bounded tail; the runner's reports are bounded frames |
//! | Native code in the runner (a wasmtime or Cranelift bug) | a second wall, up before any module byte is parsed, compiled or deserialized: `no_new_privs`, no capabilities (even under root), Landlock (files only beneath the grants, read-only or writable as granted; signals and abstract sockets scoped; see [`SandboxChild::landlock_abi`]), and a seccomp allowlist with argument checks (`tgkill` to its own threads only, harmless `ioctl`/`fcntl` requests only); after loading, no new executable mappings and, without grants, no path-taking call at all. A forbidden call ends the runner with [`Error::ForbiddenSyscall`], which names it |
//! | A poisoned compiled-module cache | only the parent touches it; entries carry a BLAKE3 MAC keyed with a per-user secret outside the cache ([`cache_key_path`]); the directory (0700) and entries (0600) are refused if anyone else owns or can write them; `O_NOFOLLOW` reads, `O_EXCL` writes under random names; bounded in bytes ([`DEFAULT_CACHE_MAX_BYTES`]) |
//! | Orphaned sandboxes | the runner exits when the parent dies (even by `SIGKILL`); dropping a [`SandboxChild`] kills and reaps it |
//!
//! Not protected: CPU time is bounded only by the wall-clock limit (no CPU share); the runner
//! runs as the same user as the host (no user or mount namespaces), and with a grant native code
//! can `stat` paths outside it (Landlock does not cover metadata); side channels (timing,
//! Spectre) are not mitigated beyond what wasmtime does, and runners forked from one [`Zygote`]
//! share its address-space layout; the seccomp filter exists only on x86_64 Linux and Landlock
//! only on Linux 5.13 and later (elsewhere the other layers stand alone).

#![deny(missing_docs)]

mod cache;
mod child;
pub mod codec;
mod control;
mod error;
mod grants;
mod limits;
mod line;
mod mapping;
mod pipe;
mod pool;
#[doc(hidden)]
pub mod probe;
mod process;
mod protocol;
mod runner;
mod sandbox;
// Only in the traced build that cli/startup-order/regenerate.sh makes.
#[cfg(wasmpipe_startup_trace)]
#[doc(hidden)]
pub mod startup_trace;
pub mod status;
mod zygote;

/// The README's examples, compiled as doctests so they cannot rot.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

pub use cache::key::key_path as cache_key_path;
pub use cache::{CacheOutcome, DEFAULT_CACHE_MAX_BYTES, default_cache_dir};
pub use child::{KillHandle, SandboxChild, Usage};
pub use error::{Error, GuestExit, Result};
pub use limits::{
    DEFAULT_COMPILE_TIMEOUT, DEFAULT_MAX_FUNCTIONS, DEFAULT_MAX_MODULE_SIZE, DEFAULT_MEMORY_LIMIT, Limits,
    parse_duration, parse_size,
};
pub use pipe::{AsyncReader, AsyncWriter, DEFAULT_MAX_LINE_LENGTH, Duplex, PipeReader, PipeWriter, duplex, pipe};
pub use pool::{DEFAULT_PIPELINE_DEPTH, Framing, Pool, PoolBuilder, PoolStats};
pub use sandbox::{DEFAULT_STDERR_CAPTURE, Sandbox};
pub use zygote::Zygote;
