//! `wasmpipe compile`: warm the compiled-module cache.

use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct CompileArgs {
    /// The module to compile into the cache.
    module: PathBuf,
}

pub fn main(args: CompileArgs) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("not implemented yet")
}
