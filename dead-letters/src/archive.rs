//! One dead-lettered range: read back from the stream, classified, archived.

use std::collections::HashSet;

use aws_sdk_kinesis::types::ShardIteratorType;
use base64::Engine;
use chrono::Utc;
use inventory_domain::api::DeadLetterStatus;
use inventory_domain::batch::DecodedBatch;
use inventory_domain::dead_letter::DeadLetteredRange;
use inventory_domain::dedup::SeenIndex;
use inventory_domain::pipes::PipeBatch;
use inventory_domain::{PipeRecord, SequenceNumber};
use inventory_store::batch::{batch_get, UNPROCESSED_RETRY};
use inventory_store::dead_letters::{self, DeadLetterFacts, DeadLetterItem};
use inventory_store::dedup_log::DedupLog;
use inventory_store::items::{self, ProductItem};
use inventory_store::{rejections, Tables};

use crate::{kinesis_err, DeadLetterError};

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
        let stream = range.stream_name();
        let mut iterator = self
            .kinesis
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(&range.info.shard_id)
            .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
            .starting_sequence_number(range.start.as_str())
            .send()
            .await
            .map_err(|e| kinesis_err("GetShardIterator", e))?
            .shard_iterator;
        let mut out = Vec::new();
        let mut calls = 0;
        while let Some(it) = iterator.take() {
            calls += 1;
            if calls > MAX_GET_RECORDS_CALLS {
                break;
            }
            let page = self
                .kinesis
                .get_records()
                .shard_iterator(it)
                .limit(10_000)
                .send()
                .await
                .map_err(|e| kinesis_err("GetRecords", e))?;
            let mut past_end = false;
            for r in page.records() {
                let Ok(sequence) = SequenceNumber::parse(r.sequence_number()) else {
                    continue;
                };
                if sequence > range.end {
                    past_end = true;
                    break;
                }
                if range.contains(&sequence) {
                    out.push(pipe_record(range, r));
                }
            }
            let caught_up = page.records().is_empty() && page.millis_behind_latest() == Some(0);
            if past_end || caught_up {
                break;
            }
            iterator = page.next_shard_iterator;
        }
        Ok(out)
    }

    /// Indices of the records the processor handled before the Pipe gave up: an event the
    /// shard log or its product's item holds, or a malformed record whose rejection is
    /// stored. Redriving one of those would apply it twice once the log's window has passed.
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
        // A fresh log, as a cold processor reads it: the window before the range and
        // everything logged since (the attempts that failed the batch included).
        let log = DedupLog::new(
            self.db.clone(),
            self.tables.events.clone(),
            self.window_ms,
            usize::MAX,
        );
        let stream = range.stream_name();
        log.refresh(stream, &range.info.shard_id, oldest).await?;
        // The event (its product and id, same content) was processed through any record.
        log.with_lineage(stream, &range.info.shard_id, |index| {
            for work in &decoded.products {
                for (i, event) in work.indices.iter().zip(&work.events) {
                    if index
                        .seen(event.key)
                        .is_some_and(|s| s.content == event.content)
                    {
                        processed.insert(*i);
                    }
                }
            }
        });
        // The product's own recent ids: the case where its item was written but the shard
        // log's append failed on every attempt until the Pipe gave up.
        let ids: Vec<&str> = decoded
            .products
            .iter()
            .map(|w| w.product_id.as_str())
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
        let mut products = std::collections::HashMap::new();
        for item in read.items {
            let product = ProductItem::from_item(item)?.into_record();
            products.insert(product.product_id.clone(), product);
        }
        for work in &decoded.products {
            let Some(product) = products.get(&work.product_id) else {
                continue;
            };
            for (i, event) in work.indices.iter().zip(&work.events) {
                if product
                    .recent_ids
                    .contains(event.event.dedup_key(&event.record_id))
                {
                    processed.insert(*i);
                }
            }
        }
        if !decoded.malformed.is_empty() {
            let now = Utc::now();
            let keys = decoded
                .malformed
                .iter()
                .map(|(i, _)| rejections::key_of(&records[*i], now))
                .collect();
            let read =
                batch_get(&self.db, &self.tables.events, keys, true, UNPROCESSED_RETRY).await;
            if let Some((_, e)) = read.failed.into_iter().next() {
                return Err(e.into());
            }
            let stored: HashSet<String> = read
                .items
                .iter()
                .filter_map(|item| item.get("sk").and_then(|v| v.as_s().ok()).cloned())
                .collect();
            for (i, _) in &decoded.malformed {
                let sk = rejections::sort_key(records[*i].arrival_millis(), &records[*i].event_id);
                if stored.contains(&sk) {
                    processed.insert(*i);
                }
            }
        }
        Ok(processed)
    }
}

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

/// A Kinesis record in the Pipes shape the processor and the archive read.
fn pipe_record(range: &DeadLetteredRange, r: &aws_sdk_kinesis::types::Record) -> PipeRecord {
    let arrival = r
        .approximate_arrival_timestamp()
        .map_or(0.0, |t| t.as_secs_f64());
    PipeRecord {
        kinesis_schema_version: "1.0".into(),
        partition_key: r.partition_key().unwrap_or_default().to_owned(),
        sequence_number: r.sequence_number().to_owned(),
        data: base64::engine::general_purpose::STANDARD.encode(r.data().as_ref()),
        approximate_arrival_timestamp: arrival,
        event_source: "aws:kinesis".into(),
        event_version: "1.0".into(),
        event_id: format!("{}:{}", range.info.shard_id, r.sequence_number()),
        event_name: "aws:kinesis:record".into(),
        invoke_identity_arn: String::new(),
        aws_region: region_of(&range.info.stream_arn),
        event_source_arn: range.info.stream_arn.clone(),
    }
}

/// The region field of an ARN (`arn:aws:kinesis:<region>:…`).
fn region_of(arn: &str) -> String {
    arn.split(':').nth(3).unwrap_or_default().to_owned()
}
