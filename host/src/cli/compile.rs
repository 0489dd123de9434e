//! `wasmpipe compile`: warm the compiled-module cache.

use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct CompileArgs {
    /// The module to compile into the cache.
    module: PathBuf,
}

pub fn main(args: CompileArgs) -> anyhow::Result<()> {
    let Some(cache_dir) = wasmpipe::default_cache_dir() else {
        anyhow::bail!("no cache directory: set WASMPIPE_CACHE_DIR, XDG_CACHE_HOME or HOME");
    };
    super::runtime()?.block_on(wasmpipe::Sandbox::new(&args.module).cache_dir(&cache_dir).compile())?;
    eprintln!("wasmpipe: compiled {} into {}", args.module.display(), cache_dir.display());
    Ok(())
}
