//! The Lambda an EventBridge Pipe invokes with a batch of Kinesis records.

use inventory_domain::pipes::PipeBatch;
use inventory_processor::{dynamodb_client_from_env, Processor, Tables};
use lambda_runtime::{service_fn, Error, LambdaEvent};

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
    // PipeBatch reads the batch into one buffer instead of eleven strings per record.
    lambda_runtime::run(service_fn(|event: LambdaEvent<PipeBatch>| {
        let processor = processor.clone();
        async move { Ok::<_, Error>(processor.handle_batch(&event.payload).await) }
    }))
    .await
}
