//! The measured processor: the Pipe's target hands each batch to a dedicated thread with a
//! one-core runtime (as a Lambda instance has), which runs it on the Lambda's path and sums
//! what it did; an interceptor counts the processor's DynamoDB requests.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use inventory_domain::pipes::PipeBatch;
use inventory_local::pipe::{wall_us, BoxFuture, InvokeTiming, Target, TargetError};
use inventory_processor::body::read_body;
use inventory_processor::{BatchReport, Phases, Processor};
use tokio::sync::{mpsc, oneshot};

/// Counts the processor's DynamoDB HTTP requests (every attempt) by operation.
#[derive(Debug, Default, Clone)]
pub(crate) struct RequestCounter(Arc<Mutex<BTreeMap<String, u64>>>);

impl RequestCounter {
    pub(crate) fn take(&self) -> BTreeMap<String, u64> {
        self.0
            .lock()
            .map(|mut m| std::mem::take(&mut *m))
            .unwrap_or_default()
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let op = context
            .request()
            .headers()
            .get("x-amz-target")
            .and_then(|t| t.rsplit_once('.'))
            .map_or("?", |(_, op)| op)
            .to_owned();
        if let Ok(mut m) = self.0.lock() {
            *m.entry(op).or_default() += 1;
        }
        Ok(())
    }
}

impl Metrics {
    /// The lags of the events after the phase's first `skip_ms` (its start-up: the shards
    /// were idle, polled once a second, when the first events came).
    pub(crate) fn steady_lags_ms(&self, skip_ms: i64) -> Vec<i64> {
        let Some(first) = self.lag_event_ms.iter().min() else {
            return Vec::new();
        };
        self.lags_ms
            .iter()
            .zip(&self.lag_event_ms)
            .filter(|(_, t)| **t >= first + skip_ms)
            .map(|(l, _)| *l)
            .collect()
    }
}

/// What the processor did in one phase, summed over its batches.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub(crate) batches: u64,
    pub(crate) records: u64,
    pub(crate) distinct_products: u64,
    pub(crate) applied: u64,
    pub(crate) rejected: u64,
    pub(crate) failed_batches: u64,
    pub(crate) product_writes: u64,
    pub(crate) products_written: u64,
    pub(crate) rejection_writes: u64,
    /// Write units of the history items (with `--history`).
    pub(crate) history_write_units: u64,
    pub(crate) read_requests: u64,
    /// The event's time (its producer's `timestamp`, ms, taken when it was generated, just
    /// before the put) → the end of the batch that wrote it, per applied event. The
    /// emulator's `approximateArrivalTimestamp` has whole seconds, so this is the lag.
    pub(crate) lags_ms: Vec<i64>,
    /// Each of `lags_ms`' events' time, ms (to leave out a phase's first seconds).
    pub(crate) lag_event_ms: Vec<i64>,
    /// Kinesis' `approximateArrivalTimestamp` → the end of the batch: the emulator's
    /// arrival is truncated to the second, so this overstates the lag by 0–1 s.
    pub(crate) lags_from_arrival_ms: Vec<i64>,
    /// Settled records whose event time could not be read (not counted in `lags_ms`).
    pub(crate) untimed: u64,
    /// The same lag, per applied event, split into its parts (ms each).
    pub(crate) split: LagSplit,
    /// Products served from the processor's warm cache / read from DynamoDB.
    pub(crate) cache_hits: u64,
    pub(crate) cache_misses: u64,
    /// Batches whose products the processor had all met before in the phase (the steady
    /// state), and their reads.
    pub(crate) warm_batches: u64,
    pub(crate) warm_read_requests: u64,
    pub(crate) products_seen: HashSet<String>,
    /// The shard log's requests and units (its writes are transactions: 2 units per KB).
    pub(crate) log_read_requests: u64,
    pub(crate) log_items_read: u64,
    pub(crate) log_write_requests: u64,
    pub(crate) log_write_units: u64,
    /// Products read (consistent BatchGetItem): 1 read unit each, as items stay < 4 KB.
    pub(crate) products_read: u64,
    /// Record data bytes, and Kinesis' billed KB for them (each record rounded up to 1 KB).
    pub(crate) data_bytes: u64,
    pub(crate) data_in_kb: u64,
    /// Wall time of the processor's `process_batch`, summed over batches (µs).
    pub(crate) processor_wall_us: u64,
    pub(crate) first_arrival_ms: Option<i64>,
    /// When the Pipe's first GetRecords with records returned (ms): a drain's throughput is
    /// timed from here, as the naive loop's is from its events in memory.
    pub(crate) first_fetched_ms: Option<i64>,
    pub(crate) last_done_ms: i64,
}

/// Where each event's lag went, one value per applied event per part, in ms. The parts
/// add up to the event's lag: event time → fetched → invoke start → processor start …
/// processor end.
#[derive(Debug, Default)]
pub(crate) struct LagSplit {
    pub(crate) parts: BTreeMap<&'static str, Vec<f64>>,
}

/// The parts in the order they happen, as the report names them.
pub(crate) const LAG_PARTS: [&str; 10] = [
    "in the stream (event time → a GetRecords returned it)",
    "batching (fetched → invoke start)",
    "invoke (payload, hand-over, body read; not the phases)",
    "log refresh (shard log Query)",
    "reads (BatchGetItem of uncached products)",
    "fold (pure)",
    "rejection writes",
    "product writes",
    "log + statistics write",
    "other processor work",
];

impl LagSplit {
    fn push(&mut self, part: &'static str, ms: f64) {
        self.parts.entry(part).or_default().push(ms);
    }
}

pub(crate) struct Job {
    pub(crate) payload: Vec<u8>,
    pub(crate) processor: Processor,
    pub(crate) metrics: Arc<Mutex<Metrics>>,
    pub(crate) reply: oneshot::Sender<Result<Vec<u8>, TargetError>>,
    pub(crate) done: oneshot::Sender<Done>,
}

/// What the processor thread tells the Pipe's side about a finished invocation, for the
/// per-event lag (worked out there, so it costs the processor thread nothing).
pub(crate) struct Done {
    pub(crate) done_us: i64,
    /// Records before the first reported failure.
    pub(crate) settled: usize,
    pub(crate) phases: Phases,
}

/// The Pipe's target: hands each batch to the processor thread, like an invocation.
pub(crate) struct BenchTarget {
    pub(crate) jobs: mpsc::UnboundedSender<Job>,
    pub(crate) processor: Processor,
    pub(crate) metrics: Arc<Mutex<Metrics>>,
}

impl Target for BenchTarget {
    fn invoke(&self, payload: Vec<u8>) -> BoxFuture<'static, Result<Vec<u8>, TargetError>> {
        self.send(payload, None)
    }

    fn invoke_timed(
        &self,
        payload: Vec<u8>,
        timing: InvokeTiming,
    ) -> BoxFuture<'static, Result<Vec<u8>, TargetError>> {
        self.send(payload, Some(timing))
    }
}

impl BenchTarget {
    fn send(
        &self,
        payload: Vec<u8>,
        timing: Option<InvokeTiming>,
    ) -> BoxFuture<'static, Result<Vec<u8>, TargetError>> {
        let (reply, response) = oneshot::channel();
        let (done, finished) = oneshot::channel();
        // The payload again, to read the events' times once the invocation is over.
        let copy = timing.is_some().then(|| payload.clone());
        let sent = self.jobs.send(Job {
            payload,
            processor: self.processor.clone(),
            metrics: self.metrics.clone(),
            reply,
            done,
        });
        let metrics = self.metrics.clone();
        Box::pin(async move {
            sent.map_err(|_| TargetError::function("the processor thread stopped"))?;
            let answer = response
                .await
                .map_err(|_| TargetError::function("the processor thread dropped the batch"))?;
            if let (Some(copy), Some(timing), Ok(done)) = (copy, timing, finished.await) {
                record_lags(&metrics, copy, &timing, &done);
            }
            answer
        })
    }
}

/// Each settled event's lag from its event time, and its parts.
fn record_lags(metrics: &Mutex<Metrics>, payload: Vec<u8>, timing: &InvokeTiming, done: &Done) {
    let Ok(batch) = read_body(payload) else {
        return;
    };
    let times: Vec<Option<i64>> = (0..done.settled)
        .map(|i| batch.get(i).and_then(|r| event_time_us(r.data)))
        .collect();
    let ph = done.phases;
    let us = |v: u64| v as f64 / 1000.0;
    // The processor's phases are per batch: each of the batch's events waited them all.
    let named = ph.log_refresh_us
        + ph.read_us
        + ph.fold_us
        + ph.rejection_write_us
        + ph.product_write_us
        + ph.log_write_us;
    let phases = [
        (LAG_PARTS[3], us(ph.log_refresh_us)),
        (LAG_PARTS[4], us(ph.read_us)),
        (LAG_PARTS[5], us(ph.fold_us)),
        (LAG_PARTS[6], us(ph.rejection_write_us)),
        (LAG_PARTS[7], us(ph.product_write_us)),
        (LAG_PARTS[8], us(ph.log_write_us)),
        (LAG_PARTS[9], us(ph.total_us.saturating_sub(named))),
    ];
    let ms = |a: i64, b: i64| (b - a) as f64 / 1000.0;
    let Ok(mut m) = metrics.lock() else { return };
    if let Some(&first) = timing.fetched_us.iter().min() {
        let first = first / 1000;
        m.first_fetched_ms = Some(m.first_fetched_ms.map_or(first, |f| f.min(first)));
    }
    for (i, time) in times.into_iter().enumerate() {
        let (Some(event_us), Some(&fetched)) = (time, timing.fetched_us.get(i)) else {
            m.untimed += 1;
            continue;
        };
        m.lags_ms.push((done.done_us - event_us) / 1000);
        m.lag_event_ms.push(event_us / 1000);
        m.split.push(LAG_PARTS[0], ms(event_us, fetched));
        m.split
            .push(LAG_PARTS[1], ms(fetched, timing.invoke_start_us));
        m.split.push(
            LAG_PARTS[2],
            ms(timing.invoke_start_us, done.done_us) - us(ph.total_us),
        );
        for (part, v) in phases {
            m.split.push(part, v);
        }
    }
}

/// The event's `product.timestamp` (the generator stamps it, to the millisecond, as it
/// generates the event), in µs; `None` when the record is not such an event.
fn event_time_us(data_base64: &str) -> Option<i64> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data_base64)
        .ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    let (_, rest) = text.split_once("\"timestamp\":\"")?;
    let (stamp, _) = rest.split_once('"')?;
    let time = chrono::DateTime::parse_from_rfc3339(stamp).ok()?;
    Some(time.timestamp_micros())
}

/// Starts the processor thread: one core's worth of runtime, as a Lambda instance has.
/// Returns the job queue and the thread's id (for its CPU time).
pub(crate) fn processor_thread() -> anyhow::Result<(mpsc::UnboundedSender<Job>, String)> {
    let (jobs, mut queue) = mpsc::unbounded_channel::<Job>();
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("processor".into())
        .spawn(move || {
            let tid = std::fs::read_link("/proc/thread-self")
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
            let _ = tid_tx.send(tid);
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("cannot start the processor runtime: {e}");
                    return;
                }
            };
            rt.block_on(async move {
                while let Some(job) = queue.recv().await {
                    tokio::spawn(invoke(job));
                }
            });
        })?;
    let tid = tid_rx
        .recv()?
        .context("cannot find the processor thread's id in /proc/thread-self")?;
    Ok((jobs, tid))
}

/// One invocation, with the same JSON in and out as the Lambda: the body read by the
/// Lambda's body reader, then `Processor::process_batch`.
pub(crate) async fn invoke(job: Job) {
    let started_us = wall_us();
    let batch: PipeBatch = match read_body(job.payload) {
        Ok(r) => r,
        Err(e) => {
            let _ = job.reply.send(Err(TargetError::function(e)));
            return;
        }
    };
    let report: BatchReport = job.processor.process_batch(&batch).await;
    let done_us = wall_us();
    let done = done_us / 1000;
    let failed_from = report
        .response
        .batch_item_failures
        .first()
        .and_then(|f| batch.iter().position(|r| r.event_id == f.item_identifier));
    let settled = batch.iter().take(failed_from.unwrap_or(batch.len()));
    let distinct: HashSet<&str> = batch.iter().map(|r| r.partition_key).collect();
    if let Ok(mut m) = job.metrics.lock() {
        m.batches += 1;
        m.records += batch.len() as u64;
        for r in batch.iter() {
            // Base64: 4 characters for 3 bytes.
            let bytes = (r.data.len() / 4 * 3) as u64;
            m.data_bytes += bytes;
            m.data_in_kb += bytes.div_ceil(1024).max(1);
        }
        m.distinct_products += distinct.len() as u64;
        m.applied += report.applied;
        m.rejected += report.rejected_total();
        m.failed_batches += u64::from(failed_from.is_some());
        m.product_writes += report.product_write_requests;
        m.products_written += report.products_written;
        m.rejection_writes += report.rejection_write_requests;
        m.history_write_units += report.history_write_units;
        m.read_requests += report.read_requests;
        m.cache_hits += report.cache_hits;
        m.cache_misses += report.cache_misses;
        m.products_read += report.cache_misses;
        m.log_read_requests += report.log.read_requests;
        m.log_items_read += report.log.items_read;
        m.log_write_requests += report.log.write_requests;
        m.log_write_units += report.log.write_units;
        m.processor_wall_us += u64::try_from(done_us - started_us).unwrap_or(0);
        // The steady state: a batch whose products this processor has all met before (in
        // earlier batches of the phase), so a warm cache needs to read none of them. The
        // phase's first batches, which meet products for the first time, are the warm-up.
        if distinct.iter().all(|p| m.products_seen.contains(*p)) {
            m.warm_batches += 1;
            m.warm_read_requests += report.read_requests;
        }
        m.products_seen
            .extend(distinct.iter().map(|p| (*p).to_owned()));
        for r in settled {
            let arrival = r.arrival_millis();
            m.lags_from_arrival_ms.push(done - arrival);
            m.first_arrival_ms = Some(m.first_arrival_ms.map_or(arrival, |f| f.min(arrival)));
        }
        m.last_done_ms = m.last_done_ms.max(done);
    }
    let _ = job.done.send(Done {
        done_us,
        settled: failed_from.unwrap_or(batch.len()),
        phases: report.phases,
    });
    let _ = job
        .reply
        .send(serde_json::to_vec(&report.response).map_err(TargetError::function));
}
