//! The batch's counts added to the API's statistics (store/src/stats.rs): two UpdateItems
//! per batch, whatever its size. A failure here is logged and never fails the batch.

use chrono::{DateTime, Utc};
use inventory_store::stats::{self, StatsCounters};
use inventory_store::StoreError;

use super::{BatchReport, Processor};

impl Processor {
    pub(super) async fn add_stats(
        &self,
        report: &BatchReport,
        max_applied_arrival: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        stats::add(
            &self.db,
            &self.tables,
            &counters(report),
            max_applied_arrival,
            now,
        )
        .await
    }
}

fn counters(report: &BatchReport) -> StatsCounters {
    StatsCounters {
        records: report.records as u64,
        applied: report.applied,
        duplicates: report.redeliveries + report.producer_duplicates,
        producer_duplicates: report.producer_duplicates,
        rejected: report.rejected_total(),
        batches: 1,
        dedup_log_writes: report.log.write_requests,
        dedup_log_write_units: report.log.write_units,
        dedup_log_reads: report.log.read_requests,
        rejected_by_reason: report.rejected.clone(),
    }
}
