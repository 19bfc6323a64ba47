//! The API's reads against a real DynamoDB API (the embedded dynoxide emulator, the real SDK
//! client): items written with the store's codecs come back as the API's views, listings
//! page through the whole table through the status index (one status, or all: active then
//! removed, with one cursor), a search is a product id prefix, the totals come from the
//! shard counters or else the index, and an item that is not a product is left out of a
//! listing but is an error when asked for by id.

mod support;

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use chrono::{TimeZone, Utc};
use inventory_api::store::{
    self, rejections_page, totals, InventoryQuery, SortKey, SortOrder, TotalsCache, TotalsSource,
};
use inventory_api::ApiError;
use inventory_domain::{
    PipeRecord, ProductRecord, ProductStatus, RecentIds, Rejection, RejectionReason, SequenceNumber,
};
use inventory_store::items::ProductItem;
use inventory_store::rejections::{RejectedRecord, RejectionItem};
use inventory_store::stats::StatsCounters;
use inventory_store::Tables;

fn product(id: &str, status: ProductStatus, quantity: u64, recent: usize) -> ProductRecord {
    let mut recent_ids = RecentIds::default();
    for i in 0..recent {
        recent_ids.push(&format!("01J8ZQ4V6H3W2X9K7M5N1P0R{i:02}"));
    }
    ProductRecord {
        product_id: id.into(),
        name: format!("name of {id}"),
        quantity,
        status,
        version: 3,
        last_sequence: SequenceNumber::parse(
            "49590338271490256608559692538361571095921575989136588898",
        )
        .unwrap(),
        last_shard: Some(0),
        last_stream: None,
        last_event_at: "2023-09-11T12:00:00Z".into(),
        recent_ids,
    }
}

async fn put(db: &Client, tables: &Tables, rec: &ProductRecord) {
    db.put_item()
        .table_name(&tables.inventory)
        .set_item(Some(
            ProductItem::from_record(rec, Utc::now()).to_item().unwrap(),
        ))
        .send()
        .await
        .unwrap();
}

/// An item in the inventory table that no pipeline wrote: a key and a status, nothing else.
async fn put_corrupt(db: &Client, tables: &Tables, id: &str) {
    db.put_item()
        .table_name(&tables.inventory)
        .item("product_id", AttributeValue::S(id.into()))
        .item("status", AttributeValue::S("active".into()))
        .send()
        .await
        .unwrap();
}

fn query(status: Option<ProductStatus>, limit: usize, cursor: Option<String>) -> InventoryQuery {
    InventoryQuery {
        status,
        search: None,
        sort: SortKey::ProductId,
        order: SortOrder::Asc,
        limit,
        cursor,
    }
}

#[tokio::test]
async fn status_pages_list_each_product_once_decoded_with_the_store_codec() {
    let (db, tables) = support::dynamodb("api-test-").await;
    for i in 0..25 {
        let status = if i % 5 == 0 {
            ProductStatus::Removed
        } else {
            ProductStatus::Active
        };
        put(&db, &tables, &product(&format!("P{i:03}"), status, i, 2)).await;
    }
    put_corrupt(&db, &tables, "P999").await;

    let mut seen = Vec::new();
    let mut cursor = None;
    for _ in 0..20 {
        let page =
            store::inventory_page(&db, &tables, &query(Some(ProductStatus::Active), 7, cursor))
                .await
                .unwrap();
        assert!(page.items.len() <= 7);
        for p in &page.items {
            assert_eq!(p.status, ProductStatus::Active);
            let i: u64 = p.product_id[1..].parse().unwrap();
            assert_eq!((p.quantity, p.version), (i, 3), "{p:?}");
            assert_eq!(p.product_name, format!("name of {}", p.product_id));
        }
        seen.extend(page.items.into_iter().map(|p| p.product_id));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert!(cursor.is_none(), "the listing did not end");
    seen.sort();
    let expected: Vec<String> = (0..25)
        .filter(|i| i % 5 != 0)
        .map(|i| format!("P{i:03}"))
        .collect();
    assert_eq!(
        seen, expected,
        "the corrupt P999 is left out, every other active one listed once"
    );

    // Every status: the active ones, then the removed ones, each once, across pages that
    // switch status in the middle.
    let mut all = Vec::new();
    let mut cursor = None;
    for _ in 0..20 {
        let page = store::inventory_page(&db, &tables, &query(None, 4, cursor))
            .await
            .unwrap();
        assert!(page.items.len() <= 4);
        all.extend(page.items.into_iter().map(|p| (p.status, p.product_id)));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert!(cursor.is_none(), "the listing did not end");
    let mut expected: Vec<(ProductStatus, String)> = (0..25)
        .filter(|i| i % 5 != 0)
        .map(|i| (ProductStatus::Active, format!("P{i:03}")))
        .collect();
    expected.extend(
        (0..25)
            .filter(|i| i % 5 == 0)
            .map(|i| (ProductStatus::Removed, format!("P{i:03}"))),
    );
    assert_eq!(all, expected, "active first, then removed, each once");

    // A search is a product id prefix (a key condition of the same Query).
    let mut search = query(None, 1000, None);
    search.search = Some("P01".into());
    let page = store::inventory_page(&db, &tables, &search).await.unwrap();
    let ids: Vec<String> = page.items.into_iter().map(|p| p.product_id).collect();
    let tens: Vec<String> = (10..20).map(|i| format!("P{i:03}")).collect();
    assert_eq!(ids, tens);
    assert!(page.next_cursor.is_none());
    search.search = Some("name of".into());
    assert!(matches!(
        store::inventory_page(&db, &tables, &search).await,
        Err(ApiError::BadRequest(m)) if m.contains("product id prefix")
    ));
    // A cursor of one status is not one of the other.
    let active_page =
        store::inventory_page(&db, &tables, &query(Some(ProductStatus::Active), 1, None))
            .await
            .unwrap();
    assert!(matches!(
        store::inventory_page(
            &db,
            &tables,
            &query(Some(ProductStatus::Removed), 1, active_page.next_cursor)
        )
        .await,
        Err(ApiError::InvalidCursor(_))
    ));

    let one = store::product(&db, &tables, "P007").await.unwrap().unwrap();
    assert_eq!((one.quantity, one.status), (7, ProductStatus::Active));
    assert!(store::product(&db, &tables, "P404")
        .await
        .unwrap()
        .is_none());
    let corrupt = store::product(&db, &tables, "P999").await.unwrap_err();
    assert!(
        matches!(&corrupt, ApiError::Internal(m) if m.contains("missing field") && m.contains("P999")),
        "{corrupt:?}"
    );
}

#[tokio::test]
async fn totals_count_the_status_index_until_shard_counters_exist_then_sum_them() {
    let (db, tables) = support::dynamodb("api-test-").await;
    const PRODUCTS: u64 = 300;
    for i in 0..PRODUCTS {
        let status = if i % 4 == 0 {
            ProductStatus::Removed
        } else {
            ProductStatus::Active
        };
        put(&db, &tables, &product(&format!("T{i:05}"), status, 2, 0)).await;
    }
    let active = PRODUCTS - PRODUCTS.div_ceil(4);

    // No shard counters yet: counts from the index, units unknown (not zero).
    let t = totals::read_totals(&db, &tables).await.unwrap();
    assert_eq!(t.source, TotalsSource::StatusIndex);
    assert_eq!(
        (t.products, t.active_products, t.units),
        (Some(PRODUCTS), Some(active), None)
    );
    let stats = store::stats(&db, &tables, &TotalsCache::new(Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(stats.products, Some(PRODUCTS));
    assert_eq!(stats.units, None);
    assert!(stats.unavailable.contains(&"units".to_owned()), "{stats:?}");
    assert_eq!(stats.lag_ms, None, "no batch was counted yet");

    // Two shards' counters (one negative: a product added on one shard, removed on another).
    for (shard, products, active, units, applied) in [
        ("shardId-000000000000", 3, 3, 30, 10),
        ("shardId-000000000001", 1, -1, -5, 4),
    ] {
        db.put_item()
            .table_name(&tables.events)
            .item("pk", AttributeValue::S("STATS".into()))
            .item("sk", AttributeValue::S(format!("SHARD#{shard}")))
            .item("products", AttributeValue::N(products.to_string()))
            .item("active_products", AttributeValue::N(active.to_string()))
            .item("units", AttributeValue::N(units.to_string()))
            .item("events_applied", AttributeValue::N(applied.to_string()))
            .send()
            .await
            .unwrap();
    }
    let t = totals::read_totals(&db, &tables).await.unwrap();
    assert_eq!(t.source, TotalsSource::ShardCounters);
    assert_eq!(
        (t.products, t.active_products, t.units, t.events_applied),
        (Some(4), Some(2), Some(25), Some(14))
    );
    let stats = store::stats(&db, &tables, &TotalsCache::new(Duration::ZERO))
        .await
        .unwrap();
    assert!(stats.unavailable.is_empty(), "{stats:?}");
    assert_eq!(stats.totals_source, "shard_counters");
}

fn record(seq: u64, arrival: chrono::DateTime<Utc>) -> PipeRecord {
    PipeRecord {
        event_id: format!("shardId-000000000000:{seq}"),
        sequence_number: seq.to_string(),
        partition_key: format!("run-P{seq}"),
        data: "e30=".into(),
        approximate_arrival_timestamp: arrival.timestamp_millis() as f64 / 1000.0,
        event_source_arn: "arn:aws:kinesis:us-east-1:1:stream/s".into(),
        kinesis_schema_version: "1.0".into(),
        event_source: "aws:kinesis".into(),
        event_version: "1.0".into(),
        event_name: "aws:kinesis:record".into(),
        invoke_identity_arn: String::new(),
        aws_region: "us-east-1".into(),
    }
}

#[tokio::test]
async fn rejections_page_newest_first_across_days_and_statistics_read_the_counters() {
    let (db, tables) = support::dynamodb("api-test-").await;
    let now = Utc::now();
    let yesterday = now - chrono::Duration::days(1);
    // Three today, two yesterday.
    let arrivals = [
        (1, yesterday),
        (2, yesterday + chrono::Duration::seconds(1)),
        (3, now - chrono::Duration::seconds(3)),
        (4, now - chrono::Duration::seconds(2)),
        (5, now - chrono::Duration::seconds(1)),
    ];
    for (seq, arrival) in arrivals {
        let rec = record(seq, arrival);
        let rejection = Rejection::new(RejectionReason::InvalidJson, "not JSON");
        let item = RejectionItem::new(
            &RejectedRecord {
                record: &rec,
                rejection: &rejection,
                product_id: None,
                event_id: None,
            },
            now,
        );
        db.put_item()
            .table_name(&tables.events)
            .set_item(Some(item.to_item().unwrap()))
            .send()
            .await
            .unwrap();
    }
    let mut order = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let page = rejections_page(&db, &tables, 2, cursor.as_deref())
            .await
            .unwrap();
        assert!(page.items.len() <= 2);
        order.extend(page.items.iter().map(|r| r.record_id.clone()));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    let expected: Vec<String> = [5, 4, 3, 2, 1]
        .iter()
        .map(|s| format!("shardId-000000000000:{s}"))
        .collect();
    assert_eq!(order, expected);
    assert!(matches!(
        rejections_page(&db, &tables, 2, Some("forged")).await,
        Err(ApiError::InvalidCursor(_))
    ));

    let counters = StatsCounters {
        applied: 50,
        duplicates: 2,
        rejected_by_reason: [(RejectionReason::InvalidJson, 5)].into(),
        ..StatsCounters::default()
    };
    let batch_at = Utc.timestamp_millis_opt(now.timestamp_millis()).unwrap();
    inventory_store::stats::add(
        &db,
        &tables,
        "shardId-000000000000",
        &inventory_store::stats::ShardAdd {
            counters,
            last_applied_arrival_ms: Some(now.timestamp_millis() - 120),
            ..Default::default()
        },
        batch_at,
    )
    .await
    .unwrap();
    let stats = store::stats(&db, &tables, &TotalsCache::new(Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(stats.rejections.get("invalid_json"), Some(&5));
    assert_eq!((stats.rejections_total, stats.duplicates_ignored), (5, 2));
    assert_eq!(stats.lag_ms, Some(120));
    // 50 applied in one 10-second bucket (whichever: the clock may have moved on since).
    let charted: f64 = stats.throughput.iter().map(|p| p.applied_per_sec).sum();
    assert_eq!(charted, 5.0);
}
