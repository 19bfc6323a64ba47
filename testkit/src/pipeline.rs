//! The whole local stack: the generator's simulation published through Kinesis, the local
//! Pipe, the processor, and `verify` against the generator's model.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use inventory_generator::{
    publish, verify, Expected, FaultRatios, ProducerConfig, PublishOptions, PublishReport,
    RetryDistance, SimConfig, Simulation, Skew, VerifyOptions, VerifyReport,
};
use inventory_local::lambda_host::LambdaHost;
use inventory_local::pipe::{PipeHandle, PipeRunner, PipeStats, Target};
use inventory_local::pipe_settings::PipeSettings;
use inventory_local::stack::{LocalStack, StackOptions};

use super::targets::InProcessTarget;
use super::wait::wait_until;

/// The fault mix most runs use: 5% producer duplicates, 2% malformed, 2% invalid transitions.
pub const FAULTS: FaultRatios = FaultRatios {
    duplicates: 0.05,
    malformed: 0.02,
    invalid_transitions: 0.02,
};

/// How long a whole run may take to be applied: only a failing run waits it out; CI
/// machines have been ~4x slower than a developer's for the fault suite.
pub const CATCH_UP: Duration = Duration::from_secs(300);

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
            retry_distance: RetryDistance {
                min: distance.0,
                max: distance.1,
            },
        },
    )
    .unwrap()
}

/// The local stack with the Pipe's batching window at 0, so tests do not wait out 1 s
/// windows.
pub async fn local_stack(options: StackOptions) -> LocalStack {
    super::init_tracing();
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

/// The local stack with the Pipe as the template deploys it (batches of 100 or 1 s), for
/// cases whose figures depend on how full the batches are.
pub async fn local_stack_as_deployed() -> LocalStack {
    super::init_tracing();
    LocalStack::start(StackOptions::default()).await.unwrap()
}

/// The stack's Pipe to the processor in this process, not yet started (so a test can set
/// its backoff first).
pub fn in_process_pipe(stack: &LocalStack) -> PipeRunner {
    stack.pipe_to(Arc::new(InProcessTarget::on(stack)))
}

/// The stack's Pipe to the processor in this process, started.
pub fn start_in_process_pipe(stack: &LocalStack) -> PipeHandle {
    in_process_pipe(stack).spawn()
}

/// The stack's Pipe to the processor binary as Lambda runs it (as `make demo` does),
/// started; the host runs the binary's instances until dropped.
pub fn start_processor_pipe(stack: &LocalStack) -> (PipeHandle, Arc<LambdaHost>) {
    stack
        .start_processor_pipe()
        .unwrap_or_else(|e| panic!("the processor binary cannot run: {e}"))
}

/// The stack's Pipe to `target`, with its own calls (checkpoints, dead letters) made with
/// `db`: a fault-injecting proxy's client, say.
pub fn pipe_runner_with_db(
    stack: &LocalStack,
    db: aws_sdk_dynamodb::Client,
    target: Arc<dyn Target>,
) -> PipeRunner {
    PipeRunner::new(
        stack.options.pipe_name.clone(),
        stack.options.stream.clone(),
        stack.options.pipe.clone(),
        stack.kinesis.clone(),
        db,
        stack.options.pipe_table.clone(),
        target,
    )
}

/// The dead letters of the stack's Pipe (their batch descriptions).
pub async fn dead_letters(stack: &LocalStack) -> Vec<serde_json::Value> {
    inventory_local::pipe::dead_letters(
        &stack.db,
        &stack.options.pipe_table,
        &stack.options.pipe_name,
    )
    .await
    .unwrap()
}

pub async fn assert_no_dead_letters(stack: &LocalStack) {
    let dlq = dead_letters(stack).await;
    assert!(dlq.is_empty(), "dead-lettered: {dlq:?}");
}

/// Waits until the Pipe has delivered at least `records` records.
pub async fn wait_for_delivered(stats: &PipeStats, records: u64, limit: Duration) {
    let what = format!("the Pipe to deliver {records} records");
    wait_until(&what, limit, || {
        stats.records_delivered.load(Ordering::SeqCst) >= records
    })
    .await;
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
        deadline: None,
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
        deadline: None,
    };
    tokio::spawn(async move {
        publish(&kinesis, &mut sim, &options, &mut |_| {})
            .await
            .unwrap();
        sim
    })
}

/// Waits (up to [`CATCH_UP`]) for the pipeline to catch up and compares exactly: every
/// product's status, quantity and version, and the count of every rejection reason.
pub async fn verify_exact(stack: &LocalStack, expected: &Expected) -> VerifyReport {
    let report = verify(
        &stack.db,
        &stack.options.tables,
        expected,
        &VerifyOptions {
            timeout: CATCH_UP,
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

/// The processor's running totals (its `STATS`/`SHARD#<shard>` items, summed): counter
/// name → value.
pub async fn stats_totals(stack: &LocalStack) -> BTreeMap<String, u64> {
    let total = inventory_store::stats::read_total(&stack.db, &stack.options.tables)
        .await
        .unwrap()
        .unwrap_or_default();
    let mut named: BTreeMap<String, u64> = total.counters.attributes().into_iter().collect();
    for (name, value) in total.products.named() {
        named.insert(name.to_owned(), u64::try_from(value).unwrap_or(0));
    }
    named
}
