//! The shard log of processed events in DynamoDB, and its copy in the warm instance's memory
//! (the pure format and index are `inventory_domain::dedup`).
//!
//! One item per batch and shard in the events table: `pk = DEDUP#<stream>#<shard>`,
//! `sk = <item number, 20 digits>`, the batch's processed events packed about 20 bytes each
//! (`records`), their arrival range, the batch's attempt (its first and last sequence
//! numbers on the shard, and the products whose records it did not finish) and a TTL past
//! the window. Items are numbered 1, 2, … per shard and written with `attribute_not_exists`,
//! so two writers never share a number and a reader that has item *n* knows exactly what it
//! has not seen: everything after *n*.
//!
//! A shard's ancestors (from the stream's listing, `ListShards`) hold its products' earlier
//! events: a batch reads their logs too, each to its end once (a child is read only after its
//! parents were drained, so an ancestor's log is then complete).
//!
//! Why written after the product writes: the log then holds only events whose effect is
//! stored, so a record whose batch was dead-lettered before it was applied is not in it,
//! and its retry is applied. A crash between the product writes and the log write fails
//! the batch; the Pipe redelivers it, the products see their records as redeliveries and
//! the redelivery logs them (see `fold_product_in`'s `to_log`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use chrono::Utc;
use inventory_domain::dedup::{decode_log, encode_log, LineageLogs, LogRecord, ShardLog};
use inventory_domain::SequenceNumber;
use xxhash_rust::xxh3::xxh3_64;

use crate::error::StoreError;
use crate::items::{self, Item};

/// Attempts to append when other writers keep taking the next item number.
const APPEND_ATTEMPTS: usize = 8;
/// Log items are kept this long past the window, for audits.
const TTL_MARGIN_SECS: i64 = 24 * 3600;
/// A log used this recently is never evicted: a batch of another shard may be between its
/// refresh and its fold (the local Pipe runs every shard in one process).
const EVICTION_GRACE: Duration = Duration::from_secs(60);

/// The shard log of one stream's shards: DynamoDB plus the warm instance's copy.
pub struct ShardLogStore {
    db: Client,
    table: String,
    window_ms: i64,
    max_entries: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// By partition key (`DEDUP#<stream>#<shard>`).
    logs: HashMap<String, ShardLog>,
    /// When each log was last used, to evict the coldest past `max_entries`.
    used: HashMap<String, Instant>,
    /// By partition key: changes whenever the log takes in items this instance did not
    /// write itself (another writer's appends, or a reload after a cold start or an
    /// eviction). What a cache of the shard's products checks to know it is still current.
    epochs: HashMap<String, u64>,
    /// The last epoch handed out; never reused, so a log dropped and reloaded gets a new one.
    last_epoch: u64,
}

impl State {
    fn bump_epoch(&mut self, pk: &str) {
        self.last_epoch += 1;
        let epoch = self.last_epoch;
        self.epochs.insert(pk.to_owned(), epoch);
    }

    fn touch(&mut self, keys: &[String]) {
        let now = Instant::now();
        for k in keys {
            self.used.insert(k.clone(), now);
        }
    }
}

/// DynamoDB work one call did, for cost accounting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogCost {
    pub read_requests: u64,
    pub items_read: u64,
    pub write_requests: u64,
    pub write_units: u64,
}

impl LogCost {
    pub fn add(&mut self, other: LogCost) {
        self.read_requests += other.read_requests;
        self.items_read += other.items_read;
        self.write_requests += other.write_requests;
        self.write_units += other.write_units;
    }
}

/// The partition of a shard's log.
pub fn partition(stream: &str, shard: &str) -> String {
    format!("DEDUP#{stream}#{shard}")
}

/// The stream's name from a record's `eventSourceARN` (`arn:…:stream/<name>`); the whole
/// text when it is not an ARN (tests).
pub fn stream_name(event_source_arn: &str) -> &str {
    event_source_arn
        .rsplit_once(":stream/")
        .map_or(event_source_arn, |(_, name)| name)
}

pub fn sort_key(number: u64) -> String {
    format!("{number:020}")
}

impl ShardLogStore {
    pub fn new(db: Client, table: String, window_ms: i64, max_entries: usize) -> Self {
        Self {
            db,
            table,
            window_ms,
            max_entries,
            state: Mutex::new(State::default()),
        }
    }

    pub fn window_ms(&self) -> i64 {
        self.window_ms
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves a consistent map (every change is one
        // insert or remove), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Brings the log of `shard` and of its `ancestors` (shard ids, from the stream's
    /// listing) up to date before a batch that starts at `oldest_arrival_ms`: a cold instance
    /// reads the window, a warm one reads the items written since its last (by another
    /// instance, after a reshard or a retry). An ancestor is read to its end once and then
    /// kept: its shard is closed and drained before a child's records are delivered.
    pub async fn refresh(
        &self,
        stream: &str,
        shard: &str,
        ancestors: &[String],
        oldest_arrival_ms: i64,
    ) -> Result<LogCost, StoreError> {
        let mut cost = LogCost::default();
        let pk = partition(stream, shard);
        let known = self.lock().logs.get(&pk).map(|l| l.high_water);
        match known {
            Some(high_water) => cost.add(self.read_after(&pk, high_water).await?.0),
            None => cost.add(self.load_window(&pk, oldest_arrival_ms).await?),
        }
        cost.add(
            self.seal_ancestors(stream, ancestors, oldest_arrival_ms)
                .await?,
        );
        let mut state = self.lock();
        let lineage = lineage_keys(stream, shard, ancestors);
        state.touch(&lineage);
        // Only the shard's own log: an ancestor may be shared with a sibling that lags, and
        // is dropped by eviction once unused.
        if let Some(log) = state.logs.get_mut(&pk) {
            log.prune(oldest_arrival_ms, self.window_ms);
        }
        evict(&mut state, &lineage, self.max_entries);
        Ok(cost)
    }

    /// Runs `f` with the log of `shard` and of its `ancestors` as one index.
    pub fn with_lineage<R>(
        &self,
        stream: &str,
        shard: &str,
        ancestors: &[String],
        f: impl FnOnce(&LineageLogs<'_>) -> R,
    ) -> R {
        let state = self.lock();
        let keys = lineage_keys(stream, shard, ancestors);
        let lineage = LineageLogs {
            logs: keys.iter().filter_map(|k| state.logs.get(k)).collect(),
        };
        f(&lineage)
    }

    /// Appends a batch's processed events to the shard's log: one conditional `PutItem` at
    /// the next item number; if another writer took it, reads what it wrote and takes the
    /// next. The memory copy changes only once the item is stored, so a failed append leaves
    /// the events to the redelivery, which logs them. `batch_arrivals` (oldest, newest)
    /// dates an item without records.
    pub async fn append(
        &self,
        stream: &str,
        shard: &str,
        records: &[LogRecord],
        attempt: &Attempt,
        batch_arrivals: (i64, i64),
    ) -> Result<LogCost, StoreError> {
        self.append_with(stream, shard, records, attempt, batch_arrivals, |_, _| {
            Ok(Vec::new())
        })
        .await
    }

    /// [`append`](Self::append), with the updates `with(item number, cost so far)` returns
    /// in the same `TransactWriteItems` as the log item, so they land with it or not at all
    /// (the shard's counters: `stats::updates`). The transaction's write units (twice each
    /// item's) are counted as the log's; the updated items are estimated at 1 KB each. An
    /// item is written when there are records to log or products the attempt left
    /// unfinished (what the dead-letter consumer reads to tell a skipped record from an
    /// applied one).
    pub async fn append_with(
        &self,
        stream: &str,
        shard: &str,
        records: &[LogRecord],
        attempt: &Attempt,
        batch_arrivals: (i64, i64),
        with: impl Fn(u64, LogCost) -> Result<Vec<Update>, StoreError>,
    ) -> Result<LogCost, StoreError> {
        let mut cost = LogCost::default();
        if records.is_empty() && attempt.unfinished.is_empty() && attempt.changed.is_empty() {
            return Ok(cost);
        }
        let pk = partition(stream, shard);
        let first = records
            .iter()
            .map(|r| r.arrival_ms)
            .min()
            .unwrap_or(batch_arrivals.0);
        let last = records
            .iter()
            .map(|r| r.arrival_ms)
            .max()
            .unwrap_or(batch_arrivals.1);
        let packed = encode_log(records);
        // Tells this call's item from another writer's with the same content.
        let writer = format!("{:016x}", nonce());
        for _ in 0..APPEND_ATTEMPTS {
            let number = self.lock().logs.get(&pk).map_or(0, |l| l.high_water) + 1;
            let mut item = log_item(&pk, number, &packed, attempt, first, last, self.window_ms);
            item.insert("writer".to_owned(), items::s(&writer));
            let units = write_units(&item);
            // A transaction bills each item twice; how many items `with` adds is known by
            // asking it (cheap: it only builds requests), then it is asked again with the
            // cost that includes this write.
            let extra = with(number, cost)?.len() as u64;
            let this = LogCost {
                write_requests: 1,
                write_units: if extra == 0 {
                    units
                } else {
                    2 * (units + extra)
                },
                ..LogCost::default()
            };
            let mut so_far = cost;
            so_far.add(this);
            let updates = with(number, so_far)?;
            cost.add(this);
            let result = self.put_log_item(item, updates, &writer, number).await;
            match result {
                Ok(_) => {
                    let mut state = self.lock();
                    let log = state.logs.entry(pk.clone()).or_default();
                    records.iter().for_each(|r| log.insert(*r));
                    log.high_water = log.high_water.max(number);
                    return Ok(cost);
                }
                Err(Taken::No(e)) => return Err(e),
                Err(Taken::Yes) => {
                    let high_water = self.lock().logs.get(&pk).map_or(0, |l| l.high_water);
                    let (read, items) = self.read_after(&pk, high_water).await?;
                    cost.add(read);
                    // Our own item: an earlier attempt of this PutItem was stored and only
                    // its answer was lost (the SDK then retried it into the condition).
                    let ours = items.iter().any(|item| {
                        item.get("sk").and_then(|v| v.as_s().ok()) == Some(&sort_key(number))
                            && item.get("writer").and_then(|v| v.as_s().ok()) == Some(&writer)
                    });
                    if ours {
                        return Ok(cost);
                    }
                }
            }
        }
        Err(StoreError::Contention {
            what: format!("shard log of {shard}"),
            attempts: APPEND_ATTEMPTS,
        })
    }

    /// Writes a log item if its number is free: a conditional PutItem, or with `updates` one
    /// `TransactWriteItems` (idempotent for the SDK's retries through its client token).
    async fn put_log_item(
        &self,
        item: Item,
        updates: Vec<Update>,
        writer: &str,
        number: u64,
    ) -> Result<(), Taken> {
        const CONDITION: &str = "attribute_not_exists(pk)";
        if updates.is_empty() {
            return match self
                .db
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression(CONDITION)
                .send()
                .await
            {
                Ok(_) => Ok(()),
                Err(e)
                    if matches!(
                        e.as_service_error(),
                        Some(PutItemError::ConditionalCheckFailedException(_))
                    ) =>
                {
                    Err(Taken::Yes)
                }
                Err(e) => Err(Taken::No(StoreError::dynamo("PutItem (shard log)", e))),
            };
        }
        let build = |e: aws_sdk_dynamodb::error::BuildError| {
            Taken::No(StoreError::Dynamo {
                operation: "TransactWriteItems (shard log)",
                message: e.to_string(),
            })
        };
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(CONDITION)
            .build()
            .map_err(build)?;
        let mut items = vec![TransactWriteItem::builder().put(put).build()];
        items.extend(
            updates
                .into_iter()
                .map(|u| TransactWriteItem::builder().update(u).build()),
        );
        let result = self
            .db
            .transact_write_items()
            .set_transact_items(Some(items))
            // At most 36 characters: the writer's nonce (16) and the item number (20).
            .client_request_token(format!("{writer}{number:020}"))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                // The log item's number was taken: reasons are in item order, the log first.
                let taken = match e.as_service_error() {
                    Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                        c.cancellation_reasons().first().and_then(|r| r.code())
                            == Some("ConditionalCheckFailed")
                    }
                    _ => false,
                };
                if taken {
                    Err(Taken::Yes)
                } else {
                    Err(Taken::No(StoreError::dynamo(
                        "TransactWriteItems (shard log and counters)",
                        e,
                    )))
                }
            }
        }
    }

    /// Reads the items after `high_water` (strongly consistent) into memory, to the end of
    /// the partition; returns them too.
    async fn read_after(
        &self,
        pk: &str,
        high_water: u64,
    ) -> Result<(LogCost, Vec<Item>), StoreError> {
        let mut cost = LogCost::default();
        let mut pages = self
            .db
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk > :sk")
            .expression_attribute_values(":pk", items::s(pk))
            .expression_attribute_values(":sk", items::s(sort_key(high_water)))
            .consistent_read(true)
            .into_paginator()
            .send();
        let mut read = Vec::new();
        let mut records = 0;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| StoreError::dynamo("Query (shard log)", e))?;
            cost.read_requests += 1;
            records += page.items().iter().map(record_count).sum::<usize>();
            self.check_size(pk, records)?;
            read.extend(page.items().iter().cloned());
        }
        cost.items_read += read.len() as u64;
        self.ingest(pk, &read)?;
        Ok((cost, read))
    }

    /// A cold start: reads the shard's items newest first until they are older than the
    /// window before `oldest_arrival_ms`, or to the shard's first item. A log that cannot be
    /// read that far (a failed page, or more events than memory allows) is an error and is
    /// not kept: it is never taken for complete.
    async fn load_window(&self, pk: &str, oldest_arrival_ms: i64) -> Result<LogCost, StoreError> {
        let mut cost = LogCost::default();
        let horizon = oldest_arrival_ms.saturating_sub(self.window_ms);
        let mut pages = self
            .db
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", items::s(pk))
            .scan_index_forward(false)
            .consistent_read(true)
            .into_paginator()
            .send();
        let mut read = Vec::new();
        let mut records = 0;
        'pages: while let Some(page) = pages.next().await {
            let page = page.map_err(|e| StoreError::dynamo("Query (shard log)", e))?;
            cost.read_requests += 1;
            for item in page.items() {
                records += record_count(item);
                self.check_size(pk, records)?;
                read.push(item.clone());
                if number_attr(item, "last_arrival_ms").is_some_and(|t| t < horizon) {
                    break 'pages;
                }
            }
        }
        cost.items_read += read.len() as u64;
        // Registered even when empty, so the next batch only reads what is newer; a (re)load
        // is a new epoch even when it finds nothing.
        {
            let mut state = self.lock();
            state.logs.entry(pk.to_owned()).or_default();
            state.bump_epoch(pk);
        }
        self.ingest(pk, &read)?;
        if let Some(log) = self.lock().logs.get_mut(pk) {
            // Complete from the horizon on, unless the read reached the shard's first item.
            let reached_start = read
                .iter()
                .any(|i| i.get("sk").and_then(|v| v.as_s().ok()) == Some(&sort_key(1)))
                || read.is_empty();
            log.loaded_from = if reached_start {
                None
            } else {
                Some(log.loaded_from.map_or(horizon, |f| f.min(horizon)))
            };
        }
        Ok(cost)
    }

    /// More events than this instance may hold: the log cannot be read whole.
    fn check_size(&self, pk: &str, records: usize) -> Result<(), StoreError> {
        if records > self.max_entries {
            return Err(StoreError::LogTooLarge {
                shard: pk.to_owned(),
                max: self.max_entries,
            });
        }
        Ok(())
    }

    /// Brings every ancestor's log up to date, once: a child is read only after its parents
    /// were drained, so an ancestor read to its end after that is complete (`sealed`), even
    /// when other instances wrote its last items.
    async fn seal_ancestors(
        &self,
        stream: &str,
        ancestors: &[String],
        oldest_arrival_ms: i64,
    ) -> Result<LogCost, StoreError> {
        let mut cost = LogCost::default();
        for ancestor in ancestors {
            let pk = partition(stream, ancestor);
            let horizon = oldest_arrival_ms.saturating_sub(self.window_ms);
            let known = self
                .lock()
                .logs
                .get(&pk)
                .map(|l| (l.sealed, l.high_water, l.loaded_from));
            match known {
                None => cost.add(self.load_window(&pk, oldest_arrival_ms).await?),
                Some((sealed, high_water, from)) => {
                    if !sealed {
                        cost.add(self.read_after(&pk, high_water).await?.0);
                    }
                    // Loaded or pruned for a later batch (a sibling that is ahead): read
                    // further back.
                    if from.is_some_and(|f| f > horizon) {
                        cost.add(self.load_window(&pk, oldest_arrival_ms).await?);
                    }
                }
            }
            let mut state = self.lock();
            state.logs.entry(pk.clone()).or_default().sealed = true;
            state.touch(std::slice::from_ref(&pk));
        }
        Ok(cost)
    }

    fn ingest(&self, pk: &str, read: &[Item]) -> Result<(), StoreError> {
        let mut state = self.lock();
        if !read.is_empty() {
            // Items read back are another writer's (or, rarely, one of ours whose answer
            // was lost: a needless but harmless change of epoch).
            state.bump_epoch(pk);
        }
        let log = state.logs.entry(pk.to_owned()).or_default();
        // Oldest first, so the first record of a key is the one kept.
        let mut ordered: Vec<(u64, &Item)> = read
            .iter()
            .map(|item| {
                let number = item
                    .get("sk")
                    .and_then(|v| v.as_s().ok())
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                (number, item)
            })
            .collect();
        ordered.sort_by_key(|(n, _)| *n);
        for (number, item) in ordered {
            let bytes = item
                .get("records")
                .and_then(|v| v.as_b().ok())
                .map(|b| b.as_ref())
                .unwrap_or_default();
            let records = decode_log(bytes).map_err(|e| StoreError::CorruptItem {
                key: format!("{pk}/{number}"),
                field: format!("records ({e})"),
            })?;
            records.into_iter().for_each(|r| log.insert(r));
            log.high_water = log.high_water.max(number);
        }
        Ok(())
    }

    /// The shard log's epoch (see [`State::epochs`]): equal between two calls (each after a
    /// [`refresh`](Self::refresh)) exactly when no log item written by anyone else was seen
    /// in between and the log was not reloaded, so whatever this instance learned about the
    /// shard's products is as current as the log says. `None` when the log is not held.
    pub fn epoch(&self, stream: &str, shard: &str) -> Option<u64> {
        self.lock().epochs.get(&partition(stream, shard)).copied()
    }

    /// Events held in memory, all shards together.
    pub fn entries(&self) -> usize {
        self.lock().logs.values().map(ShardLog::len).sum()
    }
}

/// The partitions of `shard`'s log and its ancestors'.
fn lineage_keys(stream: &str, shard: &str, ancestors: &[String]) -> Vec<String> {
    std::iter::once(shard)
        .chain(ancestors.iter().map(String::as_str))
        .map(|s| partition(stream, s))
        .collect()
}

/// How many events a log item packs (about: its records' bytes over 20).
fn record_count(item: &Item) -> usize {
    item.get("records")
        .and_then(|v| v.as_b().ok())
        .map_or(0, |b| {
            b.as_ref().len() / inventory_domain::dedup::LOG_RECORD_BYTES
        })
}

/// Drops the least recently used logs outside `keep` (and unused for a while) while memory
/// holds more than `max` events; a dropped log is read again if its shard comes back.
fn evict(state: &mut State, keep: &[String], max: usize) {
    loop {
        let total: usize = state.logs.values().map(ShardLog::len).sum();
        if total <= max {
            return;
        }
        let idle = |k: &String| {
            state
                .used
                .get(k)
                .is_none_or(|t| t.elapsed() >= EVICTION_GRACE)
        };
        let coldest = state
            .logs
            .keys()
            .filter(|k| !keep.contains(k) && idle(k))
            .min_by_key(|k| state.used.get(*k).copied())
            .cloned();
        let Some(k) = coldest else {
            tracing::warn!(
                events = total,
                max,
                "the shard logs in memory exceed dedup_max_entries, but every log is in use"
            );
            return;
        };
        state.logs.remove(&k);
        state.used.remove(&k);
        state.epochs.remove(&k);
    }
}

/// Why a log item was not written.
enum Taken {
    /// Another writer holds its number.
    Yes,
    No(StoreError),
}

/// A value no other writer shares (a log append's, a redrive's claim): std's per-process
/// random hash keys (advanced on every `RandomState::new`) over the current time.
pub fn nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

fn number_attr(item: &Item, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
}

fn log_item(
    pk: &str,
    number: u64,
    packed: &[u8],
    attempt: &Attempt,
    first_arrival_ms: i64,
    last_arrival_ms: i64,
    window_ms: i64,
) -> Item {
    let mut item = HashMap::from([
        ("pk".to_owned(), items::s(pk)),
        ("sk".to_owned(), items::s(sort_key(number))),
        ("records".to_owned(), AttributeValue::B(Blob::new(packed))),
        ("first_arrival_ms".to_owned(), items::n(first_arrival_ms)),
        ("last_arrival_ms".to_owned(), items::n(last_arrival_ms)),
        (
            "ttl".to_owned(),
            items::n(
                last_arrival_ms.max(Utc::now().timestamp_millis()) / 1000
                    + window_ms / 1000
                    + TTL_MARGIN_SECS,
            ),
        ),
    ]);
    if let Some((first, last)) = &attempt.range {
        item.insert("seq_from".to_owned(), items::s(first.as_str()));
        item.insert("seq_to".to_owned(), items::s(last.as_str()));
    }
    if !attempt.unfinished.is_empty() {
        let tags: Vec<u8> = attempt
            .unfinished
            .iter()
            .flat_map(|t| t.to_le_bytes())
            .collect();
        item.insert("unfinished".to_owned(), AttributeValue::B(Blob::new(tags)));
    }
    if !attempt.changed.is_empty() {
        item.insert(
            CHANGED.to_owned(),
            AttributeValue::Ss(attempt.changed.clone()),
        );
    }
    item
}

/// The log item's attribute naming the products whose items its delivery wrote or whose
/// events it logged (a string set of product ids): the change feed the API's catalog reads.
pub const CHANGED: &str = "changed";

/// What one delivery of a batch did on a shard, kept with its log item for the dead-letter
/// consumer: the first and last sequence numbers of the shard's records it was given, and
/// the products ([`product_tag`]) whose records it did not finish (their write failed, so
/// the Pipe retries from their first record). A record of the range whose product is not
/// unfinished was processed by that delivery. `changed` names the products whose items the
/// delivery wrote or whose events it logs ([`CHANGED`]); only the writer sets it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attempt {
    pub range: Option<(SequenceNumber, SequenceNumber)>,
    pub unfinished: Vec<u64>,
    pub changed: Vec<String>,
}

/// A product's name in [`Attempt::unfinished`]: 64 bits of its id.
pub fn product_tag(product_id: &str) -> u64 {
    xxh3_64(product_id.as_bytes())
}

impl Attempt {
    /// Whether this delivery was given the record at `sequence` and finished its product.
    pub fn finished(&self, sequence: &SequenceNumber, product_id: &str) -> Option<bool> {
        let (first, last) = self.range.as_ref()?;
        (first <= sequence && sequence <= last)
            .then(|| !self.unfinished.contains(&product_tag(product_id)))
    }
}

/// The deliveries logged on `shard` that arrived at or after `since_arrival_ms` (newest
/// first, as far back as the log's items reach): what the dead-letter consumer reads to tell
/// a record its delivery finished from one it did not.
pub async fn attempts(
    db: &Client,
    table: &str,
    stream: &str,
    shard: &str,
    since_arrival_ms: i64,
) -> Result<Vec<Attempt>, StoreError> {
    let mut pages = db
        .query()
        .table_name(table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", items::s(partition(stream, shard)))
        .projection_expression("seq_from, seq_to, unfinished, last_arrival_ms")
        .scan_index_forward(false)
        .consistent_read(true)
        .into_paginator()
        .send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| StoreError::dynamo("Query (shard log attempts)", e))?;
        for item in page.items() {
            if number_attr(item, "last_arrival_ms").is_some_and(|t| t < since_arrival_ms) {
                return Ok(out);
            }
            let seq = |name: &str| {
                item.get(name)
                    .and_then(|v| v.as_s().ok())
                    .and_then(|s| SequenceNumber::parse(s).ok())
            };
            let unfinished = item
                .get("unfinished")
                .and_then(|v| v.as_b().ok())
                .map(|b| {
                    b.as_ref()
                        .chunks_exact(8)
                        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                        .collect()
                })
                .unwrap_or_default();
            out.push(Attempt {
                range: seq("seq_from").zip(seq("seq_to")),
                unfinished,
                changed: Vec::new(),
            });
        }
    }
    Ok(out)
}

/// DynamoDB's write units for an item: its size (attribute names plus values) in 1 KB
/// units, rounded up.
pub fn write_units(item: &Item) -> u64 {
    item_size(item).div_ceil(1024).max(1) as u64
}

/// An item's size as DynamoDB bills it: attribute names plus values, in bytes.
pub fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::B(b) => b.as_ref().len(),
        // Numbers: about one byte per two significant digits, plus one.
        AttributeValue::N(n) => n.len().div_ceil(2) + 1,
        AttributeValue::Ss(v) => v.iter().map(String::len).sum(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_come_from_the_arn() {
        assert_eq!(
            stream_name("arn:aws:kinesis:us-east-1:123456789012:stream/inventory-events"),
            "inventory-events"
        );
        assert_eq!(stream_name("plain"), "plain");
    }

    fn item_for(records: usize) -> Item {
        use inventory_domain::dedup::{DedupKey, LogKey};
        let records: Vec<LogRecord> = (0..records)
            .map(|i| LogRecord {
                key: LogKey::Wide(DedupKey::of("P", &format!("e{i}"))),
                content: 1,
                record: i as u32,
                arrival_ms: 1_700_000_000_000 + i as i64,
            })
            .collect();
        // Sequence numbers as Kinesis writes them: 56 digits.
        let seq = |n: u64| {
            SequenceNumber::parse(&format!(
                "4965432100000000000000000000000000000000000{n:013}"
            ))
            .unwrap()
        };
        let mut item = log_item(
            &partition("inventory-events", "shardId-000000000003"),
            42,
            &encode_log(&records),
            &Attempt {
                range: Some((seq(1), seq(records.len() as u64))),
                unfinished: Vec::new(),
                changed: Vec::new(),
            },
            1_700_000_000_000,
            1_700_000_000_999,
            900_000,
        );
        item.insert("writer".to_owned(), items::s(format!("{:016x}", u64::MAX)));
        item
    }

    /// The shard log's share of the cost table (docs/performance.md): its write units per
    /// batch did not rise when keys went from 64 to 96 bits and the attempt was added.
    #[test]
    fn a_log_item_costs_three_write_units_at_a_hundred_records_and_twenty_at_a_thousand() {
        assert_eq!(write_units(&item_for(100)), 3);
        assert_eq!(write_units(&item_for(1_000)), 20);
    }

    #[test]
    fn an_attempt_says_which_records_it_finished() {
        let seq = |n: u64| SequenceNumber::parse(&n.to_string()).unwrap();
        let attempt = Attempt {
            range: Some((seq(10), seq(20))),
            unfinished: vec![product_tag("P2")],
            changed: Vec::new(),
        };
        assert_eq!(attempt.finished(&seq(15), "P1"), Some(true));
        assert_eq!(attempt.finished(&seq(15), "P2"), Some(false));
        assert_eq!(attempt.finished(&seq(21), "P1"), None);
        assert_eq!(Attempt::default().finished(&seq(15), "P1"), None);
    }
}
