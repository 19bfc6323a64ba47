//! Rejected records in the events table: one [`RejectionItem`] per record, written by the
//! processor and read by the API (`/api/rejections`) and the generator's verify.
//!
//! Key scheme: `pk = REJECTIONS#<UTC day of arrival>`, `sk = <arrival ms, 13 digits>#<eventID>`.
//! Newest-first listing is a Query per day, and the key is a function of the record alone,
//! so recording a rejection again overwrites it instead of adding one.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, SubsecRound as _, Utc};
use inventory_domain::api::RejectionView;
use inventory_domain::rfc3339;
use inventory_domain::{PipeRecord, Rejection, RejectionReason};
use serde::{Deserialize, Serialize};

use crate::config::Tables;
use crate::error::StoreError;
use crate::items::{decode, Item};

/// Rejections are kept this long (TTL on the events table).
pub const TTL_DAYS: i64 = 30;
/// At most this much of a rejected record's data is kept, so one hostile record cannot
/// make an item over DynamoDB's 400 KB limit or cost more than a few write units.
pub const PAYLOAD_EXCERPT_CHARS: usize = 1024;
/// Of the record's partition key, at most this much is kept (Kinesis allows 256).
const PARTITION_KEY_CHARS: usize = 256;

const PARTITION_PREFIX: &str = "REJECTIONS#";

/// The partition of the rejections of records that arrived on `day` (`YYYY-MM-DD`, UTC).
pub fn partition(day: &str) -> String {
    format!("{PARTITION_PREFIX}{day}")
}

/// The UTC day (`YYYY-MM-DD`) a record arrived on, which names its rejection's partition.
pub fn day_of(arrival: DateTime<Utc>) -> String {
    arrival.format("%Y-%m-%d").to_string()
}

/// The sort key of a record's rejection: newest first is descending order.
pub fn sort_key(arrival_ms: i64, record_id: &str) -> String {
    format!("{arrival_ms:013}#{record_id}")
}

/// The key (`pk`, `sk`) of the rejection of `record`, wherever it was read from.
pub fn key_of(record: &PipeRecord, now: DateTime<Utc>) -> Item {
    let arrival_ms = record.arrival_millis();
    let arrival = DateTime::<Utc>::from_timestamp_millis(arrival_ms).unwrap_or(now);
    HashMap::from([
        (
            "pk".to_owned(),
            AttributeValue::S(partition(&day_of(arrival))),
        ),
        (
            "sk".to_owned(),
            AttributeValue::S(sort_key(arrival_ms, &record.event_id)),
        ),
    ])
}

/// Everything a user needs to find and understand a rejected record.
#[derive(Debug, Clone)]
pub struct RejectedRecord<'a> {
    pub record: &'a PipeRecord,
    pub rejection: &'a Rejection,
    /// From the event, when it could be read that far.
    pub product_id: Option<&'a str>,
    pub event_id: Option<&'a str>,
}

/// A rejection item, field for field; the one codec its writer and readers use.
/// Everything but the key, `record_id` and `reason` defaults when absent, so a reader
/// still lists an item written before a field existed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectionItem {
    pub pk: String,
    pub sk: String,
    pub reason: RejectionReason,
    #[serde(default)]
    pub detail: String,
    /// The Kinesis record's eventID (`shardId-…:sequenceNumber`).
    pub record_id: String,
    #[serde(default)]
    pub shard_id: String,
    #[serde(default)]
    pub sequence_number: String,
    #[serde(default)]
    pub partition_key: String,
    #[serde(default)]
    pub event_source_arn: String,
    /// Absent in an item written before the field existed: read as `None`, listed all the
    /// same.
    #[serde(
        default,
        with = "rfc3339::option_millis",
        skip_serializing_if = "Option::is_none"
    )]
    pub arrived_at: Option<DateTime<Utc>>,
    #[serde(
        default,
        with = "rfc3339::option_millis",
        skip_serializing_if = "Option::is_none"
    )]
    pub rejected_at: Option<DateTime<Utc>>,
    /// The first [`PAYLOAD_EXCERPT_CHARS`] characters of the record's base64 data.
    #[serde(default)]
    pub data_base64_excerpt: String,
    #[serde(default)]
    pub data_base64_length: u64,
    /// Epoch seconds when DynamoDB's TTL deletes the item.
    #[serde(default)]
    pub ttl: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}

impl RejectionItem {
    pub fn new(r: &RejectedRecord<'_>, now: DateTime<Utc>) -> Self {
        let record = r.record;
        let arrival_ms = record.arrival_millis();
        let arrival = DateTime::<Utc>::from_timestamp_millis(arrival_ms).unwrap_or(now);
        Self {
            pk: partition(&day_of(arrival)),
            sk: sort_key(arrival_ms, &record.event_id),
            reason: r.rejection.reason,
            detail: r.rejection.detail.clone(),
            record_id: record.event_id.clone(),
            shard_id: record.shard_id().to_owned(),
            sequence_number: record.sequence_number.clone(),
            partition_key: clip(&record.partition_key, PARTITION_KEY_CHARS),
            event_source_arn: record.event_source_arn.clone(),
            // To the millisecond, as stored, so an item read back equals the one written.
            arrived_at: Some(arrival.trunc_subsecs(3)),
            rejected_at: Some(now.trunc_subsecs(3)),
            data_base64_excerpt: clip(&record.data, PAYLOAD_EXCERPT_CHARS),
            data_base64_length: record.data.len() as u64,
            ttl: now.timestamp() + TTL_DAYS * 86_400,
            product_id: r.product_id.map(str::to_owned),
            event_id: r.event_id.map(str::to_owned),
        }
    }

    pub fn key(&self) -> Item {
        HashMap::from([
            ("pk".to_owned(), AttributeValue::S(self.pk.clone())),
            ("sk".to_owned(), AttributeValue::S(self.sk.clone())),
        ])
    }

    pub fn to_item(&self) -> Result<Item, StoreError> {
        serde_dynamo::to_item(self).map_err(|e| StoreError::Encode {
            what: "a rejection",
            message: e.to_string(),
        })
    }

    /// Decodes a stored item; a missing or mistyped attribute is named in the error.
    pub fn from_item(item: Item) -> Result<Self, StoreError> {
        let key = match (item.get("pk"), item.get("sk")) {
            (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) => {
                format!("rejection {pk}/{sk}")
            }
            _ => "a rejection item without its key".to_owned(),
        };
        decode(item, key)
    }

    /// What the API shows of it.
    pub fn into_view(self) -> RejectionView {
        RejectionView {
            record_id: self.record_id,
            reason: self.reason,
            detail: self.detail,
            product_id: self.product_id,
            event_id: self.event_id,
            partition_key: self.partition_key,
            arrived_at: self.arrived_at,
            rejected_at: self.rejected_at,
            data_base64_excerpt: self.data_base64_excerpt,
        }
    }

    pub fn put_request(&self) -> Result<WriteRequest, StoreError> {
        let put = PutRequest::builder()
            .set_item(Some(self.to_item()?))
            .build()
            .map_err(|e| StoreError::Encode {
                what: "a rejection",
                message: e.to_string(),
            })?;
        Ok(WriteRequest::builder().put_request(put).build())
    }
}

/// A request deleting the rejection with `key` (from [`key_of`] or [`RejectionItem::key`]).
pub fn delete_request(key: Item) -> Result<WriteRequest, StoreError> {
    let delete = DeleteRequest::builder()
        .set_key(Some(key))
        .build()
        .map_err(|e| StoreError::Encode {
            what: "a rejection's key",
            message: e.to_string(),
        })?;
    Ok(WriteRequest::builder().delete_request(delete).build())
}

/// The reason of a rejection item, from an item read with only `reason` projected
/// (`projection_expression(REASON)`); `None` for a reason this build does not know.
pub fn reason_of(item: &Item) -> Option<RejectionReason> {
    item.get(REASON)
        .and_then(|v| v.as_s().ok())
        .and_then(|r| RejectionReason::parse(r))
}

/// The attribute holding a rejection's reason (for projections).
pub const REASON: &str = "reason";

/// Counts by reason the rejections of records that arrived on `day` (`YYYY-MM-DD`) whose
/// partition key starts with `partition_key_prefix` (all of them for `""`). Reads every page
/// of the day's partition (strongly consistent, only `reason` projected).
pub async fn count_by_reason(
    db: &Client,
    tables: &Tables,
    day: &str,
    partition_key_prefix: &str,
) -> Result<BTreeMap<RejectionReason, u64>, StoreError> {
    let mut query = db
        .query()
        .table_name(&tables.events)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(partition(day)))
        .projection_expression(REASON)
        .consistent_read(true);
    if !partition_key_prefix.is_empty() {
        query = query
            .filter_expression("begins_with(partition_key, :prefix)")
            .expression_attribute_values(":prefix", AttributeValue::S(partition_key_prefix.into()));
    }
    let mut pages = query.into_paginator().send();
    let mut counts = BTreeMap::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| StoreError::dynamo("Query (rejections)", e))?;
        for reason in page.items().iter().filter_map(reason_of) {
            *counts.entry(reason).or_default() += 1;
        }
    }
    Ok(counts)
}

fn clip(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

/// Up to `limit` rejections of one day's partition (`day`: `YYYY-MM-DD`), newest first,
/// after the sort key `after` when given, and the sort key to go on from when the day has
/// more. An item that is not a rejection is logged and left out.
pub async fn newest_of_day(
    db: &Client,
    tables: &Tables,
    day: &str,
    limit: usize,
    after: Option<String>,
) -> Result<(Vec<RejectionView>, Option<String>), StoreError> {
    let pk = partition(day);
    let resp = db
        .query()
        .table_name(&tables.events)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
        .scan_index_forward(false)
        .limit(i32::try_from(limit).unwrap_or(i32::MAX))
        .set_exclusive_start_key(after.map(|sk| {
            HashMap::from([
                ("pk".to_owned(), AttributeValue::S(pk.clone())),
                ("sk".to_owned(), AttributeValue::S(sk)),
            ])
        }))
        .send()
        .await
        .map_err(|e| StoreError::dynamo("Query (rejections)", e))?;
    let last_sk = resp
        .last_evaluated_key()
        .and_then(|k| k.get("sk")?.as_s().ok().cloned());
    let items = resp
        .items
        .unwrap_or_default()
        .into_iter()
        .filter_map(|item| {
            RejectionItem::from_item(item)
                .inspect_err(|e| tracing::warn!(error = %e, "rejection left out of a listing"))
                .ok()
        })
        .map(RejectionItem::into_view)
        .collect();
    Ok((items, last_sk))
}

#[cfg(test)]
mod tests {
    use super::*;
    use inventory_domain::Rejection;

    fn record() -> PipeRecord {
        let stream = inventory_domain::arn::StreamArn::parse(
            "arn:aws:kinesis:us-east-1:123456789012:stream/s",
        )
        .unwrap();
        PipeRecord::new(
            &stream,
            "shardId-000000000000",
            "4959",
            "P1",
            "e30=".into(),
            1_694_433_600.5,
        )
    }

    #[test]
    fn a_rejection_item_round_trips_and_its_key_is_the_records() {
        let rec = record();
        let rejection = Rejection::new(RejectionReason::InsufficientStock, "6 left, 7 asked");
        let now = Utc::now();
        let item = RejectionItem::new(
            &RejectedRecord {
                record: &rec,
                rejection: &rejection,
                product_id: Some("P1"),
                event_id: Some("e4"),
            },
            now,
        );
        let stored = item.to_item().unwrap();
        assert_eq!(
            stored
                .get("reason")
                .and_then(|v| v.as_s().ok())
                .map(String::as_str),
            Some("insufficient_stock"),
            "the reason's wire name is what the API counts"
        );
        assert_eq!(reason_of(&stored), Some(RejectionReason::InsufficientStock));
        assert_eq!(RejectionItem::from_item(stored).unwrap(), item);
        assert_eq!(item.key(), key_of(&rec, now));
        assert_eq!(item.pk, "REJECTIONS#2023-09-11");
        assert_eq!(item.sk, "1694433600500#shardId-000000000000:4959");
        assert_eq!(
            stored_text(&item, "arrived_at"),
            "2023-09-11T12:00:00.500Z",
            "the text the table has always held"
        );
        assert_eq!(stored_text(&item, "rejected_at"), rfc3339::to_millis(&now));
        let view = item.into_view();
        assert_eq!(
            (view.record_id.as_str(), view.product_id.as_deref()),
            (rec.event_id.as_str(), Some("P1"))
        );
    }

    #[test]
    fn a_hostile_record_is_clipped() {
        let mut rec = record();
        rec.data = "A".repeat(10_000);
        let rejection = Rejection::new(RejectionReason::PayloadTooLarge, "");
        let item = RejectionItem::new(
            &RejectedRecord {
                record: &rec,
                rejection: &rejection,
                product_id: None,
                event_id: None,
            },
            Utc::now(),
        );
        assert_eq!(item.data_base64_excerpt.len(), PAYLOAD_EXCERPT_CHARS);
        assert_eq!(item.data_base64_length, 10_000);
        let stored = item.to_item().unwrap();
        assert!(!stored.contains_key("product_id"), "absent, not null");
    }

    fn stored_text(item: &RejectionItem, name: &str) -> String {
        let stored = item.to_item().unwrap();
        stored[name].as_s().cloned().unwrap_or_default()
    }

    /// An item from before the times were recorded still lists; an unreadable time is named.
    #[test]
    fn times_absent_are_none_and_unreadable_ones_are_named() {
        let item = RejectionItem::new(
            &RejectedRecord {
                record: &record(),
                rejection: &Rejection::new(RejectionReason::InvalidJson, ""),
                product_id: None,
                event_id: None,
            },
            Utc::now(),
        );
        let mut stored = item.to_item().unwrap();
        stored.remove("arrived_at");
        let read = RejectionItem::from_item(stored.clone()).unwrap();
        assert_eq!(
            (read.arrived_at, read.rejected_at),
            (None, item.rejected_at)
        );
        stored.insert("rejected_at".into(), AttributeValue::S("soon".into()));
        let err = RejectionItem::from_item(stored).unwrap_err().to_string();
        assert!(err.contains("rejected_at") && err.contains("soon"), "{err}");
    }

    #[test]
    fn an_unknown_reason_is_named_in_the_error() {
        let mut item = RejectionItem::new(
            &RejectedRecord {
                record: &record(),
                rejection: &Rejection::new(RejectionReason::InvalidJson, ""),
                product_id: None,
                event_id: None,
            },
            Utc::now(),
        )
        .to_item()
        .unwrap();
        item.insert("reason".into(), AttributeValue::S("gremlins".into()));
        let err = RejectionItem::from_item(item).unwrap_err().to_string();
        assert!(
            err.contains("reason") && err.contains("REJECTIONS#2023-09-11"),
            "{err}"
        );
    }
}
