//! The Lambda an EventBridge Pipe invokes with a batch of Kinesis records.

use inventory_processor::{dynamodb_client_from_env, Processor, Tables};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::value::RawValue;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .without_time()
        .init();
    let processor = Processor::new(dynamodb_client_from_env().await, Tables::from_env()?);
    // The body is taken whole and read once as a PipeBatch (one buffer, no path tracking):
    // lambda_runtime's own typed reading costs more than decoding the events.
    lambda_runtime::run(service_fn(|event: LambdaEvent<Box<RawValue>>| {
        let processor = processor.clone();
        async move { Ok::<_, Error>(processor.handle_json(event.payload.get()).await?) }
    }))
    .await
}
