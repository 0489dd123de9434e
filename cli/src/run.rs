//! `wasmpipe run`: one guest, wired straight to this process's stdin, stdout and stderr.

use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use wasmpipe::{Error, Sandbox, status};

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    sandbox: SandboxArgs,
    /// Wall-clock limit, time blocked on stdin included (e.g. 500ms, 2s, 1m).
    #[arg(long, value_parser = wasmpipe::parse_duration)]
    timeout: Option<Duration>,
    /// After the guest ends, print what it used as one JSON line on stderr: wall and CPU time
    /// (ms), peak memory (bytes), fuel consumed, and the Landlock ABI enforced.
    #[arg(long)]
    stats: bool,
    /// A WASI command: a wasm32-wasip1 module or a wasm32-wasip2 component.
    module: PathBuf,
    /// Arguments for the guest (its argv[0] is the module's file name).
    #[arg(last = true, value_name = "GUEST_ARGS")]
    guest_args: Vec<String>,
}

/// What the guest may see and use: the options `run` and `map` share.
#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Environment variable for the guest (repeatable); the guest sees no others.
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    env: Vec<(String, String)>,
    /// Host directory to preopen read-only, optionally at another guest path (repeatable).
    #[arg(long = "dir", value_name = "HOST_DIR[::GUEST_PATH]")]
    dirs: Vec<String>,
    /// Host directory to preopen writable, optionally at another guest path (repeatable).
    #[arg(long = "dir-rw", value_name = "HOST_DIR[::GUEST_PATH]")]
    dirs_rw: Vec<String>,
    /// Allow granting `/`, `/proc`, `/sys`, `/dev` (or directories containing them) and the
    /// compiled-module cache: the guest can then read the host's processes and plant code.
    #[arg(long)]
    unsafe_allow_dangerous_dirs: bool,
    /// Cap on the guest's linear memory and tables (e.g. 64MiB, 1GiB) [default: 512MiB].
    #[arg(long, value_name = "SIZE", value_parser = wasmpipe::parse_size)]
    memory: Option<u64>,
    /// Instruction budget.
    #[arg(long, value_name = "N")]
    fuel: Option<u64>,
    /// Limit on compiling the module, on a cache miss (e.g. 5m; 0 lifts it) [default: 60s].
    #[arg(long, value_parser = wasmpipe::parse_duration)]
    compile_timeout: Option<Duration>,
    /// Cap on the compiled-module cache's total size (e.g. 512MiB) [default: 1GiB].
    #[arg(long, value_name = "SIZE", value_parser = wasmpipe::parse_size)]
    cache_max_size: Option<u64>,
    /// Compile the module now instead of using the compiled-module cache.
    #[arg(long)]
    pub no_cache: bool,
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("`{text}` is not KEY=VALUE")),
    }
}

/// Builds the sandbox the arguments describe (stdio not yet set).
pub fn sandbox(args: &RunArgs) -> Sandbox {
    let mut sandbox = args.sandbox.sandbox(&args.module, &args.guest_args);
    if let Some(limit) = args.timeout {
        sandbox = sandbox.timeout(limit);
    }
    sandbox
}

impl SandboxArgs {
    /// A sandbox for `module` with these options and `guest_args` (stdio not yet set).
    pub fn sandbox(&self, module: &std::path::Path, guest_args: &[String]) -> Sandbox {
        let mut sandbox = Sandbox::new(module).args(guest_args.iter().cloned());
        for (key, value) in &self.env {
            sandbox = sandbox.env(key, value);
        }
        for dir in &self.dirs {
            let (host, guest) = dir.split_once("::").unwrap_or((dir, dir));
            sandbox = sandbox.dir(host, guest);
        }
        for dir in &self.dirs_rw {
            let (host, guest) = dir.split_once("::").unwrap_or((dir, dir));
            sandbox = sandbox.dir_writable(host, guest);
        }
        if self.unsafe_allow_dangerous_dirs {
            sandbox = sandbox.unsafe_allow_dangerous_dirs();
        }
        if let Some(limit) = self.compile_timeout {
            sandbox = sandbox.compile_timeout((!limit.is_zero()).then_some(limit));
        }
        if let Some(bytes) = self.cache_max_size {
            sandbox = sandbox.cache_max_bytes(bytes);
        }
        if let Some(bytes) = self.memory {
            sandbox = sandbox.memory(bytes);
        }
        if let Some(units) = self.fuel {
            sandbox = sandbox.fuel(units);
        }
        if self.no_cache {
            sandbox = sandbox.no_cache();
        }
        sandbox
    }
}

pub fn main(args: RunArgs) -> ExitCode {
    let result = super::runtime().map_err(|e| Error::Spawn(e.to_string())).and_then(|runtime| {
        runtime.block_on(async {
            // The runner gets our own fds 0, 1 and 2: bytes flow between the guest and whatever
            // they are (pipe, file, terminal) with no copy through this process.
            // A fork of this short-lived, single-threaded process starts the runner a
            // millisecond sooner than an exec of this binary; no cache key is in memory yet.
            let mut child = sandbox(&args).inherit_stdio().prefer_fork().spawn()?;
            let ended = child.wait().await;
            Ok((ended, child.usage(), child.landlock_abi()))
        })
    });
    let ended = match result {
        Ok((ended, usage, landlock)) => {
            if args.stats {
                eprintln!("{}", stats_line(usage, landlock));
            }
            ended
        }
        Err(error) => Err(error),
    };
    #[cfg(wasmpipe_startup_trace)]
    wasmpipe::startup_trace::dump("cli");
    match ended {
        Ok(exit) => ExitCode::from(status::of_guest_exit(exit.code())),
        Err(error) => {
            eprintln!("wasmpipe: {}", one_line(&error.to_string()));
            ExitCode::from(status::of_error(&error))
        }
    }
}

/// `--stats`: what the guest used, as one JSON object.
fn stats_line(usage: Option<wasmpipe::Usage>, landlock: Option<u8>) -> String {
    let millis = |d: std::time::Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
    let json = match usage {
        Some(usage) => serde_json::json!({
            "wall_ms": millis(usage.wall_time),
            "cpu_user_ms": millis(usage.cpu_user),
            "cpu_system_ms": millis(usage.cpu_system),
            "peak_memory_bytes": usage.peak_memory,
            "fuel_consumed": usage.fuel_consumed,
            "landlock_abi": landlock,
        }),
        None => serde_json::json!({}),
    };
    json.to_string()
}

/// The contract is one `wasmpipe:` line per failure, but some messages (wasmparser's, with their
/// pretty-printed byte arrays) span several: fold all whitespace into single spaces.
pub fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}
