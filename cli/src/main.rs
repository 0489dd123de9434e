//! The `wasmpipe` command: run a sandboxed guest, show the aiopipe demo, warm the cache, measure.
//!
//! `anyhow` lives here, at the binary's edge, and nowhere in the library.

mod bench;
mod compile;
mod demo;
mod guests;
mod map;
mod run;

/// A current-thread tokio runtime: the CLI supervises one thing at a time.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Run untrusted WebAssembly (WASI preview 1 modules and 0.2 components) in sandboxed child processes.
#[derive(Debug, Parser)]
#[command(name = "wasmpipe", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a WASI command (a wasm32-wasip1 module or wasm32-wasip2 component) in a sandbox, wired
    /// to this process's stdio.
    Run(run::RunArgs),
    /// Send each line of stdin to a pool of sandboxed workers; print their replies in input order.
    Map(map::MapArgs),
    /// Run the two aiopipe README examples through real sandboxed guests (the default command).
    Demo,
    /// Compile a module into the compiled-module cache, so later starts skip compilation.
    Compile(compile::CompileArgs),
    /// Measure sandboxed guests against native child processes running the same protocol.
    Bench(bench::BenchArgs),
    /// Internal: the native baseline child used by `bench` (the echo guest, compiled natively).
    #[command(hide = true)]
    NativeEcho,
}

/// `wasmpipe run ...` parsed with `run`'s own arguments only: building the whole command (every
/// subcommand's arguments) is a noticeable part of starting a short guest. Anything this parse
/// does not accept as is (help, a typo, another subcommand) goes through the full parser, which
/// words every message.
fn run_args_alone() -> Option<run::RunArgs> {
    use clap::{Args, FromArgMatches};
    let mut argv = std::env::args_os().skip(1);
    if argv.next()? != "run" {
        return None;
    }
    let command = run::RunArgs::augment_args(clap::Command::new("run").no_binary_name(true));
    let matches = command.try_get_matches_from(argv).ok()?;
    run::RunArgs::from_arg_matches(&matches).ok()
}

fn main() -> ExitCode {
    if let Some(args) = run_args_alone() {
        return run::main(args);
    }
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Demo) {
        Command::Run(args) => return run::main(args),
        Command::Map(args) => return map::main(args),
        Command::Demo => demo::main(),
        Command::Compile(args) => compile::main(args),
        Command::Bench(args) => bench::main(args),
        Command::NativeEcho => {
            bench::native_echo();
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("wasmpipe: {error:#}");
            ExitCode::from(wasmpipe::status::WASMPIPE_FAILED)
        }
    }
}
