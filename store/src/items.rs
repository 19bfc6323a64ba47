//! How domain values are stored as DynamoDB items. Attribute names are short-ish but
//! readable: DynamoDB bills writes per 1 KB of item, names included, and a product item
//! stays well under 1 KB (docs/consistency.md, "Cost").

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, SecondsFormat, Utc};
use inventory_domain::{
    PipeRecord, ProductRecord, ProductStatus, RecentIds, Rejection, RejectionReason, SequenceNumber,
};
use serde::{Deserialize, Serialize};

use crate::error::StoreError;

pub type Item = HashMap<String, AttributeValue>;

pub const PRODUCT_ID: &str = "product_id";
/// Rejections are kept this long (TTL on the events table).
pub const REJECTION_TTL_DAYS: i64 = 30;
/// At most this much of a rejected record's data is kept, so one hostile record cannot
/// make an item over DynamoDB's 400 KB limit or cost more than a few write units.
pub const PAYLOAD_EXCERPT_CHARS: usize = 1024;

pub fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub fn product_key(product_id: &str) -> Item {
    HashMap::from([(PRODUCT_ID.to_owned(), s(product_id))])
}

/// A product's item in the inventory table, field for field: the one codec every reader and
/// writer uses (serde_dynamo), so the layout is written down once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductItem {
    pub product_id: String,
    pub product_name: String,
    pub quantity: u64,
    pub status: ProductStatus,
    pub version: u64,
    pub last_sequence: SequenceNumber,
    /// Absent in items written before shards were tracked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_shard: Option<u64>,
    pub last_event_at: String,
    pub updated_at: String,
    /// [`RecentIds::to_bytes`], stored as a binary attribute.
    #[serde(default, with = "serde_bytes")]
    pub recent_ids: Vec<u8>,
}

impl ProductItem {
    pub fn from_record(rec: &ProductRecord, updated_at: DateTime<Utc>) -> Self {
        Self {
            product_id: rec.product_id.clone(),
            product_name: rec.name.clone(),
            quantity: rec.quantity,
            status: rec.status,
            version: rec.version,
            last_sequence: rec.last_sequence.clone(),
            last_shard: rec.last_shard,
            last_event_at: rec.last_event_at.clone(),
            updated_at: updated_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            recent_ids: rec.recent_ids.to_bytes(),
        }
    }

    pub fn into_record(self) -> ProductRecord {
        ProductRecord {
            product_id: self.product_id,
            name: self.product_name,
            quantity: self.quantity,
            status: self.status,
            version: self.version,
            last_sequence: self.last_sequence,
            last_shard: self.last_shard,
            last_event_at: self.last_event_at,
            recent_ids: RecentIds::from_bytes(&self.recent_ids),
        }
    }

    pub fn to_item(&self) -> Result<Item, StoreError> {
        serde_dynamo::to_item(self).map_err(|e| StoreError::Encode {
            what: "a product",
            message: e.to_string(),
        })
    }

    /// Decodes a stored item; a missing or mistyped attribute is named in the error.
    pub fn from_item(item: Item) -> Result<Self, StoreError> {
        let key = item
            .get(PRODUCT_ID)
            .and_then(|v| v.as_s().ok())
            .map(|id| format!("product {id}"))
            .unwrap_or_else(|| "a product item without a product_id".to_owned());
        let item: serde_dynamo::Item = item.into();
        let deserializer = serde_dynamo::Deserializer::from_attribute_value(
            serde_dynamo::AttributeValue::M(item.into()),
        );
        serde_path_to_error::deserialize(deserializer).map_err(|e| StoreError::CorruptItem {
            key,
            field: format!("{} ({})", e.path(), e.inner()),
        })
    }
}

pub fn product_to_item(rec: &ProductRecord, updated_at: DateTime<Utc>) -> Item {
    // Every field is a string, a number or bytes, so serde_dynamo cannot fail on it.
    ProductItem::from_record(rec, updated_at)
        .to_item()
        .unwrap_or_default()
}

pub fn product_from_item(item: &Item) -> Result<ProductRecord, StoreError> {
    ProductItem::from_item(item.clone()).map(ProductItem::into_record)
}

/// Everything a user needs to find and understand a rejected record.
#[derive(Debug, Clone)]
pub struct RejectedRecord<'a> {
    pub record: &'a PipeRecord,
    pub rejection: &'a Rejection,
    pub product_id: Option<&'a str>,
    pub event_id: Option<&'a str>,
}

/// Partition of the rejections for a UTC day of arrival: newest-first listing is a Query per
/// day, and the key is a function of the record alone, so recording it again overwrites it.
pub fn rejection_partition(day: &str) -> String {
    format!("REJECTIONS#{day}")
}

pub fn rejection_to_item(r: &RejectedRecord<'_>, now: DateTime<Utc>) -> Item {
    let arrival_ms = r.record.arrival_millis();
    let arrival = DateTime::<Utc>::from_timestamp_millis(arrival_ms).unwrap_or(now);
    let day = arrival.format("%Y-%m-%d").to_string();
    let excerpt: String = r.record.data.chars().take(PAYLOAD_EXCERPT_CHARS).collect();
    let mut item = HashMap::from([
        ("pk".to_owned(), s(rejection_partition(&day))),
        (
            "sk".to_owned(),
            s(format!("{arrival_ms:013}#{}", r.record.event_id)),
        ),
        ("reason".to_owned(), s(r.rejection.reason.as_str())),
        ("detail".to_owned(), s(&r.rejection.detail)),
        ("record_id".to_owned(), s(&r.record.event_id)),
        ("shard_id".to_owned(), s(r.record.shard_id())),
        ("sequence_number".to_owned(), s(&r.record.sequence_number)),
        (
            "partition_key".to_owned(),
            s(clip(&r.record.partition_key, 256)),
        ),
        ("event_source_arn".to_owned(), s(&r.record.event_source_arn)),
        (
            "arrived_at".to_owned(),
            s(arrival.to_rfc3339_opts(SecondsFormat::Millis, true)),
        ),
        (
            "rejected_at".to_owned(),
            s(now.to_rfc3339_opts(SecondsFormat::Millis, true)),
        ),
        ("data_base64_excerpt".to_owned(), s(excerpt)),
        ("data_base64_length".to_owned(), n(r.record.data.len())),
        (
            "ttl".to_owned(),
            n(now.timestamp() + REJECTION_TTL_DAYS * 86_400),
        ),
    ]);
    if let Some(p) = r.product_id {
        item.insert("product_id".to_owned(), s(p));
    }
    if let Some(e) = r.event_id {
        item.insert("event_id".to_owned(), s(e));
    }
    item
}

fn clip(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

/// Counters per 10-second bucket for the API's figures. They count deliveries, so a batch
/// retried after a crash is counted again; the inventory itself is exact regardless.
pub const STATS_PK: &str = "STATS";
pub const STATS_BUCKET_SECS: i64 = 10;
/// Buckets are kept a day (TTL).
pub const STATS_TTL_SECS: i64 = 86_400;

/// Running totals since the table was created (same counters, no TTL).
pub const STATS_TOTAL_SK: &str = "TOTAL";

pub fn stats_sort_key(bucket_start_epoch_secs: i64) -> String {
    format!("BUCKET#{bucket_start_epoch_secs:010}")
}

pub fn reason_counter(reason: RejectionReason) -> String {
    format!("rejected_{}", reason.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_item_round_trips() {
        let mut recent = RecentIds::default();
        recent.push("a");
        let rec = ProductRecord {
            product_id: "P1".into(),
            name: "Laptop".into(),
            quantity: 7,
            status: ProductStatus::Removed,
            version: 3,
            last_sequence: SequenceNumber::parse(
                "49590338271490256608559692538361571095921575989136588898",
            )
            .unwrap(),
            last_shard: Some(7),
            last_event_at: "2023-09-11T12:00:00Z".into(),
            recent_ids: recent,
        };
        let item = product_to_item(&rec, Utc::now());
        assert_eq!(product_from_item(&item).unwrap(), rec);
    }

    /// DynamoDB's billed size: attribute names plus values (numbers ~ digits / 2 + 1).
    fn billed_size(item: &Item) -> usize {
        item.iter()
            .map(|(k, v)| {
                k.len()
                    + match v {
                        AttributeValue::S(s) => s.len(),
                        AttributeValue::N(n) => n.len() / 2 + 1,
                        AttributeValue::B(b) => b.as_ref().len(),
                        _ => 8,
                    }
            })
            .sum()
    }

    #[test]
    fn a_full_product_item_costs_one_write_unit() {
        let mut recent = RecentIds::default();
        for i in 0..40 {
            recent.push(&format!("01J8ZQ4V6H3W2X9K7M5N1P0R{i:02}"));
        }
        let rec = ProductRecord {
            product_id: "P".repeat(64),
            name: "N".repeat(200),
            quantity: (1 << 53) - 1,
            status: ProductStatus::Active,
            version: u64::from(u32::MAX),
            last_sequence: SequenceNumber::parse(&"9".repeat(56)).unwrap(),
            last_shard: Some(7),
            last_event_at: "2023-09-11T12:00:00.123456789Z".into(),
            recent_ids: recent,
        };
        let size = billed_size(&product_to_item(&rec, Utc::now()));
        assert!(size <= 1024, "{size} bytes is over one write unit");
    }

    #[test]
    fn a_corrupt_item_names_its_field() {
        let mut item = product_to_item(
            &ProductRecord {
                product_id: "P1".into(),
                name: "n".into(),
                quantity: 1,
                status: ProductStatus::Active,
                version: 1,
                last_sequence: SequenceNumber::parse("1").unwrap(),
                last_shard: Some(7),
                last_event_at: String::new(),
                recent_ids: RecentIds::default(),
            },
            Utc::now(),
        );
        item.insert("quantity".into(), s("lots"));
        let err = product_from_item(&item).unwrap_err().to_string();
        assert!(err.contains("quantity") && err.contains("P1"), "{err}");
    }
}
