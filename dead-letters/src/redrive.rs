//! Redrive: pending dead letters back onto the stream, with their partition key and bytes, so
//! with their event ids. The processor then applies each once: a record never applied is new
//! to it, and one that reached it some other way (a producer's retry) is recognised as a
//! duplicate by its event id (docs/consistency.md).

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use backon::{BackoffBuilder, ExponentialBuilder, Retryable};
use base64::Engine;
use chrono::Utc;
use inventory_domain::api::{DeadLetterStatus, RedriveResult, RedriveSkip, MAX_REDRIVE};
use inventory_domain::SequenceNumber;
use inventory_store::dead_letters::{self, DeadLetterItem, Order};
use inventory_store::Tables;

use crate::{kinesis_err, DeadLetterError};

/// Republishes archived dead letters to the stream.
#[derive(Clone)]
pub struct Redriver {
    kinesis: aws_sdk_kinesis::Client,
    db: aws_sdk_dynamodb::Client,
    tables: Tables,
    stream: String,
}

impl Redriver {
    pub fn new(
        kinesis: aws_sdk_kinesis::Client,
        db: aws_sdk_dynamodb::Client,
        tables: Tables,
        stream: String,
    ) -> Self {
        Self {
            kinesis,
            db,
            tables,
            stream,
        }
    }

    /// Redrives the dead letters `ids` names, or when empty the oldest pending ones (at most
    /// [`MAX_REDRIVE`]; `remaining` says to call again), so a product's events go back
    /// oldest first across calls too.
    pub async fn redrive(&self, ids: &[String]) -> Result<RedriveResult, DeadLetterError> {
        let mut result = RedriveResult::default();
        let items = if ids.is_empty() {
            let (mut items, _) = dead_letters::list(
                &self.db,
                &self.tables,
                Some(DeadLetterStatus::Pending),
                Order::OldestFirst,
                MAX_REDRIVE + 1,
                None,
            )
            .await?;
            result.remaining = items.len() > MAX_REDRIVE;
            items.truncate(MAX_REDRIVE);
            items
        } else {
            let mut wanted: Vec<String> = ids.iter().take(MAX_REDRIVE).cloned().collect();
            wanted.sort();
            wanted.dedup();
            result.remaining = ids.len() > MAX_REDRIVE;
            let found = dead_letters::get_many(&self.db, &self.tables, &wanted).await?;
            for id in &wanted {
                if !found.iter().any(|i| &i.sk == id) {
                    result.skipped.push(skip(id, "no dead letter has this id"));
                }
            }
            found
        };
        let mut to_send = Vec::new();
        for item in items {
            match (item.status, &item.data_base64) {
                (DeadLetterStatus::ProcessedBefore, _) => result.skipped.push(skip(
                    &item.sk,
                    "the processor handled this record before the Pipe gave up on its batch",
                )),
                (DeadLetterStatus::Redriven, _) => result.skipped.push(skip(
                    &item.sk,
                    "already redriven; the processor applies it once",
                )),
                (DeadLetterStatus::Pending, None) => result.skipped.push(skip(
                    &item.sk,
                    "its data was too large to archive; republish it from the producer",
                )),
                (DeadLetterStatus::Pending, Some(_)) => to_send.push(item),
            }
        }
        self.publish(to_send, &mut result).await?;
        Ok(result)
    }

    /// Puts the items back on the stream keeping each partition key's records in their
    /// original order: in waves with at most one record per key, each wave after the last
    /// succeeded (PutRecords orders nothing within a call, and retries a failed entry late).
    /// Each item is marked redriven as soon as its call succeeded, so a failure part-way
    /// leaves exactly the unsent ones pending.
    async fn publish(
        &self,
        items: Vec<DeadLetterItem>,
        result: &mut RedriveResult,
    ) -> Result<(), DeadLetterError> {
        let mut by_key: BTreeMap<String, VecDeque<DeadLetterItem>> = BTreeMap::new();
        let mut sorted = items;
        sorted.sort_by(|a, b| {
            (
                a.shard_id.as_str(),
                SequenceNumber::parse(&a.sequence_number).ok(),
            )
                .cmp(&(
                    b.shard_id.as_str(),
                    SequenceNumber::parse(&b.sequence_number).ok(),
                ))
        });
        for item in sorted {
            by_key
                .entry(item.partition_key.clone())
                .or_default()
                .push_back(item);
        }
        loop {
            let wave: Vec<DeadLetterItem> = by_key
                .values_mut()
                .filter_map(VecDeque::pop_front)
                .collect();
            if wave.is_empty() {
                break;
            }
            for chunk in wave.chunks(500) {
                let mut entries = Vec::with_capacity(chunk.len());
                let mut sendable = Vec::with_capacity(chunk.len());
                for item in chunk {
                    let data = item.data_base64.as_deref().unwrap_or_default();
                    match base64::engine::general_purpose::STANDARD.decode(data) {
                        Ok(bytes) => {
                            let entry = PutRecordsRequestEntry::builder()
                                .partition_key(&item.partition_key)
                                .data(Blob::new(bytes))
                                .build()
                                .map_err(|e| kinesis_err("PutRecords", e))?;
                            entries.push(entry);
                            sendable.push(item.clone());
                        }
                        Err(e) => result.skipped.push(skip(
                            &item.sk,
                            &format!("its archived data is not base64 ({e})"),
                        )),
                    }
                }
                self.put_all(entries).await?;
                for item in sendable {
                    dead_letters::mark_redriven(&self.db, &self.tables, &item.sk, Utc::now())
                        .await?;
                    result.republished += 1;
                }
            }
        }
        Ok(())
    }

    /// One PutRecords call's entries, retrying the ones Kinesis refused (throttling) until
    /// every one is in, or the retries run out.
    async fn put_all(&self, entries: Vec<PutRecordsRequestEntry>) -> Result<(), DeadLetterError> {
        let mut pending = entries;
        let backoff = ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(Duration::from_millis(50))
            .with_max_delay(Duration::from_secs(2))
            .with_max_times(10);
        let mut delays = backoff.build();
        while !pending.is_empty() {
            let call = || async {
                self.kinesis
                    .put_records()
                    .stream_name(&self.stream)
                    .set_records(Some(pending.clone()))
                    .send()
                    .await
            };
            let out = call
                .retry(backoff)
                .await
                .map_err(|e| kinesis_err("PutRecords", e))?;
            if out.failed_record_count().unwrap_or(0) == 0 {
                return Ok(());
            }
            pending = pending
                .into_iter()
                .zip(out.records())
                .filter(|(_, r)| r.error_code().is_some())
                .map(|(e, _)| e)
                .collect();
            match delays.next() {
                Some(delay) => tokio::time::sleep(delay).await,
                None => {
                    return Err(DeadLetterError::Kinesis {
                        operation: "PutRecords",
                        message: format!("{} records still refused after 10 retries (throttled); redrive again later", pending.len()),
                    })
                }
            }
        }
        Ok(())
    }
}

fn skip(id: &str, why: &str) -> RedriveSkip {
    RedriveSkip {
        id: id.to_owned(),
        why: why.to_owned(),
    }
}
