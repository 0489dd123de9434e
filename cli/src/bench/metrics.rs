//! The measurements, one function per metric, each run for the sandbox and the native baseline.

use super::Plan;
use super::peer::{Kind, Launcher, Peer};
use super::pin::PinnedToOneCpu;
use super::report::{Memory, Results};
use super::stats::{Comparison, Stats};
use anyhow::{Context, ensure};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::task::JoinSet;

/// The request of the cold-start, ping-pong and concurrent-start metrics: a short line.
const PING: &[u8] = b"ping\n";

/// Length of one bulk line, `\n` included.
const BULK_LINE: usize = 1024;

/// Bytes per write (and per read buffer) in the bulk metric: many lines per syscall, as a real
/// producer would batch them.
const BULK_CHUNK: usize = 64 * 1024;

/// Round trips before the clock starts: the first ones pay for page faults and cold caches.
const WARMUP_ROUND_TRIPS: u32 = 100;

pub(crate) async fn run_all(plan: &Plan) -> anyhow::Result<Results> {
    let launcher = Launcher::new()?;
    progress("whole-process start: `wasmpipe run` of a cached guest");
    let process_start = process_start(plan.cold_samples)?;
    progress("cold start: spawn -> first reply");
    let (cold_start, cold_start_uncached, cold_start_zygote, cold_start_p2) =
        cold_start(&launcher, plan.cold_samples).await?;
    progress(&format!("ping-pong: {} round trips on one CPU", plan.round_trips));
    let round_trip = round_trip(&launcher, plan.runs, plan.round_trips).await?;
    progress(&format!("bulk: {} MiB of {BULK_LINE}-byte lines", plan.bulk_bytes >> 20));
    let (bulk, bulk_p2) = bulk(&launcher, plan.runs, plan.bulk_bytes).await?;
    progress(&format!("pool: {POOL_WORKERS} workers, {} MiB of {POOL_LARGE}-byte requests", plan.bulk_bytes >> 20));
    let pool_large = pool_throughput(&launcher, plan.runs, POOL_LARGE, plan.bulk_bytes / POOL_LARGE).await?;
    progress(&format!("pool: {POOL_WORKERS} workers, {} {POOL_SMALL}-byte requests", plan.pool_requests));
    let pool_small = pool_throughput(&launcher, plan.runs, POOL_SMALL, plan.pool_requests).await?;
    progress("memory of one idle child");
    let idle_memory = idle_memory(&launcher, plan.runs).await?;
    progress(&format!("{} children started at once", plan.concurrent));
    let (start_many, start_many_zygote) = start_many(&launcher, plan.runs, plan.concurrent).await?;
    Ok(Results {
        process_start,
        cold_start,
        cold_start_uncached,
        cold_start_zygote,
        cold_start_p2,
        round_trip,
        bulk,
        bulk_p2,
        pool_large,
        pool_small,
        idle_memory,
        start_many,
        start_many_zygote,
    })
}

/// Progress goes to stderr, keeping stdout for the report (and `--json` parseable).
fn progress(what: &str) {
    eprintln!("bench: {what}");
}

/// A whole `wasmpipe run` of the (cached) simplex guest until it exits, against an exec of the
/// same program compiled natively, in ms: what a shell script pays per sandboxed command.
fn process_start(samples: usize) -> anyhow::Result<Comparison> {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("wasmpipe-bench-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = (|| {
        let wasm = dir.join("simplex.wasm");
        std::fs::write(&wasm, crate::guests::SIMPLEX)?;
        let native = dir.join("simplex");
        std::fs::write(&native, crate::guests::SIMPLEX_NATIVE)?;
        std::fs::set_permissions(&native, std::fs::Permissions::from_mode(0o755))?;
        let this = std::env::current_exe()?;
        let run = |sandboxed: bool| -> anyhow::Result<f64> {
            let mut command = if sandboxed {
                let mut command = std::process::Command::new(&this);
                command.arg("run").arg(&wasm).env("WASMPIPE_CACHE_DIR", dir.join("cache"));
                command
            } else {
                std::process::Command::new(&native)
            };
            command.stdout(std::process::Stdio::null());
            let started = Instant::now();
            let status = command.status()?;
            let elapsed = started.elapsed();
            ensure!(status.success(), "{command:?} failed: {status}");
            Ok(millis(elapsed))
        };
        // Warm the compiled-module cache and the page cache.
        run(true)?;
        run(false)?;
        let (mut sandbox, mut native) = (Vec::new(), Vec::new());
        for _ in 0..samples {
            sandbox.push(run(true)?);
            native.push(run(false)?);
        }
        Ok(Comparison { sandbox: Stats::of(sandbox), native: Stats::of(native) })
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Spawn to first reply, in ms: the sandbox from a warm cache, compiling, forked by a zygote,
/// and the WASI 0.2 component; and native.
async fn cold_start(launcher: &Launcher, samples: usize) -> anyhow::Result<(Comparison, Stats, Stats, Stats)> {
    let kinds = [Kind::Sandbox, Kind::SandboxUncached, Kind::SandboxZygote, Kind::SandboxP2, Kind::Native];
    // One discarded start of each kind: it fills the compiled-module cache for `Sandbox`, and
    // for all of them the page cache with the binary and whatever it loads.
    for kind in kinds {
        one_cold_start(launcher, kind).await?;
    }
    let [sandbox, uncached, zygote, component, native] =
        alternate(kinds, samples, |kind| one_cold_start(launcher, kind)).await?;
    let comparison = Comparison { sandbox: Stats::of(sandbox), native: Stats::of(native) };
    Ok((comparison, Stats::of(uncached), Stats::of(zygote), Stats::of(component)))
}

async fn one_cold_start(launcher: &Launcher, kind: Kind) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut peer = launcher.spawn(kind)?;
    peer.round_trip(PING).await?;
    let elapsed = started.elapsed();
    peer.finish().await?;
    Ok(millis(elapsed))
}

/// One short line there and back, in µs, with parent and child on the same CPU.
///
/// Sharing one CPU makes every round trip two context switches, whatever the scheduler would
/// otherwise do with idle cores (and spares the numbers the cost of cross-core wakeups, which
/// depends more on the machine than on the sandbox).
async fn round_trip(launcher: &Launcher, runs: usize, round_trips: u32) -> anyhow::Result<Comparison> {
    let _pinned = PinnedToOneCpu::new()?;
    compare(runs, |kind| round_trip_run(launcher, kind, round_trips)).await
}

async fn round_trip_run(launcher: &Launcher, kind: Kind, round_trips: u32) -> anyhow::Result<f64> {
    let mut peer = launcher.spawn(kind)?;
    for _ in 0..WARMUP_ROUND_TRIPS {
        peer.round_trip(PING).await?;
    }
    let started = Instant::now();
    for _ in 0..round_trips {
        peer.round_trip(PING).await?;
    }
    let elapsed = started.elapsed();
    peer.finish().await?;
    Ok(micros(elapsed) / f64::from(round_trips))
}

/// Bytes through the echo child per second, in MB/s (10^6 bytes), writer and reader concurrent.
/// Also for the WASI 0.2 component.
async fn bulk(launcher: &Launcher, runs: usize, total: usize) -> anyhow::Result<(Comparison, Stats)> {
    let kinds = [Kind::Sandbox, Kind::SandboxP2, Kind::Native];
    let [sandbox, component, native] = alternate(kinds, runs, |kind| bulk_run(launcher, kind, total)).await?;
    Ok((Comparison { sandbox: Stats::of(sandbox), native: Stats::of(native) }, Stats::of(component)))
}

async fn bulk_run(launcher: &Launcher, kind: Kind, total: usize) -> anyhow::Result<f64> {
    ensure!(total.is_multiple_of(BULK_CHUNK), "the bulk size must be a multiple of {BULK_CHUNK} bytes");
    let mut peer = launcher.spawn(kind)?;
    // Fully started before the clock runs: start-up has its own metric.
    peer.round_trip(PING).await?;
    let chunk = bulk_chunk();
    let mut writer = peer.take_writer()?;
    let started = Instant::now();
    // The writer gets a task of its own, so that the reader keeps draining the child while the
    // writer waits for room in the pipe; it drops the writer at the end, which is the child's
    // EOF.
    let writing = tokio::spawn(async move {
        for _ in 0..total / BULK_CHUNK {
            writer.write_all(&chunk).await?;
        }
        anyhow::Ok(())
    });
    let received = count_bytes(&mut peer.reader, total).await?;
    let elapsed = started.elapsed();
    writing.await.context("the writer task failed")??;
    ensure!(received == total, "sent {total} bytes but received {received}");
    peer.finish().await?;
    Ok(total as f64 / 1e6 / elapsed.as_secs_f64())
}

/// One write's worth of bulk lines: `BULK_LINE - 1` printable bytes and a `\n`, repeated.
fn bulk_chunk() -> Vec<u8> {
    let line: Vec<u8> = (0..BULK_LINE - 1).map(|i| b'a' + (i % 26) as u8).chain([b'\n']).collect();
    line.repeat(BULK_CHUNK / BULK_LINE)
}

/// Reads until `total` bytes have arrived (or EOF), returning how many did.
async fn count_bytes(reader: &mut (impl AsyncReadExt + Unpin), total: usize) -> anyhow::Result<usize> {
    let mut buffer = vec![0u8; BULK_CHUNK];
    let mut received = 0;
    while received < total {
        match reader.read(&mut buffer).await? {
            0 => break,
            n => received += n,
        }
    }
    Ok(received)
}

/// Workers of the pool rows: one per CPU of this 2-core reference machine.
const POOL_WORKERS: usize = 2;
/// The pool rows' request sizes, newline included.
const POOL_LARGE: usize = 1024;
const POOL_SMALL: usize = 16;

/// Echo requests of `size` bytes through a pool of [`POOL_WORKERS`], sandboxed or native
/// children behind the very same pool code: MB/s for large requests, thousands of requests a
/// second for small ones.
async fn pool_throughput(launcher: &Launcher, runs: usize, size: usize, requests: usize) -> anyhow::Result<Comparison> {
    compare(runs, |kind| pool_run(launcher, kind, size, requests)).await
}

async fn pool_run(launcher: &Launcher, kind: Kind, size: usize, requests: usize) -> anyhow::Result<f64> {
    use futures_util::StreamExt;
    let pool = launcher.pool(kind, POOL_WORKERS);
    // Every worker up and answering before the clock runs: start-up has its own metric.
    for reply in pool.map((0..POOL_WORKERS * 4).map(|_| b"warm".to_vec())).await {
        ensure!(reply? == b"warm\n", "the pool's echo answered something else");
    }
    let request: Vec<u8> = (0..size - 1).map(|i| b'a' + (i % 26) as u8).collect();
    let started = Instant::now();
    let mut replies = std::pin::pin!(pool.map_stream(futures_util::stream::repeat(request).take(requests)));
    let mut answered = 0;
    while let Some(reply) = replies.next().await {
        ensure!(reply?.len() == size, "a reply of the wrong size");
        answered += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    ensure!(answered == requests, "{answered} of {requests} requests answered");
    pool.shutdown().await;
    let per_second = requests as f64 / elapsed;
    Ok(if size >= POOL_LARGE { per_second * size as f64 / 1e6 } else { per_second / 1e3 })
}

/// Resident memory of one idle child (after one round trip, so it is fully up), in MiB.
async fn idle_memory(launcher: &Launcher, runs: usize) -> anyhow::Result<Memory> {
    let kinds = [Kind::Sandbox, Kind::Native];
    let [sandbox, native] = alternate(kinds, runs, |kind| idle_memory_sample(launcher, kind)).await?;
    let summarize = |field: fn(&Rss) -> f64| Comparison {
        sandbox: Stats::of(sandbox.iter().map(field)),
        native: Stats::of(native.iter().map(field)),
    };
    Ok(Memory { peak: summarize(|rss| rss.peak), current: summarize(|rss| rss.current) })
}

async fn idle_memory_sample(launcher: &Launcher, kind: Kind) -> anyhow::Result<Rss> {
    let mut peer = launcher.spawn(kind)?;
    peer.round_trip(PING).await?;
    let rss = Rss::of(peer.pid()?)?;
    peer.finish().await?;
    Ok(rss)
}

/// Resident set size of a process, in MiB.
struct Rss {
    /// The high-water mark (`VmHWM`): what the process needed at its peak, start-up included.
    peak: f64,
    /// What it holds now (`VmRSS`).
    current: f64,
}

impl Rss {
    fn of(pid: u32) -> anyhow::Result<Self> {
        let path = format!("/proc/{pid}/status");
        let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
        let mib = |field: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(field)?.trim().strip_suffix(" kB")?.trim().parse::<f64>().ok())
                .map(|kib| kib / 1024.0)
                .with_context(|| format!("no `{field}` in {path}"))
        };
        Ok(Self { peak: mib("VmHWM:")?, current: mib("VmRSS:")? })
    }
}

/// Time to start `count` children at once until every one of them has answered, in ms.
async fn start_many(launcher: &Launcher, runs: usize, count: usize) -> anyhow::Result<(Comparison, Stats)> {
    let kinds = [Kind::Sandbox, Kind::SandboxZygote, Kind::Native];
    let [sandbox, zygote, native] = alternate(kinds, runs, |kind| start_many_run(launcher, kind, count)).await?;
    Ok((Comparison { sandbox: Stats::of(sandbox), native: Stats::of(native) }, Stats::of(zygote)))
}

async fn start_many_run(launcher: &Launcher, kind: Kind, count: usize) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut answering = JoinSet::new();
    // Spawning returns as soon as the process exists, so all of them start up in parallel;
    // each then gets its ping in a task of its own.
    for _ in 0..count {
        let mut peer = launcher.spawn(kind)?;
        answering.spawn(async move { peer.round_trip(PING).await.map(|()| peer) });
    }
    let mut peers = Vec::with_capacity(count);
    while let Some(answered) = answering.join_next().await {
        peers.push(answered.context("a ping task failed")??);
    }
    let elapsed = started.elapsed();
    finish_all(peers).await?;
    Ok(millis(elapsed))
}

/// Finishes children concurrently: one by one, each would wait for the previous one's exit.
async fn finish_all(peers: Vec<Peer>) -> anyhow::Result<()> {
    let mut finishing: JoinSet<_> = peers.into_iter().map(Peer::finish).collect();
    while let Some(finished) = finishing.join_next().await {
        finished.context("a finishing task failed")??;
    }
    Ok(())
}

/// Measures `runs` samples for the sandbox (cached) and the native baseline.
async fn compare<F, Fut>(runs: usize, sample: F) -> anyhow::Result<Comparison>
where
    F: FnMut(Kind) -> Fut,
    Fut: Future<Output = anyhow::Result<f64>>,
{
    let [sandbox, native] = alternate([Kind::Sandbox, Kind::Native], runs, sample).await?;
    Ok(Comparison { sandbox: Stats::of(sandbox), native: Stats::of(native) })
}

/// Takes `runs` samples of each kind, alternating between kinds so that whatever the machine
/// does meanwhile (other load, frequency changes) affects every kind alike.
async fn alternate<const N: usize, S, F, Fut>(
    kinds: [Kind; N],
    runs: usize,
    mut sample: F,
) -> anyhow::Result<[Vec<S>; N]>
where
    F: FnMut(Kind) -> Fut,
    Fut: Future<Output = anyhow::Result<S>>,
{
    let mut samples: [Vec<S>; N] = std::array::from_fn(|_| Vec::with_capacity(runs));
    for _ in 0..runs {
        for (kind, samples) in kinds.iter().zip(&mut samples) {
            samples.push(sample(*kind).await?);
        }
    }
    Ok(samples)
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}
