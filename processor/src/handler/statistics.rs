//! The batch's counts in its shard's counter items (store/src/stats.rs): updates that ride
//! in the shard log's transaction (`run.rs`, step 5c), or, for a batch with nothing to log,
//! one transaction of their own.

use aws_sdk_dynamodb::types::Update;
use chrono::{DateTime, Utc};
use inventory_store::shard_log::LogCost;
use inventory_store::stats::{self, ShardAdd, StatsCounters};
use inventory_store::StoreError;

use super::{BatchReport, Processor};

impl Processor {
    /// The updates adding `add` to `shard`'s running totals (conditional on `through`, the
    /// log item written with them) and to its part of the current 10-second bucket.
    pub(super) fn counter_updates(
        &self,
        shard: &str,
        add: &ShardAdd,
        through: Option<stats::Through<'_>>,
        now: DateTime<Utc>,
    ) -> Result<[Update; 2], StoreError> {
        stats::updates(&self.tables.events, shard, add, through, now)
    }

    /// Adds `add` to `shard`'s counters without a log item.
    pub(super) async fn add_counters(
        &self,
        shard: &str,
        add: &ShardAdd,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        stats::add(&self.db, &self.tables, shard, add, now).await
    }
}

/// The batch's delivery counts, with the shard log's cost `log` (this append's included).
pub(super) fn delivery_counters(report: &BatchReport, log: LogCost) -> StatsCounters {
    StatsCounters {
        records: report.records as u64,
        applied: report.applied,
        duplicates: report.redeliveries + report.producer_duplicates,
        producer_duplicates: report.producer_duplicates,
        rejected: report.rejected_total(),
        batches: 1,
        shard_log_writes: log.write_requests,
        shard_log_write_units: log.write_units,
        shard_log_reads: log.read_requests,
        rejected_by_reason: report.rejected.clone(),
    }
}
