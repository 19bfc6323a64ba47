//! A local EventBridge Pipe: Kinesis source → Lambda target, with the semantics the
//! processor relies on in AWS:
//!
//! - every shard read with GetRecords from TRIM_HORIZON or the saved checkpoint, one batch
//!   per shard at a time (per-shard order), shards concurrently;
//! - batches of up to `BatchSize` records, or fewer once `MaximumBatchingWindowInSeconds`
//!   has passed since the first buffered record, and never over Lambda's 6 MB payload;
//! - the target gets the exact Pipes payload as serialised JSON (a top-level array of flat
//!   records) and answers with `{"batchItemFailures":[{"itemIdentifier": eventID}]}`;
//! - the checkpoint moves only past records that succeeded (all of a batch, or those
//!   before the first reported failure);
//! - a failing batch is halved (AUTOMATIC_BISECT) and retried with backoff up to
//!   `MaximumRetryAttempts`; records older than `MaximumRecordAgeInSeconds` or out of
//!   retries go to a dead-letter record a user can read (`DLQ#<pipe>` items);
//! - the runner's own calls (a fresh shard iterator, the checkpoint write) are retried
//!   with backoff for as long as the pipe runs: a transient error never ends a shard.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_kinesis::types::ShardIteratorType;
use backon::{ExponentialBuilder, Retryable};
use chrono::{SecondsFormat, Utc};
use inventory_domain::{BatchResponse, PipeRecord};
use inventory_processor::{Processor, Tables};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::emulators::LOCAL_REGION;
use crate::kinesis::{self, KinesisError};
use crate::pipe_settings::PipeSettings;

/// Lambda's synchronous invocation payload limit.
pub const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;
/// How long an idle shard waits before polling again.
const IDLE_POLL: Duration = Duration::from_millis(100);
/// Invocations that take longer count as failed, like a Lambda timeout.
const INVOKE_TIMEOUT: Duration = Duration::from_secs(60);

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// What the Pipe invokes: JSON bytes in, JSON bytes out, or a function error.
pub trait Target: Send + Sync + 'static {
    fn invoke(&self, payload: Vec<u8>) -> BoxFuture<Result<Vec<u8>, String>>;
}

/// The processor Lambda's handler as a target, behind the same JSON (de)serialisation the
/// Lambda runtime does.
#[derive(Clone)]
pub struct ProcessorTarget(pub Processor);

impl Target for ProcessorTarget {
    fn invoke(&self, payload: Vec<u8>) -> BoxFuture<Result<Vec<u8>, String>> {
        let processor = self.0.clone();
        Box::pin(async move {
            // Handled as the Lambda handles its body (processor/src/bin/processor.rs).
            let response = processor
                .handle_body(payload)
                .await
                .map_err(|e| e.to_string())?;
            serde_json::to_vec(&response).map_err(|e| e.to_string())
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PipeError {
    #[error(transparent)]
    Kinesis(#[from] KinesisError),
    #[error("DynamoDB {operation} for the pipe's checkpoints failed: {message}")]
    Dynamo {
        operation: &'static str,
        message: String,
    },
    #[error("the checkpoint of pipe {pipe} belongs to stream {saved}, but the stream now is {current}: the table and the stream are out of step (was only one of them kept?). Delete the data directory to start both afresh")]
    StreamMismatch {
        pipe: String,
        saved: String,
        current: String,
    },
    #[error(transparent)]
    Settings(#[from] crate::pipe_settings::InvalidSetting),
}

fn dynamo_err<E: std::error::Error>(operation: &'static str, e: E) -> PipeError {
    PipeError::Dynamo {
        operation,
        message: aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string(),
    }
}

/// Counters a user (and the API) can read while the pipe runs.
#[derive(Debug, Default)]
pub struct PipeStats {
    pub invocations: AtomicU64,
    pub records_delivered: AtomicU64,
    pub failed_invocations: AtomicU64,
    pub partial_failures: AtomicU64,
    pub bisections: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub checkpoints: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PipeStatsSnapshot {
    pub invocations: u64,
    pub records_delivered: u64,
    pub failed_invocations: u64,
    pub partial_failures: u64,
    pub bisections: u64,
    pub dead_lettered: u64,
    pub checkpoints: u64,
}

impl PipeStats {
    pub fn snapshot(&self) -> PipeStatsSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        PipeStatsSnapshot {
            invocations: g(&self.invocations),
            records_delivered: g(&self.records_delivered),
            failed_invocations: g(&self.failed_invocations),
            partial_failures: g(&self.partial_failures),
            bisections: g(&self.bisections),
            dead_lettered: g(&self.dead_lettered),
            checkpoints: g(&self.checkpoints),
        }
    }
}

/// Where the pipe keeps checkpoints and dead letters (the events table).
#[derive(Clone)]
pub struct PipeRunner {
    pub name: String,
    pub stream: String,
    pub settings: PipeSettings,
    kinesis: aws_sdk_kinesis::Client,
    db: aws_sdk_dynamodb::Client,
    tables: Tables,
    target: Arc<dyn Target>,
    stats: Arc<PipeStats>,
    /// First retry delay; doubles per attempt up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

/// A running pipe.
pub struct PipeHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), PipeError>>,
    pub stats: Arc<PipeStats>,
}

impl PipeHandle {
    /// Lets every shard finish its current batch, then stops.
    pub async fn stop(self) -> Result<(), PipeError> {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or(Ok(()))
    }

    /// Stops at once, mid-batch, like a killed process.
    pub fn kill(self) {
        self.task.abort();
    }

    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Runs until Ctrl-C (then stops cleanly) or until the pipe stops on an error.
    pub async fn run_until_ctrl_c(self) -> Result<(), PipeError> {
        let PipeHandle { stop, mut task, .. } = self;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {
                let _ = stop.send(true);
                task.await.unwrap_or(Ok(()))
            }
            result = &mut task => result.unwrap_or(Ok(())),
        }
    }
}

impl PipeRunner {
    pub fn new(
        name: impl Into<String>,
        stream: impl Into<String>,
        settings: PipeSettings,
        kinesis: aws_sdk_kinesis::Client,
        db: aws_sdk_dynamodb::Client,
        tables: Tables,
        target: Arc<dyn Target>,
    ) -> Self {
        Self {
            name: name.into(),
            stream: stream.into(),
            settings,
            kinesis,
            db,
            tables,
            target,
            stats: Arc::new(PipeStats::default()),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
        }
    }

    pub fn stats(&self) -> Arc<PipeStats> {
        self.stats.clone()
    }

    pub fn spawn(self) -> PipeHandle {
        let (stop, stopped) = watch::channel(false);
        let stats = self.stats.clone();
        let task = tokio::spawn(self.run(stopped));
        PipeHandle { stop, task, stats }
    }

    /// Runs every shard until `stop` turns true.
    pub async fn run(self, stop: watch::Receiver<bool>) -> Result<(), PipeError> {
        self.settings.validate()?;
        let summary = self
            .kinesis
            .describe_stream_summary()
            .stream_name(&self.stream)
            .send()
            .await
            .map_err(|e| KinesisError::call("DescribeStreamSummary", e))?;
        let d = summary
            .stream_description_summary()
            .ok_or_else(|| KinesisError::NotActive(self.stream.clone()))?;
        // A stream deleted and created again has the same ARN; its creation time differs.
        let created = d.stream_creation_timestamp();
        let identity = format!(
            "{}@{}.{:09}",
            d.stream_arn(),
            created.secs(),
            created.subsec_nanos()
        );
        let arn = d.stream_arn().to_owned();
        let shards = kinesis::shard_ids(&self.kinesis, &self.stream).await?;
        let mut tasks = JoinSet::new();
        for shard in shards {
            let checkpoint = self.load_checkpoint(&shard, &identity).await?;
            let runner = self.clone();
            let (arn, identity, stop) = (arn.clone(), identity.clone(), stop.clone());
            tasks.spawn(async move {
                runner
                    .run_shard(shard, arn, identity, checkpoint, stop)
                    .await
            });
        }
        while let Some(result) = tasks.join_next().await {
            match result {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(e) if e.is_cancelled() => {}
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        }
        Ok(())
    }

    fn checkpoint_key(&self, shard: &str) -> [(String, AttributeValue); 2] {
        [
            (
                "pk".into(),
                AttributeValue::S(format!("PIPE#{}", self.name)),
            ),
            ("sk".into(), AttributeValue::S(format!("SHARD#{shard}"))),
        ]
    }

    async fn load_checkpoint(
        &self,
        shard: &str,
        identity: &str,
    ) -> Result<Option<String>, PipeError> {
        let out = self
            .db
            .get_item()
            .table_name(&self.tables.events)
            .set_key(Some(self.checkpoint_key(shard).into_iter().collect()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| dynamo_err("GetItem", e))?;
        let Some(item) = out.item() else {
            return Ok(None);
        };
        let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
        let saved = text("stream").unwrap_or_default();
        if saved != identity {
            return Err(PipeError::StreamMismatch {
                pipe: self.name.clone(),
                saved,
                current: identity.to_owned(),
            });
        }
        Ok(text("sequence_number"))
    }

    async fn save_checkpoint(
        &self,
        shard: &str,
        identity: &str,
        sequence_number: &str,
    ) -> Result<(), PipeError> {
        let mut item: std::collections::HashMap<String, AttributeValue> =
            self.checkpoint_key(shard).into_iter().collect();
        item.insert("stream".into(), AttributeValue::S(identity.to_owned()));
        item.insert(
            "sequence_number".into(),
            AttributeValue::S(sequence_number.to_owned()),
        );
        item.insert(
            "updated_at".into(),
            AttributeValue::S(Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)),
        );
        self.db
            .put_item()
            .table_name(&self.tables.events)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| dynamo_err("PutItem", e))?;
        self.stats.checkpoints.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn iterator_after(&self, shard: &str, after: Option<&str>) -> Result<String, PipeError> {
        let req = self
            .kinesis
            .get_shard_iterator()
            .stream_name(&self.stream)
            .shard_id(shard);
        let req = match after {
            Some(seq) => req
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(seq),
            None if self.settings.starting_position == "LATEST" => {
                req.shard_iterator_type(ShardIteratorType::Latest)
            }
            None => req.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        let out = req
            .send()
            .await
            .map_err(|e| KinesisError::call("GetShardIterator", e))?;
        Ok(out.shard_iterator().unwrap_or_default().to_owned())
    }

    async fn run_shard(
        self,
        shard: String,
        arn: String,
        identity: String,
        checkpoint: Option<String>,
        stop: watch::Receiver<bool>,
    ) -> Result<(), PipeError> {
        let batch_size = self.settings.batch_size as usize;
        let window =
            Duration::from_secs(u64::from(self.settings.maximum_batching_window_in_seconds));
        let mut iterator = Some(self.iterator_after(&shard, checkpoint.as_deref()).await?);
        // Position of the last record read (for a fresh iterator after expiry).
        let mut last_read = checkpoint.clone();
        let mut buffer: VecDeque<PipeRecord> = VecDeque::new();
        let mut first_buffered: Option<Instant> = None;
        loop {
            if *stop.borrow() {
                return Ok(());
            }
            let mut fetched = 0;
            if buffer.len() < batch_size {
                if let Some(it) = iterator.clone() {
                    let limit = (batch_size - buffer.len()).min(10_000) as i32;
                    match self
                        .kinesis
                        .get_records()
                        .shard_iterator(it)
                        .limit(limit)
                        .send()
                        .await
                    {
                        Ok(out) => {
                            for r in out.records() {
                                buffer.push_back(kinesis::to_pipe_record(
                                    r,
                                    &shard,
                                    &arn,
                                    LOCAL_REGION,
                                ));
                            }
                            fetched = out.records().len();
                            if let Some(last) = buffer.back() {
                                last_read = Some(last.sequence_number.clone());
                            }
                            // None once a closed shard is read to its end.
                            iterator = out.next_shard_iterator().map(str::to_owned);
                        }
                        Err(e) => {
                            let expired = e
                                .as_service_error()
                                .is_some_and(|s| s.is_expired_iterator_exception());
                            if expired {
                                let fresh = self
                                    .persist("GetShardIterator", &stop, || {
                                        self.iterator_after(&shard, last_read.as_deref())
                                    })
                                    .await;
                                match fresh {
                                    Some(it) => iterator = Some(it),
                                    None => return Ok(()), // stopping
                                }
                            } else {
                                tracing::warn!(shard = %shard, error = %KinesisError::call("GetRecords", e), "GetRecords failed; retrying");
                                tokio::time::sleep(IDLE_POLL * 5).await;
                            }
                            continue;
                        }
                    }
                }
            }
            if !buffer.is_empty() && first_buffered.is_none() {
                first_buffered = Some(Instant::now());
            }
            let window_over = first_buffered.is_some_and(|t| t.elapsed() >= window);
            let ready = buffer.len() >= batch_size
                || (!buffer.is_empty() && (window_over || iterator.is_none()));
            if !ready {
                if buffer.is_empty() && iterator.is_none() {
                    return Ok(()); // closed shard, fully processed
                }
                if fetched == 0 {
                    let wait = first_buffered.map_or(IDLE_POLL, |t| {
                        window.saturating_sub(t.elapsed()).min(IDLE_POLL)
                    });
                    tokio::time::sleep(wait.max(Duration::from_millis(5))).await;
                }
                continue;
            }
            let batch = take_batch(&mut buffer, batch_size);
            first_buffered = (!buffer.is_empty()).then(Instant::now);
            let done = self.deliver(&shard, &arn, batch).await;
            if let Some(seq) = done {
                // Stopped before it was saved: the batch is redelivered after a restart,
                // which the processor absorbs (at-least-once, like Pipes).
                self.persist("checkpoint PutItem", &stop, || {
                    self.save_checkpoint(&shard, &identity, &seq)
                })
                .await;
            }
        }
    }

    /// Retries one of the runner's own calls with backoff until it succeeds (`Some`) or the
    /// pipe is asked to stop (`None`). Pipes never abandons a shard over a transient error;
    /// neither does this runner, so each failure is only a warning.
    async fn persist<T, F, Fut>(
        &self,
        what: &'static str,
        stop: &watch::Receiver<bool>,
        call: F,
    ) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, PipeError>>,
    {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.min_backoff)
            .with_max_delay(self.max_backoff)
            .with_jitter()
            .without_max_times();
        call.retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|_| !*stop.borrow())
            .notify(|e, wait| tracing::warn!(call = what, error = %e, ?wait, "retrying"))
            .await
            .ok()
    }

    /// Delivers one batch until every record succeeded or was dead-lettered; returns the
    /// sequence number to checkpoint.
    async fn deliver(&self, shard: &str, arn: &str, batch: Vec<PipeRecord>) -> Option<String> {
        let last = batch.last().map(|r| r.sequence_number.clone());
        // (records, retries so far, whether this delivery follows a failure)
        let mut work: VecDeque<(Vec<PipeRecord>, i32, bool)> = VecDeque::from([(batch, 0, false)]);
        while let Some((records, attempts, after_failure)) = work.pop_front() {
            if self.too_old(&records) {
                self.dead_letter(
                    shard,
                    arn,
                    &records,
                    attempts,
                    "MaximumRecordAgeInSeconds exceeded",
                )
                .await;
                continue;
            }
            if after_failure {
                tokio::time::sleep(self.backoff(attempts)).await;
            }
            self.stats.invocations.fetch_add(1, Ordering::Relaxed);
            let outcome = self.invoke(&records).await;
            let failed_from = match outcome {
                Ok(None) => {
                    self.stats
                        .records_delivered
                        .fetch_add(records.len() as u64, Ordering::Relaxed);
                    continue;
                }
                Ok(Some(pos)) => {
                    self.stats.partial_failures.fetch_add(1, Ordering::Relaxed);
                    self.stats
                        .records_delivered
                        .fetch_add(pos as u64, Ordering::Relaxed);
                    pos
                }
                Err(reason) => {
                    self.stats
                        .failed_invocations
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(shard, records = records.len(), %reason, "invocation failed");
                    0
                }
            };
            let failing = records[failed_from..].to_vec();
            let exhausted = self.settings.maximum_retry_attempts >= 0
                && attempts >= self.settings.maximum_retry_attempts;
            if failed_from == 0 && failing.len() > 1 {
                // Whole batch failed: halve it to isolate the bad record (not a retry).
                self.stats.bisections.fetch_add(1, Ordering::Relaxed);
                let (a, b) = failing.split_at(failing.len() / 2);
                work.push_front((b.to_vec(), attempts, true));
                work.push_front((a.to_vec(), attempts, true));
            } else if exhausted {
                self.dead_letter(
                    shard,
                    arn,
                    &failing,
                    attempts + 1,
                    "MaximumRetryAttempts exhausted",
                )
                .await;
            } else {
                work.push_front((failing, attempts + 1, true));
            }
        }
        last
    }

    /// Invokes the target; `Ok(None)` on success, `Ok(Some(i))` when records from `i` on
    /// must be retried, `Err` for a function error or an unusable response.
    async fn invoke(&self, records: &[PipeRecord]) -> Result<Option<usize>, String> {
        let payload = serde_json::to_vec(records).map_err(|e| e.to_string())?;
        let response = tokio::time::timeout(INVOKE_TIMEOUT, self.target.invoke(payload))
            .await
            .map_err(|_| "the target timed out".to_owned())??;
        if response.is_empty() || response == b"null" {
            return Ok(None);
        }
        let parsed: BatchResponse = serde_json::from_slice(&response)
            .map_err(|e| format!("the response is not a batch response: {e}"))?;
        if parsed.batch_item_failures.is_empty() {
            return Ok(None);
        }
        // Pipes retries from the lowest failed record; an unknown id fails the whole batch.
        let mut first = usize::MAX;
        for f in &parsed.batch_item_failures {
            match records.iter().position(|r| r.event_id == f.item_identifier) {
                Some(p) => first = first.min(p),
                None => {
                    return Err(format!(
                        "batchItemFailures names `{}`, which is not in the batch",
                        f.item_identifier
                    ))
                }
            }
        }
        Ok(Some(first))
    }

    fn too_old(&self, records: &[PipeRecord]) -> bool {
        let max_age = self.settings.maximum_record_age_in_seconds;
        if max_age < 0 {
            return false;
        }
        let now = Utc::now().timestamp_millis();
        records
            .first()
            .is_some_and(|r| now - r.arrival_millis() > i64::from(max_age) * 1000)
    }

    fn backoff(&self, attempts: i32) -> Duration {
        let factor = 1u32 << attempts.clamp(0, 16) as u32;
        (self.min_backoff * factor).min(self.max_backoff)
    }

    async fn dead_letter(
        &self,
        shard: &str,
        arn: &str,
        records: &[PipeRecord],
        attempts: i32,
        reason: &str,
    ) {
        let (Some(first), Some(last)) = (records.first(), records.last()) else {
            return;
        };
        self.stats
            .dead_lettered
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        tracing::error!(shard, records = records.len(), first = %first.sequence_number, reason, "batch sent to the dead-letter queue");
        // The batch description Pipes puts in a dead-letter message, plus the records
        // themselves (bounded) so a user can replay them.
        let info = serde_json::json!({
            "KinesisBatchInfo": {
                "shardId": shard,
                "startSequenceNumber": first.sequence_number,
                "endSequenceNumber": last.sequence_number,
                "approximateArrivalOfFirstRecord": first.approximate_arrival_timestamp,
                "approximateArrivalOfLastRecord": last.approximate_arrival_timestamp,
                "batchSize": records.len(),
                "streamArn": arn,
            },
            "reason": reason,
            "attempts": attempts,
        });
        let mut records_json = serde_json::to_string(records).unwrap_or_default();
        if records_json.len() > 300_000 {
            records_json = String::from(
                "(too large to keep; read them from the stream by the sequence numbers above)",
            );
        }
        let now = Utc::now();
        let item: std::collections::HashMap<String, AttributeValue> = [
            ("pk", AttributeValue::S(format!("DLQ#{}", self.name))),
            (
                "sk",
                AttributeValue::S(format!(
                    "{:013}#{shard}#{}",
                    now.timestamp_millis(),
                    first.sequence_number
                )),
            ),
            ("batch_info", AttributeValue::S(info.to_string())),
            ("records", AttributeValue::S(records_json)),
            ("reason", AttributeValue::S(reason.to_owned())),
            ("record_count", AttributeValue::N(records.len().to_string())),
            (
                "created_at",
                AttributeValue::S(now.to_rfc3339_opts(SecondsFormat::Millis, true)),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        // Keep trying: a dead letter that is not written would be a silent drop.
        let mut attempt = 0;
        while let Err(e) = self
            .db
            .put_item()
            .table_name(&self.tables.events)
            .set_item(Some(item.clone()))
            .send()
            .await
        {
            attempt += 1;
            tracing::error!(error = %dynamo_err("PutItem", e), "could not write the dead letter; retrying");
            tokio::time::sleep(self.backoff(attempt)).await;
        }
    }
}

/// Takes up to `batch_size` records that fit Lambda's payload limit.
fn take_batch(buffer: &mut VecDeque<PipeRecord>, batch_size: usize) -> Vec<PipeRecord> {
    let mut out = Vec::new();
    let mut bytes = 2;
    while let Some(r) = buffer.front() {
        // The record's JSON: its data plus ~600 bytes of envelope.
        let size = r.data.len() + r.event_source_arn.len() + r.partition_key.len() + 600;
        if out.len() == batch_size || (!out.is_empty() && bytes + size > MAX_PAYLOAD_BYTES) {
            break;
        }
        bytes += size;
        out.extend(buffer.pop_front());
    }
    out
}

/// Reads the dead letters of a pipe.
pub async fn dead_letters(
    db: &aws_sdk_dynamodb::Client,
    tables: &Tables,
    pipe: &str,
) -> Result<Vec<serde_json::Value>, PipeError> {
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let resp = db
            .query()
            .table_name(&tables.events)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(format!("DLQ#{pipe}")))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| dynamo_err("Query", e))?;
        for item in resp.items() {
            if let Some(info) = item.get("batch_info").and_then(|v| v.as_s().ok()) {
                out.extend(serde_json::from_str(info).ok());
            }
        }
        start = resp.last_evaluated_key().cloned();
        if start.is_none() {
            return Ok(out);
        }
    }
}
