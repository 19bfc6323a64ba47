//! Whole-pipeline harness: the embedded stack, the generator's simulation published through
//! Kinesis, the local Pipe, and `verify` against the generator's model.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use inventory_domain::PipeRecord;
use inventory_generator::{
    publish, verify, Expected, FaultRatios, PublishOptions, PublishReport, SimConfig, Simulation,
    Skew, VerifyOptions, VerifyReport,
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
