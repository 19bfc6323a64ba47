//! The warm instance's copy of the whole catalog ([`Catalog`]), so every sort, filter and
//! search is exact over all products and a page costs no read. Loaded once (a parallel
//! Scan, about 0.5 read units per 4 KB of products), then kept current by a look at most
//! once per [`CatalogCache::min_interval`], made by the request that finds it due (the others
//! wait for it): the store's change feed ([`inventory_store::catalog`]), which costs 0.5 read
//! units when nothing changed and otherwise follows what did.
//!
//! A look that fails leaves the copy as it was (and the next request tries again); only a
//! load that fails fails the request.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use chrono::Utc;
use inventory_domain::api::ProductView;
use inventory_domain::catalog::Catalog;
use inventory_store::catalog::{self as feed, Heads, ReadCost};
use inventory_store::items::ProductItem;
use inventory_store::{stats, StoreError, Tables};
use tokio::sync::{Mutex, MutexGuard};

/// A look reads the buckets from this long before the previous look's: a batch's bucket is
/// chosen by its Lambda's clock, a moment after its log item's number was taken.
const LOOK_MARGIN_SECS: i64 = 20;
/// Past this since the last look, the buckets read from the margin before it may not hold
/// a shard's last batch (the margin covers a look a replica answered stale and clocks a few
/// seconds apart): the look reads every shard's totals instead.
const FEED_GAP: Duration = Duration::from_secs(15);

pub fn view(item: ProductItem) -> ProductView {
    ProductView {
        product_id: item.product_id,
        product_name: item.product_name,
        quantity: item.quantity,
        status: item.status,
        version: item.version,
        last_event_at: item.last_event_at,
        updated_at: item.updated_at,
    }
}

pub struct CatalogCache {
    state: Mutex<CatalogState>,
    pub min_interval: Duration,
}

#[derive(Default)]
pub struct CatalogState {
    pub catalog: Catalog,
    loaded: bool,
    /// How far each shard log has been read.
    heads: Heads,
    /// When the last look was made, and the start (epoch seconds) of the bucket it was in.
    last_look: Option<(Instant, i64)>,
    /// What the load and the looks have read, in all.
    pub cost: ReadCost,
}

impl CatalogCache {
    pub fn new(min_interval: Duration) -> Self {
        Self {
            state: Mutex::new(CatalogState::default()),
            min_interval,
        }
    }

    /// The catalog, loaded, and current to within `min_interval`.
    pub async fn current(
        &self,
        db: &Client,
        tables: &Tables,
    ) -> Result<MutexGuard<'_, CatalogState>, StoreError> {
        let mut state = self.state.lock().await;
        if !state.loaded {
            state.load(db, tables).await?;
            return Ok(state);
        }
        let due = state
            .last_look
            .is_none_or(|(at, _)| at.elapsed() >= self.min_interval);
        if due {
            if let Err(e) = state.look(db, tables).await {
                tracing::warn!(error = %e, "catalog not refreshed; serving the last copy");
            }
        }
        Ok(state)
    }

    /// What the load and the looks have read so far.
    pub async fn cost(&self) -> ReadCost {
        self.state.lock().await.cost
    }

    /// Puts a product read elsewhere (one product's GET) into the copy, when loaded.
    pub async fn repair(&self, product: &ProductView) {
        let mut state = self.state.lock().await;
        if state.loaded {
            state.catalog.upsert(product.clone());
        }
    }
}

impl CatalogState {
    async fn load(&mut self, db: &Client, tables: &Tables) -> Result<(), StoreError> {
        let started = Instant::now();
        let bucket = stats::bucket_start(Utc::now().timestamp());
        // Where the logs end before the Scan: whatever changes during it is read after.
        let (heads, c1) = feed::shard_heads(db, tables).await?;
        let (items, c2) = feed::scan_products(db, tables).await?;
        let mut catalog = Catalog::default();
        for item in items {
            catalog.upsert(view(item));
        }
        tracing::info!(
            products = catalog.len(),
            read_units = c1.read_units + c2.read_units,
            ms = started.elapsed().as_millis() as u64,
            "catalog loaded"
        );
        self.catalog = catalog;
        self.heads = heads;
        self.loaded = true;
        self.last_look = Some((started, bucket));
        self.cost = self.cost.plus(c1).plus(c2);
        // What changed while the Scan ran.
        self.look(db, tables).await
    }

    /// Reads what changed since the last look.
    async fn look(&mut self, db: &Client, tables: &Tables) -> Result<(), StoreError> {
        let now = Instant::now();
        let bucket_now = stats::bucket_start(Utc::now().timestamp());
        let (last_at, last_bucket) = self.last_look.unwrap_or((now, bucket_now));
        let moved: Heads = if now.duration_since(last_at) > FEED_GAP {
            let (heads, cost) = feed::shard_heads(db, tables).await?;
            self.cost = self.cost.plus(cost);
            heads
        } else {
            let (parts, cost) =
                feed::bucket_parts_since(db, tables, last_bucket - LOOK_MARGIN_SECS).await?;
            self.cost = self.cost.plus(cost);
            // Each shard's newest bucket says where its log ends now (an older one, read
            // again, says where it ended then).
            let mut newest: std::collections::BTreeMap<String, (i64, u64)> = Default::default();
            for part in parts {
                if let (Some(start), Some((pk, through))) = (part.bucket_start, part.through) {
                    let entry = newest.entry(pk).or_insert((start, through));
                    if start >= entry.0 {
                        *entry = (start, through);
                    }
                }
            }
            newest.into_iter().map(|(pk, (_, n))| (pk, n)).collect()
        };
        let mut changed = std::collections::BTreeSet::new();
        let mut read_to = Vec::new();
        for (pk, through) in moved {
            let seen = self.heads.get(&pk).copied().unwrap_or(0);
            // A log numbers its items from 1 again after it expired (a shard idle past its
            // TTL): everything in it is new.
            let from = if through < seen { 0 } else { seen };
            if through == seen {
                continue;
            }
            let (ids, last, cost) = feed::changed_since(db, tables, &pk, from).await?;
            self.cost = self.cost.plus(cost);
            changed.extend(ids);
            read_to.push((pk, last));
        }
        if !changed.is_empty() {
            let (found, _missing, cost) = feed::products(db, tables, changed).await?;
            self.cost = self.cost.plus(cost);
            for item in found {
                self.catalog.upsert(view(item));
            }
        }
        // Only once the products are in: a failed read is read again at the next look.
        self.heads.extend(read_to);
        self.last_look = Some((now, bucket_now));
        Ok(())
    }
}
