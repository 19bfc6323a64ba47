//! The warm instance's product cache against a real DynamoDB API (the embedded dynoxide,
//! the real SDK client): no read before write in the steady state, and never a wrong result
//! when someone else wrote the shard's products (processor/src/handler/cache.rs).

use inventory_testkit as support;

use inventory_processor::{BatchReport, Processor, ProcessorSettings};
use support::{dynamodb, event, shards, stored, write_behind, Shard};

fn assert_clean(report: &BatchReport) {
    assert!(
        report.response.batch_item_failures.is_empty(),
        "the batch failed: {:?}",
        report.errors
    );
}

/// One event of `kind` per product, with id `<prefix>-<product>`, in the products' order.
fn one_each<'a, P: AsRef<str>>(
    products: &'a [P],
    prefix: &str,
    kind: &str,
    quantity: u64,
) -> Vec<(&'a str, String)> {
    products
        .iter()
        .map(|p| {
            let p = p.as_ref();
            (p, event(&format!("{prefix}-{p}"), kind, p, Some(quantity)))
        })
        .collect()
}

#[tokio::test]
async fn a_warm_batch_writes_without_reading_and_ends_exact() {
    let (db, tables) = dynamodb("cache-test").await;
    let processor = Processor::new(db.clone(), tables.clone(), shards(0));
    let mut shard = Shard::new(0);
    let products: Vec<String> = (0..10).map(|i| format!("P{i}")).collect();

    let added = one_each(&products, "add", "product_added", 10);
    let first = processor.process_batch(&shard.batch(&added)).await;
    assert_clean(&first);
    assert_eq!((first.cache_hits, first.cache_misses), (0, 10));
    assert!(first.read_requests >= 1);

    for round in 1..=2u64 {
        let sold = one_each(
            &products,
            &format!("sale-{round}"),
            "quantity_decreased",
            round,
        );
        let report = processor.process_batch(&shard.batch(&sold)).await;
        assert_clean(&report);
        assert_eq!(report.read_requests, 0, "round {round} read the products");
        assert_eq!((report.cache_hits, report.cache_misses), (10, 0));
        assert_eq!(report.applied, 10);
        assert_eq!(report.product_write_requests, 10, "a write lost a race");
    }
    for p in &products {
        let item = stored(&db, &tables, p).await.expect("the product exists");
        assert_eq!((item.quantity, item.version), (10 - 1 - 2, 3), "{p}");
    }
}

#[tokio::test]
async fn another_instance_writing_the_shard_makes_the_first_read_again() {
    let (db, tables) = dynamodb("cache-test").await;
    let first = Processor::new(db.clone(), tables.clone(), shards(0));
    let second = Processor::new(db.clone(), tables.clone(), shards(0));
    let mut shard = Shard::new(0);

    let added = shard.batch(&[("X", event("e1", "product_added", "X", Some(0)))]);
    assert_clean(&first.process_batch(&added).await);
    // The Pipe's next batch of the shard goes to another instance...
    let restock = shard.batch(&[("X", event("e2", "quantity_increased", "X", Some(5)))]);
    assert_clean(&second.process_batch(&restock).await);
    // ...and the one after back to the first, whose cache still says 0 in stock.
    let sale = shard.batch(&[("X", event("e3", "quantity_decreased", "X", Some(3)))]);
    let report = first.process_batch(&sale).await;
    assert_clean(&report);

    assert_eq!(report.applied, 1, "the sale was not applied: {report:?}");
    assert_eq!(report.rejected_total(), 0);
    // Seen through the shard log before folding: read, not a rejection later taken back
    // after a lost race.
    assert_eq!((report.cache_hits, report.cache_misses), (0, 1));
    assert_eq!(report.rejection_write_requests, 0);
    assert_eq!(report.product_write_requests, 1, "the write lost a race");
    let item = stored(&db, &tables, "X").await.expect("X exists");
    assert_eq!((item.quantity, item.version), (2, 3));
}

#[tokio::test]
async fn a_write_behind_the_cache_without_a_log_append_loses_the_race_and_ends_exact() {
    let (db, tables) = dynamodb("cache-test").await;
    let processor = Processor::new(db.clone(), tables.clone(), shards(0));
    let mut shard = Shard::new(0);

    let added = shard.batch(&[("X", event("e1", "product_added", "X", Some(5)))]);
    assert_clean(&processor.process_batch(&added).await);
    // An instance that wrote X and crashed before appending to the shard log.
    let mut behind = stored(&db, &tables, "X").await.expect("X exists");
    behind.quantity = 8;
    behind.version += 1;
    write_behind(&db, &tables, &behind).await;

    let restock = shard.batch(&[("X", event("e2", "quantity_increased", "X", Some(1)))]);
    let report = processor.process_batch(&restock).await;
    assert_clean(&report);
    assert_eq!(
        report.cache_hits, 1,
        "the log showed nothing, so X came from the cache"
    );
    assert_eq!(report.product_write_requests, 2, "one lost race, one write");
    let item = stored(&db, &tables, "X").await.expect("X exists");
    assert_eq!((item.quantity, item.version), (9, 3));

    // And the cache now holds the winner's state: the next batch writes once.
    let more = shard.batch(&[("X", event("e3", "quantity_increased", "X", Some(1)))]);
    let report = processor.process_batch(&more).await;
    assert_clean(&report);
    assert_eq!(
        (report.read_requests, report.product_write_requests),
        (0, 1)
    );
    assert_eq!(
        stored(&db, &tables, "X").await.map(|i| i.quantity),
        Some(10)
    );
}

#[tokio::test]
async fn a_rejection_on_a_cached_state_that_writes_nothing_is_checked_with_a_read() {
    let (db, tables) = dynamodb("cache-test").await;
    let processor = Processor::new(db.clone(), tables.clone(), shards(0));
    let mut shard = Shard::new(0);

    // The instance learns that Y does not exist (its change is rejected, nothing written).
    let early = shard.batch(&[("Y", event("e1", "quantity_increased", "Y", Some(1)))]);
    let report = processor.process_batch(&early).await;
    assert_clean(&report);
    assert_eq!(report.rejected_total(), 1);
    assert_eq!(stored(&db, &tables, "Y").await, None);

    // The shard's next batch goes to another instance, which creates Y and crashes before
    // its log append: the shard log says nothing happened.
    let other = Processor::new(db.clone(), tables.clone(), shards(0));
    let created = shard.batch(&[("Y", event("e2", "product_added", "Y", Some(3)))]);
    let _ = other.process_batch(&created).await;
    delete_shard_log_after_first(&db, &tables).await;
    assert_eq!(stored(&db, &tables, "Y").await.map(|i| i.quantity), Some(3));

    let sale = shard.batch(&[("Y", event("e3", "quantity_decreased", "Y", Some(2)))]);
    let report = processor.process_batch(&sale).await;
    assert_clean(&report);
    assert_eq!(
        report.applied, 1,
        "rejected on a stale cached state: {report:?}"
    );
    assert_eq!(report.rejected_total(), 0);
    assert_eq!((report.cache_hits, report.cache_misses), (0, 1));
    let item = stored(&db, &tables, "Y").await.expect("Y exists");
    assert_eq!(item.quantity, 1);
}

/// Deletes every shard log item after the first (what `e1`'s batch logged stays).
async fn delete_shard_log_after_first(
    db: &aws_sdk_dynamodb::Client,
    tables: &inventory_store::Tables,
) {
    let pk = inventory_store::shard_log::partition("inventory-events", "shardId-000000000000");
    let items = db
        .query()
        .table_name(&tables.events)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", inventory_store::items::s(&pk))
        .consistent_read(true)
        .send()
        .await
        .expect("Query the shard log");
    for item in items.items().iter().skip(1) {
        db.delete_item()
            .table_name(&tables.events)
            .key("pk", item["pk"].clone())
            .key("sk", item["sk"].clone())
            .send()
            .await
            .expect("DeleteItem");
    }
}

#[tokio::test]
async fn a_cold_instance_reads_every_product() {
    let (db, tables) = dynamodb("cache-test").await;
    let mut shard = Shard::new(0);
    let added = one_each(&["A", "B", "C"], "add", "product_added", 4);
    assert_clean(
        &Processor::new(db.clone(), tables.clone(), shards(0))
            .process_batch(&shard.batch(&added))
            .await,
    );

    let cold = Processor::new(db.clone(), tables.clone(), shards(0));
    let sold = one_each(&["A", "B", "C"], "sale", "quantity_decreased", 1);
    let report = cold.process_batch(&shard.batch(&sold)).await;
    assert_clean(&report);
    assert_eq!((report.cache_hits, report.cache_misses), (0, 3));
    assert!(report.read_requests >= 1);
    assert_eq!(report.product_write_requests, 3);
    for p in ["A", "B", "C"] {
        assert_eq!(
            stored(&db, &tables, p).await.map(|i| i.quantity),
            Some(3),
            "{p}"
        );
    }
}

#[tokio::test]
async fn the_bound_evicts_and_an_evicted_product_is_read_again() {
    let (db, tables) = dynamodb("cache-test").await;
    let settings = ProcessorSettings {
        product_cache_max_items: 5,
        ..ProcessorSettings::default()
    };
    let processor = Processor::with_settings(db.clone(), tables.clone(), shards(0), settings);
    let mut shard = Shard::new(0);
    let products: Vec<String> = (0..10).map(|i| format!("P{i}")).collect();
    let added = one_each(&products, "add", "product_added", 10);
    assert_clean(&processor.process_batch(&shard.batch(&added)).await);
    assert!(
        processor.cached_products() <= 5,
        "{} products cached",
        processor.cached_products()
    );

    let sold = one_each(&products, "sale", "quantity_decreased", 1);
    let report = processor.process_batch(&shard.batch(&sold)).await;
    assert_clean(&report);
    assert!(report.cache_misses >= 5, "{report:?}");
    assert!(report.read_requests >= 1);
    assert_eq!(report.cache_hits + report.cache_misses, 10);
    assert!(processor.cached_products() <= 5);
    for p in &products {
        assert_eq!(
            stored(&db, &tables, p).await.map(|i| i.quantity),
            Some(9),
            "{p}"
        );
    }
}
