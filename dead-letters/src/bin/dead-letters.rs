//! The Lambda the Pipe's dead-letter queue triggers: archives each dead-lettered range's
//! records (read back from the stream) in the events table.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use inventory_dead_letters::{dedup_window_ms_from_env, DeadLetterConsumer};
use inventory_store::Tables;
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let consumer = DeadLetterConsumer::new(
        aws_sdk_kinesis::Client::new(&config),
        aws_sdk_dynamodb::Client::new(&config),
        Tables::from_env()?,
        dedup_window_ms_from_env()?,
    );
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let consumer = consumer.clone();
        async move { Ok::<SqsBatchResponse, Error>(consumer.handle_sqs(event.payload).await.0) }
    }))
    .await
}
