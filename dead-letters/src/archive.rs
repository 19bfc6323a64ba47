//! One dead-lettered range: read back from the stream, classified, archived.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use inventory_domain::api::DeadLetterStatus;
use inventory_domain::batch::{DecodedBatch, ProductWork};
use inventory_domain::dead_letter::DeadLetteredRange;
use inventory_domain::dedup::{shard_ordinal, SeenIndex};
use inventory_domain::lineage::{hash_key, Place, RecordAt, StreamLineage};
use inventory_domain::pipes::PipeBatch;
use inventory_domain::{PipeRecord, ProductRecord, SequencedEvent};
use inventory_store::batch::{batch_get, UNPROCESSED_RETRY};
use inventory_store::dead_letters::{self, DeadLetterFacts, DeadLetterItem};
use inventory_store::items::{self, ProductItem};
use inventory_store::shard_log::{self, ShardLogStore};
use inventory_store::{rejections, Tables};

use crate::{kinesis_err, stream_read, DeadLetterError};

/// GetRecords calls one range may take before the consumer gives up on finding its end (a
/// range is at most one batch, 10,000 records; an empty page past the shard's tip ends it
/// sooner).
const MAX_GET_RECORDS_CALLS: usize = 200;

/// What archiving one range did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveReport {
    /// Records of the range found in the stream.
    pub records: u64,
    /// Of them, archived now (the rest were archived by an earlier delivery of the message).
    pub newly_archived: u64,
    /// Of them, the ones the processor had handled before the Pipe gave up on the batch.
    pub processed_before: u64,
    /// The range's size as the message gave it, when it did, beyond what the stream still
    /// held: records trimmed by the stream's retention before they could be read.
    pub missing: u64,
}

/// Reads dead-lettered ranges back from the stream and archives their records.
#[derive(Clone)]
pub struct DeadLetterConsumer {
    kinesis: aws_sdk_kinesis::Client,
    db: aws_sdk_dynamodb::Client,
    tables: Tables,
    /// The streams' listings, kept between messages (a burst of dead letters is one
    /// stream's), taken again when a range's shard is not in the one held.
    listings: std::sync::Arc<inventory_stream::Listings>,
    window_ms: i64,
}

impl DeadLetterConsumer {
    pub fn new(
        kinesis: aws_sdk_kinesis::Client,
        db: aws_sdk_dynamodb::Client,
        tables: Tables,
        window_ms: i64,
    ) -> Self {
        Self {
            listings: std::sync::Arc::new(inventory_stream::Listings::new(std::sync::Arc::new(
                inventory_stream::KinesisShards(kinesis.clone()),
            ))),
            kinesis,
            db,
            tables,
            window_ms,
        }
    }

    /// Archives every record of `range`. Safe to run twice on one range.
    pub async fn archive(
        &self,
        range: &DeadLetteredRange,
    ) -> Result<ArchiveReport, DeadLetterError> {
        let records = self.read_range(range).await?;
        // Decoded once, by the processor's own decoder: the identities and the checks below.
        let decoded = inventory_domain::batch::decode_pipe_batch(&batch_of(&records)?);
        let processed = self.processed_before(range, &records, &decoded).await?;
        let mut identity: Vec<(Option<String>, Option<String>)> = vec![(None, None); records.len()];
        for work in &decoded.products {
            for (i, event) in work.indices.iter().zip(&work.events) {
                identity[*i] = (Some(work.product_id.clone()), event.event.event_id.clone());
            }
        }
        let now = Utc::now();
        let items: Vec<DeadLetterItem> = records
            .iter()
            .enumerate()
            .map(|(i, record)| {
                let status = if processed.contains(&i) {
                    DeadLetterStatus::ProcessedBefore
                } else {
                    DeadLetterStatus::Pending
                };
                DeadLetterItem::new(
                    record,
                    &DeadLetterFacts {
                        reason: &range.reason,
                        attempts: range.attempts,
                        product_id: identity[i].0.as_deref(),
                        event_id: identity[i].1.as_deref(),
                        status,
                    },
                    now,
                )
            })
            .collect();
        let newly_archived = dead_letters::archive(&self.db, &self.tables, &items).await?;
        let report = ArchiveReport {
            records: records.len() as u64,
            newly_archived,
            processed_before: processed.len() as u64,
            missing: range
                .info
                .batch_size
                .unwrap_or(0)
                .saturating_sub(records.len() as u64),
        };
        if report.missing > 0 {
            tracing::error!(shard = %range.info.shard_id, start = %range.start, missing = report.missing, "records of the dead-lettered range are no longer in the stream (trimmed by its retention); they cannot be archived or redriven");
        }
        tracing::info!(shard = %range.info.shard_id, start = %range.start, records = report.records, newly_archived, processed_before = report.processed_before, "dead-lettered range archived");
        Ok(report)
    }

    /// The range's records, in stream order, read from the shard.
    async fn read_range(
        &self,
        range: &DeadLetteredRange,
    ) -> Result<Vec<PipeRecord>, DeadLetterError> {
        let shard = &range.info.shard_id;
        let iterator =
            stream_read::iterator_at(&self.kinesis, range.stream_name(), shard, &range.start)
                .await
                .map_err(|e| kinesis_err("GetShardIterator", e))?;
        let read = stream_read::read_to(
            &self.kinesis,
            iterator,
            &range.end,
            MAX_GET_RECORDS_CALLS,
            |sequence| range.contains(sequence),
        )
        .await?;
        Ok(read
            .records
            .iter()
            .map(|r| inventory_stream::pipe_record(r, shard, &range.stream))
            .collect())
    }

    /// Indices of the records the processor handled before the Pipe gave up on their batch
    /// (docs/consistency.md, "Dead letters"), by the first rule that decides:
    ///
    /// 1. the shard log of the record's shard or its ancestors holds its event (same
    ///    product, id and content): applied, rejected, or a duplicate of one that was;
    /// 2. its rejection is stored (a malformed record, a refused transition, a stray);
    /// 3. a logged delivery of its batch finished its product (then it is in 1 or 2, or a
    ///    duplicate the log holds), or left it unfinished (its product's write failed, so it
    ///    was not applied): pending;
    /// 4. no logged delivery covers it (every attempt's log write failed, or the log items
    ///    have expired: a Pipe re-reading the stream long after): its product's stored
    ///    position is at or past it along its shard lineage, whatever the log says.
    ///
    /// Redriving a processed record would apply it twice once the dedup window has passed.
    async fn processed_before(
        &self,
        range: &DeadLetteredRange,
        records: &[PipeRecord],
        decoded: &DecodedBatch,
    ) -> Result<HashSet<usize>, DeadLetterError> {
        let mut processed = HashSet::new();
        let Some(oldest) = records.iter().map(PipeRecord::arrival_millis).min() else {
            return Ok(processed);
        };
        let stream = range.stream_name();
        let shard = &range.info.shard_id;
        let mut listing = self.listings.get(stream).await?.lineage;
        if listing.shard(shard_ordinal(shard)).is_none() {
            listing = self.listing_now(stream).await?;
        }
        let ancestors: Vec<String> = listing
            .ancestors(shard_ordinal(shard))
            .into_iter()
            .map(inventory_domain::dedup::shard_id)
            .collect();
        let logged = self.held_by_shard_log(stream, shard, &ancestors, oldest, decoded);
        processed.extend(logged.await?);
        processed.extend(self.rejection_stored(records).await?);
        let undecided = self
            .decided_by_deliveries(stream, shard, oldest, decoded, &mut processed)
            .await?;
        let behind = self.behind_stored_position(stream, listing, undecided);
        processed.extend(behind.await?);
        Ok(processed)
    }

    /// The stream's listing taken now (the held one lacks a shard created since).
    async fn listing_now(&self, stream: &str) -> Result<Arc<StreamLineage>, DeadLetterError> {
        Ok(self
            .listings
            .newer_than(stream, Instant::now())
            .await?
            .lineage)
    }

    /// Rule 1: the events a fresh log holds, as a cold processor reads it: the window
    /// before the range and everything logged since (the attempts that failed the batch
    /// included).
    async fn held_by_shard_log(
        &self,
        stream: &str,
        shard: &str,
        ancestors: &[String],
        oldest: i64,
        decoded: &DecodedBatch,
    ) -> Result<Vec<usize>, DeadLetterError> {
        let log = ShardLogStore::new(
            self.db.clone(),
            self.tables.events.clone(),
            self.window_ms,
            usize::MAX,
        );
        log.refresh(stream, shard, ancestors, oldest).await?;
        let mut held = Vec::new();
        log.with_lineage(stream, shard, ancestors, |index| {
            for work in &decoded.products {
                for (i, event) in work.indices.iter().zip(&work.events) {
                    if index
                        .seen(event.keys)
                        .is_some_and(|s| s.content == event.content)
                    {
                        held.push(*i);
                    }
                }
            }
        });
        Ok(held)
    }

    /// Rule 2: the records whose rejection is stored.
    async fn rejection_stored(
        &self,
        records: &[PipeRecord],
    ) -> Result<Vec<usize>, DeadLetterError> {
        let now = Utc::now();
        let keys = records.iter().map(|r| rejections::key_of(r, now)).collect();
        let read = batch_get(&self.db, &self.tables.events, keys, true, UNPROCESSED_RETRY).await;
        if let Some((_, e)) = read.failed.into_iter().next() {
            return Err(e.into());
        }
        let stored: HashSet<String> = read
            .items
            .iter()
            .filter_map(|item| item.get("sk").and_then(|v| v.as_s().ok()).cloned())
            .collect();
        Ok(records
            .iter()
            .enumerate()
            .filter(|(_, record)| {
                stored.contains(&rejections::sort_key(
                    record.arrival_millis(),
                    &record.event_id,
                ))
            })
            .map(|(i, _)| i)
            .collect())
    }

    /// Rule 3: adds to `processed` the events a logged delivery of the batch finished;
    /// gives back the ones no logged delivery covers (an unfinished one leaves its event
    /// pending).
    async fn decided_by_deliveries<'a>(
        &self,
        stream: &str,
        shard: &str,
        oldest: i64,
        decoded: &'a DecodedBatch,
        processed: &mut HashSet<usize>,
    ) -> Result<Vec<Undecided<'a>>, DeadLetterError> {
        let attempts =
            shard_log::attempts(&self.db, &self.tables.events, stream, shard, oldest).await?;
        let mut undecided = Vec::new();
        for work in &decoded.products {
            for (i, event) in work.indices.iter().zip(&work.events) {
                if processed.contains(i) {
                    continue;
                }
                let verdicts: Vec<bool> = attempts
                    .iter()
                    .filter_map(|a| a.finished(&event.sequence, &work.product_id))
                    .collect();
                if verdicts.contains(&true) {
                    processed.insert(*i);
                } else if verdicts.is_empty() {
                    undecided.push((*i, work, event));
                }
            }
        }
        Ok(undecided)
    }

    /// Rule 4: the undecided events their product's stored position is at or past, along
    /// the shard lineage.
    async fn behind_stored_position(
        &self,
        stream: &str,
        mut listing: Arc<StreamLineage>,
        undecided: Vec<Undecided<'_>>,
    ) -> Result<Vec<usize>, DeadLetterError> {
        if undecided.is_empty() {
            return Ok(Vec::new());
        }
        let products = self.stored_products(&undecided).await?;
        // A position on a shard the held listing does not name (a child created since it
        // was taken) is judged on a listing taken now.
        if products.values().any(|p| {
            p.last_stream.is_none_or(|s| s == listing.stream)
                && p.last_shard.is_some_and(|s| listing.shard(s).is_none())
        }) {
            listing = self.listing_now(stream).await?;
        }
        let mut behind = Vec::new();
        for (i, work, event) in undecided {
            let Some(product) = products.get(&work.product_id) else {
                continue;
            };
            let place = inventory_domain::lineage::place(
                &listing,
                RecordAt {
                    shard: event.shard,
                    sequence: &event.sequence,
                    hash: hash_key(&work.product_id),
                },
                Some(&product.position()),
            );
            if place == Place::Behind {
                behind.push(i);
            }
        }
        Ok(behind)
    }

    /// The stored records of the undecided events' products, by product id.
    async fn stored_products(
        &self,
        undecided: &[Undecided<'_>],
    ) -> Result<HashMap<String, ProductRecord>, DeadLetterError> {
        // One key per product: BatchGetItem refuses a key twice.
        let ids: BTreeSet<&str> = undecided
            .iter()
            .map(|(_, w, _)| w.product_id.as_str())
            .collect();
        let read = batch_get(
            &self.db,
            &self.tables.inventory,
            ids.iter().map(|id| items::product_key(id)).collect(),
            true,
            UNPROCESSED_RETRY,
        )
        .await;
        if let Some((_, e)) = read.failed.into_iter().next() {
            return Err(e.into());
        }
        let mut products = HashMap::new();
        for item in read.items {
            let product = ProductItem::from_item(item)?.into_record();
            products.insert(product.product_id.clone(), product);
        }
        Ok(products)
    }
}

/// An event no logged delivery covers: its record's index, its product's work, the event.
type Undecided<'a> = (usize, &'a ProductWork, &'a SequencedEvent);

/// The records as the Pipe delivered them (the processor's own decoder reads them).
fn batch_of(records: &[PipeRecord]) -> Result<PipeBatch, DeadLetterError> {
    let json = serde_json::to_string(records).map_err(|e| DeadLetterError::Setting {
        name: "records",
        message: e.to_string(),
    })?;
    PipeBatch::from_json(json).map_err(|e| DeadLetterError::Setting {
        name: "records",
        message: e.to_string(),
    })
}
