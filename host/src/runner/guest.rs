//! Loading, linking and running the guest inside the runner.

use super::Received;
use super::component;
use super::stdio::{self, FastStdio, HasFastStdio};
use crate::protocol::{DirGrant, ModuleKind, ReturnArtifact, RunnerConfig, Verdict};
use std::fs::File;
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use wasmtime::component::Component;
use wasmtime::{Config, Engine, Linker, Module, ResourceLimiter, Store, Trap, WasmBacktrace};
use wasmtime_wasi::cli::{InputFile, OutputFile};
use wasmtime_wasi::p1::{self, WasiP1Ctx};
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtx, WasiCtxBuilder};

/// The wasmtime engine every runner uses; see [`engine_config`].
pub(crate) fn engine_for(fuel: bool) -> Result<Engine, String> {
    engine_with(fuel, None)
}

/// [`engine_for`], compiling for exactly the CPU features the parent detected (`cpu`, see
/// [`cpu`](super::cpu)) rather than detecting them again, when given.
pub(crate) fn engine_with(fuel: bool, cpu: Option<&[String]>) -> Result<Engine, String> {
    let mut config = engine_config(fuel);
    if let Some(features) = cpu {
        // SAFETY: the parent detected them on this machine (`cpu::detected`).
        unsafe { super::cpu::configure(&mut config, features) }?;
    }
    Engine::new(&config).map_err(|e| format!("cannot create the wasm engine: {e:#}"))
}

/// The wasmtime configuration every runner uses. It must be a pure function of the limits, since
/// the compiled-module cache is keyed by it (through `precompile_compatibility_hash`).
pub(crate) fn engine_config(fuel: bool) -> Config {
    let mut config = Config::new();
    // Epoch interruption (a load and compare at loop headers and function entries) is how a
    // computing guest is stopped at its timeout; always on, so one cached artifact serves runs
    // with and without a timeout.
    config.epoch_interruption(true);
    // Fuel costs more than epochs, so it is compiled in only when a budget is asked for.
    config.consume_fuel(fuel);
    // One instance per process: the on-demand allocator maps exactly what this guest uses,
    // whereas the pooling allocator would reserve slots for instances that never come.
    config.allocation_strategy(wasmtime::InstanceAllocationStrategy::OnDemand);
    // Copy-on-write memory images live in a memfd that would stay open for the whole run; with
    // one instantiation per process there is nothing to share, and the runner must hold no fd
    // beyond 0-3.
    config.memory_init_cow(false);
    // Native unwind info only serves third-party unwinders walking through wasm frames (wasmtime
    // captures wasm backtraces without it); registering it frame by frame was a measurable share
    // of loading a cached module at every start.
    config.native_unwind_info(false);
    // Compiled code made executable by the runner's own hook, which can also publish a mapped
    // cache entry in place (see `in_place`); not part of the cache key.
    #[cfg(target_arch = "x86_64")]
    config.with_custom_code_memory(Some(std::sync::Arc::new(super::in_place::InPlace::new())));
    enable_proposals(&mut config);
    config
}

/// The WebAssembly proposals of `wasmtime run` 48 for core modules: real toolchains emit them
/// (exception handling in C++ and Rust builds, GC in Kotlin/Dart/OCaml builds, tail calls in
/// functional languages), and a guest that `wasmtime run` accepts must run here too.
///
/// wasmtime 48 turns all of these on by default when the crate is built with `gc` and
/// `threads` (see the workspace's Cargo.toml); saying so here keeps a change of wasmtime's
/// defaults from silently refusing guests, and the cache entry name follows the set through
/// `precompile_compatibility_hash`, which hashes the enabled features and the collector.
fn enable_proposals(config: &mut Config) {
    config
        .wasm_multi_value(true)
        .wasm_bulk_memory(true)
        .wasm_reference_types(true)
        .wasm_simd(true)
        .wasm_relaxed_simd(true)
        .wasm_multi_memory(true)
        .wasm_memory64(true)
        .wasm_extended_const(true)
        .wasm_tail_call(true)
        .wasm_function_references(true)
        .wasm_gc(true)
        .wasm_exceptions(true)
        // Atomic instructions validate and run on ordinary memories. Shared memories stay
        // refused at instantiation (`shared_memory` is off, wasmtime's default as in `wasmtime
        // run` without `-S threads`): preview1 cannot start a thread to share one with, and
        // wasmtime's memory limiter does not see a shared memory's growth.
        .wasm_threads(true)
        .shared_memory(false)
        // WASI 0.2 command components (`wasm32-wasip2`); wasmtime's default once the crate has
        // `component-model`, said here for the same reason as the rest.
        .wasm_component_model(true);
    // The deferred reference-counting collector, chosen by name: `Collector::Auto` would move to
    // whatever wasmtime prefers next, changing every cache entry name with it. GC objects live in
    // a GC heap whose growth goes through the store's `ResourceLimiter`, so `--memory` counts
    // them with the linear memories and tables.
    config.collector(wasmtime::Collector::DeferredReferenceCounting);
}

/// A core module or a component, compiled or deserialized, not yet linked.
pub(crate) enum Loaded {
    Core(Module),
    Component(Component),
}

/// The guest's WASI context, of the flavour its kind links against.
pub(crate) enum GuestWasi {
    /// Preview1, for core modules.
    P1(WasiP1Ctx),
    /// WASI 0.2, for components.
    P2(WasiCtx),
}

/// A guest compiled and linked against WASI, not yet instantiated.
pub(crate) enum Prepared {
    Core(CorePrepared),
    Component(component::Prepared),
}

/// An instantiated guest about to run.
pub(crate) enum Ready {
    Core(CoreReady),
    Component(component::Ready),
}

impl Prepared {
    /// Instantiates the guest; one that cannot be is invalid.
    pub(crate) fn instantiate(self) -> Result<Ready, Verdict> {
        match self {
            Prepared::Core(prepared) => prepared.instantiate().map(Ready::Core),
            Prepared::Component(prepared) => prepared.instantiate().map(Ready::Component),
        }
    }
}

impl Ready {
    /// Runs the guest (`_start`, or `wasi:cli/run`) and says how it ended.
    pub(crate) fn run(self, fuel: Option<u64>) -> Verdict {
        match self {
            Ready::Core(ready) => ready.run(fuel),
            Ready::Component(ready) => ready.run(fuel),
        }
    }
}

/// A core module compiled and linked against WASI, not yet instantiated.
pub(crate) struct CorePrepared {
    module: Module,
    store: Store<GuestState>,
    linker: Linker<GuestState>,
    timeout: Option<Duration>,
}

/// Per-store state: the WASI context and the limiter that remembers a denied growth.
pub(crate) struct GuestState {
    wasi: WasiP1Ctx,
    limiter: GuestLimiter,
    stdio: FastStdio,
}

impl HasFastStdio for GuestState {
    fn fast_stdio(&mut self) -> &mut FastStdio {
        &mut self.stdio
    }

    fn wasi(&mut self) -> &mut WasiP1Ctx {
        &mut self.wasi
    }
}

/// Caps the guest's memories and tables *together* at the configured limit, and records
/// whether it ever had to say no, which is how a trap after a failed `memory.grow` is told apart
/// from any other trap.
pub(crate) struct GuestLimiter {
    limit: usize,
    /// Bytes of all memories and tables as granted so far.
    used: usize,
    denied: bool,
}

/// What one table element costs: wasmtime stores a pointer-sized reference per element.
const TABLE_ELEMENT_BYTES: usize = size_of::<usize>();

/// The most the guest's memories and tables held at once, in bytes, for the usage report.
pub(crate) static PEAK_MEMORY: AtomicU64 = AtomicU64::new(0);

/// Fuel the guest burned, once `_start` returned or trapped; `u64::MAX` when unknown.
pub(crate) static FUEL_CONSUMED: AtomicU64 = AtomicU64::new(u64::MAX);

impl GuestLimiter {
    /// A limiter that allows `limit` bytes in all.
    pub(crate) fn new(limit: u64) -> Self {
        GuestLimiter { limit: usize::try_from(limit).unwrap_or(usize::MAX), used: 0, denied: false }
    }

    fn grow(&mut self, current: usize, desired: usize) -> bool {
        let used = self.used.saturating_sub(current).saturating_add(desired);
        let allowed = used <= self.limit;
        if allowed {
            self.used = used;
            PEAK_MEMORY.fetch_max(used as u64, Ordering::Relaxed);
        }
        self.denied |= !allowed;
        allowed
    }
}

impl ResourceLimiter for GuestLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(self.grow(current, desired))
    }

    fn table_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(self.grow(current.saturating_mul(TABLE_ELEMENT_BYTES), desired.saturating_mul(TABLE_ELEMENT_BYTES)))
    }
}

/// Starts the parallel compiler's threads now, before the seccomp filter forbids new threads.
///
/// wasmtime compiles on rayon's global pool, whose threads start asynchronously; a broadcast
/// returns only once each thread ran it, so none is still making its setup syscalls later.
pub(crate) fn start_compiler_threads() {
    rayon::broadcast(|_| ());
}

/// Parses and compiles the module or component, or loads its compiled artifact; under the
/// seccomp filter. `kind` is what the bytes are (see `ModuleKind`); `return_artifact` says
/// whether to send a fresh artifact back. `Err` is the verdict to report.
pub(crate) fn load(
    engine: &Engine,
    config: &RunnerConfig,
    return_artifact: Option<ReturnArtifact>,
    kind: ModuleKind,
    received: Received,
) -> Result<Loaded, Verdict> {
    match kind {
        ModuleKind::Core => load_core(engine, config, return_artifact, received).map(Loaded::Core),
        ModuleKind::Component => component::load(engine, config, return_artifact, received).map(Loaded::Component),
    }
}

/// [`load`] for a core module.
fn load_core(
    engine: &Engine,
    config: &RunnerConfig,
    return_artifact: Option<ReturnArtifact>,
    received: Received,
) -> Result<Module, Verdict> {
    match received {
        Received::Wasm(bytes) => {
            check_function_count(&bytes, config.limits.max_functions_limit())?;
            let Some(ReturnArtifact { max_len }) = return_artifact else {
                return Module::new(engine, &bytes).map_err(|e| invalid(&e));
            };
            let compiled = engine.precompile_module(&bytes).map_err(|e| invalid(&e))?;
            drop(bytes);
            if compiled.len() as u64 <= max_len {
                super::send_artifact(&compiled);
            }
            // SAFETY: `compiled` was produced just now by `precompile_module` on this engine.
            unsafe { Module::deserialize(engine, &compiled) }
                .map_err(|e| Verdict::Failed { message: format!("cannot load the compiled module: {e:#}") })
        }
        // SAFETY: the parent verified the artifact's MAC: it is exactly what a runner of this
        // user's, with this engine configuration (part of the entry's name), compiled.
        Received::Artifact(artifact) => {
            // SAFETY: `in_place::load` calls it with the verified artifact alone (see above).
            let copy = |engine: &Engine, bytes: &[u8]| unsafe { Module::deserialize(engine, bytes) };
            unsafe { super::in_place::load(engine, artifact, copy, Module::deserialize_raw) }
                .map_err(|e| Verdict::Failed { message: format!("cannot load the cached module: {e:#}") })
        }
    }
}

pub(crate) fn invalid(error: &wasmtime::Error) -> Verdict {
    Verdict::InvalidModule { message: format!("not a valid WebAssembly module: {error:#}") }
}

/// Refuses a module that defines more functions than `limit`, before compiling any: a million
/// trivial functions are a few megabytes of module and minutes of compilation.
pub(crate) fn check_function_count(bytes: &[u8], limit: u64) -> Result<(), Verdict> {
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        // A malformed module is reported by the compiler, with its own message.
        let Ok(payload) = payload else { return Ok(()) };
        if let wasmparser::Payload::FunctionSection(functions) = payload {
            let count = u64::from(functions.count());
            if count > limit {
                return Err(Verdict::InvalidModule {
                    message: format!("the module defines {count} functions, more than the limit of {limit}"),
                });
            }
            return Ok(());
        }
    }
    Ok(())
}

/// Links the guest against WASI and sets up its store. `Err` is the verdict to report.
pub(crate) fn prepare(
    engine: Engine,
    loaded: Loaded,
    config: &RunnerConfig,
    wasi: GuestWasi,
) -> Result<Prepared, Verdict> {
    match (loaded, wasi) {
        (Loaded::Core(module), GuestWasi::P1(wasi)) => prepare_core(engine, module, config, wasi).map(Prepared::Core),
        (Loaded::Component(component), GuestWasi::P2(wasi)) => {
            component::prepare(engine, component, config, wasi).map(Prepared::Component)
        }
        _ => Err(Verdict::Failed { message: "the WASI context does not match the guest's kind".into() }),
    }
}

/// [`prepare`] for a core module.
fn prepare_core(
    engine: Engine,
    module: Module,
    config: &RunnerConfig,
    wasi: WasiP1Ctx,
) -> Result<CorePrepared, Verdict> {
    let failed = |message| Verdict::Failed { message };
    let mut linker = Linker::new(&engine);
    p1::add_to_linker_sync(&mut linker, |state: &mut GuestState| &mut state.wasi)
        .map_err(|e| failed(format!("cannot link WASI: {e:#}")))?;
    let limiter = GuestLimiter::new(config.limits.memory_limit());
    let mut store = Store::new(&engine, GuestState { wasi, limiter, stdio: FastStdio::default() });
    store.limiter(|state| &mut state.limiter);
    // wasmtime-wasi turns `proc_exit` codes of 126 and above into an error (they collide with
    // shell conventions); a wasmpipe guest's exit code is reported as it is, whatever it is.
    linker.allow_shadowing(true);
    linker
        .func_wrap("wasi_snapshot_preview1", "proc_exit", |code: i32| -> wasmtime::Result<()> {
            Err(I32Exit(code).into())
        })
        .map_err(|e| failed(format!("cannot link proc_exit: {e:#}")))?;
    linker.allow_shadowing(false);
    // The fast path for fd_read and fd_write only without grants (see `stdio`); fd_close and
    // fd_renumber always, so closing stdout is EOF for the parent with or without.
    stdio::install(&mut linker, config.dirs.is_empty())
        .map_err(|e| failed(format!("cannot link the stdio paths: {e:#}")))?;
    // The watchdog bumps the epoch once, at the deadline; one tick is the whole budget.
    store.set_epoch_deadline(1);
    store.epoch_deadline_trap();
    if let Some(fuel) = config.limits.fuel_limit() {
        store.set_fuel(fuel).map_err(|e| failed(format!("cannot set fuel: {e:#}")))?;
    }
    Ok(CorePrepared { module, store, linker, timeout: config.limits.timeout_limit() })
}

/// The guest's WASI view of the world: fds 0/1/2, its args, the env and dirs it was granted,
/// and nothing else; preview1 for a core module, WASI 0.2 for a component, built from the same
/// settings (the streams on fds 0–2 serve both).
///
/// Built in two steps, [`wasi_builder`] then [`build_wasi`], because the flavour is known only
/// once the module's header arrives, and most of the work can be done before.
pub(crate) fn wasi_builder(
    config: &RunnerConfig,
    grant_fds: &[std::os::fd::BorrowedFd<'_>],
) -> Result<WasiCtxBuilder, String> {
    let mut builder = WasiCtxBuilder::new();
    // SAFETY: fds 0, 1 and 2 were set up by the parent for exactly this purpose and stay open for
    // the life of the process; nothing else in the runner reads or writes them.
    let (stdin, stdout, stderr) = unsafe { (File::from_raw_fd(0), File::from_raw_fd(1), File::from_raw_fd(2)) };
    // Direct blocking reads and writes on the fds: no worker thread, no async adapter, no extra
    // buffering between the guest and the pipe.
    builder.stdin(InputFile::new(stdin)).stdout(OutputFile::new(stdout)).stderr(OutputFile::new(stderr));
    builder.args(&config.argv);
    builder.envs(&config.env);
    // No network: preview1 cannot create sockets, but WASI 0.2 can ask to. Refused here (these
    // are wasmtime-wasi's defaults, stated so they cannot change under us), the guest gets
    // `access-denied` instead of the seccomp filter killing the runner at `socket`.
    builder.allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false);
    // File operations run on this thread instead of tokio's blocking pool: cheaper, and the
    // seccomp filter does not allow creating threads once the guest runs.
    builder.allow_blocking_current_thread(true);
    // wasmtime-wasi opens preopens by path; `/proc/self/fd/N` makes that path the very directory
    // the parent checked and opened (a swapped symlink on the way cannot redirect it).
    let by_fd = std::path::Path::new("/proc/self/fd").is_dir();
    for (index, DirGrant { host, guest, writable }) in config.dirs.iter().enumerate() {
        let perms = if *writable { FsPerms::ReadWrite } else { FsPerms::ReadOnly };
        let path = match grant_fds.get(index) {
            Some(fd) if by_fd => {
                std::path::PathBuf::from(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(fd)))
            }
            _ => host.clone(),
        };
        builder
            .preopened_dir(&path, guest, perms)
            .map_err(|e| format!("cannot open directory {} for the guest: {e:#}", host.display()))?;
    }
    Ok(builder)
}

/// The guest's WASI context from [`wasi_builder`]'s builder, of the flavour its kind links
/// against.
pub(crate) fn build_wasi(mut builder: WasiCtxBuilder, kind: ModuleKind) -> GuestWasi {
    match kind {
        ModuleKind::Core => GuestWasi::P1(builder.build_p1()),
        ModuleKind::Component => GuestWasi::P2(builder.build()),
    }
}

impl CorePrepared {
    /// Instantiates the module and finds `_start`; a module that cannot be is invalid.
    pub(crate) fn instantiate(mut self) -> Result<CoreReady, Verdict> {
        let instance = match self.linker.instantiate(&mut self.store, &self.module) {
            Ok(instance) => instance,
            Err(error) => return Err(classify(&self.store.data().limiter, error, Phase::Instantiate, self.timeout)),
        };
        let memory = instance.get_memory(&mut self.store, "memory");
        stdio::activate(&mut self.store, memory);
        let start =
            instance.get_typed_func::<(), ()>(&mut self.store, "_start").map_err(|_| Verdict::InvalidModule {
                message: "the module has no `_start` function (is it a WASI command module?)".into(),
            })?;
        Ok(CoreReady { store: self.store, start, timeout: self.timeout })
    }
}

/// An instantiated core module about to run.
pub(crate) struct CoreReady {
    store: Store<GuestState>,
    start: wasmtime::TypedFunc<(), ()>,
    timeout: Option<Duration>,
}

impl CoreReady {
    /// Runs `_start` and says how it ended.
    ///
    /// The store is deliberately never dropped: through wasmtime-wasi it owns `File`s for fds
    /// 0–2, which the guest may already have closed through `stdio`'s `fd_close` (closing twice aborts
    /// under Rust's I/O-safety checks), and the runner `_exit`s right after the verdict anyway.
    pub(crate) fn run(self, fuel: Option<u64>) -> Verdict {
        let CoreReady { store, start, timeout } = Box::leak(Box::new(self));
        let ended = start.call(&mut *store, ());
        if let (Some(budget), Ok(left)) = (fuel, store.get_fuel()) {
            FUEL_CONSUMED.store(budget.saturating_sub(left), Ordering::Relaxed);
        }
        match ended {
            Ok(()) => Verdict::Exited { code: 0 },
            Err(error) => classify(&store.data().limiter, error, Phase::Run, *timeout),
        }
    }
}

/// When an error happened: one while instantiating that is no trap means an invalid guest.
#[derive(PartialEq)]
pub(crate) enum Phase {
    Instantiate,
    Run,
}

/// The verdict for an error out of instantiating or running the guest, either kind.
pub(crate) fn classify(
    limiter: &GuestLimiter,
    error: wasmtime::Error,
    phase: Phase,
    timeout: Option<Duration>,
) -> Verdict {
    if let Some(exit) = error.downcast_ref::<I32Exit>() {
        return Verdict::Exited { code: exit.0 };
    }
    if limiter.denied {
        return Verdict::MemoryLimit { limit: limiter.limit as u64 };
    }
    let wasm_backtrace = error.downcast_ref::<WasmBacktrace>().map(|bt| bt.to_string());
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => Verdict::FuelExhausted,
        // Only the watchdog bumps the epoch, and only at the deadline.
        Some(Trap::Interrupt) => Verdict::Timeout { limit: timeout.unwrap_or_default() },
        Some(trap) => Verdict::Trap { message: trap.to_string(), wasm_backtrace },
        None if phase == Phase::Instantiate => Verdict::InvalidModule { message: format!("{error:#}") },
        // The cause alone, on one line: the backtrace lives in `wasm_backtrace`.
        None => Verdict::Trap { message: error.root_cause().to_string(), wasm_backtrace },
    }
}
