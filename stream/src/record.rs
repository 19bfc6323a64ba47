//! A Kinesis record read with `GetRecords`, in the shape an EventBridge Pipe hands a Lambda
//! target: what the local Pipe, the replay and the dead-letter archive all send the
//! processor's decoder.

use aws_sdk_kinesis::types::Record;
use base64::Engine as _;
use inventory_domain::arn::StreamArn;
use inventory_domain::PipeRecord;

/// `record`, read from shard `shard_id` of `stream`, as a Pipe delivers it. The region
/// comes from the stream's ARN; the invoking identity is the Pipe's role as the local stack
/// names it, in the stream's account (nothing downstream reads it).
pub fn pipe_record(record: &Record, shard_id: &str, stream: &StreamArn) -> PipeRecord {
    let arrival = record
        .approximate_arrival_timestamp()
        .map_or(0.0, |t| t.as_secs_f64());
    PipeRecord {
        invoke_identity_arn: format!("arn:aws:iam::{}:role/inventory-pipe-role", stream.account()),
        ..PipeRecord::new(
            stream,
            shard_id,
            record.sequence_number(),
            record.partition_key().unwrap_or_default(),
            base64::engine::general_purpose::STANDARD.encode(record.data().as_ref()),
            arrival,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_kinesis::primitives::{Blob, DateTime};

    #[test]
    fn a_kinesis_record_maps_to_the_pipes_shape() {
        let stream =
            StreamArn::parse("arn:aws:kinesis:eu-west-1:123456789012:stream/inventory-events")
                .unwrap();
        let record = Record::builder()
            .sequence_number("4959")
            .partition_key("P1")
            .data(Blob::new("{}"))
            .approximate_arrival_timestamp(DateTime::from_millis(1_694_433_600_500))
            .build()
            .unwrap();
        let r = pipe_record(&record, "shardId-000000000002", &stream);
        assert_eq!(r.event_id, "shardId-000000000002:4959");
        assert_eq!(r.sequence_number, "4959");
        assert_eq!(r.partition_key, "P1");
        assert_eq!(r.data, "e30=");
        assert_eq!(r.arrival_millis(), 1_694_433_600_500);
        assert_eq!(r.aws_region, "eu-west-1");
        assert_eq!(
            r.invoke_identity_arn,
            "arn:aws:iam::123456789012:role/inventory-pipe-role"
        );
        assert_eq!(r.event_source_arn, stream.to_string());
        assert_eq!(
            (
                r.kinesis_schema_version.as_str(),
                r.event_source.as_str(),
                r.event_name.as_str()
            ),
            ("1.0", "aws:kinesis", "aws:kinesis:record")
        );
    }
}
