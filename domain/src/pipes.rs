//! The payload an EventBridge Pipe with a Kinesis source sends a Lambda target: a top-level
//! JSON array of flat records (no `Records` wrapper, no nested `kinesis` object), and the
//! partial-batch-failure response it understands.

use serde::{Deserialize, Serialize};

/// One Kinesis record as a Pipe delivers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipeRecord {
    #[serde(default = "schema_version")]
    pub kinesis_schema_version: String,
    pub partition_key: String,
    pub sequence_number: String,
    /// The record's bytes, base64.
    pub data: String,
    /// Seconds since the epoch, with a fraction (parsed as f64: `aws_lambda_events`'
    /// `SecondTimestamp` misreads fractions).
    pub approximate_arrival_timestamp: f64,
    #[serde(default = "event_source")]
    pub event_source: String,
    #[serde(default = "schema_version")]
    pub event_version: String,
    /// `shardId-…:sequenceNumber`; what a partial batch failure names.
    #[serde(rename = "eventID")]
    pub event_id: String,
    #[serde(default = "event_name")]
    pub event_name: String,
    #[serde(default)]
    pub invoke_identity_arn: String,
    #[serde(default)]
    pub aws_region: String,
    #[serde(rename = "eventSourceARN", default)]
    pub event_source_arn: String,
}

fn schema_version() -> String {
    "1.0".into()
}
fn event_source() -> String {
    "aws:kinesis".into()
}
fn event_name() -> String {
    "aws:kinesis:record".into()
}

impl PipeRecord {
    /// The shard the record came from, taken from its `eventID`.
    pub fn shard_id(&self) -> &str {
        self.event_id
            .split_once(':')
            .map_or(self.event_id.as_str(), |(shard, _)| shard)
    }

    /// Arrival time in whole milliseconds since the epoch.
    pub fn arrival_millis(&self) -> i64 {
        (self.approximate_arrival_timestamp * 1000.0).round() as i64
    }
}

/// `{"batchItemFailures":[{"itemIdentifier":…}]}`. For a Kinesis source the identifier is
/// the record's `eventID` (EventBridge user guide, "Amazon EventBridge Pipes batching and
/// concurrency", partial batch failure). An empty list means the whole batch succeeded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchResponse {
    pub batch_item_failures: Vec<BatchItemFailure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchItemFailure {
    pub item_identifier: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../../processor/tests/fixtures/pipes-kinesis-batch.json");

    #[test]
    fn reads_the_pipes_fixture() {
        let records: Vec<PipeRecord> = serde_json::from_str(FIXTURE).unwrap();
        assert_eq!(records.len(), 1);
        let r = &records[0];
        assert_eq!(r.partition_key, "P98765");
        assert_eq!(r.shard_id(), "shardId-000000000000");
        assert_eq!(r.arrival_millis(), 1_694_433_600_123);
        assert_eq!(
            r.event_source_arn,
            "arn:aws:kinesis:us-east-1:123456789012:stream/inventory-events"
        );
    }

    #[test]
    fn round_trips_with_the_wire_names() {
        let records: Vec<PipeRecord> = serde_json::from_str(FIXTURE).unwrap();
        let back: serde_json::Value = serde_json::to_value(&records).unwrap();
        let orig: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
        assert_eq!(back, orig);
    }

    #[test]
    fn failure_response_has_the_wire_shape() {
        let resp = BatchResponse {
            batch_item_failures: vec![BatchItemFailure {
                item_identifier: "shardId-0:1".into(),
            }],
        };
        assert_eq!(
            serde_json::to_string(&resp).unwrap(),
            r#"{"batchItemFailures":[{"itemIdentifier":"shardId-0:1"}]}"#
        );
    }
}
