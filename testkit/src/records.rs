//! Pipes batches of one shard built the way the Pipe sends them, and the product items the
//! processor's tests read and plant.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use base64::Engine as _;
use inventory_domain::arn::StreamArn;
use inventory_domain::lineage::{StreamId, StreamLineage};
use inventory_domain::pipes::PipeBatch;
use inventory_domain::{PipeRecord, ProductRecord};
use inventory_store::items::{self, ProductItem};
use inventory_store::Tables;

/// The stream the batches below come from, as a listing that never changes: one open
/// shard per ordinal asked for, each holding every hash key (these tests never reshard).
pub fn shards(ordinal: u32) -> std::sync::Arc<dyn inventory_processor::ListShards> {
    let stream = StreamId::new(ARN, 1_700_000_000_000);
    std::sync::Arc::new(inventory_processor::FixedShards(StreamLineage::single(
        stream,
        u64::from(ordinal),
    )))
}

const ARN: &str = "arn:aws:kinesis:us-east-1:123456789012:stream/inventory-events";

/// One shard's records, numbered in stream order as Kinesis would.
pub struct Shard {
    id: String,
    next: u64,
}

impl Shard {
    pub fn new(ordinal: u32) -> Self {
        Self {
            id: format!("shardId-{ordinal:012}"),
            next: 1,
        }
    }

    /// A batch of `(product, event JSON)` in this order, each with the next sequence number.
    pub fn batch(&mut self, events: &[(&str, String)]) -> PipeBatch {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs_f64();
        let stream = StreamArn::parse(ARN).expect("the kit's stream ARN");
        let records: Vec<PipeRecord> = events
            .iter()
            .map(|(product, json)| {
                // Kinesis' sequence numbers are 56 digits; these grow within one shard.
                let sequence = format!(
                    "4959033827149025660855969253836157109592157598{:010}",
                    self.next
                );
                self.next += 1;
                PipeRecord::new(
                    &stream,
                    &self.id,
                    &sequence,
                    product,
                    base64::engine::general_purpose::STANDARD.encode(json),
                    now,
                )
            })
            .collect();
        PipeBatch::from(&records[..])
    }
}

/// The product's stored state, read consistently (`None`: no item).
pub async fn stored(db: &Client, tables: &Tables, product: &str) -> Option<ProductRecord> {
    let out = db
        .get_item()
        .table_name(&tables.inventory)
        .set_key(Some(items::product_key(product)))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem");
    out.item.map(|item| {
        ProductItem::from_item(item)
            .expect("a product item")
            .into_record()
    })
}

/// Writes a product's item directly, as an instance that wrote it and crashed before its
/// shard log append would have left it.
pub async fn write_behind(db: &Client, tables: &Tables, record: &ProductRecord) {
    let item: HashMap<String, AttributeValue> =
        ProductItem::from_record(record, chrono::Utc::now())
            .to_item()
            .expect("encode the product");
    db.put_item()
        .table_name(&tables.inventory)
        .set_item(Some(item))
        .send()
        .await
        .expect("PutItem");
}
