//! The batch handler: a Pipes batch in, exactly-once product state in DynamoDB out.
//!
//! 1. Decode and validate every record (pure); malformed ones become rejections.
//! 2. Group the valid events by product, in stream order.
//! 3. The stream's listing (ListShards: each shard's parents, hash keys and sequence
//!    numbers), then the shard logs of each shard and its ancestors, and the touched
//!    products' items (from the cache, or BatchGetItem, consistent).
//! 4. Fold each product's events over its item (pure), placing each record against the
//!    product's position along its shard lineage: redeliveries and producer duplicates are
//!    skipped, records outside the lineage and invalid transitions rejected.
//! 5. Record every rejection (idempotent keys), then write each changed product once,
//!    conditional on the version and position read in step 3 (optimistic concurrency).
//! 6. Report the first record whose work did not complete as the batch item failure, so the
//!    Pipe retries from there; everything before it is applied exactly once.
//!
//! By step: [`run`] (the orchestrator: the order of everything, and the Pipe's answer),
//! [`lineage`] (3: the listing), [`load`] (3: logs and products), [`fold`] (4), [`write`]
//! (5; [`settle`] is one product's conditional write and its re-folds after a lost race),
//! [`log`] (the shard log and the counters); [`rejections`] and [`statistics`] write the
//! events table's items.

mod cache;
mod fold;
mod lineage;
mod load;
mod log;
mod rejections;
mod run;
mod settle;
mod statistics;
mod write;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
pub use inventory_domain::batch::{
    decode, decode_batch, decode_pipe_batch, DecodedBatch, ProductWork,
};
use inventory_domain::dedup;
use inventory_domain::pipes::PipeBatch;
use inventory_domain::{BatchResponse, RejectionReason};
use inventory_store::shard_log::{LogCost, ShardLogStore};
use inventory_store::Tables;
use inventory_stream::{ListShards, Listings};

use crate::error::ProcessorError;

#[derive(Debug, Clone)]
pub struct ProcessorSettings {
    /// Product writes in flight at once.
    pub write_concurrency: usize,
    /// Re-reads after a lost optimistic-concurrency race before the record is retried.
    pub max_conflict_retries: usize,
    /// A producer's duplicate arriving up to this long after its original is recognised,
    /// at any distance in events (docs/consistency.md). At most the stream's retention.
    pub dedup_window: Duration,
    /// Events of the shard log kept in memory, all shards together (about 100 bytes each);
    /// past it the coldest shards' logs are dropped and read again when needed.
    pub dedup_max_entries: usize,
    /// Product items kept in memory, all shards together (about 0.5 KB each), so a warm
    /// instance writes without reading first; 0 turns the cache off.
    pub product_cache_max_items: usize,
    /// Test hook, off in production: every event's dedup key has its low 64 bits set to 0,
    /// as if all of them collided at the width the shard log used before (64 bits), to show
    /// the 96-bit keys still tell them apart.
    pub collide_dedup_keys: bool,
    /// Keep each product's history (store/src/history.rs): one more item written per
    /// product write (docs/performance.md prices it). Off unless
    /// [`HISTORY_VAR`](crate::config::HISTORY_VAR) says `on`.
    pub history: bool,
}

impl Default for ProcessorSettings {
    fn default() -> Self {
        Self {
            write_concurrency: 32,
            max_conflict_retries: 8,
            dedup_window: Duration::from_millis(dedup::DEFAULT_WINDOW_MS as u64),
            dedup_max_entries: 4_000_000,
            // About 25 MB: beside the shard logs' worst case, within a 256 MB Lambda.
            product_cache_max_items: 50_000,
            collide_dedup_keys: false,
            history: false,
        }
    }
}

/// The processor with its clients, built once per cold start.
#[derive(Clone)]
pub struct Processor {
    db: Client,
    tables: Arc<Tables>,
    settings: ProcessorSettings,
    log: Arc<ShardLogStore>,
    products: Arc<std::sync::Mutex<cache::ProductCache>>,
    /// Each stream's shards as Kinesis lists them (`inventory_stream`).
    listings: Arc<Listings>,
}

/// What one invocation did; the response is what the Pipe sees.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchReport {
    pub response: BatchResponse,
    pub records: usize,
    pub applied: u64,
    pub redeliveries: u64,
    pub producer_duplicates: u64,
    pub rejected: BTreeMap<RejectionReason, u64>,
    /// Distinct products whose item was written.
    pub products_written: u64,
    /// DynamoDB requests made, for cost accounting.
    pub read_requests: u64,
    /// Products whose state came from this instance's cache (no read).
    pub cache_hits: u64,
    /// Products that had to be read (cold start, another instance wrote the shard, a lost
    /// race, or evicted).
    pub cache_misses: u64,
    pub product_write_requests: u64,
    pub rejection_write_requests: u64,
    /// History items written (one per product write with history on) and their write
    /// units (by size: a write of many events takes more than one).
    pub history_writes: u64,
    pub history_write_units: u64,
    /// The shard log's reads and writes (what exactly-once at any distance costs).
    pub log: LogCost,
    /// From the oldest record's arrival in the stream (`approximateArrivalTimestamp`, the
    /// stream's clock, not the producer's) to the end of the batch's work, in ms; `None` for
    /// an empty batch.
    pub lag_ms: Option<u64>,
    /// Why work was left for the Pipe to retry, or a statistics write failed: one line per
    /// failure, as logged.
    pub errors: Vec<String>,
    /// Wall-clock time of the batch's phases, for the lag split (docs/performance.md).
    pub phases: Phases,
}

/// Wall-clock microseconds of one batch's phases, in the order they run. Phases that run
/// concurrently with others (a re-read after a lost race inside the product writes) count
/// in the phase that contains them, so the parts add up to at most `total_us`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Phases {
    /// Listing the stream when needed and bringing the shard logs of the batch's shards
    /// and their ancestors up to date (one Query per shard).
    pub log_refresh_us: u64,
    /// Reading the products not served from this instance's cache (BatchGetItem).
    pub read_us: u64,
    /// Folding the events over the products (pure).
    pub fold_us: u64,
    /// Recording the rejections (BatchWriteItem).
    pub rejection_write_us: u64,
    /// The conditional product writes, with their conflict re-folds.
    pub product_write_us: u64,
    /// The shard log and counters transaction (or the counters alone).
    pub log_write_us: u64,
    /// The whole batch, decode to report.
    pub total_us: u64,
}

impl BatchReport {
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

impl Processor {
    /// A processor writing to `tables`, listing its streams' shards through `shards`
    /// (`inventory_stream::KinesisShards` in AWS).
    pub fn new(db: Client, tables: Tables, shards: Arc<dyn ListShards>) -> Self {
        Self::with_settings(db, tables, shards, ProcessorSettings::default())
    }

    pub fn with_settings(
        db: Client,
        tables: Tables,
        shards: Arc<dyn ListShards>,
        settings: ProcessorSettings,
    ) -> Self {
        let db = processor_client(&db);
        let window_ms = i64::try_from(settings.dedup_window.as_millis())
            .unwrap_or(dedup::MAX_WINDOW_MS)
            .clamp(1, dedup::MAX_WINDOW_MS);
        let log = ShardLogStore::new(
            db.clone(),
            tables.events.clone(),
            window_ms,
            settings.dedup_max_entries,
        );
        let products = cache::ProductCache::new(settings.product_cache_max_items);
        Self {
            db,
            tables: Arc::new(tables),
            settings,
            log: Arc::new(log),
            products: Arc::new(std::sync::Mutex::new(products)),
            listings: Arc::new(Listings::new(shards)),
        }
    }

    /// Product items this instance holds in memory.
    pub fn cached_products(&self) -> usize {
        self.cache().len()
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, cache::ProductCache> {
        // Every change to the cache is one insert or remove, so a poisoned lock still
        // guards a consistent map.
        self.products.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Events of the shard log this instance holds in memory.
    pub fn dedup_entries(&self) -> usize {
        self.log.entries()
    }

    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// The Lambda's entry point: the invocation body as it arrives (the JSON bytes Pipes
    /// sends), read once and in place by [`crate::body::read_body`], then
    /// [`process_batch`](Self::process_batch). Returns the partial batch failure response.
    pub async fn handle_body(&self, body: Vec<u8>) -> Result<BatchResponse, ProcessorError> {
        Ok(self.handle_body_report(body).await?.response)
    }

    /// [`handle_body`](Self::handle_body) with the whole report, for the metrics.
    pub async fn handle_body_report(&self, body: Vec<u8>) -> Result<BatchReport, ProcessorError> {
        let batch = crate::body::read_body(body)?;
        Ok(self.process_batch(&batch).await)
    }

    /// Processes one batch: the one path every caller takes (the Lambda through
    /// [`handle_body`](Self::handle_body), the local Pipe, replays and tests).
    pub async fn process_batch(&self, batch: &PipeBatch) -> BatchReport {
        // Boxed (once per batch): the run's future, retries and streams of writes inside,
        // is deeper than the compiler's default limit where the Lambda runtime nests it.
        Box::pin(self.run(batch)).await
    }
}

/// How long one attempt of a request may take before the SDK retries it. DynamoDB answers a
/// single-item request in milliseconds; this only catches a connection that went silent.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// The caller's client, tuned for the processor's many small requests (issue 17: the SDK's
/// share of the CPU per event): stalled-stream protection off, because its throughput
/// checks wrap every request and response body and cost about 6 % of the processor's CPU
/// on bodies of a few hundred bytes; an attempt timeout catches the stalled connection it
/// would have caught. Everything else (credentials, endpoint, retries, interceptors, the
/// HTTP client and its connections) is the caller's.
fn processor_client(db: &Client) -> Client {
    use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
    use aws_sdk_dynamodb::config::StalledStreamProtectionConfig;
    let config = db
        .config()
        .to_builder()
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .build(),
        )
        .build();
    Client::from_conf(config)
}

/// A shard of a stream: (stream name, shard id).
type ShardKey = (String, String);

/// The record's stream and shard (the shard from its `eventID`, `shardId-…:seq`).
fn shard_key(batch: &PipeBatch, index: usize) -> ShardKey {
    let record = batch.at(index);
    let shard = record
        .event_id
        .split_once(':')
        .map_or("", |(shard, _)| shard);
    (
        inventory_store::shard_log::stream_name(record.event_source_arn).to_owned(),
        shard.to_owned(),
    )
}

/// The Lambda runtime and the local Pipe spawn a batch's future, so it must stay `Send`
/// (an iterator's closure held across an await is enough to lose it); this fails to compile
/// if it does not.
#[allow(dead_code)]
fn process_batch_is_send<'a>(p: &'a Processor, batch: &'a PipeBatch) -> impl Send + 'a {
    p.process_batch(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_processor_tunes_its_client_and_keeps_the_callers_settings() {
        let caller = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("eu-west-1"))
            .endpoint_url("http://127.0.0.1:1")
            .build();
        let listing = inventory_domain::lineage::StreamLineage::single(
            inventory_domain::lineage::StreamId::new("arn:aws:kinesis:eu-west-1:1:stream/s", 0),
            0,
        );
        let processor = Processor::new(
            Client::from_conf(caller),
            Tables::with_prefix("t"),
            Arc::new(inventory_stream::FixedShards(listing)),
        );
        let config = processor.db.config();
        assert_eq!(
            config.stalled_stream_protection().map(|s| s.is_enabled()),
            Some(false)
        );
        assert_eq!(
            config
                .timeout_config()
                .and_then(|t| t.operation_attempt_timeout()),
            Some(ATTEMPT_TIMEOUT)
        );
        assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-west-1"));
    }
}
