//! The `wasmpipe` command: run a sandboxed guest, show the aiopipe demo, warm the cache, measure.

mod cli;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Run untrusted WebAssembly (wasm32-wasip1) guests in sandboxed child processes.
#[derive(Debug, Parser)]
#[command(name = "wasmpipe", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a wasm32-wasip1 command module in a sandbox, wired to this process's stdio.
    Run(cli::run::RunArgs),
    /// Run the two aiopipe README examples through real sandboxed guests (the default command).
    Demo,
    /// Compile a module into the compiled-module cache, so later starts skip compilation.
    Compile(cli::compile::CompileArgs),
    /// Measure sandboxed guests against native child processes running the same protocol.
    Bench(cli::bench::BenchArgs),
    /// Internal: the native baseline child used by `bench` (the echo guest, compiled natively).
    #[command(hide = true)]
    NativeEcho,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Demo) {
        Command::Run(args) => return cli::run::main(args),
        Command::Demo => cli::demo::main(),
        Command::Compile(args) => cli::compile::main(args),
        Command::Bench(args) => cli::bench::main(args),
        Command::NativeEcho => {
            cli::bench::native_echo();
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("wasmpipe: {error:#}");
            ExitCode::from(cli::run::STATUS_WASMPIPE_FAILED)
        }
    }
}
