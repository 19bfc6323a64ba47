//! The API's reads against a real DynamoDB API (the embedded dynoxide emulator, the real SDK
//! client): items written with the store's codecs come back as the API's views, listings
//! of every order page through the whole catalog, a search finds words of names and id
//! prefixes, the catalog follows the products the shard logs name, and an item that is not
//! a product is left out of a listing but is an error when asked for by id.

use inventory_testkit as support;

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use chrono::{TimeZone, Utc};
use inventory_api::store::{self, rejections_page, CatalogCache, InventoryQuery};
use inventory_api::ApiError;
use inventory_domain::api::ProductView;
use inventory_domain::arn::StreamArn;
use inventory_domain::catalog::{SortKey, SortOrder};
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
        last_event_at: "2023-09-11T12:00:00Z".parse().unwrap(),
        recent_ids,
        history: None,
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

fn query(
    status: Option<ProductStatus>,
    sort: SortKey,
    limit: usize,
    cursor: Option<String>,
) -> InventoryQuery {
    InventoryQuery {
        status,
        low_stock: None,
        search: None,
        sort,
        order: SortOrder::Asc,
        limit,
        cursor,
    }
}

/// Every page of a listing, in order (bounded: a listing that does not end fails).
async fn all_pages(
    db: &Client,
    tables: &Tables,
    cache: &CatalogCache,
    mut q: InventoryQuery,
) -> Vec<ProductView> {
    let mut seen = Vec::new();
    for _ in 0..100 {
        let page = store::inventory_page(db, tables, cache, &q).await.unwrap();
        assert!(page.items.len() <= q.limit);
        seen.extend(page.items);
        match page.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => return seen,
        }
    }
    panic!("the listing did not end");
}

#[tokio::test]
async fn pages_of_every_order_list_each_product_once_decoded_with_the_store_codec() {
    let (db, tables) = support::dynamodb("api-test-").await;
    put_25_products_and_a_corrupt_one(&db, &tables).await;
    let cache = CatalogCache::new(Duration::ZERO);
    check_active_products_listed_once_in_id_order(&db, &tables, &cache).await;

    // By stock, every status: ascending stock is descending id.
    let by_stock = all_pages(
        &db,
        &tables,
        &cache,
        query(None, SortKey::Quantity, 4, None),
    )
    .await;
    let stock: Vec<u64> = by_stock.iter().map(|p| p.quantity).collect();
    assert_eq!(stock, (76..=100).collect::<Vec<u64>>());

    check_search_and_low_stock(&db, &tables, &cache).await;
    check_cursor_of_one_order_is_not_one_of_another(&db, &tables, &cache).await;
    check_one_product_read_by_id(&db, &tables, &cache).await;
}

/// P000 to P024, every fifth removed, stock falling as ids rise (so the stock order is not
/// the id order), and P999, an item that is not a product.
async fn put_25_products_and_a_corrupt_one(db: &Client, tables: &Tables) {
    for i in 0..25 {
        let status = if i % 5 == 0 {
            ProductStatus::Removed
        } else {
            ProductStatus::Active
        };
        // Stock falls as ids rise, so the stock order is not the id order.
        put(
            db,
            tables,
            &product(&format!("P{i:03}"), status, 100 - i, 2),
        )
        .await;
    }
    put_corrupt(db, tables, "P999").await;
}

/// The active products, 7 a page: each decoded as written, the corrupt one left out.
async fn check_active_products_listed_once_in_id_order(
    db: &Client,
    tables: &Tables,
    cache: &CatalogCache,
) {
    let active = all_pages(
        db,
        tables,
        cache,
        query(Some(ProductStatus::Active), SortKey::ProductId, 7, None),
    )
    .await;
    for p in &active {
        let i: u64 = p.product_id[1..].parse().unwrap();
        assert_eq!((p.quantity, p.version), (100 - i, 3), "{p:?}");
        assert_eq!(p.product_name, format!("name of {}", p.product_id));
    }
    let ids: Vec<String> = active.into_iter().map(|p| p.product_id).collect();
    let expected: Vec<String> = (0..25)
        .filter(|i| i % 5 != 0)
        .map(|i| format!("P{i:03}"))
        .collect();
    assert_eq!(
        ids, expected,
        "the corrupt P999 is left out, every other active one listed once, in id order"
    );
}

/// A search: the start of an id, or of a word of the name, in any case; low stock: active
/// products at or under the threshold.
async fn check_search_and_low_stock(db: &Client, tables: &Tables, cache: &CatalogCache) {
    let mut search = query(None, SortKey::ProductId, 1000, None);
    search.search = Some("p01".into());
    let page = store::inventory_page(db, tables, cache, &search)
        .await
        .unwrap();
    let ids: Vec<String> = page.items.into_iter().map(|p| p.product_id).collect();
    let tens: Vec<String> = (10..20).map(|i| format!("P{i:03}")).collect();
    assert_eq!(ids, tens);
    assert_eq!(page.matching, 10);
    search.search = Some("NAME of p02".into());
    let page = store::inventory_page(db, tables, cache, &search)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 5, "P020..P024");
    // Low stock: active products at or under the threshold.
    let mut low = query(None, SortKey::Quantity, 1000, None);
    low.low_stock = Some(80);
    let page = store::inventory_page(db, tables, cache, &low)
        .await
        .unwrap();
    let ids: Vec<&str> = page.items.iter().map(|p| p.product_id.as_str()).collect();
    assert_eq!(ids, ["P024", "P023", "P022", "P021"], "P020 is removed");
}

/// A cursor of one order is not one of another.
async fn check_cursor_of_one_order_is_not_one_of_another(
    db: &Client,
    tables: &Tables,
    cache: &CatalogCache,
) {
    let first = store::inventory_page(db, tables, cache, &query(None, SortKey::Quantity, 1, None))
        .await
        .unwrap();
    assert!(matches!(
        store::inventory_page(
            db,
            tables,
            cache,
            &query(None, SortKey::Name, 1, first.next_cursor)
        )
        .await,
        Err(ApiError::InvalidCursor(_))
    ));
}

/// One product by id: found, absent, or (not a product) an error naming it.
async fn check_one_product_read_by_id(db: &Client, tables: &Tables, cache: &CatalogCache) {
    let one = store::product(db, tables, cache, "P007")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((one.quantity, one.status), (93, ProductStatus::Active));
    assert!(store::product(db, tables, cache, "P404")
        .await
        .unwrap()
        .is_none());
    let corrupt = store::product(db, tables, cache, "P999").await.unwrap_err();
    assert!(
        matches!(&corrupt, ApiError::Internal(m) if m.contains("missing field") && m.contains("P999")),
        "{corrupt:?}"
    );
}

/// What the processor leaves when a batch of `shard` wrote `ids`: its log item number
/// `number` naming them, and the shard's totals and bucket saying where its log ends.
async fn logged_batch(db: &Client, tables: &Tables, shard: &str, number: u64, ids: &[&str]) {
    let log_pk = inventory_store::shard_log::partition("s", shard);
    db.put_item()
        .table_name(&tables.events)
        .item("pk", AttributeValue::S(log_pk.clone()))
        .item(
            "sk",
            AttributeValue::S(inventory_store::shard_log::sort_key(number)),
        )
        .item(
            inventory_store::shard_log::CHANGED,
            AttributeValue::Ss(ids.iter().map(|s| s.to_string()).collect()),
        )
        .send()
        .await
        .unwrap();
    let updates = inventory_store::stats::updates(
        &tables.events,
        shard,
        &inventory_store::stats::ShardAdd::default(),
        Some(inventory_store::stats::Through {
            log_pk: &log_pk,
            number,
        }),
        Utc::now(),
    )
    .unwrap();
    let items = updates
        .into_iter()
        .map(|u| {
            aws_sdk_dynamodb::types::TransactWriteItem::builder()
                .update(u)
                .build()
        })
        .collect();
    db.transact_write_items()
        .set_transact_items(Some(items))
        .send()
        .await
        .unwrap();
}

async fn listed(db: &Client, tables: &Tables, cache: &CatalogCache) -> Vec<(String, u64)> {
    all_pages(db, tables, cache, query(None, SortKey::ProductId, 50, None))
        .await
        .into_iter()
        .map(|p| (p.product_id, p.quantity))
        .collect()
}

#[tokio::test]
async fn the_catalog_takes_what_the_shard_logs_say_changed_and_nothing_else() {
    let (db, tables) = support::dynamodb("api-test-").await;
    put(&db, &tables, &product("A", ProductStatus::Active, 5, 0)).await;
    logged_batch(&db, &tables, "shardId-000000000000", 1, &["A"]).await;
    let cache = CatalogCache::new(Duration::ZERO);
    assert_eq!(listed(&db, &tables, &cache).await, [("A".to_owned(), 5)]);

    // A write the logs do not name is not seen (the copy reads only what changed)…
    let mut a = product("A", ProductStatus::Active, 6, 0);
    a.version = 4;
    put(&db, &tables, &a).await;
    put(&db, &tables, &product("B", ProductStatus::Active, 7, 0)).await;
    assert_eq!(listed(&db, &tables, &cache).await, [("A".to_owned(), 5)]);
    // …and is once a log item names it, on this shard or a new one.
    logged_batch(&db, &tables, "shardId-000000000000", 2, &["A"]).await;
    assert_eq!(listed(&db, &tables, &cache).await, [("A".to_owned(), 6)]);
    logged_batch(&db, &tables, "shardId-000000000001", 1, &["B"]).await;
    assert_eq!(
        listed(&db, &tables, &cache).await,
        [("A".to_owned(), 6), ("B".to_owned(), 7)]
    );
    // A GET of one product refreshes it in the copy too.
    a.quantity = 9;
    a.version = 5;
    put(&db, &tables, &a).await;
    store::product(&db, &tables, &cache, "A").await.unwrap();
    assert_eq!(
        listed(&db, &tables, &cache).await,
        [("A".to_owned(), 9), ("B".to_owned(), 7)]
    );
}

fn record(seq: u64, arrival: chrono::DateTime<Utc>) -> PipeRecord {
    let stream = StreamArn::parse("arn:aws:kinesis:us-east-1:123456789012:stream/s").unwrap();
    PipeRecord::new(
        &stream,
        "shardId-000000000000",
        &seq.to_string(),
        &format!("run-P{seq}"),
        "e30=".into(),
        arrival.timestamp_millis() as f64 / 1000.0,
    )
}

#[tokio::test]
async fn rejections_page_newest_first_across_days_and_statistics_read_the_counters() {
    let (db, tables) = support::dynamodb("api-test-").await;
    let now = Utc::now();
    put_rejections_over_two_days(&db, &tables, now).await;
    let cache = store::RejectionsCache::default();
    let expected: Vec<String> = [5, 4, 3, 2, 1]
        .iter()
        .map(|s| format!("shardId-000000000000:{s}"))
        .collect();
    assert_eq!(
        rejection_ids_two_a_page(&db, &tables, &cache).await,
        expected
    );
    assert!(matches!(
        rejections_page(&db, &tables, &cache, 2, Some("forged")).await,
        Err(ApiError::InvalidCursor(_))
    ));
    check_statistics_read_the_counters(&db, &tables, now).await;
}

/// Five rejections: three arrived today, two yesterday, numbered in arrival order.
async fn put_rejections_over_two_days(db: &Client, tables: &Tables, now: chrono::DateTime<Utc>) {
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
}

/// The record ids of every rejection, two a page, in the order listed (bounded: a listing
/// that does not end within 10 pages fails).
async fn rejection_ids_two_a_page(
    db: &Client,
    tables: &Tables,
    cache: &store::RejectionsCache,
) -> Vec<String> {
    let mut order = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let page = rejections_page(db, tables, cache, 2, cursor.as_deref())
            .await
            .unwrap();
        assert!(page.items.len() <= 2);
        order.extend(page.items.iter().map(|r| r.record_id.clone()));
        cursor = page.next_cursor;
        if cursor.is_none() {
            return order;
        }
    }
    panic!("the rejections listing did not end after 10 pages: {order:?}");
}

/// The statistics read the shard counters: rejections by reason, duplicates, the lag, and
/// the throughput of the bucket the batch went into.
async fn check_statistics_read_the_counters(
    db: &Client,
    tables: &Tables,
    now: chrono::DateTime<Utc>,
) {
    let counters = StatsCounters {
        applied: 50,
        duplicates: 2,
        rejected_by_reason: [(RejectionReason::InvalidJson, 5)].into(),
        ..StatsCounters::default()
    };
    let batch_at = Utc.timestamp_millis_opt(now.timestamp_millis()).unwrap();
    inventory_store::stats::add(
        db,
        tables,
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
    let stats = store::stats(db, tables).await.unwrap();
    assert_eq!(stats.rejections.get("invalid_json"), Some(&5));
    assert_eq!((stats.rejections_total, stats.duplicates_ignored), (5, 2));
    assert_eq!(stats.lag_ms, Some(120));
    // 50 applied in one 10-second bucket (whichever: the clock may have moved on since).
    let charted: f64 = stats.throughput.iter().map(|p| p.applied_per_sec).sum();
    assert_eq!(charted, 5.0);
}

/// An instance's `/api/stats` keeps the totals until a bucket shows a newer batch, and
/// buckets once they can no longer change: an idle poll reads only the latest buckets.
#[tokio::test]
async fn the_statistics_cache_reads_the_totals_again_only_after_a_new_batch() {
    use inventory_store::stats::{add, ShardAdd};
    let (db, tables) = support::dynamodb("api-test-").await;
    let batch = |applied: u64| ShardAdd {
        counters: StatsCounters {
            applied,
            ..StatsCounters::default()
        },
        ..ShardAdd::default()
    };
    add(&db, &tables, "shardId-000000000000", &batch(5), Utc::now())
        .await
        .unwrap();
    let cache = store::StatsCache::default();
    assert_eq!(
        cache.stats(&db, &tables).await.unwrap().events_applied,
        Some(5)
    );
    // A change of the totals with no batch behind it (a hand edit) is not read…
    db.update_item()
        .table_name(&tables.events)
        .key("pk", AttributeValue::S("STATS".into()))
        .key("sk", AttributeValue::S("SHARD#shardId-000000000000".into()))
        .update_expression("SET applied = :n")
        .expression_attribute_values(":n", AttributeValue::N("1000".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        cache.stats(&db, &tables).await.unwrap().events_applied,
        Some(5)
    );
    // …a batch is: its bucket is newer than the totals read.
    tokio::time::sleep(Duration::from_millis(5)).await;
    add(&db, &tables, "shardId-000000000000", &batch(2), Utc::now())
        .await
        .unwrap();
    let stats = cache.stats(&db, &tables).await.unwrap();
    assert_eq!(stats.events_applied, Some(1002));
    let charted: f64 = stats.throughput.iter().map(|p| p.applied_per_sec).sum();
    assert!(charted > 0.0, "{stats:?}");
}
