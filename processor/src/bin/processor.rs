//! The Lambda an EventBridge Pipe invokes with a batch of Kinesis records.

use inventory_processor::body::RawBodies;
use inventory_processor::metrics::write_emf;
use std::sync::Arc;

use inventory_processor::{KinesisShards, Processor, ProcessorConfig};
use lambda_runtime::{service_fn, Error, LambdaEvent, Runtime};
use serde::de::IgnoredAny;

// A batch allocates a few small strings per record; mimalloc serves them faster than the
// system allocator (see docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    // Lambda's log settings apply: AWS_LAMBDA_LOG_FORMAT (JSON in infra/template.yaml) and
    // AWS_LAMBDA_LOG_LEVEL, else RUST_LOG, else INFO.
    lambda_runtime::tracing::init_default_subscriber();
    let ProcessorConfig {
        tables,
        settings,
        stage,
    } = ProcessorConfig::from_env()
        // The error's own words in the function's log; the runtime shows only its Debug form.
        .inspect_err(|e| tracing::error!("{e}"))?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let processor = Processor::with_settings(
        aws_sdk_dynamodb::Client::new(&aws),
        tables,
        Arc::new(KinesisShards(aws_sdk_kinesis::Client::new(&aws))),
        settings,
    );
    // The body is taken out of the invocation before lambda_runtime would deserialise it,
    // and read once, in place (processor/src/body.rs).
    let bodies = RawBodies::default();
    let handler = {
        let bodies = bodies.clone();
        service_fn(move |event: LambdaEvent<IgnoredAny>| {
            let processor = processor.clone();
            let stage = stage.clone();
            let body = bodies.take(&event.context.request_id);
            async move {
                let body = body.ok_or("the invocation's body was not captured: the runtime must be wrapped in RawBodies::layer")?;
                let report = processor.handle_body_report(body).await?;
                emit_metrics(&report, stage.as_deref());
                Ok::<_, Error>(report.response)
            }
        })
    };
    Runtime::new(handler).layer(bodies.layer()).run().await
}

/// The batch's metrics on stdout, which CloudWatch Logs reads as EMF. A failed write loses
/// metrics, never the batch.
fn emit_metrics(report: &inventory_processor::BatchReport, stage: Option<&str>) {
    let now = chrono::Utc::now().timestamp_millis();
    if let Err(err) = write_emf(&mut std::io::stdout().lock(), report, stage, now) {
        tracing::warn!(error = %err, "could not write the batch's metrics");
    }
}
