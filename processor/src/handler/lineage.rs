//! Step 3c: products that moved shard. A product whose item names an older shard than its
//! records moved here in a split or merge, and that shard's log holds its earlier events.

use std::collections::BTreeMap;

use inventory_domain::dedup;

use super::load::Loaded;
use super::run::Run;
use super::{Processor, ShardKey};

impl Processor {
    /// Loads the parents' logs of the products that moved shard. A new link is written to
    /// the shard's log before any product moves past it, so neither a redelivery (whose
    /// products already name this shard) nor a cold instance loses it. A shard whose link
    /// could not be written is marked unavailable in `loaded.shards`.
    pub(super) async fn link_lineage(&self, run: &mut Run<'_>, loaded: &mut Loaded) {
        let mut links: BTreeMap<ShardKey, Vec<String>> = BTreeMap::new();
        for (w, shard) in loaded.work.iter().zip(&loaded.shard_of) {
            let ordinal = w.events.first().map_or(0, |e| e.shard);
            let from = loaded
                .current
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
                    .link_parent(&shard.0, &shard.1, parent, run.oldest)
                    .await
                {
                    Ok((is_new, cost)) => {
                        run.report.log.add(cost);
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
                    .append(&shard.0, &shard.1, &[], &new, (run.oldest, run.newest))
                    .await
                    .map(|cost| run.report.log.add(cost));
            }
            if let Err(e) = linked {
                tracing::warn!(shard = %shard.1, error = %e, "could not link the shard to its parents' logs; will be retried");
                loaded.shards.insert(shard.clone(), Some(e.to_string()));
            }
        }
        run.report.phases.log_refresh_us += run.phase_us();
    }
}
