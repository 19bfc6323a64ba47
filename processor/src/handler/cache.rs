//! The warm instance's copy of each shard's product items, so a batch in the steady state
//! writes without reading first.
//!
//! What an entry holds is always a state the item *had* in DynamoDB at some point: the item
//! this instance read, the item a lost conditional write returned, or the state a
//! conditional write stored. Never the state of a write whose outcome is unknown (the entry
//! is dropped instead). Why a past state is safe to fold over, even when another instance
//! has written since:
//!
//! - A fold that changes the product is written conditionally on the cached `version` and
//!   `last_sequence` (`settle.rs`); versions only grow, so the write succeeds only if the
//!   cached state *is* the stored one, and otherwise the item the lost write returns is
//!   re-folded: no lost update, whatever the cache held.
//! - A fold that writes nothing because every event is a redelivery or a producer duplicate
//!   is right on any later state too: `last_sequence` only grows (a redelivery stays one),
//!   and an event id in `recent_ids` was applied to this product once (a fact of its
//!   history, not of its current state).
//! - A fold that writes nothing but *rejects* an event (an oversell on a cached quantity
//!   of 0 that another instance has since raised) may be wrong on a stale state, so it is
//!   never trusted from the cache: the product is read again (consistent) and re-folded
//!   before any rejection is recorded (`run.rs`, step 4b). Rejections are rare, so this
//!   costs little.
//!
//! So staleness costs at worst a lost race and a re-fold, never a wrong result. To keep it
//! rare, a shard's entries are dropped whenever its log shows that someone else appended
//! to it, or that it was reloaded (`ShardLogStore::epoch`, compared after each refresh): another
//! instance's products writes are followed by its log append, so the first batch after them
//! reads again. One that crashed between its product writes and its log append is caught by
//! the conditional write (or the rejection re-read) above.

use std::collections::HashMap;

use inventory_domain::ProductRecord;

use super::ShardKey;

/// Product items in memory, by shard, at most `max_items` across shards.
pub(super) struct ProductCache {
    shards: HashMap<ShardKey, ShardProducts>,
    /// Entries across shards.
    len: usize,
    max_items: usize,
    /// A use counter, for least-recently-used eviction.
    tick: u64,
}

#[derive(Default)]
struct ShardProducts {
    /// The shard log's epoch these entries are current for.
    epoch: Option<u64>,
    products: HashMap<String, Entry>,
}

struct Entry {
    /// `None`: the product has no item.
    record: Option<ProductRecord>,
    used: u64,
}

impl ProductCache {
    pub(super) fn new(max_items: usize) -> Self {
        Self {
            shards: HashMap::new(),
            len: 0,
            max_items,
            tick: 0,
        }
    }

    /// Keeps the shard's entries only if its log is still at `epoch` (read after the batch's
    /// refresh); otherwise drops them and starts over at `epoch`.
    pub(super) fn validate(&mut self, shard: &ShardKey, epoch: Option<u64>) {
        let entry = self.shards.entry(shard.clone()).or_default();
        if entry.epoch != epoch || epoch.is_none() {
            self.len -= entry.products.len();
            entry.products.clear();
            entry.epoch = epoch;
        }
    }

    /// The cached state (`Some(None)`: known to have no item), if any.
    pub(super) fn get(
        &mut self,
        shard: &ShardKey,
        product_id: &str,
    ) -> Option<Option<ProductRecord>> {
        self.tick += 1;
        let tick = self.tick;
        let entry = self.shards.get_mut(shard)?.products.get_mut(product_id)?;
        entry.used = tick;
        Some(entry.record.clone())
    }

    /// Records a state the item had. An older version never replaces a newer one (two
    /// batches may settle out of order), then evicts past the bound.
    pub(super) fn put(
        &mut self,
        shard: &ShardKey,
        product_id: &str,
        record: Option<ProductRecord>,
    ) {
        self.tick += 1;
        let tick = self.tick;
        let Some(products) = self.shards.get_mut(shard) else {
            // Not validated for this shard (its log could not be refreshed): nothing to
            // keep it current against.
            return;
        };
        match products.products.get_mut(product_id) {
            Some(entry) => {
                let older = matches!(
                    (&entry.record, &record),
                    (Some(held), Some(new)) if new.version < held.version
                ) || (entry.record.is_some() && record.is_none());
                if !older {
                    entry.record = record;
                }
                entry.used = tick;
            }
            None => {
                products
                    .products
                    .insert(product_id.to_owned(), Entry { record, used: tick });
                self.len += 1;
                self.evict();
            }
        }
    }

    /// Forgets a product (a write whose outcome is unknown).
    pub(super) fn remove(&mut self, shard: &ShardKey, product_id: &str) {
        if let Some(products) = self.shards.get_mut(shard) {
            if products.products.remove(product_id).is_some() {
                self.len -= 1;
            }
        }
    }

    /// Products held, all shards together.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Past the bound, drops the least recently used entries across shards, down to 90 %
    /// of it so the sort is paid once per many inserts.
    fn evict(&mut self) {
        if self.len <= self.max_items {
            return;
        }
        let target = self.max_items - self.max_items / 10;
        let mut ages: Vec<u64> = self
            .shards
            .values()
            .flat_map(|s| s.products.values().map(|e| e.used))
            .collect();
        let drop = self.len - target;
        let (_, cutoff, _) = ages.select_nth_unstable(drop - 1);
        let cutoff = *cutoff;
        for shard in self.shards.values_mut() {
            shard.products.retain(|_, e| e.used > cutoff);
        }
        self.shards
            .retain(|_, s| !s.products.is_empty() || s.epoch.is_some());
        self.len = self.shards.values().map(|s| s.products.len()).sum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(n: u32) -> ShardKey {
        ("stream".to_owned(), format!("shardId-{n:012}"))
    }

    #[test]
    fn a_changed_epoch_drops_the_shard() {
        let mut cache = ProductCache::new(10);
        cache.validate(&shard(0), Some(1));
        cache.validate(&shard(1), Some(1));
        cache.put(&shard(0), "a", None);
        cache.put(&shard(1), "b", None);
        cache.validate(&shard(0), Some(1));
        assert_eq!(cache.get(&shard(0), "a"), Some(None));
        cache.validate(&shard(0), Some(2));
        assert_eq!(cache.get(&shard(0), "a"), None);
        assert_eq!(cache.get(&shard(1), "b"), Some(None));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn the_bound_evicts_the_least_recently_used() {
        let mut cache = ProductCache::new(10);
        cache.validate(&shard(0), Some(1));
        for i in 0..10 {
            cache.put(&shard(0), &format!("p{i}"), None);
        }
        // p0 used again, so p1 is now the coldest.
        assert!(cache.get(&shard(0), "p0").is_some());
        cache.put(&shard(0), "p10", None);
        assert!(cache.len() <= 10, "{} entries", cache.len());
        assert!(cache.get(&shard(0), "p0").is_some());
        assert!(cache.get(&shard(0), "p1").is_none());
        assert!(cache.get(&shard(0), "p10").is_some());
    }
}
