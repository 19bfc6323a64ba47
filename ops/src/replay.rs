//! Replay: rebuild the inventory from the stream into a fresh table with the same processor
//! code, then compare it with the live table item by item. The processor is reached as the
//! Pipe reaches it, through a [`Target`] (the processor binary behind a local Lambda host,
//! writing to the fresh tables): Pipes payloads in, `batchItemFailures` out.
//!
//! It proves the live table is what the stream says (nothing lost, doubled or reordered by
//! the live pipeline) and is the recovery path after a bad deploy: a replayed table can
//! replace the live one. Its limit is the stream's retention (24 h by default): a product
//! whose history started before the oldest retained record cannot be rebuilt, and is
//! reported as such rather than as a mismatch.
//!
//! Dead letters are treated as the live pipeline treated them: a record the Pipe
//! dead-lettered before it was applied (archived `pending`, `redriving` or `redriven`) is
//! skipped where it stands, and its redriven copy, later in the stream, is applied where
//! the live pipeline applied it; a record archived `processed_before` was applied, and is.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_kinesis::types::ShardIteratorType;
use backon::{ExponentialBuilder, Retryable};
use inventory_domain::arn::StreamArn;
use inventory_domain::{PipeRecord, SequenceNumber};
use inventory_store::tables::ensure_tables;
use inventory_store::Tables;

use inventory_local::kinesis::{self, KinesisError};
use inventory_local::pipe::{failed_from, EveryItem as _, Target};

/// GetRecords page and processor batch size while replaying.
pub const REPLAY_BATCH: i32 = 1_000;
/// Attempts per batch when the processor reports a failure (DynamoDB throttling, say).
const BATCH_ATTEMPTS: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Kinesis(#[from] KinesisError),
    #[error("DynamoDB {operation} failed: {message}")]
    Dynamo {
        operation: &'static str,
        message: String,
    },
    #[error("could not create the replay tables: {0}")]
    Tables(#[from] inventory_store::StoreError),
    #[error("could not read the live pipeline's dead-letter archive (to skip what it did not apply): {0}")]
    Archive(inventory_store::StoreError),
    #[error("table {0} already holds products: replay needs a fresh table (pick another --into, or delete it)")]
    NotFresh(String),
    #[error("shard {shard}: the processor kept failing record {record} after {BATCH_ATTEMPTS} attempts (last: {reason}); check the logs above and DynamoDB's capacity, then run the replay again into a fresh table")]
    Stuck {
        shard: String,
        record: String,
        reason: String,
    },
}

fn dynamo_err<E: std::error::Error>(operation: &'static str, e: E) -> ReplayError {
    ReplayError::Dynamo {
        operation,
        message: aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string(),
    }
}

/// How far a replay is, as it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayProgress {
    /// Records given to the processor so far, and shards replayed to their end of all.
    Replaying {
        records: u64,
        shards_done: usize,
        shards: usize,
    },
    /// Every shard is replayed: the tables are being read and compared.
    Comparing { records: u64 },
}

/// Counts what the shards replayed concurrently have done, and reports each step.
struct Tally<'p> {
    report: &'p (dyn Fn(ReplayProgress) + Sync),
    records: AtomicU64,
    shards_done: AtomicUsize,
    shards: usize,
}

impl Tally<'_> {
    fn replayed(&self, records: u64, shard_done: bool) {
        let records = self.records.fetch_add(records, Ordering::Relaxed) + records;
        let done = usize::from(shard_done);
        let shards_done = self.shards_done.fetch_add(done, Ordering::Relaxed) + done;
        (self.report)(ReplayProgress::Replaying {
            records,
            shards_done,
            shards: self.shards,
        });
    }
}

/// How a live product compares with its replayed twin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// Both exist and differ in the named fields.
    Fields {
        product_id: String,
        fields: Vec<String>,
    },
    /// The replay built it; the live table does not have it.
    MissingLive { product_id: String },
    /// The live table has it, the stream holds events of it, but the replay built nothing.
    MissingReplay { product_id: String },
}

#[derive(Debug, Clone)]
pub struct ReplayReport {
    pub replay_tables: Tables,
    pub shards: usize,
    /// Records read from the stream and given to the processor.
    pub records: u64,
    /// What the processor counted in the replay's statistics (the `STATS`/`SHARD#…` items
    /// of its events table, summed): events applied, records rejected, duplicates ignored.
    /// A batch counts once, with its shard log item (store/src/stats.rs).
    pub applied: u64,
    pub rejected: u64,
    pub duplicates: u64,
    /// Products present in both tables and identical (every field but `updated_at`).
    pub identical: u64,
    /// Live products with events after the replay's end position (the live pipeline is
    /// ahead): not compared.
    pub live_ahead: u64,
    /// Live products with no event in the stream: their history is older than the stream's
    /// retention, so a replay cannot rebuild them.
    pub not_in_stream: u64,
    pub differences: Vec<Difference>,
}

impl ReplayReport {
    pub fn is_identical(&self) -> bool {
        self.differences.is_empty()
    }
}

/// Replays `stream` from TRIM_HORIZON to its current end into `into` (created, must be
/// empty) through `processor`, which must write to `into`, then compares with `live`.
/// `progress` hears how far it is after each batch and at each step.
pub async fn replay(
    kinesis: &aws_sdk_kinesis::Client,
    db: &aws_sdk_dynamodb::Client,
    stream: &str,
    live: &Tables,
    into: &Tables,
    processor: &dyn Target,
    progress: &(dyn Fn(ReplayProgress) + Sync),
) -> Result<ReplayReport, ReplayError> {
    create_fresh_tables(db, into).await?;
    let arn = stream_arn(kinesis, stream).await?;
    let shards = kinesis::shards(kinesis, stream).await?;
    let listing = inventory_stream::list_stream(kinesis, stream)
        .await
        .map_err(|e| KinesisError::Call {
            operation: "ListShards",
            message: e.to_string(),
        })?;
    let skipped = not_applied_live(db, live).await?;
    let tally = Tally {
        report: progress,
        records: AtomicU64::new(0),
        shards_done: AtomicUsize::new(0),
        shards: shards.len(),
    };
    let replayed = replay_shards(
        kinesis,
        processor,
        (stream, &arn),
        &shards,
        &skipped,
        &tally,
    )
    .await?;
    progress(ReplayProgress::Comparing {
        records: replayed.records,
    });
    let (applied, rejected, duplicates) = processed_counts(db, into).await?;
    let mut report = ReplayReport {
        replay_tables: into.clone(),
        shards: shards.len(),
        records: replayed.records,
        applied,
        rejected,
        duplicates,
        identical: 0,
        live_ahead: 0,
        not_in_stream: 0,
        differences: Vec::new(),
    };
    compare_tables(db, live, into, &listing, &replayed.positions, &mut report).await?;
    Ok(report)
}

/// Creates the replay's tables, refusing them if they already hold products.
async fn create_fresh_tables(
    db: &aws_sdk_dynamodb::Client,
    into: &Tables,
) -> Result<(), ReplayError> {
    ensure_tables(db, into).await?;
    let probe = db
        .scan()
        .table_name(&into.inventory)
        .limit(1)
        .send()
        .await
        .map_err(|e| dynamo_err("Scan", e))?;
    if probe.count() > 0 {
        return Err(ReplayError::NotFresh(into.inventory.clone()));
    }
    Ok(())
}

async fn stream_arn(
    kinesis: &aws_sdk_kinesis::Client,
    stream: &str,
) -> Result<String, ReplayError> {
    Ok(kinesis
        .describe_stream_summary()
        .stream_name(stream)
        .send()
        .await
        .map_err(|e| KinesisError::call("DescribeStreamSummary", e))?
        .stream_description_summary()
        .map(|d| d.stream_arn().to_owned())
        .ok_or_else(|| KinesisError::NotActive(stream.to_owned()))?)
}

/// What replaying every shard gave: the records read, and where each product's last record
/// was (partition key -> shard and sequence number).
struct StreamReplay {
    records: u64,
    positions: HashMap<String, (String, SequenceNumber)>,
}

/// Replays `shards` (id, parents), those that are ready together; a shard's records come
/// after its parents' (resharding), so parents go first.
async fn replay_shards(
    kinesis: &aws_sdk_kinesis::Client,
    processor: &dyn Target,
    (stream, arn): (&str, &str),
    shards: &[(String, Vec<String>)],
    skipped: &HashSet<String>,
    tally: &Tally<'_>,
) -> Result<StreamReplay, ReplayError> {
    let mut done: HashSet<String> = HashSet::new();
    let mut pending: Vec<(String, Vec<String>)> = shards.to_vec();
    let mut out = StreamReplay {
        records: 0,
        positions: HashMap::new(),
    };
    let known: HashSet<String> = shards.iter().map(|(s, _)| s.clone()).collect();
    while !pending.is_empty() {
        let (ready, rest): (Vec<_>, Vec<_>) = pending.into_iter().partition(|(_, parents)| {
            parents
                .iter()
                .all(|p| done.contains(p) || !known.contains(p))
        });
        pending = rest;
        let runs = ready.iter().map(|(shard, _)| {
            replay_shard(
                kinesis,
                processor,
                (stream, arn),
                shard.clone(),
                skipped,
                tally,
            )
        });
        for result in futures::future::join_all(runs).await {
            let shard = result?;
            out.records += shard.records;
            for (key, seq) in shard.last_by_key {
                out.positions.insert(key, (shard.shard_id.clone(), seq));
            }
            done.insert(shard.shard_id);
        }
        if ready.is_empty() {
            // Parents outside the listing have expired; nothing else can unblock the rest.
            break;
        }
    }
    Ok(out)
}

/// Compares the live table with the replayed one, product by product, into `report`.
async fn compare_tables(
    db: &aws_sdk_dynamodb::Client,
    live: &Tables,
    into: &Tables,
    listing: &inventory_domain::lineage::StreamLineage,
    positions: &HashMap<String, (String, SequenceNumber)>,
    report: &mut ReplayReport,
) -> Result<(), ReplayError> {
    let live_items = scan_products(db, &live.inventory).await?;
    let replayed = scan_products(db, &into.inventory).await?;
    for (id, live_item) in &live_items {
        match (replayed.get(id), positions.get(id)) {
            (_, None) if !replayed.contains_key(id) => report.not_in_stream += 1,
            (None, _) => report.differences.push(Difference::MissingReplay {
                product_id: id.clone(),
            }),
            (Some(replayed_item), position) => {
                let fields = differing_fields(live_item, replayed_item);
                if fields.is_empty() {
                    report.identical += 1;
                } else if position
                    .is_some_and(|(shard, end)| live_is_ahead(listing, id, live_item, shard, end))
                {
                    report.live_ahead += 1;
                } else {
                    report.differences.push(Difference::Fields {
                        product_id: id.clone(),
                        fields,
                    });
                }
            }
        }
    }
    for id in replayed.keys().filter(|id| !live_items.contains_key(*id)) {
        report.differences.push(Difference::MissingLive {
            product_id: id.clone(),
        });
    }
    Ok(())
}

/// The processor's running totals in the replay's events table: (applied, rejected,
/// duplicates); zeros when it counted nothing.
async fn processed_counts(
    db: &aws_sdk_dynamodb::Client,
    into: &Tables,
) -> Result<(u64, u64, u64), ReplayError> {
    let counters = inventory_store::stats::read_total(db, into)
        .await?
        .map(|total| total.counters)
        .unwrap_or_default();
    Ok((counters.applied, counters.rejected, counters.duplicates))
}

struct ShardReplay {
    shard_id: String,
    records: u64,
    last_by_key: HashMap<String, SequenceNumber>,
}

/// The live pipeline's dead letters that it did not apply where they stood (by record id,
/// `shardId-…:sequenceNumber`): the archive's records not marked `processed_before`.
async fn not_applied_live(
    db: &aws_sdk_dynamodb::Client,
    live: &Tables,
) -> Result<HashSet<String>, ReplayError> {
    use inventory_domain::api::DeadLetterStatus;
    use inventory_store::dead_letters::{list, Order};
    let mut out = HashSet::new();
    let mut after: Option<String> = None;
    // Bounded by the archive's size: a page of 1,000 at a time until the last.
    loop {
        let (items, next) = list(db, live, None, Order::OldestFirst, 1_000, after.as_deref())
            .await
            .map_err(ReplayError::Archive)?;
        out.extend(
            items
                .into_iter()
                .filter(|i| i.status != DeadLetterStatus::ProcessedBefore)
                .map(|i| i.record_id),
        );
        match next {
            Some(n) if Some(&n) != after.as_ref() => after = Some(n),
            _ => return Ok(out),
        }
    }
}

async fn replay_shard(
    kinesis: &aws_sdk_kinesis::Client,
    processor: &dyn Target,
    (stream, arn): (&str, &str),
    shard_id: String,
    skipped: &HashSet<String>,
    tally: &Tally<'_>,
) -> Result<ShardReplay, ReplayError> {
    let stream_arn = StreamArn::parse(arn).map_err(KinesisError::from)?;
    let mut out = ShardReplay {
        shard_id: shard_id.clone(),
        records: 0,
        last_by_key: HashMap::new(),
    };
    let mut iterator = kinesis
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(&shard_id)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .map_err(|e| KinesisError::call("GetShardIterator", e))?
        .shard_iterator()
        .map(str::to_owned);
    while let Some(it) = iterator {
        let resp = kinesis
            .get_records()
            .shard_iterator(it)
            .limit(REPLAY_BATCH)
            .send()
            .await
            .map_err(|e| KinesisError::call("GetRecords", e))?;
        let read: Vec<PipeRecord> = resp
            .records()
            .iter()
            .map(|r| inventory_stream::pipe_record(r, &shard_id, &stream_arn))
            .collect();
        let records: Vec<PipeRecord> = read
            .iter()
            .filter(|r| !skipped.contains(&r.event_id))
            .cloned()
            .collect();
        apply_batch(processor, &shard_id, &records, &mut out).await?;
        let applied = records.len() as u64;
        let records = read;
        // The end of the stream as it was when this shard was read: a live table may be
        // ahead of it for products with newer events.
        let caught_up = resp.millis_behind_latest() == Some(0);
        iterator = resp.next_shard_iterator().map(str::to_owned);
        if records.is_empty() && caught_up {
            tally.replayed(applied, true);
            break;
        }
        tally.replayed(applied, iterator.is_none());
    }
    Ok(out)
}

/// Applies one batch, retrying (with backoff and jitter) from the first failed record as a
/// Pipe would, or the whole rest of the batch after a function error.
async fn apply_batch(
    processor: &dyn Target,
    shard_id: &str,
    records: &[PipeRecord],
    out: &mut ShardReplay,
) -> Result<(), ReplayError> {
    if records.is_empty() {
        return Ok(());
    }
    // The first record not yet applied.
    let from = AtomicUsize::new(0);
    let apply_rest = || async {
        let start = from.load(Ordering::Relaxed);
        let rest = &records[start..];
        let payload = serde_json::to_vec(rest).map_err(|e| e.to_string())?;
        let response = processor.invoke(payload).await.map_err(|e| e.to_string())?;
        match failed_from(rest, &response).map_err(|e| e.to_string())? {
            None => Ok(()),
            Some(p) => {
                from.store(start + p, Ordering::Relaxed);
                Err(format!(
                    "the processor reported record {} as failed",
                    rest[p].event_id
                ))
            }
        }
    };
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .with_max_times(BATCH_ATTEMPTS - 1);
    apply_rest
        .retry(backoff)
        .sleep(tokio::time::sleep)
        .notify(|reason, wait| tracing::warn!(shard = shard_id, %reason, ?wait, "replay batch failed; retrying"))
        .await
        .map_err(|reason| ReplayError::Stuck {
            shard: shard_id.to_owned(),
            record: records[from.load(Ordering::Relaxed)].event_id.clone(),
            reason,
        })?;
    out.records += records.len() as u64;
    for r in records {
        if let Ok(seq) = SequenceNumber::parse(&r.sequence_number) {
            out.last_by_key.insert(r.partition_key.clone(), seq);
        }
    }
    Ok(())
}

type Item = HashMap<String, AttributeValue>;

async fn scan_products(
    db: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<BTreeMap<String, Item>, ReplayError> {
    let items = db
        .scan()
        .table_name(table)
        .every_item()
        .await
        .map_err(|e| dynamo_err("Scan", e))?;
    Ok(items
        .into_iter()
        .filter_map(|item| {
            let id = item.get("product_id")?.as_s().ok()?.clone();
            Some((id, item))
        })
        .collect())
}

/// Every attribute but the wall-clock `updated_at` must match.
fn differing_fields(live: &Item, replayed: &Item) -> Vec<String> {
    let names: std::collections::BTreeSet<&String> = live.keys().chain(replayed.keys()).collect();
    // When the item was written, and the key of that write's history entries (its time and
    // writer): neither is the product's state.
    names
        .into_iter()
        .filter(|k| !matches!(k.as_str(), "updated_at" | "history"))
        .filter(|k| live.get(*k) != replayed.get(*k))
        .cloned()
        .collect()
}

/// Whether the live item's position is past the replay's last record of its product
/// (`end` on `end_shard`), along the product's shard lineage as the stream lists it.
fn live_is_ahead(
    listing: &inventory_domain::lineage::StreamLineage,
    product_id: &str,
    item: &Item,
    end_shard: &str,
    end: &SequenceNumber,
) -> bool {
    use inventory_domain::lineage::{hash_key, place, Place, RecordAt};
    let Ok(live) = inventory_store::items::ProductItem::from_item(item.clone()) else {
        return false;
    };
    let live = live.into_record();
    let shard = inventory_domain::dedup::shard_ordinal(end_shard);
    let at_end = live.last_shard == Some(shard) && live.last_sequence == *end;
    let placed = place(
        listing,
        RecordAt {
            shard,
            sequence: end,
            hash: hash_key(product_id),
        },
        Some(&live.position()),
    );
    placed == Place::Behind && !at_end
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, &str)]) -> Item {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), AttributeValue::S(v.to_string())))
            .collect()
    }

    #[test]
    fn the_tally_adds_up_what_concurrent_shards_replayed() {
        let heard = std::sync::Mutex::new(Vec::new());
        let report = |p: ReplayProgress| heard.lock().unwrap().push(p);
        let tally = Tally {
            report: &report,
            records: AtomicU64::new(0),
            shards_done: AtomicUsize::new(0),
            shards: 2,
        };
        tally.replayed(1_000, false);
        tally.replayed(300, true);
        tally.replayed(0, true);
        let replaying = |records, shards_done| ReplayProgress::Replaying {
            records,
            shards_done,
            shards: 2,
        };
        assert_eq!(
            *heard.lock().unwrap(),
            [
                replaying(1_000, 0),
                replaying(1_300, 1),
                replaying(1_300, 2)
            ]
        );
    }

    #[test]
    fn updated_at_is_the_only_field_allowed_to_differ() {
        let a = item(&[("quantity", "1"), ("updated_at", "x")]);
        let b = item(&[("quantity", "1"), ("updated_at", "y")]);
        assert!(differing_fields(&a, &b).is_empty());
        let c = item(&[("quantity", "2"), ("updated_at", "x"), ("extra", "z")]);
        assert_eq!(differing_fields(&a, &c), vec!["extra", "quantity"]);
    }
}
