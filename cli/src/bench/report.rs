//! Presenting the results: a table for people, one JSON object for scripts.

use super::Plan;
use super::stats::{Comparison, Stats};
use serde_json::{Value, json};
use std::fmt::Write;

/// Everything `wasmpipe bench` measured.
pub(crate) struct Results {
    /// A whole `wasmpipe run` of a cached tiny guest against an exec of it compiled natively (ms).
    pub process_start: Comparison,
    /// Spawn to first reply (ms), the sandbox loading from a warm cache.
    pub cold_start: Comparison,
    /// Spawn to first reply (ms), the sandbox compiling the module.
    pub cold_start_uncached: Stats,
    /// Spawn to first reply (ms), the runner forked by a zygote (cached module).
    pub cold_start_zygote: Stats,
    /// Spawn to first reply (ms), the same guest as a WASI 0.2 component (cached).
    pub cold_start_p2: Stats,
    /// One short line there and back (µs), on one CPU.
    pub round_trip: Comparison,
    /// Bulk throughput (MB/s).
    pub bulk: Comparison,
    /// Bulk throughput (MB/s), the same guest as a WASI 0.2 component.
    pub bulk_p2: Stats,
    /// A pool of 2 echo workers, 1 KiB requests (MB/s).
    pub pool_large: Comparison,
    /// A pool of 2 echo workers, 16-byte requests (thousands of requests/s).
    pub pool_small: Comparison,
    /// Resident memory of one idle child (MiB).
    pub idle_memory: Memory,
    /// Starting many children at once until all have answered (ms).
    pub start_many: Comparison,
    /// The same, runners forked by a zygote.
    pub start_many_zygote: Stats,
}

/// Resident memory of one idle child, in MiB.
pub(crate) struct Memory {
    pub peak: Comparison,
    pub current: Comparison,
}

/// The human-readable table: `metric | sandbox | native | ratio`, each cell median (min–max).
pub(crate) fn table(results: &Results, plan: &Plan) -> String {
    let cold = &results.cold_start;
    let many = &results.start_many;
    let rows = [
        row("`wasmpipe run` of a cached guest, whole process (ms)", &results.process_start),
        row("cold start, spawn → first reply (ms)", cold),
        variant_row("  sandbox compiling at every start (ms)", results.cold_start_uncached, cold),
        variant_row("  sandbox forked by a zygote (ms)", results.cold_start_zygote, cold),
        variant_row("  WASI 0.2 component (ms)", results.cold_start_p2, cold),
        row(&format!("ping-pong round trip, one CPU (µs), ×{}", plan.round_trips), &results.round_trip),
        row(&format!("bulk throughput, {} MiB (MB/s)", plan.bulk_bytes >> 20), &results.bulk),
        variant_row("  WASI 0.2 component (MB/s)", results.bulk_p2, &results.bulk),
        row("pool of 2, 1 KiB echo requests (MB/s)", &results.pool_large),
        row(&format!("pool of 2, 16-byte requests (k/s), ×{}", plan.pool_requests), &results.pool_small),
        row("peak RSS of one idle child (MiB)", &results.idle_memory.peak),
        row("  RSS once idle (MiB)", &results.idle_memory.current),
        row(&format!("start {} at once, all answered (ms)", plan.concurrent), many),
        variant_row("  sandboxes forked by a zygote (ms)", results.start_many_zygote, many),
    ];
    let header = ["metric", "sandbox", "native", "sandbox/native"].map(String::from);
    let widths: Vec<usize> = (0..header.len())
        .map(|column| rows.iter().chain([&header]).map(|row| row[column].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = format!(
        "wasmpipe bench: echo guest, sandboxed vs native; median (min–max) of {} runs, {} for cold starts\n\n",
        plan.runs, plan.cold_samples
    );
    for cells in [&header].into_iter().chain(&rows) {
        let line: Vec<String> = cells.iter().zip(&widths).map(|(cell, &width)| format!("{cell:<width$}")).collect();
        writeln!(out, "{}", line.join("  ").trim_end()).expect("writing to a String");
    }
    out.push_str(
        "\nsandbox/native is the ratio of medians: above 1 the sandbox takes more, below 1 it delivers less.\n",
    );
    out
}

/// Another way of running the sandbox, against the same native runs as the row above it (so its
/// native cell stays empty rather than repeating them).
fn variant_row(metric: &str, sandbox: Stats, above: &Comparison) -> [String; 4] {
    let mut cells = row(metric, &Comparison { sandbox, native: above.native });
    cells[2].clear();
    cells
}

fn row(metric: &str, comparison: &Comparison) -> [String; 4] {
    [metric.to_owned(), cell(&comparison.sandbox), cell(&comparison.native), format!("{:.2}×", comparison.ratio())]
}

fn cell(stats: &Stats) -> String {
    format!("{} ({}–{})", number(stats.median), number(stats.min), number(stats.max))
}

/// Three significant digits or so, whatever the magnitude.
fn number(value: f64) -> String {
    match value.abs() {
        v if v >= 100.0 => format!("{value:.0}"),
        v if v >= 10.0 => format!("{value:.1}"),
        _ => format!("{value:.2}"),
    }
}

/// One JSON object: per metric, `sandbox` and `native` medians, plus `ratio`, `min` and `max`
/// (and `sandbox_uncached` and `sandbox_zygote` for cold starts, `sandbox_zygote` for starting
/// many, `current` for memory).
pub(crate) fn json(results: &Results, plan: &Plan) -> Value {
    let mut cold_start = comparison_json(&results.cold_start, plan.cold_samples);
    add_variant(&mut cold_start, "uncached", &results.cold_start_uncached, &results.cold_start);
    add_variant(&mut cold_start, "zygote", &results.cold_start_zygote, &results.cold_start);
    add_variant(&mut cold_start, "p2", &results.cold_start_p2, &results.cold_start);

    let mut roundtrip = comparison_json(&results.round_trip, plan.runs);
    roundtrip["round_trips"] = json!(plan.round_trips);
    let mut bulk = comparison_json(&results.bulk, plan.runs);
    bulk["bytes"] = json!(plan.bulk_bytes);
    add_variant(&mut bulk, "p2", &results.bulk_p2, &results.bulk);
    let mut idle_rss = comparison_json(&results.idle_memory.peak, plan.runs);
    idle_rss["current"] = comparison_json(&results.idle_memory.current, plan.runs);
    let mut start64 = comparison_json(&results.start_many, plan.runs);
    start64["children"] = json!(plan.concurrent);
    add_variant(&mut start64, "zygote", &results.start_many_zygote, &results.start_many);

    json!({
        "process_start_ms": comparison_json(&results.process_start, plan.cold_samples),
        "cold_start_ms": cold_start,
        "roundtrip_us": roundtrip,
        "bulk_mb_s": bulk,
        "pool_1k_mb_s": comparison_json(&results.pool_large, plan.runs),
        "pool_16b_k_per_s": comparison_json(&results.pool_small, plan.runs),
        "idle_rss_mib": idle_rss,
        "start64_ms": start64,
    })
}

/// Adds `sandbox_<name>` (with its ratio to the native median, min and max) to a metric.
fn add_variant(metric: &mut Value, name: &str, stats: &Stats, above: &Comparison) {
    let key = format!("sandbox_{name}");
    metric[&key] = json!(round(stats.median));
    metric[format!("ratio_{name}")] = json!(round(stats.median / above.native.median));
    metric["min"][&key] = json!(round(stats.min));
    metric["max"][&key] = json!(round(stats.max));
}

fn comparison_json(comparison: &Comparison, runs: usize) -> Value {
    let (sandbox, native) = (&comparison.sandbox, &comparison.native);
    json!({
        "sandbox": round(sandbox.median),
        "native": round(native.median),
        "ratio": round(comparison.ratio()),
        "min": { "sandbox": round(sandbox.min), "native": round(native.min) },
        "max": { "sandbox": round(sandbox.max), "native": round(native.max) },
        "runs": runs,
    })
}

/// Three decimals: more would be noise, and long floats are hard to read.
fn round(value: f64) -> f64 {
    (value * 1e3).round() / 1e3
}
