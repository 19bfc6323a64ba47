//! The dead-letter Lambda. Triggered by the Pipe's dead-letter queue, it archives each
//! dead-lettered range's records (read back from the stream) in the events table. Invoked by
//! the API with `{"redrive": {"ids": [...]}}`, it republishes pending ones, so the API's role
//! needs no write access to the stream. Each queue invocation writes its count of messages
//! not archived as an EMF metric line (inventory_dead_letters::metrics).

use std::io::Write;

use aws_lambda_events::sqs::SqsBatchResponse;
use inventory_dead_letters::metrics::{not_archived_line, STAGE_VAR};
use inventory_dead_letters::{dedup_window_ms_from_env, DeadLetterConsumer, Invocation, Redriver};
use inventory_store::Tables;
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let (kinesis, db) = (
        aws_sdk_kinesis::Client::new(&config),
        aws_sdk_dynamodb::Client::new(&config),
    );
    let tables = Tables::from_env()?;
    let stream = std::env::var("STREAM_NAME")
        .map_err(|_| "STREAM_NAME is not set: set it to the Pipe's source stream")?;
    let window_ms = dedup_window_ms_from_env()?;
    let stage = std::env::var(STAGE_VAR).ok();
    let consumer = DeadLetterConsumer::new(kinesis.clone(), db.clone(), tables.clone(), window_ms);
    let redriver = Redriver::new(kinesis, db, tables, stream, window_ms);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Invocation>| {
        let (consumer, redriver, stage) = (consumer.clone(), redriver.clone(), stage.clone());
        async move {
            let answer = match event.payload {
                Invocation::Queue(sqs) => {
                    let (response, _) = consumer.handle_sqs(sqs).await;
                    emit_not_archived(&response, stage.as_deref());
                    serde_json::to_value(response)?
                }
                Invocation::Redrive { redrive } => {
                    serde_json::to_value(redriver.redrive(&redrive).await?)?
                }
            };
            Ok::<_, Error>(answer)
        }
    }))
    .await
}

/// The invocation's count of messages not archived, on stdout, which CloudWatch Logs reads
/// as EMF. One write under stdout's lock, so no log line lands inside it; a failed write
/// loses the metric, never the response that keeps the messages queued.
fn emit_not_archived(response: &SqsBatchResponse, stage: Option<&str>) {
    let now = chrono::Utc::now().timestamp_millis();
    let line = not_archived_line(response, stage, now);
    if let Err(err) = writeln!(std::io::stdout().lock(), "{line}") {
        tracing::warn!(error = %err, "could not write the dead letters' not-archived metric");
    }
}
