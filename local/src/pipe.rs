//! A local EventBridge Pipe: Kinesis source → Lambda target, with the semantics the
//! processor relies on in AWS:
//!
//! - every shard read with GetRecords from TRIM_HORIZON or the saved checkpoint, one batch
//!   per shard at a time (per-shard order), shards concurrently;
//! - shard lineage followed as Pipes and Lambda follow it when Kinesis reshards: the
//!   shards are listed again every [`PipeRunner::shard_listing_interval`], and a child shard
//!   is read only once each parent has been read to its end with all of its records
//!   delivered (or dead-lettered) and checkpointed, so a partition key's records reach the
//!   target in the order they were put across a split or a merge. A finished shard's
//!   checkpoint says `SHARD_END`, so a restarted pipe neither reads it again nor holds its
//!   children back, and children start from their first record. The pipe runs until it is
//!   stopped, whatever its shards do;
//! - batches of up to `BatchSize` records, or fewer once `MaximumBatchingWindowInSeconds`
//!   has passed since the first buffered record, and never over Lambda's 6 MB payload;
//!   with a window of 0, a batch is invoked as soon as a GetRecords returns records;
//! - each shard polled as Lambda's Kinesis event source mapping documents it (Pipes'
//!   Kinesis source is the same poller): once a second while the shard is caught up
//!   ([`PipeRunner::idle_poll`]), and back to back while records keep coming, but never
//!   more than Kinesis' 5 GetRecords per second per shard ([`PipeRunner::min_poll_interval`]);
//!   a GetRecords asks for up to Kinesis' 10,000 records, and what it returns beyond one
//!   batch is invoked as the next batches before the shard is polled again;
//! - the target gets the exact Pipes payload as serialised JSON (a top-level array of flat
//!   records) and answers with `{"batchItemFailures":[{"itemIdentifier": eventID}]}`;
//! - the checkpoint moves only past records that succeeded (all of a batch, or those
//!   before the first reported failure);
//! - a failing batch is halved (AUTOMATIC_BISECT) and retried with backoff up to
//!   `MaximumRetryAttempts`; records older than `MaximumRecordAgeInSeconds` or out of
//!   retries go to a dead-letter record a user can read (`DLQ#<pipe>` items);
//! - the runner's own calls (GetRecords, a fresh shard iterator, the checkpoint and
//!   dead-letter writes) are retried with backoff for as long as the pipe runs: a
//!   transient error never ends a shard.
//!
//! Checkpoints and dead letters are the pipe's own state, as they are Pipes' in AWS: they
//! live in the local stack's pipe table ([`ensure_pipe_table`]), not in the application's
//! tables. Every delay between retries comes from backon's exponential backoff with jitter.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::query::QueryError;
use aws_sdk_dynamodb::operation::scan::builders::ScanFluentBuilder;
use aws_sdk_dynamodb::operation::scan::ScanError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use aws_sdk_kinesis::operation::get_records::GetRecordsOutput;
use aws_sdk_kinesis::types::ShardIteratorType;
use backon::{BackoffBuilder as _, ExponentialBackoff, ExponentialBuilder, Retryable};
use chrono::{SecondsFormat, Utc};
use inventory_domain::arn::StreamArn;
use inventory_domain::{BatchResponse, PipeRecord};
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::task::{AbortHandle, JoinSet};

use crate::kinesis::{self, KinesisError, ShardInfo};
use crate::pipe_settings::PipeSettings;
use crate::poll_cadence::{Cadence, Reading, Step};

/// Lambda's synchronous invocation payload limit.
pub const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;
/// The local stack's pipe table when its tables have no prefix; see [`pipe_table_name`].
pub const PIPE_TABLE: &str = "local-pipe";
/// How long a caught-up shard waits before polling again: Lambda's documented base rate
/// for Kinesis standard iterators, once per second per shard.
pub const IDLE_POLL: Duration = Duration::from_secs(1);
/// The shortest time between two GetRecords of one shard: Kinesis allows 5 per second per
/// shard, shared by every consumer of it.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_millis(200);
/// The most records one GetRecords returns.
const MAX_GET_RECORDS: i32 = 10_000;
/// Pipes bills a request per 64 KB chunk of the payload it invokes the target with.
pub const PIPES_BILLING_CHUNK: usize = 64 * 1024;
/// Invocations that take longer count as failed, like a Lambda timeout.
const INVOKE_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a running pipe lists the stream's shards by default, to pick up the shards a
/// reshard creates.
pub const SHARD_LISTING_INTERVAL: Duration = Duration::from_secs(1);
/// The longest [`PipeHandle::kill`] waits for the pipe's tasks to be gone.
pub const KILL_WAIT: Duration = Duration::from_secs(10);

/// The future a [`Target`] returns (re-exported so implementations need not name futures).
pub use futures::future::BoxFuture;

/// What the Pipe invokes: JSON bytes in, JSON bytes out, or why the invocation failed.
pub trait Target: Send + Sync + 'static {
    fn invoke(&self, payload: Vec<u8>) -> BoxFuture<'static, Result<Vec<u8>, TargetError>>;

    /// [`invoke`](Self::invoke), told when the Pipe fetched each record and began this
    /// invocation, for a target that measures where the lag goes. The Pipe always calls
    /// this one; the default forgets the timing.
    fn invoke_timed(
        &self,
        payload: Vec<u8>,
        timing: InvokeTiming,
    ) -> BoxFuture<'static, Result<Vec<u8>, TargetError>> {
        drop(timing);
        self.invoke(payload)
    }
}

/// Why an invocation of a Pipe's target failed. Whatever the reason, the Pipe retries the
/// batch, bisects it, and finally dead-letters it; the reason is for the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The function ran and reported an error (a Lambda function error).
    #[error("the function failed: {0}. Its log says why")]
    Function(String),
    /// The function's process could not initialise (Lambda's `Runtime.InitError`).
    #[error(
        "Runtime.InitError: {0}. Run the function's binary by hand to see why it cannot start"
    )]
    Init(String),
    /// The function's process exited while it held the invocation (`Runtime.ExitError`).
    #[error("Runtime.ExitError: the function's process exited during the invocation ({0}); its last log lines say why")]
    Exited(String),
    /// No process could be started to run the invocation.
    #[error("the function could not be started: {0}")]
    NotStarted(String),
    /// The invocation outlived the function's timeout (its instance is stopped).
    #[error("Task timed out after {:.2} seconds: look in the function's log for the call it was waiting on", .0.as_secs_f64())]
    TimedOut(Duration),
    /// The function's instance ended without answering or reporting why.
    #[error("the function's instance went away without answering; its log says why")]
    Vanished,
    /// The function answered with something that is not a batch response for the batch.
    #[error("the function's response is unusable: {0}. It must be empty, null, or {{\"batchItemFailures\":[{{\"itemIdentifier\":<an eventID of the batch>}}]}}")]
    Response(String),
    /// The batch could not be written as JSON (a bug in whoever built the payload).
    #[error("the batch could not be serialised to JSON: {0}; report this as a bug")]
    Payload(String),
}

impl TargetError {
    /// A function error with `error`'s message (what a target's own failure is).
    pub fn function(error: impl std::fmt::Display) -> Self {
        Self::Function(error.to_string())
    }
}

/// When the Pipe handled the records of one invocation, in microseconds since the Unix
/// epoch (the clock Kinesis' `approximateArrivalTimestamp` uses, on one machine).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvokeTiming {
    /// Per record of the payload, in its order: when the GetRecords that returned it did.
    pub fetched_us: Vec<i64>,
    /// When the Pipe began the invocation (before serialising the payload).
    pub invoke_start_us: i64,
}

/// Now, in microseconds since the Unix epoch.
pub fn wall_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// The pipe table's name for tables named with `prefix` (`<prefix>local-pipe`).
pub fn pipe_table_name(prefix: &str) -> String {
    format!("{prefix}{PIPE_TABLE}")
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
    #[error("the killed pipe's tasks were still running after {0:?}: a target invocation or an SDK call is not giving up; check the logs for the call it is stuck in")]
    StillRunning(Duration),
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
    /// Shards whose reader has its first iterator and is reading.
    pub shards_started: AtomicU64,
    /// Closed shards read to their end, fully delivered and checkpointed `SHARD_END`.
    pub shards_finished: AtomicU64,
    /// Completed listings of the stream's shards (the first one included).
    pub shard_listings: AtomicU64,
    /// GetRecords calls that returned (with records or not).
    pub get_records_calls: AtomicU64,
    /// GetRecords calls that returned no record.
    pub empty_polls: AtomicU64,
    /// Time spent in GetRecords calls, µs (retries included).
    pub get_records_micros: AtomicU64,
    /// Bytes of the payloads the target was invoked with.
    pub payload_bytes: AtomicU64,
    /// What Pipes would bill for those invocations: one request per 64 KB chunk of each.
    pub billed_requests: AtomicU64,
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
    pub shards_started: u64,
    pub shards_finished: u64,
    pub shard_listings: u64,
    pub get_records_calls: u64,
    pub empty_polls: u64,
    pub get_records_micros: u64,
    pub payload_bytes: u64,
    pub billed_requests: u64,
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
            shards_started: g(&self.shards_started),
            shards_finished: g(&self.shards_finished),
            shard_listings: g(&self.shard_listings),
            get_records_calls: g(&self.get_records_calls),
            empty_polls: g(&self.empty_polls),
            get_records_micros: g(&self.get_records_micros),
            payload_bytes: g(&self.payload_bytes),
            billed_requests: g(&self.billed_requests),
        }
    }
}

/// A pipe from a stream to a target, keeping its checkpoints and dead letters in `table`
/// (the pipe table, see [`ensure_pipe_table`]).
#[derive(Clone)]
pub struct PipeRunner {
    pub name: String,
    pub stream: String,
    pub settings: PipeSettings,
    kinesis: aws_sdk_kinesis::Client,
    db: aws_sdk_dynamodb::Client,
    table: String,
    target: Arc<dyn Target>,
    stats: Arc<PipeStats>,
    /// First retry delay; about doubles (with jitter) per attempt up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// How often the running pipe lists the stream's shards to pick up new ones (a
    /// reshard). A child is started at once when its last parent finishes; the listing
    /// only finds shards the pipe has not seen yet.
    pub shard_listing_interval: Duration,
    /// How long a caught-up shard (its last GetRecords returned nothing and it is not
    /// behind) waits before polling again; Lambda's base rate, [`IDLE_POLL`].
    pub idle_poll: Duration,
    /// The shortest time between two GetRecords of a shard; [`MIN_POLL_INTERVAL`].
    pub min_poll_interval: Duration,
    /// Added to every record's age before it is held against `MaximumRecordAgeInSeconds`
    /// (0 by default): a test runs a Pipe created "days later" without waiting days.
    pub record_age_offset: Duration,
    /// Set by [`PipeRunner::spawn`]: ties every task of the pipe to its handle.
    tasks: Option<Tasks>,
}

/// Held by every task of a spawned pipe (each clone of the runner carries one).
#[derive(Clone)]
struct Tasks {
    /// Never sent on: the handle's receiver closes once every task holding a clone has
    /// ended (finished, or aborted and dropped), which is what `kill` waits for.
    _alive: mpsc::Sender<()>,
    /// The shard readers, so `kill` can abort them directly rather than when the aborted
    /// coordinator's `JoinSet` happens to be dropped.
    readers: Arc<Mutex<Vec<AbortHandle>>>,
}

/// A running pipe.
pub struct PipeHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), PipeError>>,
    pub stats: Arc<PipeStats>,
    readers: Arc<Mutex<Vec<AbortHandle>>>,
    alive: mpsc::Receiver<()>,
}

impl PipeHandle {
    /// Lets every shard finish its current batch, then stops.
    pub async fn stop(self) -> Result<(), PipeError> {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or(Ok(()))
    }

    /// Stops at once, mid-batch, like a killed process, and returns once every task of
    /// the pipe has ended (waiting at most [`KILL_WAIT`]), so what the pipe did (its stats,
    /// its checkpoints) no longer changes and it holds its target no more.
    pub async fn kill(self) -> Result<(), PipeError> {
        let PipeHandle {
            task,
            readers,
            mut alive,
            ..
        } = self;
        task.abort();
        let readers = std::mem::take(&mut *readers.lock().unwrap_or_else(PoisonError::into_inner));
        for reader in readers {
            reader.abort();
        }
        // `recv` yields `None` once every task holding a sender has been dropped.
        tokio::time::timeout(KILL_WAIT, alive.recv())
            .await
            .map(|_| ())
            .map_err(|_| PipeError::StillRunning(KILL_WAIT))
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

/// The stream as the pipe identifies it.
#[derive(Clone)]
struct StreamId {
    arn: StreamArn,
    /// The ARN and creation time: what a checkpoint belongs to.
    identity: String,
}

/// A shard's saved position.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Checkpoint {
    Missing,
    After(String),
    /// Read to its end and fully delivered.
    ShardEnd,
}

/// Where a shard reader starts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Start {
    TrimHorizon,
    Latest,
    After(String),
}

/// How a shard reader ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ShardEnd {
    /// Read to its end, every record delivered or dead-lettered, checkpointed `SHARD_END`.
    Finished,
    /// The shard is no longer in the stream (its records expired).
    Gone,
    /// The pipe is stopping.
    Stopped,
}

/// What the pipe has done with a shard it has listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    Reading,
    Finished,
    /// Nothing of it is to be delivered: gone from the stream, or already closed when a
    /// pipe starting at LATEST first listed it (all its records predate the pipe).
    Skipped,
}

/// The shards the pipe knows and how far it is with each.
struct Lineage {
    listed: Vec<ShardInfo>,
    /// The shards of the pipe's first listing: only these may start at LATEST.
    initial: HashSet<String>,
    progress: HashMap<String, Progress>,
}

impl Lineage {
    fn new(listed: Vec<ShardInfo>) -> Self {
        Self {
            initial: listed.iter().map(|s| s.id.clone()).collect(),
            listed,
            progress: HashMap::new(),
        }
    }

    /// A parent is done once finished or skipped; one that has expired out of the stream
    /// (no longer listed) is done too, unless a reader still has it.
    fn is_done(&self, shard: &str) -> bool {
        match self.progress.get(shard) {
            Some(Progress::Finished | Progress::Skipped) => true,
            Some(Progress::Reading) => false,
            None => !self.listed.iter().any(|s| s.id == shard),
        }
    }

    /// Listed shards not started yet whose parents are all done.
    fn ready(&self) -> Vec<ShardInfo> {
        self.listed
            .iter()
            .filter(|s| !self.progress.contains_key(&s.id))
            .filter(|s| s.parents.iter().all(|p| self.is_done(p)))
            .cloned()
            .collect()
    }
}

type ReaderResult = (String, Result<ShardEnd, PipeError>);

impl PipeRunner {
    pub fn new(
        name: impl Into<String>,
        stream: impl Into<String>,
        settings: PipeSettings,
        kinesis: aws_sdk_kinesis::Client,
        db: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        target: Arc<dyn Target>,
    ) -> Self {
        Self {
            name: name.into(),
            stream: stream.into(),
            settings,
            kinesis,
            db,
            table: table.into(),
            target,
            stats: Arc::new(PipeStats::default()),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            shard_listing_interval: SHARD_LISTING_INTERVAL,
            idle_poll: IDLE_POLL,
            min_poll_interval: MIN_POLL_INTERVAL,
            record_age_offset: Duration::ZERO,
            tasks: None,
        }
    }

    pub fn stats(&self) -> Arc<PipeStats> {
        self.stats.clone()
    }

    pub fn spawn(mut self) -> PipeHandle {
        let (stop, stopped) = watch::channel(false);
        let (alive_tx, alive) = mpsc::channel(1);
        let readers = Arc::new(Mutex::new(Vec::new()));
        self.tasks = Some(Tasks {
            _alive: alive_tx,
            readers: readers.clone(),
        });
        let stats = self.stats.clone();
        let task = tokio::spawn(self.run(stopped));
        PipeHandle {
            stop,
            task,
            stats,
            readers,
            alive,
        }
    }

    /// Reads the stream until `stop` turns true, following its shards as they are resharded.
    /// It returns early only on an error a retry cannot mend (the settings, the stream or
    /// the checkpoints' table are wrong at start, or a checkpoint belongs to another stream).
    pub async fn run(self, mut stop: watch::Receiver<bool>) -> Result<(), PipeError> {
        self.settings.validate()?;
        let stream = self.describe_stream().await?;
        // At start every failure is a configuration to fix, so it ends the pipe; later
        // ones are retried at the next listing.
        let mut lineage = Lineage::new(kinesis::list_shards(&self.kinesis, &self.stream).await?);
        let mut readers: JoinSet<ReaderResult> = JoinSet::new();
        self.start_ready(&mut lineage, &mut readers, &stream, &stop, true)
            .await?;
        self.stats.shard_listings.fetch_add(1, Ordering::Relaxed);
        let mut next_listing = tokio::time::Instant::now() + self.shard_listing_interval;
        // A dropped handle cannot stop the pipe any more; it then runs on, as a detached task.
        let mut stop_open = true;
        while !*stop.borrow() {
            tokio::select! {
                changed = stop.changed(), if stop_open => stop_open = changed.is_ok(),
                Some(joined) = readers.join_next() => {
                    let (shard, end) = match joined {
                        Ok(result) => result,
                        Err(e) if e.is_cancelled() => continue,
                        Err(e) => std::panic::resume_unwind(e.into_panic()),
                    };
                    match end? {
                        ShardEnd::Finished => {
                            lineage.progress.insert(shard, Progress::Finished);
                        }
                        ShardEnd::Gone => {
                            lineage.progress.insert(shard, Progress::Skipped);
                        }
                        ShardEnd::Stopped => {
                            lineage.progress.remove(&shard);
                        }
                    }
                    // Its children may be ready: start them now, not at the next listing.
                    self.start_ready(&mut lineage, &mut readers, &stream, &stop, false)
                        .await?;
                }
                _ = tokio::time::sleep_until(next_listing) => {
                    match kinesis::list_shards(&self.kinesis, &self.stream).await {
                        Ok(listed) => {
                            lineage.listed = listed;
                            self.stats.shard_listings.fetch_add(1, Ordering::Relaxed);
                            self.start_ready(&mut lineage, &mut readers, &stream, &stop, false)
                                .await?;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "listing the shards failed; retrying at the next listing");
                        }
                    }
                    next_listing = tokio::time::Instant::now() + self.shard_listing_interval;
                }
            }
        }
        // Stopping: each reader ends after its current batch.
        while let Some(joined) = readers.join_next().await {
            match joined {
                Ok((_, Ok(_))) => {}
                Ok((_, Err(e))) => return Err(e),
                Err(e) if e.is_cancelled() => {}
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        }
        Ok(())
    }

    async fn describe_stream(&self) -> Result<StreamId, PipeError> {
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
        Ok(StreamId {
            arn: StreamArn::parse(d.stream_arn()).map_err(KinesisError::from)?,
            identity: format!(
                "{}@{}.{:09}",
                d.stream_arn(),
                created.secs(),
                created.subsec_nanos()
            ),
        })
    }

    /// Starts a reader for every listed shard whose parents are done, repeatedly, since a
    /// shard found finished by its checkpoint can make its children ready. With `strict`
    /// (at start) a failing checkpoint read ends the pipe; otherwise the shard waits for
    /// the next round.
    async fn start_ready(
        &self,
        lineage: &mut Lineage,
        readers: &mut JoinSet<ReaderResult>,
        stream: &StreamId,
        stop: &watch::Receiver<bool>,
        strict: bool,
    ) -> Result<(), PipeError> {
        loop {
            let mut settled = false;
            for shard in lineage.ready() {
                let checkpoint = match self.load_checkpoint(&shard.id, &stream.identity).await {
                    Ok(c) => c,
                    Err(e) if strict || matches!(e, PipeError::StreamMismatch { .. }) => {
                        return Err(e)
                    }
                    Err(e) => {
                        tracing::warn!(shard = %shard.id, error = %e, "reading the shard's checkpoint failed; retrying at the next listing");
                        continue;
                    }
                };
                let start = match checkpoint {
                    Checkpoint::ShardEnd => Err(Progress::Finished),
                    Checkpoint::After(seq) => Ok(Start::After(seq)),
                    Checkpoint::Missing => self
                        .first_position(&shard, lineage)
                        .ok_or(Progress::Skipped),
                };
                let start = match start {
                    Ok(start) => start,
                    Err(progress) => {
                        lineage.progress.insert(shard.id.clone(), progress);
                        settled = true;
                        continue;
                    }
                };
                lineage.progress.insert(shard.id.clone(), Progress::Reading);
                let runner = self.clone();
                let (stream, stop) = (stream.clone(), stop.clone());
                let reader = readers.spawn(async move {
                    let end = runner
                        .run_shard(shard.id.clone(), stream, start, stop)
                        .await;
                    (shard.id, end)
                });
                if let Some(tasks) = &self.tasks {
                    tasks
                        .readers
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(reader);
                }
            }
            if !settled {
                return Ok(());
            }
        }
    }

    /// Where a shard without a checkpoint starts, or `None` when it has nothing to deliver.
    /// Pipes starts at `StartingPosition` only on the shards open when it first reads the
    /// stream; the shards a reshard creates later hold only newer records, and the children
    /// of a shard it finished continue its records, so both start at their first record.
    fn first_position(&self, shard: &ShardInfo, lineage: &Lineage) -> Option<Start> {
        let follows_the_pipe = !lineage.initial.contains(&shard.id)
            || shard
                .parents
                .iter()
                .any(|p| lineage.progress.get(p) == Some(&Progress::Finished));
        if self.settings.starting_position != "LATEST" || follows_the_pipe {
            Some(Start::TrimHorizon)
        } else if shard.closed {
            // Closed before the pipe first listed it: all of its records are older.
            None
        } else {
            Some(Start::Latest)
        }
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

    async fn load_checkpoint(&self, shard: &str, identity: &str) -> Result<Checkpoint, PipeError> {
        let out = self
            .db
            .get_item()
            .table_name(&self.table)
            .set_key(Some(self.checkpoint_key(shard).into_iter().collect()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| dynamo_err("GetItem", e))?;
        let Some(item) = out.item() else {
            return Ok(Checkpoint::Missing);
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
        if item
            .get("shard_end")
            .and_then(|v| v.as_bool().ok())
            .is_some_and(|end| *end)
        {
            return Ok(Checkpoint::ShardEnd);
        }
        Ok(text("sequence_number").map_or(Checkpoint::Missing, Checkpoint::After))
    }

    /// Saves the position after `sequence_number`; with `shard_end`, also that the shard
    /// is read to its end and fully delivered.
    async fn save_checkpoint(
        &self,
        shard: &str,
        identity: &str,
        sequence_number: Option<&str>,
        shard_end: bool,
    ) -> Result<(), PipeError> {
        let mut item: HashMap<String, AttributeValue> =
            self.checkpoint_key(shard).into_iter().collect();
        item.insert("stream".into(), AttributeValue::S(identity.to_owned()));
        if let Some(seq) = sequence_number {
            item.insert("sequence_number".into(), AttributeValue::S(seq.to_owned()));
        }
        if shard_end {
            item.insert("shard_end".into(), AttributeValue::Bool(true));
        }
        item.insert(
            "updated_at".into(),
            AttributeValue::S(Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)),
        );
        self.db
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| dynamo_err("PutItem", e))?;
        self.stats.checkpoints.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// A shard iterator at `start`, or `None` when the shard is no longer in the stream.
    async fn iterator_at(&self, shard: &str, start: &Start) -> Result<Option<String>, PipeError> {
        let req = self
            .kinesis
            .get_shard_iterator()
            .stream_name(&self.stream)
            .shard_id(shard);
        let req = match start {
            Start::After(seq) => req
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(seq),
            Start::Latest => req.shard_iterator_type(ShardIteratorType::Latest),
            Start::TrimHorizon => req.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        match req.send().await {
            Ok(out) => match out.shard_iterator() {
                Some(it) => Ok(Some(it.to_owned())),
                None => Err(KinesisError::Call {
                    operation: "GetShardIterator",
                    message: format!("the response for shard {shard} has no ShardIterator"),
                }
                .into()),
            },
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(KinesisError::call("GetShardIterator", e).into()),
        }
    }

    /// The shard readers' pacing, from the settings.
    fn cadence(&self) -> Cadence {
        Cadence {
            batch_size: self.settings.batch_size as usize,
            window: Duration::from_secs(u64::from(
                self.settings.maximum_batching_window_in_seconds,
            )),
            idle_poll: self.idle_poll,
            min_poll_interval: self.min_poll_interval,
        }
    }

    /// Reads one shard from `start` until it is read to its end and fully delivered (a
    /// closed shard), it leaves the stream, or the pipe stops.
    async fn run_shard(
        self,
        shard: String,
        stream: StreamId,
        start: Start,
        stop: watch::Receiver<bool>,
    ) -> Result<ShardEnd, PipeError> {
        let first = self
            .persist("GetShardIterator", &stop, || {
                self.iterator_at(&shard, &start)
            })
            .await;
        let iterator = match first {
            None => return Ok(ShardEnd::Stopped),
            Some(None) => return Ok(ShardEnd::Gone),
            Some(Some(it)) => it,
        };
        self.stats.shards_started.fetch_add(1, Ordering::Relaxed);
        let mut reader = ShardReader::new(shard, stream, start, iterator);
        let cadence = self.cadence();
        loop {
            if *stop.borrow() {
                return Ok(ShardEnd::Stopped);
            }
            match cadence.step(Instant::now(), &reader.reading()) {
                Step::Deliver => {
                    self.deliver_next_batch(&mut reader, cadence.batch_size, &stop)
                        .await;
                }
                Step::Finish => return Ok(self.finish_shard(&reader, &stop).await),
                Step::WaitUntil(due) => pause_until(due, &stop).await,
                Step::Poll => {
                    if let Some(end) = self.poll_shard(&mut reader, &cadence, &stop).await {
                        return Ok(end);
                    }
                }
            }
        }
    }

    /// Invokes the target with the next batch of the reader's buffer, then checkpoints
    /// past it.
    async fn deliver_next_batch(
        &self,
        reader: &mut ShardReader,
        batch_size: usize,
        stop: &watch::Receiver<bool>,
    ) {
        let (batch, fetched_us) = take_batch(&mut reader.buffer, batch_size);
        reader.first_buffered = (!reader.buffer.is_empty()).then(Instant::now);
        let (shard, stream) = (&reader.shard, &reader.stream);
        let done = self
            .deliver(shard, stream.arn.as_str(), batch, fetched_us, stop)
            .await;
        if let Some(seq) = done {
            // Stopped before it was saved: the batch is redelivered after a restart,
            // which the processor absorbs (at-least-once, like Pipes).
            self.persist("checkpoint PutItem", stop, || {
                self.save_checkpoint(shard, &stream.identity, Some(&seq), false)
            })
            .await;
        }
    }

    /// The shard is closed, read to its end, and every batch delivered and checkpointed:
    /// records that, so its children may start, now and after a restart.
    async fn finish_shard(&self, reader: &ShardReader, stop: &watch::Receiver<bool>) -> ShardEnd {
        let saved = self
            .persist("checkpoint PutItem", stop, || {
                let last_read = reader.last_read.as_deref();
                self.save_checkpoint(&reader.shard, &reader.stream.identity, last_read, true)
            })
            .await;
        if saved.is_none() {
            return ShardEnd::Stopped;
        }
        self.stats.shards_finished.fetch_add(1, Ordering::Relaxed);
        tracing::info!(shard = %reader.shard, "shard read to its end and delivered");
        ShardEnd::Finished
    }

    /// One GetRecords of the shard: its records buffered and the next poll scheduled, or
    /// a fresh iterator when it expired; `Some` when the reading ends.
    async fn poll_shard(
        &self,
        reader: &mut ShardReader,
        cadence: &Cadence,
        stop: &watch::Receiver<bool>,
    ) -> Option<ShardEnd> {
        let it = reader.iterator.clone()?;
        let polled = Instant::now();
        let got = self
            .persist("GetRecords", stop, || {
                self.get_records(&it, MAX_GET_RECORDS)
            })
            .await;
        self.stats.get_records_micros.fetch_add(
            u64::try_from(polled.elapsed().as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        match got {
            None => Some(ShardEnd::Stopped),
            Some(Fetched::Records(out)) => {
                self.buffer_records(reader, cadence, polled, &out);
                None
            }
            Some(Fetched::Gone) => {
                tracing::warn!(shard = %reader.shard, "the shard is no longer in the stream (its records expired); moving on to its children");
                Some(ShardEnd::Gone)
            }
            Some(Fetched::Expired) => self.renew_iterator(reader, stop).await,
        }
    }

    /// Buffers what a GetRecords returned and schedules the shard's next poll.
    fn buffer_records(
        &self,
        reader: &mut ShardReader,
        cadence: &Cadence,
        polled: Instant,
        out: &GetRecordsOutput,
    ) {
        let fetched_us = wall_us();
        for r in out.records() {
            reader.buffer.push_back(Buffered {
                record: inventory_stream::pipe_record(r, &reader.shard, &reader.stream.arn),
                fetched_us,
            });
        }
        let fetched = out.records().len();
        self.stats.get_records_calls.fetch_add(1, Ordering::Relaxed);
        if fetched == 0 {
            self.stats.empty_polls.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(last) = reader.buffer.back() {
            reader.last_read = Some(last.record.sequence_number.clone());
        }
        let behind = out.millis_behind_latest().is_some_and(|ms| ms > 0);
        reader.next_poll = cadence.next_poll(polled, fetched, behind, reader.buffer.len());
        if !reader.buffer.is_empty() && reader.first_buffered.is_none() {
            reader.first_buffered = Some(Instant::now());
        }
        // None once a closed shard is read to its end.
        reader.iterator = out.next_shard_iterator().map(str::to_owned);
    }

    /// A fresh iterator after the last record read (the old one expired); `Some` when the
    /// reading ends instead.
    async fn renew_iterator(
        &self,
        reader: &mut ShardReader,
        stop: &watch::Receiver<bool>,
    ) -> Option<ShardEnd> {
        let from = reader
            .last_read
            .clone()
            .map_or(reader.start.clone(), Start::After);
        let fresh = self
            .persist("GetShardIterator", stop, || {
                self.iterator_at(&reader.shard, &from)
            })
            .await;
        match fresh {
            Some(Some(it)) => {
                reader.iterator = Some(it);
                None
            }
            Some(None) => Some(ShardEnd::Gone),
            None => Some(ShardEnd::Stopped),
        }
    }

    /// One GetRecords call; the errors that end or restart a shard's reading are answers,
    /// the rest (throttling, 5xx, the network) errors to retry.
    async fn get_records(&self, iterator: &str, limit: i32) -> Result<Fetched, PipeError> {
        match self
            .kinesis
            .get_records()
            .shard_iterator(iterator)
            .limit(limit)
            .send()
            .await
        {
            Ok(out) => Ok(Fetched::Records(out)),
            Err(e) => {
                let service = e.as_service_error();
                if service.is_some_and(|s| s.is_resource_not_found_exception()) {
                    Ok(Fetched::Gone)
                } else if service.is_some_and(|s| s.is_expired_iterator_exception()) {
                    Ok(Fetched::Expired)
                } else {
                    Err(KinesisError::call("GetRecords", e).into())
                }
            }
        }
    }

    /// The runner's retry delays: exponential from `min_backoff` to `max_backoff`, with
    /// jitter so shards that failed together do not retry together.
    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.min_backoff)
            .with_max_delay(self.max_backoff)
            .with_jitter()
            .without_max_times()
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
        call.retry(self.backoff())
            .sleep(tokio::time::sleep)
            .when(|_| !*stop.borrow())
            .notify(|e, wait| tracing::warn!(call = what, error = %e, ?wait, "retrying"))
            .await
            .ok()
    }

    /// Delivers one batch until every record succeeded or was dead-lettered; returns the
    /// sequence number to checkpoint, or `None` when the pipe stopped before a dead letter
    /// could be written (the batch is then delivered again after a restart).
    async fn deliver(
        &self,
        shard: &str,
        arn: &str,
        batch: Vec<PipeRecord>,
        fetched_us: Vec<i64>,
        stop: &watch::Receiver<bool>,
    ) -> Option<String> {
        let last = batch.last().map(|r| r.sequence_number.clone());
        // Parts of the batch still to deliver, first in stream order. A bisection is not a
        // retry: its halves keep their part's retry count, and start their own backoff.
        let mut work = VecDeque::from([self.part(batch, fetched_us, 0, None)]);
        while let Some(part) = work.pop_front() {
            if self.too_old(&part.records) {
                let reason = "MaximumRecordAgeInSeconds exceeded";
                if !self
                    .dead_letter(shard, arn, &part.records, part.attempts, reason, stop)
                    .await
                {
                    return None;
                }
                continue;
            }
            if let Some(wait) = part.wait {
                tokio::time::sleep(wait).await;
            }
            self.stats.invocations.fetch_add(1, Ordering::Relaxed);
            let outcome = self.invoke(&part.records, &part.fetched_us).await;
            let Some(failed_from) = self.count_outcome(shard, part.records.len(), outcome) else {
                continue;
            };
            match self.after_failure(part, failed_from) {
                AfterFailure::Retry(parts) => {
                    for part in parts.into_iter().rev() {
                        work.push_front(part);
                    }
                }
                AfterFailure::DeadLetter { records, attempts } => {
                    let reason = "MaximumRetryAttempts exhausted";
                    if !self
                        .dead_letter(shard, arn, &records, attempts, reason, stop)
                        .await
                    {
                        return None;
                    }
                }
            }
        }
        last
    }

    /// A part of a batch to deliver, with its own backoff.
    fn part(
        &self,
        records: Vec<PipeRecord>,
        fetched_us: Vec<i64>,
        attempts: i32,
        wait: Option<Duration>,
    ) -> Part {
        Part {
            records,
            fetched_us,
            attempts,
            wait,
            backoff: self.backoff().build(),
        }
    }

    /// Counts an invocation's outcome; `None` when every record succeeded, else the
    /// position of the first record to retry (0 when the whole invocation failed).
    fn count_outcome(
        &self,
        shard: &str,
        records: usize,
        outcome: Result<Option<usize>, TargetError>,
    ) -> Option<usize> {
        match outcome {
            Ok(None) => {
                self.stats
                    .records_delivered
                    .fetch_add(records as u64, Ordering::Relaxed);
                None
            }
            Ok(Some(pos)) => {
                self.stats.partial_failures.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .records_delivered
                    .fetch_add(pos as u64, Ordering::Relaxed);
                Some(pos)
            }
            Err(reason) => {
                self.stats
                    .failed_invocations
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(shard, records, %reason, "invocation failed");
                Some(0)
            }
        }
    }

    /// What becomes of `part`'s records from `failed_from` on: a whole failed batch is
    /// halved to isolate the bad record (not a retry), the rest retried after a backoff
    /// until `MaximumRetryAttempts`, then dead-lettered.
    fn after_failure(&self, mut part: Part, failed_from: usize) -> AfterFailure {
        let failing = part.records.split_off(failed_from);
        let failing_fetched = part.fetched_us.split_off(failed_from);
        let attempts = part.attempts;
        let exhausted = self.settings.maximum_retry_attempts >= 0
            && attempts >= self.settings.maximum_retry_attempts;
        let wait = Some(part.backoff.next().unwrap_or(self.max_backoff));
        if failed_from == 0 && failing.len() > 1 {
            self.stats.bisections.fetch_add(1, Ordering::Relaxed);
            let middle = failing.len() / 2;
            let (a, b) = failing.split_at(middle);
            let (fa, fb) = failing_fetched.split_at(middle);
            AfterFailure::Retry(vec![
                self.part(a.to_vec(), fa.to_vec(), attempts, wait),
                self.part(b.to_vec(), fb.to_vec(), attempts, wait),
            ])
        } else if exhausted {
            AfterFailure::DeadLetter {
                records: failing,
                attempts: attempts + 1,
            }
        } else {
            part.records = failing;
            part.fetched_us = failing_fetched;
            part.attempts += 1;
            part.wait = wait;
            AfterFailure::Retry(vec![part])
        }
    }

    /// Invokes the target; `Ok(None)` on success, `Ok(Some(i))` when records from `i` on
    /// must be retried, `Err` for a function error or an unusable response.
    async fn invoke(
        &self,
        records: &[PipeRecord],
        fetched_us: &[i64],
    ) -> Result<Option<usize>, TargetError> {
        let timing = InvokeTiming {
            fetched_us: fetched_us.to_vec(),
            invoke_start_us: wall_us(),
        };
        let payload =
            serde_json::to_vec(records).map_err(|e| TargetError::Payload(e.to_string()))?;
        self.stats
            .payload_bytes
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
        self.stats.billed_requests.fetch_add(
            payload.len().div_ceil(PIPES_BILLING_CHUNK).max(1) as u64,
            Ordering::Relaxed,
        );
        let response =
            tokio::time::timeout(INVOKE_TIMEOUT, self.target.invoke_timed(payload, timing))
                .await
                .map_err(|_| TargetError::TimedOut(INVOKE_TIMEOUT))??;
        failed_from(records, &response)
    }

    fn too_old(&self, records: &[PipeRecord]) -> bool {
        let max_age = self.settings.maximum_record_age_in_seconds;
        if max_age < 0 {
            return false;
        }
        let offset = i64::try_from(self.record_age_offset.as_millis()).unwrap_or(i64::MAX);
        let now = Utc::now().timestamp_millis().saturating_add(offset);
        records
            .first()
            .is_some_and(|r| now - r.arrival_millis() > i64::from(max_age) * 1000)
    }

    /// Writes a dead letter for `records`; `false` when the pipe stopped before it could.
    async fn dead_letter(
        &self,
        shard: &str,
        arn: &str,
        records: &[PipeRecord],
        attempts: i32,
        reason: &str,
        stop: &watch::Receiver<bool>,
    ) -> bool {
        let (Some(first), Some(last)) = (records.first(), records.last()) else {
            return true;
        };
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
            ("pk", AttributeValue::S(dead_letter_pk(&self.name))),
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
        // Kept trying while the pipe runs: a dead letter not written would be a silent drop.
        let written = self
            .persist("dead letter PutItem", stop, || async {
                self.db
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(item.clone()))
                    .send()
                    .await
                    .map_err(|e| dynamo_err("PutItem", e))
            })
            .await
            .is_some();
        if written {
            self.stats
                .dead_lettered
                .fetch_add(records.len() as u64, Ordering::Relaxed);
        }
        written
    }
}

/// A part of a batch still to deliver.
struct Part {
    records: Vec<PipeRecord>,
    /// When each record was fetched (see [`InvokeTiming::fetched_us`]).
    fetched_us: Vec<i64>,
    /// Retries so far (bisections do not count).
    attempts: i32,
    /// The delay before its next invocation (after a failure).
    wait: Option<Duration>,
    backoff: ExponentialBackoff,
}

/// What becomes of a part's failing records.
enum AfterFailure {
    /// Delivered again, as these parts, first in stream order, before any other part.
    Retry(Vec<Part>),
    /// Out of retries.
    DeadLetter {
        records: Vec<PipeRecord>,
        attempts: i32,
    },
}

/// What a GetRecords call found.
enum Fetched {
    Records(GetRecordsOutput),
    /// The iterator expired: get a fresh one from the last record read.
    Expired,
    /// The shard is no longer in the stream.
    Gone,
}

/// Reads a target's answer to `records` as Pipes does: `Ok(None)` when every record
/// succeeded, `Ok(Some(i))` when records from `i` on must be retried (the lowest record
/// `batchItemFailures` names), `Err` when the answer is unusable (which fails the batch).
pub fn failed_from(records: &[PipeRecord], response: &[u8]) -> Result<Option<usize>, TargetError> {
    if response.is_empty() || response == b"null" {
        return Ok(None);
    }
    let parsed: BatchResponse = serde_json::from_slice(response)
        .map_err(|e| TargetError::Response(format!("it is not a batch response: {e}")))?;
    let mut first: Option<usize> = None;
    for failure in &parsed.batch_item_failures {
        let position = records
            .iter()
            .position(|r| r.event_id == failure.item_identifier)
            .ok_or_else(|| {
                TargetError::Response(format!(
                    "batchItemFailures names `{}`, which is not in the batch",
                    failure.item_identifier
                ))
            })?;
        first = Some(first.map_or(position, |f| f.min(position)));
    }
    Ok(first)
}

/// A shard reader's state between its steps.
struct ShardReader {
    shard: String,
    stream: StreamId,
    /// Where the reading started (a fresh iterator starts there when nothing was read).
    start: Start,
    /// `None` once a closed shard is read to its end.
    iterator: Option<String>,
    /// Position of the last record read (for a fresh iterator after expiry).
    last_read: Option<String>,
    buffer: VecDeque<Buffered>,
    /// When the oldest buffered record was buffered (the batching window's start).
    first_buffered: Option<Instant>,
    /// The earliest moment the shard's next GetRecords may go out.
    next_poll: Instant,
}

impl ShardReader {
    fn new(shard: String, stream: StreamId, start: Start, iterator: String) -> Self {
        let last_read = match &start {
            Start::After(seq) => Some(seq.clone()),
            Start::TrimHorizon | Start::Latest => None,
        };
        Self {
            shard,
            stream,
            start,
            iterator: Some(iterator),
            last_read,
            buffer: VecDeque::new(),
            first_buffered: None,
            next_poll: Instant::now(),
        }
    }

    fn reading(&self) -> Reading {
        Reading {
            buffered: self.buffer.len(),
            first_buffered: self.first_buffered,
            open: self.iterator.is_some(),
            next_poll: self.next_poll,
        }
    }
}

/// A record read from the stream, waiting for its batch.
struct Buffered {
    record: PipeRecord,
    /// When the GetRecords that returned it did, in µs since the Unix epoch.
    fetched_us: i64,
}

/// Takes up to `batch_size` records that fit Lambda's payload limit, with when each was
/// fetched.
fn take_batch(buffer: &mut VecDeque<Buffered>, batch_size: usize) -> (Vec<PipeRecord>, Vec<i64>) {
    let mut out = Vec::new();
    let mut fetched = Vec::new();
    let mut bytes = 2;
    while let Some(b) = buffer.front() {
        let r = &b.record;
        // The record's JSON: its data plus ~600 bytes of envelope.
        let size = r.data.len() + r.event_source_arn.len() + r.partition_key.len() + 600;
        if out.len() == batch_size || (!out.is_empty() && bytes + size > MAX_PAYLOAD_BYTES) {
            break;
        }
        bytes += size;
        if let Some(b) = buffer.pop_front() {
            out.push(b.record);
            fetched.push(b.fetched_us);
        }
    }
    (out, fetched)
}

/// Sleeps until `until`, or until the pipe is asked to stop. A handle that was dropped
/// (no one can ask any more) leaves only the sleep.
async fn pause_until(until: Instant, stop: &watch::Receiver<bool>) {
    let mut stop = stop.clone();
    tokio::select! {
        _ = tokio::time::sleep_until(tokio::time::Instant::from_std(until)) => {}
        Ok(()) = stop.changed() => {}
    }
}

/// The partition of pipe `pipe`'s dead letters in the pipe table.
pub(crate) fn dead_letter_pk(pipe: &str) -> String {
    format!("DLQ#{pipe}")
}

/// Pipe `pipe`'s dead-letter items in the pipe table `table`, as stored: `sk`,
/// `batch_info` (the `KinesisBatchInfo` JSON), `reason`, and what readers add to them.
pub(crate) async fn dead_letter_items(
    db: &aws_sdk_dynamodb::Client,
    table: &str,
    pipe: &str,
) -> Result<Vec<HashMap<String, AttributeValue>>, PipeError> {
    db.query()
        .table_name(table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(dead_letter_pk(pipe)))
        .every_item()
        .await
        .map_err(|e| dynamo_err("Query", e))
}

/// A DynamoDB read (a Query or a Scan) taken whole: read consistently, page after page.
pub trait EveryItem {
    type Error;
    /// Every item the read returns, over all its pages.
    fn every_item(
        self,
    ) -> impl Future<Output = Result<Vec<HashMap<String, AttributeValue>>, Self::Error>> + Send;
}

/// The same for both reads: their builders share the methods but no trait.
macro_rules! every_item_of {
    ($builder:ty, $error:ty) => {
        impl EveryItem for $builder {
            type Error = SdkError<$error, HttpResponse>;
            fn every_item(
                self,
            ) -> impl Future<Output = Result<Vec<HashMap<String, AttributeValue>>, Self::Error>> + Send
            {
                let items = self.consistent_read(true).into_paginator().items();
                async move { items.send().collect().await }
            }
        }
    };
}
every_item_of!(QueryFluentBuilder, QueryError);
every_item_of!(ScanFluentBuilder, ScanError);

/// Reads the dead letters of pipe `pipe` from the pipe table `table`.
pub async fn dead_letters(
    db: &aws_sdk_dynamodb::Client,
    table: &str,
    pipe: &str,
) -> Result<Vec<serde_json::Value>, PipeError> {
    let items = dead_letter_items(db, table, pipe).await?;
    Ok(items
        .iter()
        .filter_map(|item| item.get("batch_info")?.as_s().ok())
        .filter_map(|info| serde_json::from_str(info).ok())
        .collect())
}

/// Creates the pipe table (checkpoints `PIPE#<pipe>`, dead letters `DLQ#<pipe>`) unless it
/// exists. Safe to call on every start.
pub async fn ensure_pipe_table(
    db: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<(), PipeError> {
    match db.describe_table().table_name(table).send().await {
        Ok(_) => return Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) => {}
        Err(e) => return Err(dynamo_err("DescribeTable", e)),
    }
    let mut create = db
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest);
    for (name, kind) in [("pk", KeyType::Hash), ("sk", KeyType::Range)] {
        create = create
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(name)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(|e| dynamo_err("CreateTable", e))?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(name)
                    .key_type(kind)
                    .build()
                    .map_err(|e| dynamo_err("CreateTable", e))?,
            );
    }
    match create.send().await {
        Ok(_) => Ok(()),
        // Another process created it between the describe and the create.
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(dynamo_err("CreateTable", e)),
    }
}
