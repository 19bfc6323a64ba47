//! Step 4: each product's events folded over its item (pure), against the log of the
//! product's shard and its ancestors.

use std::collections::HashSet;

use inventory_domain::{fold_product_in, Outcome, ProductFold, ProductRecord, Source};

use super::lineage::{Placed, Placements};
use super::load::Loaded;
use super::run::Run;
use super::{Processor, ProductWork, ShardKey};

/// One product's events folded over its stored item, waiting to be written.
pub(super) struct Folded {
    pub work: ProductWork,
    pub shard: ShardKey,
    /// The shard as its stream lists it (what a re-fold after a lost race places against).
    pub placed: Placed,
    pub stored: Option<ProductRecord>,
    pub fold: ProductFold,
    /// `stored` came from this instance's cache, not from a read in this batch.
    pub from_cache: bool,
}

impl Processor {
    /// Folds `events` over `stored`, placed in the shard's listing, against the logs of the
    /// shard and its ancestors.
    pub(super) fn fold_one(
        &self,
        shard: &ShardKey,
        placed: &Placed,
        stored: Option<ProductRecord>,
        events: &[inventory_domain::SequencedEvent],
    ) -> ProductFold {
        let window = self.log.window_ms();
        self.log
            .with_lineage(&shard.0, &shard.1, &placed.ancestors, |index| {
                fold_product_in(
                    stored,
                    events,
                    index,
                    window,
                    Source::Listed(&placed.listing),
                )
            })
    }
}

impl Processor {
    /// Folds every product whose item and shard log are available; the others fail from
    /// their first record. 4b: a rejection decided on a cached state is folded again on a
    /// fresh read before it is recorded.
    pub(super) async fn fold(
        &self,
        run: &mut Run<'_>,
        loaded: Loaded,
        placed: &Placements,
    ) -> Vec<Folded> {
        let Loaded {
            work,
            shard_of,
            from_cache,
            shards,
            current,
            unread,
        } = loaded;
        let mut folds: Vec<Folded> = Vec::with_capacity(work.len());
        for ((w, shard), from_cache) in work.into_iter().zip(shard_of).zip(from_cache) {
            let placement = match placed.get(&shard) {
                Some(Ok(p)) => Ok(p),
                Some(Err(e)) => Err(e.clone()),
                None => Err(format!("shard {} was not listed", shard.1)),
            };
            let unavailable = unread
                .get(&w.product_id)
                .or(shards.get(&shard).and_then(Option::as_ref))
                .cloned()
                .map(Err)
                .unwrap_or(placement);
            let placed = match unavailable {
                Ok(p) => p.clone(),
                Err(err) => {
                    tracing::warn!(product_id = %w.product_id, error = %err, "could not read product, its shard log or its stream's shards; will be retried");
                    run.fail(w.indices[0], format!("product {}: {err}", w.product_id));
                    continue;
                }
            };
            let stored = current.get(&w.product_id).cloned();
            let fold = self.fold_one(&shard, &placed, stored.clone(), &w.events);
            folds.push(Folded {
                work: w,
                shard,
                placed,
                stored,
                fold,
                from_cache,
            });
        }
        self.recheck_cached_rejections(run, &mut folds).await;
        run.report.phases.fold_us = run.phase_us();
        folds
    }

    /// 4b. A rejection that writes nothing was decided on a state no conditional write
    /// will check; from the cache that state may be stale (cache.rs), so such products are
    /// read and folded again before any rejection is recorded.
    async fn recheck_cached_rejections(&self, run: &mut Run<'_>, folds: &mut Vec<Folded>) {
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
        if recheck.is_empty() {
            return;
        }
        let ids: Vec<&str> = recheck
            .iter()
            .map(|k| folds[*k].work.product_id.as_str())
            .collect();
        let (fresh, reads, unread) = self.load_products(&ids).await;
        run.report.read_requests += reads;
        run.report.cache_hits -= recheck.len() as u64;
        run.report.cache_misses += recheck.len() as u64;
        let mut unreadable = HashSet::new();
        for k in recheck {
            let f = &mut folds[k];
            if let Some(err) = unread.get(&f.work.product_id) {
                tracing::warn!(product_id = %f.work.product_id, error = %err, "could not read product; will be retried");
                run.fail(
                    f.work.indices[0],
                    format!("product {}: {err}", f.work.product_id),
                );
                unreadable.insert(k);
                continue;
            }
            let stored = fresh.get(&f.work.product_id).cloned();
            self.cache()
                .put(&f.shard, &f.work.product_id, stored.clone());
            f.fold = self.fold_one(&f.shard, &f.placed, stored.clone(), &f.work.events);
            f.stored = stored;
            f.from_cache = false;
        }
        if !unreadable.is_empty() {
            let kept = std::mem::take(folds)
                .into_iter()
                .enumerate()
                .filter(|(k, _)| !unreadable.contains(k))
                .map(|(_, f)| f);
            folds.extend(kept);
        }
    }
}
