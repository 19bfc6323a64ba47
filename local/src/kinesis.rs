//! Kinesis helpers shared by the local stack, the Pipe runner and tests.

use std::time::Duration;

use aws_sdk_kinesis::types::StreamStatus;
use aws_sdk_kinesis::Client;
use backon::{ExponentialBuilder, Retryable};

#[derive(Debug, thiserror::Error)]
pub enum KinesisError {
    #[error("Kinesis {operation} failed: {message}. Is the local stack running and AWS_ENDPOINT_URL set to it?")]
    Call {
        operation: &'static str,
        message: String,
    },
    #[error("stream {0} did not become ACTIVE in time")]
    NotActive(String),
    #[error("Kinesis described the stream with an ARN that is not a stream's: {0}")]
    Arn(#[from] inventory_domain::arn::ArnError),
}

impl KinesisError {
    pub fn call<E: std::error::Error>(operation: &'static str, err: E) -> Self {
        Self::Call {
            operation,
            message: aws_sdk_kinesis::error::DisplayErrorContext(err).to_string(),
        }
    }
}

/// Creates the stream unless it exists and waits until it is ACTIVE. Returns its ARN.
pub async fn ensure_stream(
    client: &Client,
    name: &str,
    shards: i32,
) -> Result<String, KinesisError> {
    match client
        .describe_stream_summary()
        .stream_name(name)
        .send()
        .await
    {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            match client
                .create_stream()
                .stream_name(name)
                .shard_count(shards)
                .send()
                .await
            {
                Ok(_) => {}
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_resource_in_use_exception()) => {}
                Err(e) => return Err(KinesisError::call("CreateStream", e)),
            }
        }
        Err(e) => return Err(KinesisError::call("DescribeStreamSummary", e)),
    }
    // `None` while the stream is still being created.
    let active_arn = || async {
        let summary = client
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
            .map_err(|e| Some(KinesisError::call("DescribeStreamSummary", e)))?;
        summary
            .stream_description_summary()
            .filter(|d| d.stream_status() == &StreamStatus::Active)
            .map(|d| d.stream_arn().to_owned())
            .ok_or(None)
    };
    // About 5 s in all, asking often: the emulator activates a stream almost at once.
    let wait = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(10))
        .with_max_delay(Duration::from_millis(250))
        .with_jitter()
        .with_max_times(40);
    active_arn
        .retry(wait)
        .sleep(tokio::time::sleep)
        .when(Option::is_none)
        .await
        .map_err(|e| e.unwrap_or_else(|| KinesisError::NotActive(name.to_owned())))
}

/// The ids of the stream's shards.
pub async fn shard_ids(client: &Client, stream: &str) -> Result<Vec<String>, KinesisError> {
    Ok(list_shards(client, stream)
        .await?
        .into_iter()
        .map(|s| s.id)
        .collect())
}

/// The stream's shards with their parents (the parent and, after a merge, the adjacent
/// parent): a child's records come after its parents'.
pub async fn shards(
    client: &Client,
    stream: &str,
) -> Result<Vec<(String, Vec<String>)>, KinesisError> {
    Ok(list_shards(client, stream)
        .await?
        .into_iter()
        .map(|s| (s.id, s.parents))
        .collect())
}

/// A shard as ListShards describes it, with its lineage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    pub id: String,
    /// The shards whose records come before this one's: its parent and, after a merge, the
    /// adjacent parent.
    pub parents: Vec<String>,
    /// Closed by a reshard (it has an `EndingSequenceNumber`): it takes no more records.
    pub closed: bool,
    /// Its hash-key range, inclusive.
    pub hash_keys: (u128, u128),
}

/// Every shard of the stream, open and closed, with its lineage as ListShards gives it
/// (the local endpoint makes `UpdateShardCount` record parents, as Kinesis does:
/// `update_shard_count.rs`).
pub async fn list_shards(client: &Client, stream: &str) -> Result<Vec<ShardInfo>, KinesisError> {
    let mut listed = Vec::new();
    let mut token: Option<String> = None;
    // By hand: the SDK has no paginator for ListShards (NextToken excludes StreamName).
    loop {
        let req = match &token {
            Some(t) => client.list_shards().next_token(t),
            None => client.list_shards().stream_name(stream),
        };
        let resp = req
            .send()
            .await
            .map_err(|e| KinesisError::call("ListShards", e))?;
        for s in resp.shards() {
            let parents = [s.parent_shard_id(), s.adjacent_parent_shard_id()]
                .into_iter()
                .flatten()
                .map(str::to_owned)
                .collect();
            let key = |k: Option<&str>| k.and_then(|k| k.parse::<u128>().ok()).unwrap_or(0);
            let range = s.hash_key_range();
            let closed = s
                .sequence_number_range()
                .is_some_and(|r| r.ending_sequence_number().is_some());
            listed.push(ShardInfo {
                id: s.shard_id().to_owned(),
                parents,
                closed,
                hash_keys: (
                    key(range.map(|r| r.starting_hash_key())),
                    key(range.map(|r| r.ending_hash_key())),
                ),
            });
        }
        match resp.next_token() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
    }
    Ok(listed)
}

/// The number in a shard id (`shardId-000000000004` → 4). Kinesis and ferrokinesis number
/// shards in the order they create them.
pub fn shard_number(shard_id: &str) -> Option<u64> {
    shard_id.rsplit('-').next()?.parse().ok()
}
