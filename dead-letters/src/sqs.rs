//! The Lambda's handler: an SQS batch of dead-letter messages, one range each. A message
//! that cannot be archived now is reported as a batch item failure, so SQS keeps it and
//! delivers it again, then parks it after 5 receives. The Lambda counts these failures in
//! the [`crate::metrics::NOT_ARCHIVED`] metric, since the function itself does not fail.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use inventory_domain::dead_letter::parse_dead_letter;

use crate::{ArchiveReport, DeadLetterConsumer};

/// The message attribute Pipes sets to why it gave up (used when the body has no reason).
const ERROR_MESSAGE_ATTRIBUTE: &str = "ERROR_MESSAGE";

impl DeadLetterConsumer {
    /// Archives each message's range; the response names the messages to keep.
    pub async fn handle_sqs(&self, event: SqsEvent) -> (SqsBatchResponse, Vec<ArchiveReport>) {
        let mut response = SqsBatchResponse::default();
        let mut reports = Vec::new();
        for message in event.records {
            let id = message.message_id.clone().unwrap_or_default();
            let reason = message
                .message_attributes
                .get(ERROR_MESSAGE_ATTRIBUTE)
                .and_then(|a| a.string_value.as_deref());
            let body = message.body.as_deref().unwrap_or_default();
            let outcome = match parse_dead_letter(body, reason) {
                Ok(range) => self.archive(&range).await,
                Err(e) => Err(e.into()),
            };
            match outcome {
                Ok(report) => reports.push(report),
                Err(e) => {
                    tracing::error!(message_id = %id, error = %e, "dead letter not archived; it stays in the queue");
                    response.add_failure(id);
                }
            }
        }
        (response, reports)
    }
}

#[cfg(test)]
mod tests {
    use aws_lambda_events::sqs::SqsMessage;
    use inventory_store::Tables;

    use super::*;
    use crate::metrics::not_archived;

    /// A consumer whose clients are never called: every message below fails to parse first.
    fn offline_consumer() -> DeadLetterConsumer {
        let kinesis = aws_sdk_kinesis::Client::from_conf(
            aws_sdk_kinesis::Config::builder()
                .behavior_version(aws_sdk_kinesis::config::BehaviorVersion::latest())
                .region(aws_sdk_kinesis::config::Region::new("us-east-1"))
                .build(),
        );
        let db = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::Config::builder()
                .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
                .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
                .build(),
        );
        let tables = Tables {
            inventory: "inventory".into(),
            events: "events".into(),
        };
        DeadLetterConsumer::new(kinesis, db, tables, 1_000)
    }

    fn message(id: &str, body: &str) -> SqsMessage {
        let mut message = SqsMessage::default();
        message.message_id = Some(id.into());
        message.body = Some(body.into());
        message
    }

    #[tokio::test]
    async fn messages_that_cannot_be_archived_are_handed_back_and_counted() {
        let mut event = SqsEvent::default();
        event.records = vec![message("m1", "not json"), message("m2", "{}")];
        let (response, reports) = offline_consumer().handle_sqs(event).await;
        let failed: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["m1", "m2"]);
        assert!(reports.is_empty());
        assert_eq!(not_archived(&response), 2);
    }

    #[tokio::test]
    async fn an_empty_batch_leaves_nothing_unarchived() {
        let (response, _) = offline_consumer().handle_sqs(SqsEvent::default()).await;
        assert_eq!(not_archived(&response), 0);
    }
}
