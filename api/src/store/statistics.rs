//! `/api/stats`: the processor's counters (the store's [`stats`](inventory_store::stats)
//! items): every shard's running totals (one Query), summed, and the 10-second buckets of
//! the chart. A warm instance keeps what cannot change any more ([`StatsCache`]): buckets
//! that ended over [`FINAL_AFTER_SECS`] ago, and the totals while no newer bucket shows a
//! batch. So a poll while nothing flows reads the last half-minute of buckets, an empty
//! Query (0.5 read units), however many shards and buckets there are.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use inventory_domain::api::{Stats, ThroughputPoint};
use inventory_store::stats::{self, StatsItem, BUCKET_SECS};
use inventory_store::Tables;
use tokio::sync::Mutex;

use crate::error::ApiError;

/// How far back the chart goes.
const CHART_SECS: i64 = 600;
/// A bucket takes batches while its 10 seconds last by the processors' clocks; this long
/// after its start no batch adds to it any more (clocks and a batch's own time included).
pub const FINAL_AFTER_SECS: i64 = 40;

/// What a warm instance has read and will not read again.
#[derive(Default)]
pub struct StatsCache {
    state: Mutex<Cached>,
}

#[derive(Default)]
struct Cached {
    /// Buckets (summed over shards) that no batch adds to any more, by start.
    final_buckets: BTreeMap<i64, StatsItem>,
    /// Buckets from this start on are read at each request.
    read_from: Option<i64>,
    /// The totals and the newest batch time (ms) any bucket showed when they were read.
    totals: Option<(Option<StatsItem>, Option<i64>)>,
}

impl StatsCache {
    pub async fn stats(&self, db: &Client, tables: &Tables) -> Result<Stats, ApiError> {
        let now = Utc::now();
        let current = stats::bucket_start(now.timestamp());
        let first = current - CHART_SECS + BUCKET_SECS;
        let mut cached = self.state.lock().await;
        let from = cached.read_from.map_or(first, |f| f.max(first));
        let fresh = stats::read_buckets(db, tables, from, current).await?;
        // The newest batch any bucket read now shows: the totals are read again only when
        // a batch came after the last read of them.
        let newest = fresh.iter().filter_map(|b| b.updated_at_ms).max();
        let stale = match &cached.totals {
            None => true,
            Some((_, seen)) => newest.is_some_and(|n| Some(n) > *seen),
        };
        if stale {
            let total = stats::read_total(db, tables).await?;
            let seen = total.as_ref().and_then(|t| t.updated_at_ms).max(newest);
            cached.totals = Some((total, seen));
        }
        let final_before = stats::bucket_start(now.timestamp() - FINAL_AFTER_SECS);
        let mut buckets: Vec<StatsItem> = cached
            .final_buckets
            .range(first..)
            .map(|(_, b)| b.clone())
            .collect();
        for b in fresh {
            if let Some(start) = b.bucket_start {
                if start < final_before {
                    cached.final_buckets.insert(start, b.clone());
                }
            }
            buckets.push(b);
        }
        cached.final_buckets = cached.final_buckets.split_off(&first);
        cached.read_from = Some(final_before);
        let total = cached.totals.as_ref().and_then(|(t, _)| t.clone());
        Ok(shape(now, total, &buckets))
    }
}

/// One uncached read of everything (a cold instance's first answer is the same).
pub async fn stats(db: &Client, tables: &Tables) -> Result<Stats, ApiError> {
    let now = Utc::now();
    let current = stats::bucket_start(now.timestamp());
    let first = current - CHART_SECS + BUCKET_SECS;
    let (total, buckets) = futures::try_join!(
        stats::read_total(db, tables),
        stats::read_buckets(db, tables, first, current)
    )?;
    Ok(shape(now, total, &buckets))
}

/// A counter that can only be negative through a bug or a hand edit reads as 0.
fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// The response from what was read: every bucket of the chart (empty ones as zero) and the
/// rejections by reason that happened at all. Before the first batch (no totals item) the
/// totals are `null`.
fn shape(now: DateTime<Utc>, total: Option<StatsItem>, buckets: &[StatsItem]) -> Stats {
    let current = stats::bucket_start(now.timestamp());
    let first = current - CHART_SECS + BUCKET_SECS;
    let by_start: BTreeMap<i64, &StatsItem> = buckets
        .iter()
        .filter_map(|b| Some((b.bucket_start?, b)))
        .collect();
    let mut throughput = Vec::new();
    let mut last_minute = 0;
    for start in (first..=current).step_by(BUCKET_SECS as usize) {
        let bucket = by_start.get(&start);
        let applied = bucket.map_or(0, |b| b.counters.applied);
        let rejected = bucket.map_or(0, |b| b.counters.rejected);
        if start > current - 60 {
            last_minute += applied;
        }
        throughput.push(ThroughputPoint {
            at: DateTime::<Utc>::from_timestamp(start, 0).unwrap_or(now),
            applied_per_sec: applied as f64 / BUCKET_SECS as f64,
            rejected_per_sec: rejected as f64 / BUCKET_SECS as f64,
            lag_ms: bucket.and_then(|b| b.last_lag_ms),
        });
    }
    let known = total.is_some();
    let total = total.unwrap_or_default();
    let rejections: BTreeMap<String, u64> = total
        .counters
        .rejected_by_reason
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(r, n)| (r.as_str().to_owned(), *n))
        .collect();
    let p = total.products;
    Stats {
        products: known.then(|| count(p.products)),
        active_products: known.then(|| count(p.active_products)),
        units: known.then(|| count(p.units)),
        events_applied: known.then_some(total.counters.applied),
        duplicates_ignored: total.counters.duplicates,
        rejections_total: rejections.values().sum(),
        rejections,
        lag_ms: total.last_lag_ms,
        last_batch_at: total
            .updated_at_ms
            .and_then(DateTime::<Utc>::from_timestamp_millis),
        throughput_last_minute: last_minute as f64 / 60.0,
        throughput,
        generated_at: now,
    }
}

#[cfg(test)]
mod tests {
    use inventory_domain::RejectionReason;
    use inventory_store::stats::StatsCounters;

    use super::*;

    fn bucket(start: i64, applied: u64) -> StatsItem {
        StatsItem {
            bucket_start: Some(start),
            counters: StatsCounters {
                applied,
                ..StatsCounters::default()
            },
            ..StatsItem::default()
        }
    }

    #[test]
    fn the_chart_has_every_bucket_and_the_last_minute_averages_six_of_them() {
        let now = DateTime::<Utc>::from_timestamp(1_694_433_605, 0).unwrap();
        let current = 1_694_433_600;
        let mut total = StatsItem::default();
        total.counters.duplicates = 4;
        total
            .counters
            .rejected_by_reason
            .insert(RejectionReason::InvalidJson, 3);
        total
            .counters
            .rejected_by_reason
            .insert(RejectionReason::InsufficientStock, 0);
        total.last_lag_ms = Some(250);
        total.updated_at_ms = Some(1_694_433_604_000);
        let buckets = [
            bucket(current, 100),
            bucket(current - 50, 20),
            // Older than the last minute: charted, not in the minute's average.
            bucket(current - 60, 1_000),
        ];
        total.products.products = 3;
        total.products.active_products = 2;
        total.products.units = 40;
        total.counters.applied = 9;
        let s = shape(now, Some(total), &buckets);
        assert_eq!(s.throughput.len(), (CHART_SECS / BUCKET_SECS) as usize);
        assert_eq!(s.throughput.last().unwrap().applied_per_sec, 10.0);
        // The wire's text: whole seconds for a bucket, milliseconds for the stamps.
        let wire = serde_json::to_value(&s).unwrap();
        let points = wire["throughput"].as_array().unwrap();
        assert_eq!(points.last().unwrap()["at"], "2023-09-11T12:00:00Z");
        assert_eq!(wire["last_batch_at"], "2023-09-11T12:00:04.000Z");
        assert_eq!(wire["generated_at"], "2023-09-11T12:00:05.000Z");
        assert_eq!(s.throughput_last_minute, 2.0);
        assert_eq!(
            s.rejections,
            BTreeMap::from([("invalid_json".to_owned(), 3)])
        );
        assert_eq!((s.rejections_total, s.duplicates_ignored), (3, 4));
        assert_eq!(s.lag_ms, Some(250));
        assert_eq!(
            (s.products, s.active_products, s.units, s.events_applied),
            (Some(3), Some(2), Some(40), Some(9))
        );
    }

    #[test]
    fn before_the_first_batch_the_totals_are_null_not_zero() {
        let now = DateTime::<Utc>::from_timestamp(1_694_433_605, 0).unwrap();
        let s = shape(now, None, &[]);
        let json = serde_json::to_value(&s).unwrap();
        for field in ["products", "active_products", "units", "events_applied"] {
            assert!(json[field].is_null(), "{field}: {json}");
        }
        assert!(s
            .throughput
            .iter()
            .all(|p| p.applied_per_sec == 0.0 && p.lag_ms.is_none()));
    }
}
