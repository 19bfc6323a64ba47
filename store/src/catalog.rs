//! The reads behind the API's catalog (`inventory_domain::catalog`): the whole inventory
//! once, by a parallel Scan, then only the products that changed, found through the shard
//! logs.
//!
//! Each shard log item names the products its delivery wrote (`changed`, see
//! [`shard_log::CHANGED`]), and each shard's statistics items (its totals, and its part of
//! the current 10-second bucket) keep the partition of its log and the number of its last
//! item (`log_pk`, `through`). A reader that knows how far it read each log asks "what is
//! past it" with:
//!
//! - idle: one Query of the buckets since its last look, empty when nothing happened (the
//!   smallest read DynamoDB bills: 0.5 read units, eventually consistent: a bucket or log
//!   item a replica has not caught up with is read at the next look, since a reader moves
//!   its place in a log only to what it read);
//! - after a gap longer than the buckets it reads, or at the start: one Query of every
//!   shard's totals;
//! - per shard that moved: a Query of its log items past the number it had, then a
//!   BatchGetItem (consistent) of the products they name.
//!
//! So the cost of keeping the catalog follows what changed, not the catalog's size.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use futures::stream::{self, StreamExt, TryStreamExt};

use crate::batch::{batch_get, UNPROCESSED_RETRY};
use crate::config::Tables;
use crate::error::StoreError;
use crate::items::{product_key, ProductItem};
use crate::shard_log::{self, CHANGED};
use crate::stats::{self, StatsItem};

/// Parallel Scan segments of the load: a 100,000-product catalog is about 40 MB of items.
pub const SCAN_SEGMENTS: i32 = 8;

/// Where each shard log ends: log partition → number of its last item.
pub type Heads = BTreeMap<String, u64>;

/// What a load or a look found, and what it cost (for the API's logs and the benchmark).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct ReadCost {
    pub requests: u64,
    /// Read capacity units DynamoDB reported.
    pub read_units: f64,
}

impl ReadCost {
    fn add(&mut self, consumed: Option<&aws_sdk_dynamodb::types::ConsumedCapacity>) {
        self.requests += 1;
        self.read_units += consumed.and_then(|c| c.capacity_units()).unwrap_or(0.0);
    }

    pub fn plus(mut self, other: ReadCost) -> ReadCost {
        self.requests += other.requests;
        self.read_units += other.read_units;
        self
    }
}

/// Every product item (eventually consistent: the catalog takes what changed during the
/// Scan from the logs afterwards). An item that is not a product is logged and left out.
pub async fn scan_products(
    db: &Client,
    tables: &Tables,
) -> Result<(Vec<ProductItem>, ReadCost), StoreError> {
    let segments = stream::iter(0..SCAN_SEGMENTS)
        .map(|segment| scan_segment(db, tables, segment))
        .buffer_unordered(SCAN_SEGMENTS as usize)
        .try_collect::<Vec<_>>()
        .await?;
    let mut products = Vec::new();
    let mut cost = ReadCost::default();
    for (items, c) in segments {
        products.extend(items);
        cost = cost.plus(c);
    }
    Ok((products, cost))
}

async fn scan_segment(
    db: &Client,
    tables: &Tables,
    segment: i32,
) -> Result<(Vec<ProductItem>, ReadCost), StoreError> {
    let mut pages = db
        .scan()
        .table_name(&tables.inventory)
        .segment(segment)
        .total_segments(SCAN_SEGMENTS)
        .return_consumed_capacity(aws_sdk_dynamodb::types::ReturnConsumedCapacity::Total)
        .into_paginator()
        .send();
    let mut out = Vec::new();
    let mut cost = ReadCost::default();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| StoreError::dynamo("Scan (inventory)", e))?;
        cost.add(page.consumed_capacity());
        for item in page.items.unwrap_or_default() {
            match ProductItem::from_item(item) {
                Ok(p) => out.push(p),
                Err(e) => tracing::warn!(error = %e, "item left out of the catalog"),
            }
        }
    }
    Ok((out, cost))
}

/// Where every shard's log ends, from the shards' totals (one consistent Query).
pub async fn shard_heads(db: &Client, tables: &Tables) -> Result<(Heads, ReadCost), StoreError> {
    let mut pages = db
        .query()
        .table_name(&tables.events)
        .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
        .expression_attribute_values(":pk", AttributeValue::S(stats::PK.to_owned()))
        .expression_attribute_values(":prefix", AttributeValue::S(stats::SHARD_PREFIX.to_owned()))
        .projection_expression("pk, sk, log_pk, through")
        .consistent_read(true)
        .return_consumed_capacity(aws_sdk_dynamodb::types::ReturnConsumedCapacity::Total)
        .into_paginator()
        .send();
    let mut heads = Heads::new();
    let mut cost = ReadCost::default();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| StoreError::dynamo("Query (shard totals)", e))?;
        cost.add(page.consumed_capacity());
        for item in page.items() {
            if let Some((pk, through)) = StatsItem::from_item(item)?.through {
                heads.insert(pk, through);
            }
        }
    }
    Ok((heads, cost))
}

/// The bucket parts written from the bucket starting at `first_start` (epoch seconds) on,
/// each shard's own (not summed), oldest first: what changed lately and the chart's figures.
pub async fn bucket_parts_since(
    db: &Client,
    tables: &Tables,
    first_start: i64,
) -> Result<(Vec<StatsItem>, ReadCost), StoreError> {
    // Every bucket sort key from the first on (`BUCKET#` + 10 digits), and nothing after.
    let mut pages = db
        .query()
        .table_name(&tables.events)
        .key_condition_expression("pk = :pk AND sk BETWEEN :a AND :b")
        .expression_attribute_values(":pk", AttributeValue::S(stats::PK.to_owned()))
        .expression_attribute_values(":a", AttributeValue::S(stats::bucket_sort_key(first_start)))
        .expression_attribute_values(":b", AttributeValue::S("BUCKET#~".to_owned()))
        .return_consumed_capacity(aws_sdk_dynamodb::types::ReturnConsumedCapacity::Total)
        .into_paginator()
        .send();
    let mut parts = Vec::new();
    let mut cost = ReadCost::default();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| StoreError::dynamo("Query (statistics buckets)", e))?;
        cost.add(page.consumed_capacity());
        for item in page.items() {
            parts.push(StatsItem::from_item(item)?);
        }
    }
    Ok((parts, cost))
}

/// What a shard log holds past item `after`: the products its items name and the number of
/// the last item read (`after` when there is none).
pub async fn changed_since(
    db: &Client,
    tables: &Tables,
    log_pk: &str,
    after: u64,
) -> Result<(BTreeSet<String>, u64, ReadCost), StoreError> {
    let mut pages = db
        .query()
        .table_name(&tables.events)
        .key_condition_expression("pk = :pk AND sk > :after")
        .expression_attribute_values(":pk", AttributeValue::S(log_pk.to_owned()))
        .expression_attribute_values(":after", AttributeValue::S(shard_log::sort_key(after)))
        .projection_expression("sk, #changed")
        .expression_attribute_names("#changed", CHANGED)
        .return_consumed_capacity(aws_sdk_dynamodb::types::ReturnConsumedCapacity::Total)
        .into_paginator()
        .send();
    let mut changed = BTreeSet::new();
    let mut last = after;
    let mut cost = ReadCost::default();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| StoreError::dynamo("Query (shard log changes)", e))?;
        cost.add(page.consumed_capacity());
        for item in page.items() {
            if let Some(number) = item
                .get("sk")
                .and_then(|v| v.as_s().ok())
                .and_then(|sk| sk.parse::<u64>().ok())
            {
                last = last.max(number);
            }
            if let Some(AttributeValue::Ss(ids)) = item.get(CHANGED) {
                changed.extend(ids.iter().cloned());
            }
        }
    }
    Ok((changed, last, cost))
}

/// The products named (consistent reads: a log item is written after its products, so these
/// reads see at least what it names). Ids with no item are returned in the second list.
pub async fn products(
    db: &Client,
    tables: &Tables,
    ids: impl IntoIterator<Item = String>,
) -> Result<(Vec<ProductItem>, Vec<String>, ReadCost), StoreError> {
    let ids: BTreeSet<String> = ids.into_iter().collect();
    let got = batch_get(
        db,
        &tables.inventory,
        ids.iter().map(|id| product_key(id)).collect(),
        true,
        UNPROCESSED_RETRY,
    )
    .await;
    if let Some((_, e)) = got.failed.into_iter().next() {
        return Err(e);
    }
    // BatchGetItem reports no capacity here: a consistent read bills 1 unit per 4 KB.
    let cost = ReadCost {
        requests: got.requests,
        read_units: got
            .items
            .iter()
            .map(|i| crate::shard_log::item_size(i).div_ceil(4096).max(1) as f64)
            .sum(),
    };
    let mut found = Vec::new();
    for item in got.items {
        match ProductItem::from_item(item) {
            Ok(p) => found.push(p),
            Err(e) => tracing::warn!(error = %e, "item left out of the catalog"),
        }
    }
    let seen: BTreeSet<&str> = found.iter().map(|p| p.product_id.as_str()).collect();
    let missing = ids
        .iter()
        .filter(|id| !seen.contains(id.as_str()))
        .cloned()
        .collect();
    Ok((found, missing, cost))
}

/// One product's item (a consistent read); `None` when it has none.
pub async fn product(
    db: &Client,
    tables: &Tables,
    product_id: &str,
) -> Result<Option<ProductItem>, StoreError> {
    let out = db
        .get_item()
        .table_name(&tables.inventory)
        .set_key(Some(product_key(product_id)))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| StoreError::dynamo("GetItem (inventory)", e))?;
    out.item.map(ProductItem::from_item).transpose()
}
