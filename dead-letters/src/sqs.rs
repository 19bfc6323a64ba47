//! The Lambda's handler: an SQS batch of dead-letter messages, one range each. A message
//! that cannot be archived now is reported as a batch item failure, so SQS keeps it and
//! delivers it again (the queue's age alarm says when one waits too long).

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
