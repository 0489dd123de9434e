//! `wasmpipe bench`: sandboxed guests against native children running the same protocol.

use clap::Args;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Fewer iterations: done in under a minute.
    #[arg(long)]
    quick: bool,
}

pub fn main(args: BenchArgs) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("not implemented yet")
}

/// The native baseline: the echo guest's own source, compiled for the host.
pub fn native_echo() {}
