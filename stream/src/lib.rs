//! The Kinesis stream as the back end reads it: a stream's identity and its shards' lineage
//! as Kinesis lists them (`DescribeStreamSummary`, `ListShards`), for the pure placement of
//! records in `inventory_domain::lineage`. Lineage is data: every parent comes from
//! `ParentShardId` / `AdjacentParentShardId`, never from shard numbers.
//! [`pipe_record`] maps a record read from the stream to the Pipes shape the processor reads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use aws_sdk_kinesis::Client;
use futures::future::BoxFuture;
use inventory_domain::dedup::shard_ordinal;
use inventory_domain::lineage::{Shard, StreamId, StreamLineage};
use inventory_domain::SequenceNumber;

mod record;
pub use record::pipe_record;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StreamError {
    #[error("Kinesis {operation} of stream {stream} failed: {message}. The caller's role needs kinesis:ListShards and kinesis:DescribeStreamSummary on the stream; the batch is retried")]
    Kinesis {
        operation: &'static str,
        stream: String,
        message: String,
    },
    #[error("Kinesis listed shard {shard} of stream {stream} with {field} `{value}`, which is not a valid {what}")]
    Listing {
        stream: String,
        shard: String,
        field: &'static str,
        value: String,
        what: &'static str,
    },
}

/// Where a stream's listing comes from.
pub trait ListShards: Send + Sync {
    /// The stream named `stream` (its name, not its ARN) with every shard Kinesis lists,
    /// open and closed.
    fn list(&self, stream: &str) -> BoxFuture<'_, Result<StreamLineage, StreamError>>;
}

/// Kinesis itself, through the SDK client.
#[derive(Clone)]
pub struct KinesisShards(pub Client);

impl ListShards for KinesisShards {
    fn list(&self, stream: &str) -> BoxFuture<'_, Result<StreamLineage, StreamError>> {
        let stream = stream.to_owned();
        Box::pin(async move { list_stream(&self.0, &stream).await })
    }
}

/// A listing that never changes: a stream whose shards are known (a test that builds its
/// batches by hand).
pub struct FixedShards(pub StreamLineage);

impl ListShards for FixedShards {
    fn list(&self, _stream: &str) -> BoxFuture<'_, Result<StreamLineage, StreamError>> {
        let listing = self.0.clone();
        Box::pin(async move { Ok(listing) })
    }
}

fn call_err<E: std::error::Error>(operation: &'static str, stream: &str, e: E) -> StreamError {
    StreamError::Kinesis {
        operation,
        stream: stream.to_owned(),
        message: aws_sdk_kinesis::error::DisplayErrorContext(e).to_string(),
    }
}

/// Lists `stream`: its ARN and creation time, then every shard (ListShards pages by hand:
/// the SDK has no paginator for it, and a NextToken excludes the stream's name).
pub async fn list_stream(client: &Client, stream: &str) -> Result<StreamLineage, StreamError> {
    let summary = client
        .describe_stream_summary()
        .stream_name(stream)
        .send()
        .await
        .map_err(|e| call_err("DescribeStreamSummary", stream, e))?;
    let description = summary
        .stream_description_summary()
        .ok_or_else(|| StreamError::Kinesis {
            operation: "DescribeStreamSummary",
            stream: stream.to_owned(),
            message: "the answer has no StreamDescriptionSummary".into(),
        })?;
    let created = description.stream_creation_timestamp();
    let created_ms = created.secs() * 1000 + i64::from(created.subsec_nanos() / 1_000_000);
    let id = StreamId::new(description.stream_arn(), created_ms);
    let mut shards = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let req = match &token {
            Some(t) => client.list_shards().next_token(t),
            None => client.list_shards().stream_name(stream),
        };
        let page = req
            .send()
            .await
            .map_err(|e| call_err("ListShards", stream, e))?;
        for s in page.shards() {
            shards.push(shard_of(stream, s)?);
        }
        match page.next_token() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
    }
    Ok(StreamLineage::new(id, shards))
}

fn shard_of(stream: &str, s: &aws_sdk_kinesis::types::Shard) -> Result<Shard, StreamError> {
    let bad = |field: &'static str, value: &str, what: &'static str| StreamError::Listing {
        stream: stream.to_owned(),
        shard: s.shard_id().to_owned(),
        field,
        value: value.chars().take(80).collect(),
        what,
    };
    let keys = s.hash_key_range();
    let key = |field: &'static str, raw: Option<&str>| {
        let raw = raw.unwrap_or_default();
        raw.parse::<u128>()
            .map_err(|_| bad(field, raw, "128-bit hash key"))
    };
    let range = s.sequence_number_range();
    let start = range.map(|r| r.starting_sequence_number()).unwrap_or("0");
    Ok(Shard {
        id: shard_ordinal(s.shard_id()),
        parents: [s.parent_shard_id(), s.adjacent_parent_shard_id()]
            .into_iter()
            .flatten()
            .map(shard_ordinal)
            .collect(),
        hash_keys: (
            key("StartingHashKey", keys.map(|k| k.starting_hash_key()))?,
            key("EndingHashKey", keys.map(|k| k.ending_hash_key()))?,
        ),
        starting_sequence: SequenceNumber::parse(start)
            .map_err(|_| bad("StartingSequenceNumber", start, "sequence number"))?,
        ending_sequence: range
            .and_then(|r| r.ending_sequence_number())
            .map(|e| {
                SequenceNumber::parse(e)
                    .map_err(|_| bad("EndingSequenceNumber", e, "sequence number"))
            })
            .transpose()?,
    })
}

/// Each stream's listing, kept between batches and listed again when a batch needs it.
pub struct Listings {
    source: Arc<dyn ListShards>,
    cached: Mutex<HashMap<String, Listed>>,
}

/// A stream's listing and when it was taken.
#[derive(Clone)]
pub struct Listed {
    pub lineage: Arc<StreamLineage>,
    pub at: Instant,
}

impl Listings {
    pub fn new(source: Arc<dyn ListShards>) -> Self {
        Self {
            source,
            cached: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Listed>> {
        // Every change is one insert: a poisoned lock still guards a consistent map.
        self.cached.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The stream's listing: the one held, or a new one.
    pub async fn get(&self, stream: &str) -> Result<Listed, StreamError> {
        if let Some(listed) = self.lock().get(stream).cloned() {
            return Ok(listed);
        }
        self.list(stream).await
    }

    /// The stream's listing, taken again unless the one held was taken after `since`.
    pub async fn newer_than(&self, stream: &str, since: Instant) -> Result<Listed, StreamError> {
        if let Some(listed) = self.lock().get(stream).filter(|l| l.at > since).cloned() {
            return Ok(listed);
        }
        self.list(stream).await
    }

    async fn list(&self, stream: &str) -> Result<Listed, StreamError> {
        let at = Instant::now();
        let lineage = self.source.list(stream).await?;
        tracing::debug!(
            stream,
            shards = lineage.shards().count(),
            "listed the stream's shards"
        );
        let listed = Listed {
            lineage: Arc::new(lineage),
            at,
        };
        self.lock().insert(stream.to_owned(), listed.clone());
        Ok(listed)
    }
}
