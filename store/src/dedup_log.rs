//! The shard log of processed events in DynamoDB, and its copy in the warm instance's memory
//! (the pure format and index are `inventory_domain::dedup`).
//!
//! One item per batch and shard in the events table: `pk = DEDUP#<stream>#<shard>`,
//! `sk = <item number, 20 digits>`, the batch's processed events packed 16 bytes each
//! (`records`), their arrival range, the shards its products came from (`parents`) and a
//! TTL past the window. Items are numbered 1, 2, … per shard and written with
//! `attribute_not_exists`, so two writers never share a number and a reader that has item
//! *n* knows exactly what it has not seen: everything after *n*.
//!
//! Why written after the product writes: the log then holds only events whose effect is
//! stored, so a record whose batch was dead-lettered before it was applied is not in it,
//! and its retry is applied. A crash between the product writes and the log write fails
//! the batch; the Pipe redelivers it, the products see their records as redeliveries and
//! the redelivery logs them (see `fold_product_in`'s `to_log`).

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use chrono::Utc;
use inventory_domain::dedup::{decode_log, encode_log, Lineage, LogRecord, ShardLog};

use crate::error::StoreError;
use crate::items::{self, Item};

/// How many items one refresh reads at most before giving up on a shard that is being
/// written faster than it can be read (it then fails the batch, which the Pipe retries).
const MAX_REFRESH_PAGES: usize = 1_000;
/// Attempts to append when other writers keep taking the next item number.
const APPEND_ATTEMPTS: usize = 8;
/// Ancestors followed from one shard (a split or merge adds one generation).
const MAX_LINEAGE_DEPTH: usize = 32;
/// Log items are kept this long past the window, for audits.
const TTL_MARGIN_SECS: i64 = 24 * 3600;
/// A log used this recently is never evicted: a batch of another shard may be between its
/// refresh and its fold (the local Pipe runs every shard in one process).
const EVICTION_GRACE: Duration = Duration::from_secs(60);

/// The shard log of one stream's shards: DynamoDB plus the warm instance's copy.
pub struct DedupLog {
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

fn sort_key(number: u64) -> String {
    format!("{number:020}")
}

impl DedupLog {
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

    /// Brings the log of `shard` (and of the ancestors it names) up to date before a batch
    /// that starts at `oldest_arrival_ms`: a cold instance reads the window, a warm one reads
    /// the items written since its last (by another instance, after a reshard or a retry).
    pub async fn refresh(
        &self,
        stream: &str,
        shard: &str,
        oldest_arrival_ms: i64,
    ) -> Result<LogCost, StoreError> {
        let mut cost = LogCost::default();
        let pk = partition(stream, shard);
        let known = self.lock().logs.get(&pk).map(|l| l.high_water);
        match known {
            Some(high_water) => cost.add(self.read_after(&pk, high_water).await?.0),
            None => cost.add(self.load_window(&pk, oldest_arrival_ms).await?),
        }
        cost.add(self.load_parents(stream, shard, oldest_arrival_ms).await?);
        let mut state = self.lock();
        let lineage = lineage_keys(&state.logs, stream, &pk);
        state.touch(&lineage);
        // Only the shard's own log: an ancestor may be shared with a sibling that lags, and
        // is dropped by eviction once unused.
        if let Some(log) = state.logs.get_mut(&pk) {
            log.prune(oldest_arrival_ms, self.window_ms);
        }
        evict(&mut state, &lineage, self.max_entries);
        Ok(cost)
    }

    /// Products of `shard` came from `parent` (their items name it): loads the parent's log
    /// (and its ancestors') if this instance does not hold it. Returns whether the link is
    /// new to the shard's log; a new link is written with the batch's log item (`append`),
    /// so a cold instance finds the parent too, and is only in memory once written.
    pub async fn link_parent(
        &self,
        stream: &str,
        shard: &str,
        parent: &str,
        oldest_arrival_ms: i64,
    ) -> Result<(bool, LogCost), StoreError> {
        let new = !self
            .lock()
            .logs
            .get(&partition(stream, shard))
            .is_some_and(|l| l.parents.iter().any(|p| p == parent));
        let cost = self
            .seal_ancestors(stream, vec![parent.to_owned()], oldest_arrival_ms)
            .await?;
        Ok((new, cost))
    }

    /// Runs `f` with the log of `shard` and its ancestors as one index.
    pub fn with_lineage<R>(
        &self,
        stream: &str,
        shard: &str,
        f: impl FnOnce(&Lineage<'_>) -> R,
    ) -> R {
        let state = self.lock();
        let keys = lineage_keys(&state.logs, stream, &partition(stream, shard));
        let lineage = Lineage {
            logs: keys.iter().filter_map(|k| state.logs.get(k)).collect(),
        };
        f(&lineage)
    }

    /// Appends a batch's processed events (or links to parent shards) to the shard's log:
    /// one conditional `PutItem` at the next item number; if another writer took it, reads
    /// what it wrote and takes the next. The memory copy changes only once the item is
    /// stored, so a failed append leaves the events to the redelivery, which logs them.
    /// `batch_arrivals` (oldest, newest) dates an item without records.
    pub async fn append(
        &self,
        stream: &str,
        shard: &str,
        records: &[LogRecord],
        parents: &[String],
        batch_arrivals: (i64, i64),
    ) -> Result<LogCost, StoreError> {
        self.append_with(stream, shard, records, parents, batch_arrivals, |_, _| {
            Ok(Vec::new())
        })
        .await
    }

    /// [`append`](Self::append), with the updates `with(item number, cost so far)` returns
    /// in the same `TransactWriteItems` as the log item, so they land with it or not at all
    /// (the shard's counters: `stats::updates`). The transaction's write units (twice each
    /// item's) are counted as the log's; the updated items are estimated at 1 KB each.
    pub async fn append_with(
        &self,
        stream: &str,
        shard: &str,
        records: &[LogRecord],
        parents: &[String],
        batch_arrivals: (i64, i64),
        with: impl Fn(u64, LogCost) -> Result<Vec<Update>, StoreError>,
    ) -> Result<LogCost, StoreError> {
        let mut cost = LogCost::default();
        if records.is_empty() && parents.is_empty() {
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
            let mut item = log_item(&pk, number, &packed, parents, first, last, self.window_ms);
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
                    for p in parents {
                        log.add_parent(p);
                    }
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
                        let mut state = self.lock();
                        let log = state.logs.entry(pk.clone()).or_default();
                        for p in parents {
                            log.add_parent(p);
                        }
                        return Ok(cost);
                    }
                }
            }
        }
        Err(StoreError::Contention {
            what: format!("dedup log of {shard}"),
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
                Err(e) => Err(Taken::No(StoreError::dynamo("PutItem (dedup log)", e))),
            };
        }
        let build = |e: aws_sdk_dynamodb::error::BuildError| {
            Taken::No(StoreError::Dynamo {
                operation: "TransactWriteItems (dedup log)",
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
                        "TransactWriteItems (dedup log and counters)",
                        e,
                    )))
                }
            }
        }
    }

    /// Reads the items after `high_water` (strongly consistent) into memory; returns them too.
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
        let mut n = 0;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| StoreError::dynamo("Query (dedup log)", e))?;
            cost.read_requests += 1;
            read.extend(page.items().iter().cloned());
            n += 1;
            if n >= MAX_REFRESH_PAGES {
                break;
            }
        }
        cost.items_read += read.len() as u64;
        self.ingest(pk, &read)?;
        Ok((cost, read))
    }

    /// A cold start: reads the shard's items newest first until they are older than the
    /// window before `oldest_arrival_ms`.
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
        'pages: while let Some(page) = pages.next().await {
            let page = page.map_err(|e| StoreError::dynamo("Query (dedup log)", e))?;
            cost.read_requests += 1;
            for item in page.items() {
                read.push(item.clone());
                if number_attr(item, "last_arrival_ms").is_some_and(|t| t < horizon) {
                    break 'pages;
                }
            }
            if cost.read_requests as usize >= MAX_REFRESH_PAGES {
                break;
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

    /// Brings every ancestor of `shard` (named by its log, and theirs) up to date, once:
    /// a child is read only after its parents were drained, so an ancestor read to its end
    /// after that is complete (`sealed`), even when other instances wrote its last items.
    async fn load_parents(
        &self,
        stream: &str,
        shard: &str,
        oldest_arrival_ms: i64,
    ) -> Result<LogCost, StoreError> {
        let start = self
            .lock()
            .logs
            .get(&partition(stream, shard))
            .map(|l| l.parents.clone())
            .unwrap_or_default();
        self.seal_ancestors(stream, start, oldest_arrival_ms).await
    }

    async fn seal_ancestors(
        &self,
        stream: &str,
        ancestors: Vec<String>,
        oldest_arrival_ms: i64,
    ) -> Result<LogCost, StoreError> {
        let mut cost = LogCost::default();
        let mut seen = BTreeSet::new();
        let mut todo: Vec<String> = ancestors.iter().map(|a| partition(stream, a)).collect();
        while let Some(pk) = todo.pop() {
            if !seen.insert(pk.clone()) || seen.len() > MAX_LINEAGE_DEPTH {
                continue;
            }
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
            let log = state.logs.entry(pk.clone()).or_default();
            log.sealed = true;
            let parents: Vec<String> = log.parents.clone();
            state.touch(std::slice::from_ref(&pk));
            todo.extend(parents.iter().map(|p| partition(stream, p)));
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
            if let Some(parents) = item.get("parents").and_then(|v| v.as_ss().ok()) {
                for p in parents {
                    log.add_parent(p);
                }
            }
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

fn lineage_keys(logs: &HashMap<String, ShardLog>, stream: &str, pk: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![pk.to_owned()];
    while let Some(k) = todo.pop() {
        if out.contains(&k) || out.len() > MAX_LINEAGE_DEPTH {
            continue;
        }
        if let Some(log) = logs.get(&k) {
            todo.extend(log.parents.iter().map(|p| partition(stream, p)));
        }
        out.push(k);
    }
    out
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

/// A value no other append shares: std's per-process random hash keys (advanced on every
/// `RandomState::new`) over the current time.
fn nonce() -> u64 {
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
    parents: &[String],
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
    if !parents.is_empty() {
        item.insert("parents".to_owned(), AttributeValue::Ss(parents.to_vec()));
    }
    item
}

/// DynamoDB's write units for an item: its size (attribute names plus values) in 1 KB
/// units, rounded up.
pub fn write_units(item: &Item) -> u64 {
    let size: usize = item
        .iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum();
    size.div_ceil(1024).max(1) as u64
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

    #[test]
    fn a_batch_of_a_hundred_costs_three_write_units() {
        let records: Vec<LogRecord> = (0..100)
            .map(|i| LogRecord {
                key: i,
                content: 1,
                record: i as u32,
                arrival_ms: 1_700_000_000_000 + i as i64,
            })
            .collect();
        let item = log_item(
            &partition("inventory-events", "shardId-000000000003"),
            42,
            &encode_log(&records),
            &[],
            1_700_000_000_000,
            1_700_000_000_099,
            900_000,
        );
        assert_eq!(write_units(&item), 3);
    }
}
