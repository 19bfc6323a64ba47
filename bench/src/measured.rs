//! The measured processor: the Pipe's target hands each batch to a dedicated thread with a
//! one-core runtime (as a Lambda instance has), which runs it on the Lambda's path and sums
//! what it did; an interceptor counts the processor's DynamoDB requests.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use inventory_domain::pipes::PipeBatch;
use inventory_local::pipe::{BoxFuture, Target};
use inventory_processor::body::read_body;
use inventory_processor::{BatchReport, Processor};
use tokio::sync::{mpsc, oneshot};

use crate::procfs::wall_ms;

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
    pub(crate) read_requests: u64,
    /// Kinesis arrival → the end of the batch that wrote the event, per applied event.
    pub(crate) lags_ms: Vec<i64>,
    pub(crate) first_arrival_ms: Option<i64>,
    pub(crate) last_done_ms: i64,
}

pub(crate) struct Job {
    pub(crate) payload: Vec<u8>,
    pub(crate) processor: Processor,
    pub(crate) metrics: Arc<Mutex<Metrics>>,
    pub(crate) reply: oneshot::Sender<Result<Vec<u8>, String>>,
}

/// The Pipe's target: hands each batch to the processor thread, like an invocation.
pub(crate) struct BenchTarget {
    pub(crate) jobs: mpsc::UnboundedSender<Job>,
    pub(crate) processor: Processor,
    pub(crate) metrics: Arc<Mutex<Metrics>>,
}

impl Target for BenchTarget {
    fn invoke(&self, payload: Vec<u8>) -> BoxFuture<Result<Vec<u8>, String>> {
        let (reply, response) = oneshot::channel();
        let sent = self.jobs.send(Job {
            payload,
            processor: self.processor.clone(),
            metrics: self.metrics.clone(),
            reply,
        });
        Box::pin(async move {
            sent.map_err(|_| "the processor thread stopped".to_owned())?;
            response
                .await
                .map_err(|_| "the processor thread dropped the batch".to_owned())?
        })
    }
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
    let batch: PipeBatch = match read_body(job.payload) {
        Ok(r) => r,
        Err(e) => {
            let _ = job.reply.send(Err(e.to_string()));
            return;
        }
    };
    let report: BatchReport = job.processor.process_batch(&batch).await;
    let done = wall_ms();
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
        m.distinct_products += distinct.len() as u64;
        m.applied += report.applied;
        m.rejected += report.rejected_total();
        m.failed_batches += u64::from(failed_from.is_some());
        m.product_writes += report.product_write_requests;
        m.products_written += report.products_written;
        m.rejection_writes += report.rejection_write_requests;
        m.read_requests += report.read_requests;
        for r in settled {
            let arrival = r.arrival_millis();
            m.lags_ms.push(done - arrival);
            m.first_arrival_ms = Some(m.first_arrival_ms.map_or(arrival, |f| f.min(arrival)));
        }
        m.last_done_ms = m.last_done_ms.max(done);
    }
    let _ = job
        .reply
        .send(serde_json::to_vec(&report.response).map_err(|e| e.to_string()));
}
