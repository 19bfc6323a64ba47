//! `/api/stats`: the product totals ([`super::totals`], never a Scan) plus the processor's
//! counters (the store's [`stats`](inventory_store::stats) items: each shard's running totals
//! and 10-second buckets, summed).

use std::collections::BTreeMap;

use aws_sdk_dynamodb::Client;
use chrono::{DateTime, SecondsFormat, Utc};
use inventory_domain::api::{Stats, ThroughputPoint};
use inventory_store::stats::{self, StatsItem, BUCKET_SECS};
use inventory_store::Tables;

use super::totals::{Totals, TotalsCache};
use crate::error::ApiError;

/// How far back the throughput chart goes.
const CHART_SECS: i64 = 600;

pub async fn stats(db: &Client, tables: &Tables, totals: &TotalsCache) -> Result<Stats, ApiError> {
    let now = Utc::now();
    let totals = totals.get(db, tables).await?;
    let current = stats::bucket_start(now.timestamp());
    let first = current - CHART_SECS + BUCKET_SECS;
    let (total, buckets) = futures::try_join!(
        stats::read_total(db, tables),
        stats::read_buckets(db, tables, first, current)
    )?;
    Ok(shape(now, totals, total.unwrap_or_default(), &buckets))
}

/// The response from what was read: every bucket of the chart (empty ones as zero) and the
/// rejections by reason that happened at all.
fn shape(now: DateTime<Utc>, totals: Totals, total: StatsItem, buckets: &[StatsItem]) -> Stats {
    let current = stats::bucket_start(now.timestamp());
    let first = current - CHART_SECS + BUCKET_SECS;
    let applied_by_start: BTreeMap<i64, u64> = buckets
        .iter()
        .filter_map(|b| Some((b.bucket_start?, b.counters.applied)))
        .collect();
    let mut throughput = Vec::new();
    let mut last_minute = 0;
    for start in (first..=current).step_by(BUCKET_SECS as usize) {
        let applied = applied_by_start.get(&start).copied().unwrap_or(0);
        if start > current - 60 {
            last_minute += applied;
        }
        throughput.push(ThroughputPoint {
            at: DateTime::<Utc>::from_timestamp(start, 0)
                .unwrap_or(now)
                .to_rfc3339_opts(SecondsFormat::Secs, true),
            applied_per_sec: applied as f64 / BUCKET_SECS as f64,
        });
    }
    let rejections: BTreeMap<String, u64> = total
        .counters
        .rejected_by_reason
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(r, n)| (r.as_str().to_owned(), *n))
        .collect();
    let events_applied = totals
        .events_applied
        .or((total.updated_at_ms.is_some()).then_some(total.counters.applied));
    let unavailable = [
        ("products", totals.products.is_none()),
        ("active_products", totals.active_products.is_none()),
        ("units", totals.units.is_none()),
        ("events_applied", events_applied.is_none()),
    ]
    .into_iter()
    .filter(|(_, missing)| *missing)
    .map(|(name, _)| name.to_owned())
    .collect();
    Stats {
        products: totals.products,
        active_products: totals.active_products,
        units: totals.units,
        events_applied,
        duplicates_ignored: total.counters.duplicates,
        rejections_total: rejections.values().sum(),
        rejections,
        lag_ms: total.last_lag_ms,
        last_batch_at: total
            .updated_at_ms
            .and_then(DateTime::<Utc>::from_timestamp_millis)
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true)),
        throughput_last_minute: last_minute as f64 / 60.0,
        throughput,
        generated_at: now.to_rfc3339_opts(SecondsFormat::Millis, true),
        unavailable,
        totals_source: totals.source.as_str().to_owned(),
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
        let totals = Totals {
            products: Some(3),
            active_products: Some(2),
            units: None,
            events_applied: None,
            source: super::super::totals::TotalsSource::StatusIndex,
        };
        let s = shape(now, totals, total, &buckets);
        assert_eq!(s.throughput.len(), (CHART_SECS / BUCKET_SECS) as usize);
        assert_eq!(s.throughput.last().unwrap().applied_per_sec, 10.0);
        assert_eq!(s.throughput.last().unwrap().at, "2023-09-11T12:00:00Z");
        assert_eq!(s.throughput_last_minute, 2.0);
        assert_eq!(
            s.rejections,
            BTreeMap::from([("invalid_json".to_owned(), 3)])
        );
        assert_eq!((s.rejections_total, s.duplicates_ignored), (3, 4));
        assert_eq!(s.lag_ms, Some(250));
        assert_eq!(s.last_batch_at.as_deref(), Some("2023-09-11T12:00:04.000Z"));
        // Units are unknown without shard counters: null and named, not zero.
        assert_eq!(
            (s.products, s.active_products, s.units),
            (Some(3), Some(2), None)
        );
        assert_eq!(s.unavailable, ["units"]);
        assert_eq!(s.totals_source, "status_index");
        // Events applied fall back to the processor's running total.
        assert_eq!(s.events_applied, Some(0));
        let json = serde_json::to_value(&s).unwrap();
        assert!(json["units"].is_null(), "{json}");
    }
}
