//! Step 3, first part: each shard of the batch as its stream's listing places it (Kinesis
//! `ListShards`: parents, hash keys, sequence numbers; `DescribeStreamSummary`: the stream's
//! creation time). The listing is kept between batches and taken again when it cannot
//! vouch for what the batch holds: a record its shards do not hold (a shard created since,
//! or another incarnation of the stream), or a product whose position names a shard it does
//! not list or a newer incarnation. Lineage is data: nothing is inferred from shard numbers.

use std::collections::BTreeMap;
use std::sync::Arc;

use inventory_domain::dedup::{self, shard_ordinal};
use inventory_domain::lineage::{Listed, StreamLineage};
use inventory_domain::ProductRecord;

use super::run::Run;
use super::{shard_key, Processor, ProductWork, ShardKey};

/// A shard of the batch, placed in its stream.
#[derive(Clone)]
pub(super) struct Placed {
    pub listing: Arc<StreamLineage>,
    /// The shard's ancestors' ids, nearest first: their logs hold its products' earlier
    /// events.
    pub ancestors: Arc<Vec<String>>,
}

/// The batch's shards placed, or why one could not be (its records fail and are retried).
pub(super) type Placements = BTreeMap<ShardKey, Result<Placed, String>>;

impl Processor {
    /// Lists each stream of the batch (held, or taken again when it does not hold a record).
    pub(super) async fn place_shards(&self, run: &mut Run<'_>, work: &[ProductWork]) -> Placements {
        // Decoding is not a phase of its own; the listing counts with the log refresh.
        run.phase_us();
        // Each shard's products (a Pipe batch is one shard's: one entry).
        let mut shards: BTreeMap<ShardKey, Vec<&ProductWork>> = BTreeMap::new();
        for w in work {
            shards
                .entry(shard_key(run.batch, w.indices[0]))
                .or_default()
                .push(w);
        }
        let mut placed = Placements::new();
        for (key, works) in shards {
            let ordinal = shard_ordinal(&key.1);
            let holds = |l: &StreamLineage| {
                works
                    .iter()
                    .flat_map(|w| &w.events)
                    .all(|e| l.lists(ordinal, &e.sequence) == Listed::Holds)
            };
            let mut listed = self.listings.get(&key.0).await;
            if listed.as_ref().is_ok_and(|l| !holds(&l.lineage)) {
                listed = self.listings.newer_than(&key.0, run.started).await;
            }
            // A shard even a listing taken after its records arrived does not name is not
            // taken for another stream's: the listing may lag a reshard by moments, so the
            // records are retried. (A sequence number outside a listed shard's range is
            // conclusive: the record is of another incarnation, and `place` rejects it.)
            let listed = match listed {
                Ok(l) if l.lineage.shard(ordinal).is_none() => Err(format!(
                    "shard {} of stream {} is not in the stream's listing yet; the batch is retried",
                    key.1, key.0
                )),
                Ok(l) => Ok(l),
                Err(e) => Err(e.to_string()),
            };
            let result = listed.map(|l| Placed {
                ancestors: Arc::new(
                    l.lineage
                        .ancestors(ordinal)
                        .into_iter()
                        .map(dedup::shard_id)
                        .collect(),
                ),
                listing: l.lineage,
            });
            if let Err(e) = &result {
                tracing::warn!(stream = %key.0, shard = %key.1, error = %e, "could not list the stream's shards; will be retried");
            }
            placed.insert(key, result);
        }
        placed
    }

    /// Takes the listing again where a product's position names what it does not list: a
    /// shard created after it was taken, or a newer incarnation of the stream (another
    /// instance saw it first). At most once per stream and batch.
    pub(super) async fn place_positions(
        &self,
        run: &mut Run<'_>,
        placed: &mut Placements,
        positions: impl Iterator<Item = (&ShardKey, &ProductRecord)>,
    ) {
        let mut stale: Vec<ShardKey> = Vec::new();
        for (key, record) in positions {
            let Some(Ok(p)) = placed.get(key) else {
                continue;
            };
            if !stale.contains(key) && outdated(&p.listing, record) {
                stale.push(key.clone());
            }
        }
        for key in stale {
            let listed = self.listings.newer_than(&key.0, run.started).await;
            let entry = placed.get_mut(&key);
            match (listed, entry) {
                (Ok(l), Some(Ok(p))) => p.listing = l.lineage,
                (Err(e), Some(entry)) => {
                    tracing::warn!(stream = %key.0, error = %e, "could not list the stream's shards; will be retried");
                    *entry = Err(e.to_string());
                }
                _ => {}
            }
        }
    }
}

/// Whether `listing` may be older than what `record`'s position names.
fn outdated(listing: &StreamLineage, record: &ProductRecord) -> bool {
    let ours = listing.stream;
    match record.last_stream {
        Some(theirs) if theirs.arn == ours.arn && theirs.created_ms > ours.created_ms => true,
        Some(theirs) if theirs != ours => false,
        _ => record
            .last_shard
            .is_some_and(|s| listing.shard(s).is_none()),
    }
}
