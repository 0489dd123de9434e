//! Presenting the results: a table for people, one JSON object for scripts.

use super::Plan;
use super::stats::{Comparison, Stats};
use serde_json::{Value, json};
use std::fmt::Write;

/// Everything `wasmpipe bench` measured.
pub(crate) struct Results {
    /// Spawn to first reply (ms), the sandbox loading from a warm cache.
    pub cold_start: Comparison,
    /// Spawn to first reply (ms), the sandbox compiling the module.
    pub cold_start_uncached: Stats,
    /// One short line there and back (µs), on one CPU.
    pub round_trip: Comparison,
    /// Bulk throughput (MB/s).
    pub bulk: Comparison,
    /// Resident memory of one idle child (MiB).
    pub idle_memory: Memory,
    /// Starting many children at once until all have answered (ms).
    pub start_many: Comparison,
}

/// Resident memory of one idle child, in MiB.
pub(crate) struct Memory {
    pub peak: Comparison,
    pub current: Comparison,
}

/// The human-readable table: `metric | sandbox | native | ratio`, each cell median (min–max).
pub(crate) fn table(results: &Results, plan: &Plan) -> String {
    let cold = &results.cold_start;
    let uncached = Comparison { sandbox: results.cold_start_uncached, native: cold.native };
    let mut uncached_row = row("  sandbox compiling at every start (ms)", &uncached);
    // Compared with the same native starts as the row above: no need to repeat them.
    uncached_row[2].clear();
    let rows = [
        row("cold start, spawn → first reply (ms)", cold),
        uncached_row,
        row(&format!("ping-pong round trip, one CPU (µs), ×{}", plan.round_trips), &results.round_trip),
        row(&format!("bulk throughput, {} MiB (MB/s)", plan.bulk_bytes >> 20), &results.bulk),
        row("peak RSS of one idle child (MiB)", &results.idle_memory.peak),
        row("  RSS once idle (MiB)", &results.idle_memory.current),
        row(&format!("start {} at once, all answered (ms)", plan.concurrent), &results.start_many),
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
/// (and `sandbox_uncached` for cold starts, `current` for memory).
pub(crate) fn json(results: &Results, plan: &Plan) -> Value {
    let mut cold_start = comparison_json(&results.cold_start, plan.cold_samples);
    let uncached = &results.cold_start_uncached;
    cold_start["sandbox_uncached"] = json!(round(uncached.median));
    cold_start["ratio_uncached"] = json!(round(uncached.median / results.cold_start.native.median));
    cold_start["min"]["sandbox_uncached"] = json!(round(uncached.min));
    cold_start["max"]["sandbox_uncached"] = json!(round(uncached.max));

    let mut roundtrip = comparison_json(&results.round_trip, plan.runs);
    roundtrip["round_trips"] = json!(plan.round_trips);
    let mut bulk = comparison_json(&results.bulk, plan.runs);
    bulk["bytes"] = json!(plan.bulk_bytes);
    let mut idle_rss = comparison_json(&results.idle_memory.peak, plan.runs);
    idle_rss["current"] = comparison_json(&results.idle_memory.current, plan.runs);
    let mut start64 = comparison_json(&results.start_many, plan.runs);
    start64["children"] = json!(plan.concurrent);

    json!({
        "cold_start_ms": cold_start,
        "roundtrip_us": roundtrip,
        "bulk_mb_s": bulk,
        "idle_rss_mib": idle_rss,
        "start64_ms": start64,
    })
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
