//! The Pipe's dead letters, kept and put back.
//!
//! A Pipe with a Kinesis source dead-letters a *range* of a shard (`KinesisBatchInfo`), not
//! the records. [`archive`] reads the range back from the stream while it still holds it and
//! writes each record (data, identity, why) to the events table
//! ([`inventory_store::dead_letters`]), marking the records the shard log shows were
//! processed before the Pipe gave up. [`sqs`] is the Lambda's handler: one SQS message per
//! range. [`redrive`] reads pending records back from the stream by their sequence numbers and
//! republishes the stream's partition key and bytes (the archive's copy is for display only),
//! so the same event ids: the processor's duplicate detection keeps exactly-once.
//!
//! The same code runs in AWS (SQS-triggered Lambda, API Lambda) and locally, where the local
//! stack hands it the local Pipe's dead letters as SQS messages.

pub mod archive;
pub mod metrics;
mod read_back;
pub mod redrive;
pub mod sqs;
mod stream_read;

pub use archive::{ArchiveReport, DeadLetterConsumer};
pub use redrive::Redriver;

/// What the dead-letter Lambda is invoked with: its queue's messages, or the API's redrive.
#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
pub enum Invocation {
    Redrive {
        redrive: inventory_domain::api::RedriveRequest,
    },
    Queue(aws_lambda_events::sqs::SqsEvent),
}

/// Failures reading a dead-lettered range back or writing its archive; the SQS message stays
/// in the queue and is retried.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error(transparent)]
    Message(#[from] inventory_domain::dead_letter::DeadLetterError),
    #[error("Kinesis {operation} failed: {message}. Check the stream exists and the role allows {operation}; the message stays in the queue and is retried")]
    Kinesis {
        operation: &'static str,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] inventory_store::StoreError),
    #[error(transparent)]
    Stream(#[from] inventory_stream::StreamError),
    #[error("environment variable {name}: {message}")]
    Setting { name: &'static str, message: String },
}

pub(crate) fn kinesis_err<E: std::error::Error>(operation: &'static str, e: E) -> DeadLetterError {
    DeadLetterError::Kinesis {
        operation,
        message: aws_sdk_kinesis::error::DisplayErrorContext(e).to_string(),
    }
}

/// The dedup window the processor runs with (`DEDUP_WINDOW_SECONDS`, default 900 s): the
/// consumer reads the shard log with the same window.
pub fn dedup_window_ms_from_env() -> Result<i64, DeadLetterError> {
    const NAME: &str = "DEDUP_WINDOW_SECONDS";
    match std::env::var(NAME) {
        Err(_) => Ok(inventory_domain::dedup::DEFAULT_WINDOW_MS),
        Ok(raw) => inventory_domain::dedup::window_ms_from_seconds(&raw).ok_or_else(|| DeadLetterError::Setting {
                name: NAME,
                message: format!("`{raw}` is not a whole number of seconds from 1 to 31536000; set it to the processor's value"),
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invocation_is_the_apis_redrive_or_the_queues_messages() {
        let redrive: Invocation =
            serde_json::from_str(r#"{"redrive": {"ids": ["a", "b"]}}"#).unwrap();
        assert!(matches!(redrive, Invocation::Redrive { redrive } if redrive.ids == ["a", "b"]));
        let queue: Invocation = serde_json::from_str(
            r#"{"Records": [{"messageId": "m1", "body": "{}", "messageAttributes": {}, "attributes": {}}]}"#,
        )
        .unwrap();
        assert!(
            matches!(queue, Invocation::Queue(e) if e.records[0].message_id.as_deref() == Some("m1"))
        );
    }
}
