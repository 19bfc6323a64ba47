//! The batch handler: Pipes records in, exactly-once product state in DynamoDB out.
//!
//! 1. Decode and validate every record (pure); malformed ones become rejections.
//! 2. Group the valid events by product, in stream order.
//! 3. Read the touched products' items (BatchGetItem, 100 keys a page, consistent).
//! 4. Fold each product's events over its item (pure): redeliveries and producer
//!    duplicates are skipped, invalid transitions rejected.
//! 5. Record every rejection (idempotent keys), then write each changed product once,
//!    conditional on the version and position read in step 3 (optimistic concurrency).
//! 6. Report the first record whose work did not complete as the batch item failure, so the
//!    Pipe retries from there; everything before it is applied exactly once.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, KeysAndAttributes, PutRequest,
    ReturnValuesOnConditionCheckFailure, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
pub use inventory_domain::batch::{
    decode, decode_batch, decode_pipe_batch, DecodedBatch, ProductWork,
};
use inventory_domain::dedup::{self, LogRecord};
use inventory_domain::pipes::PipeBatch;
use inventory_domain::{
    fold_product_in, BatchItemFailure, BatchResponse, DuplicateKind, Outcome, PipeRecord,
    ProductFold, ProductRecord, Rejection, RejectionReason,
};

use crate::error::ProcessorError;
use inventory_store::dedup_log::{stream_name, DedupLog, LogCost};
use inventory_store::items::{self, Item, RejectedRecord};
use inventory_store::{StoreError, Tables};

/// BatchGetItem's limit.
const READ_PAGE: usize = 100;
/// BatchWriteItem's limit.
const WRITE_PAGE: usize = 25;
/// Attempts for items DynamoDB leaves unprocessed in a batch call (throttling).
const UNPROCESSED_ATTEMPTS: u32 = 8;

#[derive(Debug, Clone)]
pub struct ProcessorSettings {
    /// Product writes in flight at once.
    pub write_concurrency: usize,
    /// Re-reads after a lost optimistic-concurrency race before the record is retried.
    pub max_conflict_retries: usize,
    /// A producer's duplicate arriving up to this long after its original is recognised,
    /// at any distance in events (docs/consistency.md). At most the stream's retention.
    pub dedup_window: Duration,
    /// Events of the shard log kept in memory, all shards together (16-40 bytes each);
    /// past it the coldest shards' logs are dropped and read again when needed.
    pub dedup_max_entries: usize,
}

impl Default for ProcessorSettings {
    fn default() -> Self {
        Self {
            write_concurrency: 32,
            max_conflict_retries: 8,
            dedup_window: Duration::from_millis(dedup::DEFAULT_WINDOW_MS as u64),
            dedup_max_entries: 4_000_000,
        }
    }
}

/// The environment variable that sets [`ProcessorSettings::dedup_window`], in seconds.
pub const DEDUP_WINDOW_VAR: &str = "DEDUP_WINDOW_SECONDS";

impl ProcessorSettings {
    /// Defaults, with the dedup window from `DEDUP_WINDOW_SECONDS` when set.
    pub fn from_env() -> Result<Self, ProcessorError> {
        let mut settings = Self::default();
        if let Ok(raw) = std::env::var(DEDUP_WINDOW_VAR) {
            let secs: u64 = raw
                .trim()
                .parse()
                .ok()
                .filter(|s| *s >= 1 && (*s as i64) * 1000 <= dedup::MAX_WINDOW_MS)
                .ok_or_else(|| ProcessorError::Setting {
                    name: DEDUP_WINDOW_VAR,
                    value: raw.clone(),
                    rule: "a whole number of seconds from 1 to 31536000 (365 days), at most the stream's retention",
                })?;
            settings.dedup_window = Duration::from_secs(secs);
        }
        Ok(settings)
    }
}

/// The processor with its clients, built once per cold start.
#[derive(Clone)]
pub struct Processor {
    db: Client,
    tables: Arc<Tables>,
    settings: ProcessorSettings,
    log: Arc<DedupLog>,
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
    pub product_write_requests: u64,
    pub rejection_write_requests: u64,
    /// The shard log's reads and writes (what exactly-once at any distance costs).
    pub log: LogCost,
}

impl BatchReport {
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

impl Processor {
    pub fn new(db: Client, tables: Tables) -> Self {
        Self::with_settings(db, tables, ProcessorSettings::default())
    }

    pub fn with_settings(db: Client, tables: Tables, settings: ProcessorSettings) -> Self {
        let window_ms = i64::try_from(settings.dedup_window.as_millis())
            .unwrap_or(dedup::MAX_WINDOW_MS)
            .clamp(1, dedup::MAX_WINDOW_MS);
        let log = DedupLog::new(
            db.clone(),
            tables.events.clone(),
            window_ms,
            settings.dedup_max_entries,
        );
        Self {
            db,
            tables: Arc::new(tables),
            settings,
            log: Arc::new(log),
        }
    }

    /// Events of the shard log this instance holds in memory.
    pub fn dedup_entries(&self) -> usize {
        self.log.entries()
    }

    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// The Lambda entry point: returns the partial batch failure response.
    pub async fn handle(&self, records: Vec<PipeRecord>) -> BatchResponse {
        self.process(&records).await.response
    }

    pub async fn process(&self, records: &[PipeRecord]) -> BatchReport {
        self.run(records).await
    }

    /// The Lambda entry point for a batch read as a [`PipeBatch`] (one buffer for all its
    /// strings instead of eleven per record).
    pub async fn handle_batch(&self, batch: &PipeBatch) -> BatchResponse {
        self.process_batch(batch).await.response
    }

    /// The Lambda entry point for the invocation body as it arrives (the JSON bytes Pipes
    /// sends), read once and in place by [`crate::body::read_body`].
    pub async fn handle_body(&self, body: Vec<u8>) -> Result<BatchResponse, ProcessorError> {
        let batch = crate::body::read_body(body)?;
        Ok(self.handle_batch(&batch).await)
    }

    pub async fn process_batch(&self, batch: &PipeBatch) -> BatchReport {
        self.run(batch).await
    }

    async fn run<R: Records + ?Sized>(&self, records: &R) -> BatchReport {
        let now = Utc::now();
        let mut report = BatchReport {
            records: records.count(),
            ..BatchReport::default()
        };
        // Indices of records whose work did not complete; the smallest is reported.
        let mut failed: Vec<usize> = Vec::new();

        // 1-2. Decode, validate, group.
        let DecodedBatch {
            malformed,
            products: work,
        } = records.decode();

        // 3a. The shard log, up to date: what other instances logged since this one last
        // saw the shard (or the whole window after a cold start).
        let oldest = (0..report.records)
            .map(|i| records.arrival_millis(i))
            .min()
            .unwrap_or(0);
        let mut shard_of: Vec<ShardKey> = Vec::with_capacity(work.len());
        let mut shards: BTreeMap<ShardKey, Option<String>> = BTreeMap::new();
        for w in &work {
            let key = records.shard_key(w.indices[0]);
            shards.entry(key.clone()).or_insert(None);
            shard_of.push(key);
        }
        for (key, error) in shards.iter_mut() {
            match self.log.refresh(&key.0, &key.1, oldest).await {
                Ok(cost) => report.log.add(cost),
                Err(e) => *error = Some(e.to_string()),
            }
        }

        // 3b. Read current items.
        let ids: Vec<&str> = work.iter().map(|w| w.product_id.as_str()).collect();
        let (current, reads, unread) = self.load_products(&ids).await;
        report.read_requests = reads;

        // 3c. Lineage: a product whose item names an older shard than its records moved
        // here in a split or merge, and that shard's log holds its earlier events. A new
        // link is written to the shard's log before any product moves past it, so neither a
        // redelivery (whose products already name this shard) nor a cold instance loses it.
        let newest = (0..report.records)
            .map(|i| records.arrival_millis(i))
            .max()
            .unwrap_or(0);
        let mut links: BTreeMap<ShardKey, Vec<String>> = BTreeMap::new();
        for (w, shard) in work.iter().zip(&shard_of) {
            let ordinal = w.events.first().map_or(0, |e| e.shard);
            let from = current
                .get(&w.product_id)
                .and_then(|s| s.last_shard)
                .filter(|o| *o < ordinal);
            if let Some(from) = from {
                let parent = dedup::shard_id(from);
                let found = links.entry(shard.clone()).or_default();
                if !found.contains(&parent) {
                    found.push(parent);
                }
            }
        }
        for (shard, parents) in &links {
            let mut new = Vec::new();
            let mut linked = Ok(());
            for parent in parents {
                match self
                    .log
                    .link_parent(&shard.0, &shard.1, parent, oldest)
                    .await
                {
                    Ok((is_new, cost)) => {
                        report.log.add(cost);
                        if is_new {
                            new.push(parent.clone());
                        }
                    }
                    Err(e) => linked = Err(e),
                }
            }
            if linked.is_ok() && !new.is_empty() {
                linked = self
                    .log
                    .append(&shard.0, &shard.1, &[], &new, (oldest, newest))
                    .await
                    .map(|cost| report.log.add(cost));
            }
            if let Err(e) = linked {
                tracing::warn!(shard = %shard.1, error = %e, "could not link the shard to its parents' logs; will be retried");
                shards.insert(shard.clone(), Some(e.to_string()));
            }
        }

        // 4. Fold (pure), against the log of the product's shard and its ancestors.
        let window = self.log.window_ms();
        let mut folds = Vec::with_capacity(work.len());
        for (w, shard) in work.into_iter().zip(shard_of) {
            let unavailable = unread
                .get(&w.product_id)
                .or(shards.get(&shard).and_then(Option::as_ref));
            if let Some(err) = unavailable {
                tracing::warn!(product_id = %w.product_id, error = %err, "could not read product or its shard log; will be retried");
                failed.push(w.indices[0]);
                continue;
            }
            let stored = current.get(&w.product_id).cloned();
            let fold = self.log.with_lineage(&shard.0, &shard.1, |index| {
                fold_product_in(stored.clone(), &w.events, index, window)
            });
            folds.push((w, shard, stored, fold));
        }

        // 5a. Record rejections before any product moves past them, so a record whose
        // rejection could not be written is retried rather than lost.
        let mut to_record: Vec<(usize, Rejection, Option<usize>)> = malformed
            .iter()
            .map(|(i, r)| (*i, r.clone(), None))
            .collect();
        for (k, (w, _, _, fold)) in folds.iter().enumerate() {
            for (i, o) in w.indices.iter().zip(&fold.outcomes) {
                if let Outcome::Rejected(r) = o {
                    to_record.push((*i, r.clone(), Some(k)));
                }
            }
        }
        let (requests, unwritten) = self.put_rejections(records, &to_record, &folds, now).await;
        report.rejection_write_requests += requests;
        let mut blocked_products: HashSet<usize> = HashSet::new();
        for (i, _, product) in to_record.iter().filter(|(i, ..)| unwritten.contains(i)) {
            match product {
                // The whole product waits for its rejection, including its events before
                // the rejected one, so the Pipe must retry from the product's first record.
                Some(k) => {
                    blocked_products.insert(*k);
                    failed.push(folds[*k].0.indices[0]);
                }
                None => failed.push(*i),
            }
        }

        // 5b. One conditional write per changed product.
        let writes = folds
            .into_iter()
            .enumerate()
            .filter(|(k, _)| !blocked_products.contains(k))
            .map(|(_, (w, shard, stored, fold))| {
                let this = self.clone();
                async move {
                    let result = this.settle(records, &w, &shard, stored, fold, now).await;
                    (w, shard, result)
                }
            });
        let settled: Vec<_> = stream::iter(writes)
            .buffer_unordered(self.settings.write_concurrency.max(1))
            .collect()
            .await;

        let mut max_applied_arrival: Option<i64> = None;
        let mut to_log: BTreeMap<ShardKey, Vec<LogRecord>> = BTreeMap::new();
        for (w, shard, result) in settled {
            match result {
                Ok(s) => {
                    to_log.entry(shard).or_default().extend(s.to_log);
                    report.product_write_requests += s.write_requests;
                    report.rejection_write_requests += s.rejection_requests;
                    if s.written {
                        report.products_written += 1;
                    }
                    for (i, o) in w.indices.iter().zip(&s.outcomes) {
                        match o {
                            Outcome::Applied => {
                                report.applied += 1;
                                let arrival = records.arrival_millis(*i);
                                max_applied_arrival =
                                    Some(max_applied_arrival.map_or(arrival, |m| m.max(arrival)));
                            }
                            Outcome::Duplicate(DuplicateKind::Redelivery) => {
                                report.redeliveries += 1
                            }
                            Outcome::Duplicate(DuplicateKind::ProducerDuplicate) => {
                                report.producer_duplicates += 1
                            }
                            Outcome::Rejected(r) => {
                                *report.rejected.entry(r.reason).or_default() += 1
                            }
                        }
                    }
                }
                Err(err) => {
                    report.product_write_requests += 1;
                    tracing::warn!(product_id = %w.product_id, error = %err, "product write failed; the Pipe will retry from its first record");
                    failed.push(w.indices[0]);
                }
            }
        }
        for (i, r) in &malformed {
            if !unwritten.contains(i) {
                *report.rejected.entry(r.reason).or_default() += 1;
            }
        }

        // 5c. The shard log, after the writes it vouches for (dedup_log.rs says why). If it
        // cannot be written, the whole shard's part of the batch is retried: the products
        // see their records as redeliveries and the retry logs them.
        for (key, logged) in &to_log {
            if logged.is_empty() {
                continue;
            }
            match self
                .log
                .append(&key.0, &key.1, logged, &[], (oldest, newest))
                .await
            {
                Ok(cost) => report.log.add(cost),
                Err(e) => {
                    tracing::warn!(shard = %key.1, error = %e, "could not write the shard log; the Pipe will retry the batch");
                    if let Some(first) = (0..report.records).find(|i| records.shard_key(*i) == *key)
                    {
                        failed.push(first);
                    }
                }
            }
        }

        // 6. Observability counters; a failure here must not fail the batch.
        if let Err(err) = self.add_stats(&report, max_applied_arrival, now).await {
            tracing::warn!(error = %err, "could not update statistics");
        }

        if let Some(first) = failed.iter().min() {
            report.response = BatchResponse {
                batch_item_failures: vec![BatchItemFailure {
                    item_identifier: records.event_id(*first).to_owned(),
                }],
            };
        }
        tracing::info!(
            records = report.records,
            applied = report.applied,
            redeliveries = report.redeliveries,
            producer_duplicates = report.producer_duplicates,
            rejected = report.rejected_total(),
            products_written = report.products_written,
            failed_from = ?failed.iter().min().map(|i| records.event_id(*i)),
            "batch processed"
        );
        report
    }

    /// Reads the products' items. Returns the items found, the number of requests, and the
    /// products that could not be read with the error.
    async fn load_products(
        &self,
        ids: &[&str],
    ) -> (HashMap<String, ProductRecord>, u64, HashMap<String, String>) {
        let mut found = HashMap::new();
        let mut unread = HashMap::new();
        let mut requests = 0;
        for page in ids.chunks(READ_PAGE) {
            let mut keys: Vec<Item> = page.iter().map(|id| items::product_key(id)).collect();
            let mut attempt = 0;
            while !keys.is_empty() {
                attempt += 1;
                requests += 1;
                let ka = match KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut keys)))
                    .consistent_read(true)
                    .build()
                {
                    Ok(ka) => ka,
                    Err(e) => {
                        for id in page {
                            unread.insert((*id).to_owned(), e.to_string());
                        }
                        break;
                    }
                };
                let sent_keys = ka.keys().to_vec();
                match self
                    .db
                    .batch_get_item()
                    .request_items(&self.tables.inventory, ka)
                    .send()
                    .await
                {
                    Ok(out) => {
                        for item in out
                            .responses()
                            .and_then(|r| r.get(&self.tables.inventory))
                            .into_iter()
                            .flatten()
                        {
                            match items::product_from_item(item) {
                                Ok(rec) => {
                                    found.insert(rec.product_id.clone(), rec);
                                }
                                Err(e) => {
                                    let id = item
                                        .get(items::PRODUCT_ID)
                                        .and_then(|v| v.as_s().ok())
                                        .cloned()
                                        .unwrap_or_default();
                                    unread.insert(id, e.to_string());
                                }
                            }
                        }
                        keys = out
                            .unprocessed_keys()
                            .and_then(|u| u.get(&self.tables.inventory))
                            .map(|ka| ka.keys().to_vec())
                            .unwrap_or_default();
                        if !keys.is_empty() {
                            if attempt >= UNPROCESSED_ATTEMPTS {
                                for k in &keys {
                                    if let Some(AttributeValue::S(id)) = k.get(items::PRODUCT_ID) {
                                        unread.insert(
                                            id.clone(),
                                            "left unprocessed (throttled)".into(),
                                        );
                                    }
                                }
                                break;
                            }
                            backoff(attempt).await;
                        }
                    }
                    Err(e) => {
                        let msg = ProcessorError::dynamo("BatchGetItem", e).to_string();
                        for k in &sent_keys {
                            if let Some(AttributeValue::S(id)) = k.get(items::PRODUCT_ID) {
                                unread.insert(id.clone(), msg.clone());
                            }
                        }
                        break;
                    }
                }
            }
        }
        (found, requests, unread)
    }

    /// Writes rejection items in BatchWriteItem pages. Returns the requests made and the
    /// batch indices whose rejection could not be written.
    async fn put_rejections<R: Records + ?Sized>(
        &self,
        records: &R,
        to_record: &[(usize, Rejection, Option<usize>)],
        folds: &[(ProductWork, ShardKey, Option<ProductRecord>, ProductFold)],
        now: DateTime<Utc>,
    ) -> (u64, HashSet<usize>) {
        let items: Vec<(usize, Item)> = to_record
            .iter()
            .map(|(i, rejection, product)| {
                let event = product.and_then(|k| {
                    let (w, ..) = &folds[k];
                    w.indices
                        .iter()
                        .position(|x| x == i)
                        .map(|p| &w.events[p].event)
                });
                let record = records.record(*i);
                let item = items::rejection_to_item(
                    &RejectedRecord {
                        record: &record,
                        rejection,
                        product_id: event.map(|e| e.product_id.as_str()),
                        event_id: event.and_then(|e| e.event_id.as_deref()),
                    },
                    now,
                );
                (*i, item)
            })
            .collect();
        self.batch_write(items, |item| {
            PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map(|p| WriteRequest::builder().put_request(p).build())
        })
        .await
    }

    /// Deletes rejection items that a re-fold no longer rejects.
    async fn delete_rejections(&self, keys: Vec<(usize, Item)>) -> (u64, HashSet<usize>) {
        self.batch_write(keys, |key| {
            DeleteRequest::builder()
                .set_key(Some(key))
                .build()
                .map(|d| WriteRequest::builder().delete_request(d).build())
        })
        .await
    }

    async fn batch_write(
        &self,
        items: Vec<(usize, Item)>,
        to_request: impl Fn(Item) -> Result<WriteRequest, aws_sdk_dynamodb::error::BuildError>,
    ) -> (u64, HashSet<usize>) {
        let mut requests = 0;
        let mut unwritten = HashSet::new();
        for page in items.chunks(WRITE_PAGE) {
            // A page may not name one key twice; the key is all that identifies a request.
            let mut pending: Vec<(usize, WriteRequest)> = Vec::new();
            let mut seen = HashSet::new();
            for (i, item) in page {
                let key = (item.get("pk").cloned(), item.get("sk").cloned());
                if !seen.insert(format!("{key:?}")) {
                    continue;
                }
                match to_request(item.clone()) {
                    Ok(req) => pending.push((*i, req)),
                    Err(_) => {
                        unwritten.insert(*i);
                    }
                }
            }
            let mut attempt = 0;
            while !pending.is_empty() {
                attempt += 1;
                requests += 1;
                let reqs: Vec<WriteRequest> = pending.iter().map(|(_, r)| r.clone()).collect();
                match self
                    .db
                    .batch_write_item()
                    .request_items(&self.tables.events, reqs)
                    .send()
                    .await
                {
                    Ok(out) => {
                        let left: Vec<&WriteRequest> = out
                            .unprocessed_items()
                            .and_then(|u| u.get(&self.tables.events))
                            .map(|v| v.iter().collect())
                            .unwrap_or_default();
                        pending.retain(|(_, r)| left.contains(&r));
                        if !pending.is_empty() {
                            if attempt >= UNPROCESSED_ATTEMPTS {
                                break;
                            }
                            backoff(attempt).await;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %ProcessorError::dynamo("BatchWriteItem", e), "rejection write failed");
                        break;
                    }
                }
            }
            unwritten.extend(pending.iter().map(|(i, _)| *i));
        }
        (requests, unwritten)
    }

    /// Writes one product's folded state, re-reading and re-folding when another writer got
    /// there first.
    async fn settle<R: Records + ?Sized>(
        &self,
        records: &R,
        w: &ProductWork,
        shard: &ShardKey,
        mut stored: Option<ProductRecord>,
        mut fold: ProductFold,
        now: DateTime<Utc>,
    ) -> Result<Settled, ProcessorError> {
        let mut settled = Settled::default();
        for _ in 0..=self.settings.max_conflict_retries {
            let Some(next) = fold.record.as_ref().filter(|_| fold.changed) else {
                settled.outcomes = fold.outcomes;
                settled.to_log = fold.to_log;
                return Ok(settled);
            };
            settled.write_requests += 1;
            let mut req = self
                .db
                .put_item()
                .table_name(&self.tables.inventory)
                .set_item(Some(items::product_to_item(next, now)))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                );
            req = match &stored {
                None => req.condition_expression("attribute_not_exists(product_id)"),
                Some(old) => req
                    .condition_expression("version = :v AND last_sequence = :s")
                    .expression_attribute_values(":v", items::n(old.version))
                    .expression_attribute_values(":s", items::s(old.last_sequence.as_str())),
            };
            match req.send().await {
                Ok(_) => {
                    tracing::debug!(product_id = %w.product_id, base = ?stored.as_ref().map(|s| (s.version, s.last_sequence.as_str())), version = next.version, last = %next.last_sequence, quantity = next.quantity, "product written");
                    settled.written = true;
                    settled.outcomes = fold.outcomes;
                    settled.to_log = fold.to_log;
                    return Ok(settled);
                }
                Err(e) => {
                    let Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(conflict)) =
                        e.as_service_error()
                    else {
                        return Err(ProcessorError::dynamo("PutItem", e));
                    };
                    let latest = conflict.item().map(items::product_from_item).transpose()?;
                    if latest.is_some() && latest.as_ref() == fold.record.as_ref() {
                        // The stored item is exactly what we wrote: an earlier attempt of
                        // this PutItem succeeded and only its response was lost (the SDK
                        // retried it). Re-folding would count our own events as
                        // redeliveries, not as applied and rejected.
                        settled.written = true;
                        settled.outcomes = fold.outcomes;
                        settled.to_log = fold.to_log;
                        return Ok(settled);
                    }
                    tracing::info!(product_id = %w.product_id, "lost a write race; re-reading and re-folding");
                    let window = self.log.window_ms();
                    let refold = self.log.with_lineage(&shard.0, &shard.1, |index| {
                        fold_product_in(latest.clone(), &w.events, index, window)
                    });
                    settled.rejection_requests += self
                        .reconcile_rejections(records, w, &fold, &refold, now)
                        .await?;
                    stored = latest;
                    fold = refold;
                }
            }
        }
        Err(ProcessorError::Contention {
            product_id: w.product_id.clone(),
            attempts: self.settings.max_conflict_retries + 1,
        })
    }

    /// After a re-fold, records rejected now are recorded, and records this invocation
    /// rejected but the re-fold applies or finds published twice have their rejection
    /// removed.
    async fn reconcile_rejections<R: Records + ?Sized>(
        &self,
        records: &R,
        w: &ProductWork,
        before: &ProductFold,
        after: &ProductFold,
        now: DateTime<Utc>,
    ) -> Result<u64, ProcessorError> {
        let mut puts = Vec::new();
        let mut deletes = Vec::new();
        for (p, i) in w.indices.iter().enumerate() {
            let was = matches!(before.outcomes[p], Outcome::Rejected(_));
            match &after.outcomes[p] {
                Outcome::Rejected(r) => {
                    let ev = &w.events[p].event;
                    let record = records.record(*i);
                    puts.push((
                        *i,
                        items::rejection_to_item(
                            &RejectedRecord {
                                record: &record,
                                rejection: r,
                                product_id: Some(&ev.product_id),
                                event_id: ev.event_id.as_deref(),
                            },
                            now,
                        ),
                    ));
                }
                // A redelivery was processed by the writer we lost to, which recorded its
                // rejection (if any) before writing the item: that rejection is not ours
                // to delete, even when our fold rejected the record too.
                Outcome::Duplicate(DuplicateKind::Redelivery) => {}
                _ if was => {
                    let record = records.record(*i);
                    let item = items::rejection_to_item(
                        &RejectedRecord {
                            record: &record,
                            rejection: &Rejection::new(RejectionReason::SchemaViolation, ""),
                            product_id: None,
                            event_id: None,
                        },
                        now,
                    );
                    let key: Item = item
                        .into_iter()
                        .filter(|(k, _)| k == "pk" || k == "sk")
                        .collect();
                    deletes.push((*i, key));
                }
                _ => {}
            }
        }
        let (put_reqs, put_failed) = self
            .batch_write(puts, |item| {
                PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map(|p| WriteRequest::builder().put_request(p).build())
            })
            .await;
        let (del_reqs, del_failed) = self.delete_rejections(deletes).await;
        if !put_failed.is_empty() || !del_failed.is_empty() {
            return Err(StoreError::Dynamo {
                operation: "BatchWriteItem",
                message: format!("could not reconcile rejections of product {}", w.product_id),
            }
            .into());
        }
        Ok(put_reqs + del_reqs)
    }

    /// Adds the batch's counts to its 10-second bucket and to the running totals (two
    /// writes per batch, whatever its size).
    async fn add_stats(
        &self,
        report: &BatchReport,
        max_applied_arrival: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<(), ProcessorError> {
        let bucket = now.timestamp() - now.timestamp().rem_euclid(items::STATS_BUCKET_SECS);
        let mut adds = vec![
            ("records".to_owned(), report.records as u64),
            ("applied".to_owned(), report.applied),
            (
                "duplicates".to_owned(),
                report.redeliveries + report.producer_duplicates,
            ),
            ("producer_duplicates".to_owned(), report.producer_duplicates),
            ("rejected".to_owned(), report.rejected_total()),
            ("batches".to_owned(), 1),
            // What recognising duplicates at any distance costs (docs/consistency.md).
            ("dedup_log_writes".to_owned(), report.log.write_requests),
            ("dedup_log_write_units".to_owned(), report.log.write_units),
            ("dedup_log_reads".to_owned(), report.log.read_requests),
        ];
        adds.extend(
            report
                .rejected
                .iter()
                .map(|(r, c)| (items::reason_counter(*r), *c)),
        );
        let update = |sk: String, ttl: Option<i64>| {
            let mut req = self
                .db
                .update_item()
                .table_name(&self.tables.events)
                .key("pk", items::s(items::STATS_PK))
                .key("sk", items::s(sk));
            let mut add = Vec::new();
            for (k, (name, value)) in adds.iter().enumerate() {
                add.push(format!("#a{k} :a{k}"));
                req = req
                    .expression_attribute_names(format!("#a{k}"), name)
                    .expression_attribute_values(format!(":a{k}"), items::n(value));
            }
            let mut set = vec!["updated_at = :now".to_owned()];
            req = req.expression_attribute_values(":now", items::n(now.timestamp_millis()));
            if let Some(ttl) = ttl {
                set.push("#ttl = :ttl".to_owned());
                req = req
                    .expression_attribute_names("#ttl", "ttl")
                    .expression_attribute_values(":ttl", items::n(ttl));
            }
            if let Some(arrival) = max_applied_arrival {
                set.push("last_applied_arrival_ms = :arr".to_owned());
                set.push("last_lag_ms = :lag".to_owned());
                req = req
                    .expression_attribute_values(":arr", items::n(arrival))
                    .expression_attribute_values(
                        ":lag",
                        items::n(now.timestamp_millis() - arrival),
                    );
            }
            req.update_expression(format!("SET {} ADD {}", set.join(", "), add.join(", ")))
                .send()
        };
        let (a, b) = futures::join!(
            update(
                items::stats_sort_key(bucket),
                Some(now.timestamp() + items::STATS_TTL_SECS)
            ),
            update(items::STATS_TOTAL_SK.to_owned(), None)
        );
        a.map_err(|e| ProcessorError::dynamo("UpdateItem", e))?;
        b.map_err(|e| ProcessorError::dynamo("UpdateItem", e))?;
        Ok(())
    }
}

/// A shard of a stream: (stream name, shard id).
type ShardKey = (String, String);

#[derive(Default)]
struct Settled {
    outcomes: Vec<Outcome>,
    /// What the shard log must add for this product.
    to_log: Vec<LogRecord>,
    written: bool,
    write_requests: u64,
    rejection_requests: u64,
}

/// What the handler needs from a batch, however it was read: records one by one (tests, the
/// local Pipe) or a [`PipeBatch`] (one buffer).
trait Records: Sync {
    fn count(&self) -> usize;
    fn event_id(&self, index: usize) -> &str;
    fn event_source_arn(&self, index: usize) -> &str;
    /// The record's stream and shard (the shard from its `eventID`, `shardId-…:seq`).
    fn shard_key(&self, index: usize) -> ShardKey {
        let shard = self
            .event_id(index)
            .split_once(':')
            .map_or("", |(shard, _)| shard);
        (
            stream_name(self.event_source_arn(index)).to_owned(),
            shard.to_owned(),
        )
    }
    fn arrival_millis(&self, index: usize) -> i64;
    /// The whole record, for a rejection item; only rejected records pay for a copy.
    fn record(&self, index: usize) -> Cow<'_, PipeRecord>;
    fn decode(&self) -> DecodedBatch;
}

impl Records for [PipeRecord] {
    fn count(&self) -> usize {
        self.len()
    }
    fn event_id(&self, index: usize) -> &str {
        &self[index].event_id
    }
    fn event_source_arn(&self, index: usize) -> &str {
        &self[index].event_source_arn
    }
    fn arrival_millis(&self, index: usize) -> i64 {
        self[index].arrival_millis()
    }
    fn record(&self, index: usize) -> Cow<'_, PipeRecord> {
        Cow::Borrowed(&self[index])
    }
    fn decode(&self) -> DecodedBatch {
        decode_batch(self)
    }
}

impl Records for PipeBatch {
    fn count(&self) -> usize {
        self.len()
    }
    fn event_id(&self, index: usize) -> &str {
        self.at(index).event_id
    }
    fn event_source_arn(&self, index: usize) -> &str {
        self.at(index).event_source_arn
    }
    fn arrival_millis(&self, index: usize) -> i64 {
        self.at(index).arrival_millis()
    }
    fn record(&self, index: usize) -> Cow<'_, PipeRecord> {
        Cow::Owned(self.at(index).to_record())
    }
    fn decode(&self) -> DecodedBatch {
        decode_pipe_batch(self)
    }
}

async fn backoff(attempt: u32) {
    let ms = 25u64 << attempt.min(6);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}
