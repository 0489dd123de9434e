//! `wasmpipe compile`: warm the compiled-module cache.

use clap::Args;
use std::path::PathBuf;
use wasmpipe::CacheOutcome;

#[derive(Debug, Args)]
pub struct CompileArgs {
    /// The module to compile into the cache.
    module: PathBuf,
    /// Limit on compiling (e.g. 5m; 0 lifts it) [default: 60s].
    #[arg(long, value_parser = wasmpipe::parse_duration)]
    compile_timeout: Option<std::time::Duration>,
    /// Cap on the compiled-module cache's total size (e.g. 512MiB) [default: 1GiB].
    #[arg(long, value_name = "SIZE", value_parser = wasmpipe::parse_size)]
    cache_max_size: Option<u64>,
}

pub fn main(args: CompileArgs) -> anyhow::Result<()> {
    let Some(cache_dir) = wasmpipe::default_cache_dir() else {
        anyhow::bail!("no cache directory: set WASMPIPE_CACHE_DIR, XDG_CACHE_HOME or HOME");
    };
    let mut sandbox = wasmpipe::Sandbox::new(&args.module).cache_dir(&cache_dir);
    if let Some(limit) = args.compile_timeout {
        sandbox = sandbox.compile_timeout((!limit.is_zero()).then_some(limit));
    }
    if let Some(bytes) = args.cache_max_size {
        sandbox = sandbox.cache_max_bytes(bytes);
    }
    let module = args.module.display();
    match super::runtime()?.block_on(sandbox.compile())? {
        CacheOutcome::Stored(entry) => eprintln!("wasmpipe: compiled {module} into {}", entry.display()),
        CacheOutcome::AlreadyCached(dir) => eprintln!("wasmpipe: {module} is already compiled in {}", dir.display()),
        CacheOutcome::NotStored(reason) => anyhow::bail!("compiled {module}, but nothing was stored: {reason}"),
        other => anyhow::bail!("compiled {module}: {other:?}"),
    }
    Ok(())
}
