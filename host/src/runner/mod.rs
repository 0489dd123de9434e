//! The sandbox runner: what runs inside the child process.
//!
//! The parent starts the runner by re-executing its own binary (`/proc/self/exe`) with
//! [`RUNNER_MARKER`] in an otherwise empty environment. A load-time constructor ([`hook`]) sees
//! the marker before `main` (or the test harness) gets a chance to run, turns the process into a
//! runner, and never returns. That is why library users, examples and `cargo test` binaries need
//! no separate runner executable.
//!
//! The control socket arrives as fd 0 and the guest's stdin follows over it; the runner moves
//! them to fds 3 and 0 (a runner forked by a [`zygote`] gets all four in place instead).
//!
//! # A map of one run, from `spawn()` to `_start` and back
//!
//! In the parent (`sandbox.rs`, `child.rs`):
//! 1. [`Sandbox::spawn`](crate::Sandbox::spawn) checks it runs in a tokio runtime and checks
//!    the directory grants (`grants.rs`); then starts the runner: a `posix_spawn` of
//!    `/proc/self/exe` with the control socket as its stdin (or a clone from a
//!    [`Zygote`](crate::Zygote), `zygote.rs`).
//! 2. It sends the JSON config on the control socket (`protocol.rs`; a runner forked from the
//!    parent, `Sandbox::prefer_fork`, takes it with the fork instead); then reads the module,
//!    hashes it, and looks it up in the compiled-module cache (`cache/`) while the runner
//!    hardens itself. A forked runner sends back the hash of the engine it made, which names
//!    the cache entry (looked up meanwhile under the hash remembered from earlier runs). The
//!    module's header follows, then a verified artifact or the module's bytes.
//! 3. [`SandboxChild`](crate::SandboxChild) (`child.rs`) then waits on a pidfd and reads the
//!    runner's frames (`control.rs`): the artifact it compiled (stored in the cache at once),
//!    "hardened" with the Landlock ABI, its usage, and the verdict, which `wait` turns into an
//!    `Ok(GuestExit)` or a typed [`Error`](crate::Error).
//!
//! In the runner (this module), in order:
//! 1. [`hook`] runs before `main`; close every fd but 0–3; take the control socket to fd 3 and
//!    the guest's stdin (passed over it) to fd 0;
//! 2. read the config ([`run`]; a forked runner has it), make the engine (an exec'd runner for the CPU features the
//!    parent detected, [`cpu`]), and send its hash if asked;
//! 3. lock down, still single-threaded ([`harden::lock_down_files`]): `no_new_privs`,
//!    capabilities, Landlock;
//! 4. start the timer driver, which also runs the watchman (timeout, compile limit), and, with
//!    granted directories, wasmtime-wasi's blocking thread ([`threads`]); while they start, set
//!    up the guest's WASI context and open the granted directories (`guest::wasi_builder`) and
//!    compile the seccomp programs; then read the module's header and the module or artifact,
//!    watch for the parent's death (`SIGIO` on the control socket, `threads::watch_parent`),
//!    set `RLIMIT_DATA` by its size ([`harden::limit_data`]), and start the compiler's threads
//!    to compile;
//! 5. the seccomp allowlist on every thread ([`harden::apply_syscall_filter`]);
//! 6. parse and compile, or deserialize (`guest::load`), sending a fresh artifact back;
//! 7. forbid new executable mappings ([`harden::forbid_new_code`]);
//! 8. link WASI (with the fast stdio path, [`stdio`], for fd_read/fd_write when no directory is granted),
//!    instantiate (any `start` function runs here), run `_start` (`guest::Ready::run`); a WASI
//!    0.2 component (the kind is read from the module's header in step 2) takes its own branch
//!    from step 6 on ([`component`]): WASI 0.2 linked, `wasi:cli/run` called;
//! 9. send the usage and the verdict on fd 3 ([`report_and_exit`]) and `_exit` with the status
//!    of [`crate::status`]. A `SIGSYS` from the filter or a `SIGABRT` is reported by a signal
//!    handler instead (`harden`), the timeout by the watchman.

mod component;
pub(crate) mod cpu;
mod fork;
mod guest;
mod harden;
mod in_place;
mod stdio;
mod threads;
mod zygote;

use crate::protocol::{
    self, CONTROL_FD, ModuleHeader, ModuleKind, ModuleSource, RUNNER_MARKER, RunnerConfig, Verdict, ZYGOTE_MARKER,
};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The control socket, shared by whoever reports the verdict first (main thread or watchman).
/// `None` once the verdict has been sent: there is exactly one verdict per run.
static CONTROL: Mutex<Option<File>> = Mutex::new(None);

/// Runs before `main` in every process that links wasmpipe; does nothing unless the process was
/// started as a sandbox runner or a zygote.
#[ctor::ctor(unsafe)]
fn hook() {
    if std::env::var_os(RUNNER_MARKER).is_some() {
        run_and_exit();
    }
    if std::env::var_os(ZYGOTE_MARKER).is_some() {
        zygote::serve();
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
    let control = match take_control_and_stdin() {
        Ok(control) => control,
        Err(message) => {
            let _ = writeln!(std::io::stderr(), "wasmpipe runner: {message}");
            // SAFETY: nothing to clean up; no other thread exists yet.
            unsafe { libc::_exit(125) }
        }
    };
    run_to_verdict(control, None)
}

/// Runs the guest with the control socket in place, reports, exits. `config` is the runner's
/// config when it came with the fork, else it is read from the socket.
fn run_to_verdict(control: File, config: Option<RunnerConfig>) -> ! {
    let verdict = match run(control, config) {
        Ok(verdict) => verdict,
        Err(message) => Verdict::Failed { message },
    };
    report_and_exit(&verdict)
}

/// In a runner cloned from a zygote or forked from the host: fds into place, then the normal
/// runner path. `fds` are the control socket, the guest's stdin, stdout and stderr, then the
/// granted directories: the four at fd 3 or above, the grants above 3. `config`: the runner's
/// config, when it came with the fork (else it follows on the control socket).
pub(super) fn become_runner(mut fds: Vec<OwnedFd>, config: Option<RunnerConfig>) -> ! {
    let grants = fds.split_off(4);
    let [control, stdin, stdout, stderr]: [OwnedFd; 4] = fds.try_into().expect("checked by the caller");
    // Raw numbers from here: close_range below closes the originals, so nothing may own them.
    let raw = [stdin.into_raw_fd(), stdout.into_raw_fd(), stderr.into_raw_fd(), control.into_raw_fd()];
    // With every source at 3 or above, filling 0, 1, 2 first never overwrites one that is still
    // to be copied, and fd 3 is either the control socket already or a stdio fd copied by then.
    for (target, source) in raw.into_iter().enumerate() {
        // SAFETY: plain fd-table operations in this fresh, single-threaded child.
        if source != target as i32 && unsafe { libc::dup2(source, target as i32) } < 0 {
            exit_with("cannot set up the runner's fds");
        }
    }
    // The grants are above fd 3, untouched by the copies: keep them, close everything else.
    let keep: Vec<i32> = grants.iter().map(std::os::fd::AsRawFd::as_raw_fd).collect();
    harden::close_fds_except(CONTROL_FD + 1, &keep);
    set_grant_fds(grants);
    // SAFETY: fd 3 is now the control socket, owned from here on by this `File`.
    run_to_verdict(unsafe { File::from_raw_fd(CONTROL_FD) }, config)
}

fn exit_with(message: &str) -> ! {
    let _ = writeln!(std::io::stderr(), "wasmpipe runner: {message}");
    // SAFETY: exiting without running destructors is what we want here.
    unsafe { libc::_exit(125) }
}

/// The runner starts with the control socket as fd 0 (see `protocol`): moves it to fd 3, and
/// puts the guest's stdin, which the parent sends over it, at fd 0.
fn take_control_and_stdin() -> Result<File, String> {
    // SAFETY: plain fd-table operations on fds 0 and 3, which nothing in this process owns yet
    // (fds above 2 were just closed).
    if unsafe { libc::dup2(0, CONTROL_FD) } < 0 {
        return Err(format!("cannot set up the control socket: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: fd 3 is now the control socket, owned from here on by the returned `File`.
    let control = unsafe { File::from_raw_fd(CONTROL_FD) };
    let mut fds = protocol::receive_fds(&control).map_err(|e| format!("cannot receive the guest's stdin: {e}"))?.0;
    if fds.is_empty() {
        return Err("the parent sent no stdin fd".into());
    }
    // The granted directories follow stdin, in the config's order.
    set_grant_fds(fds.split_off(1));
    let stdin = fds.pop().expect("checked above");
    // SAFETY: replaces fd 0 (a duplicate of the control socket) with the guest's stdin; the
    // received fd itself is closed when `stdin` drops.
    if unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&stdin), 0) } < 0 {
        return Err(format!("cannot set up the guest's stdin: {}", std::io::Error::last_os_error()));
    }
    Ok(control)
}

fn run(mut control: File, config: Option<RunnerConfig>) -> Result<Verdict, String> {
    let started = Instant::now();
    // The engine is built here, after the config, on this thread. Building it on a thread of
    // its own while the config arrives was measured slower by 0.1-0.2 ms: the config is already
    // waiting when the runner starts, and the first thread start of a process (stack mapping,
    // a wake-up on the other CPU, the join) costs more than the build it would overlap.
    let config: RunnerConfig = match config {
        Some(config) => config,
        None => protocol::read_message(&mut control).map_err(|e| format!("cannot read the runner config: {e}"))?,
    };
    let engine = engine(config.limits.fuel_limit().is_some(), config.cpu_features.as_deref())?;
    if config.send_engine_hash {
        // Nothing but this process's own code has run yet: the hash is the one the parent
        // would compute itself.
        let hash = crate::cache::compatibility_hash(&engine);
        let _ = (&control).write_all(&protocol::frame_header(protocol::FRAME_ENGINE_HASH, 8));
        let _ = (&control).write_all(&hash.to_le_bytes());
    }
    *CONTROL.lock().unwrap_or_else(|e| e.into_inner()) = Some(control);
    // The module header and bytes are still to come on the socket `CONTROL` now owns.
    // SAFETY: fd 3 stays open until the runner exits (`CONTROL` keeps it); `ManuallyDrop`
    // never closes it.
    let control = std::mem::ManuallyDrop::new(unsafe { File::from_raw_fd(CONTROL_FD) });
    // SAFETY: getppid has no preconditions; asked now, since the filter does not allow it later.
    let parent = unsafe { libc::getppid() };

    // The wall goes up before any untrusted byte is parsed. First, while this is the only
    // thread: no_new_privs, capabilities, Landlock (which binds threads started later).
    let landlock = harden::lock_down_files(&config).map_err(|e| format!("cannot harden the runner: {e}"))?;
    send_frame(protocol::FRAME_HARDENED, &[landlock.map_or(0, |abi| abi as u8)]);
    let mut starting = threads::Starting::default();
    // Compilation counts against the timeout, and has a limit of its own: an untrusted module
    // may be built to compile slowly. Whether this runner compiles is known only once the
    // module's header arrives, after the watchman starts.
    let timeout = config.limits.timeout_limit().map(|limit| (started + limit, limit));
    let compile_limit = config.limits.compile_timeout_limit().map(|limit| (started + limit, limit));
    let watchman = threads::watchman(engine.clone(), timeout, compile_limit);
    let wasi_runtime = wasi_runtime(&mut starting, !config.dirs.is_empty(), watchman)?;
    // While those threads start and the parent may still be looking the module up, the work
    // that does not need it: the guest's WASI context (its granted directories are opened now,
    // inside the Landlock domain that allows exactly them) and the seccomp programs.
    let wasi = guest::wasi_builder(&config, &grant_fds());
    forget_grant_fds();
    let syscall_filter = harden::syscall_filter(&config).map_err(|e| format!("cannot harden the runner: {e}"))?;
    // The module follows; the parent looked it up in the cache while this runner hardened
    // itself.
    let header: ModuleHeader =
        protocol::read_message(&*control).map_err(|e| format!("cannot read the module header: {e}"))?;
    let received = receive(&control, &header.source, config.limits.fuel_limit().is_some())?;
    // The parent sends nothing more: from now on the socket turning readable means it died.
    threads::watch_parent()?;
    let compiling = matches!(received, Received::Wasm(_));
    // A core module or a component: read from the header of bytes to compile (nothing is
    // parsed yet), else as the parent read it from the module that the artifact was made from.
    let kind = match &received {
        Received::Wasm(bytes) => ModuleKind::of(bytes),
        Received::Artifact(_) => header.kind,
    };
    harden::limit_data(&config, &header.source, received.len() as u64)
        .map_err(|e| format!("cannot harden the runner: {e}"))?;
    if compiling {
        threads::compiling();
        guest::start_compiler_threads();
    }
    let wasi = wasi.map(|builder| guest::build_wasi(builder, kind)).map_err(|message| Verdict::Failed { message });
    starting.wait();
    harden::apply_syscall_filter(syscall_filter).map_err(|e| format!("cannot harden the runner: {e}"))?;

    // Under the filter from here on: parse, compile or deserialize.
    let module = match guest::load(&engine, &config, header.return_artifact, kind, received) {
        Ok(module) => module,
        Err(verdict) => return Ok(verdict),
    };
    threads::compiled();
    if config.compile_only {
        return Ok(Verdict::Exited { code: 0 });
    }
    harden::forbid_new_code(&config).map_err(|e| format!("cannot harden the runner: {e}"))?;
    let prepared = match wasi.and_then(|wasi| guest::prepare(engine, module, &config, wasi)) {
        Ok(prepared) => prepared,
        Err(verdict) => return Ok(verdict),
    };
    let _entered = wasi_runtime.enter();
    let prepared = match prepared.instantiate() {
        Ok(ready) => ready,
        Err(verdict) => return Ok(verdict),
    };
    if !config.probes.is_empty() {
        return Ok(Verdict::Probed { results: config.probes.iter().map(|probe| probe.run(parent)).collect() });
    }
    Ok(prepared.run(config.limits.fuel_limit()))
}

/// The module as the runner got it: WebAssembly to compile, or a compiled artifact to load.
pub(crate) enum Received {
    Wasm(Vec<u8>),
    Artifact(Artifact),
}

/// A compiled artifact whose MAC the parent verified before handing it over (see `cache`):
/// exactly what a runner of this user's, with this engine configuration, compiled.
pub(crate) enum Artifact {
    /// Sent over the control socket.
    Sent(Vec<u8>),
    /// Mapped from the file the parent passed.
    Mapped(MappedArtifact),
    /// Loaded by the zygote this runner was forked from.
    Preloaded(std::sync::Arc<[u8]>),
}

impl std::ops::Deref for Artifact {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Self::Sent(bytes) => bytes,
            Self::Mapped(mapped) => mapped,
            Self::Preloaded(bytes) => bytes,
        }
    }
}

impl Received {
    fn len(&self) -> usize {
        match self {
            Self::Wasm(bytes) => bytes.len(),
            Self::Artifact(artifact) => artifact.len(),
        }
    }
}

/// Takes in the module the header announced, which follows it on the control socket (or was
/// preloaded by the zygote: `fuel` picks which of its artifacts). The parent always sends it, so
/// the runner opens no file to get it.
fn receive(control: &File, source: &ModuleSource, fuel: bool) -> Result<Received, String> {
    Ok(match *source {
        ModuleSource::Wasm { len } => Received::Wasm(receive_bytes(control, len)?),
        ModuleSource::Compiled { len } => Received::Artifact(Artifact::Sent(receive_bytes(control, len)?)),
        ModuleSource::Mapped { len, offset } => {
            Received::Artifact(Artifact::Mapped(receive_mapped(control, len, offset)?))
        }
        ModuleSource::Preloaded { ref digest } => Received::Artifact(Artifact::Preloaded(
            preloaded(digest, fuel).ok_or("the zygote did not preload the module")?,
        )),
    })
}

/// Reads the `len` bytes that follow the module's header.
fn receive_bytes(control: impl Read, len: u64) -> Result<Vec<u8>, String> {
    // Sized up front: growing from empty costs a dozen small reads for a typical module.
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0).min(1 << 30));
    control.take(len).read_to_end(&mut bytes).map_err(|e| format!("cannot receive the module: {e}"))?;
    if bytes.len() as u64 != len {
        return Err(format!("the module was cut short: {} of {len} bytes", bytes.len()));
    }
    Ok(bytes)
}

/// Receives the file holding the artifact ([`ModuleSource::Mapped`]: `len` bytes at `offset`)
/// and maps it; the fd is closed at once, so the runner still holds nothing but fds 0-3.
fn receive_mapped(control: &File, len: u64, offset: u64) -> Result<MappedArtifact, String> {
    let (mut fds, _) = protocol::receive_fds(control).map_err(|e| format!("cannot receive the module: {e}"))?;
    let file = match (fds.pop(), fds.is_empty()) {
        (Some(fd), true) => fd,
        _ => return Err("the parent sent no compiled module".into()),
    };
    let size = rustix::fs::fstat(&file).map_err(|e| format!("cannot receive the module: {e}"))?.st_size;
    let file_len = offset
        .checked_add(len)
        .filter(|&end| len > 0 && u64::try_from(size) == Ok(end))
        .and_then(|end| usize::try_from(end).ok())
        .ok_or("the compiled module's size is not the announced one")?;
    // The artifact alone when it starts on a page (a cache entry's or a memfd's does), so that
    // its code can run where it is mapped (`in_place`); else the whole file. The file is never
    // written in place (a sealed memfd, or a cache entry, which is only ever replaced).
    let start = if offset.is_multiple_of(rustix::param::page_size() as u64) { offset } else { 0 };
    let mapping = crate::mapping::Mapping::of(&file, start, file_len - start as usize)
        .map_err(|e| format!("cannot map the module: {e}"))?;
    Ok(MappedArtifact { mapping, offset: (offset - start) as usize })
}

/// A compiled artifact mapped read-only from the file the parent sent: the bytes from `offset`
/// to the end of the mapping.
pub(crate) struct MappedArtifact {
    mapping: crate::mapping::Mapping,
    offset: usize,
}

impl MappedArtifact {
    /// Whether the artifact starts on a page: then its code can run in place.
    pub(crate) fn is_page_aligned(&self) -> bool {
        self.offset == 0
    }
}

impl std::ops::Deref for MappedArtifact {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // `offset` is within the mapping: checked against the file's size before mapping.
        &self.mapping[self.offset..]
    }
}

/// Sends a compiled artifact to the parent, which stores it in the cache.
pub(crate) fn send_artifact(artifact: &[u8]) {
    send_frame(protocol::FRAME_ARTIFACT, artifact);
}

/// Sends one frame that is not the verdict.
fn send_frame(tag: u8, payload: &[u8]) {
    let mut control = CONTROL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(socket) = control.as_mut() {
        let header = protocol::frame_header(tag, payload.len() as u32);
        let _ = socket.write_all(&header).and_then(|()| socket.write_all(payload));
    }
}

/// Engines a zygote made before forking this runner, indexed by "fuel enabled". Runners started
/// by exec have none and make their own.
static PREPARED_ENGINES: std::sync::OnceLock<[wasmtime::Engine; 2]> = std::sync::OnceLock::new();

/// Verified artifacts a zygote held before forking this runner: (digest, fuel, artifact).
type Preloaded = Vec<([u8; 32], bool, std::sync::Arc<[u8]>)>;
static PRELOADED: std::sync::Mutex<Preloaded> = std::sync::Mutex::new(Vec::new());

fn preloaded(digest: &[u8; 32], fuel: bool) -> Option<std::sync::Arc<[u8]>> {
    let preloaded = PRELOADED.lock().unwrap_or_else(|e| e.into_inner());
    preloaded.iter().find(|(d, f, _)| d == digest && *f == fuel).map(|(_, _, artifact)| artifact.clone())
}

fn engine(fuel: bool, cpu_features: Option<&[String]>) -> Result<wasmtime::Engine, String> {
    match PREPARED_ENGINES.get() {
        Some(engines) => Ok(engines[usize::from(fuel)].clone()),
        None => guest::engine_with(fuel, cpu_features),
    }
}

/// The tokio runtime wasmtime-wasi runs its (synchronous, for us) calls on.
///
/// Left to itself, wasmtime-wasi would lazily start a multi-threaded runtime with an epoll fd, an
/// eventfd and worker threads, on the guest's first WASI call: after hardening, where neither
/// threads nor new fds are allowed. Instead: a current-thread runtime with only the time driver
/// (no fds at all), driven by a thread of ours (running the `watchman` on it) so that timers
/// (`poll_oneoff`, sleeps) fire, and entered on the guest's thread so wasmtime-wasi's `in_tokio`
/// finds it.
///
/// `files`: whether the guest has files at all (granted directories). wasmtime-wasi runs some
/// file calls (streams over files, polling them) as blocking tasks, whose one thread is then
/// started now, before the filter forbids new threads, and never retires. Without files there
/// is nothing to run there: stdio is read and written on the guest's own thread (the fast path,
/// or wasmtime-wasi's `InputFile`/`OutputFile`, which block in place), sockets are refused, and
/// timers run on the timer driver.
fn wasi_runtime(
    starting: &mut threads::Starting,
    files: bool,
    watchman: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<&'static tokio::runtime::Handle, String> {
    static HANDLE: std::sync::OnceLock<tokio::runtime::Handle> = std::sync::OnceLock::new();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .max_blocking_threads(1)
        .thread_keep_alive(Duration::from_secs(1 << 40))
        .build()
        .map_err(|e| format!("cannot start the wasi runtime: {e}"))?;
    let handle = HANDLE.get_or_init(|| runtime.handle().clone());
    if files {
        starting.track(|running| {
            runtime.spawn_blocking(running);
        });
    }
    threads::start_timer_driver(starting, runtime, watchman);
    Ok(handle)
}

/// The granted directories as the parent opened them (symlink-free), in the config's order;
/// emptied once the guest's WASI context has its own handles on them.
static GRANT_FDS: Mutex<Vec<std::os::fd::OwnedFd>> = Mutex::new(Vec::new());

fn set_grant_fds(fds: Vec<std::os::fd::OwnedFd>) {
    *GRANT_FDS.lock().unwrap_or_else(|e| e.into_inner()) = fds;
}

/// Borrowed handles on the grants' fds (dropped by `forget_grant_fds`).
pub(crate) fn grant_fds() -> Vec<std::os::fd::BorrowedFd<'static>> {
    let fds = GRANT_FDS.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: the fds stay open until `forget_grant_fds`, which runs only after every user.
    fds.iter().map(|fd| unsafe { std::os::fd::BorrowedFd::borrow_raw(std::os::fd::AsRawFd::as_raw_fd(fd)) }).collect()
}

fn forget_grant_fds() {
    GRANT_FDS.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

/// Whether a verdict was sent (or is being sent): there is exactly one per run, whoever
/// reports first (the main thread, the watchman, or a signal handler).
static REPORTED: AtomicBool = AtomicBool::new(false);

/// Sends the verdict (first caller wins) and exits with its status.
pub(crate) fn report_and_exit(verdict: &Verdict) -> ! {
    #[cfg(wasmpipe_startup_trace)]
    crate::startup_trace::dump("runner");
    let mut control = CONTROL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let first = !REPORTED.swap(true, Ordering::SeqCst);
    // The socket stays open until `_exit`: closing it would look like the parent's death to
    // the SIGIO watch (`threads::watch_parent`), which would race this thread to exit with its
    // own status.
    if let (true, Some(socket)) = (first, control.as_mut()) {
        let fuel = guest::FUEL_CONSUMED.load(Ordering::Relaxed);
        let usage = protocol::RunnerUsage {
            peak_memory: guest::PEAK_MEMORY.load(Ordering::Relaxed),
            fuel_consumed: (fuel != u64::MAX).then_some(fuel),
        };
        let _ = socket.write_all(&protocol::encode_usage(&usage));
        let _ = socket.write_all(&protocol::encode_verdict(verdict));
    } else if let Verdict::Failed { message } = verdict {
        // No control socket yet: stderr is the only way left to say why.
        let _ = writeln!(std::io::stderr(), "wasmpipe runner: {message}");
    }
    // SAFETY: _exit skips atexit handlers and destructors, which other threads (the guest, the
    // wasi runtime) may be racing with; everything the guest wrote went straight to its fds.
    unsafe { libc::_exit(verdict.exit_status()) }
}

/// [`report_and_exit`] for signal handlers: `json` is a verdict, written with one raw `write`
/// and no locks or allocation.
pub(crate) fn report_raw(json: &[u8], status: i32) -> ! {
    if !REPORTED.swap(true, Ordering::SeqCst) {
        let mut frame = [0u8; 128];
        let len = json.len().min(frame.len() - protocol::FRAME_HEADER_LEN);
        frame[..protocol::FRAME_HEADER_LEN]
            .copy_from_slice(&protocol::frame_header(protocol::FRAME_VERDICT, len as u32));
        frame[protocol::FRAME_HEADER_LEN..][..len].copy_from_slice(&json[..len]);
        // SAFETY: write and _exit are async-signal-safe; the buffer is a local.
        unsafe { libc::write(harden::REPORT_FD, frame.as_ptr().cast(), protocol::FRAME_HEADER_LEN + len) };
    }
    // SAFETY: as in `report_and_exit`.
    unsafe { libc::_exit(status) }
}

pub(crate) use fork::{fork_is_safe, fork_runner};
#[cfg(test)]
pub(crate) use guest::engine_config;
pub(crate) use guest::engine_for;
