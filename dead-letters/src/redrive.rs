//! Redrive: pending dead letters back onto the stream, each as the stream itself holds it (its
//! partition key and bytes, read back by shard and sequence number; the archive's copy is for
//! display only), so with their event ids. The processor then applies each once: a record
//! never applied is new to it, and one that reached it some other way (a producer's retry) is
//! recognised as a duplicate by its event id (docs/consistency.md). A dead letter whose record
//! the stream does not hold (trimmed, or a forged archive item) republishes nothing.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use backon::{BackoffBuilder, ExponentialBuilder, Retryable};
use chrono::Utc;
use inventory_domain::api::{
    DeadLetterStatus, RedriveRequest, RedriveResult, RedriveSkip, MAX_REDRIVE,
};
use inventory_domain::SequenceNumber;
use inventory_store::dead_letters::{self, DeadLetterItem};
use inventory_store::redrive_lock;
use inventory_store::Tables;
use inventory_stream::ListShards;

use crate::read_back::{read_back, FromStream};
use crate::{kinesis_err, DeadLetterError};

/// How long one redrive request works before it answers with what remains: within the
/// API's wait for it (15 s) and the dead-letter function's timeout.
pub const REDRIVE_BUDGET: Duration = Duration::from_secs(10);
/// The redrive lock outlasts a redrive's budget by this (its last PutRecords call and the
/// marks after it).
const REDRIVE_LOCK_MARGIN: Duration = Duration::from_secs(20);

/// Republishes archived dead letters to the stream.
#[derive(Clone)]
pub struct Redriver {
    kinesis: aws_sdk_kinesis::Client,
    db: aws_sdk_dynamodb::Client,
    tables: Tables,
    stream: String,
    window_ms: i64,
    budget: Duration,
}

impl Redriver {
    /// `window_ms` is the processor's dedup window (`DEDUP_WINDOW_SECONDS`).
    pub fn new(
        kinesis: aws_sdk_kinesis::Client,
        db: aws_sdk_dynamodb::Client,
        tables: Tables,
        stream: String,
        window_ms: i64,
    ) -> Self {
        Self {
            kinesis,
            db,
            tables,
            stream,
            window_ms,
            budget: REDRIVE_BUDGET,
        }
    }

    /// The same, working at most `budget` per request.
    pub fn with_budget(mut self, budget: Duration) -> Self {
        self.budget = budget;
        self
    }

    /// Redrives the dead letters `request.ids` names, or when empty the oldest pending ones
    /// (at most [`MAX_REDRIVE`] and [`REDRIVE_BUDGET`]; `remaining` says to call again), so
    /// a product's events go back oldest first across calls too. Each is claimed before it
    /// is published, so two redrives never send one record. A record that arrived longer
    /// ago than the dedup window is held back unless `include_past_window`.
    pub async fn redrive(
        &self,
        request: &RedriveRequest,
    ) -> Result<RedriveResult, DeadLetterError> {
        // One at a time (store/src/redrive_lock.rs): a second click while one runs is told
        // so, and republishes nothing.
        let holder = format!("{:016x}", inventory_store::shard_log::nonce());
        let hold = self.budget + REDRIVE_LOCK_MARGIN;
        if !redrive_lock::acquire(&self.db, &self.tables, &holder, Utc::now(), hold).await? {
            return Ok(RedriveResult {
                dedup_window_seconds: u64::try_from(self.window_ms / 1000).unwrap_or(0),
                remaining: true,
                skipped: vec![skip(
                    "*",
                    "another redrive is running; redrive again when it has finished (its records go back in their order only one redrive at a time)",
                )],
                ..RedriveResult::default()
            });
        }
        let result = self.redrive_locked(request).await;
        if let Err(e) = redrive_lock::release(&self.db, &self.tables, &holder).await {
            tracing::warn!(error = %e, "redrive lock not given back; it expires by itself");
        }
        result
    }

    async fn redrive_locked(
        &self,
        request: &RedriveRequest,
    ) -> Result<RedriveResult, DeadLetterError> {
        let deadline = Instant::now() + self.budget;
        let cutoff = Utc::now().timestamp_millis() - self.window_ms;
        let past_ok = request.include_past_window;
        let mut result = RedriveResult {
            dedup_window_seconds: u64::try_from(self.window_ms / 1000).unwrap_or(0),
            ..RedriveResult::default()
        };
        let items = self.chosen(request, cutoff, &mut result).await?;
        let to_send = self.sendable(items, cutoff, past_ok, &mut result);
        if to_send.is_empty() {
            return Ok(result);
        }
        let listing = inventory_stream::KinesisShards(self.kinesis.clone())
            .list(&self.stream)
            .await?;
        let read = read_back(&self.kinesis, &self.stream, &listing, to_send).await?;
        result.remaining |= !read.unreached.is_empty();
        for item in &read.unreached {
            result.skipped.push(skip(
                &item.sk,
                "this redrive's reads of the stream did not reach its record; redrive again",
            ));
        }
        // An interrupted redrive's claim is taken up only while a copy it may have published
        // is still inside the dedup window of the one sent now (or when told to).
        let reclaim_after = if past_ok { i64::MIN } else { cutoff };
        let token = format!("{:016x}", inventory_store::shard_log::nonce());
        let claims = (token.as_str(), reclaim_after);
        self.set_aside(read.missing, claims, &mut result).await?;
        self.publish(read.found, claims, deadline, &mut result)
            .await?;
        Ok(result)
    }

    /// The dead letters the request names, or when it names none the oldest pending ones (at
    /// most [`MAX_REDRIVE`]; `result.remaining` says when more are pending).
    async fn chosen(
        &self,
        request: &RedriveRequest,
        cutoff: i64,
        result: &mut RedriveResult,
    ) -> Result<Vec<DeadLetterItem>, DeadLetterError> {
        if request.ids.is_empty() {
            let since = (!request.include_past_window).then_some(cutoff);
            let mut items =
                dead_letters::redrivable(&self.db, &self.tables, since, MAX_REDRIVE + 1).await?;
            result.remaining = items.len() > MAX_REDRIVE;
            items.truncate(MAX_REDRIVE);
            if !request.include_past_window {
                result.held_past_window =
                    dead_letters::pending_before(&self.db, &self.tables, cutoff).await?;
            }
            return Ok(items);
        }
        let mut wanted: Vec<String> = request.ids.iter().take(MAX_REDRIVE).cloned().collect();
        wanted.sort();
        wanted.dedup();
        result.remaining = request.ids.len() > MAX_REDRIVE;
        let found = dead_letters::get_many(&self.db, &self.tables, &wanted).await?;
        for id in &wanted {
            if !found.iter().any(|i| &i.sk == id) {
                result.skipped.push(skip(id, "no dead letter has this id"));
            }
        }
        Ok(found)
    }

    /// Of `items`, the ones a redrive may send; the rest go to `result.skipped` with why.
    fn sendable(
        &self,
        items: Vec<DeadLetterItem>,
        cutoff: i64,
        past_ok: bool,
        result: &mut RedriveResult,
    ) -> Vec<DeadLetterItem> {
        let mut to_send = Vec::new();
        for item in items {
            // The id's arrival time is the stream's: read back, a record whose id differs is
            // not sent.
            let arrived = item_arrival_ms(&item);
            match item.status {
                DeadLetterStatus::ProcessedBefore => result.skipped.push(skip(
                    &item.sk,
                    "the processor handled this record before the Pipe gave up on its batch",
                )),
                DeadLetterStatus::Redriven => result.skipped.push(skip(
                    &item.sk,
                    "already redriven; the processor applies it once",
                )),
                _ if !past_ok && arrived < cutoff => {
                    result.held_past_window += 1;
                    result.skipped.push(skip(
                        &item.sk,
                        &format!(
                            "it arrived longer ago than the dedup window ({} s): a producer's retry of it applied since would not be recognised, so redriving could apply it twice. Check the product's history, then redrive with include_past_window",
                            self.window_ms / 1000
                        ),
                    ));
                }
                _ => to_send.push(item),
            }
        }
        to_send
    }

    /// Dead letters whose record is not on the stream: each claimed, then given back noting
    /// why, so a redrive of everything pending passes it by from then on; each reported.
    async fn set_aside(
        &self,
        missing: Vec<(DeadLetterItem, String)>,
        (token, reclaim_after): (&str, i64),
        result: &mut RedriveResult,
    ) -> Result<(), DeadLetterError> {
        for (item, why) in missing {
            tracing::warn!(id = %item.sk, shard = %item.shard_id, sequence = %item.sequence_number, why = %why, "dead letter not redriven: its record is not on the stream");
            let now = Utc::now().timestamp_millis();
            let db = &self.db;
            if !dead_letters::claim(db, &self.tables, &item.sk, token, now, reclaim_after).await? {
                result.skipped.push(skip(&item.sk, ANOTHER_REDRIVE_HAS_IT));
                continue;
            }
            dead_letters::release_not_on_stream(db, &self.tables, &item.sk, token, &why).await?;
            result.skipped.push(skip(&item.sk, &why));
        }
        Ok(())
    }

    /// Puts the items back on the stream keeping each partition key's records in their
    /// original order: in waves with at most one record per key, each wave after the last
    /// succeeded (PutRecords orders nothing within a call, and retries a failed entry late).
    /// Each item is claimed before it is sent and marked redriven once its call succeeded;
    /// a failed call gives its claims back, so exactly the unsent ones stay pending. No wave
    /// starts past `deadline`.
    async fn publish(
        &self,
        items: Vec<FromStream>,
        claims: (&str, i64),
        deadline: Instant,
        result: &mut RedriveResult,
    ) -> Result<(), DeadLetterError> {
        let mut by_key = queues_by_partition_key(items);
        loop {
            if Instant::now() >= deadline {
                result.remaining |= by_key.values().any(|q| !q.is_empty());
                return Ok(());
            }
            let wave: Vec<FromStream> = by_key
                .values_mut()
                .filter_map(VecDeque::pop_front)
                .collect();
            if wave.is_empty() {
                return Ok(());
            }
            for chunk in wave.chunks(500) {
                self.send_claimed(chunk, claims, result).await?;
            }
        }
    }

    /// One PutRecords call's worth: claims the items, sends the claimed ones, and marks them
    /// redriven, or gives the claims back when the call failed.
    async fn send_claimed(
        &self,
        chunk: &[FromStream],
        (token, reclaim_after): (&str, i64),
        result: &mut RedriveResult,
    ) -> Result<(), DeadLetterError> {
        let (entries, claimed) = self.claim(chunk, token, reclaim_after, result).await?;
        if entries.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.put_all(entries).await {
            for item in &claimed {
                if let Err(release) =
                    dead_letters::release(&self.db, &self.tables, &item.sk, token).await
                {
                    tracing::warn!(id = %item.sk, error = %release, "could not give a redrive claim back; a later redrive takes it up after the lease");
                }
            }
            return Err(e);
        }
        for item in claimed {
            dead_letters::mark_redriven(&self.db, &self.tables, &item.sk, token, Utc::now())
                .await?;
            result.republished += 1;
        }
        Ok(())
    }

    /// The items this redrive could claim, as PutRecords entries of the stream's partition key
    /// and bytes beside the items; the rest (another redrive holds them) go to
    /// `result.skipped`.
    async fn claim<'a>(
        &self,
        chunk: &'a [FromStream],
        token: &str,
        reclaim_after: i64,
        result: &mut RedriveResult,
    ) -> Result<(Vec<PutRecordsRequestEntry>, Vec<&'a DeadLetterItem>), DeadLetterError> {
        let mut entries = Vec::with_capacity(chunk.len());
        let mut claimed = Vec::with_capacity(chunk.len());
        for FromStream {
            item,
            partition_key,
            data,
        } in chunk
        {
            let now = Utc::now().timestamp_millis();
            let db = &self.db;
            if !dead_letters::claim(db, &self.tables, &item.sk, token, now, reclaim_after).await? {
                result.skipped.push(skip(&item.sk, ANOTHER_REDRIVE_HAS_IT));
                continue;
            }
            let entry = PutRecordsRequestEntry::builder()
                .partition_key(partition_key)
                .data(data.clone())
                .build()
                .map_err(|e| kinesis_err("PutRecords", e))?;
            entries.push(entry);
            claimed.push(item);
        }
        Ok((entries, claimed))
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

/// The items queued per partition key (the stream's), each queue in stream order (shard,
/// then sequence).
fn queues_by_partition_key(mut items: Vec<FromStream>) -> BTreeMap<String, VecDeque<FromStream>> {
    items.sort_by(|a, b| {
        (
            a.item.shard_id.as_str(),
            SequenceNumber::parse(&a.item.sequence_number).ok(),
        )
            .cmp(&(
                b.item.shard_id.as_str(),
                SequenceNumber::parse(&b.item.sequence_number).ok(),
            ))
    });
    let mut by_key: BTreeMap<String, VecDeque<FromStream>> = BTreeMap::new();
    for item in items {
        by_key
            .entry(item.partition_key.clone())
            .or_default()
            .push_back(item);
    }
    by_key
}

/// Why an item another redrive claimed is not sent by this one.
const ANOTHER_REDRIVE_HAS_IT: &str = "another redrive has it (or had it: a redrive interrupted longer ago than the dedup window is taken up only with include_past_window)";

fn skip(id: &str, why: &str) -> RedriveSkip {
    RedriveSkip {
        id: id.to_owned(),
        why: why.to_owned(),
    }
}

/// When the record arrived, in ms, from its archive id (`<arrival ms>#<eventID>`).
fn item_arrival_ms(item: &DeadLetterItem) -> i64 {
    item.sk
        .split_once('#')
        .and_then(|(ms, _)| ms.parse().ok())
        .unwrap_or(0)
}
