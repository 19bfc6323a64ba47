//! `log-load`: what a cold processor instance pays to read its shard's dedup window back
//! (docs/consistency.md, "Window limits"). For each window it writes a shard log as the
//! processor does at a given rate (batches of `--batch` records, one item each, arrivals
//! spread over the window), then times a fresh `ShardLogStore::refresh` of it: the load a cold
//! start makes before its first batch. The baseline, in the same run, is a bare paginated
//! `Query` of the same items (what DynamoDB must send whatever the processor does with it).

use std::time::{Duration, Instant};

use inventory_domain::dedup::{DedupKey, LogKey, LogRecord};
use inventory_local::{EmulatorOptions, LocalAws};
use inventory_store::shard_log::{partition, Attempt, ShardLogStore};
use inventory_store::tables::ensure_tables;
use inventory_store::Tables;

use crate::procfs::proc_kib;

#[derive(clap::Args, Clone)]
pub(crate) struct LogLoadArgs {
    /// Records per second on the shard.
    #[arg(long, default_value_t = 1_000)]
    pub(crate) rate: u64,
    /// Dedup windows to load, in seconds, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "300,900,1800,3600")]
    pub(crate) windows: Vec<u64>,
    /// Records per log item (the Pipe's BatchSize).
    #[arg(long, default_value_t = 1_000)]
    pub(crate) batch: usize,
}

pub(crate) async fn log_load(args: LogLoadArgs) -> anyhow::Result<()> {
    let aws = LocalAws::start(EmulatorOptions::default()).await?;
    let db = aws_sdk_dynamodb::Client::new(&aws.sdk_config());
    let tables = Tables::with_prefix("logload-");
    ensure_tables(&db, &tables).await?;
    println!(
        "shard log cold load at {} records/s, {} records per item (DynamoDB: dynoxide on this machine)",
        args.rate, args.batch
    );
    println!("window_s\tentries\titems\twrite_s\tquery_s\tload_s\tload/query\tentries_per_s\trss_mib\tbytes_per_entry");
    for (n, window_s) in args.windows.iter().enumerate() {
        let shard = format!("shardId-{n:012}");
        let now = chrono::Utc::now().timestamp_millis();
        let entries = window_s * args.rate;
        let items = entries.div_ceil(args.batch as u64);
        let window_ms = i64::try_from(window_s * 1000)?;
        let writer = ShardLogStore::new(db.clone(), tables.events.clone(), window_ms, usize::MAX);
        let written = Instant::now();
        for i in 0..items {
            // Item i's records arrived i / items of the way through the window.
            let arrival = now - window_ms + (i as i64 * window_ms) / items as i64;
            let records: Vec<LogRecord> = (0..args.batch)
                .map(|k| LogRecord {
                    key: LogKey::Wide(DedupKey::of("P", &format!("{i}-{k}"))),
                    content: k as u32,
                    record: k as u32,
                    arrival_ms: arrival + (k as i64 % 1_000),
                })
                .collect();
            writer
                .append(
                    "bench",
                    &shard,
                    &records,
                    &Attempt::default(),
                    (arrival, arrival),
                )
                .await?;
        }
        let write_s = written.elapsed().as_secs_f64();

        let queried = Instant::now();
        let mut pages = db
            .query()
            .table_name(&tables.events)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(
                ":pk",
                aws_sdk_dynamodb::types::AttributeValue::S(partition("bench", &shard)),
            )
            .scan_index_forward(false)
            .consistent_read(true)
            .into_paginator()
            .send();
        let mut read = 0;
        while let Some(page) = pages.next().await {
            read += page?.items().len();
        }
        let query_s = queried.elapsed().as_secs_f64();
        anyhow::ensure!(read as u64 == items, "read {read} of {items} items");

        let pid = std::process::id().to_string();
        let before = proc_kib(&pid, "VmRSS:")?;
        let cold = ShardLogStore::new(db.clone(), tables.events.clone(), window_ms, usize::MAX);
        let loaded = Instant::now();
        cold.refresh("bench", &shard, &[], now).await?;
        let load_s = loaded.elapsed().as_secs_f64();
        let after = proc_kib(&pid, "VmRSS:")?;
        let held = cold.entries() as u64;
        let rss = after.saturating_sub(before) as f64 / 1024.0;
        println!(
            "{window_s}\t{held}\t{items}\t{write_s:.1}\t{query_s:.3}\t{load_s:.3}\t{:.2}\t{:.0}\t{rss:.0}\t{:.0}",
            load_s / query_s,
            held as f64 / load_s,
            rss * 1024.0 * 1024.0 / held.max(1) as f64,
        );
        drop(cold);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    aws.stop().await;
    Ok(())
}
