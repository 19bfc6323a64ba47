//! Step 3: the shard logs brought up to date, and the products' items (from this instance's
//! cache, or read).

use std::collections::{BTreeMap, HashMap};

use inventory_domain::ProductRecord;
use inventory_store::batch::{batch_get, UNPROCESSED_RETRY};
use inventory_store::items::{self, ProductItem};

use super::lineage::Placements;
use super::run::Run;
use super::{shard_key, Processor, ProductWork, ShardKey};

/// The batch's products with what is known of them before the fold.
pub(super) struct Loaded {
    pub work: Vec<ProductWork>,
    /// Per product (as `work`): its shard.
    pub shard_of: Vec<ShardKey>,
    /// Per product (as `work`): its state came from this instance's cache.
    pub from_cache: Vec<bool>,
    /// The batch's shards, with why they could not be listed or their logs brought up to
    /// date.
    pub shards: BTreeMap<ShardKey, Option<String>>,
    /// The stored items found (a product absent here has none).
    pub current: HashMap<String, ProductRecord>,
    /// Products whose item could not be read or decoded, with why.
    pub unread: HashMap<String, String>,
}

impl Loaded {
    /// Each product's stored position, with its shard.
    pub fn positions(&self) -> impl Iterator<Item = (&ShardKey, &ProductRecord)> {
        self.work
            .iter()
            .zip(&self.shard_of)
            .filter_map(|(w, shard)| self.current.get(&w.product_id).map(|r| (shard, r)))
    }
}

/// The products' state this instance's cache holds, and the products to read.
struct Cached<'w> {
    /// Per product found in the cache with an item: the item.
    current: HashMap<String, ProductRecord>,
    /// Per product (as the batch's work): its state came from the cache.
    from_cache: Vec<bool>,
    to_read: Vec<&'w str>,
}

impl Processor {
    /// 3a. The shard logs of each shard and its ancestors, up to date: what other instances
    /// logged since this one last saw the shard (or the whole window after a cold start).
    /// 3b. The products' items: from this instance's cache for a shard whose log says nobody
    /// else wrote it since (cache.rs says why that is safe), the rest read.
    pub(super) async fn load(
        &self,
        run: &mut Run<'_>,
        work: Vec<ProductWork>,
        placed: &Placements,
    ) -> Loaded {
        let (shard_of, shards) = self.refresh_logs(run, &work, placed).await;
        run.report.phases.log_refresh_us = run.phase_us();

        let Cached {
            mut current,
            from_cache,
            to_read,
        } = self.cached(&work, &shard_of, &shards);
        let (read, reads, unread) = self.load_products(&to_read).await;
        run.report.read_requests = reads;
        run.report.cache_misses = to_read.len() as u64;
        run.report.cache_hits = (work.len() - to_read.len()) as u64;
        {
            let mut cache = self.cache();
            for ((w, shard), cached) in work.iter().zip(&shard_of).zip(&from_cache) {
                if !cached && !unread.contains_key(&w.product_id) {
                    cache.put(shard, &w.product_id, read.get(&w.product_id).cloned());
                }
            }
        }
        current.extend(read);
        run.report.phases.read_us = run.phase_us();
        Loaded {
            work,
            shard_of,
            from_cache,
            shards,
            current,
            unread,
        }
    }

    /// 3a. Each product's shard, and the batch's shards with their logs (and their
    /// ancestors') refreshed, or why they could not be.
    async fn refresh_logs(
        &self,
        run: &mut Run<'_>,
        work: &[ProductWork],
        placed: &Placements,
    ) -> (Vec<ShardKey>, BTreeMap<ShardKey, Option<String>>) {
        let mut shard_of: Vec<ShardKey> = Vec::with_capacity(work.len());
        let mut shards: BTreeMap<ShardKey, Option<String>> = BTreeMap::new();
        for w in work {
            let key = shard_key(run.batch, w.indices[0]);
            shards.entry(key.clone()).or_insert(None);
            shard_of.push(key);
        }
        for (key, error) in shards.iter_mut() {
            let ancestors = match placed.get(key) {
                Some(Ok(p)) => p.ancestors.clone(),
                Some(Err(e)) => {
                    *error = Some(e.clone());
                    continue;
                }
                None => {
                    *error = Some(format!("shard {} was not listed", key.1));
                    continue;
                }
            };
            match self
                .log
                .refresh(&key.0, &key.1, &ancestors, run.oldest)
                .await
            {
                Ok(cost) => run.report.log.add(cost),
                Err(e) => *error = Some(e.to_string()),
            }
        }
        (shard_of, shards)
    }

    /// 3b. What this instance's cache holds of the products whose shard's log is up to date
    /// (each shard's cache dropped first if its log shows another writer), and the rest.
    fn cached<'w>(
        &self,
        work: &'w [ProductWork],
        shard_of: &[ShardKey],
        shards: &BTreeMap<ShardKey, Option<String>>,
    ) -> Cached<'w> {
        let epochs: Vec<(&ShardKey, Option<u64>)> = shards
            .iter()
            .filter(|(_, error)| error.is_none())
            .map(|(key, _)| (key, self.log.epoch(&key.0, &key.1)))
            .collect();
        let mut cached = Cached {
            current: HashMap::with_capacity(work.len()),
            from_cache: Vec::with_capacity(work.len()),
            to_read: Vec::new(),
        };
        let mut cache = self.cache();
        for (key, epoch) in &epochs {
            cache.validate(key, *epoch);
        }
        for (w, shard) in work.iter().zip(shard_of) {
            let usable = matches!(shards.get(shard), Some(None));
            match cache.get(shard, &w.product_id).filter(|_| usable) {
                Some(hit) => {
                    if let Some(record) = hit {
                        cached.current.insert(w.product_id.clone(), record);
                    }
                    cached.from_cache.push(true);
                }
                None => {
                    cached.to_read.push(&w.product_id);
                    cached.from_cache.push(false);
                }
            }
        }
        cached
    }

    /// Reads the products' items (consistent). Returns the items found, the number of
    /// requests, and the products that could not be read or decoded, with the error.
    pub(super) async fn load_products(
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
