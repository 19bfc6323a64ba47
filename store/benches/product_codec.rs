//! The product item's codec, which the processor runs once per product per batch (decode
//! after BatchGetItem, encode for the conditional PutItem): serde_dynamo (`ProductItem`)
//! against the hand-written code it replaced (`git show HEAD~2:processor/src/items.rs`,
//! copied below as `hand`).
//!
//! Then the encode alone, serde_dynamo against `ProductItem::record_item`, which the
//! processor writes with.
//!
//! `cargo bench -p inventory-store --bench product_codec`

use std::hint::black_box;

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion};
use inventory_domain::{ProductRecord, ProductStatus, RecentIds, SequenceNumber};
use inventory_store::ProductItem;

/// A steady-state product: a full set of recent ids, a 56-digit sequence number.
fn product() -> ProductRecord {
    let mut recent_ids = RecentIds::default();
    for i in 0..16 {
        recent_ids.push(&format!("01J8ZQ4V6H3W2X9K7M5N1P0R{i:02}"));
    }
    ProductRecord {
        product_id: "r1f3c9a2e-P00042".into(),
        name: "Product 42".into(),
        quantity: 1_234,
        status: ProductStatus::Active,
        version: 5_678,
        last_sequence: SequenceNumber::parse(
            "49590338271490256608559692538361571095921575989136588898",
        )
        .expect("a sequence number"),
        last_shard: Some(3),
        last_stream: Some(inventory_domain::lineage::StreamId::new(
            "arn:aws:kinesis:us-east-1:123456789012:stream/inventory-events",
            1_700_000_000_000,
        )),
        last_event_at: Utc.timestamp_millis_opt(1_694_433_600_123).unwrap(),
        recent_ids,
        history: None,
    }
}

fn codec(c: &mut Criterion) {
    let rec = product();
    let now = Utc.with_ymd_and_hms(2023, 9, 11, 12, 0, 1).unwrap();
    assert_eq!(
        hand::product_from_item(&hand::product_to_item(&rec, now)).as_ref(),
        Some(&rec)
    );
    assert_eq!(
        hand::product_to_item(&rec, now),
        ProductItem::from_record(&rec, now).to_item().unwrap(),
        "both write the same item"
    );
    let mut group = c.benchmark_group("product item encode+decode");
    group.bench_function("serde_dynamo (ProductItem)", |b| {
        b.iter(|| {
            let item = ProductItem::from_record(black_box(&rec), now)
                .to_item()
                .unwrap();
            ProductItem::from_item(black_box(item))
                .unwrap()
                .into_record()
        })
    });
    group.bench_function("hand-written (before)", |b| {
        b.iter(|| {
            let item = hand::product_to_item(black_box(&rec), now);
            hand::product_from_item(black_box(&item)).unwrap()
        })
    });
    group.finish();

    // The processor's write path encodes only (its reads are served from its cache).
    assert_eq!(
        ProductItem::record_item(&rec, now),
        ProductItem::from_record(&rec, now).to_item().unwrap()
    );
    let mut group = c.benchmark_group("product item encode");
    group.bench_function("serde_dynamo (ProductItem::to_item)", |b| {
        b.iter(|| {
            ProductItem::from_record(black_box(&rec), now)
                .to_item()
                .unwrap()
        })
    });
    group.bench_function("ProductItem::record_item", |b| {
        b.iter(|| ProductItem::record_item(black_box(&rec), now))
    });
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);

/// The hand-written codec before serde_dynamo, as it was (errors reduced to `None`).
mod hand {
    use std::collections::HashMap;

    use aws_sdk_dynamodb::primitives::Blob;
    use aws_sdk_dynamodb::types::AttributeValue;
    use chrono::{DateTime, SecondsFormat, Utc};
    use inventory_domain::{ProductRecord, ProductStatus, RecentIds, SequenceNumber};

    type Item = HashMap<String, AttributeValue>;

    fn s(v: impl Into<String>) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    fn n(v: impl ToString) -> AttributeValue {
        AttributeValue::N(v.to_string())
    }

    pub fn product_to_item(rec: &ProductRecord, updated_at: DateTime<Utc>) -> Item {
        let mut item = HashMap::from([
            ("product_id".to_owned(), s(&rec.product_id)),
            ("product_name".to_owned(), s(&rec.name)),
            ("quantity".to_owned(), n(rec.quantity)),
            ("status".to_owned(), s(rec.status.as_str())),
            ("version".to_owned(), n(rec.version)),
            ("last_sequence".to_owned(), s(rec.last_sequence.as_str())),
            (
                "last_event_at".to_owned(),
                s(rec
                    .last_event_at
                    .to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            ),
            (
                "updated_at".to_owned(),
                s(updated_at.to_rfc3339_opts(SecondsFormat::Millis, true)),
            ),
            (
                "recent".to_owned(),
                AttributeValue::B(Blob::new(rec.recent_ids.to_bytes())),
            ),
        ]);
        if let Some(shard) = rec.last_shard {
            item.insert("last_shard".to_owned(), n(shard));
        }
        if let Some(stream) = rec.last_stream {
            item.insert("stream".to_owned(), n(stream.arn));
            item.insert("stream_created_ms".to_owned(), n(stream.created_ms));
        }
        item
    }

    pub fn product_from_item(item: &Item) -> Option<ProductRecord> {
        let text = |name: &str| {
            item.get(name)
                .and_then(|v| v.as_s().ok())
                .map(String::as_str)
        };
        let number = |name: &str| -> Option<u64> {
            item.get(name)
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse().ok())
        };
        Some(ProductRecord {
            product_id: text("product_id")?.to_owned(),
            name: text("product_name")?.to_owned(),
            quantity: number("quantity")?,
            status: ProductStatus::parse(text("status")?)?,
            version: number("version")?,
            last_sequence: SequenceNumber::parse(text("last_sequence")?).ok()?,
            last_shard: match item.get("last_shard") {
                None => None,
                Some(v) => Some(v.as_n().ok()?.parse().ok()?),
            },
            last_stream: match (number("stream"), item.get("stream_created_ms")) {
                (Some(arn), Some(created)) => Some(inventory_domain::lineage::StreamId {
                    arn,
                    created_ms: created.as_n().ok()?.parse().ok()?,
                }),
                _ => None,
            },
            last_event_at: DateTime::parse_from_rfc3339(text("last_event_at")?)
                .ok()?
                .with_timezone(&Utc),
            recent_ids: item
                .get("recent")
                .and_then(|v| v.as_b().ok())
                .map(|b| RecentIds::from_parts(&[], b.as_ref()))
                .unwrap_or_default(),
            history: text("history").map(|h| inventory_domain::history::HistoryKey(h.to_owned())),
        })
    }
}
