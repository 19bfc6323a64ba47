//! The dead-letter message a Pipe sends for a Kinesis source: not the records, only the
//! range of the shard they were read from (`KinesisBatchInfo`), which the dead-letter
//! consumer reads back from the stream while it still holds them. Pure parsing.

use serde::{Deserialize, Serialize};

use crate::arn::{ArnError, StreamArn};
use crate::SequenceNumber;

/// The part of a dead-letter message that names the records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KinesisBatchInfo {
    pub shard_id: String,
    pub start_sequence_number: String,
    pub end_sequence_number: String,
    /// An RFC 3339 string from AWS; epoch seconds from some senders: kept as given.
    #[serde(default)]
    pub approximate_arrival_of_first_record: Option<serde_json::Value>,
    #[serde(default)]
    pub approximate_arrival_of_last_record: Option<serde_json::Value>,
    #[serde(default)]
    pub batch_size: Option<u64>,
    pub stream_arn: String,
}

/// A dead-lettered range, checked: what the consumer reads back from the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetteredRange {
    pub info: KinesisBatchInfo,
    /// `info.stream_arn`, parsed.
    pub stream: StreamArn,
    pub start: SequenceNumber,
    pub end: SequenceNumber,
    /// Why the Pipe gave up, when the message says (the local Pipe always does; in AWS the
    /// reason is in the queue message's attributes, passed in by the consumer).
    pub reason: String,
    pub attempts: Option<u64>,
}

impl DeadLetteredRange {
    /// The stream's name, from its ARN (`arn:…:stream/<name>`).
    pub fn stream_name(&self) -> &str {
        self.stream.stream_name()
    }

    /// Whether the record with sequence number `sequence` is inside the range.
    pub fn contains(&self, sequence: &SequenceNumber) -> bool {
        *sequence >= self.start && *sequence <= self.end
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeadLetterError {
    #[error("the dead-letter message is not JSON with a KinesisBatchInfo object ({0}); it is left in the queue: read it there and republish its range by hand (docs/deploy.md, \"Dead letters\")")]
    NotABatchInfo(String),
    #[error("the dead-letter message's {field} `{value}` is not a Kinesis sequence number; it is left in the queue: read it there (docs/deploy.md, \"Dead letters\")")]
    BadSequence { field: &'static str, value: String },
    #[error("the dead-letter message's range ends ({end}) before it starts ({start}); it is left in the queue (docs/deploy.md, \"Dead letters\")")]
    EmptyRange { start: String, end: String },
    #[error("the dead-letter message's streamArn: {0}; it is left in the queue (docs/deploy.md, \"Dead letters\")")]
    BadStreamArn(#[from] ArnError),
}

#[derive(Deserialize)]
struct Message {
    #[serde(rename = "KinesisBatchInfo")]
    info: KinesisBatchInfo,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    attempts: Option<u64>,
}

/// Parses a dead-letter message body. `attribute_reason` is the reason the queue message
/// carries beside the body (Pipes' `ERROR_MESSAGE` attribute), used when the body has none.
pub fn parse_dead_letter(
    body: &str,
    attribute_reason: Option<&str>,
) -> Result<DeadLetteredRange, DeadLetterError> {
    let message: Message =
        serde_json::from_str(body).map_err(|e| DeadLetterError::NotABatchInfo(e.to_string()))?;
    let sequence = |field: &'static str, value: &str| {
        SequenceNumber::parse(value).map_err(|_| DeadLetterError::BadSequence {
            field,
            value: value.chars().take(80).collect(),
        })
    };
    let stream = StreamArn::parse(&message.info.stream_arn)?;
    let start = sequence("startSequenceNumber", &message.info.start_sequence_number)?;
    let end = sequence("endSequenceNumber", &message.info.end_sequence_number)?;
    if end < start {
        return Err(DeadLetterError::EmptyRange {
            start: message.info.start_sequence_number,
            end: message.info.end_sequence_number,
        });
    }
    let reason = message
        .reason
        .filter(|r| !r.trim().is_empty())
        .or_else(|| attribute_reason.map(str::to_owned))
        .unwrap_or_else(|| "the Pipe exhausted its retries or the records' maximum age".into());
    Ok(DeadLetteredRange {
        info: message.info,
        stream,
        start,
        end,
        reason,
        attempts: message.attempts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn body(start: &str, end: &str) -> String {
        serde_json::json!({
            "KinesisBatchInfo": {
                "shardId": "shardId-000000000001",
                "startSequenceNumber": start,
                "endSequenceNumber": end,
                "approximateArrivalOfFirstRecord": "2026-11-30T10:00:00.000Z",
                "approximateArrivalOfLastRecord": "2026-11-30T10:00:01.000Z",
                "batchSize": 3,
                "streamArn": "arn:aws:kinesis:us-east-1:123456789012:stream/inventory-events-dev",
            },
            "reason": "target failed",
            "attempts": 4,
        })
        .to_string()
    }

    const S1: &str = "49654321000000000000000000000000000000000000000000000001";
    const S2: &str = "49654321000000000000000000000000000000000000000000000009";

    #[test]
    fn a_pipes_message_names_its_range_stream_and_reason() {
        let range = parse_dead_letter(&body(S1, S2), None).unwrap();
        assert_eq!(range.info.shard_id, "shardId-000000000001");
        assert_eq!(range.stream_name(), "inventory-events-dev");
        assert_eq!(range.reason, "target failed");
        assert_eq!(range.attempts, Some(4));
        assert!(range.contains(&SequenceNumber::parse(S1).unwrap()));
        assert!(range.contains(&SequenceNumber::parse(S2).unwrap()));
        let after = "49654321000000000000000000000000000000000000000000000010";
        assert!(!range.contains(&SequenceNumber::parse(after).unwrap()));
    }

    #[test]
    fn arrival_times_as_epoch_seconds_are_accepted() {
        let mut value: serde_json::Value = serde_json::from_str(&body(S1, S2)).unwrap();
        value["KinesisBatchInfo"]["approximateArrivalOfFirstRecord"] =
            serde_json::json!(1796053632.5);
        assert!(parse_dead_letter(&value.to_string(), None).is_ok());
    }

    #[test]
    fn the_attribute_reason_is_used_when_the_body_has_none() {
        let mut value: serde_json::Value = serde_json::from_str(&body(S1, S1)).unwrap();
        value.as_object_mut().unwrap().remove("reason");
        let range = parse_dead_letter(&value.to_string(), Some("Lambda timed out")).unwrap();
        assert_eq!(range.reason, "Lambda timed out");
    }

    #[test]
    fn broken_messages_are_refused_with_what_is_wrong() {
        assert!(matches!(
            parse_dead_letter("{}", None),
            Err(DeadLetterError::NotABatchInfo(_))
        ));
        assert!(matches!(
            parse_dead_letter(&body("12x", S2), None),
            Err(DeadLetterError::BadSequence {
                field: "startSequenceNumber",
                ..
            })
        ));
        assert!(matches!(
            parse_dead_letter(&body(S2, S1), None),
            Err(DeadLetterError::EmptyRange { .. })
        ));
        let mut value: serde_json::Value = serde_json::from_str(&body(S1, S2)).unwrap();
        value["KinesisBatchInfo"]["streamArn"] = "inventory-events-dev".into();
        assert!(matches!(
            parse_dead_letter(&value.to_string(), None),
            Err(DeadLetterError::BadStreamArn(_))
        ));
    }

    proptest! {
        #[test]
        fn any_body_parses_or_is_refused_without_panicking(body in ".{0,300}") {
            let _ = parse_dead_letter(&body, None);
        }

        #[test]
        fn a_range_contains_exactly_what_lies_between_its_ends(a in 0u64..1_000_000, b in 0u64..1_000_000, x in 0u64..1_000_000) {
            let (lo, hi) = (a.min(b), a.max(b));
            let seq = |n: u64| format!("4965{n:052}");
            let range = parse_dead_letter(&body(&seq(lo), &seq(hi)), None).unwrap();
            let inside = range.contains(&SequenceNumber::parse(&seq(x)).unwrap());
            prop_assert_eq!(inside, lo <= x && x <= hi);
        }
    }
}
