//! `wasmpipe map`: each line of stdin is one request to a pool of sandboxed workers; the replies
//! go to stdout in input order.

use crate::run::{SandboxArgs, one_line};
use clap::Args;
use futures_util::{FutureExt, StreamExt};
use std::io;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use wasmpipe::{DEFAULT_PIPELINE_DEPTH, Error, Pool, status};

/// How much of a failed line's input its report shows.
const INPUT_SHOWN: usize = 80;

/// Stdin and stdout buffers: big enough that a stream of short lines costs few system calls.
const IO_BUFFER: usize = 64 << 10;

#[derive(Debug, Args)]
pub struct MapArgs {
    #[command(flatten)]
    sandbox: SandboxArgs,
    /// Workers running at once [default: the number of CPUs].
    #[arg(short = 'j', long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    jobs: Option<u32>,
    /// Limit on one request, from when its worker starts on it to its reply (e.g. 500ms, 2s).
    #[arg(long, value_parser = wasmpipe::parse_duration)]
    timeout: Option<Duration>,
    /// Report every failed line and go on with a fresh worker; exit 1 at the end if any failed.
    #[arg(short = 'k', long)]
    keep_going: bool,
    /// Longest reply line accepted, newline included (e.g. 64KiB).
    #[arg(long, value_name = "SIZE", value_parser = wasmpipe::parse_size, default_value = "1MiB")]
    max_line: u64,
    /// A WASI command (wasm32-wasip1 module or wasm32-wasip2 component) answering each line with one.
    module: PathBuf,
    /// Arguments for every worker's guest (its argv[0] is the module's file name).
    #[arg(last = true, value_name = "GUEST_ARGS")]
    guest_args: Vec<String>,
}

pub fn main(args: MapArgs) -> ExitCode {
    match super::runtime() {
        Ok(runtime) => runtime.block_on(map(args)),
        Err(error) => {
            eprintln!("wasmpipe: {error}");
            ExitCode::from(status::WASMPIPE_FAILED)
        }
    }
}

/// One line's outcome, in input order.
struct Answer {
    /// 1-based.
    number: u64,
    input: Vec<u8>,
    reply: Result<Vec<u8>, Failure>,
}

enum Failure {
    Stdin(io::Error),
    Guest(Error),
}

async fn map(args: MapArgs) -> ExitCode {
    let jobs = args.jobs.map_or_else(|| std::thread::available_parallelism().map_or(1, usize::from), |n| n as usize);
    let module = args.module.clone();
    let guest_args = args.guest_args.clone();
    let sandbox = Arc::new(args.sandbox);
    // Compiled once, up front, into the cache: the workers then start in milliseconds, the
    // per-request timeout never counts a compilation, and a module that cannot run is one
    // report before any input is read.
    if !sandbox.no_cache
        && let Err(error) = sandbox.sandbox(&module, &guest_args).compile().await
    {
        eprintln!("wasmpipe: {}", one_line(&error.to_string()));
        return ExitCode::from(status::of_error(&error));
    }
    let mut builder = Pool::builder(move || sandbox.sandbox(&module, &guest_args))
        .workers(jobs)
        .max_line_length(usize::try_from(args.max_line).unwrap_or(usize::MAX))
        // Without --keep-going, the first failure ends the run anyway.
        .max_restarts(if args.keep_going { u32::MAX } else { 0 });
    if let Some(limit) = args.timeout {
        builder = builder.request_timeout(limit);
    }
    let pool = builder.build();

    let stdin = tokio::io::BufReader::with_capacity(IO_BUFFER, tokio::io::stdin());
    let lines = futures_util::stream::unfold(Some(stdin), |stdin| async move {
        let mut stdin = stdin?;
        let mut line = Vec::new();
        match stdin.read_until(b'\n', &mut line).await {
            Ok(0) => None,
            Ok(_) => Some((Ok(line), Some(stdin))),
            // Reported in its place; nothing is read after it.
            Err(e) => Some((Err(e), None)),
        }
    });
    let pool_ref = &pool;
    // As many lines in progress as the pool can work on: reading stops while stdout is slow.
    let mut answers = std::pin::pin!(
        lines
            .enumerate()
            .map(|(index, line)| async move {
                let number = index as u64 + 1;
                match line {
                    Ok(mut line) => {
                        if line.ends_with(b"\n") {
                            line.pop();
                        }
                        let reply = pool_ref.call(&line).await.map_err(Failure::Guest);
                        line.truncate(INPUT_SHOWN);
                        Answer { number, input: line, reply }
                    }
                    Err(e) => Answer { number, input: Vec::new(), reply: Err(Failure::Stdin(e)) },
                }
            })
            .buffered(jobs.saturating_mul(DEFAULT_PIPELINE_DEPTH))
    );

    let mut stdout = tokio::io::BufWriter::with_capacity(IO_BUFFER, tokio::io::stdout());
    let mut failed = false;
    loop {
        // Replies are flushed whenever none is ready at once, so a slow trickle of input gets
        // its answers as they come rather than when the buffer fills.
        let next = match answers.next().now_or_never() {
            Some(next) => next,
            None => {
                if let Err(e) = stdout.flush().await {
                    return stdout_failed(&pool, &e).await;
                }
                answers.next().await
            }
        };
        let Some(answer) = next else { break };
        let error = match answer.reply {
            Ok(reply) => {
                if let Err(e) = stdout.write_all(&reply).await {
                    return stdout_failed(&pool, &e).await;
                }
                continue;
            }
            Err(Failure::Stdin(e)) => {
                let _ = stdout.flush().await;
                pool.abort().await;
                eprintln!("wasmpipe: cannot read stdin at line {}: {e}", answer.number);
                return ExitCode::from(status::WASMPIPE_FAILED);
            }
            Err(Failure::Guest(error)) => error,
        };
        // Replies before the failure are out before its report.
        if let Err(e) = stdout.flush().await {
            return stdout_failed(&pool, &e).await;
        }
        if is_about_the_module(&error) {
            // No line can succeed: stop, whatever --keep-going says.
            pool.abort().await;
            eprintln!("wasmpipe: {}", one_line(&error.to_string()));
            return ExitCode::from(status::of_error(&error));
        }
        failed = true;
        if !args.keep_going {
            // The workers go first, so that nothing they write comes after the report.
            pool.abort().await;
        }
        eprintln!(
            "wasmpipe: line {}: {} (input: {})",
            answer.number,
            one_line(&error.to_string()),
            shown(&answer.input)
        );
        if !args.keep_going {
            return ExitCode::from(1);
        }
    }
    if let Err(e) = stdout.flush().await {
        return stdout_failed(&pool, &e).await;
    }
    pool.shutdown().await;
    ExitCode::from(u8::from(failed))
}

/// Failures that no line could escape: the module or the sandbox itself is at fault.
fn is_about_the_module(error: &Error) -> bool {
    matches!(
        error,
        Error::InvalidModule(_)
            | Error::CompileTimeout(_)
            | Error::Spawn(_)
            | Error::SpawnIo { .. }
            | Error::DirGrant { .. }
            | Error::PoolExhausted
            | Error::PoolClosed
    )
}

/// A line's input as its report shows it: text as is, other bytes and control characters
/// escaped, so that the report stays one line.
fn shown(input: &[u8]) -> String {
    String::from_utf8_lossy(input)
        .chars()
        .flat_map(|c| if c.is_control() { c.escape_default().collect::<Vec<_>>() } else { vec![c] })
        .collect()
}

/// Stdout is gone (a closed pipe: `wasmpipe map ... | head`) or broken: stop the workers.
async fn stdout_failed(pool: &Pool, error: &io::Error) -> ExitCode {
    pool.abort().await;
    if error.kind() == io::ErrorKind::BrokenPipe {
        // What a shell reports for a command killed by SIGPIPE; the reader wanted no more.
        return ExitCode::from(128 + libc::SIGPIPE as u8);
    }
    eprintln!("wasmpipe: cannot write stdout: {error}");
    ExitCode::from(status::WASMPIPE_FAILED)
}
