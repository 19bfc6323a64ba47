//! Rejected records into the events table ([`RejectionItem`]s, BatchWriteItem), and out of
//! it again when a re-fold after a lost write race no longer rejects them.

use std::collections::{HashMap, HashSet};

use aws_sdk_dynamodb::types::WriteRequest;
use chrono::{DateTime, Utc};
use inventory_domain::pipes::PipeBatch;
use inventory_domain::Rejection;
use inventory_store::batch::{batch_write, UNPROCESSED_RETRY};
use inventory_store::items::Item;
use inventory_store::rejections::{self, RejectedRecord, RejectionItem};
use inventory_store::StoreError;

use super::fold::Folded;
use super::Processor;

/// The batch indices whose rejection write failed, with why.
pub(super) type Unwritten = HashMap<usize, String>;

impl Processor {
    /// Writes the rejection of each `(index, rejection, product)` (`product` indexes
    /// `folds`, for the event's ids). Returns the requests made and what was not written.
    pub(super) async fn put_rejections(
        &self,
        batch: &PipeBatch,
        to_record: &[(usize, Rejection, Option<usize>)],
        folds: &[Folded],
        now: DateTime<Utc>,
    ) -> (u64, Unwritten) {
        // Built before any await: an iterator's closure held across one would keep the
        // batch's future from being `Send` (the Lambda runtime and Pipe spawn it).
        let items: Vec<(usize, RejectionItem)> = to_record
            .iter()
            .map(|(i, rejection, product)| {
                let event = product.and_then(|k| {
                    let w = &folds[k].work;
                    w.indices
                        .iter()
                        .position(|x| x == i)
                        .map(|p| &w.events[p].event)
                });
                // Only rejected records pay for a copy of their strings.
                let record = batch.at(*i).to_record();
                let item = RejectionItem::new(
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
        self.put_rejection_items(items).await
    }

    /// Writes rejection items, each tagged with its record's batch index.
    pub(super) async fn put_rejection_items(
        &self,
        items: Vec<(usize, RejectionItem)>,
    ) -> (u64, Unwritten) {
        let requests = items
            .into_iter()
            .map(|(i, item)| (i, item.key(), item.put_request()))
            .collect();
        self.write_rejections(requests).await
    }

    /// Deletes the rejections with these keys (from [`rejections::key_of`]).
    pub(super) async fn delete_rejections(&self, keys: Vec<(usize, Item)>) -> (u64, Unwritten) {
        let requests = keys
            .into_iter()
            .map(|(i, key)| {
                let request = rejections::delete_request(key.clone());
                (i, key, request)
            })
            .collect();
        self.write_rejections(requests).await
    }

    async fn write_rejections(
        &self,
        requests: Vec<(usize, Item, Result<WriteRequest, StoreError>)>,
    ) -> (u64, Unwritten) {
        let mut unwritten = Unwritten::new();
        // A BatchWriteItem call may not name one key twice; a record delivered twice in one
        // batch has one rejection key, written once.
        let mut seen = HashSet::new();
        let mut pending = Vec::new();
        for (i, key, request) in requests {
            let key: Vec<_> = ["pk", "sk"].map(|k| key.get(k).cloned()).into();
            if !seen.insert(format!("{key:?}")) {
                continue;
            }
            match request {
                Ok(request) => pending.push((i, request)),
                Err(e) => {
                    unwritten.insert(i, e.to_string());
                }
            }
        }
        let written = batch_write(&self.db, &self.tables.events, pending, UNPROCESSED_RETRY).await;
        for (i, e) in written.failed {
            tracing::warn!(error = %e, "rejection write failed");
            unwritten.insert(i, e.to_string());
        }
        (written.requests, unwritten)
    }
}
