//! What a redrive sends: each dead letter's record as the stream holds it, read back by its
//! shard and sequence number. The archive item only says where to look; its bytes and
//! partition key are for display. An item whose record the stream does not hold (trimmed by
//! its retention, or a forged item) sends nothing.

use std::collections::BTreeMap;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::Record;
use inventory_domain::arn::StreamArn;
use inventory_domain::dedup::shard_ordinal;
use inventory_domain::lineage::StreamLineage;
use inventory_domain::SequenceNumber;
use inventory_store::dead_letters::{sort_key, DeadLetterItem};

use crate::stream_read::{iterator_at, read_to, refuses_position};
use crate::{kinesis_err, DeadLetterError};

/// GetShardIterator calls one redrive makes per shard (Kinesis allows 5 a second): one
/// normally, one more per gap between the claimed records that the pages below do not cross,
/// and one per sequence number Kinesis refuses.
const MAX_SEEKS_PER_SHARD: usize = 5;
/// GetRecords pages read from each iterator (a dead-lettered range is at most 10,000
/// records, one page); past them the read seeks to the next record it wants.
const PAGES_PER_SEEK: usize = 2;

/// A dead letter with its record as the stream holds it.
#[derive(Debug, Clone)]
pub(crate) struct FromStream {
    pub item: DeadLetterItem,
    pub partition_key: String,
    pub data: Blob,
}

/// Where the items' records are.
#[derive(Debug, Default)]
pub(crate) struct ReadBack {
    pub found: Vec<FromStream>,
    /// Items whose record is not on the stream, each with why, in a user's words.
    pub missing: Vec<(DeadLetterItem, String)>,
    /// Items this redrive's reads did not reach: the next redrive looks again.
    pub unreached: Vec<DeadLetterItem>,
}

/// The items' sequence numbers on one shard, each with the items naming it (a forged item
/// may name another's).
type Wanted = BTreeMap<SequenceNumber, Vec<DeadLetterItem>>;

/// Reads back the records of `items` from `stream` (its name), as `listing` lists it.
pub(crate) async fn read_back(
    kinesis: &aws_sdk_kinesis::Client,
    stream: &str,
    listing: &StreamLineage,
    items: Vec<DeadLetterItem>,
) -> Result<ReadBack, DeadLetterError> {
    let mut out = ReadBack::default();
    let mut by_shard: BTreeMap<String, (StreamArn, Wanted)> = BTreeMap::new();
    for item in items {
        match where_to_look(stream, listing, &item) {
            Ok((arn, sequence)) => by_shard
                .entry(item.shard_id.clone())
                .or_insert_with(|| (arn, Wanted::new()))
                .1
                .entry(sequence)
                .or_default()
                .push(item),
            Err(why) => out.missing.push((item, why)),
        }
    }
    for (shard, (arn, wanted)) in by_shard {
        read_shard(kinesis, (&arn, &shard), wanted, &mut out).await?;
    }
    Ok(out)
}

/// The item's stream, as its ARN, and its sequence number, when the stream's listing can
/// hold its record; else why not.
fn where_to_look(
    stream: &str,
    listing: &StreamLineage,
    item: &DeadLetterItem,
) -> Result<(StreamArn, SequenceNumber), String> {
    let arn = StreamArn::parse(&item.event_source_arn).map_err(|e| {
        format!("not on the stream: its stream ARN `{}` is not one ({e}); a forged or corrupted archive item republishes nothing", item.event_source_arn)
    })?;
    if arn.stream_name() != stream {
        return Err(format!(
            "not on the stream: it names the stream `{}`, and redrive publishes to `{stream}` only; a forged or corrupted archive item republishes nothing",
            arn.stream_name()
        ));
    }
    let sequence = SequenceNumber::parse(&item.sequence_number).map_err(|e| {
        format!("not on the stream: {e}; a forged or corrupted archive item republishes nothing")
    })?;
    let ordinal = shard_ordinal(&item.shard_id);
    let shard = listing
        .shard(ordinal)
        .filter(|_| inventory_domain::dedup::shard_id(ordinal) == item.shard_id);
    match shard {
        None => Err(format!(
            "not on the stream: `{stream}` has no shard `{}` (gone past the stream's retention, or a forged archive item); republish the event from its producer if it was real",
            item.shard_id
        )),
        Some(shard) if !shard.holds_sequence(&sequence) => Err(format!(
            "not on the stream: {} has no sequence number {} (a forged or corrupted archive item); republish the event from its producer if it was real",
            item.shard_id, item.sequence_number
        )),
        Some(_) => Ok((arn, sequence)),
    }
}

/// Reads one shard from its smallest wanted sequence number forward, until past the largest
/// or the seeks run out, sorting `wanted` into `out`.
async fn read_shard(
    kinesis: &aws_sdk_kinesis::Client,
    (arn, shard): (&StreamArn, &str),
    mut wanted: Wanted,
    out: &mut ReadBack,
) -> Result<(), DeadLetterError> {
    for _ in 0..MAX_SEEKS_PER_SHARD {
        let (Some(first), Some(last)) = (
            wanted.keys().next().cloned(),
            wanted.keys().next_back().cloned(),
        ) else {
            return Ok(());
        };
        let iterator = match iterator_at(kinesis, arn.stream_name(), shard, &first).await {
            Ok(iterator) => iterator,
            Err(e) if refuses_position(&e) => {
                let why = format!("not on the stream: Kinesis knows no sequence number {first} on {shard} (a forged or corrupted archive item); republish the event from its producer if it was real");
                missing(&mut wanted, &first, &why, out);
                continue;
            }
            Err(e) => return Err(kinesis_err("GetShardIterator", e)),
        };
        let keep = |s: &SequenceNumber| wanted.contains_key(s);
        let read = read_to(kinesis, iterator, &last, PAGES_PER_SEEK, keep).await?;
        for record in &read.records {
            let Ok(sequence) = SequenceNumber::parse(record.sequence_number()) else {
                continue;
            };
            for item in wanted.remove(&sequence).unwrap_or_default() {
                match as_on_stream(&item, record, arn) {
                    Ok(partition_key) => out.found.push(FromStream {
                        item,
                        partition_key,
                        data: record.data().clone(),
                    }),
                    Err(why) => out.missing.push((item, why)),
                }
            }
        }
        // What the read passed over without finding is not on the shard.
        let passed: Vec<SequenceNumber> = wanted
            .keys()
            .filter(|s| read.complete || read.seen_to.as_ref().is_some_and(|to| *s <= to))
            .cloned()
            .collect();
        for sequence in passed {
            let why = format!("not on the stream: {shard} holds no record with sequence number {sequence} (trimmed by the stream's retention, or a forged archive item); republish the event from its producer if it was real");
            missing(&mut wanted, &sequence, &why, out);
        }
    }
    out.unreached.extend(wanted.into_values().flatten());
    Ok(())
}

/// The items naming `sequence`, missing from the stream for `why`.
fn missing(wanted: &mut Wanted, sequence: &SequenceNumber, why: &str, out: &mut ReadBack) {
    for item in wanted.remove(sequence).unwrap_or_default() {
        out.missing.push((item, why.to_owned()));
    }
}

/// The stream's `record` at the item's sequence number, when it is the record the item
/// archives (its id is a function of the record: arrival and event id): its partition key.
/// Archived bytes or a partition key that differ from the stream's are logged: the stream's
/// are sent.
fn as_on_stream(item: &DeadLetterItem, record: &Record, arn: &StreamArn) -> Result<String, String> {
    let on_stream = inventory_stream::pipe_record(record, &item.shard_id, arn);
    let id = sort_key(&on_stream);
    if id != item.sk {
        return Err(format!("not on the stream: the record at its sequence number is another one (id {id}): a forged or corrupted archive item republishes nothing"));
    }
    let bytes_differ = item
        .data_base64
        .as_ref()
        .is_some_and(|d| *d != on_stream.data);
    if bytes_differ || item.partition_key != on_stream.partition_key {
        tracing::warn!(id = %item.sk, bytes_differ, archived_partition_key = %item.partition_key, partition_key = %on_stream.partition_key, "the archived dead letter differs from its record on the stream (a forged or corrupted archive item); the stream's record is what is republished");
    }
    Ok(on_stream.partition_key)
}
