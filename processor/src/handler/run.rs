//! The batch run: decode, read, fold, then the writes in the order exactly-once needs
//! (rejections, products, shard log), and the one batch item failure the Pipe retries from.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::stream::{self, StreamExt};
use inventory_domain::dedup::{self, LogRecord};
use inventory_domain::pipes::PipeBatch;
use inventory_domain::{
    fold_product_in, BatchItemFailure, BatchResponse, DuplicateKind, Outcome, ProductFold,
    ProductRecord, Rejection,
};
use inventory_store::batch::{batch_get, UNPROCESSED_RETRY};
use inventory_store::items::{self, ProductItem};
use inventory_store::stats::ShardAdd;

use super::statistics::delivery_counters;
use super::{shard_key, BatchReport, DecodedBatch, Processor, ProductWork, ShardKey};

/// One product's events folded over its stored item, waiting to be written.
pub(super) struct Folded {
    pub work: ProductWork,
    pub shard: ShardKey,
    pub stored: Option<ProductRecord>,
    pub fold: ProductFold,
    /// `stored` came from this instance's cache, not from a read in this batch.
    pub from_cache: bool,
}

impl Processor {
    pub(super) async fn run(&self, batch: &PipeBatch) -> BatchReport {
        let started = Instant::now();
        let now = Utc::now();
        let mut report = BatchReport {
            records: batch.len(),
            ..BatchReport::default()
        };
        // Indices of records whose work did not complete; the smallest is reported.
        let mut failed: Vec<usize> = Vec::new();
        let mut fail = |report: &mut BatchReport, index: usize, error: String| {
            failed.push(index);
            report.errors.push(error);
        };

        // 1-2. Decode, validate, group.
        let DecodedBatch {
            malformed,
            products: work,
        } = inventory_domain::batch::decode_pipe_batch(batch);

        // 3a. The shard log, up to date: what other instances logged since this one last
        // saw the shard (or the whole window after a cold start).
        let arrivals = || batch.iter().map(|r| r.arrival_millis());
        let oldest = arrivals().min().unwrap_or(0);
        let newest = arrivals().max().unwrap_or(0);
        let mut shard_of: Vec<ShardKey> = Vec::with_capacity(work.len());
        let mut shards: BTreeMap<ShardKey, Option<String>> = BTreeMap::new();
        for w in &work {
            let key = shard_key(batch, w.indices[0]);
            shards.entry(key.clone()).or_insert(None);
            shard_of.push(key);
        }
        let mut phase = Instant::now();
        for (key, error) in shards.iter_mut() {
            match self.log.refresh(&key.0, &key.1, oldest).await {
                Ok(cost) => report.log.add(cost),
                Err(e) => *error = Some(e.to_string()),
            }
        }

        report.phases.log_refresh_us = elapsed_us(&mut phase);

        // 3b. The products' items: from this instance's cache for a shard whose log says
        // nobody else wrote it since (cache.rs says why that is safe), the rest read.
        let epochs: Vec<(&ShardKey, Option<u64>)> = shards
            .iter()
            .filter(|(_, error)| error.is_none())
            .map(|(key, _)| (key, self.log.epoch(&key.0, &key.1)))
            .collect();
        let mut current: HashMap<String, ProductRecord> = HashMap::with_capacity(work.len());
        let mut from_cache: Vec<bool> = Vec::with_capacity(work.len());
        let mut to_read: Vec<&str> = Vec::new();
        {
            let mut cache = self.cache();
            for (key, epoch) in &epochs {
                cache.validate(key, *epoch);
            }
            for (w, shard) in work.iter().zip(&shard_of) {
                let usable = matches!(shards.get(shard), Some(None));
                match cache.get(shard, &w.product_id).filter(|_| usable) {
                    Some(hit) => {
                        if let Some(record) = hit {
                            current.insert(w.product_id.clone(), record);
                        }
                        from_cache.push(true);
                    }
                    None => {
                        to_read.push(&w.product_id);
                        from_cache.push(false);
                    }
                }
            }
        }
        let (read, reads, unread) = self.load_products(&to_read).await;
        report.read_requests = reads;
        report.cache_misses = to_read.len() as u64;
        report.cache_hits = (work.len() - to_read.len()) as u64;
        {
            let mut cache = self.cache();
            for ((w, shard), cached) in work.iter().zip(&shard_of).zip(&from_cache) {
                if !cached && !unread.contains_key(&w.product_id) {
                    cache.put(shard, &w.product_id, read.get(&w.product_id).cloned());
                }
            }
        }
        current.extend(read);
        report.phases.read_us = elapsed_us(&mut phase);

        // 3c. Lineage: a product whose item names an older shard than its records moved
        // here in a split or merge, and that shard's log holds its earlier events. A new
        // link is written to the shard's log before any product moves past it, so neither a
        // redelivery (whose products already name this shard) nor a cold instance loses it.
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

        report.phases.log_refresh_us += elapsed_us(&mut phase);

        // 4. Fold (pure), against the log of the product's shard and its ancestors.
        let window = self.log.window_ms();
        let mut folds: Vec<Folded> = Vec::with_capacity(work.len());
        for ((w, shard), from_cache) in work.into_iter().zip(shard_of).zip(from_cache) {
            let unavailable = unread
                .get(&w.product_id)
                .or(shards.get(&shard).and_then(Option::as_ref));
            if let Some(err) = unavailable {
                tracing::warn!(product_id = %w.product_id, error = %err, "could not read product or its shard log; will be retried");
                fail(
                    &mut report,
                    w.indices[0],
                    format!("product {}: {err}", w.product_id),
                );
                continue;
            }
            let stored = current.get(&w.product_id).cloned();
            let fold = self.log.with_lineage(&shard.0, &shard.1, |index| {
                fold_product_in(stored.clone(), &w.events, index, window)
            });
            folds.push(Folded {
                work: w,
                shard,
                stored,
                fold,
                from_cache,
            });
        }

        // 4b. A rejection that writes nothing was decided on a state no conditional write
        // will check; from the cache that state may be stale (cache.rs), so such products
        // are read and folded again before any rejection is recorded.
        let recheck: Vec<usize> = folds
            .iter()
            .enumerate()
            .filter(|(_, f)| {
                f.from_cache
                    && !f.fold.changed
                    && f.fold
                        .outcomes
                        .iter()
                        .any(|o| matches!(o, Outcome::Rejected(_)))
            })
            .map(|(k, _)| k)
            .collect();
        if !recheck.is_empty() {
            let ids: Vec<&str> = recheck
                .iter()
                .map(|k| folds[*k].work.product_id.as_str())
                .collect();
            let (fresh, reads, unread) = self.load_products(&ids).await;
            report.read_requests += reads;
            report.cache_hits -= recheck.len() as u64;
            report.cache_misses += recheck.len() as u64;
            let mut unreadable = HashSet::new();
            for k in recheck {
                let f = &mut folds[k];
                if let Some(err) = unread.get(&f.work.product_id) {
                    tracing::warn!(product_id = %f.work.product_id, error = %err, "could not read product; will be retried");
                    fail(
                        &mut report,
                        f.work.indices[0],
                        format!("product {}: {err}", f.work.product_id),
                    );
                    unreadable.insert(k);
                    continue;
                }
                let stored = fresh.get(&f.work.product_id).cloned();
                self.cache()
                    .put(&f.shard, &f.work.product_id, stored.clone());
                f.fold = self.log.with_lineage(&f.shard.0, &f.shard.1, |index| {
                    fold_product_in(stored.clone(), &f.work.events, index, window)
                });
                f.stored = stored;
                f.from_cache = false;
            }
            if !unreadable.is_empty() {
                folds = folds
                    .into_iter()
                    .enumerate()
                    .filter(|(k, _)| !unreadable.contains(k))
                    .map(|(_, f)| f)
                    .collect();
            }
        }

        report.phases.fold_us = elapsed_us(&mut phase);

        // 5a. Record rejections before any product moves past them, so a record whose
        // rejection could not be written is retried rather than lost.
        let mut to_record: Vec<(usize, Rejection, Option<usize>)> = malformed
            .iter()
            .map(|(i, r)| (*i, r.clone(), None))
            .collect();
        for (k, f) in folds.iter().enumerate() {
            for (i, o) in f.work.indices.iter().zip(&f.fold.outcomes) {
                if let Outcome::Rejected(r) = o {
                    to_record.push((*i, r.clone(), Some(k)));
                }
            }
        }
        let (requests, unwritten) = self.put_rejections(batch, &to_record, &folds, now).await;
        report.rejection_write_requests += requests;
        report.phases.rejection_write_us = elapsed_us(&mut phase);
        let mut blocked_products: HashSet<usize> = HashSet::new();
        for (i, _, product) in &to_record {
            let Some(error) = unwritten.get(i) else {
                continue;
            };
            match product {
                // The whole product waits for its rejection, including its events before
                // the rejected one, so the Pipe must retry from the product's first record.
                Some(k) => {
                    blocked_products.insert(*k);
                    fail(&mut report, folds[*k].work.indices[0], error.clone());
                }
                None => fail(&mut report, *i, error.clone()),
            }
        }

        // 5b. One conditional write per changed product.
        let writes = folds
            .into_iter()
            .enumerate()
            .filter(|(k, _)| !blocked_products.contains(k))
            // Boxed, so buffer_unordered moves a pointer into its task, not the future.
            .map(|(_, folded)| Box::pin(self.settle(batch, folded, now)));
        let settled: Vec<_> = stream::iter(writes)
            .buffer_unordered(self.settings.write_concurrency.max(1))
            .collect()
            .await;
        report.phases.product_write_us = elapsed_us(&mut phase);
        {
            // What the item now holds, or, when a write's outcome is unknown, nothing.
            let mut cache = self.cache();
            for (w, shard, result) in &settled {
                match result.as_ref().ok().and_then(|s| s.state.as_ref()) {
                    Some(state) => cache.put(shard, &w.product_id, state.clone()),
                    None => cache.remove(shard, &w.product_id),
                }
            }
        }

        let mut to_log: BTreeMap<ShardKey, Vec<LogRecord>> = BTreeMap::new();
        let mut applied_to: BTreeMap<ShardKey, ShardAdd> = BTreeMap::new();
        for (w, shard, result) in settled {
            match result {
                Ok(s) => {
                    let add = applied_to.entry(shard.clone()).or_default();
                    add.products.add(s.delta);
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
                                add.products.events_applied += 1;
                                let arrival = batch.at(*i).arrival_millis();
                                add.last_applied_arrival_ms =
                                    add.last_applied_arrival_ms.max(Some(arrival));
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
                    fail(&mut report, w.indices[0], err.to_string());
                }
            }
        }
        for (i, r) in &malformed {
            if !unwritten.contains_key(i) {
                *report.rejected.entry(r.reason).or_default() += 1;
            }
        }

        // 5c. The shard log, after the writes it vouches for (dedup_log.rs says why), in one
        // transaction with the shard's counters, so they count what the log vouches for,
        // once. If it cannot be written, the whole shard's part of the batch is retried: the
        // products see their records as redeliveries and the retry logs them (counting
        // nothing for them: docs/consistency.md, "Counters"). The batch's delivery counts
        // ride with its first shard's append, or alone when nothing is to be logged.
        let mut deliveries_counted = false;
        for (key, logged) in &to_log {
            if logged.is_empty() {
                continue;
            }
            let add = applied_to.remove(key).unwrap_or_default();
            let carries = !deliveries_counted;
            let appended = self
                .log
                .append_with(
                    &key.0,
                    &key.1,
                    logged,
                    &[],
                    (oldest, newest),
                    |number, this| {
                        let mut add = add.clone();
                        if carries {
                            let mut log = report.log;
                            log.add(this);
                            add.counters = delivery_counters(&report, log);
                        }
                        Ok(self
                            .counter_updates(&key.1, &add, Some(number), now)?
                            .to_vec())
                    },
                )
                .await;
            match appended {
                Ok(cost) => {
                    report.log.add(cost);
                    deliveries_counted |= carries;
                }
                Err(e) => {
                    tracing::warn!(shard = %key.1, error = %e, "could not write the shard log and its counters; the Pipe will retry the batch");
                    if let Some(first) = (0..report.records).find(|i| shard_key(batch, *i) == *key)
                    {
                        fail(&mut report, first, e.to_string());
                    }
                }
            }
        }

        // 6. A batch with nothing to log (rejections and duplicates only) still counts its
        // deliveries: one transaction of the shard's two counter updates. A failure here is
        // logged and does not fail the batch.
        if !deliveries_counted && failed.is_empty() && report.records > 0 {
            let shard = shard_key(batch, 0).1;
            let add = ShardAdd {
                counters: delivery_counters(&report, report.log),
                ..ShardAdd::default()
            };
            if let Err(err) = self.add_counters(&shard, &add, now).await {
                tracing::warn!(error = %err, "could not update statistics");
                report.errors.push(err.to_string());
            }
        }

        report.phases.log_write_us = elapsed_us(&mut phase);

        if let Some(first) = failed.iter().min() {
            report.response = BatchResponse {
                batch_item_failures: vec![BatchItemFailure {
                    item_identifier: batch.at(*first).event_id.to_owned(),
                }],
            };
        }
        if report.records > 0 {
            let lag = Utc::now().timestamp_millis().saturating_sub(oldest);
            report.lag_ms = Some(u64::try_from(lag).unwrap_or(0));
        }
        report.phases.total_us = micros(started.elapsed());
        tracing::info!(
            records = report.records,
            applied = report.applied,
            redeliveries = report.redeliveries,
            producer_duplicates = report.producer_duplicates,
            rejected = report.rejected_total(),
            products_written = report.products_written,
            failed_from = ?failed.iter().min().map(|i| batch.at(*i).event_id),
            "batch processed"
        );
        report
    }

    /// Reads the products' items (consistent). Returns the items found, the number of
    /// requests, and the products that could not be read or decoded, with the error.
    async fn load_products(
        &self,
        ids: &[&str],
    ) -> (HashMap<String, ProductRecord>, u64, HashMap<String, String>) {
        if ids.is_empty() {
            return (HashMap::new(), 0, HashMap::new());
        }
        let keys = ids.iter().map(|id| items::product_key(id)).collect();
        let read = batch_get(
            &self.db,
            &self.tables.inventory,
            keys,
            true,
            UNPROCESSED_RETRY,
        )
        .await;
        let mut found = HashMap::with_capacity(read.items.len());
        let mut unread = HashMap::new();
        let id_of = |item: &items::Item| {
            item.get(items::PRODUCT_ID)
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default()
        };
        for item in read.items {
            let id = id_of(&item);
            match ProductItem::from_item(item) {
                Ok(product) => {
                    found.insert(id, product.into_record());
                }
                Err(e) => {
                    unread.insert(id, e.to_string());
                }
            }
        }
        for (key, e) in read.failed {
            unread.insert(id_of(&key), e.to_string());
        }
        (found, read.requests, unread)
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Microseconds since `since`, which moves on to now: consecutive phases, no gaps.
fn elapsed_us(since: &mut Instant) -> u64 {
    let now = Instant::now();
    let us = micros(now.duration_since(*since));
    *since = now;
    us
}
