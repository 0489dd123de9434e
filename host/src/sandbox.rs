//! Spawning a guest in a sandboxed child process, and supervising it.
//!
//! [`Sandbox`] is a builder in the spirit of `std::process::Command`; [`Sandbox::spawn`] starts a
//! runner process (a fresh `exec` of the current binary, see the crate docs) and returns a
//! [`SandboxChild`] to wait for, kill, or drop. Its caveats live on [`Sandbox`], where users
//! look.

use crate::cache::{Cache, CacheOutcome, EntryName};
use crate::child::SandboxChild;
use crate::control::{self, ArtifactSink};
use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::pipe::{self, AsyncReader, AsyncWriter, Duplex};
use crate::probe::Probe;
use crate::process::ChildProcess;
use crate::protocol::{
    self, DirGrant, ModuleHeader, ModuleKind, ModuleSource, PreloadHint, RUNNER_MARKER, ReturnArtifact, RunnerConfig,
};
use crate::zygote::Zygote;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Payloads up to this size fit a control socket's default buffer.
const SMALL_PAYLOAD: usize = 64 * 1024;

/// Default bound on captured stderr (see [`Sandbox::capture_stderr`]): the last 64 KiB.
pub const DEFAULT_STDERR_CAPTURE: usize = 64 * 1024;

/// Where the module comes from.
#[derive(Debug, Clone)]
enum Module {
    Path(PathBuf),
    /// In memory, with the digest that names it in the compiled-module cache: computed once
    /// here rather than in every runner.
    Bytes {
        bytes: Arc<[u8]>,
        digest: [u8; 32],
    },
}

/// One of the guest's stdio streams as configured.
#[derive(Debug)]
enum GuestStdio {
    Null,
    /// The parent's own stream of the same number.
    Inherit,
    Fd(OwnedFd),
    /// stderr only: a pipe whose tail (this many bytes) the parent keeps.
    Captured(usize),
}

/// Which compiled-module cache the runner uses.
#[derive(Debug, Clone)]
enum CacheChoice {
    Default,
    Dir(PathBuf),
    Disabled,
}

/// Builder for a sandboxed guest: which module, what it may see, what it may use.
///
/// By default the guest gets no environment variables, no directories, `/dev/null` for stdin and
/// stdout, the parent's stderr, the default [`Limits`], and the compiled-module cache in
/// [`default_cache_dir`](crate::default_cache_dir).
///
/// ```no_run
/// # async fn demo() -> Result<(), wasmpipe::Error> {
/// use std::time::Duration;
/// let (rx, tx) = wasmpipe::pipe()?;
/// let mut child = wasmpipe::Sandbox::new("guest.wasm")
///     .arg("--verbose")
///     .env("LANG", "C")
///     .dir("./data", "/data")
///     .timeout(Duration::from_secs(5))
///     .stdout(tx)
///     .spawn()?;
/// let mut rx = rx.open()?;
/// while let Some(line) = rx.read_line().await? {
///     print!("{}", String::from_utf8_lossy(&line));
/// }
/// child.wait().await?;
/// # Ok(()) }
/// ```
///
/// # Caveats
///
/// - `spawn` and everything on [`SandboxChild`] must run inside a tokio runtime with I/O and time
///   enabled (`#[tokio::main]` has both).
/// - Dropping a [`SandboxChild`] kills the runner with `SIGKILL` and reaps it before returning,
///   so no zombie is left behind; that reap blocks the current thread for the (short) time the
///   kernel takes to tear the process down.
/// - The runner holds fds 0, 1 and 2 (the guest's stdin, stdout and stderr) and fd 3 (the control
///   socket to the parent), nothing else. Whatever is not given with [`Sandbox::stdin`] /
///   [`Sandbox::stdout`] is `/dev/null`; stderr is the parent's stderr unless set or captured.
/// - The runner is started with `posix_spawn` (a `vfork`, not a copy of the parent's address
///   space): the control socket is its initial stdin, and the guest's stdin follows over that
///   socket (`SCM_RIGHTS`), after which the runner moves both into place.
/// - The runner dies with its parent, even when the parent is killed with `SIGKILL`: it watches
///   the control socket, whose other end only the parent holds.
#[derive(Debug)]
pub struct Sandbox {
    module: Module,
    program_name: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    dirs: Vec<DirGrant>,
    limits: Limits,
    stdin: GuestStdio,
    stdout: GuestStdio,
    stderr: GuestStdio,
    cache: CacheChoice,
    cache_max_bytes: u64,
    compile_only: bool,
    allow_dangerous_dirs: bool,
    probes: Vec<Probe>,
    zygote: Option<Zygote>,
    prefer_fork: bool,
}

impl Sandbox {
    /// A sandbox for the `wasm32-wasip1` command module, or `wasm32-wasip2` command component,
    /// at `path` (told apart by its header). The runner reads and compiles it (untrusted input is
    /// never compiled in the parent). The guest's `argv[0]` is the file name.
    pub fn new(path: impl AsRef<Path>) -> Self {
        let path = path.as_ref();
        let program_name = path.file_name().unwrap_or(path.as_os_str()).to_string_lossy().into_owned();
        Self::with_module(Module::Path(path.to_path_buf()), program_name)
    }

    /// A sandbox for a module held in memory; `program_name` becomes the guest's `argv[0]`. The
    /// bytes are sent to the runner during [`spawn`](Self::spawn).
    pub fn from_bytes(program_name: impl Into<String>, bytes: impl Into<Arc<[u8]>>) -> Self {
        let bytes = bytes.into();
        let digest = crate::cache::module_digest(&bytes);
        Self::with_module(Module::Bytes { bytes, digest }, program_name.into())
    }

    fn with_module(module: Module, program_name: String) -> Self {
        Self {
            module,
            program_name,
            args: Vec::new(),
            env: Vec::new(),
            dirs: Vec::new(),
            limits: Limits::default(),
            stdin: GuestStdio::Null,
            stdout: GuestStdio::Null,
            stderr: GuestStdio::Inherit,
            cache: CacheChoice::Default,
            cache_max_bytes: crate::cache::DEFAULT_CACHE_MAX_BYTES,
            compile_only: false,
            allow_dangerous_dirs: false,
            probes: Vec::new(),
            zygote: None,
            prefer_fork: false,
        }
    }

    /// Appends an argument to the guest's `argv`.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends arguments to the guest's `argv`.
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable for the guest. The guest sees only the variables set here,
    /// never the host's.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Makes the host directory `host` visible to the guest at `guest_path`, read-only. The guest
    /// cannot reach anything outside it (no `..`, no absolute escapes, no symlinks out), and
    /// Landlock holds the runner process itself to it.
    ///
    /// The grant is checked by [`spawn`](Self::spawn), which fails with [`Error::DirGrant`] if
    /// the directory does not exist, or is `/`, contains or lies in `/proc`, `/sys` or `/dev`,
    /// or overlaps the compiled-module cache or its key (see
    /// [`unsafe_allow_dangerous_dirs`](Self::unsafe_allow_dangerous_dirs)).
    pub fn dir(mut self, host: impl AsRef<Path>, guest_path: impl Into<String>) -> Self {
        self.dirs.push(DirGrant { host: host.as_ref().into(), guest: guest_path.into(), writable: false });
        self
    }

    /// Like [`dir`](Self::dir), but the guest may also create, modify and delete files in it.
    pub fn dir_writable(mut self, host: impl AsRef<Path>, guest_path: impl Into<String>) -> Self {
        self.dirs.push(DirGrant { host: host.as_ref().into(), guest: guest_path.into(), writable: true });
        self
    }

    /// Replaces all limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the wall-clock limit; see [`Limits::timeout`].
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.limits = self.limits.timeout(limit);
        self
    }

    /// Sets the memory cap in bytes; see [`Limits::memory`].
    pub fn memory(mut self, bytes: u64) -> Self {
        self.limits = self.limits.memory(bytes);
        self
    }

    /// Sets the compile limit (`None` lifts it); see [`Limits::compile_timeout`].
    pub fn compile_timeout(mut self, limit: Option<Duration>) -> Self {
        self.limits = self.limits.compile_timeout(limit);
        self
    }

    /// Sets the fuel budget; see [`Limits::fuel`].
    pub fn fuel(mut self, units: u64) -> Self {
        self.limits = self.limits.fuel(units);
        self
    }

    /// The guest's stdin: typically a [`PipeReader`](crate::PipeReader) from [`pipe()`](crate::pipe()), or any
    /// readable fd (a `File`, ...). The sandbox takes ownership: the parent's copy is closed
    /// once the runner has it.
    pub fn stdin(mut self, stdin: impl Into<OwnedFd>) -> Self {
        self.stdin = GuestStdio::Fd(stdin.into());
        self
    }

    /// The guest's stdout: typically a [`PipeWriter`](crate::PipeWriter), or any writable fd.
    pub fn stdout(mut self, stdout: impl Into<OwnedFd>) -> Self {
        self.stdout = GuestStdio::Fd(stdout.into());
        self
    }

    /// The guest's stderr (the parent's stderr by default).
    pub fn stderr(mut self, stderr: impl Into<OwnedFd>) -> Self {
        self.stderr = GuestStdio::Fd(stderr.into());
        self
    }

    /// Gives the guest the parent's own stdin, stdout and stderr, as `wasmpipe run` does: bytes
    /// then flow between the guest and whatever those are, without passing through the parent.
    pub fn inherit_stdio(mut self) -> Self {
        self.stdin = GuestStdio::Inherit;
        self.stdout = GuestStdio::Inherit;
        self.stderr = GuestStdio::Inherit;
        self
    }

    /// Captures the guest's stderr instead of passing it through, keeping the last `max_bytes`
    /// (so a guest flooding stderr costs bounded memory). Read it with
    /// [`SandboxChild::captured_stderr`] after [`wait`](SandboxChild::wait).
    pub fn capture_stderr(mut self, max_bytes: usize) -> Self {
        self.stderr = GuestStdio::Captured(max_bytes);
        self
    }

    /// Hands one end of a [`duplex()`](crate::duplex()) pipe to the guest as its stdin and
    /// stdout (aiopipe's `detach`).
    pub fn duplex(self, end: Duplex) -> Self {
        let (rx, tx) = end.into_parts();
        self.stdin(rx).stdout(tx)
    }

    /// Uses this directory for the compiled-module cache.
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache = CacheChoice::Dir(dir.into());
        self
    }

    /// Compiles the module at every start instead of using the cache.
    pub fn no_cache(mut self) -> Self {
        self.cache = CacheChoice::Disabled;
        self
    }

    /// Bounds the cache directory's total size in bytes (default
    /// [`DEFAULT_CACHE_MAX_BYTES`](crate::DEFAULT_CACHE_MAX_BYTES)): storing a new entry evicts
    /// the least recently used ones beyond it, and an artifact larger than it is not stored.
    pub fn cache_max_bytes(mut self, bytes: u64) -> Self {
        self.cache_max_bytes = bytes;
        self
    }

    /// Allows directory grants that expose the host: `/`, anything containing or inside
    /// `/proc`, `/sys` or `/dev`, and the compiled-module cache or its key; and any grant on a
    /// kernel without Landlock, where native code in the runner would not be held to it.
    ///
    /// # Caveats
    ///
    /// A guest granted `/` can read (or, writable, change) the host process through
    /// `/proc/<pid>/environ` and `/proc/<pid>/mem` of any process of this user, and one granted
    /// the cache can plant compiled code for later runs. Only for guests you trust.
    pub fn unsafe_allow_dangerous_dirs(mut self) -> Self {
        self.allow_dangerous_dirs = true;
        self
    }

    #[doc(hidden)]
    /// Test hook: the runner makes a forbidden syscall (`socket`) right after hardening.
    pub fn forbidden_syscall_after_hardening(self) -> Self {
        self.probe_after_hardening(Probe::Socket)
    }

    #[doc(hidden)]
    /// Test hook: once fully hardened, the runner makes this raw system call instead of running
    /// the guest, standing in for native code gone astray; see [`crate::probe`].
    pub fn probe_after_hardening(mut self, probe: Probe) -> Self {
        self.probes.push(probe);
        self
    }

    /// Starts the guest in a new runner process, handing it the configured stdio; the parent's
    /// copies of those ends are closed once the child has them.
    ///
    /// Fds given with [`stdin`](Self::stdin) / [`stdout`](Self::stdout) /
    /// [`stderr`](Self::stderr) are consumed, so spawning the same builder again gives the next
    /// guest `/dev/null` there unless new ends are set; inherited and captured streams stay so.
    ///
    /// # Errors
    ///
    /// - [`Error::Spawn`] outside a tokio runtime (checked before anything starts), or when the
    ///   runner process cannot be started;
    /// - [`Error::DirGrant`] for a directory grant that is missing or dangerous;
    /// - [`Error::InvalidModule`] when the module file cannot be read or exceeds
    ///   [`Limits::max_module_size`].
    pub fn spawn(&mut self) -> Result<SandboxChild> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::Spawn("Sandbox::spawn must be called from within a tokio runtime".into()));
        }
        crate::runner::ensure_hook_linked();
        let cache_dir = self.effective_cache_dir();
        let dirs = self.checked_grants(cache_dir.as_deref())?;
        let grant_fds = dirs
            .iter()
            .zip(&self.dirs)
            .map(|(checked, given)| crate::grants::open(&given.host, &checked.host))
            .collect::<Result<Vec<_>>>()?;
        let (parent_control, child_control) = UnixStream::pair().map_err(spawn_error)?;
        let stdin = match self.stdin.take() {
            GuestStdio::Fd(fd) => fd,
            GuestStdio::Inherit => io::stdin().as_fd().try_clone_to_owned().map_err(spawn_error)?,
            GuestStdio::Null | GuestStdio::Captured(_) => File::open("/dev/null").map_err(spawn_error)?.into(),
        };
        let stdout = self.stdout.take();
        let (stderr, capture) = match self.stderr.take() {
            GuestStdio::Captured(max) => {
                let (reader, writer) = pipe::pipe().map_err(spawn_error)?;
                (GuestStdio::Fd(writer.into()), Some((reader, max)))
            }
            other => (other, None),
        };
        let started = Instant::now();
        let config = || self.runner_config(dirs.clone());
        let (process, module, preloaded) = match &self.zygote {
            Some(zygote) => {
                let module = self.load_module(cache_dir.as_deref())?;
                let hint = module
                    .cache
                    .as_ref()
                    .map(|_| PreloadHint { digest: module.digest, fuel: self.limits.fuel_limit().is_some() });
                let stdio = [output_fd(stdout, io::stdout().as_fd())?, output_fd(stderr, io::stderr().as_fd())?];
                let [stdout, stderr] = stdio;
                // A copy only when the zygote does not hold the artifact yet.
                let artifact = || module.artifact.as_deref().map(Arc::from);
                let (process, preloaded) =
                    zygote.fork([child_control.into(), stdin, stdout, stderr], grant_fds, hint.as_ref(), artifact)?;
                if let Err(error) = send_config(&parent_control, &config()) {
                    return Err(kill_and_fail(process, error));
                }
                (process, module, preloaded)
            }
            None if self.prefer_fork && crate::runner::fork_is_safe() => {
                let stdio = [output_fd(stdout, io::stdout().as_fd())?, output_fd(stderr, io::stderr().as_fd())?];
                let [stdout, stderr] = stdio;
                let fds = [child_control.into(), stdin, stdout, stderr].into_iter().chain(grant_fds).collect();
                // The runner hardens itself with its config (which it takes with the fork) while
                // this process reads the module and looks it up in the cache. The entry's name
                // needs the compatibility hash of the runner's engine: the runner, a copy of this
                // process, sends the hash of the engine it made, so this process makes none.
                let fuel = self.limits.fuel_limit().is_some();
                let wants_hash = cache_dir.is_some() && !crate::cache::engine_hash_known(fuel);
                let config = RunnerConfig { send_engine_hash: wants_hash, ..config() };
                let process = ChildProcess::from_pid(crate::runner::fork_runner(fds, config).map_err(spawn_error)?);
                let read = match self.read_module() {
                    Ok(read) => read,
                    Err(error) => return Err(kill_and_fail(process, error)),
                };
                if !wants_hash {
                    (process, self.look_up(read, cache_dir.as_deref()), false)
                } else {
                    // While the runner makes its engine, look the module up under the hash an
                    // earlier forked runner reported (`Cache::engine_hint`); that lookup counts
                    // only if this runner reports the same hash.
                    let opened = self.open_cache(cache_dir.as_deref());
                    let hint = opened.0.as_ref().and_then(|cache| cache.engine_hint(fuel));
                    let guess = hint.map(|hint| (hint, self.look_up_in(read.clone(), opened.clone(), Some(hint))));
                    let hash = match receive_engine_hash(&parent_control) {
                        Ok(hash) => hash,
                        Err(error) => return Err(kill_and_fail(process, error)),
                    };
                    crate::cache::set_engine_hash(fuel, hash);
                    let module = match guess {
                        Some((hint, module)) if hint == hash => module,
                        _ => {
                            if let Some(cache) = &opened.0 {
                                cache.remember_engine(fuel, hash);
                            }
                            self.look_up_in(read, opened, None)
                        }
                    };
                    (process, module, false)
                }
            }
            None => {
                if cache_dir.is_some() {
                    crate::cache::prepare_engine_hash(self.limits.fuel_limit().is_some());
                }
                let process = self.exec_runner(child_control, stdout, stderr)?;
                // The runner's stdin was the control socket; the guest's stdin follows over it.
                // The granted directories, opened here, ride along.
                let fds: Vec<_> = std::iter::once(stdin.as_fd()).chain(grant_fds.iter().map(AsFd::as_fd)).collect();
                let sent = protocol::send_fds(&parent_control, &fds, &[]).map_err(spawn_error);
                // An exec'd runner starts from nothing: the CPU features this process detected
                // spare it detecting them again (a forked one has what this process has).
                let config = RunnerConfig { cpu_features: crate::runner::cpu::detected(), ..config() };
                if let Err(error) = sent.and_then(|()| send_config(&parent_control, &config)) {
                    return Err(kill_and_fail(process, error));
                }
                // Read (and look up in the cache) while the runner execs.
                match self.load_module(cache_dir.as_deref()) {
                    Ok(module) => (process, module, false),
                    Err(error) => return Err(kill_and_fail(process, error)),
                }
            }
        };
        if let Err(error) = send_module(&parent_control, &module, preloaded) {
            return Err(kill_and_fail(process, error));
        }
        let deadline = self.limits.timeout_limit().map(|limit| (started, limit));
        let sink = match (&module.cache, &module.artifact) {
            (Some(cache), None) => Some(ArtifactSink {
                cache: cache.clone(),
                name: module.entry_name(&self.limits),
                max_len: control::artifact_cap(module.bytes.len(), cache),
            }),
            _ => None,
        };
        let mut child = SandboxChild::new(process, parent_control, deadline, sink)?;
        child.set_cache_outcome(module.cache_outcome());
        child.capture_stderr(capture)?;
        Ok(child)
    }

    /// The grants, checked and made canonical.
    fn checked_grants(&self, cache_dir: Option<&Path>) -> Result<Vec<DirGrant>> {
        if self.dirs.is_empty() {
            return Ok(Vec::new());
        }
        if self.dirs.len() > protocol::MAX_GRANTS {
            return Err(Error::DirGrant {
                path: self.dirs[protocol::MAX_GRANTS].host.clone(),
                reason: format!("a sandbox takes at most {} directories", protocol::MAX_GRANTS),
            });
        }
        let protected = crate::grants::protected_paths(cache_dir);
        self.dirs
            .iter()
            .map(|grant| {
                let host = crate::grants::check(&grant.host, &protected, self.allow_dangerous_dirs)?;
                Ok(DirGrant { host, ..grant.clone() })
            })
            .collect()
    }

    /// The module's bytes and digest, and its compiled artifact when the cache has it.
    fn load_module(&self, cache_dir: Option<&Path>) -> Result<LoadedModule> {
        Ok(self.look_up(self.read_module()?, cache_dir))
    }

    /// The module's bytes (read from its file, or as given) and digest.
    fn read_module(&self) -> Result<(Arc<[u8]>, [u8; 32])> {
        let max = self.limits.max_module_size_limit();
        let too_large =
            |len: u64| Error::InvalidModule(format!("the module is {len} bytes, more than the limit of {max} bytes"));
        let (bytes, digest) = match &self.module {
            Module::Bytes { bytes, digest } => (bytes.clone(), *digest),
            Module::Path(path) => {
                let cannot_read = |e: io::Error| Error::InvalidModule(format!("cannot read {}: {e}", path.display()));
                let file = File::open(path).map_err(cannot_read)?;
                let len = file.metadata().map_err(cannot_read)?.len();
                if len > max {
                    return Err(too_large(len));
                }
                let mut bytes = Vec::with_capacity(len as usize);
                io::Read::read_to_end(&mut io::Read::take(file, max + 1), &mut bytes).map_err(cannot_read)?;
                let digest = crate::cache::module_digest(&bytes);
                (Arc::from(bytes), digest)
            }
        };
        if bytes.len() as u64 > max {
            return Err(too_large(bytes.len() as u64));
        }
        Ok((bytes, digest))
    }

    /// The module with its compiled artifact, when the cache in `cache_dir` has a verified one.
    fn look_up(&self, read: (Arc<[u8]>, [u8; 32]), cache_dir: Option<&Path>) -> LoadedModule {
        self.look_up_in(read, self.open_cache(cache_dir), None)
    }

    /// The cache in `cache_dir`, or why none is used.
    fn open_cache(&self, cache_dir: Option<&Path>) -> OpenedCache {
        match cache_dir {
            None => (None, Some("the cache is disabled".to_string())),
            Some(dir) => match Cache::shared(dir, self.cache_max_bytes) {
                Ok(cache) => (Some(cache), None),
                Err(e) => (None, Some(format!("the cache is not used: {e}"))),
            },
        }
    }

    /// [`look_up`](Self::look_up) in a cache already opened, under the entry name for the
    /// engine with compatibility hash `engine` if given, else for this configuration's.
    fn look_up_in(
        &self,
        (bytes, digest): (Arc<[u8]>, [u8; 32]),
        (cache, cache_problem): OpenedCache,
        engine: Option<u64>,
    ) -> LoadedModule {
        let kind = ModuleKind::of(&bytes);
        let mut module =
            LoadedModule { bytes, digest, kind, cache, cache_problem, artifact: None, artifact_file: None };
        let name = match engine {
            Some(engine) => EntryName::for_engine(digest, kind, engine),
            None => module.entry_name(&self.limits),
        };
        if let Some(cache) = &module.cache
            && let Some((artifact, file)) = cache.load_with_file(&name)
        {
            module.artifact = Some(artifact);
            module.artifact_file = file;
        }
        module
    }

    /// Starts a runner by exec'ing this binary (`posix_spawn`: no pre_exec hook, so std may use
    /// vfork, and nothing of ours runs between fork and exec). The control socket rides in as the
    /// runner's stdin; the guest's stdin is sent over it afterwards.
    fn exec_runner(&self, control: UnixStream, stdout: GuestStdio, stderr: GuestStdio) -> Result<ChildProcess> {
        let mut command = Command::new("/proc/self/exe");
        command.arg0(format!("wasmpipe-runner: {}", self.program_name));
        command.env_clear().env(RUNNER_MARKER, "1");
        command.stdin(Stdio::from(OwnedFd::from(control)));
        command.stdout(stdio_for_command(stdout));
        command.stderr(stdio_for_command(stderr));
        let child = command.spawn().map_err(spawn_error)?;
        // `command` (dropped on return) held our copies of the handed-over ends.
        Ok(ChildProcess::from_pid(child.id()))
    }

    /// Starts runners by cloning `zygote` instead of exec'ing this binary: faster than starting
    /// even a native child. See [`Zygote`].
    pub fn zygote(mut self, zygote: &Zygote) -> Self {
        self.zygote = Some(zygote.clone());
        self
    }

    /// Whether runners start from a zygote (see [`zygote`](Self::zygote)).
    pub(crate) fn has_zygote(&self) -> bool {
        self.zygote.is_some()
    }

    /// Starts the runner as a fork of this process rather than an exec of its binary, when that
    /// is safe; `spawn` execs as usual otherwise. A fork skips loading and linking this (large)
    /// binary a second time: about a millisecond per start, most of what a short-lived command
    /// pays to run a guest. `wasmpipe run` uses it.
    ///
    /// It is safe, and used, when:
    /// - this process has a single thread (a current-thread tokio runtime with no blocking-pool
    ///   threads, for one): a fork copies only the calling thread, and a lock another thread
    ///   held would never be released in the copy;
    /// - no compiled-module cache key has been read into this process yet, which is true until
    ///   its first `spawn` that uses the cache: the runner must never hold the key.
    ///
    /// # Caveats
    ///
    /// - The runner starts as a copy of this process's memory. It wipes its copy of the
    ///   environment before anything else, but whatever else this process holds (a secret it
    ///   read, say) is readable by native code that escapes wasmtime inside the runner. Use it
    ///   in short-lived, single-purpose processes such as a command-line tool, not in a
    ///   long-lived host with secrets in memory.
    /// - The runner shares this process's address-space layout (as runners forked by a
    ///   [`Zygote`] share the zygote's), and keeps its signal handlers.
    pub fn prefer_fork(mut self) -> Self {
        self.prefer_fork = true;
        self
    }

    /// Compiles the module into the compiled-module cache without running it, so the next
    /// [`spawn`](Self::spawn) starts in milliseconds. Compilation happens in a runner process
    /// under this sandbox's limits, like every handling of untrusted bytes.
    ///
    /// Says what the cache did: [`CacheOutcome::Stored`], [`CacheOutcome::AlreadyCached`], or
    /// [`CacheOutcome::NotStored`] with the reason (the cache is disabled or untrusted, the
    /// artifact is over the cap, a write failed).
    ///
    /// # Errors
    ///
    /// Those of [`spawn`](Self::spawn) and [`SandboxChild::wait`]: notably
    /// [`Error::InvalidModule`] if the module does not compile, [`Error::CompileTimeout`] past
    /// [`Limits::compile_timeout`], and [`Error::OutOfMemory`] for a compilation that needs
    /// more memory than the limits allow.
    pub async fn compile(&mut self) -> Result<CacheOutcome> {
        self.compile_only = true;
        let spawned = self.spawn();
        self.compile_only = false;
        let mut child = spawned?;
        child.wait().await?;
        Ok(child
            .cache_outcome()
            .cloned()
            .unwrap_or_else(|| CacheOutcome::NotStored("the runner sent no compiled module".into())))
    }

    /// Starts the guest with fresh pipes as its stdin and stdout and returns the parent's ends:
    /// `(child, writer to the guest's stdin, reader of the guest's stdout)`.
    ///
    /// # Errors
    ///
    /// Those of [`spawn`](Self::spawn), and of creating and opening the pipes.
    pub fn spawn_piped(&mut self) -> Result<(SandboxChild, AsyncWriter, AsyncReader)> {
        let (parent_end, child_end) = pipe::duplex()?;
        let (stdin, stdout) = child_end.into_parts();
        self.stdin = GuestStdio::Fd(stdin.into());
        self.stdout = GuestStdio::Fd(stdout.into());
        let child = self.spawn()?;
        let (reader, writer) = parent_end.open()?;
        Ok((child, writer, reader))
    }

    /// The compiled-module cache directory runners use, if any.
    fn effective_cache_dir(&self) -> Option<PathBuf> {
        match &self.cache {
            CacheChoice::Default => crate::cache::default_cache_dir(),
            CacheChoice::Dir(dir) => Some(dir.clone()),
            CacheChoice::Disabled => None,
        }
    }

    /// What the runner is told before it gets its module.
    fn runner_config(&self, dirs: Vec<DirGrant>) -> RunnerConfig {
        RunnerConfig {
            send_engine_hash: false,
            argv: std::iter::once(self.program_name.clone()).chain(self.args.iter().cloned()).collect(),
            env: self.env.clone(),
            dirs,
            limits: self.limits,
            compile_only: self.compile_only,
            allow_unconfined_dirs: self.allow_dangerous_dirs,
            probes: self.probes.clone(),
            cpu_features: None,
        }
    }
}

/// Sends the runner its config on the still-blocking control socket.
fn send_config(mut control: &UnixStream, config: &RunnerConfig) -> Result<()> {
    let sent = protocol::write_message(&mut control, config);
    // A runner that died before reading its config says why in its exit status; wait() tells.
    sent.or_else(|e| if e.kind() == io::ErrorKind::BrokenPipe { Ok(()) } else { Err(spawn_error(e)) })
}

/// Sends the module's header and the module (or its verified artifact) on the still-blocking
/// control socket; the runner reads it concurrently, so this returns as soon as the last byte is
/// in flight.
fn send_module(mut control: &UnixStream, module: &LoadedModule, preloaded: bool) -> Result<()> {
    // An artifact goes to the runner as a file it maps, rather than through the socket, which
    // costs a copy on each side: the cache entry it was just verified from, else a sealed memfd
    // of the bytes (kept in memory from an earlier load). If no memfd can be made, the bytes go
    // through the socket.
    let memfd = match (&module.artifact, &module.artifact_file) {
        (Some(artifact), None) if !preloaded => crate::cache::sealed_memfd(artifact).ok(),
        _ => None,
    };
    let mapped = match (&module.artifact_file, &memfd) {
        (Some(entry), _) => Some((entry.file.as_fd(), entry.offset)),
        (None, Some(memfd)) => Some((memfd.as_fd(), 0)),
        (None, None) => None,
    };
    let (source, payload): (ModuleSource, &[u8]) = match (&module.artifact, mapped) {
        _ if preloaded => (ModuleSource::Preloaded { digest: module.digest }, &[]),
        (Some(artifact), Some((_, offset))) => (ModuleSource::Mapped { len: artifact.len() as u64, offset }, &[]),
        (Some(artifact), None) => (ModuleSource::Compiled { len: artifact.len() as u64 }, artifact),
        (None, _) => (ModuleSource::Wasm { len: module.bytes.len() as u64 }, &module.bytes),
    };
    let return_artifact = match (&module.cache, &module.artifact) {
        (Some(cache), None) => Some(ReturnArtifact { max_len: control::artifact_cap(module.bytes.len(), cache) }),
        _ => None,
    };
    let header = ModuleHeader { source, kind: module.kind, return_artifact };
    // Room for the whole payload in the socket, so this returns at once instead of waiting
    // for the runner to exec and read (best effort: the kernel caps it at `wmem_max`).
    if payload.len() > SMALL_PAYLOAD {
        let _ = rustix::net::sockopt::set_socket_send_buffer_size(control, payload.len() + SMALL_PAYLOAD);
    }
    let sent = protocol::write_message(&mut control, &header).and_then(|()| match mapped {
        Some((file, _)) if !preloaded => protocol::send_fds(control, &[file], &[]),
        _ => control.write_all(payload),
    });
    // A runner that died before reading its module says why in its exit status; wait() tells.
    sent.or_else(|e| if e.kind() == io::ErrorKind::BrokenPipe { Ok(()) } else { Err(spawn_error(e)) })
}

/// How long a forked runner may take to send its engine's hash: it makes one engine (a fraction
/// of a millisecond), so only a runner that is stuck takes this long.
const ENGINE_HASH_WAIT: Duration = Duration::from_secs(10);

/// Reads the engine hash a forked runner was asked for ([`RunnerConfig::send_engine_hash`]).
fn receive_engine_hash(control: &UnixStream) -> Result<u64> {
    let mut frame = [0u8; protocol::FRAME_HEADER_LEN + 8];
    let read = control
        .set_read_timeout(Some(ENGINE_HASH_WAIT))
        .and_then(|()| io::Read::read_exact(&mut &*control, &mut frame))
        .and_then(|()| control.set_read_timeout(None));
    match read {
        Ok(()) if frame[..protocol::FRAME_HEADER_LEN] == protocol::frame_header(protocol::FRAME_ENGINE_HASH, 8) => {
            Ok(u64::from_le_bytes(frame[protocol::FRAME_HEADER_LEN..].try_into().expect("eight bytes")))
        }
        Ok(()) => Err(Error::Spawn("the runner sent something other than its engine's hash".into())),
        Err(e) => Err(Error::Spawn(format!("the runner did not start: {e}"))),
    }
}

/// The cache a spawn goes through, or why it goes through none.
type OpenedCache = (Option<Arc<Cache>>, Option<String>);

/// A module ready to send: its bytes, digest, the cache it goes through, and its compiled
/// artifact when the cache had it.
struct LoadedModule {
    bytes: Arc<[u8]>,
    digest: [u8; 32],
    /// A core module or a component, from the bytes' header.
    kind: ModuleKind,
    cache: Option<Arc<Cache>>,
    cache_problem: Option<String>,
    artifact: Option<bytes::Bytes>,
    /// A file holding the artifact for the runner to map (see `Cache::load_with_file`).
    artifact_file: Option<crate::cache::ArtifactFile>,
}

impl LoadedModule {
    fn entry_name(&self, limits: &Limits) -> EntryName {
        EntryName::new(self.digest, self.kind, limits.fuel_limit().is_some())
    }

    /// What the cache did for this spawn, as far as is known before the runner reports.
    fn cache_outcome(&self) -> Option<CacheOutcome> {
        match (&self.cache, &self.artifact, &self.cache_problem) {
            (Some(cache), Some(_), _) => Some(CacheOutcome::AlreadyCached(cache.path().to_path_buf())),
            (None, _, Some(problem)) => Some(CacheOutcome::NotStored(problem.clone())),
            _ => None,
        }
    }
}

impl GuestStdio {
    /// This stream for one spawn: a given fd is used up (leaving `/dev/null`), settings stay.
    fn take(&mut self) -> GuestStdio {
        match self {
            GuestStdio::Fd(_) => std::mem::replace(self, GuestStdio::Null),
            GuestStdio::Null => GuestStdio::Null,
            GuestStdio::Inherit => GuestStdio::Inherit,
            GuestStdio::Captured(max) => GuestStdio::Captured(*max),
        }
    }
}

/// A runner that could not be set up: killed and reaped, and the error passed on.
pub(crate) fn kill_and_fail(mut process: ChildProcess, error: Error) -> Error {
    let _ = process.kill();
    let _ = process.wait();
    error
}

/// An output stream as an fd to pass to a zygote: `inherited` is the parent's own stream.
fn output_fd(stdio: GuestStdio, inherited: std::os::fd::BorrowedFd<'_>) -> Result<OwnedFd> {
    match stdio {
        GuestStdio::Fd(fd) => Ok(fd),
        GuestStdio::Inherit => inherited.try_clone_to_owned().map_err(spawn_error),
        GuestStdio::Null | GuestStdio::Captured(_) => {
            Ok(std::fs::OpenOptions::new().write(true).open("/dev/null").map_err(spawn_error)?.into())
        }
    }
}

fn stdio_for_command(stdio: GuestStdio) -> Stdio {
    match stdio {
        GuestStdio::Fd(fd) => Stdio::from(fd),
        GuestStdio::Inherit => Stdio::inherit(),
        GuestStdio::Null | GuestStdio::Captured(_) => Stdio::null(),
    }
}

fn spawn_error(error: io::Error) -> Error {
    Error::SpawnIo { context: error.to_string(), source: error }
}
