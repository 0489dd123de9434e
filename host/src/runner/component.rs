//! WASI 0.2 command components (`wasm32-wasip2`): loading, linking and running them.
//!
//! A separate branch from core modules (`guest`), so the preview1 path keeps its fast stdio and
//! its speed. What is shared is everything that makes a run safe and comparable: the engine (so
//! epoch interruption and fuel are compiled in the same way), the hardening around it, the
//! memory limiter, the streams on fds 0–2, args, env and granted directories (one
//! `WasiCtxBuilder`, see `guest::wasi_builder`), and the verdicts (`guest::classify`).

use super::Received;
use super::guest::{self, GuestLimiter, Phase};
use crate::protocol::{ReturnArtifact, RunnerConfig, Verdict};
use std::sync::atomic::Ordering;
use std::time::Duration;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::p2::bindings::sync::Command;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Parses and compiles the component, or loads its compiled artifact; under the seccomp filter.
/// `Err` is the verdict to report.
pub(crate) fn load(
    engine: &Engine,
    config: &RunnerConfig,
    return_artifact: Option<ReturnArtifact>,
    received: Received,
) -> Result<Component, Verdict> {
    match received {
        Received::Wasm(bytes) => {
            check_function_count(&bytes, config.limits.max_functions_limit())?;
            let Some(ReturnArtifact { max_len }) = return_artifact else {
                return Component::new(engine, &bytes).map_err(|e| guest::invalid(&e));
            };
            let compiled = engine.precompile_component(&bytes).map_err(|e| guest::invalid(&e))?;
            drop(bytes);
            if compiled.len() as u64 <= max_len {
                super::send_artifact(&compiled);
            }
            // SAFETY: `compiled` was produced just now by `precompile_component` on this engine.
            unsafe { Component::deserialize(engine, &compiled) }
                .map_err(|e| Verdict::Failed { message: format!("cannot load the compiled component: {e:#}") })
        }
        // SAFETY: the parent verified the artifact's MAC over an entry name that includes the
        // kind: it is exactly what a runner of this user's compiled from this component. (And
        // wasmtime itself refuses a core module's artifact here.)
        Received::Artifact(artifact) => {
            // SAFETY: `in_place::load` calls it with the verified artifact alone (see above).
            let copy = |engine: &Engine, bytes: &[u8]| unsafe { Component::deserialize(engine, bytes) };
            unsafe { super::in_place::load(engine, artifact, copy, Component::deserialize_raw) }
                .map_err(|e| Verdict::Failed { message: format!("cannot load the cached component: {e:#}") })
        }
    }
}

/// The function limit for a component counts the functions of every core module inside it
/// (`parse_all` walks nested modules too): the compile cost is theirs.
fn check_function_count(bytes: &[u8], limit: u64) -> Result<(), Verdict> {
    let mut count = 0u64;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        // A malformed component is reported by the compiler, with its own message.
        let Ok(payload) = payload else { return Ok(()) };
        if let wasmparser::Payload::FunctionSection(functions) = payload {
            count += u64::from(functions.count());
            if count > limit {
                return Err(Verdict::InvalidModule {
                    message: format!("the component defines {count} functions or more, more than the limit of {limit}"),
                });
            }
        }
    }
    Ok(())
}

/// Per-store state of a component: the WASI 0.2 context, its resources, and the same limiter as
/// a core module's.
pub(crate) struct ComponentState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: GuestLimiter,
}

impl WasiView for ComponentState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// A component compiled and linked against WASI 0.2, not yet instantiated.
pub(crate) struct Prepared {
    component: Component,
    store: Store<ComponentState>,
    linker: Linker<ComponentState>,
    timeout: Option<Duration>,
}

/// Links the component against WASI 0.2 (synchronous bindings: the guest runs on this thread,
/// as a core module does) and sets up its store with the limits of a core module's.
pub(crate) fn prepare(
    engine: Engine,
    component: Component,
    config: &RunnerConfig,
    wasi: WasiCtx,
) -> Result<Prepared, Verdict> {
    let failed = |message| Verdict::Failed { message };
    let mut linker = Linker::new(&engine);
    // This links `exit-with-code` (WASI 0.2.12) too: a component that calls it exits with its
    // code (0–255), as a core module's `proc_exit` does; `exit` itself says only ok (0) or err (1).
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| failed(format!("cannot link WASI 0.2: {e:#}")))?;
    let state =
        ComponentState { wasi, table: ResourceTable::new(), limiter: GuestLimiter::new(config.limits.memory_limit()) };
    let mut store = Store::new(&engine, state);
    store.limiter(|state| &mut state.limiter);
    // As for a core module: the watchman bumps the epoch once, at the deadline.
    store.set_epoch_deadline(1);
    store.epoch_deadline_trap();
    if let Some(fuel) = config.limits.fuel_limit() {
        store.set_fuel(fuel).map_err(|e| failed(format!("cannot set fuel: {e:#}")))?;
    }
    Ok(Prepared { component, store, linker, timeout: config.limits.timeout_limit() })
}

impl Prepared {
    /// Instantiates the component as a `wasi:cli/command`; one that is not one is invalid.
    pub(crate) fn instantiate(mut self) -> Result<Ready, Verdict> {
        match Command::instantiate(&mut self.store, &self.component, &self.linker) {
            Ok(command) => Ok(Ready { store: self.store, command, timeout: self.timeout }),
            Err(error) => Err(guest::classify(&self.store.data().limiter, error, Phase::Instantiate, self.timeout)),
        }
    }
}

/// An instantiated command component about to run.
pub(crate) struct Ready {
    store: Store<ComponentState>,
    command: Command,
    timeout: Option<Duration>,
}

impl Ready {
    /// Calls `wasi:cli/run` and says how it ended: `Ok` is exit 0, `Err` exit 1, an `exit`
    /// call its code, a trap or a limit the same verdict as for a core module.
    ///
    /// The store is never dropped, as for a core module: it owns the `File`s on fds 0–2, and
    /// the runner `_exit`s right after the verdict.
    pub(crate) fn run(self, fuel: Option<u64>) -> Verdict {
        let Ready { store, command, timeout } = Box::leak(Box::new(self));
        let ended = command.wasi_cli_run().call_run(&mut *store);
        if let (Some(budget), Ok(left)) = (fuel, store.get_fuel()) {
            guest::FUEL_CONSUMED.store(budget.saturating_sub(left), Ordering::Relaxed);
        }
        match ended {
            Ok(Ok(())) => Verdict::Exited { code: 0 },
            Ok(Err(())) => Verdict::Exited { code: 1 },
            Err(error) => guest::classify(&store.data().limiter, error, Phase::Run, *timeout),
        }
    }
}
