//! The local stand-in for the Pipe's SQS dead-letter queue and the Lambda it triggers: the
//! local Pipe writes each dead letter to its table (`DLQ#<pipe>`); this polls for the ones
//! not yet consumed, hands them to the dead-letter consumer as the SQS event AWS would send
//! (one message per dead letter, the body the Pipe's message, its reason as the
//! `ERROR_MESSAGE` attribute), and marks consumed the ones it archived, as SQS deletes a
//! message the function did not report as failed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::SqsEvent;
use aws_sdk_dynamodb::types::AttributeValue;
use inventory_dead_letters::DeadLetterConsumer;

use crate::pipe::{dead_letter_items, dead_letter_pk};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often the queue is polled (SQS long-polls; a second is well inside what a user waits).
const POLL: Duration = Duration::from_millis(500);
const CONSUMED_AT: &str = "consumed_at";

#[derive(Debug, Default)]
pub struct QueueStats {
    /// Dead letters archived (messages deleted).
    pub messages_archived: AtomicU64,
    /// Records read back from the stream and archived, over those messages.
    pub records_archived: AtomicU64,
    /// Deliveries the consumer reported as failed (kept and retried).
    pub failures: AtomicU64,
}

pub struct DeadLetterQueue {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    pub stats: Arc<QueueStats>,
}

impl DeadLetterQueue {
    pub fn start(
        db: aws_sdk_dynamodb::Client,
        table: String,
        pipe: String,
        consumer: DeadLetterConsumer,
    ) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let stats = Arc::new(QueueStats::default());
        let task = {
            let stats = stats.clone();
            tokio::spawn(async move {
                loop {
                    if let Err(e) = poll_once(&db, &table, &pipe, &consumer, &stats).await {
                        tracing::warn!(error = %e, "could not read the local dead-letter queue; retrying");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(POLL) => {}
                        _ = stopped.changed() => return,
                    }
                }
            })
        };
        Self { stop, task, stats }
    }

    /// Stops polling and waits for the task to end.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn poll_once(
    db: &aws_sdk_dynamodb::Client,
    table: &str,
    pipe: &str,
    consumer: &DeadLetterConsumer,
    stats: &QueueStats,
) -> Result<(), String> {
    let items = dead_letter_items(db, table, pipe)
        .await
        .map_err(|e| e.to_string())?;
    for item in items.into_iter().filter(|i| !i.contains_key(CONSUMED_AT)) {
        let text = |name: &str| {
            item.get(name)
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default()
        };
        let (sk, body, reason) = (text("sk"), text("batch_info"), text("reason"));
        // Exactly what SQS hands a Lambda: read through the same types the function uses.
        let event: SqsEvent = serde_json::from_value(serde_json::json!({
            "Records": [{
                "messageId": sk,
                "receiptHandle": sk,
                "body": body,
                "attributes": {},
                "messageAttributes": {
                    "ERROR_MESSAGE": {"stringValue": reason, "dataType": "String",
                                      "stringListValues": [], "binaryListValues": []}
                },
                "eventSource": "aws:sqs",
                "eventSourceARN": format!("arn:aws:sqs:us-east-1:000000000000:{pipe}-dlq"),
                "awsRegion": "us-east-1",
            }]
        }))
        .map_err(|e| format!("building the SQS event: {e}"))?;
        let (response, reports) = consumer.handle_sqs(event).await;
        if !response.batch_item_failures.is_empty() {
            stats.failures.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        db.update_item()
            .table_name(table)
            .key("pk", AttributeValue::S(dead_letter_pk(pipe)))
            .key("sk", AttributeValue::S(sk))
            .update_expression("SET #consumed = :now")
            .expression_attribute_names("#consumed", CONSUMED_AT)
            .expression_attribute_values(":now", AttributeValue::S(chrono::Utc::now().to_rfc3339()))
            .send()
            .await
            .map_err(|e| aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())?;
        stats.messages_archived.fetch_add(1, Ordering::Relaxed);
        let records: u64 = reports.iter().map(|r| r.records).sum();
        stats.records_archived.fetch_add(records, Ordering::Relaxed);
    }
    Ok(())
}
