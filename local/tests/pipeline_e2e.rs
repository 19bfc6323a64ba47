//! The whole pipeline on the embedded stack: generator → Kinesis → local Pipe → processor →
//! DynamoDB, checked by `verify` against the generator's model. Crashes, redelivery,
//! DynamoDB faults, Pipe restarts and hostile input are in `fault_suite.rs`.

use inventory_testkit as harness;

use std::sync::atomic::Ordering;

use harness::*;
use inventory_generator::{publish, PublishOptions, Skew};
use inventory_local::stack::StackOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn throttled_puts_are_retried_without_reordering_a_product() {
    // Kinesis' real per-shard limit (1,000 records/s) on one shard, published unpaced:
    // PutRecords reports failed records and the generator must retry them in order.
    let stack = local_stack(StackOptions {
        enforce_kinesis_limits: true,
        shards: 1,
        ..StackOptions::default()
    })
    .await;
    let (pipe, _processor) = start_processor_pipe(&stack);
    let mut simulation = sim("throttle", 60, 3000, Skew::Zipf(1.1), 3);
    let options = PublishOptions {
        stream: stack.options.stream.clone(),
        rate: None,
        max_attempts: 200,
        deadline: None,
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
    let stack1 = local_stack(options.clone()).await;
    let (pipe, _processor) = start_processor_pipe(&stack1);
    let mut first = sim("keep1", 60, 300, Skew::Zipf(1.1), 4);
    publish_all(&stack1, &mut first, None).await;
    assert_verified(&stack1, &first).await;
    pipe.stop().await.unwrap();
    stack1.aws.stop().await;

    let stack2 = local_stack(options).await;
    let (pipe, _processor) = start_processor_pipe(&stack2);
    // The first run's state is still there, and the pipe resumes from its checkpoint.
    assert_verified(&stack2, &first).await;
    let mut second = sim("keep2", 60, 300, Skew::Zipf(1.1), 5);
    publish_all(&stack2, &mut second, None).await;
    assert_verified(&stack2, &second).await;
    assert_verified(&stack2, &first).await;
    assert!(pipe.stats.records_delivered.load(Ordering::SeqCst) < 600);
    pipe.stop().await.unwrap();
    stack2.aws.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
