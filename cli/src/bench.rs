//! `wasmpipe bench`: sandboxed guests against native children running the same protocol.
//!
//! Both sides run the same program, the echo guest (`cli/guests/echo.rs`): the sandbox runs
//! it compiled to wasm32-wasip1 in a runner process, the native baseline is that very source
//! compiled into this binary and started as `wasmpipe native-echo`. Both get their stdin and
//! stdout from [`wasmpipe::duplex`], opened the same way in the parent, so what differs between
//! the two columns is the sandbox and nothing else. Everything is measured in one run, on the
//! machine at hand: absolute numbers vary between machines, the ratios much less.

mod metrics;
mod peer;
mod pin;
mod report;
mod stats;

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

/// How much work each metric does.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    /// Runs per metric and side; each row reports their median, min and max.
    runs: usize,
    /// Cold starts per side: single starts are noisy, and cheap enough to take more.
    cold_samples: usize,
    /// Round trips per ping-pong run.
    round_trips: u32,
    /// Bytes per bulk run.
    bulk_bytes: usize,
    /// Children started at once by the concurrent-start metric.
    concurrent: usize,
    /// Small requests per pool run.
    pub(crate) pool_requests: usize,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                runs: 3,
                cold_samples: 5,
                round_trips: 2_000,
                bulk_bytes: 32 << 20,
                concurrent: 64,
                pool_requests: 200_000,
            }
        } else {
            Self {
                runs: 5,
                cold_samples: 10,
                round_trips: 10_000,
                bulk_bytes: 256 << 20,
                concurrent: 64,
                pool_requests: 1_000_000,
            }
        }
    }
}

pub fn main(args: BenchArgs) -> anyhow::Result<()> {
    let plan = Plan::new(args.quick);
    // A current-thread runtime: the parent's side of every exchange runs on this one thread, so
    // pinning it (ping-pong row) pins the whole parent.
    let results = super::runtime()?.block_on(metrics::run_all(&plan))?;
    if args.json {
        println!("{}", report::json(&results, &plan));
    } else {
        print!("{}", report::table(&results, &plan));
    }
    Ok(())
}

/// The echo guest's source, compiled for the host rather than for wasm32-wasip1.
mod echo_guest {
    include!("../guests/echo.rs");

    /// The guest's `main`, which is private to this module.
    pub(super) fn run() -> io::Result<()> {
        main()
    }
}

/// The native baseline: the echo guest's own source, compiled for the host.
pub fn native_echo() {
    if let Err(error) = echo_guest::run() {
        eprintln!("wasmpipe native-echo: {error}");
        std::process::exit(1);
    }
}
