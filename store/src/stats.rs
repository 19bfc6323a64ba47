//! The processor's counters for the API's figures, in the events table's `STATS` partition:
//! one item per 10-second bucket (`sk = BUCKET#<start, epoch seconds, 10 digits>`, kept a
//! day) and the running totals (`sk = TOTAL`, kept for good). Each batch adds its counts to
//! both with UpdateItem `ADD` (two writes per batch, whatever its size), so the items are
//! written by expression, not whole; [`StatsCounters`] names the counters once for the
//! writer ([`add`]) and the readers ([`StatsItem::from_item`]).
//!
//! They count deliveries, so a batch retried after a crash is counted again; the inventory
//! itself is exact regardless.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use inventory_domain::RejectionReason;

use crate::config::Tables;
use crate::error::StoreError;
use crate::items::Item;

pub const PK: &str = "STATS";
pub const BUCKET_SECS: i64 = 10;
/// Buckets are kept a day (TTL).
pub const TTL_SECS: i64 = 86_400;
/// The running totals since the table was created (same counters, no TTL).
pub const TOTAL_SK: &str = "TOTAL";

const BUCKET_PREFIX: &str = "BUCKET#";

/// The start of the bucket holding `epoch_secs`.
pub fn bucket_start(epoch_secs: i64) -> i64 {
    epoch_secs - epoch_secs.rem_euclid(BUCKET_SECS)
}

/// The sort key of the bucket starting at `bucket_start_epoch_secs`.
pub fn bucket_sort_key(bucket_start_epoch_secs: i64) -> String {
    format!("{BUCKET_PREFIX}{bucket_start_epoch_secs:010}")
}

/// The counter of rejections for one reason (`rejected_<reason>`).
pub fn reason_counter(reason: RejectionReason) -> String {
    format!("rejected_{}", reason.as_str())
}

/// The key of the totals item.
pub fn total_key() -> Item {
    key(TOTAL_SK.to_owned())
}

fn key(sk: String) -> Item {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(PK.to_owned())),
        ("sk".to_owned(), AttributeValue::S(sk)),
    ])
}

/// The counters one batch adds, and a bucket or the totals hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsCounters {
    /// Records delivered.
    pub records: u64,
    pub applied: u64,
    /// Redeliveries and producer duplicates together.
    pub duplicates: u64,
    pub producer_duplicates: u64,
    /// Rejections of every reason.
    pub rejected: u64,
    pub batches: u64,
    /// What recognising duplicates at any distance costs (docs/consistency.md).
    pub dedup_log_writes: u64,
    pub dedup_log_write_units: u64,
    pub dedup_log_reads: u64,
    pub rejected_by_reason: BTreeMap<RejectionReason, u64>,
}

impl StatsCounters {
    fn named(&self) -> [(&'static str, u64); 9] {
        [
            ("records", self.records),
            ("applied", self.applied),
            ("duplicates", self.duplicates),
            ("producer_duplicates", self.producer_duplicates),
            ("rejected", self.rejected),
            ("batches", self.batches),
            ("dedup_log_writes", self.dedup_log_writes),
            ("dedup_log_write_units", self.dedup_log_write_units),
            ("dedup_log_reads", self.dedup_log_reads),
        ]
    }

    /// Every counter with its attribute name, the reasons' included.
    pub fn attributes(&self) -> Vec<(String, u64)> {
        self.named()
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .chain(
                self.rejected_by_reason
                    .iter()
                    .map(|(r, n)| (reason_counter(*r), *n)),
            )
            .collect()
    }

    fn from_item(item: &Item, key: &str) -> Result<Self, StoreError> {
        let get = |name: &str| number(item, name, key).map(Option::unwrap_or_default);
        let mut counters = Self {
            records: get("records")?,
            applied: get("applied")?,
            duplicates: get("duplicates")?,
            producer_duplicates: get("producer_duplicates")?,
            rejected: get("rejected")?,
            batches: get("batches")?,
            dedup_log_writes: get("dedup_log_writes")?,
            dedup_log_write_units: get("dedup_log_write_units")?,
            dedup_log_reads: get("dedup_log_reads")?,
            rejected_by_reason: BTreeMap::new(),
        };
        for reason in RejectionReason::ALL {
            if let Some(n) = number(item, &reason_counter(reason), key)? {
                counters.rejected_by_reason.insert(reason, n);
            }
        }
        Ok(counters)
    }
}

/// A bucket or the totals, as read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsItem {
    /// The bucket's start (epoch seconds); `None` for the totals.
    pub bucket_start: Option<i64>,
    pub counters: StatsCounters,
    /// When a batch last added to it (epoch milliseconds).
    pub updated_at_ms: Option<i64>,
    /// The arrival time of the newest event applied (epoch milliseconds)…
    pub last_applied_arrival_ms: Option<i64>,
    /// …and how old it was when it was applied.
    pub last_lag_ms: Option<i64>,
}

impl StatsItem {
    /// Decodes a stored item; a counter that is not a number is named in the error.
    pub fn from_item(item: &Item) -> Result<Self, StoreError> {
        let sk = item
            .get("sk")
            .and_then(|v| v.as_s().ok())
            .map_or("", String::as_str);
        let key = format!("{PK}/{sk}");
        let bucket_start = match sk.strip_prefix(BUCKET_PREFIX) {
            Some(start) => Some(start.parse().map_err(|_| StoreError::CorruptItem {
                key: key.clone(),
                field: "sk (a bucket's start in epoch seconds)".into(),
            })?),
            None if sk == TOTAL_SK => None,
            None => {
                return Err(StoreError::CorruptItem {
                    key,
                    field: "sk (BUCKET#<start> or TOTAL)".into(),
                })
            }
        };
        Ok(Self {
            bucket_start,
            counters: StatsCounters::from_item(item, &key)?,
            updated_at_ms: number(item, "updated_at", &key)?,
            last_applied_arrival_ms: number(item, "last_applied_arrival_ms", &key)?,
            last_lag_ms: number(item, "last_lag_ms", &key)?,
        })
    }
}

fn number<T: std::str::FromStr>(
    item: &Item,
    name: &str,
    key: &str,
) -> Result<Option<T>, StoreError> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::N(n)) => n.parse().map(Some).map_err(|_| StoreError::CorruptItem {
            key: key.to_owned(),
            field: format!("{name} (out of range: {n})"),
        }),
        Some(_) => Err(StoreError::CorruptItem {
            key: key.to_owned(),
            field: format!("{name} (not a number)"),
        }),
    }
}

/// Adds `counters` to the bucket of `now` and to the totals, and records the newest applied
/// event's arrival and lag when there was one.
pub async fn add(
    db: &Client,
    tables: &Tables,
    counters: &StatsCounters,
    last_applied_arrival_ms: Option<i64>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let adds = counters.attributes();
    let update = |sk: String, ttl: Option<i64>| {
        let mut req = db
            .update_item()
            .table_name(&tables.events)
            .set_key(Some(key(sk)));
        let mut add = Vec::with_capacity(adds.len());
        for (k, (name, value)) in adds.iter().enumerate() {
            add.push(format!("#a{k} :a{k}"));
            req = req
                .expression_attribute_names(format!("#a{k}"), name)
                .expression_attribute_values(
                    format!(":a{k}"),
                    AttributeValue::N(value.to_string()),
                );
        }
        let mut set = vec!["updated_at = :now".to_owned()];
        req = req.expression_attribute_values(
            ":now",
            AttributeValue::N(now.timestamp_millis().to_string()),
        );
        if let Some(ttl) = ttl {
            set.push("#ttl = :ttl".to_owned());
            req = req
                .expression_attribute_names("#ttl", "ttl")
                .expression_attribute_values(":ttl", AttributeValue::N(ttl.to_string()));
        }
        if let Some(arrival) = last_applied_arrival_ms {
            set.push("last_applied_arrival_ms = :arr".to_owned());
            set.push("last_lag_ms = :lag".to_owned());
            req = req
                .expression_attribute_values(":arr", AttributeValue::N(arrival.to_string()))
                .expression_attribute_values(
                    ":lag",
                    AttributeValue::N((now.timestamp_millis() - arrival).to_string()),
                );
        }
        req.update_expression(format!("SET {} ADD {}", set.join(", "), add.join(", ")))
            .send()
    };
    let (bucket, total) = futures::join!(
        update(
            bucket_sort_key(bucket_start(now.timestamp())),
            Some(now.timestamp() + TTL_SECS)
        ),
        update(TOTAL_SK.to_owned(), None)
    );
    bucket.map_err(|e| StoreError::dynamo("UpdateItem (statistics)", e))?;
    total.map_err(|e| StoreError::dynamo("UpdateItem (statistics)", e))?;
    Ok(())
}

/// The running totals; `None` before the first batch.
pub async fn read_total(db: &Client, tables: &Tables) -> Result<Option<StatsItem>, StoreError> {
    let out = db
        .get_item()
        .table_name(&tables.events)
        .set_key(Some(total_key()))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| StoreError::dynamo("GetItem (statistics)", e))?;
    out.item().map(StatsItem::from_item).transpose()
}

/// The buckets starting from `first_start` to `last_start` (epoch seconds, both included)
/// that hold anything, oldest first.
pub async fn read_buckets(
    db: &Client,
    tables: &Tables,
    first_start: i64,
    last_start: i64,
) -> Result<Vec<StatsItem>, StoreError> {
    let mut pages = db
        .query()
        .table_name(&tables.events)
        .key_condition_expression("pk = :pk AND sk BETWEEN :a AND :b")
        .expression_attribute_values(":pk", AttributeValue::S(PK.to_owned()))
        .expression_attribute_values(":a", AttributeValue::S(bucket_sort_key(first_start)))
        .expression_attribute_values(":b", AttributeValue::S(bucket_sort_key(last_start)))
        .into_paginator()
        .send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| StoreError::dynamo("Query (statistics)", e))?;
        for item in page.items() {
            out.push(StatsItem::from_item(item)?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reader_reads_every_counter_the_writer_names() {
        let mut counters = StatsCounters {
            records: 1,
            applied: 2,
            duplicates: 3,
            producer_duplicates: 4,
            rejected: 5,
            batches: 6,
            dedup_log_writes: 7,
            dedup_log_write_units: 8,
            dedup_log_reads: 9,
            rejected_by_reason: BTreeMap::new(),
        };
        for (n, reason) in RejectionReason::ALL.into_iter().enumerate() {
            counters.rejected_by_reason.insert(reason, 10 + n as u64);
        }
        // As DynamoDB holds it after `add`: each named counter, plus the SET attributes.
        let mut item: Item = counters
            .attributes()
            .into_iter()
            .map(|(name, value)| (name, AttributeValue::N(value.to_string())))
            .collect();
        item.extend(key(bucket_sort_key(1_694_433_600)));
        item.insert(
            "updated_at".into(),
            AttributeValue::N("1694433601234".into()),
        );
        item.insert("last_lag_ms".into(), AttributeValue::N("42".into()));
        let read = StatsItem::from_item(&item).unwrap();
        assert_eq!(read.counters, counters);
        assert_eq!(read.bucket_start, Some(1_694_433_600));
        assert_eq!(read.updated_at_ms, Some(1_694_433_601_234));
        assert_eq!(
            (read.last_lag_ms, read.last_applied_arrival_ms),
            (Some(42), None)
        );
    }

    #[test]
    fn the_totals_have_no_bucket_and_a_bad_counter_is_named() {
        let mut item = total_key();
        item.insert("applied".into(), AttributeValue::N("7".into()));
        assert_eq!(StatsItem::from_item(&item).unwrap().bucket_start, None);
        item.insert(
            "rejected_invalid_json".into(),
            AttributeValue::S("many".into()),
        );
        let err = StatsItem::from_item(&item).unwrap_err().to_string();
        assert!(
            err.contains("rejected_invalid_json") && err.contains("STATS/TOTAL"),
            "{err}"
        );
    }

    #[test]
    fn buckets_are_ten_seconds_and_sort_by_time() {
        assert_eq!(bucket_start(1_694_433_609), 1_694_433_600);
        assert_eq!(bucket_start(-1), -10);
        assert!(bucket_sort_key(999_999_990) < bucket_sort_key(1_000_000_000));
    }
}
