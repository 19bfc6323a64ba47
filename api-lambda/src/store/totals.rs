//! Product totals for `/api/stats` without a Scan.
//!
//! **Shard counters** (the layout this API reads; the processor writes them with each batch's
//! shard log item, store/src/stats.rs): one item
//! per Kinesis shard in the events table's statistics partition,
//!
//! | `pk` | `sk` | attributes (numbers, signed) |
//! |---|---|---|
//! | `STATS` | `SHARD#<shardId>` e.g. `SHARD#shardId-000000000003` | `products`, `active_products`, `units`, `events_applied` |
//!
//! Each holds the *changes* the processor made while applying that shard's records:
//! `products` +1 when a product item is created; `active_products` +1 when a product becomes
//! active, −1 when it is removed; `units` the change of units in stock of active products
//! (an add's quantity, an increase's +n, a decrease's −n, a removal's −quantity);
//! `events_applied` +1 per event applied. A product that moves to another shard when the
//! stream reshards keeps being counted correctly, since only the sum over all shards means
//! anything (one shard's item may even go negative). One item per shard, so no single hot
//! key; the API sums them with one Query (`begins_with(sk, "SHARD#")`).
//!
//! Before the first such item exists, the API counts products per status with `Select=COUNT` Queries of
//! the keys-only status index (bounded to [`MAX_COUNT_PAGES`] pages per status) and reports
//! `units` as unavailable: units are not in the index, and only a Scan could add them up.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, Select};
use aws_sdk_dynamodb::Client;
use inventory_domain::ProductStatus;
use inventory_store::tables::STATUS_INDEX;
use inventory_store::{stats, StoreError, Tables};
use tokio::sync::Mutex;

use crate::error::ApiError;

/// The sort key prefix of the per-shard counter items.
pub const SHARD_PREFIX: &str = "SHARD#";
/// The counters a shard item holds.
pub const SHARD_COUNTERS: [&str; 4] = ["products", "active_products", "units", "events_applied"];
/// How many pages of the status index one count may read (each up to 1 MB of keys, some
/// tens of thousands of products); beyond that the count is reported unavailable.
pub const MAX_COUNT_PAGES: usize = 8;

/// Where the totals came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotalsSource {
    ShardCounters,
    StatusIndex,
}

impl TotalsSource {
    pub fn as_str(self) -> &'static str {
        match self {
            TotalsSource::ShardCounters => "shard_counters",
            TotalsSource::StatusIndex => "status_index",
        }
    }
}

/// Product totals; `None` where they cannot be known without a Scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub products: Option<u64>,
    pub active_products: Option<u64>,
    pub units: Option<u64>,
    /// `None` when the shard counters do not have it (the statistics' totals item does).
    pub events_applied: Option<u64>,
    pub source: TotalsSource,
}

/// The sums of the shard counter items; `None` when there are none.
pub async fn read_shard_counters(
    db: &Client,
    tables: &Tables,
) -> Result<Option<[i64; 4]>, ApiError> {
    let mut pages = db
        .query()
        .table_name(&tables.events)
        .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
        .expression_attribute_values(":pk", AttributeValue::S(stats::PK.to_owned()))
        .expression_attribute_values(":prefix", AttributeValue::S(SHARD_PREFIX.to_owned()))
        .into_paginator()
        .send();
    let mut sums = [0i64; 4];
    let mut any = false;
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| StoreError::dynamo("Query (shard counters)", e))?;
        for item in page.items() {
            any = true;
            for (sum, name) in sums.iter_mut().zip(SHARD_COUNTERS) {
                let value = match item.get(name) {
                    None => 0,
                    Some(AttributeValue::N(n)) => {
                        n.parse::<i64>().map_err(|_| corrupt(item, name))?
                    }
                    Some(_) => return Err(corrupt(item, name)),
                };
                *sum = sum.saturating_add(value);
            }
        }
    }
    Ok(any.then_some(sums))
}

fn corrupt(item: &inventory_store::items::Item, name: &str) -> ApiError {
    let sk = item
        .get("sk")
        .and_then(|v| v.as_s().ok())
        .map_or("?", String::as_str);
    StoreError::CorruptItem {
        key: format!("{}/{sk}", stats::PK),
        field: format!("{name} (not a whole number)"),
    }
    .into()
}

/// How many products the status index holds under `status`; `None` past
/// [`MAX_COUNT_PAGES`] pages.
pub async fn count_status(
    db: &Client,
    tables: &Tables,
    status: ProductStatus,
) -> Result<Option<u64>, ApiError> {
    let mut start = None;
    let mut count = 0u64;
    for _ in 0..MAX_COUNT_PAGES {
        let resp = db
            .query()
            .table_name(&tables.inventory)
            .index_name(STATUS_INDEX)
            .key_condition_expression("#st = :st")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":st", AttributeValue::S(status.as_str().to_owned()))
            .select(Select::Count)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| StoreError::dynamo("Query (status index count)", e))?;
        count += u64::try_from(resp.count()).unwrap_or(0);
        match resp.last_evaluated_key {
            Some(key) => start = Some(key),
            None => return Ok(Some(count)),
        }
    }
    tracing::warn!(status = status.as_str(), "product count left unavailable: the status index is larger than the pages one request may read");
    Ok(None)
}

/// The totals: from the shard counters when the processor keeps them, else counted from the
/// status index.
pub async fn read_totals(db: &Client, tables: &Tables) -> Result<Totals, ApiError> {
    if let Some(sums) = read_shard_counters(db, tables).await? {
        // A negative sum means counters went wrong; it is reported unavailable, not shown.
        let [products, active_products, units, events_applied] =
            sums.map(|s| u64::try_from(s).ok());
        return Ok(Totals {
            products,
            active_products,
            units,
            events_applied,
            source: TotalsSource::ShardCounters,
        });
    }
    let (active, removed) = futures::try_join!(
        count_status(db, tables, ProductStatus::Active),
        count_status(db, tables, ProductStatus::Removed)
    )?;
    Ok(Totals {
        products: active.zip(removed).map(|(a, r)| a + r),
        active_products: active,
        units: None,
        events_applied: None,
        source: TotalsSource::StatusIndex,
    })
}

/// The totals, cached briefly so a console polling every second and a half does not read
/// DynamoDB for each poll of each viewer.
pub struct TotalsCache {
    ttl: Duration,
    cached: Mutex<Option<(Instant, Totals)>>,
}

impl TotalsCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            cached: Mutex::new(None),
        }
    }

    pub async fn get(&self, db: &Client, tables: &Tables) -> Result<Totals, ApiError> {
        let mut cached = self.cached.lock().await;
        if let Some((at, totals)) = *cached {
            if at.elapsed() < self.ttl {
                return Ok(totals);
            }
        }
        let totals = read_totals(db, tables).await?;
        *cached = Some((Instant::now(), totals));
        Ok(totals)
    }
}
