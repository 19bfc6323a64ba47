//! What the benchmark prints: each phase's figures, the summary table, the comparison with
//! the naive loop, and the machine it ran on.

use std::collections::BTreeMap;
use std::time::Duration;

use inventory_generator::Skew;
use inventory_processor::ProcessorSettings;

use crate::pipeline::{Phase, PhaseResult};
use crate::workloads::skew_name;

/// One naive loop's line: `writes` UpdateItem calls in `took`.
pub(crate) fn print_naive(skew: Skew, concurrency: usize, (writes, took): (u64, Duration)) {
    println!(
        "naive loop {}, {} in flight: {} UpdateItem in {:.2} s = {:.0} writes/s (= events/s)",
        skew_name(skew),
        concurrency,
        writes,
        took.as_secs_f64(),
        writes as f64 / took.as_secs_f64()
    );
}

pub(crate) fn print_phase(r: &PhaseResult) {
    let m = &r.metrics;
    let secs = r.elapsed.as_secs_f64().max(1e-9);
    println!("### {}", r.label);
    println!(
        "  published      {} records in {:.2} s ({:.0}/s, {} PutRecords calls; publisher CPU {:.2} s)",
        r.published.records,
        r.published.elapsed_s,
        r.published.records as f64 / r.published.elapsed_s.max(1e-9),
        r.published.calls,
        r.published.cpu_s
    );
    println!(
        "  processed      {} events applied in {:.2} s = {:.0} events/s sustained{}",
        m.applied,
        secs,
        m.applied as f64 / secs,
        if r.complete { "" } else { "  (INCOMPLETE)" }
    );
    println!(
        "  batches        {} (mean {:.0} records, {:.1} distinct products), {} failed, {} rejected",
        m.batches,
        ratio(m.records, m.batches),
        ratio(m.distinct_products, m.batches),
        m.failed_batches,
        m.rejected
    );
    println!(
        "  lag ms         p50 {:.0}  p95 {:.0}  p99 {:.0}  max {:.0}  (Kinesis arrival → end of the batch that wrote it)",
        pct(&m.lags_ms, 50.0),
        pct(&m.lags_ms, 95.0),
        pct(&m.lags_ms, 99.0),
        pct(&m.lags_ms, 100.0)
    );
    println!(
        "  product writes {} = {:.3} per event, {:.3} per distinct product per batch ({} products written)",
        m.product_writes,
        ratio(m.product_writes, m.applied),
        ratio(m.product_writes, m.distinct_products),
        m.products_written
    );
    println!(
        "  reads          {} BatchGetItem = {:.2} per batch",
        m.read_requests,
        ratio(m.read_requests, m.batches)
    );
    let writes = total_writes(&r.requests);
    println!(
        "  all requests   {:?}: {} writes = {:.3} per event (the shard log and statistics: one TransactWriteItems per batch and shard)",
        r.requests,
        writes,
        ratio(writes, m.applied)
    );
    println!(
        "  CPU            processor thread {:.2} s ({:.1} µs/event, {:.0}% of a core); pipe+processor process {:.2} s; emulators {:.2} s ({:.0}% of a core)",
        r.processor_cpu.as_secs_f64(),
        r.processor_cpu.as_secs_f64() * 1e6 / m.applied.max(1) as f64,
        100.0 * r.processor_cpu.as_secs_f64() / secs,
        r.process_cpu.as_secs_f64(),
        r.emulator_cpu.as_secs_f64(),
        100.0 * r.emulator_cpu.as_secs_f64() / secs,
    );
    println!(
        "  peak RSS       pipe+processor process {:.1} MiB; emulators {:.1} MiB",
        r.process_peak_kib as f64 / 1024.0,
        r.emulator_peak_kib as f64 / 1024.0
    );
}

/// The summary table: one row per phase.
pub(crate) fn print_summary(results: &[(Skew, Phase, PhaseResult)]) {
    println!("\n## Summary\n");
    println!("| workload | batch | phase | events/s | lag p50 / p95 / p99 ms | product writes / event | writes / distinct product / batch | all DynamoDB writes / event | reads / batch | processor CPU µs / event | pipe+processor peak RSS MiB |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (_, _, r) in results {
        let m = &r.metrics;
        let writes = total_writes(&r.requests);
        let (p50, p95, p99) = (
            pct(&m.lags_ms, 50.0),
            pct(&m.lags_ms, 95.0),
            pct(&m.lags_ms, 99.0),
        );
        println!(
            "| {} | {:.0} | {:.0} / {:.0} / {:.0} | {:.3} | {:.3} | {:.3} | {:.2} | {:.1} | {:.1} |",
            r.label,
            m.applied as f64 / r.elapsed.as_secs_f64().max(1e-9),
            p50,
            p95,
            p99,
            ratio(m.product_writes, m.applied),
            ratio(m.product_writes, m.distinct_products),
            ratio(writes, m.applied),
            ratio(m.read_requests, m.batches),
            r.processor_cpu.as_secs_f64() * 1e6 / (m.applied.max(1) as f64),
            r.process_peak_kib as f64 / 1024.0,
        );
    }
}

/// The drain phases against the naive loops (workload, in flight, writes/s).
pub(crate) fn print_comparison(
    results: &[(Skew, Phase, PhaseResult)],
    naive: &[(Skew, usize, f64)],
) {
    if !naive.is_empty() {
        println!(
            "\n## Coalescing pipeline vs a naive loop (one UpdateItem per event, same emulator)\n"
        );
        println!("| workload | batch | pipeline events/s (drain) | naive writes/s, 1 in flight | ratio | naive writes/s, 32 in flight | ratio |");
        println!("|---|---|---|---|---|---|---|");
        for (skew, phase, r) in results {
            if *phase != Phase::Drain {
                continue;
            }
            let eps = r.metrics.applied as f64 / r.elapsed.as_secs_f64().max(1e-9);
            let find = |c: usize| {
                naive
                    .iter()
                    .find(|(s, cc, _)| s == skew && *cc == c)
                    .map_or(f64::NAN, |n| n.2)
            };
            let (n1, n32) = (
                find(1),
                find(ProcessorSettings::default().write_concurrency),
            );
            println!(
                "| {} | {:.0} | {:.0} | {:.2}× | {:.0} | {:.2}× |",
                r.label
                    .rsplit_once(" |")
                    .map_or(r.label.as_str(), |(a, _)| a),
                eps,
                n1,
                eps / n1,
                n32,
                eps / n32
            );
        }
    }
}

pub(crate) fn ratio(a: u64, b: u64) -> f64 {
    a as f64 / (b.max(1) as f64)
}

pub(crate) fn total_writes(requests: &BTreeMap<String, u64>) -> u64 {
    requests
        .iter()
        .filter(|(op, _)| {
            matches!(
                op.as_str(),
                "PutItem" | "UpdateItem" | "DeleteItem" | "BatchWriteItem" | "TransactWriteItems"
            )
        })
        .map(|(_, n)| n)
        .sum()
}

pub(crate) fn pct(values: &[i64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_unstable();
    let rank = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[rank.min(v.len() - 1)] as f64
}

pub(crate) fn machine_line() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find(|l| l.starts_with("MemTotal"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|k| k.parse::<u64>().ok())
    });
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "machine: {cpus} CPUs, {model}, {:.1} GiB RAM; load average {}",
        mem.unwrap_or(0) as f64 / 1024.0 / 1024.0,
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}
