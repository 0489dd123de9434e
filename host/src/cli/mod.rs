//! Subcommands of the `wasmpipe` binary; `anyhow` lives here and nowhere in the library.

pub mod bench;
pub mod compile;
pub mod demo;
pub mod guests;
pub mod run;

/// A current-thread tokio runtime: the CLI supervises one thing at a time.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}
