//! Records read back from one shard by sequence number: the consumer reads a dead-lettered
//! range to archive it, a redrive reads the records it republishes (never the archive's copy
//! of them). One iterator per read and pages forward from it: Kinesis allows 5
//! GetShardIterator and 5 GetRecords calls a second per shard.

use aws_sdk_kinesis::error::SdkError;
use aws_sdk_kinesis::operation::get_shard_iterator::GetShardIteratorError;
use aws_sdk_kinesis::types::{Record, ShardIteratorType};
use inventory_domain::SequenceNumber;

use crate::{kinesis_err, DeadLetterError};

/// What one read of a shard found.
#[derive(Debug, Default)]
pub(crate) struct ShardRead {
    /// The records the read kept, in stream order.
    pub records: Vec<Record>,
    /// The last sequence number the read saw up to `end`: nothing between where it started
    /// and this is on the shard but what it saw.
    pub seen_to: Option<SequenceNumber>,
    /// Whether the read passed `end`, reached the shard's tip or read a closed shard to its
    /// end: nothing up to `end` is on the shard but what it saw. False when it stopped at its
    /// page bound.
    pub complete: bool,
}

/// An iterator at the record with sequence number `start` of `shard_id` (or the first after
/// it, when the shard has none with it). Kinesis refuses a number that is not its shard's
/// with `InvalidArgumentException`: see [`refuses_position`].
pub(crate) async fn iterator_at(
    kinesis: &aws_sdk_kinesis::Client,
    stream: &str,
    shard_id: &str,
    start: &SequenceNumber,
) -> Result<Option<String>, SdkError<GetShardIteratorError>> {
    Ok(kinesis
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard_id)
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .starting_sequence_number(start.as_str())
        .send()
        .await?
        .shard_iterator)
}

/// Whether Kinesis refused the position itself (a sequence number that did not come from the
/// shard), not the call (throttling, an outage).
pub(crate) fn refuses_position(error: &SdkError<GetShardIteratorError>) -> bool {
    error
        .as_service_error()
        .is_some_and(GetShardIteratorError::is_invalid_argument_exception)
}

/// Pages forward from `iterator` up to the record with sequence number `end`, keeping the
/// records `keep` wants, in at most `max_calls` GetRecords calls.
pub(crate) async fn read_to(
    kinesis: &aws_sdk_kinesis::Client,
    iterator: Option<String>,
    end: &SequenceNumber,
    max_calls: usize,
    keep: impl Fn(&SequenceNumber) -> bool,
) -> Result<ShardRead, DeadLetterError> {
    let mut read = ShardRead::default();
    let mut iterator = iterator;
    for _ in 0..max_calls {
        // No iterator: a closed shard read to its end.
        let Some(it) = iterator.take() else {
            read.complete = true;
            return Ok(read);
        };
        let page = kinesis
            .get_records()
            .shard_iterator(it)
            .limit(10_000)
            .send()
            .await
            .map_err(|e| kinesis_err("GetRecords", e))?;
        for r in page.records() {
            let Ok(sequence) = SequenceNumber::parse(r.sequence_number()) else {
                continue;
            };
            if sequence > *end {
                read.complete = true;
                return Ok(read);
            }
            if keep(&sequence) {
                read.records.push(r.clone());
            }
            read.seen_to = Some(sequence);
        }
        if page.records().is_empty() && page.millis_behind_latest() == Some(0) {
            read.complete = true;
            return Ok(read);
        }
        iterator = page.next_shard_iterator;
    }
    read.complete = iterator.is_none();
    Ok(read)
}
