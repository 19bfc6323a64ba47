//! Kinesis helpers: batched puts, the shards as ListShards gives them, and reshards that
//! wait (bounded) until the stream is ACTIVE with the new shards.

use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ScalingType, StreamStatus};
use aws_sdk_kinesis::Client;
use inventory_domain::SequenceNumber;

use super::wait::{wait_for, wait_until_async, PATIENCE};

/// Sends each call's entries with one PutRecords (ferrokinesis stores a call in order)
/// and checks none was refused.
pub async fn put_calls(
    kinesis: &Client,
    stream: &str,
    calls: impl IntoIterator<Item = Vec<PutRecordsRequestEntry>>,
) {
    for entries in calls {
        let out = kinesis
            .put_records()
            .stream_name(stream)
            .set_records(Some(entries))
            .send()
            .await
            .unwrap();
        assert_eq!(out.failed_record_count(), Some(0));
    }
}

/// A shard as ListShards gives it, read straight from the emulator.
#[derive(Debug, Clone)]
pub struct Listed {
    pub id: String,
    pub number: u64,
    pub parent: Option<String>,
    pub adjacent_parent: Option<String>,
    pub range: (u128, u128),
    pub closed: bool,
    pub starting_sequence: SequenceNumber,
}

impl Listed {
    pub fn overlaps(&self, other: &Listed) -> bool {
        self.range.0 <= other.range.1 && other.range.0 <= self.range.1
    }
}

pub async fn listed(kinesis: &Client, stream: &str) -> Vec<Listed> {
    let out = kinesis
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .unwrap();
    assert!(out.next_token().is_none(), "one page");
    out.shards()
        .iter()
        .map(|sh| {
            let range = sh.hash_key_range().unwrap();
            let seqs = sh.sequence_number_range().unwrap();
            Listed {
                id: sh.shard_id().to_owned(),
                number: inventory_local::kinesis::shard_number(sh.shard_id()).unwrap(),
                parent: sh.parent_shard_id().map(str::to_owned),
                adjacent_parent: sh.adjacent_parent_shard_id().map(str::to_owned),
                range: (
                    range.starting_hash_key().parse().unwrap(),
                    range.ending_hash_key().parse().unwrap(),
                ),
                closed: seqs.ending_sequence_number().is_some(),
                starting_sequence: SequenceNumber::parse(seqs.starting_sequence_number()).unwrap(),
            }
        })
        .collect()
}

/// The open shards, in hash-key order.
pub async fn open_shards(kinesis: &Client, stream: &str) -> Vec<Listed> {
    let mut open: Vec<Listed> = listed(kinesis, stream)
        .await
        .into_iter()
        .filter(|l| !l.closed)
        .collect();
    open.sort_by_key(|l| l.range.0);
    open
}

#[derive(Debug, Clone, Copy)]
pub enum Reshard {
    /// UpdateShardCount (uniform scaling) to this many shards.
    Count(i32),
    /// SplitShard the first open shard (in hash-key order) in the middle of its range.
    SplitFirst,
    /// MergeShards the first two adjacent open shards.
    MergeFirst,
}

/// Reshards and waits until the stream is ACTIVE again with the new open shards.
pub async fn reshard(kinesis: &Client, stream: &str, how: Reshard) {
    let open = open_shards(kinesis, stream).await;
    let want = match how {
        Reshard::Count(n) => {
            kinesis
                .update_shard_count()
                .stream_name(stream)
                .target_shard_count(n)
                .scaling_type(ScalingType::UniformScaling)
                .send()
                .await
                .unwrap();
            usize::try_from(n).unwrap()
        }
        Reshard::SplitFirst => {
            let (start, end) = open[0].range;
            kinesis
                .split_shard()
                .stream_name(stream)
                .shard_to_split(&open[0].id)
                .new_starting_hash_key((start + (end - start) / 2 + 1).to_string())
                .send()
                .await
                .unwrap();
            open.len() + 1
        }
        Reshard::MergeFirst => {
            let pair = open
                .windows(2)
                .find(|w| w[0].range.1 + 1 == w[1].range.0)
                .expect("two adjacent open shards");
            kinesis
                .merge_shards()
                .stream_name(stream)
                .shard_to_merge(&pair[0].id)
                .adjacent_shard_to_merge(&pair[1].id)
                .send()
                .await
                .unwrap();
            open.len() - 1
        }
    };
    let what = format!("the stream to be ACTIVE with {want} open shards after {how:?}");
    wait_until_async(&what, PATIENCE, || async move {
        is_active(kinesis, stream).await && open_shards(kinesis, stream).await.len() == want
    })
    .await;
}

/// Whether the stream is ACTIVE (false while it is created, updated or deleted, or gone).
pub async fn is_active(kinesis: &Client, stream: &str) -> bool {
    let Ok(summary) = kinesis
        .describe_stream_summary()
        .stream_name(stream)
        .send()
        .await
    else {
        return false;
    };
    summary
        .stream_description_summary()
        .is_some_and(|s| s.stream_status() == &StreamStatus::Active)
}

/// Deletes the stream and waits until it is gone.
pub async fn delete_stream(kinesis: &Client, stream: &str) {
    kinesis
        .delete_stream()
        .stream_name(stream)
        .send()
        .await
        .unwrap();
    wait_for("the deleted stream to be gone", PATIENCE, || async move {
        let described = kinesis
            .describe_stream_summary()
            .stream_name(stream)
            .send()
            .await;
        match described {
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Some(())
            }
            _ => None,
        }
    })
    .await
}
