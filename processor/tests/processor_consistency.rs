//! The processor against the embedded emulators with the real SDK clients: records go into
//! Kinesis, come out with real 56-digit sequence numbers, and reach the handler in the
//! exact Pipes shape. Every assertion is on what DynamoDB holds afterwards.

use inventory_testkit as harness;

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;
use harness::*;
use inventory_domain::pipes::PipeBatch;
use inventory_domain::{BatchItemFailure, PipeRecord, RejectionReason};
use inventory_processor::{Processor, ProcessorSettings, Tables};
use rand::{rngs::StdRng, Rng, SeedableRng};

/// A processor for the fixture's records: they are AWS's, of a stream `inventory-events`
/// whose shard 0 this listing describes (the emulated stream numbers its records otherwise).
fn fixture_processor(s: &Stack) -> Processor {
    use inventory_domain::lineage::{StreamId, StreamLineage};
    let arn = "arn:aws:kinesis:us-east-1:123456789012:stream/inventory-events";
    Processor::new(
        s.db.clone(),
        s.tables.clone(),
        std::sync::Arc::new(inventory_processor::FixedShards(StreamLineage::single(
            StreamId::new(arn, 1_694_000_000_000),
            0,
        ))),
    )
}

#[tokio::test]
async fn the_pipes_fixture_adds_the_sample_product() {
    let s = stack(1).await;
    let batch: Vec<PipeRecord> =
        serde_json::from_str(include_str!("fixtures/pipes-kinesis-batch.json")).unwrap();
    let report = deliver(&fixture_processor(&s), &batch).await;
    assert!(report.response.batch_item_failures.is_empty());
    let item = s.product("P98765").await.expect("product stored");
    assert_eq!(stock(&item), (10, "active".into(), 1));
    assert_eq!(text(&item, "product_name"), "Laptop");
    assert_eq!(
        text(&item, "last_sequence"),
        "49590338271490256608559692538361571095921575989136588898"
    );
    assert_eq!(text(&item, "last_event_at"), "2023-09-11T12:00:00Z");
}

/// The Lambda's own entry point (`handle_body`, the body as Pipes sends it): the fixture
/// applies, and a body that is not a Pipes batch (here the Lambda-Kinesis event shape a
/// misconfigured trigger sends) is refused with what to check, writing nothing.
#[tokio::test]
async fn the_lambda_body_is_read_as_a_pipes_batch_or_refused_with_a_reason() {
    let s = stack(1).await;
    let processor = fixture_processor(&s);
    let lambda_kinesis_event =
        r#"{"Records":[{"kinesis":{"partitionKey":"P98765","data":"e30="}}]}"#;
    let err = processor
        .handle_body(lambda_kinesis_event.as_bytes().to_vec())
        .await
        .expect_err("not a Pipes batch");
    let message = err.to_string();
    assert!(
        message.contains("not an EventBridge Pipes batch") && message.contains("Kinesis"),
        "{message}"
    );
    assert!(s.product("P98765").await.is_none(), "nothing written");

    let response = processor
        .handle_body(include_bytes!("fixtures/pipes-kinesis-batch.json").to_vec())
        .await
        .expect("a Pipes batch");
    assert!(response.batch_item_failures.is_empty());
    let item = s.product("P98765").await.expect("product stored");
    assert_eq!(stock(&item), (10, "active".into(), 1));
}

/// Puts six events that must be rejected, each for its own defect: not JSON, not UTF-8,
/// an unknown event type, no quantity, too large, and a partition key that is not the
/// product.
async fn put_malformed_events(s: &Stack) {
    s.put("P1", b"{not json".to_vec()).await;
    s.put("P1", vec![0xff, 0xfe, 0x00]).await;
    s.put(
        "P1",
        br#"{"event_type":"product_sold","product":{"product_id":"P1"}}"#.to_vec(),
    )
    .await;
    s.put(
        "P1",
        event("e10", "quantity_increased", "P1", None).into_bytes(),
    )
    .await;
    s.put("P1", vec![b' '; 20_000]).await;
    s.put(
        "P9",
        event("e11", "product_added", "P1", Some(1)).into_bytes(),
    )
    .await; // partition key is not the product
}

/// The recorded rejections: reason → how many.
async fn rejection_counts(s: &Stack) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for reason in s.rejections(&s.tables).await.into_values() {
        *counts.entry(reason).or_default() += 1;
    }
    counts
}

#[tokio::test]
async fn mixed_batch_gives_exact_stock_and_exact_rejections() {
    let s = stack(1).await;
    let valid = [
        ("P1", event("e1", "product_added", "P1", Some(10))),
        ("P1", event("e2", "quantity_decreased", "P1", Some(4))),
        ("P2", event("e3", "product_added", "P2", Some(5))),
        ("P1", event("e4", "quantity_decreased", "P1", Some(7))), // 6 left: insufficient
        ("P2", event("e5", "quantity_increased", "P2", Some(3))),
        ("P3", event("e6", "quantity_increased", "P3", Some(1))), // never added
        ("P2", event("e7", "product_added", "P2", Some(1))),      // already exists
        ("P1", event("e8", "quantity_decreased", "P1", Some(6))), // exactly to zero
        ("P2", event("e9", "product_removed", "P2", None)),
    ];
    for (pk, data) in &valid {
        s.put(pk, data.as_bytes()).await;
    }
    put_malformed_events(&s).await;
    let mut batch = s.read_one_shard().await;
    // Pipes hands base64; a corrupted one can only be made after the stream.
    let last = batch.last().unwrap().clone();
    batch.push(PipeRecord {
        data: "!!not base64!!".into(),
        sequence_number: format!("{}1", last.sequence_number),
        event_id: format!("{}1", last.event_id),
        ..last
    });

    let report = deliver(&s.processor(), &batch).await;
    assert!(report.response.batch_item_failures.is_empty());
    assert_eq!(
        stock(&s.product("P1").await.unwrap()),
        (0, "active".into(), 3)
    );
    assert_eq!(
        stock(&s.product("P2").await.unwrap()),
        (0, "removed".into(), 3)
    );
    assert!(
        s.product("P3").await.is_none(),
        "a rejected event creates no product"
    );

    assert_eq!(
        rejection_counts(&s).await,
        BTreeMap::from([
            ("already_exists".to_owned(), 1),
            ("insufficient_stock".to_owned(), 1),
            ("invalid_base64".to_owned(), 1),
            ("invalid_json".to_owned(), 2),
            ("payload_too_large".to_owned(), 1),
            ("product_not_found".to_owned(), 1),
            ("schema_violation".to_owned(), 2),
            ("unknown_event_type".to_owned(), 1),
        ])
    );
    assert_eq!(report.rejected_total(), 10);
    assert_eq!(report.applied, 6);
    assert_eq!(report.rejected.get(&RejectionReason::InvalidJson), Some(&2));
    // One write per distinct product touched that changed, whatever the number of events.
    assert_eq!(report.products_written, 2);
    assert_eq!(report.product_write_requests, 2);
    assert_eq!(report.read_requests, 1);
}

#[tokio::test]
async fn a_redelivered_batch_changes_nothing_and_writes_nothing() {
    let s = stack(1).await;
    for (i, kind, q) in [
        (1, "product_added", Some(10)),
        (2, "quantity_decreased", Some(3)),
        (3, "quantity_decreased", Some(30)),
    ] {
        s.put("P1", event(&format!("e{i}"), kind, "P1", q)).await;
    }
    let batch = s.read_one_shard().await;
    let p = s.processor();
    let first = deliver(&p, &batch).await;
    let item = s.product("P1").await.unwrap();
    let rejections = s.rejections(&s.tables).await;

    let again = deliver(&p, &batch).await;
    assert_eq!((again.applied, again.redeliveries), (0, 3));
    assert_eq!(again.products_written, 0);
    assert_eq!(
        again.rejected_total(),
        0,
        "a redelivered rejection is not re-counted"
    );
    assert_eq!(
        s.product("P1").await.unwrap(),
        item,
        "not even updated_at moved"
    );
    assert_eq!(s.rejections(&s.tables).await, rejections);
    assert_eq!((first.applied, first.rejected_total()), (2, 1));
    assert_eq!(stock(&item), (7, "active".into(), 2));
}

#[tokio::test]
async fn a_producer_duplicate_is_applied_once() {
    let s = stack(1).await;
    s.put("P1", event("add", "product_added", "P1", Some(10)))
        .await;
    s.put("P1", event("sale-1", "quantity_decreased", "P1", Some(2)))
        .await;
    // The producer did not see its acknowledgement and published the same event again.
    s.put("P1", event("sale-1", "quantity_decreased", "P1", Some(2)))
        .await;
    s.put("P1", event("sale-2", "quantity_decreased", "P1", Some(1)))
        .await;
    let batch = s.read_one_shard().await;
    // Split so the duplicate arrives in a later invocation than its original.
    let p = s.processor();
    deliver(&p, &batch[..2]).await;
    let report = deliver(&p, &batch[2..]).await;
    assert_eq!((report.producer_duplicates, report.applied), (1, 1));
    assert_eq!(
        stock(&s.product("P1").await.unwrap()),
        (7, "active".into(), 3)
    );
}

#[tokio::test]
async fn a_crash_mid_batch_then_redelivery_equals_one_clean_run() {
    let s = stack(1).await;
    let mut rng = StdRng::seed_from_u64(7);
    let mut model: BTreeMap<String, (bool, u64)> = BTreeMap::new();
    for i in 0..120 {
        let product = format!("P{}", rng.random_range(0..6));
        let (active, qty) = model.get(&product).copied().unwrap_or((false, 0));
        // Mostly valid, sometimes invalid transitions, so rejections are in play too.
        let (kind, q) = match (active, rng.random_range(0..10)) {
            (false, 0) => ("quantity_decreased", Some(1)),
            (false, _) => ("product_added", Some(rng.random_range(0..20))),
            (true, 0) => ("product_removed", None),
            (true, 1) => ("product_added", Some(1)),
            (true, 2..=5) => ("quantity_increased", Some(rng.random_range(1..5))),
            (true, _) => ("quantity_decreased", Some(rng.random_range(1..(qty + 3)))),
        };
        match (kind, active) {
            ("product_added", false) => {
                model.insert(product.clone(), (true, q.unwrap()));
            }
            ("product_removed", true) => {
                model.insert(product.clone(), (false, 0));
            }
            ("quantity_increased", true) => {
                model.insert(product.clone(), (true, qty + q.unwrap()));
            }
            ("quantity_decreased", true) if qty >= q.unwrap() => {
                model.insert(product.clone(), (true, qty - q.unwrap()));
            }
            _ => {}
        }
        s.put(&product, event(&format!("e{i}"), kind, &product, q))
            .await;
    }
    let batch = s.read_one_shard().await;

    let clean = Tables::with_prefix("clean-");
    inventory_store::tables::ensure_tables(&s.db, &clean)
        .await
        .unwrap();
    deliver(&s.processor_for(&clean), &batch).await;
    let expected = s.all_products(&clean).await;
    for (id, (active, qty)) in &model {
        let item = &expected[id];
        assert_eq!(number(item, "quantity"), *qty, "{id}");
        assert_eq!(text(item, "status") == "active", *active, "{id}");
    }

    // Crash points: the handler died after applying some records of the batch; the Pipe
    // then delivers the whole batch again (several times for good measure).
    for (run, cut) in [1usize, 17, 60, 119].into_iter().enumerate() {
        let tables = Tables::with_prefix(&format!("crash{run}-"));
        inventory_store::tables::ensure_tables(&s.db, &tables)
            .await
            .unwrap();
        let p = s.processor_for(&tables);
        deliver(&p, &batch[..cut]).await;
        deliver(&p, &batch).await;
        deliver(&p, &batch[cut / 2..]).await;
        let got = s.all_products(&tables).await;
        assert_eq!(
            got.values().map(state_of).collect::<Vec<_>>(),
            expected.values().map(state_of).collect::<Vec<_>>(),
            "crash after {cut} records"
        );
        assert_eq!(
            s.rejections(&tables).await,
            s.rejections(&clean).await,
            "rejections after a crash at {cut}"
        );
    }
}

#[tokio::test]
async fn events_apply_in_stream_order_across_shards_and_batches() {
    let s = stack(4).await;
    let mut rng = StdRng::seed_from_u64(11);
    let mut model: BTreeMap<String, (bool, u64, u64)> = BTreeMap::new();
    let mut puts = Vec::new();
    for i in 0..600 {
        let product = format!("SKU-{}", rng.random_range(0..25));
        let (active, qty, version) = model.get(&product).copied().unwrap_or((false, 0, 0));
        // Only valid transitions: any reordering would turn some into rejections.
        let (kind, q, next) = if !active {
            let q = rng.random_range(0..10);
            ("product_added", Some(q), (true, q))
        } else {
            match rng.random_range(0..12) {
                0 => ("product_removed", None, (false, 0)),
                1..=5 => {
                    let q = rng.random_range(1..6);
                    ("quantity_increased", Some(q), (true, qty + q))
                }
                _ if qty > 0 => {
                    let q = rng.random_range(1..=qty);
                    ("quantity_decreased", Some(q), (true, qty - q))
                }
                _ => ("quantity_increased", Some(2), (true, qty + 2)),
            }
        };
        model.insert(product.clone(), (next.0, next.1, version + 1));
        puts.push((product.clone(), event(&format!("e{i}"), kind, &product, q)));
    }
    for (pk, data) in &puts {
        s.put(pk, data.as_bytes()).await;
    }
    let shards = s.read_all().await;
    assert!(
        shards.values().filter(|r| !r.is_empty()).count() > 1,
        "spread over shards"
    );
    let p = s.processor();
    for records in shards.values() {
        let mut at = 0;
        while at < records.len() {
            let size = rng.random_range(1..40).min(records.len() - at);
            let report = deliver(&p, &records[at..at + size]).await;
            assert_eq!(report.rejected_total(), 0);
            assert!(report.response.batch_item_failures.is_empty());
            at += size;
        }
    }
    let stored = s.all_products(&s.tables).await;
    assert_eq!(stored.len(), model.len());
    for (id, (active, qty, version)) in model {
        let item = &stored[&id];
        let status = if active { "active" } else { "removed" };
        assert_eq!(stock(item), (qty, status.into(), version), "{id}");
    }
}

#[tokio::test]
async fn a_write_failure_reports_the_first_unfinished_record_and_a_retry_completes() {
    let s = stack(1).await;
    s.put("P1", b"{broken".to_vec()).await;
    s.put("P1", event("e1", "product_added", "P1", Some(5)))
        .await;
    s.put("P2", event("e2", "product_added", "P2", Some(5)))
        .await;
    s.put("P1", event("e3", "quantity_decreased", "P1", Some(2)))
        .await;
    let batch = s.read_one_shard().await;

    // The inventory table is missing: every product read fails, rejections still record.
    let broken = Tables {
        inventory: "no-such-table".into(),
        events: s.tables.events.clone(),
    };
    let report = deliver(&s.processor_for(&broken), &batch).await;
    let failures = &report.response.batch_item_failures;
    assert_eq!(failures.len(), 1);
    assert_eq!(
        failures[0].item_identifier, batch[1].event_id,
        "the first valid record"
    );
    assert_eq!(
        s.rejections(&s.tables).await.len(),
        1,
        "the malformed one is recorded"
    );

    // The Pipe retries from the reported record on.
    let retry = deliver(&s.processor(), &batch[1..]).await;
    assert!(retry.response.batch_item_failures.is_empty());
    assert_eq!(
        stock(&s.product("P1").await.unwrap()),
        (3, "active".into(), 2)
    );
    assert_eq!(
        stock(&s.product("P2").await.unwrap()),
        (5, "active".into(), 1)
    );
}

#[tokio::test]
async fn a_failed_rejection_write_retries_the_whole_product_from_its_first_record() {
    use inventory_local::fault_proxy::{FaultProxy, FaultRates};
    let s = stack(1).await;
    s.put("P2", event("e0", "product_added", "P2", Some(1)))
        .await;
    s.put("P1", event("e1", "product_added", "P1", Some(5)))
        .await;
    s.put("P1", event("e2", "quantity_increased", "P1", Some(3)))
        .await;
    s.put("P1", event("e3", "quantity_decreased", "P1", Some(99)))
        .await; // oversell
    let batch = s.read_one_shard().await;

    // Every rejection write fails (after the SDK's one attempt); everything else works.
    let proxy = FaultProxy::start(
        s.aws.endpoint(),
        FaultRates {
            server_error: 1.0,
            only: Some("BatchWriteItem"),
            ..FaultRates::default()
        },
        1,
    )
    .await
    .unwrap();
    let failing = Processor::new(proxy.dynamodb_client(1), s.tables.clone(), s.shards());
    let report = deliver(&failing, &batch).await;
    // P1 waits for its rejection, so the Pipe must retry from P1's first record (e1), not
    // from the rejected e3: retrying from e3 would lose e1 and e2.
    assert_eq!(
        report.response.batch_item_failures[0].item_identifier,
        batch[1].event_id
    );
    assert!(s.product("P1").await.is_none(), "P1 was not written");
    assert_eq!(
        stock(&s.product("P2").await.unwrap()),
        (1, "active".into(), 1)
    );

    let retry = deliver(&s.processor(), &batch[1..]).await;
    assert!(retry.response.batch_item_failures.is_empty());
    assert_eq!(
        stock(&s.product("P1").await.unwrap()),
        (8, "active".into(), 2)
    );
    assert_eq!(
        s.rejections(&s.tables)
            .await
            .get(&batch[3].event_id)
            .map(String::as_str),
        Some("insufficient_stock")
    );
}

#[tokio::test]
async fn a_write_applied_but_answered_as_failed_keeps_its_outcomes_and_rejections() {
    use inventory_local::fault_proxy::{FaultProxy, FaultRates};
    let s = stack(1).await;
    s.put("P1", event("e1", "product_added", "P1", Some(5)))
        .await;
    s.put("P1", event("e2", "quantity_decreased", "P1", Some(99)))
        .await; // oversell
    s.put("P1", event("e3", "quantity_increased", "P1", Some(1)))
        .await;
    let batch = s.read_one_shard().await;

    // Every product PutItem is applied, then answered with a 500; the SDK retries it and
    // the retry's condition fails against the item the first attempt wrote.
    let proxy = FaultProxy::start(
        s.aws.endpoint(),
        FaultRates {
            lost_response: 1.0,
            only: Some("PutItem"),
            ..FaultRates::default()
        },
        1,
    )
    .await
    .unwrap();
    let processor = Processor::new(proxy.dynamodb_client(2), s.tables.clone(), s.shards());
    let report = deliver(&processor, &batch).await;
    assert!(report.response.batch_item_failures.is_empty());
    assert_eq!((report.applied, report.rejected_total()), (2, 1));
    assert_eq!(
        stock(&s.product("P1").await.unwrap()),
        (6, "active".into(), 2)
    );
    // The rejection recorded before the write is still there: the retry's conflict was
    // with our own write, not another writer's.
    assert_eq!(
        s.rejections(&s.tables)
            .await
            .get(&batch[1].event_id)
            .map(String::as_str),
        Some("insufficient_stock")
    );
}

#[tokio::test]
async fn racing_processors_never_lose_or_double_an_event() {
    let s = stack(1).await;
    let mut expected = BTreeMap::new();
    for p in 0..3 {
        let id = format!("P{p}");
        s.put(
            &id,
            event(&format!("{id}-add"), "product_added", &id, Some(1000)),
        )
        .await;
        expected.insert(id, 1000u64);
    }
    let mut rng = StdRng::seed_from_u64(3);
    for i in 0..240 {
        let id = format!("P{}", i % 3);
        let q = rng.random_range(1..5);
        let kind = if i % 4 == 0 {
            "quantity_increased"
        } else {
            "quantity_decreased"
        };
        let e = expected.get_mut(&id).unwrap();
        *e = if kind == "quantity_increased" {
            *e + q
        } else {
            *e - q
        };
        s.put(&id, event(&format!("e{i}"), kind, &id, Some(q)))
            .await;
    }
    let batch = s.read_one_shard().await;
    // Independent processors deliver the stream at once, each in order from the start but
    // in different batch sizes (as a replay racing the live Pipe would): conditional writes
    // must make them agree. (Each starts at the beginning: a delivery that skips records
    // breaks the per-shard order the Pipe guarantees.)
    // The short runs go one record at a time, so they are still writing after the full ones
    // finished: an unconditional write from them would put old state back.
    let runs = [(243, 60), (243, 81), (120, 1), (150, 2), (100, 1)];
    let tasks: Vec<_> = runs
        .into_iter()
        .map(|(end, size)| {
            let p = s.processor();
            let part = batch[..end].to_vec();
            tokio::spawn(async move {
                for chunk in part.chunks(size) {
                    // A lost race beyond the processor's own retries comes back as a batch
                    // item failure; the Pipe would redeliver, and so does this loop.
                    let mut attempts = 0;
                    while !p
                        .process_batch(&PipeBatch::from(chunk))
                        .await
                        .response
                        .batch_item_failures
                        .is_empty()
                    {
                        attempts += 1;
                        assert!(attempts < 20, "never settled");
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    for (id, qty) in expected {
        let item = s.product(&id).await.unwrap();
        assert_eq!(stock(&item), (qty, "active".into(), 81), "{id}");
    }
}

#[tokio::test]
async fn a_stale_write_loses_the_race_instead_of_putting_old_state_back() {
    let s = stack(1).await;
    s.put("P1", event("add", "product_added", "P1", Some(100)))
        .await;
    for i in 0..10 {
        s.put(
            "P1",
            event(&format!("sale-{i}"), "quantity_decreased", "P1", Some(1)),
        )
        .await;
    }
    let batch = s.read_one_shard().await;

    // Processor A reads P1, folds the first 3 records, and its write is held back...
    let gate = Gate::start(s.aws.endpoint(), ".PutItem").await;
    let slow_db = aws_sdk_dynamodb::Client::new(&inventory_local::sdk_config_for(&gate.endpoint));
    let slow = inventory_processor::Processor::new(slow_db, s.tables.clone(), s.shards());
    let stale = batch[..3].to_vec();
    let a = tokio::spawn(async move { slow.process_batch(&PipeBatch::from(&stale[..])).await });
    gate.wait_until_holding().await;
    // ...while processor B applies the whole stream.
    deliver(&s.processor(), &batch).await;
    assert_eq!(
        stock(&s.product("P1").await.unwrap()),
        (90, "active".into(), 11)
    );

    gate.open();
    let report = a.await.unwrap();
    assert!(report.response.batch_item_failures.is_empty());
    assert_eq!(
        report.applied, 0,
        "after the conflict A re-read and found it all applied"
    );
    assert_eq!(
        stock(&s.product("P1").await.unwrap()),
        (90, "active".into(), 11)
    );
}

#[tokio::test]
async fn a_write_race_lost_to_a_writer_that_rejected_the_same_record_keeps_its_rejection() {
    let s = stack(1).await;
    s.put("P1", event("e1", "product_added", "P1", Some(1)))
        .await;
    s.put("P1", event("e2", "quantity_decreased", "P1", Some(5)))
        .await; // oversell
    s.put("P1", event("e3", "quantity_increased", "P1", Some(2)))
        .await;
    let batch = s.read_one_shard().await;

    // Processor A (a retried, bisected half of the batch) records e2's rejection, then its
    // product write is held back...
    let gate = Gate::start(s.aws.endpoint(), ".PutItem").await;
    let slow_db = aws_sdk_dynamodb::Client::new(&inventory_local::sdk_config_for(&gate.endpoint));
    let slow = Processor::new(slow_db, s.tables.clone(), s.shards());
    let half = batch[..2].to_vec();
    let a = tokio::spawn(async move { slow.process_batch(&PipeBatch::from(&half[..])).await });
    gate.wait_until_holding().await;
    // ...while processor B processes the whole batch, rejecting e2 too.
    deliver(&s.processor(), &batch).await;
    gate.open();
    let report = a.await.unwrap();
    assert!(report.response.batch_item_failures.is_empty());

    // A lost the race and re-folded: e2 is now a redelivery, but B's item passed it as a
    // rejection, so the rejection both recorded stays.
    assert_eq!(
        stock(&s.product("P1").await.unwrap()),
        (3, "active".into(), 2)
    );
    assert_eq!(
        s.rejections(&s.tables)
            .await
            .get(&batch[1].event_id)
            .map(String::as_str),
        Some("insufficient_stock"),
        "the loser of a write race deleted the winner's rejection"
    );
}

/// A product whose write keeps losing races gives up after `max_conflict_retries` and is
/// reported as the batch item failure: its events are neither applied nor logged as
/// processed, so the Pipe's retry from that record applies them, once.
#[tokio::test]
async fn running_out_of_conflict_retries_reports_the_product_and_loses_nothing() {
    let s = stack(1).await;
    s.put("P1", event("add", "product_added", "P1", Some(10)))
        .await;
    s.put("P1", event("s1", "quantity_decreased", "P1", Some(1)))
        .await;
    s.put("P1", event("s2", "quantity_decreased", "P1", Some(2)))
        .await;
    s.put("P2", event("p2", "product_added", "P2", Some(5)))
        .await;
    let batch = s.read_one_shard().await;

    // Processor A, with no conflict retries, reads both products (absent) and its writes
    // are held back...
    let gate = Gate::start(s.aws.endpoint(), ".PutItem").await;
    let slow_db = aws_sdk_dynamodb::Client::new(&inventory_local::sdk_config_for(&gate.endpoint));
    let settings = ProcessorSettings {
        max_conflict_retries: 0,
        ..ProcessorSettings::default()
    };
    let slow = Processor::with_settings(slow_db, s.tables.clone(), s.shards(), settings);
    let whole = PipeBatch::from(&batch[..]);
    let a = tokio::spawn(async move { slow.process_batch(&whole).await });
    gate.wait_until_holding().await;
    // ...while processor B applies P1's first record only, so A's write of P1 loses and its
    // re-fold over B's item still has s1 and s2 to write.
    deliver(&s.processor(), &batch[..1]).await;
    gate.open();
    let report = a.await.unwrap();

    assert_eq!(
        report.response.batch_item_failures,
        vec![BatchItemFailure {
            item_identifier: batch[0].event_id.clone()
        }],
        "the Pipe must retry from P1's first record"
    );
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.contains("P1") && e.contains("conflicting concurrent writes")),
        "{:?}",
        report.errors
    );
    assert_eq!(
        stock(&s.product("P1").await.unwrap()),
        (10, "active".into(), 1),
        "only B's write is stored"
    );
    assert_eq!(
        stock(&s.product("P2").await.unwrap()),
        (5, "active".into(), 1),
        "the other product of A's batch is written"
    );

    // The Pipe's retry from the reported record: nothing lost, nothing doubled.
    let retry = deliver(&s.processor(), &batch).await;
    assert!(retry.response.batch_item_failures.is_empty());
    assert_eq!((retry.applied, retry.redeliveries), (2, 2));
    assert_eq!(
        stock(&s.product("P1").await.unwrap()),
        (7, "active".into(), 3)
    );
}

/// A product item that is not what the pipeline writes (here `quantity` edited by hand into
/// a string) does not crash the batch: the product's records are reported for retry with
/// an error naming the item and the field, and the other products of the batch apply.
#[tokio::test]
async fn a_corrupt_stored_product_is_named_by_field_and_the_rest_of_the_batch_applies() {
    let s = stack(1).await;
    s.put("P1", event("a1", "product_added", "P1", Some(10)))
        .await;
    s.put("P2", event("a2", "product_added", "P2", Some(5)))
        .await;
    let first = s.read_one_shard().await;
    deliver(&s.processor(), &first).await;
    s.db.update_item()
        .table_name(&s.tables.inventory)
        .key("product_id", AttributeValue::S("P1".into()))
        .update_expression("SET quantity = :q")
        .expression_attribute_values(":q", AttributeValue::S("lots".into()))
        .send()
        .await
        .unwrap();

    s.put("P2", event("i2", "quantity_increased", "P2", Some(3)))
        .await;
    s.put("P1", event("d1", "quantity_decreased", "P1", Some(1)))
        .await;
    s.put("P3", event("a3", "product_added", "P3", Some(1)))
        .await;
    let all = s.read_one_shard().await;
    let batch = &all[first.len()..];
    let report = deliver(&s.processor(), batch).await;

    assert_eq!(
        report.response.batch_item_failures,
        vec![BatchItemFailure {
            item_identifier: batch[1].event_id.clone()
        }],
        "P1's record is retried, not rejected or dropped"
    );
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.contains("product P1") && e.contains("quantity")),
        "the error names the item and the field: {:?}",
        report.errors
    );
    assert_eq!(report.applied, 2);
    assert_eq!(
        stock(&s.product("P2").await.unwrap()),
        (8, "active".into(), 2)
    );
    assert_eq!(
        stock(&s.product("P3").await.unwrap()),
        (1, "active".into(), 1)
    );
    let p1 = s.product("P1").await.unwrap();
    assert_eq!(
        text(&p1, "quantity"),
        "lots",
        "the corrupt item is left as it is"
    );
    assert!(s.rejections(&s.tables).await.is_empty());
}

/// The shard's counters ride in the shard log's transaction: when it fails (every
/// TransactWriteItems answered with a 500) the batch fails and nothing is counted. The
/// product writes before it did land, so the redelivery sees its records as redeliveries:
/// it logs and counts their delivery, but not the change they made — the one window
/// docs/consistency.md ("Counters") leaves open, measured here to the unit.
#[tokio::test]
async fn a_failed_counter_transaction_fails_the_batch_counts_nothing_and_its_retry_counts_once() {
    use inventory_local::fault_proxy::{FaultProxy, FaultRates};
    let s = stack(1).await;
    s.put("P1", event("e1", "product_added", "P1", Some(5)))
        .await;
    s.put("P1", event("e2", "quantity_decreased", "P1", Some(2)))
        .await;
    let batch = s.read_one_shard().await;
    let proxy = FaultProxy::start(
        s.aws.endpoint(),
        FaultRates {
            server_error: 1.0,
            only: Some("TransactWriteItems"),
            ..FaultRates::default()
        },
        1,
    )
    .await
    .unwrap();
    let processor = Processor::new(proxy.dynamodb_client(1), s.tables.clone(), s.shards());
    let report = deliver(&processor, &batch).await;
    assert_eq!(
        report.response.batch_item_failures,
        [BatchItemFailure {
            item_identifier: batch[0].event_id.clone()
        }],
        "the batch is retried from its first record"
    );
    assert!(
        proxy
            .counts
            .server_errors
            .load(std::sync::atomic::Ordering::SeqCst)
            >= 1
    );
    assert_eq!(
        inventory_store::stats::read_total(&s.db, &s.tables)
            .await
            .unwrap(),
        None,
        "a failed batch counts nothing"
    );
    assert_eq!(
        stock(&s.product("P1").await.unwrap()),
        (3, "active".into(), 2),
        "the product write landed before the transaction"
    );

    let again = deliver(&s.processor(), &batch).await;
    assert!(again.response.batch_item_failures.is_empty());
    assert_eq!((again.applied, again.redeliveries), (0, 2));
    assert_eq!(again.log.write_requests, 1, "the redelivery logs them");
    let total = inventory_store::stats::read_total(&s.db, &s.tables)
        .await
        .unwrap()
        .expect("the retry's counters");
    assert_eq!(
        (
            total.counters.records,
            total.counters.duplicates,
            total.counters.batches
        ),
        (2, 2, 1),
        "the retry's delivery, once"
    );
    // The open window: the change the failed batch made (a product of 3 units) is not in
    // the counters, though the product is.
    assert_eq!(total.products, Default::default());
    // A third delivery is a redelivery the log knows: nothing more is logged or counted
    // but its own delivery.
    let third = deliver(&s.processor(), &batch).await;
    assert_eq!(third.log.write_requests, 0);
}

// ------------------------------------------------- duplicates at any distance (shard log)

/// Puts records in PutRecords calls of up to 500.
async fn put_many(s: &Stack, records: &[(String, String)]) {
    let calls = records.chunks(500).map(|chunk| {
        chunk
            .iter()
            .map(|(pk, data)| {
                aws_sdk_kinesis::types::PutRecordsRequestEntry::builder()
                    .partition_key(pk)
                    .data(aws_sdk_kinesis::primitives::Blob::new(data.as_bytes()))
                    .build()
                    .unwrap()
            })
            .collect::<Vec<_>>()
    });
    s.put_calls(calls).await;
}

/// Product P added with `stock`, sale `order-1` of 4, then 30 restocks of 1: the original
/// of a retry, with more events after it than the item's 16 recent ids hold.
fn sale_then_thirty_restocks(stock: u64) -> Vec<(String, String)> {
    let mut puts = vec![
        (
            "P".to_owned(),
            event("add", "product_added", "P", Some(stock)),
        ),
        sale("order-1", "P", 4),
    ];
    for i in 0..30 {
        puts.push(restock(&format!("r{i}"), "P", 1));
    }
    puts
}

fn sale(id: &str, product: &str, q: u64) -> (String, String) {
    (
        product.to_owned(),
        event(id, "quantity_decreased", product, Some(q)),
    )
}

fn restock(id: &str, product: &str, q: u64) -> (String, String) {
    (
        product.to_owned(),
        event(id, "quantity_increased", product, Some(q)),
    )
}

/// Many producers on one hot product: a retry lands 2,000 of the other producers' events
/// after its original, beyond the item's 16 recent ids. Batches go to three processor
/// instances in turn (each one's memory misses what the others logged, one of them starts
/// cold halfway), as Lambda spreads a shard's invocations over its instances.
#[tokio::test]
async fn a_retry_two_thousand_events_after_its_original_is_ignored_by_any_instance() {
    let s = stack(1).await;
    let mut puts = vec![(
        "HOT".to_owned(),
        event("add", "product_added", "HOT", Some(5_000)),
    )];
    puts.push(sale("order-1", "HOT", 7));
    for i in 0..2_000 {
        puts.push(sale(&format!("other-{i}"), "HOT", 1));
    }
    // The first producer's SDK timed out and put order-1 again.
    puts.push(sale("order-1", "HOT", 7));
    puts.push(restock("late", "HOT", 3));
    put_many(&s, &puts).await;
    let records = s.read_one_shard().await;
    assert_eq!(records.len(), 2_004);

    let instances = [s.processor(), s.processor(), s.processor()];
    let mut duplicates = 0;
    let mut cold = None;
    for (k, batch) in records.chunks(100).enumerate() {
        let p = if k == 12 {
            // A cold start: a new instance reads the log back from DynamoDB.
            cold.insert(s.processor()).clone()
        } else {
            instances[k % 3].clone()
        };
        let report = deliver(&p, batch).await;
        assert!(report.response.batch_item_failures.is_empty());
        duplicates += report.producer_duplicates;
    }
    assert_eq!(duplicates, 1, "the retry is the one duplicate");
    // 5,000 − 7 − 2,000 + 3, and 2,003 events applied.
    assert_eq!(
        stock(&s.product("HOT").await.unwrap()),
        (2_996, "active".into(), 2_003)
    );
}

#[tokio::test]
async fn an_event_id_reused_for_another_event_is_rejected_with_its_own_reason() {
    let s = stack(1).await;
    let mut puts = vec![
        ("P".to_owned(), event("add", "product_added", "P", Some(10))),
        sale("order-9", "P", 2),
    ];
    for i in 0..40 {
        puts.push(restock(&format!("r{i}"), "P", 1));
    }
    // A producer bug: a new event under an id it already used.
    puts.push(sale("order-9", "P", 5));
    put_many(&s, &puts).await;
    let records = s.read_one_shard().await;
    let p = s.processor();
    for batch in records.chunks(10) {
        deliver(&p, batch).await;
    }
    let reused = records.last().unwrap().event_id.clone();
    let rejections = s.rejections(&s.tables).await;
    assert_eq!(
        rejections.get(&reused).map(String::as_str),
        Some(RejectionReason::EventIdReused.as_str())
    );
    assert_eq!(rejections.len(), 1);
    assert_eq!(
        stock(&s.product("P").await.unwrap()),
        (48, "active".into(), 42)
    );
}

/// The original's batch failed (its DynamoDB writes did not happen) and the Pipe dead-
/// lettered it; the producer's retry is then the only copy that reaches the table, and is
/// applied.
#[tokio::test]
async fn a_retry_whose_original_was_dead_lettered_is_applied() {
    let s = stack(1).await;
    let mut puts = sale_then_thirty_restocks(10);
    puts.push(sale("order-1", "P", 4));
    put_many(&s, &puts).await;
    let records = s.read_one_shard().await;
    let p = s.processor();
    deliver(&p, &records[..1]).await;
    // DynamoDB unreachable for this delivery: every write fails, the Pipe gives up on it.
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::for_tests())
        .endpoint_url("http://127.0.0.1:9")
        .load()
        .await;
    let down = Processor::new(
        aws_sdk_dynamodb::Client::new(&config),
        s.tables.clone(),
        s.shards(),
    );
    let failed = deliver(&down, &records[1..2]).await;
    assert_eq!(failed.response.batch_item_failures.len(), 1);
    for batch in records[2..].chunks(8) {
        deliver(&p, batch).await;
    }
    // 10 + 30 − 4: the retry is applied, once.
    assert_eq!(
        stock(&s.product("P").await.unwrap()),
        (36, "active".into(), 32)
    );
}

/// The product writes landed but the log write did not (the instance died in between):
/// the Pipe redelivers the batch, its records are redeliveries for the product, and the
/// redelivery logs them, so a later retry is still recognised, by a cold instance too.
#[tokio::test]
async fn a_crash_between_the_product_writes_and_the_log_write_is_mended_by_the_redelivery() {
    let s = stack(1).await;
    let mut puts = sale_then_thirty_restocks(100);
    puts.push(sale("order-1", "P", 4));
    put_many(&s, &puts).await;
    let records = s.read_one_shard().await;
    deliver(&s.processor(), &records[..2]).await;
    // Lose the log item, as if the write never happened.
    let logged = delete_dedup_items(&s, |_| false).await;
    assert_eq!(logged, 1);
    let retry = s.processor();
    let again = deliver(&retry, &records[..2]).await;
    assert_eq!((again.applied, again.redeliveries), (0, 2));
    assert_eq!(again.log.write_requests, 1, "the redelivery logs them");
    for batch in records[2..].chunks(8) {
        deliver(&s.processor(), batch).await;
    }
    assert_eq!(
        stock(&s.product("P").await.unwrap()),
        (126, "active".into(), 32)
    );
}

/// A split moves a product to a child shard whose sequence numbers are not comparable with
/// the parent's; the retry of an event the parent carried arrives in the child and reaches
/// a cold instance, which finds the parent's log through the product item.
#[tokio::test]
async fn a_retry_in_a_child_shard_of_an_event_its_parent_carried_is_ignored() {
    let s = stack(1).await;
    put_many(&s, &sale_then_thirty_restocks(100)).await;
    s.split_first_shard().await;
    put_many(&s, &[sale("order-1", "P", 4), restock("after", "P", 2)]).await;
    let shards = s.read_all().await;
    let parent = &shards["shardId-000000000000"];
    let child = shards
        .iter()
        .find(|(id, r)| id.as_str() != "shardId-000000000000" && !r.is_empty())
        .map(|(_, r)| r)
        .unwrap();
    assert_eq!((parent.len(), child.len()), (32, 2));
    for batch in parent.chunks(10) {
        deliver(&s.processor(), batch).await;
    }
    let report = deliver(&s.processor(), child).await;
    assert_eq!((report.producer_duplicates, report.applied), (1, 1));
    assert_eq!(
        stock(&s.product("P").await.unwrap()),
        (128, "active".into(), 33)
    );
}

/// What recognising duplicates at any distance costs: one log item per batch, 20 bytes per
/// event in it (3 units for a batch of 100), written in one transaction with the shard's
/// counters (10 units in all, 0.1 per event); nothing on the product items (still one write
/// per distinct product), one small read per batch.
#[tokio::test]
async fn the_shard_log_costs_ten_write_units_per_batch_of_a_hundred_and_nothing_per_product() {
    let s = stack(1).await;
    let mut puts = Vec::new();
    for p in 0..10 {
        let product = format!("P{p}");
        puts.push((
            product.clone(),
            event(&format!("add-{p}"), "product_added", &product, Some(10)),
        ));
        for i in 0..99 {
            puts.push(restock(&format!("r{p}-{i}"), &product, 1));
        }
    }
    put_many(&s, &puts).await;
    let records = s.read_one_shard().await;
    let p = s.processor();
    let mut log = inventory_store::shard_log::LogCost::default();
    let mut product_writes = 0;
    for batch in records.chunks(100) {
        let report = deliver(&p, batch).await;
        assert!(report.response.batch_item_failures.is_empty());
        log.add(report.log);
        product_writes += report.product_write_requests;
    }
    assert_eq!(
        product_writes, 10,
        "one write per product per batch, as without the log"
    );
    // One request per batch besides the product writes: the log item (3 units) and the
    // shard's counters and bucket (1 each) in one transaction, each item's units doubled.
    assert_eq!((log.write_requests, log.write_units), (10, 100));
    assert_eq!(log.read_requests, 10, "one freshness query per batch");
    let per_event = log.write_units as f64 / records.len() as f64;
    assert!(per_event <= 0.1, "{per_event}");
    let total = inventory_store::stats::read_total(&s.db, &s.tables)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            total.counters.shard_log_writes,
            total.counters.shard_log_write_units
        ),
        (10, 100),
        "the counters hold what the batches reported"
    );
}

/// The first batch in a child shard writes its products, then dies before its log write:
/// the redelivery finds its products already naming the child, and a later retry of an
/// event the parent carried must still be found in the parent's log. The parent comes from
/// the stream's listing (ListShards), not from anything the lost batch would have written.
#[tokio::test]
async fn a_crash_in_a_child_shards_first_batch_still_finds_the_parents_log() {
    let s = stack(1).await;
    put_many(&s, &sale_then_thirty_restocks(100)).await;
    s.split_first_shard().await;
    let mut later = vec![sale("order-2", "P", 1)];
    for i in 0..20 {
        later.push(restock(&format!("c{i}"), "P", 1));
    }
    later.push(sale("order-1", "P", 4));
    put_many(&s, &later).await;
    let shards = s.read_all().await;
    let parent = &shards["shardId-000000000000"];
    let child = shards
        .iter()
        .find(|(id, r)| id.as_str() != "shardId-000000000000" && !r.is_empty())
        .map(|(_, r)| r.clone())
        .unwrap();
    for batch in parent.chunks(10) {
        deliver(&s.processor(), batch).await;
    }
    deliver(&s.processor(), &child[..5]).await;
    // The child's log item of that batch is lost; the parent's stay.
    let lost =
        delete_dedup_items(&s, |item| text(item, "pk").contains("shardId-000000000000")).await;
    assert_eq!(lost, 1);
    let again = deliver(&s.processor(), &child[..5]).await;
    assert_eq!(again.redeliveries, 5);
    let rest = deliver(&s.processor(), &child[5..]).await;
    assert_eq!((rest.producer_duplicates, rest.applied), (1, 16));
    // 100 − 4 + 30 − 1 + 20.
    assert_eq!(
        stock(&s.product("P").await.unwrap()),
        (145, "active".into(), 53)
    );
}

/// Deletes the shard log items for which `keep` is false; returns how many.
async fn delete_dedup_items(
    s: &Stack,
    keep: impl Fn(&std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>) -> bool,
) -> usize {
    let items: Vec<_> =
        s.db.scan()
            .table_name(&s.tables.events)
            .filter_expression("begins_with(pk, :p)")
            .expression_attribute_values(
                ":p",
                aws_sdk_dynamodb::types::AttributeValue::S("DEDUP#".into()),
            )
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .collect()
            .await;
    let mut deleted = 0;
    for item in items.into_iter().map(Result::unwrap).filter(|i| !keep(i)) {
        s.db.delete_item()
            .table_name(&s.tables.events)
            .key("pk", item["pk"].clone())
            .key("sk", item["sk"].clone())
            .send()
            .await
            .unwrap();
        deleted += 1;
    }
    deleted
}

// ------------------------------------------------- the store's batch helpers under throttling

/// A proxy in front of the emulator that answers the first `unprocessed` BatchWriteItem and
/// BatchGetItem calls as throttled DynamoDB does (HTTP 200, everything sent handed back as
/// unprocessed, nothing done) and forwards every other call.
async fn unprocessing_proxy(upstream: &str, unprocessed: usize) -> String {
    use axum::body::Body;
    use axum::extract::Request;
    use http_body_util::BodyExt as _;
    use hyper_util::client::legacy::{connect::HttpConnector, Client};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let client: Client<HttpConnector, Body> =
        Client::builder(hyper_util::rt::TokioExecutor::new()).build(HttpConnector::new());
    let upstream = upstream.to_owned();
    let calls = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().fallback(move |req: Request| {
        let (client, upstream, calls) = (client.clone(), upstream.clone(), calls.clone());
        async move {
            let target = req
                .headers()
                .get("x-amz-target")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let (mut parts, body) = req.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            let unprocessed_key = if target.ends_with(".BatchWriteItem") {
                Some("UnprocessedItems")
            } else if target.ends_with(".BatchGetItem") {
                Some("UnprocessedKeys")
            } else {
                None
            };
            if let Some(key) = unprocessed_key {
                if calls.fetch_add(1, Ordering::SeqCst) < unprocessed {
                    let sent: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    let answer = serde_json::json!({ key: sent["RequestItems"], "Responses": {} });
                    return axum::response::Response::builder()
                        .header("content-type", "application/x-amz-json-1.0")
                        .body(Body::from(answer.to_string()))
                        .unwrap();
                }
            }
            let pq = parts
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned();
            parts.uri = format!("{upstream}{pq}").parse().unwrap();
            client
                .request(Request::from_parts(parts, Body::from(body)))
                .await
                .unwrap()
                .map(Body::new)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    endpoint
}

fn test_item(i: usize) -> std::collections::HashMap<String, AttributeValue> {
    [
        ("pk".to_owned(), AttributeValue::S("BATCH-TEST".into())),
        ("sk".to_owned(), AttributeValue::S(format!("{i:03}"))),
    ]
    .into()
}

/// Unprocessed items and keys (DynamoDB's answer under throttling, without an error) are
/// sent again with backoff until done, and what is still unprocessed after the attempts is
/// returned, key by key, with why.
#[tokio::test]
async fn the_store_retries_unprocessed_items_and_keys_and_returns_what_stayed_unprocessed() {
    use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
    use inventory_store::batch::{batch_get, batch_write, UNPROCESSED_RETRY};
    use inventory_store::StoreError;

    let s = stack(1).await;
    // Two pages of writes (25 + 5); the first two calls are left unprocessed.
    let endpoint = unprocessing_proxy(s.aws.endpoint(), 2).await;
    let db = aws_sdk_dynamodb::Client::new(&inventory_local::sdk_config_for(&endpoint));
    let requests = (0..30)
        .map(|i| {
            let put = PutRequest::builder()
                .set_item(Some(test_item(i)))
                .build()
                .unwrap();
            (i, WriteRequest::builder().put_request(put).build())
        })
        .collect();
    let written = batch_write(&db, &s.tables.events, requests, UNPROCESSED_RETRY).await;
    assert!(written.failed.is_empty(), "{:?}", written.failed);
    assert_eq!(written.requests, 4, "page one three times, page two once");

    // Read back through the same proxy (its first two BatchGetItems are left unprocessed
    // too), with two keys that have no item.
    let endpoint = unprocessing_proxy(s.aws.endpoint(), 2).await;
    let db = aws_sdk_dynamodb::Client::new(&inventory_local::sdk_config_for(&endpoint));
    let keys = (0..32).map(test_item).collect();
    let read = batch_get(&db, &s.tables.events, keys, true, UNPROCESSED_RETRY).await;
    assert!(read.failed.is_empty(), "{:?}", read.failed);
    assert_eq!((read.items.len(), read.requests), (30, 3));

    // Never processed: after the policy's attempts every key comes back, saying why.
    let endpoint = unprocessing_proxy(s.aws.endpoint(), usize::MAX).await;
    let db = aws_sdk_dynamodb::Client::new(&inventory_local::sdk_config_for(&endpoint));
    let policy = UNPROCESSED_RETRY.with_max_times(2);
    let keys = (0..3).map(test_item).collect();
    let read = batch_get(&db, &s.tables.events, keys, true, policy).await;
    assert_eq!((read.items.len(), read.requests), (0, 3));
    assert_eq!(read.failed.len(), 3);
    assert!(read.failed.iter().all(|(_, e)| matches!(
        e,
        StoreError::Unprocessed {
            attempts: 3,
            count: 3,
            ..
        }
    )));
}

// ------------------------------------------------------------------ per-shard counters

/// Delivers `batch` as the Pipe does: after a partial failure, again from the reported
/// record, until it is done (bounded).
async fn deliver_until_done(processor: &Processor, batch: &[PipeRecord]) -> u32 {
    let mut from = 0;
    for failures in 0..50 {
        let report = deliver(processor, &batch[from..]).await;
        let Some(failed) = report.response.batch_item_failures.first() else {
            return failures;
        };
        from = batch
            .iter()
            .position(|r| r.event_id == failed.item_identifier)
            .expect("the failure names a record of the batch");
    }
    panic!("the batch was still failing after 50 deliveries");
}

/// The shard counters, summed, against a Scan of the inventory: products, active products,
/// units in stock of active products, and events applied (the sum of the items' versions).
async fn assert_counters_match_a_scan(s: &Stack) -> inventory_store::stats::ProductDelta {
    let items = s.all_products(&s.tables).await;
    let active: Vec<_> = items
        .values()
        .filter(|i| text(i, "status") == "active")
        .collect();
    let scanned = inventory_store::stats::ProductDelta {
        products: items.len() as i64,
        active_products: active.len() as i64,
        units: active.iter().map(|i| number(i, "quantity") as i64).sum(),
        events_applied: items.values().map(|i| number(i, "version") as i64).sum(),
    };
    let total = inventory_store::stats::read_total(&s.db, &s.tables)
        .await
        .unwrap()
        .expect("the shard counters");
    assert_eq!(
        total.products, scanned,
        "shard counters (left) vs a Scan (right)"
    );
    scanned
}

/// A run with everything that could make counters drift: producer duplicates, a batch
/// delivered twice, rejections (malformed and insufficient stock), removals, product
/// writes failing at random so batches fail part-way and are retried from where they
/// failed, and a split that moves products to child shards. The counters equal a Scan.
#[tokio::test]
async fn shard_counters_equal_a_scan_after_duplicates_retries_rejections_and_a_reshard() {
    let s = stack(1).await;
    let mut rng = StdRng::seed_from_u64(17);
    let puts = events_before_the_split(&mut rng);
    put_many(&s, &puts).await;
    s.split_first_shard().await;
    put_many(&s, &events_after_the_split(&mut rng, &puts)).await;
    let shards = s.read_all().await;

    let retried = deliver_parent_then_children_through_failing_writes(&s, &shards).await;
    assert!(retried > 0, "some batches failed part-way and were retried");
    let rejected = s.rejections(&s.tables).await;
    assert!(
        rejected.values().any(|r| r == "insufficient_stock")
            && rejected.values().any(|r| r == "invalid_json"),
        "{rejected:?}"
    );
    let scanned = assert_counters_match_a_scan(&s).await;
    assert_eq!((scanned.products, scanned.active_products), (12, 10));
}

/// Twelve products added, then 120 sales (some too big) and restocks, every tenth
/// published twice by its producer; a removal and a malformed event.
fn events_before_the_split(rng: &mut StdRng) -> Vec<(String, String)> {
    let mut puts = Vec::new();
    for p in 0..12 {
        let product = format!("P{p}");
        puts.push((
            product.clone(),
            event(&format!("add-{p}"), "product_added", &product, Some(10 + p)),
        ));
    }
    for i in 0..120 {
        let product = format!("P{}", rng.random_range(0..12));
        let put = match rng.random_range(0..10) {
            0 => sale(&format!("big-{i}"), &product, 1_000),
            1..=4 => sale(&format!("sale-{i}"), &product, rng.random_range(1..4)),
            _ => restock(&format!("restock-{i}"), &product, rng.random_range(1..5)),
        };
        // Every tenth event published twice by its producer.
        if i % 10 == 0 {
            puts.push(put.clone());
        }
        puts.push(put);
    }
    puts.push(("P3".into(), event("rm-3", "product_removed", "P3", None)));
    puts.push(("P0".into(), "{oops".into()));
    puts
}

/// Sales and restocks after the split, a removal, and a producer duplicate of an event the
/// parent carried (one of `before`), now in a child.
fn events_after_the_split(rng: &mut StdRng, before: &[(String, String)]) -> Vec<(String, String)> {
    let mut later = Vec::new();
    for i in 0..60 {
        let product = format!("P{}", rng.random_range(0..12));
        later.push(if i % 3 == 0 {
            sale(&format!("later-sale-{i}"), &product, 2)
        } else {
            restock(&format!("later-{i}"), &product, 3)
        });
    }
    later.push(("P5".into(), event("rm-5", "product_removed", "P5", None)));
    // A producer duplicate of an event the parent carried, now in a child.
    later.push(before[20].clone());
    later
}

/// Delivers the parent shard first (the Pipe drains it before its children), every fourth
/// batch again whole to a cold instance, then each child, through a processor whose
/// product writes fail at random, each batch retried from where it failed; returns the
/// retries.
async fn deliver_parent_then_children_through_failing_writes(
    s: &Stack,
    shards: &BTreeMap<String, Vec<PipeRecord>>,
) -> u32 {
    use inventory_local::fault_proxy::{FaultProxy, FaultRates};
    let proxy = FaultProxy::start(
        s.aws.endpoint(),
        FaultRates {
            server_error: 0.6,
            only: Some("PutItem"),
            ..FaultRates::default()
        },
        7,
    )
    .await
    .unwrap();
    let flaky = Processor::new(proxy.dynamodb_client(1), s.tables.clone(), s.shards());
    let mut retried = 0;
    let parent = &shards["shardId-000000000000"];
    for (k, batch) in parent.chunks(9).enumerate() {
        retried += deliver_until_done(&flaky, batch).await;
        if k % 4 == 0 {
            // Delivered again whole, to a cold instance.
            let again = deliver(&s.processor(), batch).await;
            assert!(again.response.batch_item_failures.is_empty());
            assert_eq!(again.applied, 0);
        }
    }
    for (id, records) in shards {
        if id != "shardId-000000000000" {
            for batch in records.chunks(7) {
                retried += deliver_until_done(&flaky, batch).await;
            }
        }
    }
    retried
}

/// A cold instance whose memory cannot hold its shard's window fails the batch, saying
/// what to change, rather than folding against part of the log; the log it could not read
/// whole is not kept, so the retry (here on an instance allowed more) reads it again and
/// still finds every duplicate.
#[tokio::test]
async fn a_log_larger_than_memory_fails_the_batch_and_is_read_again_by_the_retry() {
    let s = stack(1).await;
    put_many(&s, &sale_then_thirty_restocks(100)).await;
    let records = s.read_one_shard().await;
    for batch in records.chunks(8) {
        deliver(&s.processor(), batch).await;
    }
    // The producer's retry of its first sale, after the 32 events the log holds.
    put_many(&s, &[sale("order-1", "P", 4)]).await;
    let retry: Vec<PipeRecord> = s.read_one_shard().await.split_off(records.len());
    let small = Processor::with_settings(
        s.db.clone(),
        s.tables.clone(),
        s.shards(),
        inventory_processor::ProcessorSettings {
            dedup_max_entries: 20,
            ..Default::default()
        },
    );
    let refused = deliver(&small, &retry).await;
    assert_eq!(refused.response.batch_item_failures.len(), 1);
    assert!(
        refused
            .errors
            .iter()
            .any(|e| e.contains("DEDUP_WINDOW_SECONDS")),
        "{:?}",
        refused.errors
    );
    assert_eq!(refused.applied + refused.producer_duplicates, 0);
    // The same instance again: the log was not kept as if complete.
    assert!(!deliver(&small, &retry)
        .await
        .response
        .batch_item_failures
        .is_empty());
    let done = deliver(&s.processor(), &retry).await;
    assert_eq!((done.producer_duplicates, done.applied), (1, 0));
    assert_eq!(stock(&s.product("P").await.unwrap()).0, 126);
}
