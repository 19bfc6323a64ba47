//! Whole-pipeline harness: the embedded stack, the generator's simulation published through
//! Kinesis, the local Pipe, and `verify` against the generator's model.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use inventory_domain::PipeRecord;
use inventory_generator::{
    publish, verify, Expected, FaultRatios, ProducerConfig, PublishOptions, PublishReport,
    RetryDistance, SimConfig, Simulation, Skew, VerifyOptions, VerifyReport,
};
use inventory_local::pipe::{BoxFuture, ProcessorTarget, Target};
use inventory_local::pipe_settings::PipeSettings;
use inventory_local::stack::{LocalStack, StackOptions};
use rand::{rngs::StdRng, Rng, SeedableRng};

/// The fault mix most runs use: 5% producer duplicates, 2% malformed, 2% invalid transitions.
pub const FAULTS: FaultRatios = FaultRatios {
    duplicates: 0.05,
    malformed: 0.02,
    invalid_transitions: 0.02,
};

pub fn sim(run_id: &str, products: usize, events: u64, skew: Skew, seed: u64) -> Simulation {
    Simulation::new(SimConfig {
        products,
        events,
        skew,
        seed,
        run_id: run_id.into(),
        faults: FAULTS,
    })
    .unwrap()
}

/// The stack with the Pipe's batching window at 0, so tests do not wait out 1 s windows.
pub async fn stack(options: StackOptions) -> LocalStack {
    // RUST_LOG=inventory_processor=info,inventory_local=info shows what a failing case did.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    LocalStack::start(StackOptions {
        pipe: PipeSettings {
            maximum_batching_window_in_seconds: 0,
            ..PipeSettings::default()
        },
        ..options
    })
    .await
    .unwrap()
}

/// The stack with the Pipe as the template deploys it (batches of 100 or 1 s), for cases
/// whose figures depend on how full the batches are.
pub async fn stack_as_deployed() -> LocalStack {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    LocalStack::start(StackOptions::default()).await.unwrap()
}

pub async fn publish_all(
    stack: &LocalStack,
    sim: &mut Simulation,
    rate: Option<f64>,
) -> PublishReport {
    let options = PublishOptions {
        stream: stack.options.stream.clone(),
        rate,
        max_attempts: 30,
    };
    publish(&stack.kinesis, sim, &options, &mut |_| {})
        .await
        .unwrap()
}

/// Publishes in a background task (so a test can disturb the pipeline meanwhile).
pub fn publish_in_background(
    stack: &LocalStack,
    mut sim: Simulation,
    rate: Option<f64>,
) -> tokio::task::JoinHandle<Simulation> {
    let kinesis = stack.kinesis.clone();
    let options = PublishOptions {
        stream: stack.options.stream.clone(),
        rate,
        max_attempts: 30,
    };
    tokio::spawn(async move {
        publish(&kinesis, &mut sim, &options, &mut |_| {})
            .await
            .unwrap();
        sim
    })
}

/// Waits for the pipeline to catch up and compares exactly: every product's status,
/// quantity and version, and the count of every rejection reason.
pub async fn verify_exact(stack: &LocalStack, expected: &Expected) -> VerifyReport {
    let report = verify(
        &stack.db,
        &stack.options.tables,
        expected,
        &VerifyOptions {
            // Only a failing run waits it out; CI machines have been ~4x slower than a
            // developer's for this suite.
            timeout: Duration::from_secs(300),
            ..VerifyOptions::default()
        },
    )
    .await
    .unwrap();
    assert!(
        report.caught_up,
        "the pipeline did not catch up; rejections {:?} (expected {:?}); first mismatches: {:?}",
        report.rejections,
        expected.rejections,
        report.mismatches.iter().take(5).collect::<Vec<_>>()
    );
    assert_eq!(report.mismatches, vec![], "mismatches");
    assert_eq!(report.rejections, expected.rejections);
    report
}

/// [`verify_exact`] for a simulation, checking that faults were really injected.
pub async fn assert_verified(stack: &LocalStack, sim: &Simulation) -> VerifyReport {
    let expected = sim.expected();
    assert!(
        !expected.rejections.is_empty() && expected.duplicates > 0,
        "faults were injected"
    );
    verify_exact(stack, &expected).await
}

/// The processor, but some invocations die part-way: either after applying a random prefix
/// of the batch, or cancelled after a random delay, in the middle of whatever DynamoDB calls
/// are in flight (some land, some do not). The Pipe then sees a function error.
pub struct CrashingTarget {
    pub inner: ProcessorTarget,
    pub rng: Mutex<StdRng>,
    pub crash_ratio: f64,
    pub crashes: AtomicU64,
}

impl CrashingTarget {
    pub fn new(inner: ProcessorTarget, crash_ratio: f64, seed: u64) -> Self {
        Self {
            inner,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            crash_ratio,
            crashes: AtomicU64::new(0),
        }
    }

    pub fn crashes(&self) -> u64 {
        self.crashes.load(Ordering::SeqCst)
    }
}

enum Crash {
    AfterPrefix(usize),
    AfterDelay(Duration),
}

impl Target for CrashingTarget {
    fn invoke(&self, payload: Vec<u8>) -> BoxFuture<Result<Vec<u8>, String>> {
        let records: Vec<PipeRecord> = serde_json::from_slice(&payload).unwrap();
        let crash = {
            let mut rng = self.rng.lock().unwrap();
            rng.random_bool(self.crash_ratio).then(|| {
                if rng.random_bool(0.5) {
                    Crash::AfterPrefix(rng.random_range(0..=records.len()))
                } else {
                    Crash::AfterDelay(Duration::from_micros(rng.random_range(0..30_000)))
                }
            })
        };
        let Some(crash) = crash else {
            return self.inner.invoke(payload);
        };
        self.crashes.fetch_add(1, Ordering::SeqCst);
        match crash {
            Crash::AfterPrefix(cut) => {
                let partial = self
                    .inner
                    .invoke(serde_json::to_vec(&records[..cut]).unwrap());
                Box::pin(async move {
                    let _ = partial.await;
                    Err(format!("injected crash after {cut} records"))
                })
            }
            Crash::AfterDelay(after) => {
                let whole = self.inner.invoke(payload);
                Box::pin(async move {
                    // Dropping the future mid-flight is what a killed process does to it.
                    match tokio::time::timeout(after, whole).await {
                        Ok(_) | Err(_) => Err(format!("injected crash after {after:?}")),
                    }
                })
            }
        }
    }
}

pub fn shared<T>(t: T) -> Arc<T> {
    Arc::new(t)
}

/// A simulation played by `producers` concurrent producers, `retry_share` of whose events
/// are put again `distance` records later (a producer's SDK retrying after a lost answer).
pub fn producers_sim(
    run_id: &str,
    products: usize,
    events: u64,
    seed: u64,
    producers: usize,
    retry_share: f64,
    distance: (u64, u64),
) -> Simulation {
    Simulation::with_producers(
        SimConfig {
            products,
            events,
            skew: Skew::Zipf(1.1),
            seed,
            run_id: run_id.into(),
            faults: FAULTS,
        },
        ProducerConfig {
            producers,
            retry_share,
            retry_distance: RetryDistance::new(distance.0, distance.1).unwrap(),
        },
    )
    .unwrap()
}

/// The processor's running totals (the `STATS`/`TOTAL` item): counter name → value.
pub async fn stats_totals(stack: &LocalStack) -> std::collections::BTreeMap<String, u64> {
    let item = stack
        .db
        .get_item()
        .table_name(&stack.options.tables.events)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("STATS".into()),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("TOTAL".into()),
        )
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item()
        .cloned()
        .unwrap_or_default();
    item.iter()
        .filter_map(|(k, v)| Some((k.clone(), v.as_n().ok()?.parse().ok()?)))
        .collect()
}

/// Waits (bounded) until `done` holds, polling every 20 ms; panics with `what` on timeout.
pub async fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Resizes the stream (UpdateShardCount, uniform scaling: Kinesis splits or merges shards)
/// and waits until it is ACTIVE again with `count` open shards.
pub async fn reshard(stack: &LocalStack, count: i32) {
    stack
        .kinesis
        .update_shard_count()
        .stream_name(&stack.options.stream)
        .target_shard_count(count)
        .scaling_type(aws_sdk_kinesis::types::ScalingType::UniformScaling)
        .send()
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let d = stack
            .kinesis
            .describe_stream_summary()
            .stream_name(&stack.options.stream)
            .send()
            .await
            .unwrap();
        let d = d.stream_description_summary().unwrap();
        if d.stream_status() == &aws_sdk_kinesis::types::StreamStatus::Active
            && d.open_shard_count() == count
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the stream did not reach {count} open shards"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
