//! How domain values are stored as DynamoDB items. Attribute names are short-ish but
//! readable: DynamoDB bills writes per 1 KB of item, names included, and a product item
//! stays well under 1 KB (docs/consistency.md, "Cost").

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, SubsecRound as _, Utc};
use inventory_domain::history::HistoryKey;
use inventory_domain::lineage::StreamId;
use inventory_domain::rfc3339;
use inventory_domain::{ProductRecord, ProductStatus, RecentIds, SequenceNumber};
use serde::{Deserialize, Serialize};

use crate::error::StoreError;

pub type Item = HashMap<String, AttributeValue>;

pub const PRODUCT_ID: &str = "product_id";

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
    /// The stream of `last_shard`: xxh3 of its ARN and its creation time in ms
    /// ([`StreamId`]). Absent in items written before streams were tracked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_created_ms: Option<i64>,
    /// The last applied event's own time, as the event's text
    /// ([`rfc3339::to_auto`], chrono's serde form).
    pub last_event_at: DateTime<Utc>,
    /// When the processor wrote the item, to the millisecond.
    #[serde(with = "rfc3339::millis")]
    pub updated_at: DateTime<Utc>,
    /// [`RecentIds::to_bytes`] (80-bit hashes), stored as a binary attribute.
    #[serde(default, with = "serde_bytes", skip_serializing_if = "Vec::is_empty")]
    pub recent: Vec<u8>,
    /// [`RecentIds::legacy_bytes`]: the 64-bit hashes of an item written before they were
    /// widened, until newer ids push them out.
    #[serde(default, with = "serde_bytes", skip_serializing_if = "Vec::is_empty")]
    pub recent_ids: Vec<u8>,
    /// The history key of the write that stored this state ([`HistoryKey`]); absent with
    /// history off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<String>,
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
            stream: rec.last_stream.map(|s| s.arn),
            stream_created_ms: rec.last_stream.map(|s| s.created_ms),
            last_event_at: rec.last_event_at,
            // What the item stores, so an item read back equals the one written.
            updated_at: updated_at.trunc_subsecs(3),
            recent: rec.recent_ids.to_bytes(),
            recent_ids: rec.recent_ids.legacy_bytes(),
            history: rec.history.as_ref().map(|k| k.0.clone()),
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
            last_stream: match (self.stream, self.stream_created_ms) {
                (Some(arn), Some(created_ms)) => Some(StreamId { arn, created_ms }),
                _ => None,
            },
            last_event_at: self.last_event_at,
            recent_ids: RecentIds::from_parts(&self.recent_ids, &self.recent),
            history: self.history.map(HistoryKey),
        }
    }

    pub fn to_item(&self) -> Result<Item, StoreError> {
        serde_dynamo::to_item(self).map_err(|e| StoreError::Encode {
            what: "a product",
            message: e.to_string(),
        })
    }

    /// The item [`to_item`](Self::to_item) writes for `from_record(rec, updated_at)`, built
    /// directly: the processor encodes one per product write, and serde_dynamo's generic
    /// serializer and the intermediate copy cost more than the request's own serialization
    /// (`cargo bench -p inventory-store --bench product_codec`). A test holds the two equal,
    /// so the serde layout above stays the one definition.
    pub fn record_item(rec: &ProductRecord, updated_at: DateTime<Utc>) -> Item {
        let mut item = HashMap::with_capacity(10);
        item.insert(PRODUCT_ID.to_owned(), s(rec.product_id.as_str()));
        item.insert("product_name".to_owned(), s(rec.name.as_str()));
        item.insert("quantity".to_owned(), n(rec.quantity));
        item.insert("status".to_owned(), s(rec.status.as_str()));
        item.insert("version".to_owned(), n(rec.version));
        item.insert("last_sequence".to_owned(), s(rec.last_sequence.as_str()));
        if let Some(shard) = rec.last_shard {
            item.insert("last_shard".to_owned(), n(shard));
        }
        if let Some(stream) = rec.last_stream {
            item.insert("stream".to_owned(), n(stream.arn));
            item.insert("stream_created_ms".to_owned(), n(stream.created_ms));
        }
        item.insert(
            "last_event_at".to_owned(),
            s(rfc3339::to_auto(&rec.last_event_at)),
        );
        item.insert("updated_at".to_owned(), s(rfc3339::to_millis(&updated_at)));
        let recent = rec.recent_ids.to_bytes();
        if !recent.is_empty() {
            item.insert("recent".to_owned(), AttributeValue::B(Blob::new(recent)));
        }
        if let Some(key) = &rec.history {
            item.insert("history".to_owned(), s(key.0.as_str()));
        }
        let legacy = rec.recent_ids.legacy_bytes();
        if !legacy.is_empty() {
            item.insert(
                "recent_ids".to_owned(),
                AttributeValue::B(Blob::new(legacy)),
            );
        }
        item
    }

    /// Decodes a stored item; a missing or mistyped attribute is named in the error.
    pub fn from_item(item: Item) -> Result<Self, StoreError> {
        let key = item
            .get(PRODUCT_ID)
            .and_then(|v| v.as_s().ok())
            .map(|id| format!("product {id}"))
            .unwrap_or_else(|| "a product item without a product_id".to_owned());
        decode(item, key)
    }
}

// The names the rejection and statistics layouts had before they got their own modules,
// for callers not yet moved to `crate::rejections` and `crate::stats`.
pub use crate::rejections::{
    partition as rejection_partition, RejectedRecord, PAYLOAD_EXCERPT_CHARS,
    TTL_DAYS as REJECTION_TTL_DAYS,
};
pub use crate::stats::{
    bucket_sort_key as stats_sort_key, reason_counter, BUCKET_SECS as STATS_BUCKET_SECS,
    PK as STATS_PK, TTL_SECS as STATS_TTL_SECS,
};

/// Decodes an item with serde_dynamo; a missing or mistyped attribute is named in the
/// error with `key`, the item's name for the user.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    item: Item,
    key: String,
) -> Result<T, StoreError> {
    let item: serde_dynamo::Item = item.into();
    let deserializer = serde_dynamo::Deserializer::from_attribute_value(
        serde_dynamo::AttributeValue::M(item.into()),
    );
    serde_path_to_error::deserialize(deserializer).map_err(|e| StoreError::CorruptItem {
        key,
        field: format!("{} ({})", e.path(), e.inner()),
    })
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
            last_stream: Some(StreamId::new(
                "arn:aws:kinesis:us-east-1:1:stream/s",
                1_700_000_000_123,
            )),
            last_event_at: "2023-09-11T12:00:00Z".parse().unwrap(),
            recent_ids: recent,
            history: None,
        };
        let item = ProductItem::from_record(&rec, Utc::now())
            .to_item()
            .unwrap();
        assert_eq!(ProductItem::from_item(item).unwrap().into_record(), rec);
    }

    #[test]
    fn record_item_writes_what_serde_writes() {
        let mut recent = RecentIds::default();
        let mut rec = ProductRecord {
            product_id: "P1".into(),
            name: "Laptop \"pro\"".into(),
            quantity: 0,
            status: ProductStatus::Active,
            version: 1,
            last_sequence: SequenceNumber::parse("1").unwrap(),
            last_shard: None,
            last_stream: None,
            last_event_at: "2023-09-11T12:00:00Z".parse().unwrap(),
            recent_ids: recent.clone(),
            history: None,
        };
        let now = Utc::now();
        assert_eq!(
            ProductItem::record_item(&rec, now),
            ProductItem::from_record(&rec, now).to_item().unwrap(),
            "no shard, no recent ids"
        );
        for i in 0..20 {
            recent.push(&format!("01J8ZQ4V6H3W2X9K7M5N1P0R{i:02}"));
        }
        rec.recent_ids = recent;
        rec.last_shard = Some(u64::MAX);
        rec.last_stream = Some(StreamId {
            arn: u64::MAX,
            created_ms: 1_700_000_000_123,
        });
        rec.quantity = u64::MAX;
        rec.version = 42;
        rec.status = ProductStatus::Removed;
        rec.last_sequence =
            SequenceNumber::parse("49590338271490256608559692538361571095921575989136588898")
                .unwrap();
        assert_eq!(
            ProductItem::record_item(&rec, now),
            ProductItem::from_record(&rec, now).to_item().unwrap(),
            "every field set"
        );
        assert_eq!(
            ProductItem::from_item(ProductItem::record_item(&rec, now))
                .unwrap()
                .into_record(),
            rec
        );
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
            last_stream: Some(StreamId {
                arn: u64::MAX,
                created_ms: i64::MAX,
            }),
            last_event_at: "2023-09-11T12:00:00.123456789Z".parse().unwrap(),
            recent_ids: recent,
            history: None,
        };
        let size = billed_size(
            &ProductItem::from_record(&rec, Utc::now())
                .to_item()
                .unwrap(),
        );
        assert!(size <= 1024, "{size} bytes is over one write unit");
    }

    #[test]
    fn a_corrupt_item_names_its_field() {
        let mut item = ProductItem::from_record(
            &ProductRecord {
                product_id: "P1".into(),
                name: "n".into(),
                quantity: 1,
                status: ProductStatus::Active,
                version: 1,
                last_sequence: SequenceNumber::parse("1").unwrap(),
                last_shard: Some(7),
                last_stream: None,
                last_event_at: "2023-09-11T12:00:00Z".parse().unwrap(),
                recent_ids: RecentIds::default(),
                history: None,
            },
            Utc::now(),
        )
        .to_item()
        .unwrap();
        let mut unreadable_time = item.clone();
        item.insert("quantity".into(), s("lots"));
        let err = ProductItem::from_item(item).unwrap_err().to_string();
        assert!(err.contains("quantity") && err.contains("P1"), "{err}");
        unreadable_time.insert("updated_at".into(), s("yesterday"));
        let err = ProductItem::from_item(unreadable_time)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("updated_at") && err.contains("yesterday"),
            "{err}"
        );
    }
}
