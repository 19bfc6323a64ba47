//! Publishing to Kinesis in real time with PutRecords, keeping each product's order.
//!
//! PutRecords does not stop at a failed record, so two records of one product in one call
//! could land out of order if the first fails and the second succeeds. Each call therefore
//! carries at most one record per partition key (the head of that product's queue), and a
//! product's next record is only sent after the previous one was acknowledged. Failed
//! records stay at the head of their queue and are retried after a per-product backoff.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use aws_sdk_kinesis::Client;

use crate::sim::{OutRecord, Simulation};

/// PutRecords' limits.
pub const MAX_RECORDS_PER_CALL: usize = 500;
pub const MAX_BYTES_PER_CALL: usize = 5 * 1024 * 1024;
/// Records generated ahead of what was acknowledged, so an unpaced run does not hold
/// millions of records in memory.
const MAX_BACKLOG: usize = 20_000;

#[derive(Debug, Clone)]
pub struct PublishOptions {
    pub stream: String,
    /// Events per second; `None` publishes as fast as Kinesis accepts.
    pub rate: Option<f64>,
    /// Attempts per record before the run fails (never drops a record silently).
    pub max_attempts: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishProgress {
    pub acknowledged: u64,
    pub total: u64,
    pub retried: u64,
    pub calls: u64,
}

#[derive(Debug, Clone, Default)]
pub struct PublishReport {
    pub records: u64,
    pub calls: u64,
    /// Records a call reported as failed and that were sent again.
    pub retried: u64,
    pub elapsed: Duration,
}

impl PublishReport {
    pub fn records_per_second(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("Kinesis refused record for {partition_key} {attempts} times (last: {last_error}); stopping so nothing is silently dropped. Check the stream's capacity or lower --rate")]
    RecordFailed {
        partition_key: String,
        attempts: u32,
        last_error: String,
    },
    #[error("PutRecords to stream {stream} failed {attempts} times in a row: {message}. Is the stream there and AWS_ENDPOINT_URL/credentials right?")]
    Call {
        stream: String,
        attempts: u32,
        message: String,
    },
}

struct Queue {
    records: VecDeque<OutRecord>,
    attempts: u32,
    not_before: Option<Instant>,
}

/// Publishes every record of the simulation; returns when all are acknowledged.
pub async fn publish(
    client: &Client,
    sim: &mut Simulation,
    options: &PublishOptions,
    progress: &mut (dyn FnMut(&PublishProgress) + Send),
) -> Result<PublishReport, PublishError> {
    let total = sim.config().events;
    let started = Instant::now();
    let mut queues: HashMap<String, Queue> = HashMap::new();
    // Keys with queued records, visited round-robin; each key at most once.
    let mut ring: VecDeque<String> = VecDeque::new();
    let mut in_ring: HashSet<String> = HashSet::new();
    let mut queued = 0usize;
    let mut p = PublishProgress {
        total,
        ..Default::default()
    };
    let mut failed_calls = 0u32;

    loop {
        // Generate what is due by now.
        let due = match options.rate {
            Some(rate) if rate > 0.0 => {
                ((started.elapsed().as_secs_f64() * rate) as u64 + 1).min(total)
            }
            _ => total,
        };
        while sim.generated() < due && queued < MAX_BACKLOG {
            let Some(record) = sim.next_record() else {
                break;
            };
            let key = record.partition_key.clone();
            queues
                .entry(key.clone())
                .or_insert_with(|| Queue {
                    records: VecDeque::new(),
                    attempts: 0,
                    not_before: None,
                })
                .records
                .push_back(record);
            if in_ring.insert(key.clone()) {
                ring.push_back(key);
            }
            queued += 1;
        }

        // One call: the head of each ready product's queue.
        let now = Instant::now();
        let mut keys = Vec::new();
        let mut entries = Vec::new();
        let mut bytes = 0usize;
        let mut next_ready: Option<Instant> = None;
        for _ in 0..ring.len() {
            let Some(key) = ring.pop_front() else { break };
            let Some(q) = queues.get(&key) else {
                in_ring.remove(&key);
                continue;
            };
            if q.records.is_empty() {
                in_ring.remove(&key);
                continue;
            }
            ring.push_back(key.clone());
            if let Some(t) = q.not_before.filter(|t| *t > now) {
                next_ready = Some(next_ready.map_or(t, |n| n.min(t)));
                continue;
            }
            let head = &q.records[0];
            let size = head.data.len() + head.partition_key.len();
            if entries.len() == MAX_RECORDS_PER_CALL || bytes + size > MAX_BYTES_PER_CALL {
                continue;
            }
            bytes += size;
            entries.push(
                PutRecordsRequestEntry::builder()
                    .partition_key(&head.partition_key)
                    .data(Blob::new(head.data.clone()))
                    .build()
                    .expect("partition key and data are set"),
            );
            keys.push(key);
        }

        if entries.is_empty() {
            if sim.is_done() && queued == 0 {
                break;
            }
            let until_due = options
                .rate
                .filter(|r| *r > 0.0)
                .map(|r| {
                    Duration::from_secs_f64((sim.generated() as f64) / r)
                        .saturating_sub(started.elapsed())
                })
                .unwrap_or(Duration::from_millis(1));
            let until_ready = next_ready.map_or(until_due, |t| t.saturating_duration_since(now));
            tokio::time::sleep(
                until_due
                    .min(until_ready)
                    .clamp(Duration::from_micros(500), Duration::from_millis(100)),
            )
            .await;
            continue;
        }

        p.calls += 1;
        let result = client
            .put_records()
            .stream_name(&options.stream)
            .set_records(Some(entries))
            .send()
            .await;
        let out = match result {
            Ok(out) => {
                failed_calls = 0;
                out
            }
            Err(e) => {
                failed_calls += 1;
                let message = aws_sdk_kinesis::error::DisplayErrorContext(e).to_string();
                if failed_calls >= options.max_attempts {
                    return Err(PublishError::Call {
                        stream: options.stream.clone(),
                        attempts: failed_calls,
                        message,
                    });
                }
                tracing::warn!(%message, "PutRecords failed; retrying");
                tokio::time::sleep(backoff(failed_calls)).await;
                continue;
            }
        };
        for (key, entry) in keys.iter().zip(out.records()) {
            let Some(q) = queues.get_mut(key) else {
                continue;
            };
            match entry.error_code() {
                None => {
                    q.records.pop_front();
                    q.attempts = 0;
                    q.not_before = None;
                    queued -= 1;
                    p.acknowledged += 1;
                }
                Some(code) => {
                    q.attempts += 1;
                    p.retried += 1;
                    if q.attempts >= options.max_attempts {
                        return Err(PublishError::RecordFailed {
                            partition_key: key.clone(),
                            attempts: q.attempts,
                            last_error: format!(
                                "{code}: {}",
                                entry.error_message().unwrap_or_default()
                            ),
                        });
                    }
                    q.not_before = Some(Instant::now() + backoff(q.attempts));
                }
            }
        }
        progress(&p);
    }
    progress(&p);
    Ok(PublishReport {
        records: p.acknowledged,
        calls: p.calls,
        retried: p.retried,
        elapsed: started.elapsed(),
    })
}

/// Exponential backoff with full jitter, 50 ms doubling up to 5 s.
fn backoff(attempt: u32) -> Duration {
    use backon::BackoffBuilder;
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .with_max_times(attempt as usize + 1)
        .build()
        .nth(attempt.saturating_sub(1) as usize)
        .unwrap_or(Duration::from_secs(5))
}
