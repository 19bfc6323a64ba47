//! The whole pipeline on the embedded stack: generator → Kinesis → local Pipe → processor →
//! DynamoDB, with faults, checked by `verify` against the generator's model.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use inventory_domain::PipeRecord;
use inventory_generator::{
    publish, verify, FaultRatios, PublishOptions, SimConfig, Simulation, Skew, VerifyOptions,
};
use inventory_local::pipe::{dead_letters, BoxFuture, ProcessorTarget, Target};
use inventory_local::pipe_settings::PipeSettings;
use inventory_local::stack::{LocalStack, StackOptions};
use rand::{rngs::StdRng, Rng, SeedableRng};

fn sim(run_id: &str, events: u64, seed: u64) -> Simulation {
    Simulation::new(SimConfig {
        products: 60,
        events,
        skew: Skew::Zipf(1.1),
        seed,
        run_id: run_id.into(),
        faults: FaultRatios {
            duplicates: 0.05,
            malformed: 0.02,
            invalid_transitions: 0.02,
        },
    })
    .unwrap()
}

async fn stack(options: StackOptions) -> LocalStack {
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

async fn publish_all(stack: &LocalStack, sim: &mut Simulation, rate: Option<f64>) {
    let options = PublishOptions {
        stream: stack.options.stream.clone(),
        rate,
        max_attempts: 30,
    };
    publish(&stack.kinesis, sim, &options, &mut |_| {})
        .await
        .unwrap();
}

async fn assert_verified(stack: &LocalStack, sim: &Simulation) {
    let expected = sim.expected();
    let report = verify(
        &stack.db,
        &stack.options.tables,
        &expected,
        &VerifyOptions {
            timeout: Duration::from_secs(90),
            ..VerifyOptions::default()
        },
    )
    .await
    .unwrap();
    assert!(report.caught_up, "the pipeline did not catch up");
    assert_eq!(report.mismatches, vec![], "mismatches");
    // The exact number of each injected fault is accounted for.
    assert_eq!(report.rejections, expected.rejections);
    assert!(
        !expected.rejections.is_empty() && expected.duplicates > 0,
        "faults were injected"
    );
}

/// The processor, but the invocation dies after applying a random part of the batch.
struct CrashingTarget {
    inner: ProcessorTarget,
    rng: Mutex<StdRng>,
    crash_ratio: f64,
    crashes: AtomicU64,
}

impl Target for CrashingTarget {
    fn invoke(&self, payload: Vec<u8>) -> BoxFuture<Result<Vec<u8>, String>> {
        let records: Vec<PipeRecord> = serde_json::from_slice(&payload).unwrap();
        let cut = {
            let mut rng = self.rng.lock().unwrap();
            rng.random_bool(self.crash_ratio)
                .then(|| rng.random_range(0..=records.len()))
        };
        let Some(cut) = cut else {
            return self.inner.invoke(payload);
        };
        self.crashes.fetch_add(1, Ordering::SeqCst);
        let partial = self
            .inner
            .invoke(serde_json::to_vec(&records[..cut]).unwrap());
        Box::pin(async move {
            let _ = partial.await;
            Err(format!("injected crash after {cut} records"))
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn generator_to_dynamodb_with_duplicates_malformed_and_crashes_verifies_exactly() {
    let stack = stack(StackOptions {
        shards: 3,
        ..StackOptions::default()
    })
    .await;
    let target = Arc::new(CrashingTarget {
        inner: ProcessorTarget(stack.processor.clone()),
        rng: Mutex::new(StdRng::seed_from_u64(99)),
        crash_ratio: 0.25,
        crashes: AtomicU64::new(0),
    });
    let mut runner = stack.pipe_to(target.clone());
    runner.min_backoff = Duration::from_millis(5);
    let pipe = runner.spawn();

    let mut simulation = sim("crash", 4000, 1);
    publish_all(&stack, &mut simulation, Some(4000.0)).await;
    assert_verified(&stack, &simulation).await;

    assert!(
        target.crashes.load(Ordering::SeqCst) >= 10,
        "crashes injected: {}",
        target.crashes.load(Ordering::SeqCst)
    );
    let stats = pipe.stats.snapshot();
    assert!(stats.failed_invocations >= 10 && stats.bisections > 0);
    assert_eq!(stats.dead_lettered, 0);
    assert!(
        dead_letters(&stack.db, &stack.options.tables, "inventory-pipe")
            .await
            .unwrap()
            .is_empty()
    );
    pipe.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_and_restarting_the_pipe_mid_run_loses_and_doubles_nothing() {
    let stack = stack(StackOptions {
        shards: 3,
        ..StackOptions::default()
    })
    .await;
    let mut simulation = sim("restart", 6000, 2);
    let first = stack.start_pipe();
    let publisher = {
        let kinesis = stack.kinesis.clone();
        let stream = stack.options.stream.clone();
        tokio::spawn(async move {
            let options = PublishOptions {
                stream,
                rate: Some(3000.0),
                max_attempts: 30,
            };
            publish(&kinesis, &mut simulation, &options, &mut |_| {})
                .await
                .unwrap();
            simulation
        })
    };
    // Kill it mid-run, in the middle of whatever batch it is in.
    while first.stats.records_delivered.load(Ordering::SeqCst) < 1500 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let delivered_before = first.stats.records_delivered.load(Ordering::SeqCst);
    let checkpoints = first.stats.checkpoints.load(Ordering::SeqCst);
    first.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let second = stack.start_pipe();
    let simulation = publisher.await.unwrap();
    assert_verified(&stack, &simulation).await;
    let delivered_after = second.stats.records_delivered.load(Ordering::SeqCst);
    assert!(checkpoints > 0);
    // It resumed from the checkpoint rather than from TRIM_HORIZON.
    assert!(
        delivered_after < 6000,
        "the restarted pipe re-read {delivered_after} records (first delivered {delivered_before})"
    );
    assert!(delivered_before + delivered_after >= 6000);
    second.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn throttled_puts_are_retried_without_reordering_a_product() {
    // Kinesis' real per-shard limit (1,000 records/s) on one shard, published unpaced:
    // PutRecords reports failed records and the generator must retry them in order.
    let stack = stack(StackOptions {
        enforce_kinesis_limits: true,
        shards: 1,
        ..StackOptions::default()
    })
    .await;
    let pipe = stack.start_pipe();
    let mut simulation = sim("throttle", 3000, 3);
    let options = PublishOptions {
        stream: stack.options.stream.clone(),
        rate: None,
        max_attempts: 200,
    };
    let report = publish(&stack.kinesis, &mut simulation, &options, &mut |_| {})
        .await
        .unwrap();
    assert!(
        report.retried > 0,
        "the emulator throttled nothing: {report:?}"
    );
    assert_verified(&stack, &simulation).await;
    pipe.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_data_dir_keeps_table_stream_and_checkpoints_in_step_across_restarts() {
    let dir = std::env::temp_dir().join(format!("inventory-local-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let options = StackOptions {
        data_dir: Some(dir.clone()),
        ..StackOptions::default()
    };
    let stack1 = stack(options.clone()).await;
    let pipe = stack1.start_pipe();
    let mut first = sim("keep1", 300, 4);
    publish_all(&stack1, &mut first, None).await;
    assert_verified(&stack1, &first).await;
    pipe.stop().await.unwrap();
    stack1.aws.stop().await;

    let stack2 = stack(options).await;
    let pipe = stack2.start_pipe();
    // The first run's state is still there, and the pipe resumes from its checkpoint.
    assert_verified(&stack2, &first).await;
    let mut second = sim("keep2", 300, 5);
    publish_all(&stack2, &mut second, None).await;
    assert_verified(&stack2, &second).await;
    assert_verified(&stack2, &first).await;
    assert!(pipe.stats.records_delivered.load(Ordering::SeqCst) < 600);
    pipe.stop().await.unwrap();
    stack2.aws.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
