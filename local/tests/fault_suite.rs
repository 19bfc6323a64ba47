//! The fault suite: the failures that happen in AWS, injected into the whole local pipeline
//! (generator → Kinesis → Pipe → processor → DynamoDB). Every case ends with `verify`
//! finding 0 mismatches and every injected bad record accounted for by its reason.
//!
//! | case | fault | how it is injected |
//! |---|---|---|
//! | 1 | processor crashes inside batches | a target that dies after a random prefix or a random delay |
//! | 2 | redelivered records, producer duplicates | a target that delivers 10% of records again; the generator re-publishes 5% |
//! | 3 | DynamoDB throttling, 5xx, lost responses | a fault-injecting HTTP proxy between the processor and DynamoDB |
//! | 4 | the Pipe killed and restarted | aborting the runner mid-batch, twice |
//! | 5 | 1,000 hostile records | put into Kinesis among valid events (invalid base64 at the Pipe) |
//! | 6 | one hot product | ≥ 50% of 10,000 events on one product, published unpaced |
//! | 7 | the Pipe's own DynamoDB calls fail | the proxy fails 40% of its checkpoint writes |
//! | 8 | many producers per product, late retries | 10 producers on 3 hot products, 5% of events put again 1–2,000 records later |
//! | 9 | the stream reshards under load | UpdateShardCount 4 → 8 → 4 while publishing, then a replay |
//! | 10 | a cold start in the middle of 8 | the processor's instances replaced halfway (their memory of the log lost) |
//! | 11 | a record outside its product's lineage | a put with ExplicitHashKey on another shard, then the product's next events |
//! | 12 | the stream deleted and created again | the same tables and warm instances fed by the new stream through a new Pipe |
//! | 13 | products written, shard log never | every TransactWriteItems fails until the Pipe dead-letters the batch; then redrive all |
//! | 14 | a Pipe replaced at TRIM_HORIZON | its log items expired, every record past MaximumRecordAgeInSeconds; then redrive all |
//! | 15 | a reshard and a product with only rejected events | its first event's retry lands in a child shard |
//! | 16 | two redrives at once | two redrive-all loops in parallel |
//! | 17 | dedup keys colliding | a test hook zeroes every key's low 64 bits |

use inventory_testkit as harness;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_kinesis::primitives::Blob;
use base64::Engine as _;
use harness::*;
use inventory_domain::{PipeRecord, RejectionReason};
use inventory_generator::Skew;
use inventory_local::fault_proxy::{FaultProxy, FaultRates};
use inventory_local::pipe::{BoxFuture, Target, TargetError};
use inventory_local::pipe_settings::PipeSettings;
use inventory_local::stack::{LocalStack, StackOptions};
use inventory_processor::Processor;
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde_json::json;

const EVENTS: u64 = 10_000;

// ---------------------------------------------------------------- 1. crashes

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn f1_processor_crashes_at_random_points_inside_batches() {
    // Batches of 100, so 10,000 events make enough invocations to crash 20 times or more
    // however fast the processor drains the stream (full batches of 1,000 made ~30).
    harness::init_tracing();
    let stack = LocalStack::start(StackOptions {
        pipe: PipeSettings {
            batch_size: 100,
            maximum_batching_window_in_seconds: 0,
            ..PipeSettings::default()
        },
        ..StackOptions::default()
    })
    .await
    .unwrap();
    let target = shared(CrashingTarget::new(InProcessTarget::on(&stack), 0.3, 11));
    let mut runner = stack.pipe_to(target.clone());
    runner.min_backoff = Duration::from_millis(5);
    runner.max_backoff = Duration::from_millis(200);
    let pipe = runner.spawn();

    let mut simulation = sim("crash", 200, EVENTS, Skew::Zipf(1.1), 1);
    publish_all(&stack, &mut simulation, None).await;
    let report = assert_verified(&stack, &simulation).await;

    let stats = pipe.stats.snapshot();
    eprintln!(
        "f1: {} crashes, pipe {stats:?}, waited {} ms",
        target.crashes(),
        report.waited_ms
    );
    assert!(target.crashes() >= 20, "crashes: {}", target.crashes());
    assert!(stats.failed_invocations >= 20 && stats.bisections > 0);
    assert_no_dead_letters(&stack).await;
    pipe.stop().await.unwrap();
}

// ---------------------------------------------------------------- 2. redelivery

/// Delivers every batch, then delivers about 10% of its records again (in order, as a Pipe
/// retry would), sometimes together with records of the shard's previous batch.
struct RedeliveringTarget {
    inner: InProcessTarget,
    rng: Mutex<StdRng>,
    previous: Mutex<HashMap<String, Vec<PipeRecord>>>,
    redelivered: AtomicU64,
    delivered: AtomicU64,
}

impl Target for RedeliveringTarget {
    fn invoke(&self, payload: Vec<u8>) -> BoxFuture<'static, Result<Vec<u8>, TargetError>> {
        let records: Vec<PipeRecord> = serde_json::from_slice(&payload).unwrap();
        let shard = records[0].shard_id().to_owned();
        let again: Vec<PipeRecord> = {
            let mut rng = self.rng.lock().unwrap();
            let mut previous = self.previous.lock().unwrap();
            let mut again: Vec<PipeRecord> = previous
                .get(&shard)
                .into_iter()
                .flatten()
                .chain(&records)
                .filter(|_| rng.random_bool(0.07))
                .cloned()
                .collect();
            // Always some of this batch, so the redeliveries are about 10% of all records.
            if again.is_empty() {
                again.push(records[rng.random_range(0..records.len())].clone());
            }
            previous.insert(shard, records.clone());
            again
        };
        self.delivered
            .fetch_add(records.len() as u64, Ordering::SeqCst);
        self.redelivered
            .fetch_add(again.len() as u64, Ordering::SeqCst);
        let first = self.inner.invoke(payload);
        let inner = self.inner.clone();
        Box::pin(async move {
            let response = first.await?;
            let parsed: inventory_domain::BatchResponse =
                serde_json::from_slice(&response).map_err(TargetError::function)?;
            if !parsed.batch_item_failures.is_empty() {
                return Ok(response);
            }
            // The redelivery must also succeed; if it did not, the batch is retried whole.
            let again_response = inner
                .invoke(serde_json::to_vec(&again).map_err(TargetError::function)?)
                .await?;
            let again_parsed: inventory_domain::BatchResponse =
                serde_json::from_slice(&again_response).map_err(TargetError::function)?;
            if again_parsed.batch_item_failures.is_empty() {
                Ok(response)
            } else {
                Err(TargetError::function("the redelivery failed"))
            }
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn f2_redelivered_records_and_producer_duplicates_change_nothing() {
    let stack = local_stack(StackOptions::default()).await;
    let target = shared(RedeliveringTarget {
        inner: InProcessTarget::on(&stack),
        rng: Mutex::new(StdRng::seed_from_u64(22)),
        previous: Mutex::new(HashMap::new()),
        redelivered: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
    });
    let pipe = stack.pipe_to(target.clone()).spawn();

    let mut simulation = sim("redeliver", 200, EVENTS, Skew::Zipf(1.1), 2);
    publish_all(&stack, &mut simulation, None).await;
    let expected = simulation.expected();
    verify_exact(&stack, &expected).await;

    let (redelivered, delivered) = (
        target.redelivered.load(Ordering::SeqCst),
        target.delivered.load(Ordering::SeqCst),
    );
    eprintln!(
        "f2: {redelivered} of {delivered} records redelivered, {} producer duplicates",
        expected.duplicates
    );
    assert!(
        redelivered * 10 >= delivered,
        "{redelivered} of {delivered}"
    );
    assert!(
        expected.duplicates * 100 >= expected.records * 4,
        "producer duplicates: {} of {}",
        expected.duplicates,
        expected.records
    );
    pipe.stop().await.unwrap();
}

// ---------------------------------------------------------------- 3. DynamoDB faults

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn f3_dynamodb_throttling_5xx_and_lost_responses_lose_and_double_nothing() {
    init_tracing();
    // Batches of 100: with the template's 1,000 and a warm cache (no reads) the run makes
    // too few requests (~500) for the faults to be injected often enough to count on.
    let stack = LocalStack::start(StackOptions {
        pipe: PipeSettings {
            batch_size: 100,
            maximum_batching_window_in_seconds: 0,
            ..PipeSettings::default()
        },
        ..StackOptions::default()
    })
    .await
    .unwrap();
    let proxy = FaultProxy::start(
        stack.aws.endpoint(),
        FaultRates {
            throttle: 0.05,
            server_error: 0.01,
            unavailable: 0.01,
            lost_response: 0.05,
            only: None,
        },
        33,
    )
    .await
    .unwrap();
    // Two attempts instead of the default three, so the SDK's retries run out often enough
    // for the processor's batchItemFailures and the Pipe's retries to be exercised too.
    let processor = Processor::new(
        proxy.dynamodb_client(2),
        stack.options.tables.clone(),
        shards_of(&stack),
    );
    let mut runner = stack.pipe_to(Arc::new(InProcessTarget(processor)));
    runner.min_backoff = Duration::from_millis(5);
    runner.max_backoff = Duration::from_millis(200);
    let pipe = runner.spawn();

    let mut simulation = sim("ddbfault", 200, EVENTS, Skew::Zipf(1.1), 3);
    publish_all(&stack, &mut simulation, None).await;
    assert_verified(&stack, &simulation).await;

    let c = &proxy.counts;
    let stats = pipe.stats.snapshot();
    eprintln!(
        "f3: {} DynamoDB requests, {} throttled, {} 500, {} 503, {} lost responses; pipe {stats:?}",
        c.requests.load(Ordering::SeqCst),
        c.throttled.load(Ordering::SeqCst),
        c.server_errors.load(Ordering::SeqCst),
        c.unavailable.load(Ordering::SeqCst),
        c.lost_responses.load(Ordering::SeqCst),
    );
    assert!(c.lost_responses.load(Ordering::SeqCst) >= 20);
    assert!(c.throttled.load(Ordering::SeqCst) >= 20);
    assert!(
        stats.partial_failures > 0,
        "no failure reached the Pipe as batchItemFailures: {stats:?}"
    );
    assert_no_dead_letters(&stack).await;
    pipe.stop().await.unwrap();
}

// ---------------------------------------------------------------- 7. Pipe checkpoint faults

/// A checkpoint write that fails is not a reason to stop reading: the Pipe keeps the shard
/// going, retries the write, and at worst redelivers after a restart (CI once lost a whole
/// shard's tail here: one failed PutItem ended the runner).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn f7_failing_checkpoint_writes_do_not_stop_the_pipe() {
    let stack = local_stack(StackOptions::default()).await;
    let proxy = FaultProxy::start(
        stack.aws.endpoint(),
        FaultRates {
            throttle: 0.0,
            server_error: 0.4,
            unavailable: 0.0,
            lost_response: 0.0,
            only: Some("PutItem"),
        },
        77,
    )
    .await
    .unwrap();
    let mut runner = pipe_runner_with_db(
        &stack,
        // No SDK retries: every injected fault reaches the runner.
        proxy.dynamodb_client(1),
        Arc::new(InProcessTarget::on(&stack)),
    );
    runner.min_backoff = Duration::from_millis(5);
    runner.max_backoff = Duration::from_millis(100);
    let pipe = runner.spawn();

    let mut simulation = sim("ckptfault", 100, 3_000, Skew::Zipf(1.1), 7);
    publish_all(&stack, &mut simulation, Some(3_000.0)).await;
    assert_verified(&stack, &simulation).await;

    let failed = proxy.counts.server_errors.load(Ordering::SeqCst);
    let stats = pipe.stats.snapshot();
    eprintln!("f7: {failed} checkpoint writes failed; pipe {stats:?}");
    assert!(failed >= 5, "faults were injected: {failed}");
    assert!(stats.checkpoints > 0);
    assert!(!pipe.is_finished(), "the Pipe is still running");
    pipe.stop().await.unwrap();
}

// ---------------------------------------------------------------- 4. Pipe restarts

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn f4_killing_and_restarting_the_pipe_mid_run_loses_and_doubles_nothing() {
    let stack = local_stack(StackOptions::default()).await;
    let simulation = sim("restart", 200, EVENTS, Skew::Zipf(1.1), 4);
    let publisher = publish_in_background(&stack, simulation, Some(4000.0));

    let mut delivered = Vec::new();
    let mut pipe = start_in_process_pipe(&stack);
    // Killed twice, each time in the middle of whatever batch it is in.
    for kill_after in [2500, 2500] {
        wait_for_delivered(&pipe.stats, kill_after, CATCH_UP).await;
        assert!(pipe.stats.checkpoints.load(Ordering::SeqCst) > 0);
        let stats = pipe.stats.clone();
        // `kill` returns once the run is dead, so the count no longer changes: a batch
        // that finished between a count and the kill is checkpointed, and the next run
        // does not deliver it again.
        pipe.kill().await.unwrap();
        delivered.push(stats.records_delivered.load(Ordering::SeqCst));
        pipe = start_in_process_pipe(&stack);
    }
    let simulation = publisher.await.unwrap();
    assert_verified(&stack, &simulation).await;
    let last = pipe.stats.records_delivered.load(Ordering::SeqCst);
    eprintln!("f4: records delivered per pipe run: {delivered:?} then {last}");
    // Each restart resumed from its checkpoint, not from TRIM_HORIZON.
    assert!(last < EVENTS, "the last pipe re-read {last} records");
    assert!(delivered.iter().sum::<u64>() + last >= EVENTS);
    pipe.stop().await.unwrap();
}

// ---------------------------------------------------------------- 5. hostile input

/// A payload the Pipe turns into data that is not base64 at all (see [`Base64Breaker`]).
const NOT_BASE64_MARKER: &[u8] = b"<replace me with something that is not base64>";

/// The hostile catalogue: (partition-key suffix, payload, the reason it must be rejected
/// with). Product ids are taken from `pk`, the record's partition key, where the payload is
/// otherwise valid, so only the named defect is wrong.
fn hostile(pk: &str, i: usize) -> (Vec<u8>, RejectionReason) {
    let h = Hostile { pk, i };
    match i % 34 {
        case @ 0..=5 => h.not_json(case),
        case @ 6..=17 => h.wrong_quantity_or_type(case),
        case @ 18..=24 => h.wrong_product_id_or_timestamp(case),
        case @ 25..=31 => h.wrong_name_or_shape(case),
        32 => {
            // 20 KB: over the event size limit, far under Kinesis' 1 MB.
            let big = h.product(json!({"quantity": 1, "note": "x".repeat(20_000)}));
            (
                h.event("quantity_increased", big),
                RejectionReason::PayloadTooLarge,
            )
        }
        _ => (NOT_BASE64_MARKER.to_vec(), RejectionReason::InvalidBase64),
    }
}

/// The timestamp of every hostile event that has a valid one.
const HOSTILE_TS: &str = "2023-09-11T12:00:00Z";

/// The `i`th hostile event, for the product `pk`.
struct Hostile<'a> {
    pk: &'a str,
    i: usize,
}

impl Hostile<'_> {
    /// An event of `kind` about `product`, as JSON bytes.
    fn event(&self, kind: &str, product: serde_json::Value) -> Vec<u8> {
        json!({"event_id": format!("hostile-{}", self.i), "event_type": kind, "product": product})
            .to_string()
            .into_bytes()
    }

    /// The product `pk` with a valid timestamp and the `extra` fields.
    fn product(&self, extra: serde_json::Value) -> serde_json::Value {
        let mut base = json!({"product_id": self.pk, "timestamp": HOSTILE_TS});
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        base
    }

    /// Cases 0-5: bytes that are not JSON, or not UTF-8, or nested too deep.
    fn not_json(&self, case: usize) -> (Vec<u8>, RejectionReason) {
        use RejectionReason::*;
        let (ev, p) = (|k: &str, v| self.event(k, v), |v| self.product(v));
        match case {
            0 => (
                br#"{"event_type":"product_added","product":{"#.to_vec(),
                InvalidJson,
            ),
            1 => (b"not json at all".to_vec(), InvalidJson),
            2 => (vec![0xC3, 0x28, 0xA0, 0xA1, 0xFF], InvalidJson),
            3 => {
                // Valid JSON words around invalid UTF-8.
                let mut v =
                    br#"{"event_type":"quantity_increased","product":{"product_id":""#.to_vec();
                v.extend([0xFF, 0xFE]);
                v.extend(br#"","quantity":1,"timestamp":"2023-09-11T12:00:00Z"}}"#);
                (v, InvalidJson)
            }
            4 => {
                // Nested deeper than any parser should follow, but under the size limit.
                let depth = 5_000;
                let mut v = br#"{"event_type":"quantity_increased","product":"#.to_vec();
                v.extend(std::iter::repeat_n(b'[', depth));
                v.extend(std::iter::repeat_n(b']', depth));
                v.push(b'}');
                (v, InvalidJson)
            }
            5 => {
                let mut v = "\u{feff}".as_bytes().to_vec();
                v.extend(ev("quantity_increased", p(json!({"quantity": 1}))));
                (v, InvalidJson)
            }
            _ => unreachable!("not_json covers cases 0-5"),
        }
    }

    /// Cases 6-17: a wrong quantity, or an unknown or mistyped event type.
    fn wrong_quantity_or_type(&self, case: usize) -> (Vec<u8>, RejectionReason) {
        use RejectionReason::*;
        let (pk, ts) = (self.pk, HOSTILE_TS);
        let (ev, p) = (|k: &str, v| self.event(k, v), |v| self.product(v));
        match case {
            6 => (ev("quantity_increased", p(json!({"quantity": "5"}))), SchemaViolation),
            7 => (ev("quantity_increased", p(json!({"quantity": -5}))), SchemaViolation),
            8 => (ev("quantity_decreased", p(json!({"quantity": 2.5}))), SchemaViolation),
            9 => (
                ev("quantity_increased", p(json!({"quantity": 1_000_000_000_000u64}))),
                SchemaViolation,
            ),
            10 => (
                format!(r#"{{"event_type":"quantity_increased","product":{{"product_id":"{pk}","quantity":18446744073709551616,"timestamp":"{ts}"}}}}"#).into_bytes(),
                SchemaViolation,
            ),
            11 => (
                format!(r#"{{"event_type":"quantity_increased","product":{{"product_id":"{pk}","quantity":1e3,"timestamp":"{ts}"}}}}"#).into_bytes(),
                SchemaViolation,
            ),
            12 => (ev("quantity_increased", p(json!({"quantity": 0}))), SchemaViolation),
            13 => (ev("quantity_increased", p(json!({"quantity": null}))), SchemaViolation),
            14 => (ev("product_sold", p(json!({"quantity": 1}))), UnknownEventType),
            15 => (ev("", p(json!({}))), UnknownEventType),
            16 => (ev("PRODUCT_ADDED", p(json!({"quantity": 1}))), UnknownEventType),
            17 => (
                serde_json::to_vec(&json!({"event_type": 7, "product": p(json!({}))})).unwrap_or_default(),
                SchemaViolation,
            ),
            _ => unreachable!("wrong_quantity_or_type covers cases 6-17"),
        }
    }

    /// Cases 18-24: a wrong product id or timestamp.
    fn wrong_product_id_or_timestamp(&self, case: usize) -> (Vec<u8>, RejectionReason) {
        use RejectionReason::*;
        let (pk, ts) = (self.pk, HOSTILE_TS);
        let ev = |k: &str, v| self.event(k, v);
        match case {
            18 => (
                ev(
                    "product_removed",
                    json!({"product_id": 12345, "timestamp": ts}),
                ),
                SchemaViolation,
            ),
            19 => (
                ev(
                    "product_removed",
                    json!({"product_id": "has space", "timestamp": ts}),
                ),
                SchemaViolation,
            ),
            20 => (
                ev(
                    "product_removed",
                    json!({"product_id": "a/b\u{0000}", "timestamp": ts}),
                ),
                SchemaViolation,
            ),
            21 => (
                ev(
                    "product_removed",
                    json!({"product_id": "💥💥", "timestamp": ts}),
                ),
                SchemaViolation,
            ),
            22 => (
                ev(
                    "product_removed",
                    json!({"product_id": "x".repeat(65), "timestamp": ts}),
                ),
                SchemaViolation,
            ),
            23 => (
                ev(
                    "product_removed",
                    json!({"product_id": pk, "timestamp": "yesterday"}),
                ),
                SchemaViolation,
            ),
            24 => (
                ev("product_removed", json!({"product_id": pk})),
                SchemaViolation,
            ),
            _ => unreachable!("wrong_product_id_or_timestamp covers cases 18-24"),
        }
    }

    /// Cases 25-31: a missing or wrong product name, or a product of the wrong shape.
    fn wrong_name_or_shape(&self, case: usize) -> (Vec<u8>, RejectionReason) {
        use RejectionReason::*;
        let (pk, ts) = (self.pk, HOSTILE_TS);
        let (ev, p) = (|k: &str, v| self.event(k, v), |v| self.product(v));
        match case {
            25 => (
                ev("product_added", p(json!({"quantity": 1}))),
                SchemaViolation,
            ), // no name
            26 => (
                ev(
                    "product_added",
                    p(json!({"quantity": 1, "product_name": "n".repeat(201)})),
                ),
                SchemaViolation,
            ),
            27 => (
                ev(
                    "product_added",
                    p(json!({"quantity": 1, "product_name": "bell\u{7}"})),
                ),
                SchemaViolation,
            ),
            28 => (b"[1,2,3]".to_vec(), SchemaViolation),
            29 => (b"null".to_vec(), SchemaViolation),
            30 => (
                serde_json::to_vec(&json!({"event_type": "product_removed", "product": [pk, ts]}))
                    .unwrap_or_default(),
                SchemaViolation,
            ),
            31 => (
                // The product is not the partition key, so nothing would keep it in order.
                ev(
                    "product_removed",
                    json!({"product_id": format!("{pk}-other"), "timestamp": ts}),
                ),
                SchemaViolation,
            ),
            _ => unreachable!("wrong_name_or_shape covers cases 25-31"),
        }
    }
}

/// Replaces the data of marked records with text that is not base64, as a buggy or hostile
/// intermediary might; Kinesis itself always hands the Pipe base64.
struct Base64Breaker(InProcessTarget);

impl Target for Base64Breaker {
    fn invoke(&self, payload: Vec<u8>) -> BoxFuture<'static, Result<Vec<u8>, TargetError>> {
        let marker = base64::engine::general_purpose::STANDARD.encode(NOT_BASE64_MARKER);
        let mut records: Vec<PipeRecord> = match serde_json::from_slice(&payload) {
            Ok(r) => r,
            Err(e) => return Box::pin(async move { Err(TargetError::function(e)) }),
        };
        for r in &mut records {
            if r.data == marker {
                r.data = "%%% not base64 %%%".into();
            }
        }
        match serde_json::to_vec(&records) {
            Ok(p) => self.0.invoke(p),
            Err(e) => Box::pin(async move { Err(TargetError::function(e)) }),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn f5_a_thousand_hostile_records_are_each_rejected_with_their_reason() {
    let stack = local_stack(StackOptions::default()).await;
    let pipe = stack
        .pipe_to(Arc::new(Base64Breaker(InProcessTarget::on(&stack))))
        .spawn();
    let simulation = sim("hostile", 200, 5_000, Skew::Zipf(1.1), 5);
    let run_id = simulation.config().run_id.clone();
    let publisher = publish_in_background(&stack, simulation, Some(5_000.0));

    // 1,000 hostile records interleaved with the valid ones, plus three of 1 MB.
    let mut hostile_records: Vec<(String, Vec<u8>, RejectionReason)> = (0..997)
        .map(|i| {
            let pk = format!("{run_id}-H{i:04}");
            let (data, reason) = hostile(&pk, i);
            (pk, data, reason)
        })
        .collect();
    for i in 0..3 {
        let pk = format!("{run_id}-MB{i}");
        let data = json!({"event_type": "quantity_increased", "product": {
            "product_id": pk, "quantity": 1, "timestamp": "2023-09-11T12:00:00Z",
            "padding": "p".repeat(1_000_000)}})
        .to_string()
        .into_bytes();
        hostile_records.insert(300 * i + 100, (pk, data, RejectionReason::PayloadTooLarge));
    }
    let mut sequence_reasons: BTreeMap<String, RejectionReason> = BTreeMap::new();
    for (pk, data, reason) in &hostile_records {
        let out = stack
            .kinesis
            .put_record()
            .stream_name(&stack.options.stream)
            .partition_key(pk)
            .data(Blob::new(data.clone()))
            .send()
            .await
            .unwrap();
        sequence_reasons.insert(out.sequence_number().to_owned(), *reason);
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    assert_eq!(sequence_reasons.len(), 1_000);
    let simulation = publisher.await.unwrap();

    let mut expected = simulation.expected();
    for reason in sequence_reasons.values() {
        *expected.rejections.entry(*reason).or_default() += 1;
    }
    // Valid neighbours applied exactly, and the counts of every reason exact.
    verify_exact(&stack, &expected).await;

    // Each hostile record individually: recorded once, with its own reason.
    let mut recorded: BTreeMap<String, String> = BTreeMap::new();
    for item in rejection_items(&stack.db, &stack.options.tables).await {
        assert!(
            text(&item, "data_base64_excerpt").chars().count() <= 1024,
            "a bounded copy of the payload"
        );
        recorded.insert(text(&item, "sequence_number"), text(&item, "reason"));
    }
    for (seq, reason) in &sequence_reasons {
        assert_eq!(
            recorded.get(seq).map(String::as_str),
            Some(reason.as_str()),
            "hostile record {seq}"
        );
    }
    let by_reason = sequence_reasons
        .values()
        .fold(BTreeMap::<_, u32>::new(), |mut m, r| {
            *m.entry(r.as_str()).or_default() += 1;
            m
        });
    eprintln!("f5: 1,000 hostile records rejected by reason: {by_reason:?}");
    assert_no_dead_letters(&stack).await;
    pipe.stop().await.unwrap();
}

// ---------------------------------------------------------------- 6. hot product

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn f6_one_hot_product_with_half_the_events_at_full_speed() {
    let stack = local_stack(StackOptions::default()).await;
    let pipe = start_in_process_pipe(&stack);
    // Zipf(2) over 50 products puts ~60% of events on the first.
    let mut simulation = sim("hot", 50, EVENTS, Skew::Zipf(2.0), 6);
    let started = Instant::now();
    let published = publish_all(&stack, &mut simulation, None).await;
    let expected = simulation.expected();
    let report = verify_exact(&stack, &expected).await;
    let elapsed = started.elapsed();

    let hottest = expected.products.values().map(|p| p.records).max().unwrap();
    eprintln!(
        "f6: hottest product {hottest} of {} records; published at {:.0}/s, applied all in {:.1} s ({:.0} records/s end to end); pipe {:?}",
        expected.records,
        published.records_per_second(),
        elapsed.as_secs_f64(),
        expected.records as f64 / elapsed.as_secs_f64(),
        pipe.stats.snapshot(),
    );
    assert!(
        hottest * 2 >= expected.records,
        "the hot product has {hottest} of {} records",
        expected.records
    );
    assert!(report.is_consistent());
    pipe.stop().await.unwrap();
}

// ---------------------------------------------------------------- replay

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replay_rebuilds_a_table_identical_to_the_live_one_and_catches_a_tampered_item() {
    use inventory_ops::replay::{replay, Difference};
    use inventory_store::Tables;

    let stack = local_stack(StackOptions::default()).await;
    let target = shared(CrashingTarget::new(InProcessTarget::on(&stack), 0.2, 7));
    let mut runner = stack.pipe_to(target.clone());
    runner.min_backoff = Duration::from_millis(5);
    runner.max_backoff = Duration::from_millis(200);
    let pipe = runner.spawn();
    let mut simulation = sim("replay", 100, 3_000, Skew::Zipf(1.1), 7);
    publish_all(&stack, &mut simulation, None).await;
    let verified = assert_verified(&stack, &simulation).await;
    pipe.stop().await.unwrap();

    let live = &stack.options.tables;
    let first = Tables::with_prefix("replay1-");
    let report = replay(
        &stack.kinesis,
        &stack.db,
        &stack.options.stream,
        live,
        &first,
        &InProcessTarget::on_tables(&stack, &first),
        &|_| {},
    )
    .await
    .unwrap();
    eprintln!("replay: {report:?}");
    assert_eq!(report.records, simulation.expected().records);
    assert_eq!(report.differences, vec![]);
    assert_eq!(report.identical as usize, verified.stored.len());
    assert_eq!((report.live_ahead, report.not_in_stream), (0, 0));

    // A live item changed behind the pipeline's back is found.
    let (victim, _) = verified.stored.iter().next().unwrap();
    stack
        .db
        .update_item()
        .table_name(&live.inventory)
        .key("product_id", AttributeValue::S(victim.clone()))
        .update_expression("SET quantity = quantity + :one")
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .send()
        .await
        .unwrap();
    let second = Tables::with_prefix("replay2-");
    let report = replay(
        &stack.kinesis,
        &stack.db,
        &stack.options.stream,
        live,
        &second,
        &InProcessTarget::on_tables(&stack, &second),
        &|_| {},
    )
    .await
    .unwrap();
    assert_eq!(
        report.differences,
        vec![Difference::Fields {
            product_id: victim.clone(),
            fields: vec!["quantity".into()]
        }]
    );
    // Replaying into a table that is not fresh is refused.
    assert!(replay(
        &stack.kinesis,
        &stack.db,
        &stack.options.stream,
        live,
        &second,
        &InProcessTarget::on_tables(&stack, &second),
        &|_| {},
    )
    .await
    .is_err());
}

// ------------------------------------------------ 8-10. many producers, resharding

/// The processor behind the Pipe as Lambda runs it: a pool of warm instances, each
/// invocation on the next one (so each instance's memory of the shard log misses what the
/// others wrote), and [`Instances::cold_start`] replacing them all with new ones.
struct Instances {
    pool: Mutex<Vec<InProcessTarget>>,
    next: AtomicU64,
}

impl Instances {
    fn new(stack: &inventory_local::stack::LocalStack, n: usize) -> Self {
        Self {
            pool: Mutex::new(Self::fresh(stack, n)),
            next: AtomicU64::new(0),
        }
    }

    fn fresh(stack: &inventory_local::stack::LocalStack, n: usize) -> Vec<InProcessTarget> {
        (0..n).map(|_| InProcessTarget::on(stack)).collect()
    }

    fn cold_start(&self, stack: &inventory_local::stack::LocalStack) {
        let mut pool = self.pool.lock().unwrap();
        let n = pool.len();
        *pool = Self::fresh(stack, n);
    }
}

impl Target for Instances {
    fn invoke(&self, payload: Vec<u8>) -> BoxFuture<'static, Result<Vec<u8>, TargetError>> {
        let k = self.next.fetch_add(1, Ordering::SeqCst) as usize;
        let pool = self.pool.lock().unwrap();
        pool[k % pool.len()].invoke(payload)
    }
}

/// Checks what the processor counted against the model: every duplicate (immediate and
/// late) skipped as one, and the shard log's extra write units per event.
async fn assert_duplicates_counted(
    stack: &inventory_local::stack::LocalStack,
    simulation: &inventory_generator::Simulation,
    case: &str,
) -> f64 {
    let expected = simulation.expected();
    let totals = stats_totals(stack).await;
    let wcu_per_event = totals["shard_log_write_units"] as f64 / totals["records"] as f64;
    eprintln!(
        "{case}: {} records, {} duplicates expected ({} late retries), counted {} producer duplicates; shard log: {} writes, {} write units = {wcu_per_event:.4} per event, {} reads",
        expected.records,
        expected.duplicates,
        expected.late_retries,
        totals["producer_duplicates"],
        totals["shard_log_writes"],
        totals["shard_log_write_units"],
        totals["shard_log_reads"],
    );
    assert_eq!(
        totals["records"], expected.records,
        "each record delivered once"
    );
    assert_eq!(totals["producer_duplicates"], expected.duplicates);
    assert!(expected.late_retries > 50, "late retries were put");
    // One log item per batch and shard, never one per event (what it costs per event then
    // depends on how full the batches are: docs/consistency.md, "Cost"), plus one link per
    // child shard and parent after a reshard.
    let shards = inventory_local::kinesis::shards(&stack.kinesis, &stack.options.stream)
        .await
        .unwrap()
        .len() as u64;
    assert!(
        totals["shard_log_writes"] <= totals["batches"] + 2 * shards,
        "{} log writes for {} batches on {shards} shards",
        totals["shard_log_writes"],
        totals["batches"]
    );
    wcu_per_event
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn f8_many_producers_on_hot_products_with_late_retries_apply_each_event_once() {
    // The Pipe as deployed (its batch size and window: infra/template.yaml), so the log's
    // cost per event is the deployed one.
    let stack = local_stack_as_deployed().await;
    let instances = shared(Instances::new(&stack, 3));
    let pipe = stack.pipe_to(instances.clone()).spawn();
    let mut simulation = producers_sim("manyprod", 3, 3_000, 8, 10, 0.05, (1, 2_000));
    publish_all(&stack, &mut simulation, None).await;
    assert_verified(&stack, &simulation).await;
    assert_duplicates_counted(&stack, &simulation, "f8").await;
    pipe.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn f10_a_cold_start_in_the_middle_of_many_producers_loses_no_duplicate() {
    let stack = local_stack(StackOptions::default()).await;
    let instances = shared(Instances::new(&stack, 2));
    let pipe = stack.pipe_to(instances.clone()).spawn();
    let simulation = producers_sim("coldstart", 3, 3_000, 10, 10, 0.05, (1, 2_000));
    let publishing = publish_in_background(&stack, simulation, None);
    let stats = pipe.stats.clone();
    wait_until(
        "half the records delivered",
        Duration::from_secs(300),
        || stats.records_delivered.load(Ordering::Relaxed) >= 1_500,
    )
    .await;
    // Every instance replaced: the rest of the run starts from what DynamoDB holds.
    instances.cold_start(&stack);
    let simulation = publishing.await.unwrap();
    assert_verified(&stack, &simulation).await;
    assert_duplicates_counted(&stack, &simulation, "f10").await;
    pipe.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn f9_a_split_4_to_8_and_a_merge_back_under_load_lose_and_double_nothing() {
    use inventory_ops::replay::replay;
    use inventory_store::Tables;

    let stack = local_stack(StackOptions::default()).await;
    let instances = shared(Instances::new(&stack, 3));
    let pipe = stack.pipe_to(instances.clone()).spawn();
    let simulation = producers_sim("reshard", 200, 6_000, 9, 4, 0.05, (1, 500));
    let publishing = publish_in_background(&stack, simulation, Some(400.0));
    let stats = pipe.stats.clone();
    wait_until("a third delivered", Duration::from_secs(300), || {
        stats.records_delivered.load(Ordering::Relaxed) >= 2_000
    })
    .await;
    reshard(&stack.kinesis, &stack.options.stream, Reshard::Count(8)).await;
    wait_until("two thirds delivered", Duration::from_secs(300), || {
        stats.records_delivered.load(Ordering::Relaxed) >= 4_000
    })
    .await;
    reshard(&stack.kinesis, &stack.options.stream, Reshard::Count(4)).await;
    let simulation = publishing.await.unwrap();
    let verified = assert_verified(&stack, &simulation).await;
    assert_duplicates_counted(&stack, &simulation, "f9").await;
    assert!(!pipe.is_finished(), "the Pipe runs on after the reshards");
    pipe.stop().await.unwrap();

    // Every record went to the shards of three generations; each was read once.
    let shards = inventory_local::kinesis::shards(&stack.kinesis, &stack.options.stream)
        .await
        .unwrap();
    assert!(
        shards.len() >= 12,
        "{} shards after 4 -> 8 -> 4",
        shards.len()
    );

    // Replayed across the reshard, in lineage order, into fresh tables: the same state.
    let into = Tables::with_prefix("replay-reshard-");
    let report = replay(
        &stack.kinesis,
        &stack.db,
        &stack.options.stream,
        &stack.options.tables,
        &into,
        &InProcessTarget::on_tables(&stack, &into),
        &|_| {},
    )
    .await
    .unwrap();
    eprintln!("f9 replay: {report:?}");
    assert_eq!(report.records, simulation.expected().records);
    assert_eq!(report.differences, vec![]);
    assert_eq!(report.identical as usize, verified.stored.len());
}

// ------------------------------------- 11-17. what operators and stray producers do

/// Puts one event of `product` (as `event()` writes it) with its partition key, as
/// producers must, or with `explicit` as its ExplicitHashKey (a stray producer). Returns the
/// shard it landed on.
async fn put_event(
    stack: &LocalStack,
    product: &str,
    (id, kind, quantity): (&str, &str, Option<u64>),
    explicit: Option<u128>,
) -> String {
    stack
        .kinesis
        .put_record()
        .stream_name(&stack.options.stream)
        .partition_key(product)
        .set_explicit_hash_key(explicit.map(|h| h.to_string()))
        .data(Blob::new(event(id, kind, product, quantity)))
        .send()
        .await
        .unwrap()
        .shard_id()
        .to_owned()
}

async fn item_of(stack: &LocalStack, product: &str) -> Option<HashMap<String, AttributeValue>> {
    stack
        .db
        .get_item()
        .table_name(&stack.options.tables.inventory)
        .key("product_id", AttributeValue::S(product.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

/// Waits (bounded) until `product` has applied `version` events; returns its stock.
async fn wait_for_version(stack: &LocalStack, product: &str, version: u64) -> u64 {
    let what = format!("{product} to reach version {version}");
    wait_for(&what, PATIENCE, || async move {
        item_of(stack, product)
            .await
            .filter(|item| number(item, "version") >= version)
            .map(|item| number(&item, "quantity"))
    })
    .await
}

/// A Pipe that retries, bisects and polls again within milliseconds, so a run whose every
/// batch fails reaches its dead letters in seconds rather than minutes.
fn fast_retries(runner: &mut inventory_local::pipe::PipeRunner) {
    runner.min_backoff = Duration::from_millis(5);
    runner.max_backoff = Duration::from_millis(50);
    runner.idle_poll = Duration::from_millis(20);
    runner.min_poll_interval = Duration::from_millis(5);
}

/// The processor `p` wrapped as a Pipe target.
fn target_of(p: Processor) -> Arc<InProcessTarget> {
    shared(InProcessTarget(p))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn f11_a_record_put_on_a_shard_outside_its_products_lineage_is_rejected_and_loses_nothing_after_it(
) {
    use inventory_domain::lineage::hash_key;
    let stack = local_stack(StackOptions::default()).await;
    let pipe = start_in_process_pipe(&stack);
    let open = open_shards(&stack.kinesis, &stack.options.stream).await;
    let holds = |s: &Listed, p: &str| s.range.0 <= hash_key(p) && hash_key(p) <= s.range.1;
    // A product on a shard with a higher-numbered one beside it: a position moved there by
    // the stray would have made every later record of the product look older.
    let top = open.iter().map(|s| s.number).max().unwrap();
    let product = (0..)
        .map(|i| format!("stray-P{i}"))
        .find(|p| open.iter().any(|s| holds(s, p) && s.number < top))
        .unwrap();
    let home = open.iter().find(|s| holds(s, &product)).unwrap();
    let elsewhere = open.iter().find(|s| s.number > home.number).unwrap();

    put_event(&stack, &product, ("s-1", "product_added", Some(10)), None).await;
    // The product exists (it has a position) when the stray arrives.
    wait_for_version(&stack, &product, 1).await;
    let stray_shard = put_event(
        &stack,
        &product,
        ("s-2", "quantity_decreased", Some(3)),
        Some(elsewhere.range.0),
    )
    .await;
    assert_eq!(stray_shard, elsewhere.id);
    let after = [
        ("s-3", "quantity_decreased", 2),
        ("s-4", "quantity_increased", 5),
        ("s-5", "quantity_decreased", 1),
        ("s-6", "quantity_increased", 4),
        ("s-7", "quantity_decreased", 3),
        ("s-8", "quantity_decreased", 2),
    ];
    for (id, kind, q) in after {
        put_event(&stack, &product, (id, kind, Some(q)), None).await;
    }
    // Every event after the stray is applied: 10 - 2 + 5 - 1 + 4 - 3 - 2.
    assert_eq!(wait_for_version(&stack, &product, 7).await, 11);
    let rejections = wait_for("the stray's rejection", PATIENCE, || async {
        let r = rejection_items(&stack.db, &stack.options.tables).await;
        (!r.is_empty()).then_some(r)
    })
    .await;
    assert_eq!(rejections.len(), 1, "only the stray is rejected");
    assert_eq!(text(&rejections[0], "reason"), "wrong_shard");
    assert!(text(&rejections[0], "record_id").starts_with(&elsewhere.id));
    pipe.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn f12_a_stream_deleted_and_created_again_keeps_feeding_the_same_tables_exactly() {
    let stack = local_stack(StackOptions {
        shards: 2,
        ..StackOptions::default()
    })
    .await;
    // The same warm instances before and after: their listing of the old stream is stale.
    let instances = shared(Instances::new(&stack, 2));
    let pipe = stack.pipe_to(instances.clone()).spawn();
    let products: Vec<String> = (0..20).map(|i| format!("again-P{i}")).collect();
    for p in &products {
        put_event(
            &stack,
            p,
            (&format!("{p}-a"), "product_added", Some(100)),
            None,
        )
        .await;
    }
    // Resharded first, so the products' positions name shards numbered above the new
    // stream's first ones.
    reshard(&stack.kinesis, &stack.options.stream, Reshard::Count(4)).await;
    for p in &products {
        put_event(
            &stack,
            p,
            (&format!("{p}-b"), "quantity_decreased", Some(1)),
            None,
        )
        .await;
    }
    for p in &products {
        wait_for_version(&stack, p, 2).await;
    }
    pipe.stop().await.unwrap();

    delete_stream(&stack.kinesis, &stack.options.stream).await;
    inventory_local::kinesis::ensure_stream(&stack.kinesis, &stack.options.stream, 2)
        .await
        .unwrap();
    // The old Pipe's checkpoints belong to the deleted stream: a new Pipe reads the new one.
    let mut replaced = stack.pipe_to(instances.clone());
    replaced.name = "pipe-of-the-new-stream".into();
    let pipe = replaced.spawn();
    for p in &products {
        put_event(
            &stack,
            p,
            (&format!("{p}-c"), "quantity_decreased", Some(2)),
            None,
        )
        .await;
        put_event(
            &stack,
            p,
            (&format!("{p}-d"), "quantity_increased", Some(5)),
            None,
        )
        .await;
    }
    for p in &products {
        assert_eq!(wait_for_version(&stack, p, 4).await, 100 - 1 - 2 + 5, "{p}");
    }
    assert!(rejection_items(&stack.db, &stack.options.tables)
        .await
        .is_empty());
    pipe.stop().await.unwrap();
}

/// The processor, or while `outage` is set, the same processor whose DynamoDB calls go
/// through `failing` (a fault proxy's client).
struct Outage {
    healthy: InProcessTarget,
    failing: InProcessTarget,
    outage: std::sync::atomic::AtomicBool,
}

impl Target for Outage {
    fn invoke(&self, payload: Vec<u8>) -> BoxFuture<'static, Result<Vec<u8>, TargetError>> {
        if self.outage.load(Ordering::SeqCst) {
            self.failing.invoke(payload)
        } else {
            self.healthy.invoke(payload)
        }
    }
}

/// A stack whose Pipe (one retry, then dead letters) invokes the processor through a fault
/// proxy with `rates` until the outage ends, and the dead-letter consumer fed by the Pipe.
struct Outaged {
    stack: LocalStack,
    proxy: FaultProxy,
    target: Arc<Outage>,
    pipe: inventory_local::pipe::PipeHandle,
    queue: inventory_local::dead_letter_queue::DeadLetterQueue,
}

async fn outaged(shards: i32, rates: FaultRates, seed: u64) -> Outaged {
    init_tracing();
    let stack = LocalStack::start(StackOptions {
        shards,
        pipe: PipeSettings {
            maximum_batching_window_in_seconds: 0,
            maximum_retry_attempts: 1,
            ..PipeSettings::default()
        },
        ..StackOptions::default()
    })
    .await
    .unwrap();
    let proxy = FaultProxy::start(stack.aws.endpoint(), rates, seed)
        .await
        .unwrap();
    let target = shared(Outage {
        healthy: InProcessTarget::on(&stack),
        failing: InProcessTarget(Processor::new(
            proxy.dynamodb_client(1),
            stack.options.tables.clone(),
            shards_of(&stack),
        )),
        outage: true.into(),
    });
    let mut runner = stack.pipe_to(target.clone());
    fast_retries(&mut runner);
    let pipe = runner.spawn();
    let queue = stack.start_dead_letter_queue();
    Outaged {
        stack,
        proxy,
        target,
        pipe,
        queue,
    }
}

/// Every archived dead letter: (status, redrive count), by id.
async fn archive(stack: &LocalStack) -> BTreeMap<String, (String, u64)> {
    let (items, _) = inventory_store::dead_letters::list(
        &stack.db,
        &stack.options.tables,
        None,
        inventory_store::dead_letters::Order::OldestFirst,
        100_000,
        None,
    )
    .await
    .unwrap();
    items
        .into_iter()
        .map(|i| {
            let status = serde_json::to_value(i.status).unwrap();
            (
                i.sk,
                (
                    status.as_str().unwrap_or_default().to_owned(),
                    i.redrive_count,
                ),
            )
        })
        .collect()
}

/// Redrives every pending dead letter as the console does: request after request while the
/// redrive says some remain and makes progress. Returns the records republished.
async fn redrive_all(
    redriver: &inventory_dead_letters::Redriver,
    include_past_window: bool,
) -> u64 {
    let mut republished = 0;
    for _ in 0..100 {
        let result = redriver
            .redrive(&inventory_domain::api::RedriveRequest {
                ids: vec![],
                include_past_window,
            })
            .await
            .unwrap();
        republished += result.republished;
        if !result.remaining || result.republished == 0 {
            return republished;
        }
    }
    panic!("a redrive of everything pending needed more than 100 requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn f13_a_batch_written_but_never_logged_until_dead_lettered_is_not_redriven_twice() {
    // Every shard-log transaction fails; the product writes (PutItem) go through.
    let rates = FaultRates {
        server_error: 1.0,
        only: Some("TransactWriteItems"),
        ..FaultRates::default()
    };
    let Outaged {
        stack,
        proxy,
        target,
        pipe,
        queue,
    } = outaged(1, rates, 13).await;

    let product = "unlogged-P";
    put_event(&stack, product, ("u-0", "product_added", Some(100)), None).await;
    for i in 1..60 {
        put_event(
            &stack,
            product,
            (&format!("u-{i}"), "quantity_decreased", Some(1)),
            None,
        )
        .await;
    }
    wait_until("the Pipe to dead-letter all 60 records", PATIENCE, || {
        queue.stats.records_archived.load(Ordering::SeqCst) >= 60
    })
    .await;
    assert!(proxy.counts.injected() > 0);
    // The product writes landed: the outage only kept the log (and its counters) out.
    assert_eq!(
        number(&item_of(&stack, product).await.unwrap(), "quantity"),
        41
    );
    target.outage.store(false, Ordering::SeqCst);
    for i in 60..63 {
        put_event(
            &stack,
            product,
            (&format!("u-{i}"), "quantity_decreased", Some(1)),
            None,
        )
        .await;
    }
    assert_eq!(wait_for_version(&stack, product, 63).await, 38);

    let archived = archive(&stack).await;
    assert_eq!(archived.len(), 60);
    assert!(
        archived.values().all(|(s, _)| s == "processed_before"),
        "the product's position is past every one of them: {archived:?}"
    );
    assert_eq!(redrive_all(&stack.redriver(), true).await, 0);
    // Whatever a redrive did, the stock stays: 100 - 62.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let item = item_of(&stack, product).await.unwrap();
    assert_eq!(
        (number(&item, "quantity"), number(&item, "version")),
        (38, 63)
    );
    queue.stop().await;
    pipe.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn f14_a_pipe_replaced_at_trim_horizon_dead_letters_old_records_and_none_is_applied_twice() {
    let stack = local_stack(StackOptions {
        shards: 2,
        ..StackOptions::default()
    })
    .await;
    let pipe = start_in_process_pipe(&stack);
    let mut simulation = sim("replaced", 40, 1_000, Skew::Zipf(1.1), 14);
    publish_all(&stack, &mut simulation, None).await;
    assert_verified(&stack, &simulation).await;
    pipe.stop().await.unwrap();

    // Days later: the shard log's items have expired (deleted here as DynamoDB's TTL would).
    let logged: Vec<HashMap<String, AttributeValue>> = stack
        .db
        .scan()
        .table_name(&stack.options.tables.events)
        .filter_expression("begins_with(pk, :p)")
        .expression_attribute_values(":p", AttributeValue::S("DEDUP#".into()))
        .into_paginator()
        .items()
        .send()
        .collect::<Result<_, _>>()
        .await
        .unwrap();
    assert!(!logged.is_empty());
    for item in &logged {
        stack
            .db
            .delete_item()
            .table_name(&stack.options.tables.events)
            .key("pk", item["pk"].clone())
            .key("sk", item["sk"].clone())
            .send()
            .await
            .unwrap();
    }
    // A new Pipe (another name) from TRIM_HORIZON, with a maximum record age every record
    // is past: it dead-letters them all.
    let mut replaced = stack.pipe_to(shared(InProcessTarget::on(&stack)));
    replaced.name = "replaced-pipe".into();
    replaced.settings.maximum_record_age_in_seconds = 60;
    replaced.record_age_offset = Duration::from_secs(2 * 86_400);
    fast_retries(&mut replaced);
    let pipe = replaced.spawn();
    let queue = inventory_local::dead_letter_queue::DeadLetterQueue::start(
        stack.db.clone(),
        stack.options.pipe_table.clone(),
        "replaced-pipe".into(),
        stack.dead_letter_consumer(),
    );
    let published = simulation.expected().records;
    wait_until("every record dead-lettered and archived", PATIENCE, || {
        queue.stats.records_archived.load(Ordering::SeqCst) >= published
    })
    .await;
    let archived = archive(&stack).await;
    assert_eq!(archived.len() as u64, published);
    let pending: Vec<_> = archived
        .iter()
        .filter(|(_, (s, _))| s != "processed_before")
        .collect();
    assert!(
        pending.is_empty(),
        "applied records archived as pending: {pending:?}"
    );
    assert_eq!(redrive_all(&stack.redriver(), true).await, 0);
    assert_verified(&stack, &simulation).await;
    queue.stop().await;
    pipe.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn f15_a_retry_after_a_reshard_of_an_event_rejected_before_it_is_a_duplicate() {
    let stack = local_stack(StackOptions {
        shards: 1,
        ..StackOptions::default()
    })
    .await;
    let pipe = start_in_process_pipe(&stack);
    let product = "only-rejected-P";
    // Not added yet: rejected, and no product item remembers it.
    put_event(
        &stack,
        product,
        ("r-1", "quantity_increased", Some(5)),
        None,
    )
    .await;
    wait_for("the rejection", PATIENCE, || async {
        let r = rejection_items(&stack.db, &stack.options.tables).await;
        (!r.is_empty()).then_some(())
    })
    .await;
    reshard(&stack.kinesis, &stack.options.stream, Reshard::SplitFirst).await;
    put_event(&stack, product, ("r-2", "product_added", Some(11)), None).await;
    assert_eq!(wait_for_version(&stack, product, 1).await, 11);
    // The producer's retry of its first event, same id and bytes, now in a child shard.
    put_event(
        &stack,
        product,
        ("r-1", "quantity_increased", Some(5)),
        None,
    )
    .await;
    wait_for("the retry counted as a duplicate", PATIENCE, || async {
        (stats_totals(&stack)
            .await
            .get("producer_duplicates")
            .copied()
            == Some(1))
        .then_some(())
    })
    .await;
    let item = item_of(&stack, product).await.unwrap();
    assert_eq!(
        (number(&item, "quantity"), number(&item, "version")),
        (11, 1)
    );
    assert_eq!(
        rejection_items(&stack.db, &stack.options.tables)
            .await
            .len(),
        1
    );
    pipe.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn f16_two_redrives_at_once_publish_each_dead_letter_once() {
    // DynamoDB is down for the processor (every call fails) until the outage ends.
    let rates = FaultRates {
        unavailable: 1.0,
        ..FaultRates::default()
    };
    let Outaged {
        stack,
        target,
        pipe,
        queue,
        ..
    } = outaged(2, rates, 16).await;
    let mut simulation = sim("tworedrives", 30, 600, Skew::Zipf(1.1), 16);
    let published = publish_all(&stack, &mut simulation, None).await.records;
    wait_until("every record archived", PATIENCE, || {
        queue.stats.records_archived.load(Ordering::SeqCst) >= published
    })
    .await;
    target.outage.store(false, Ordering::SeqCst);
    let pending = archive(&stack)
        .await
        .values()
        .filter(|(s, _)| s == "pending")
        .count() as u64;
    assert!(pending > 0);

    // Two users click "Redrive all pending" at once (two function instances).
    let (a, b) = (stack.redriver(), stack.redriver());
    let (x, y) = tokio::join!(redrive_all(&a, false), redrive_all(&b, false));
    assert_eq!(x + y, pending, "{x} + {y} republished of {pending} pending");
    let archived = archive(&stack).await;
    assert!(
        archived
            .values()
            .all(|(s, n)| s != "pending" && (s != "redriven" || *n == 1)),
        "each redriven once: {archived:?}"
    );
    let in_stream: usize = read_all_records(&stack).await;
    assert_eq!(in_stream as u64, published + pending);
    assert_verified(&stack, &simulation).await;
    queue.stop().await;
    pipe.stop().await.unwrap();
}

/// Every record the stream holds, all shards.
async fn read_all_records(stack: &LocalStack) -> usize {
    let mut count = 0;
    for shard in inventory_local::kinesis::shard_ids(&stack.kinesis, &stack.options.stream)
        .await
        .unwrap()
    {
        let mut iterator = stack
            .kinesis
            .get_shard_iterator()
            .stream_name(&stack.options.stream)
            .shard_id(&shard)
            .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator
            .unwrap();
        for _ in 0..1_000 {
            let page = stack
                .kinesis
                .get_records()
                .shard_iterator(&iterator)
                .send()
                .await
                .unwrap();
            count += page.records().len();
            if page.records().is_empty() && page.millis_behind_latest() == Some(0) {
                break;
            }
            iterator = page.next_shard_iterator().unwrap().to_owned();
        }
    }
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn f17_dedup_keys_forced_to_collide_at_64_bits_still_tell_every_event_apart() {
    let stack = local_stack(StackOptions::default()).await;
    let settings = inventory_processor::ProcessorSettings {
        collide_dedup_keys: true,
        ..Default::default()
    };
    let target = target_of(Processor::with_settings(
        stack.db.clone(),
        stack.options.tables.clone(),
        shards_of(&stack),
        settings,
    ));
    let pipe = stack.pipe_to(target).spawn();
    let mut simulation = producers_sim("collide", 3, 2_000, 17, 5, 0.05, (1, 1_000));
    publish_all(&stack, &mut simulation, None).await;
    assert_verified(&stack, &simulation).await;
    assert_duplicates_counted(&stack, &simulation, "f17").await;
    pipe.stop().await.unwrap();
}
