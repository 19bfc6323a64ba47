//! The processor's counters for the API's figures, in the events table's `STATS` partition,
//! all **per shard** so no key takes every batch's write:
//!
//! - `sk = SHARD#<shardId>`: the running totals of the batches of that shard (kept for good):
//!   the delivery counters of [`StatsCounters`], the product counters of [`ProductDelta`]
//!   (`products`, `active_products`, `units`, `events_applied`: the changes the shard's
//!   batches applied, so only their sum over all shards means anything), `through` (the
//!   number of the last shard log item counted), the newest applied arrival and its lag.
//! - `sk = BUCKET#<start, epoch seconds, 10 digits>#<shardId>`: the same delivery counters
//!   per 10-second bucket and shard (kept a day); the readers sum a bucket's shards.
//!
//! A batch adds to both in the same `TransactWriteItems` as its shard log item
//! (`shard_log.rs`), which is conditional on its number being free, so a batch counts
//! once or not at all (docs/consistency.md, "Counters").
//! Before this layout a single `TOTAL` item and shard-less buckets held the totals; the
//! readers still read such buckets, not the `TOTAL` item.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use inventory_domain::{ProductRecord, ProductStatus, RejectionReason};

use crate::config::Tables;
use crate::error::StoreError;
use crate::items::Item;

pub const PK: &str = "STATS";
pub const BUCKET_SECS: i64 = 10;
/// Buckets are kept a day (TTL).
pub const TTL_SECS: i64 = 86_400;
/// The sort key prefix of the per-shard running totals.
pub const SHARD_PREFIX: &str = "SHARD#";

const BUCKET_PREFIX: &str = "BUCKET#";

/// The start of the bucket holding `epoch_secs`.
pub fn bucket_start(epoch_secs: i64) -> i64 {
    epoch_secs - epoch_secs.rem_euclid(BUCKET_SECS)
}

/// The sort key of the bucket starting at `bucket_start_epoch_secs`.
pub fn bucket_sort_key(bucket_start_epoch_secs: i64) -> String {
    format!("{BUCKET_PREFIX}{bucket_start_epoch_secs:010}")
}

/// The sort key of `shard`'s running totals.
pub fn shard_sort_key(shard: &str) -> String {
    format!("{SHARD_PREFIX}{shard}")
}

/// The sort key of `shard`'s part of the bucket starting at `bucket_start_epoch_secs`.
pub fn shard_bucket_sort_key(bucket_start_epoch_secs: i64, shard: &str) -> String {
    format!("{}#{shard}", bucket_sort_key(bucket_start_epoch_secs))
}

/// The counter of rejections for one reason (`rejected_<reason>`).
pub fn reason_counter(reason: RejectionReason) -> String {
    format!("rejected_{}", reason.as_str())
}

/// The key of `shard`'s running totals.
pub fn shard_key(shard: &str) -> Item {
    key(shard_sort_key(shard))
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
    pub shard_log_writes: u64,
    pub shard_log_write_units: u64,
    pub shard_log_reads: u64,
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
            ("shard_log_writes", self.shard_log_writes),
            ("shard_log_write_units", self.shard_log_write_units),
            ("shard_log_reads", self.shard_log_reads),
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

    /// Adds `other`'s counts (shards summed on read).
    pub fn add(&mut self, other: &StatsCounters) {
        self.records += other.records;
        self.applied += other.applied;
        self.duplicates += other.duplicates;
        self.producer_duplicates += other.producer_duplicates;
        self.rejected += other.rejected;
        self.batches += other.batches;
        self.shard_log_writes += other.shard_log_writes;
        self.shard_log_write_units += other.shard_log_write_units;
        self.shard_log_reads += other.shard_log_reads;
        for (reason, n) in &other.rejected_by_reason {
            *self.rejected_by_reason.entry(*reason).or_default() += n;
        }
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
            shard_log_writes: get("shard_log_writes")?,
            shard_log_write_units: get("shard_log_write_units")?,
            shard_log_reads: get("shard_log_reads")?,
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

/// The changes a batch applied to a shard's products, as the shard item counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProductDelta {
    /// +1 per product item created.
    pub products: i64,
    /// +1 per product that became active, −1 per product removed.
    pub active_products: i64,
    /// The change of units in stock of active products.
    pub units: i64,
    /// +1 per event applied.
    pub events_applied: i64,
}

impl ProductDelta {
    /// What one product write changed, from the item it was conditional on (`None`: the
    /// product had no item) to the state it wrote.
    pub fn between(before: Option<&ProductRecord>, after: Option<&ProductRecord>) -> Self {
        let active = |r: Option<&ProductRecord>| {
            r.filter(|r| r.status == ProductStatus::Active)
                .map_or((0, 0), |r| {
                    (1, i64::try_from(r.quantity).unwrap_or(i64::MAX))
                })
        };
        let ((was, was_units), (is, is_units)) = (active(before), active(after));
        Self {
            products: i64::from(before.is_none() && after.is_some()),
            active_products: is - was,
            units: is_units - was_units,
            events_applied: 0,
        }
    }

    pub fn add(&mut self, other: ProductDelta) {
        self.products += other.products;
        self.active_products += other.active_products;
        self.units += other.units;
        self.events_applied += other.events_applied;
    }

    /// The counters with their attribute names (the API's `SHARD_COUNTERS` reads them).
    pub fn named(&self) -> [(&'static str, i64); 4] {
        [
            ("products", self.products),
            ("active_products", self.active_products),
            ("units", self.units),
            ("events_applied", self.events_applied),
        ]
    }

    fn from_item(item: &Item, key: &str) -> Result<Self, StoreError> {
        let get = |name: &str| number(item, name, key).map(Option::unwrap_or_default);
        Ok(Self {
            products: get("products")?,
            active_products: get("active_products")?,
            units: get("units")?,
            events_applied: get("events_applied")?,
        })
    }
}

/// A bucket or the totals, as read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsItem {
    /// The bucket's start (epoch seconds); `None` for the totals.
    pub bucket_start: Option<i64>,
    pub counters: StatsCounters,
    /// The product counters (zero in buckets).
    pub products: ProductDelta,
    /// When a batch last added to it (epoch milliseconds).
    pub updated_at_ms: Option<i64>,
    /// The arrival time of the newest event applied (epoch milliseconds)…
    pub last_applied_arrival_ms: Option<i64>,
    /// …and how old it was when it was applied.
    pub last_lag_ms: Option<i64>,
    /// The shard log partition its shard's batches append to and the number of the last
    /// item counted ([`Through`]); a totals item keeps the last one, a bucket the last in
    /// its 10 seconds. `None` before the processor recorded it.
    pub through: Option<(String, u64)>,
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
            // `BUCKET#<start>#<shard>`, or `BUCKET#<start>` as written before shards.
            Some(rest) => {
                let start = rest.split_once('#').map_or(rest, |(start, _)| start);
                Some(start.parse().map_err(|_| StoreError::CorruptItem {
                    key: key.clone(),
                    field: "sk (a bucket's start in epoch seconds)".into(),
                })?)
            }
            None if sk.starts_with(SHARD_PREFIX) => None,
            None => {
                return Err(StoreError::CorruptItem {
                    key,
                    field: "sk (BUCKET#<start>#<shard> or SHARD#<shard>)".into(),
                })
            }
        };
        Ok(Self {
            bucket_start,
            counters: StatsCounters::from_item(item, &key)?,
            products: ProductDelta::from_item(item, &key)?,
            updated_at_ms: number(item, "updated_at", &key)?,
            last_applied_arrival_ms: number(item, "last_applied_arrival_ms", &key)?,
            last_lag_ms: number(item, "last_lag_ms", &key)?,
            through: item
                .get("log_pk")
                .and_then(|v| v.as_s().ok())
                .cloned()
                .zip(number(item, "through", &key)?),
        })
    }
}

impl StatsItem {
    /// Adds another shard's part: counts summed, the newest batch's times kept.
    fn merge(&mut self, other: StatsItem) {
        // Each shard has its own log; a sum has none.
        self.through = None;
        self.counters.add(&other.counters);
        self.products.add(other.products);
        self.updated_at_ms = self.updated_at_ms.max(other.updated_at_ms);
        if other.last_applied_arrival_ms > self.last_applied_arrival_ms {
            self.last_applied_arrival_ms = other.last_applied_arrival_ms;
            self.last_lag_ms = other.last_lag_ms;
        }
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

/// The shard log item a batch's counters ride with: its partition (`DEDUP#<stream>#<shard>`)
/// and number. The totals item keeps both, so a reader knows where each shard's log is and
/// how far it goes (the API's catalog reads the products each item changed).
#[derive(Debug, Clone, Copy)]
pub struct Through<'a> {
    pub log_pk: &'a str,
    pub number: u64,
}

/// What one batch adds to a shard's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardAdd {
    pub counters: StatsCounters,
    pub products: ProductDelta,
    /// The arrival time of the newest event applied (epoch milliseconds).
    pub last_applied_arrival_ms: Option<i64>,
}

/// The two updates that add `add` to `shard`'s running totals and to its part of the bucket
/// of `now`, for one `TransactWriteItems`. With `through` (the number of the shard log item
/// written in the same transaction) the totals and the bucket record it and its partition,
/// for audits and for the API's catalog, which follows the log items' `changed` product ids.
///
/// Exactly once comes from the log item's `attribute_not_exists`: the transaction lands
/// only with a new log item, and a retried request either is recognised by its client
/// token or finds the item and cancels. No condition on `through` itself: a shard idle
/// past its log items' TTL numbers them from 1 again, and a `through < n` condition would
/// then refuse every batch of that shard.
pub fn updates(
    table: &str,
    shard: &str,
    add: &ShardAdd,
    through: Option<Through<'_>>,
    now: DateTime<Utc>,
) -> Result<[Update; 2], StoreError> {
    let build = |sk: String, totals: bool| {
        let mut names: HashMap<String, String> = HashMap::new();
        let mut values: Item = HashMap::new();
        let mut adds = Vec::new();
        let counters = add
            .counters
            .attributes()
            .into_iter()
            .map(|(n, v)| (n, i64::try_from(v).unwrap_or(i64::MAX)));
        let products = add
            .products
            .named()
            .into_iter()
            .map(|(n, v)| (n.to_owned(), v))
            .filter(|_| totals);
        for (k, (name, value)) in counters.chain(products).enumerate() {
            adds.push(format!("#a{k} :a{k}"));
            names.insert(format!("#a{k}"), name);
            values.insert(format!(":a{k}"), AttributeValue::N(value.to_string()));
        }
        let mut set = vec!["updated_at = :now".to_owned()];
        values.insert(
            ":now".into(),
            AttributeValue::N(now.timestamp_millis().to_string()),
        );
        if !totals {
            set.push("#ttl = :ttl".to_owned());
            names.insert("#ttl".into(), "ttl".into());
            values.insert(
                ":ttl".into(),
                AttributeValue::N((now.timestamp() + TTL_SECS).to_string()),
            );
        }
        if let Some(arrival) = add.last_applied_arrival_ms {
            set.push("last_applied_arrival_ms = :arr".to_owned());
            set.push("last_lag_ms = :lag".to_owned());
            values.insert(":arr".into(), AttributeValue::N(arrival.to_string()));
            values.insert(
                ":lag".into(),
                AttributeValue::N((now.timestamp_millis() - arrival).to_string()),
            );
        }
        // The bucket keeps them too: a reader that wants what changed lately reads the
        // current buckets, a few small items, instead of every shard's totals.
        if let Some(t) = through {
            set.push("through = :through".to_owned());
            set.push("log_pk = :log_pk".to_owned());
            values.insert(":through".into(), AttributeValue::N(t.number.to_string()));
            values.insert(":log_pk".into(), AttributeValue::S(t.log_pk.to_owned()));
        }
        Update::builder()
            .table_name(table)
            .set_key(Some(key(sk)))
            .update_expression(format!("SET {} ADD {}", set.join(", "), adds.join(", ")))
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(|e| StoreError::Dynamo {
                operation: "TransactWriteItems (statistics)",
                message: e.to_string(),
            })
    };
    Ok([
        build(shard_sort_key(shard), true)?,
        build(
            shard_bucket_sort_key(bucket_start(now.timestamp()), shard),
            false,
        )?,
    ])
}

/// Adds `add` to `shard`'s counters on its own (a batch with no shard log item to ride
/// with): one `TransactWriteItems` of the two updates.
pub async fn add(
    db: &Client,
    tables: &Tables,
    shard: &str,
    add: &ShardAdd,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let items = updates(&tables.events, shard, add, None, now)?
        .into_iter()
        .map(|u| TransactWriteItem::builder().update(u).build())
        .collect();
    db.transact_write_items()
        .set_transact_items(Some(items))
        .send()
        .await
        .map_err(|e| StoreError::dynamo("TransactWriteItems (statistics)", e))?;
    Ok(())
}

/// The running totals, every shard's summed; `None` before the first batch.
pub async fn read_total(db: &Client, tables: &Tables) -> Result<Option<StatsItem>, StoreError> {
    let mut pages = db
        .query()
        .table_name(&tables.events)
        .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
        .expression_attribute_values(":pk", AttributeValue::S(PK.to_owned()))
        .expression_attribute_values(":prefix", AttributeValue::S(SHARD_PREFIX.to_owned()))
        .consistent_read(true)
        .into_paginator()
        .send();
    let mut total: Option<StatsItem> = None;
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| StoreError::dynamo("Query (statistics)", e))?;
        for item in page.items() {
            let shard = StatsItem::from_item(item)?;
            match &mut total {
                Some(t) => t.merge(shard),
                None => total = Some(shard),
            }
        }
    }
    Ok(total)
}

/// The buckets starting from `first_start` to `last_start` (epoch seconds, both included)
/// that hold anything, their shards summed, oldest first.
pub async fn read_buckets(
    db: &Client,
    tables: &Tables,
    first_start: i64,
    last_start: i64,
) -> Result<Vec<StatsItem>, StoreError> {
    // `$` sorts after `#`: the last bucket's shard parts are inside the range.
    let last = format!("{}$", bucket_sort_key(last_start));
    let mut pages = db
        .query()
        .table_name(&tables.events)
        .key_condition_expression("pk = :pk AND sk BETWEEN :a AND :b")
        .expression_attribute_values(":pk", AttributeValue::S(PK.to_owned()))
        .expression_attribute_values(":a", AttributeValue::S(bucket_sort_key(first_start)))
        .expression_attribute_values(":b", AttributeValue::S(last))
        .into_paginator()
        .send();
    let mut by_start: BTreeMap<i64, StatsItem> = BTreeMap::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| StoreError::dynamo("Query (statistics)", e))?;
        for item in page.items() {
            let part = StatsItem::from_item(item)?;
            let Some(start) = part.bucket_start else {
                continue;
            };
            match by_start.get_mut(&start) {
                Some(bucket) => bucket.merge(part),
                None => {
                    by_start.insert(start, part);
                }
            }
        }
    }
    Ok(by_start.into_values().collect())
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
            shard_log_writes: 7,
            shard_log_write_units: 8,
            shard_log_reads: 9,
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
        let mut item = shard_key("shardId-000000000001");
        item.insert("applied".into(), AttributeValue::N("7".into()));
        item.insert("units".into(), AttributeValue::N("-3".into()));
        let read = StatsItem::from_item(&item).unwrap();
        assert_eq!((read.bucket_start, read.products.units), (None, -3));
        item.insert(
            "rejected_invalid_json".into(),
            AttributeValue::S("many".into()),
        );
        let err = StatsItem::from_item(&item).unwrap_err().to_string();
        assert!(
            err.contains("rejected_invalid_json")
                && err.contains("STATS/SHARD#shardId-000000000001"),
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
