//! Step 5: the rejections recorded, then one conditional write per changed product
//! ([`settle`](super::settle)), and what they add to the shard log and its counters.

use std::collections::{BTreeMap, HashSet};

use futures::stream::{self, StreamExt};
use inventory_domain::dedup::LogRecord;
use inventory_domain::pipes::PipeBatch;
use inventory_domain::{DuplicateKind, Outcome, Rejection};
use inventory_store::stats::ShardAdd;

use super::fold::Folded;
use super::rejections::Unwritten;
use super::run::Run;
use super::settle::Settled;
use super::{BatchReport, Processor, ProductWork, ShardKey};
use crate::error::ProcessorError;

/// What the writes leave for the shard log, by shard.
#[derive(Default)]
pub(super) struct Written {
    /// The processed events each shard's log must add.
    pub to_log: BTreeMap<ShardKey, Vec<LogRecord>>,
    /// What the written products add to each shard's counters.
    pub applied_to: BTreeMap<ShardKey, ShardAdd>,
    /// The products whose items were written or whose events are logged, by shard: the
    /// change feed of the shard log (the API's catalog reads them again).
    pub changed: BTreeMap<ShardKey, Vec<String>>,
}

impl Processor {
    /// 5a. Records rejections before any product moves past them, so a record whose
    /// rejection could not be written is retried rather than lost. 5b. One conditional write
    /// per changed product; a product whose rejection was not written is not written either.
    pub(super) async fn write(
        &self,
        run: &mut Run<'_>,
        malformed: &[(usize, Rejection)],
        folds: Vec<Folded>,
    ) -> Written {
        let to_record = rejections_to_record(malformed, &folds);
        let (requests, unwritten) = self
            .put_rejections(run.batch, &to_record, &folds, run.now)
            .await;
        run.report.rejection_write_requests += requests;
        run.report.phases.rejection_write_us = run.phase_us();
        let blocked = block_unrecorded(run, &to_record, &unwritten, &folds);
        let settled = self.settle_all(run, folds, &blocked).await;
        run.report.phases.product_write_us = run.phase_us();
        self.cache_settled(&settled);

        let mut written = Written::default();
        let mut failures = Vec::new();
        for (w, shard, result) in settled {
            match result {
                Ok(s) => written.add(&mut run.report, run.batch, &w, shard, s),
                Err(err) => {
                    run.report.product_write_requests += 1;
                    tracing::warn!(product_id = %w.product_id, error = %err, "product write failed; the Pipe will retry from its first record");
                    failures.push((w.indices[0], err.to_string()));
                }
            }
        }
        for (i, r) in malformed {
            if !unwritten.contains_key(i) {
                *run.report.rejected.entry(r.reason).or_default() += 1;
            }
        }
        for (i, error) in failures {
            run.fail(i, error);
        }
        written
    }

    /// 5b. The products not blocked, each settled by one conditional write (and its re-folds
    /// after a lost race), `write_concurrency` at a time.
    async fn settle_all(
        &self,
        run: &Run<'_>,
        folds: Vec<Folded>,
        blocked: &HashSet<usize>,
    ) -> Vec<SettledProduct> {
        let (batch, now) = (run.batch, run.now);
        let writes = folds
            .into_iter()
            .enumerate()
            .filter(|(k, _)| !blocked.contains(k))
            // Boxed, so buffer_unordered moves a pointer into its task, not the future.
            .map(|(_, folded)| Box::pin(self.settle(batch, folded, now)));
        stream::iter(writes)
            .buffer_unordered(self.settings.write_concurrency.max(1))
            .collect()
            .await
    }

    /// What each item now holds in the cache, or, when a write's outcome is unknown, nothing.
    fn cache_settled(&self, settled: &[SettledProduct]) {
        let mut cache = self.cache();
        for (w, shard, result) in settled {
            match result.as_ref().ok().and_then(|s| s.state.as_ref()) {
                Some(state) => cache.put(shard, &w.product_id, state.clone()),
                None => cache.remove(shard, &w.product_id),
            }
        }
    }
}

/// One product's settling: its work, its shard, and what the write did.
type SettledProduct = (ProductWork, ShardKey, Result<Settled, ProcessorError>);

/// Every rejection to record: the malformed records' (no product), then the folds'
/// (with the index of their product in `folds`).
fn rejections_to_record(
    malformed: &[(usize, Rejection)],
    folds: &[Folded],
) -> Vec<(usize, Rejection, Option<usize>)> {
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
    to_record
}

/// Fails each record whose rejection was not written, and returns the products (indices in
/// `folds`) that must not be written because of it.
fn block_unrecorded(
    run: &mut Run<'_>,
    to_record: &[(usize, Rejection, Option<usize>)],
    unwritten: &Unwritten,
    folds: &[Folded],
) -> HashSet<usize> {
    let mut blocked = HashSet::new();
    for (i, _, product) in to_record {
        let Some(error) = unwritten.get(i) else {
            continue;
        };
        match product {
            // The whole product waits for its rejection, including its events before
            // the rejected one, so the Pipe must retry from the product's first record.
            Some(k) => {
                blocked.insert(*k);
                run.fail(folds[*k].work.indices[0], error.clone());
            }
            None => run.fail(*i, error.clone()),
        }
    }
    blocked
}

impl Written {
    /// Adds what one settled product changed: its shard's log and counters, and the report.
    fn add(
        &mut self,
        report: &mut BatchReport,
        batch: &PipeBatch,
        w: &ProductWork,
        shard: ShardKey,
        s: Settled,
    ) {
        if s.written || !s.to_log.is_empty() {
            self.changed
                .entry(shard.clone())
                .or_default()
                .push(w.product_id.clone());
        }
        let add = self.applied_to.entry(shard.clone()).or_default();
        add.products.add(s.delta);
        self.to_log.entry(shard).or_default().extend(s.to_log);
        report.product_write_requests += s.write_requests;
        report.rejection_write_requests += s.rejection_requests;
        report.history_writes += s.history_writes;
        report.history_write_units += s.history_write_units;
        if s.written {
            report.products_written += 1;
        }
        for (i, o) in w.indices.iter().zip(&s.outcomes) {
            match o {
                Outcome::Applied => {
                    report.applied += 1;
                    add.products.events_applied += 1;
                    let arrival = batch.at(*i).arrival_millis();
                    add.last_applied_arrival_ms = add.last_applied_arrival_ms.max(Some(arrival));
                }
                Outcome::Duplicate(DuplicateKind::Redelivery) => report.redeliveries += 1,
                Outcome::Duplicate(DuplicateKind::ProducerDuplicate) => {
                    report.producer_duplicates += 1
                }
                Outcome::Rejected(r) => *report.rejected.entry(r.reason).or_default() += 1,
            }
        }
    }
}
