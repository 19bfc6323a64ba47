//! Settling one product: its folded state written with one conditional PutItem, and when
//! another writer got there first, the item it wrote re-folded and written again (with
//! backon's jittered backoff between attempts, so racing writers drift apart).

use std::time::Duration;

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use backon::{ExponentialBuilder, RetryableWithContext};
use chrono::{DateTime, Utc};
use inventory_domain::dedup::LogRecord;
use inventory_domain::history::HistoryKey;
use inventory_domain::pipes::PipeBatch;
use inventory_domain::{DuplicateKind, Outcome, ProductFold, ProductRecord};
use inventory_store::history;
use inventory_store::items::{Item, ProductItem};
use inventory_store::rejections::{self, RejectedRecord, RejectionItem};
use inventory_store::stats::ProductDelta;
use inventory_store::StoreError;

use super::fold::Folded;
use super::lineage::Placed;
use super::{Processor, ProductWork, ShardKey};
use crate::error::ProcessorError;

/// What settling one product did.
#[derive(Default)]
pub(super) struct Settled {
    pub outcomes: Vec<Outcome>,
    /// What the shard log must add for this product.
    pub to_log: Vec<LogRecord>,
    pub written: bool,
    /// What the write changed in the shard's counters (zero when nothing was written).
    pub delta: ProductDelta,
    pub write_requests: u64,
    pub rejection_requests: u64,
    pub history_writes: u64,
    pub history_write_units: u64,
    /// The state the item is known to have now (`Some(None)`: no item), for the cache.
    pub state: Option<Option<ProductRecord>>,
}

/// Where settling stands between attempts: the item the next write is conditional on and
/// the fold over it.
struct Attempt {
    stored: Option<ProductRecord>,
    fold: ProductFold,
    settled: Settled,
}

impl Attempt {
    fn done(mut self, written: bool) -> Settled {
        if written {
            // From the item the write was conditional on, so a lost race counts only what
            // this write added over the winner's.
            self.settled.delta =
                ProductDelta::between(self.stored.as_ref(), self.fold.record.as_ref());
        }
        self.settled.written |= written;
        self.settled.state = Some(if written {
            self.fold.record.clone()
        } else {
            self.stored
        });
        self.settled.outcomes = self.fold.outcomes;
        self.settled.to_log = self.fold.to_log;
        self.settled
    }

    /// The state to write, unless the fold leaves the item as it is.
    fn next(&self) -> Option<&ProductRecord> {
        self.fold.record.as_ref().filter(|_| self.fold.changed)
    }
}

/// What one conditional PutItem did.
enum Put {
    /// The fold leaves the item as it is: nothing was sent.
    Unchanged,
    Written,
    /// Another writer got there first; its item, as the failed condition returned it.
    Lost(Option<Item>),
}

enum Failure {
    /// Lost a race; the attempt holds the re-fold over the winner's item.
    Conflict,
    Error(ProcessorError),
}

impl Processor {
    /// Writes one product's folded state, re-reading and re-folding when another writer got
    /// there first, up to `max_conflict_retries` times.
    pub(super) async fn settle(
        &self,
        batch: &PipeBatch,
        folded: Folded,
        now: DateTime<Utc>,
    ) -> (ProductWork, ShardKey, Result<Settled, ProcessorError>) {
        let Folded {
            work: w,
            shard,
            placed,
            stored,
            fold,
            ..
        } = folded;
        let attempt = Attempt {
            stored,
            fold,
            settled: Settled::default(),
        };
        let (attempt, result) = {
            let (w, shard, placed) = (&w, &shard, &placed);
            // Boxed: the SDK's request future inside is large, and backon moves each
            // attempt's future into its own state; a box moves a pointer instead.
            move |attempt: Attempt| {
                Box::pin(self.write_once(batch, w, (shard, placed), attempt, now))
            }
        }
        .retry(self.conflict_retry())
        .when(|f| matches!(f, Failure::Conflict))
        .context(attempt)
        .await;
        let result = match result {
            Ok(written) => Ok(attempt.done(written)),
            // The last re-fold may leave nothing to write (the winner applied it all).
            Err(Failure::Conflict) if attempt.next().is_none() => Ok(attempt.done(false)),
            Err(Failure::Conflict) => Err(ProcessorError::Contention {
                product_id: w.product_id.clone(),
                attempts: self.settings.max_conflict_retries + 1,
            }),
            Err(Failure::Error(e)) => Err(e),
        };
        (w, shard, result)
    }

    /// Short and jittered: the winner's item came back with the conflict, so a retry needs
    /// no read, only to not collide again with a writer on the same schedule.
    fn conflict_retry(&self) -> ExponentialBuilder {
        ExponentialBuilder::new()
            .with_jitter()
            .with_min_delay(Duration::from_millis(2))
            .with_max_delay(Duration::from_millis(100))
            .with_max_times(self.settings.max_conflict_retries)
    }

    /// One conditional write of the attempt's state. `Ok(written)` when settled.
    async fn write_once(
        &self,
        batch: &PipeBatch,
        w: &ProductWork,
        (shard, placed): (&ShardKey, &Placed),
        mut attempt: Attempt,
        now: DateTime<Utc>,
    ) -> (Attempt, Result<bool, Failure>) {
        if attempt.next().is_none() {
            return (attempt, Ok(false));
        }
        if self.settings.history {
            if let Err(e) = self.write_history(w, &mut attempt, now).await {
                return (attempt, Err(Failure::Error(e.into())));
            }
        } else if let Some(next) = attempt.fold.record.as_mut() {
            // With history off, the item names no entries: any it named are no longer its
            // latest, and a reader must not show them as if they were.
            next.history = None;
        }
        let winner = match self.put_conditionally(w, &mut attempt, now).await {
            Ok(Put::Unchanged) => return (attempt, Ok(false)),
            Ok(Put::Written) => return (attempt, Ok(true)),
            Ok(Put::Lost(winner)) => winner,
            Err(e) => return (attempt, Err(Failure::Error(e))),
        };
        let result = self
            .refold_over(batch, w, (shard, placed), &mut attempt, winner, now)
            .await;
        (attempt, result)
    }

    /// The PutItem of the attempt's state, conditional on the item it was folded over.
    async fn put_conditionally(
        &self,
        w: &ProductWork,
        attempt: &mut Attempt,
        now: DateTime<Utc>,
    ) -> Result<Put, ProcessorError> {
        let Some(next) = attempt.next() else {
            return Ok(Put::Unchanged);
        };
        let written = (next.version, next.last_sequence.clone(), next.quantity);
        let item = ProductItem::record_item(next, now);
        attempt.settled.write_requests += 1;
        let mut req = self
            .db
            .put_item()
            .table_name(&self.tables.inventory)
            .set_item(Some(item))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        req = match &attempt.stored {
            None => req.condition_expression("attribute_not_exists(product_id)"),
            Some(old) => req
                .condition_expression("version = :v AND last_sequence = :s")
                .expression_attribute_values(":v", AttributeValue::N(old.version.to_string()))
                .expression_attribute_values(
                    ":s",
                    AttributeValue::S(old.last_sequence.as_str().to_owned()),
                ),
        };
        match req.send().await {
            Ok(_) => {
                tracing::debug!(product_id = %w.product_id, base = ?attempt.stored.as_ref().map(|s| (s.version, s.last_sequence.as_str())), version = written.0, last = %written.1, quantity = written.2, "product written");
                Ok(Put::Written)
            }
            Err(e) => match e.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(conflict)) => {
                    Ok(Put::Lost(conflict.item().cloned()))
                }
                _ => Err(ProcessorError::dynamo("PutItem", e)),
            },
        }
    }

    /// After a lost race: the attempt re-folded over the `winner`'s item (and its rejections
    /// reconciled), for the next write; `Ok(true)` if the winner was this write itself.
    async fn refold_over(
        &self,
        batch: &PipeBatch,
        w: &ProductWork,
        (shard, placed): (&ShardKey, &Placed),
        attempt: &mut Attempt,
        winner: Option<Item>,
        now: DateTime<Utc>,
    ) -> Result<bool, Failure> {
        let latest = winner
            .map(|item| ProductItem::from_item(item).map(ProductItem::into_record))
            .transpose()
            .map_err(|e| Failure::Error(e.into()))?;
        if latest.is_some() && latest.as_ref() == attempt.fold.record.as_ref() {
            // The stored item is exactly what we wrote: an earlier attempt of this PutItem
            // succeeded and only its response was lost (the SDK retried it). Re-folding
            // would count our own events as redeliveries, not as applied and rejected.
            return Ok(true);
        }
        tracing::info!(product_id = %w.product_id, "lost a write race; re-reading and re-folding");
        let refold = self.fold_one(shard, placed, latest.clone(), &w.events);
        attempt.settled.rejection_requests += self
            .reconcile_rejections(batch, w, &attempt.fold, &refold, now)
            .await
            .map_err(Failure::Error)?;
        attempt.stored = latest;
        attempt.fold = refold;
        Err(Failure::Conflict)
    }

    /// Writes the entries of the write about to be made, before it (store/src/history.rs),
    /// and names them in the state to write.
    async fn write_history(
        &self,
        w: &ProductWork,
        attempt: &mut Attempt,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let Some(next) = attempt.fold.record.as_mut() else {
            return Ok(());
        };
        let entries = inventory_domain::history::entries(
            attempt.stored.as_ref(),
            &w.events,
            &attempt.fold.outcomes,
        );
        let key = HistoryKey::new(
            next.version,
            now.timestamp_millis(),
            inventory_store::shard_log::nonce(),
        );
        let prev = attempt.stored.as_ref().and_then(|s| s.history.as_ref());
        let item = history::item(&w.product_id, &key, prev, &entries, now.timestamp())?;
        attempt.settled.history_writes += 1;
        attempt.settled.history_write_units += inventory_store::shard_log::write_units(&item);
        history::put(&self.db, &self.tables, item).await?;
        next.history = Some(key);
        Ok(())
    }

    /// After a re-fold, records rejected now are recorded, and records this invocation
    /// rejected but the re-fold applies or finds published twice have their rejection
    /// removed.
    async fn reconcile_rejections(
        &self,
        batch: &PipeBatch,
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
                Outcome::Rejected(rejection) => {
                    let event = &w.events[p].event;
                    let record = batch.at(*i).to_record();
                    let item = RejectionItem::new(
                        &RejectedRecord {
                            record: &record,
                            rejection,
                            product_id: Some(&event.product_id),
                            event_id: event.event_id.as_deref(),
                        },
                        now,
                    );
                    puts.push((*i, item));
                }
                // A redelivery was processed by the writer we lost to, which recorded its
                // rejection (if any) before writing the item: that rejection is not ours
                // to delete, even when our fold rejected the record too.
                Outcome::Duplicate(DuplicateKind::Redelivery) => {}
                _ if was => {
                    deletes.push((*i, rejections::key_of(&batch.at(*i).to_record(), now)));
                }
                _ => {}
            }
        }
        let (put_reqs, put_failed) = self.put_rejection_items(puts).await;
        let (del_reqs, del_failed) = self.delete_rejections(deletes).await;
        if !put_failed.is_empty() || !del_failed.is_empty() {
            let why = put_failed
                .values()
                .chain(del_failed.values())
                .next()
                .cloned();
            return Err(StoreError::Dynamo {
                operation: "BatchWriteItem",
                message: format!(
                    "could not reconcile the rejections of product {} ({})",
                    w.product_id,
                    why.unwrap_or_default()
                ),
            }
            .into());
        }
        Ok(put_reqs + del_reqs)
    }
}
