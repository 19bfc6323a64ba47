//! Publishing to Kinesis in real time with PutRecords, keeping each product's order, as one
//! producer or many.
//!
//! PutRecords does not stop at a failed record, so two records of one product in one call
//! could land out of order if the first fails and the second succeeds. Each call therefore
//! carries at most one record per partition key (the head of that product's queue), and a
//! product's next record is only sent after the previous one was acknowledged. Failed
//! records stay at the head of their queue and are retried after a per-product backoff
//! (backon's exponential backoff with jitter, see [`retry_policy`]).
//!
//! The simulation assigns every record to one of its producers; each producer is a
//! concurrent loop making its own PutRecords calls. A product's order holds across them: its
//! next record waits for the previous one's acknowledgement whoever put it, so the order in
//! which concurrent producers land records never changes the state the model expects. Late
//! retries (a producer putting an acknowledged record again, as an SDK does when a timed-out
//! call had in fact succeeded) change nothing, so they skip that queue: each goes once
//! `distance` other records were acknowledged after its original, or when nothing else is
//! left to put.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use aws_sdk_kinesis::Client;
use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::sync::Notify;

use crate::simulation::{OutRecord, Retry, Simulation};

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
    /// No call starts once this has passed: calls already in flight end and their outcome
    /// is counted, refused records are not tried again, and the run fails with
    /// [`PublishError::Deadline`] unless everything was acknowledged. `None`: no deadline.
    pub deadline: Option<Instant>,
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
    /// Producers that published.
    pub producers: usize,
    /// Most PutRecords calls in flight at once.
    pub peak_calls_in_flight: usize,
    /// Late retries put (each a copy of an acknowledged record).
    pub late_retries: u64,
    /// Of those, the ones put before their distance was reached because nothing else was left
    /// to put (their originals were acknowledged late).
    pub late_retries_cut_short: u64,
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
    #[error("stopped publishing at the deadline after {acknowledged} of {total} records were acknowledged (nothing is put after it); publish fewer events or at a higher rate so the run ends in time")]
    Deadline { acknowledged: u64, total: u64 },
    #[error("PutRecords to stream {stream} failed {attempts} times in a row: {last}. Is the stream there and AWS_ENDPOINT_URL/credentials right?")]
    Call {
        stream: String,
        attempts: u32,
        last: SinkError,
    },
}

/// Why a PutRecords call failed as a whole (nothing of it counts as stored).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// The SDK would not build an entry from a partition key and data.
    #[error("could not build a PutRecords entry: {0}")]
    Entry(String),
    /// The call itself failed: the service's answer or why it could not be reached.
    #[error("{0}")]
    Call(String),
}

/// One PutRecords entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutEntry {
    pub partition_key: String,
    pub data: Vec<u8>,
}

impl PutEntry {
    fn of(record: &OutRecord) -> Self {
        Self {
            partition_key: record.partition_key.clone(),
            data: record.data.clone(),
        }
    }
}

/// Why PutRecords did not store an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryError {
    pub code: String,
    pub message: String,
}

/// Where records are put: Kinesis, or a stand-in in tests.
pub trait RecordSink: Sync {
    /// One PutRecords call: each entry's outcome in order (`None`: stored), or the call's
    /// error.
    fn put_records(
        &self,
        stream: &str,
        entries: Vec<PutEntry>,
    ) -> impl Future<Output = Result<Vec<Option<EntryError>>, SinkError>> + Send;
}

impl RecordSink for Client {
    async fn put_records(
        &self,
        stream: &str,
        entries: Vec<PutEntry>,
    ) -> Result<Vec<Option<EntryError>>, SinkError> {
        let records = entries
            .into_iter()
            .map(|e| {
                PutRecordsRequestEntry::builder()
                    .partition_key(e.partition_key)
                    .data(Blob::new(e.data))
                    .build()
                    .map_err(|e| SinkError::Entry(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = Client::put_records(self)
            .stream_name(stream)
            .set_records(Some(records))
            .send()
            .await
            .map_err(|e| {
                SinkError::Call(aws_sdk_kinesis::error::DisplayErrorContext(e).to_string())
            })?;
        Ok(out
            .records()
            .iter()
            .map(|r| {
                r.error_code().map(|code| EntryError {
                    code: code.to_owned(),
                    message: r.error_message().unwrap_or_default().to_owned(),
                })
            })
            .collect())
    }
}

/// Publishes every record of the simulation to `sink` (a Kinesis [`Client`], or a stand-in
/// in tests), with as many concurrent producers as the simulation has; returns when all are
/// acknowledged, or fails at [`PublishOptions::deadline`].
pub async fn publish<S: RecordSink>(
    sink: &S,
    sim: &mut Simulation,
    options: &PublishOptions,
    progress: &mut (dyn FnMut(&PublishProgress) + Send),
) -> Result<PublishReport, PublishError> {
    let producers = sim.producers().producers.max(1);
    let started = Instant::now();
    let shared = Mutex::new(Shared {
        p: PublishProgress {
            total: sim.config().events,
            ..Default::default()
        },
        sim,
        progress,
        products: HashMap::new(),
        producers: (0..producers).map(|_| Producer::default()).collect(),
        ordered: 0,
        awaiting_original: HashMap::new(),
        original_acks: HashMap::new(),
        late_pending: 0,
        in_call: vec![false; producers],
        calls_in_flight: 0,
        report: PublishReport {
            producers,
            ..Default::default()
        },
        failure: None,
        deadline_reached: false,
    });
    let wake = Notify::new();
    let loops = (0..producers).map(|me| {
        produce(
            me,
            Ctx {
                sink,
                shared: &shared,
                wake: &wake,
                options,
                started,
            },
        )
    });
    futures::future::join_all(loops).await;
    let mut s = lock(&shared);
    let p = s.p.clone();
    (s.progress)(&p);
    if let Some(e) = s.failure.take() {
        return Err(e);
    }
    let all_acknowledged = s.sim.is_done() && s.ordered == 0 && s.late_pending == 0;
    if s.deadline_reached && !all_acknowledged {
        return Err(PublishError::Deadline {
            acknowledged: p.acknowledged,
            total: p.total,
        });
    }
    Ok(PublishReport {
        records: p.acknowledged,
        calls: p.calls,
        retried: p.retried,
        elapsed: started.elapsed(),
        ..s.report.clone()
    })
}

struct ProductQueue {
    records: VecDeque<OutRecord>,
    /// Its head is in a call: nothing else of the product may go before it is acknowledged.
    in_flight: bool,
    attempts: u32,
    /// The head's remaining retry delays, from its first failure on.
    delays: Option<Delays>,
    not_before: Option<Instant>,
}

#[derive(Default)]
struct Producer {
    /// Products whose queue holds records of this producer, visited round-robin; each once.
    ring: VecDeque<String>,
    in_ring: HashSet<String>,
    /// How many records of this producer each product's queue holds.
    keys: HashMap<String, usize>,
    /// Late retries whose original was acknowledged, waiting for their distance.
    held: Vec<Held>,
    failed_calls: u32,
    /// The remaining delays before this producer's next call, from a first failed call on.
    call_delays: Option<Delays>,
    /// After a failed call: this producer's next call waits until then.
    not_before: Option<Instant>,
}

struct Held {
    record: OutRecord,
    /// Put once this many records were acknowledged in all.
    after: u64,
    attempts: u32,
    delays: Option<Delays>,
    not_before: Option<Instant>,
    /// Sent before its distance was reached (at the end of the run).
    cut_short: bool,
}

enum Item {
    /// The head of this product's queue.
    Ordered(String),
    Late(Held),
}

enum Take {
    Call(Vec<Item>, Vec<PutEntry>),
    /// Nothing to send now; look again by then (or when woken).
    Wait(Option<Instant>),
    Done,
}

/// What a producer does next, decided under the lock and done after it.
enum Step {
    Call(Vec<Item>, Vec<PutEntry>),
    Wait(Duration),
    Stop,
}

struct Shared<'a> {
    sim: &'a mut Simulation,
    progress: &'a mut (dyn FnMut(&PublishProgress) + Send + 'a),
    p: PublishProgress,
    products: HashMap<String, ProductQueue>,
    producers: Vec<Producer>,
    /// Records in product queues: bounds how far generation runs ahead.
    ordered: usize,
    /// Late retries generated before their original was acknowledged, by its index.
    awaiting_original: HashMap<u64, OutRecord>,
    /// Where originals with a late retry still to be generated were acknowledged.
    original_acks: HashMap<u64, u64>,
    /// Late retries generated and not yet acknowledged.
    late_pending: usize,
    /// Which producers have a call in flight.
    in_call: Vec<bool>,
    calls_in_flight: usize,
    report: PublishReport,
    /// The first fatal error; every producer stops.
    failure: Option<PublishError>,
    /// The deadline passed: every producer stops once its call in flight has ended.
    deadline_reached: bool,
}

struct Ctx<'c, 'a, S> {
    sink: &'c S,
    shared: &'c Mutex<Shared<'a>>,
    wake: &'c Notify,
    options: &'c PublishOptions,
    started: Instant,
}

fn lock<'m, 'a>(m: &'m Mutex<Shared<'a>>) -> MutexGuard<'m, Shared<'a>> {
    // A panic elsewhere cannot leave the queues half-updated in a way that loses records
    // silently: the run fails on that panic anyway.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One producer: takes what is ready for it, puts it, records the outcome; until all is
/// acknowledged or a producer failed.
async fn produce<S: RecordSink>(me: usize, ctx: Ctx<'_, '_, S>) {
    loop {
        // Registered before looking, so a wake-up between the look and the wait is not lost.
        let woken = ctx.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let step = {
            let mut s = lock(ctx.shared);
            let now = Instant::now();
            if ctx.options.deadline.is_some_and(|d| now >= d) {
                s.deadline_reached = true;
            }
            if s.failure.is_some() || s.deadline_reached {
                Step::Stop
            } else {
                if s.generate_due(ctx.started, ctx.options.rate) {
                    // Records for other producers.
                    ctx.wake.notify_waiters();
                }
                match s.take(me, now) {
                    Take::Done => Step::Stop,
                    Take::Wait(ready_at) => {
                        // One idle producer keeps the pace, so a paced run does not wake
                        // every producer for every record.
                        let pacer = s.in_call.iter().position(|busy| !busy) == Some(me);
                        let due = s.until_due(ctx.started, ctx.options.rate).filter(|_| pacer);
                        let until_ready = ready_at.map(|t| t.saturating_duration_since(now));
                        let until_deadline = ctx
                            .options
                            .deadline
                            .map(|d| d.saturating_duration_since(now));
                        Step::Wait(
                            [due, until_ready, until_deadline]
                                .into_iter()
                                .flatten()
                                .min()
                                .unwrap_or(Duration::from_millis(100))
                                .clamp(Duration::from_micros(500), Duration::from_millis(100)),
                        )
                    }
                    Take::Call(items, entries) => {
                        s.in_call[me] = true;
                        s.calls_in_flight += 1;
                        s.report.peak_calls_in_flight =
                            s.report.peak_calls_in_flight.max(s.calls_in_flight);
                        Step::Call(items, entries)
                    }
                }
            }
        };
        let (items, entries) = match step {
            Step::Stop => {
                ctx.wake.notify_waiters();
                return;
            }
            Step::Wait(nap) => {
                let _ = tokio::time::timeout(nap, woken).await;
                continue;
            }
            Step::Call(items, entries) => (items, entries),
        };
        let result = ctx.sink.put_records(&ctx.options.stream, entries).await;
        // No await from here to the update, so what a call stored is counted before any
        // other producer can act on it.
        let mut s = lock(ctx.shared);
        s.in_call[me] = false;
        s.calls_in_flight -= 1;
        if let Err(e) = s.complete(me, items, result, ctx.options) {
            s.failure.get_or_insert(e);
        }
        drop(s);
        ctx.wake.notify_waiters();
    }
}

impl Shared<'_> {
    /// Generates what is due by now; whether anything was.
    fn generate_due(&mut self, started: Instant, rate: Option<f64>) -> bool {
        let total = self.p.total;
        let due = match rate {
            Some(rate) if rate > 0.0 => {
                ((started.elapsed().as_secs_f64() * rate) as u64 + 1).min(total)
            }
            _ => total,
        };
        let mut any = false;
        // Late retries do not count against the backlog: held back, they would stop the
        // originals whose acknowledgements they wait for.
        while self.sim.generated() < due && self.ordered < MAX_BACKLOG {
            let Some(record) = self.sim.next_record() else {
                break;
            };
            any = true;
            match record.retry {
                Retry::Of { original, distance } => {
                    self.late_pending += 1;
                    match self.original_acks.remove(&original) {
                        Some(acked_at) => self.hold(record, acked_at + distance),
                        None => {
                            self.awaiting_original.insert(original, record);
                        }
                    }
                }
                Retry::No | Retry::Later => {
                    let key = record.partition_key.clone();
                    let producer = &mut self.producers[record.producer];
                    *producer.keys.entry(key.clone()).or_default() += 1;
                    if producer.in_ring.insert(key.clone()) {
                        producer.ring.push_back(key.clone());
                    }
                    self.products
                        .entry(key)
                        .or_insert_with(|| ProductQueue {
                            records: VecDeque::new(),
                            in_flight: false,
                            attempts: 0,
                            delays: None,
                            not_before: None,
                        })
                        .records
                        .push_back(record);
                    self.ordered += 1;
                }
            }
        }
        any
    }

    /// How long until the next record is due (`None`: unpaced).
    fn until_due(&self, started: Instant, rate: Option<f64>) -> Option<Duration> {
        rate.filter(|r| *r > 0.0).map(|r| {
            Duration::from_secs_f64(self.sim.generated() as f64 / r)
                .saturating_sub(started.elapsed())
        })
    }

    fn hold(&mut self, record: OutRecord, after: u64) {
        self.producers[record.producer].held.push(Held {
            record,
            after,
            attempts: 0,
            delays: None,
            not_before: None,
            cut_short: false,
        });
    }

    /// The next call of producer `me`: the head of each product whose head is its own and
    /// not in flight, and its late retries that are due.
    fn take(&mut self, me: usize, now: Instant) -> Take {
        // Only late retries left: nothing more can be acknowledged before them, so their
        // distance can no longer grow; put them now rather than never.
        let finishing = self.sim.is_done() && self.ordered == 0;
        if finishing && self.late_pending == 0 {
            return Take::Done;
        }
        let producer = &mut self.producers[me];
        if let Some(t) = producer.not_before.filter(|t| *t > now) {
            return Take::Wait(Some(t));
        }
        let mut batch = Batch::default();
        producer.take_heads(me, &mut self.products, now, &mut batch);
        producer.take_late_retries(self.p.acknowledged, finishing, now, &mut batch);
        if batch.items.is_empty() {
            Take::Wait(batch.ready_at)
        } else {
            Take::Call(batch.items, batch.entries)
        }
    }

    /// Records a call's outcome: acknowledged records leave, failed ones wait for a backoff.
    fn complete(
        &mut self,
        me: usize,
        items: Vec<Item>,
        result: Result<Vec<Option<EntryError>>, SinkError>,
        options: &PublishOptions,
    ) -> Result<(), PublishError> {
        self.p.calls += 1;
        let outcomes = match result {
            Ok(outcomes) => {
                let producer = &mut self.producers[me];
                producer.failed_calls = 0;
                producer.call_delays = None;
                producer.not_before = None;
                outcomes
            }
            Err(error) => return self.call_failed(me, items, error, options),
        };
        for (i, item) in items.into_iter().enumerate() {
            // An entry without an outcome was not stored as far as we know: send it again.
            let error = match outcomes.get(i) {
                Some(None) => None,
                Some(Some(e)) => Some(format!("{}: {}", e.code, e.message)),
                None => Some("PutRecords returned no result for this record".to_owned()),
            };
            match (item, error) {
                (Item::Ordered(key), None) => self.head_acknowledged(me, &key),
                (Item::Ordered(key), Some(last_error)) => {
                    self.head_refused(key, last_error, options)?
                }
                (Item::Late(h), None) => self.late_retry_acknowledged(&h),
                (Item::Late(h), Some(last_error)) => {
                    self.late_retry_refused(me, h, last_error, options)?
                }
            }
        }
        let p = self.p.clone();
        (self.progress)(&p);
        Ok(())
    }

    /// A call that failed as a whole: nothing of it counts as stored, so all of it goes again
    /// after the producer's backoff, or the run fails once the policy has no attempt left.
    fn call_failed(
        &mut self,
        me: usize,
        items: Vec<Item>,
        error: SinkError,
        options: &PublishOptions,
    ) -> Result<(), PublishError> {
        for item in items {
            match item {
                Item::Ordered(key) => {
                    if let Some(q) = self.products.get_mut(&key) {
                        q.in_flight = false;
                    }
                }
                Item::Late(h) => self.producers[me].held.push(h),
            }
        }
        let producer = &mut self.producers[me];
        producer.failed_calls += 1;
        let Some(retry_at) = next_attempt(&mut producer.call_delays, options.max_attempts) else {
            return Err(PublishError::Call {
                stream: options.stream.clone(),
                attempts: producer.failed_calls,
                last: error,
            });
        };
        tracing::warn!(message = %error, producer = me, "PutRecords failed; retrying");
        producer.not_before = Some(retry_at);
        Ok(())
    }

    /// The head of `key`'s queue was stored: the next record of the product may go, and a
    /// late retry of it starts counting its distance from here.
    fn head_acknowledged(&mut self, me: usize, key: &str) {
        let Some(q) = self.products.get_mut(key) else {
            return;
        };
        q.in_flight = false;
        q.attempts = 0;
        q.delays = None;
        q.not_before = None;
        let Some(record) = q.records.pop_front() else {
            return;
        };
        self.ordered -= 1;
        if let Some(n) = self.producers[me].keys.get_mut(key) {
            *n = n.saturating_sub(1);
        }
        self.p.acknowledged += 1;
        if record.retry == Retry::Later {
            let acked_at = self.p.acknowledged;
            match self.awaiting_original.remove(&record.index) {
                Some(retry) => {
                    let Retry::Of { distance, .. } = retry.retry else {
                        return;
                    };
                    self.hold(retry, acked_at + distance);
                }
                None => {
                    self.original_acks.insert(record.index, acked_at);
                }
            }
        }
    }

    /// The head of `key`'s queue was refused: it stays at the head and goes again after its
    /// backoff, or the run fails once the policy has no attempt left.
    fn head_refused(
        &mut self,
        key: String,
        last_error: String,
        options: &PublishOptions,
    ) -> Result<(), PublishError> {
        let Some(q) = self.products.get_mut(&key) else {
            return Ok(());
        };
        q.in_flight = false;
        q.attempts += 1;
        let Some(retry_at) = next_attempt(&mut q.delays, options.max_attempts) else {
            return Err(PublishError::RecordFailed {
                partition_key: key,
                attempts: q.attempts,
                last_error,
            });
        };
        self.p.retried += 1;
        q.not_before = Some(retry_at);
        Ok(())
    }

    fn late_retry_acknowledged(&mut self, h: &Held) {
        self.p.acknowledged += 1;
        self.late_pending -= 1;
        self.report.late_retries += 1;
        if h.cut_short {
            self.report.late_retries_cut_short += 1;
        }
    }

    /// A refused late retry is held again until its backoff ends, or the run fails once the
    /// policy has no attempt left.
    fn late_retry_refused(
        &mut self,
        me: usize,
        mut h: Held,
        last_error: String,
        options: &PublishOptions,
    ) -> Result<(), PublishError> {
        h.attempts += 1;
        let Some(retry_at) = next_attempt(&mut h.delays, options.max_attempts) else {
            return Err(PublishError::RecordFailed {
                partition_key: h.record.partition_key,
                attempts: h.attempts,
                last_error,
            });
        };
        self.p.retried += 1;
        h.not_before = Some(retry_at);
        self.producers[me].held.push(h);
        Ok(())
    }
}

/// One call being filled, within PutRecords' limits.
#[derive(Default)]
struct Batch {
    items: Vec<Item>,
    entries: Vec<PutEntry>,
    bytes: usize,
    /// The earliest time a record left out for its backoff may go.
    ready_at: Option<Instant>,
}

impl Batch {
    fn is_full(&self) -> bool {
        self.entries.len() == MAX_RECORDS_PER_CALL
    }

    /// Whether `record` still fits in the call; if so, its bytes are counted in.
    fn fits(&mut self, record: &OutRecord) -> bool {
        let size = record.data.len() + record.partition_key.len();
        let ok =
            self.entries.len() < MAX_RECORDS_PER_CALL && self.bytes + size <= MAX_BYTES_PER_CALL;
        if ok {
            self.bytes += size;
        }
        ok
    }

    /// Whether a record is still in its backoff at `now` (then noted as ready at its end).
    fn backing_off(&mut self, not_before: Option<Instant>, now: Instant) -> bool {
        match not_before.filter(|t| *t > now) {
            Some(t) => {
                self.ready_at = Some(self.ready_at.map_or(t, |r| r.min(t)));
                true
            }
            None => false,
        }
    }

    /// Adds `item`, whose record is `entry`.
    fn push(&mut self, entry: PutEntry, item: Item) {
        self.entries.push(entry);
        self.items.push(item);
    }
}

impl Producer {
    /// Adds the head of each product whose head is this producer's (`me`) and not in flight,
    /// visiting the products round-robin.
    fn take_heads(
        &mut self,
        me: usize,
        products: &mut HashMap<String, ProductQueue>,
        now: Instant,
        batch: &mut Batch,
    ) {
        for _ in 0..self.ring.len() {
            // A full call leaves the products not visited at the front for the next one.
            if batch.is_full() {
                break;
            }
            let Some(key) = self.ring.pop_front() else {
                break;
            };
            if self.keys.get(&key).copied().unwrap_or(0) == 0 {
                self.keys.remove(&key);
                self.in_ring.remove(&key);
                continue;
            }
            self.ring.push_back(key.clone());
            let Some(q) = products.get_mut(&key) else {
                continue;
            };
            let Some(head) = q.records.front() else {
                continue;
            };
            if head.producer != me || q.in_flight {
                continue;
            }
            if batch.backing_off(q.not_before, now) || !batch.fits(head) {
                continue;
            }
            batch.push(PutEntry::of(head), Item::Ordered(key));
            q.in_flight = true;
        }
    }

    /// Adds the late retries whose distance was reached (all of them when `finishing`), out
    /// of their backoff.
    fn take_late_retries(
        &mut self,
        acknowledged: u64,
        finishing: bool,
        now: Instant,
        batch: &mut Batch,
    ) {
        let mut i = 0;
        while i < self.held.len() {
            let h = &self.held[i];
            let waiting = !finishing && acknowledged < h.after;
            if batch.backing_off(h.not_before, now) || waiting || !batch.fits(&h.record) {
                i += 1;
                continue;
            }
            let mut h = self.held.swap_remove(i);
            h.cut_short = acknowledged < h.after;
            batch.push(PutEntry::of(&h.record), Item::Late(h));
        }
    }
}

/// The delays between attempts at one record or one call (boxed: kept only for what failed,
/// and it would otherwise make every queued record larger).
type Delays = Box<<ExponentialBuilder as BackoffBuilder>::Backoff>;

/// How a refused record or a failed call is tried again: 50 ms doubling up to 5 s, each
/// delay stretched by a random share of itself (jitter, so producers that failed together
/// do not retry together), and `max_attempts` attempts in all.
fn retry_policy(max_attempts: u32) -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .with_max_times(max_attempts.saturating_sub(1) as usize)
}

/// When to try again after a failure (the policy started at the first one), or `None` once
/// the policy has no attempt left.
fn next_attempt(delays: &mut Option<Delays>, max_attempts: u32) -> Option<Instant> {
    delays
        .get_or_insert_with(|| Box::new(retry_policy(max_attempts).build()))
        .next()
        .map(|delay| Instant::now() + delay)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet};

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::simulation::tests::Landed;
    use crate::simulation::{FaultRatios, ProducerConfig, RetryDistance, SimConfig, Skew};

    /// Kinesis in memory: stores what it accepts in the order it lands; can refuse a share of
    /// entries, every entry of one key, or whole calls.
    struct FakeKinesis {
        landed: Mutex<Vec<PutEntry>>,
        calls: Mutex<u64>,
        refuse_share: f64,
        refuse_key: Option<String>,
        failing_calls: Vec<u64>,
        rng: Mutex<StdRng>,
    }

    impl FakeKinesis {
        fn new() -> Self {
            Self {
                landed: Mutex::new(Vec::new()),
                calls: Mutex::new(0),
                refuse_share: 0.0,
                refuse_key: None,
                failing_calls: Vec::new(),
                rng: Mutex::new(StdRng::seed_from_u64(7)),
            }
        }

        fn landed(&self) -> Vec<PutEntry> {
            self.landed.lock().unwrap().clone()
        }
    }

    impl RecordSink for FakeKinesis {
        async fn put_records(
            &self,
            _stream: &str,
            entries: Vec<PutEntry>,
        ) -> Result<Vec<Option<EntryError>>, SinkError> {
            // Lets the other producers' calls overlap this one.
            tokio::task::yield_now().await;
            let bytes: usize = entries
                .iter()
                .map(|e| e.data.len() + e.partition_key.len())
                .sum();
            assert!(entries.len() <= MAX_RECORDS_PER_CALL && bytes <= MAX_BYTES_PER_CALL);
            let call = {
                let mut calls = self.calls.lock().unwrap();
                *calls += 1;
                *calls
            };
            if self.failing_calls.contains(&call) {
                return Err(SinkError::Call(
                    "InternalFailure: service unavailable".into(),
                ));
            }
            let (mut landed, mut rng) = (self.landed.lock().unwrap(), self.rng.lock().unwrap());
            Ok(entries
                .into_iter()
                .map(|e| {
                    let refused = self.refuse_key.as_deref() == Some(e.partition_key.as_str())
                        || rng.random_bool(self.refuse_share);
                    if refused {
                        Some(EntryError {
                            code: "ProvisionedThroughputExceededException".into(),
                            message: "Rate exceeded for shard".into(),
                        })
                    } else {
                        landed.push(e);
                        None
                    }
                })
                .collect())
        }
    }

    fn simulation(
        products: usize,
        events: u64,
        duplicates: f64,
        producers: ProducerConfig,
    ) -> Simulation {
        let config = SimConfig {
            products,
            events,
            skew: Skew::Zipf(1.1),
            seed: 21,
            run_id: "pub".into(),
            faults: FaultRatios {
                duplicates,
                malformed: 0.01,
                invalid_transitions: 0.02,
            },
        };
        Simulation::with_producers(config, producers).unwrap()
    }

    fn options() -> PublishOptions {
        PublishOptions {
            stream: "s".into(),
            rate: None,
            max_attempts: 30,
            deadline: None,
        }
    }

    /// An event's identity apart from generation time: the payload, or the random part of
    /// its event id (ULIDs start with the time).
    fn fingerprint(data: &[u8]) -> String {
        match serde_json::from_slice::<serde_json::Value>(data) {
            Ok(v) => match v["event_id"].as_str() {
                Some(id) => id[10..].to_owned(),
                None => String::from_utf8_lossy(data).into_owned(),
            },
            Err(_) => String::from_utf8_lossy(data).into_owned(),
        }
    }

    /// Each product's distinct events (first occurrences) in order.
    fn per_product<'a>(
        records: impl Iterator<Item = (&'a str, &'a [u8])>,
    ) -> BTreeMap<String, Vec<String>> {
        let mut seen = HashSet::new();
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (key, data) in records {
            let f = fingerprint(data);
            if seen.insert((key, f.clone())) {
                out.entry(key.to_owned()).or_default().push(f);
            }
        }
        out
    }

    /// The order the simulation generated each product's distinct events in.
    fn generated_order(mut sim: Simulation) -> BTreeMap<String, Vec<String>> {
        let mut records = Vec::new();
        while let Some(r) = sim.next_record() {
            records.push(r);
        }
        per_product(
            records
                .iter()
                .map(|r| (r.partition_key.as_str(), &r.data[..])),
        )
    }

    fn check_landed(kinesis: &FakeKinesis, sim: &Simulation, twin: Simulation) -> Landed {
        let landed = kinesis.landed();
        let mut model = Landed::default();
        for e in &landed {
            model.land(&e.partition_key, &e.data);
        }
        model.assert_expected(&sim.expected());
        assert_eq!(
            per_product(
                landed
                    .iter()
                    .map(|e| (e.partition_key.as_str(), &e.data[..]))
            ),
            generated_order(twin),
            "each product's events landed in the order they were generated"
        );
        model
    }

    #[tokio::test]
    async fn four_producers_put_every_event_once_in_order_and_late_retries_after_their_distance() {
        let producers = ProducerConfig {
            producers: 4,
            retry_share: 0.05,
            retry_distance: RetryDistance {
                min: 100,
                max: 1_000,
            },
        };
        let mut sim = simulation(50, 8_000, 0.0, producers);
        let kinesis = FakeKinesis::new();
        let report = publish(&kinesis, &mut sim, &options(), &mut |_| {})
            .await
            .unwrap();
        let expected = sim.expected();
        assert_eq!(report.records, 8_000);
        assert_eq!(report.late_retries, expected.late_retries);
        assert!(expected.late_retries > 300, "{expected:?}");
        assert!(report.peak_calls_in_flight >= 2, "{report:?}");
        let model = check_landed(&kinesis, &sim, simulation(50, 8_000, 0.0, producers));

        // Every repeat is a late retry here: put after at least its distance.
        assert_eq!(model.repeats, expected.late_retries);
        let short = model.repeat_distances.iter().filter(|d| **d < 100).count() as u64;
        // Only a retry whose original was acknowledged near the end (the hot product's queue
        // drains last in an unpaced run) can land short of its distance.
        assert!(short <= report.late_retries_cut_short, "{short} {report:?}");
        assert!(
            report.late_retries_cut_short * 10 < expected.late_retries,
            "{report:?}"
        );
        let slack = 4 * MAX_RECORDS_PER_CALL as u64;
        assert!(
            model.repeat_distances.iter().all(|d| *d <= 1_000 + slack),
            "{:?}",
            model.repeat_distances.iter().max()
        );
    }

    #[tokio::test]
    async fn immediate_duplicates_and_late_retries_are_all_counted() {
        let producers = ProducerConfig {
            producers: 4,
            retry_share: 0.05,
            retry_distance: RetryDistance { min: 1, max: 2_000 },
        };
        let mut sim = simulation(200, 6_000, 0.05, producers);
        let kinesis = FakeKinesis::new();
        publish(&kinesis, &mut sim, &options(), &mut |_| {})
            .await
            .unwrap();
        let e = sim.expected();
        assert!(
            e.duplicates > e.late_retries && e.late_retries > 100,
            "{e:?}"
        );
        check_landed(&kinesis, &sim, simulation(200, 6_000, 0.05, producers));
    }

    #[tokio::test]
    async fn refused_entries_and_failed_calls_are_put_again_without_breaking_order() {
        let producers = ProducerConfig {
            producers: 3,
            retry_share: 0.05,
            retry_distance: RetryDistance { min: 1, max: 300 },
        };
        let mut sim = simulation(20, 1_500, 0.02, producers);
        let kinesis = FakeKinesis {
            refuse_share: 0.05,
            failing_calls: vec![3, 10, 11],
            ..FakeKinesis::new()
        };
        let report = publish(&kinesis, &mut sim, &options(), &mut |_| {})
            .await
            .unwrap();
        assert!(report.retried > 20, "{report:?}");
        check_landed(&kinesis, &sim, simulation(20, 1_500, 0.02, producers));
    }

    #[tokio::test]
    async fn a_record_kinesis_keeps_refusing_stops_every_producer_with_its_key() {
        let producers = ProducerConfig {
            producers: 3,
            ..ProducerConfig::default()
        };
        let mut sim = simulation(5, 500, 0.0, producers);
        let kinesis = FakeKinesis {
            refuse_key: Some("pub-P00002".into()),
            ..FakeKinesis::new()
        };
        let options = PublishOptions {
            max_attempts: 3,
            ..options()
        };
        let e = publish(&kinesis, &mut sim, &options, &mut |_| {})
            .await
            .unwrap_err();
        assert!(
            matches!(&e, PublishError::RecordFailed { partition_key, attempts: 3, .. } if partition_key == "pub-P00002"),
            "{e}"
        );
        assert!(e.to_string().contains("lower --rate"));
    }

    #[test]
    fn the_retry_policy_doubles_with_jitter_and_allows_max_attempts_in_all() {
        let delays: Vec<Duration> = retry_policy(8).build().collect();
        assert_eq!(delays.len(), 7, "8 attempts: the first and 7 retries");
        for (i, d) in delays.iter().enumerate() {
            let base = (Duration::from_millis(50) * 2u32.pow(i as u32)).min(Duration::from_secs(5));
            assert!(
                *d >= base && *d < base * 2,
                "retry {i}: {d:?} from {base:?}"
            );
        }
        // Jitter: two records failing together are not retried in step.
        let again: Vec<Duration> = retry_policy(8).build().collect();
        assert_ne!(delays, again);

        let mut state = None;
        let attempts = std::iter::from_fn(|| next_attempt(&mut state, 3)).count();
        assert_eq!(attempts, 2, "3 attempts in all: 2 after the first failure");
    }

    /// Accepts every entry and notes when each call started and how many entries it held.
    #[derive(Default)]
    struct CountingSink {
        calls: Mutex<Vec<(Instant, usize)>>,
    }

    impl CountingSink {
        fn stored(&self) -> u64 {
            self.calls
                .lock()
                .unwrap()
                .iter()
                .map(|(_, n)| *n as u64)
                .sum()
        }
    }

    impl RecordSink for CountingSink {
        async fn put_records(
            &self,
            _stream: &str,
            entries: Vec<PutEntry>,
        ) -> Result<Vec<Option<EntryError>>, SinkError> {
            self.calls
                .lock()
                .unwrap()
                .push((Instant::now(), entries.len()));
            tokio::task::yield_now().await;
            Ok(vec![None; entries.len()])
        }
    }

    #[tokio::test]
    async fn a_deadline_already_passed_puts_nothing_and_says_so() {
        let mut sim = simulation(20, 1_000, 0.0, ProducerConfig::default());
        let sink = CountingSink::default();
        let options = PublishOptions {
            deadline: Some(Instant::now()),
            ..options()
        };
        let e = publish(&sink, &mut sim, &options, &mut |_| {})
            .await
            .unwrap_err();
        assert_eq!(sink.stored(), 0, "no record may be put after the deadline");
        assert!(
            matches!(
                e,
                PublishError::Deadline {
                    acknowledged: 0,
                    total: 1_000
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("deadline"), "{e}");
    }

    #[tokio::test]
    async fn a_deadline_in_the_middle_of_a_paced_run_stops_publishing_near_it() {
        let producers = ProducerConfig {
            producers: 3,
            retry_share: 0.05,
            retry_distance: RetryDistance { min: 1, max: 50 },
        };
        // 100,000 records at 2,000/s take 50 s; the deadline is 300 ms in.
        let mut sim = simulation(20, 100_000, 0.0, producers);
        let sink = CountingSink::default();
        let deadline = Instant::now() + Duration::from_millis(300);
        let options = PublishOptions {
            rate: Some(2_000.0),
            deadline: Some(deadline),
            ..options()
        };
        let mut last = PublishProgress::default();
        let e = publish(&sink, &mut sim, &options, &mut |p| last = p.clone())
            .await
            .unwrap_err();
        let returned = Instant::now();
        let PublishError::Deadline {
            acknowledged,
            total,
        } = e
        else {
            panic!("expected the deadline to stop the run, got {e}");
        };
        assert_eq!(total, 100_000);
        assert!(acknowledged > 0, "records were due before the deadline");
        assert!(acknowledged < total);
        assert_eq!(
            acknowledged,
            sink.stored(),
            "what is reported is what the sink stored"
        );
        assert_eq!(
            last.acknowledged, acknowledged,
            "the last progress is final"
        );
        // Bounded: a producer looks at the deadline at least every 100 ms and no call here
        // takes long, so nothing starts well after it and the run ends soon after.
        let late = Duration::from_millis(50);
        let calls = sink.calls.lock().unwrap().clone();
        assert!(
            calls.iter().all(|(at, _)| *at <= deadline + late),
            "a call started {:?} after the deadline",
            calls
                .iter()
                .map(|(at, _)| at.saturating_duration_since(deadline))
                .max()
        );
        assert!(
            returned <= deadline + Duration::from_secs(1),
            "publishing went on {:?} past the deadline",
            returned - deadline
        );
    }

    #[tokio::test]
    async fn records_refused_before_the_deadline_are_not_tried_again_after_it() {
        let mut sim = simulation(5, 200, 0.0, ProducerConfig::default());
        let kinesis = FakeKinesis {
            refuse_share: 1.0,
            ..FakeKinesis::new()
        };
        let deadline = Instant::now() + Duration::from_millis(200);
        // Without the deadline, 30 attempts with backoff up to 5 s would take minutes.
        let options = PublishOptions {
            deadline: Some(deadline),
            ..options()
        };
        let e = publish(&kinesis, &mut sim, &options, &mut |_| {})
            .await
            .unwrap_err();
        let returned = Instant::now();
        assert!(
            matches!(
                e,
                PublishError::Deadline {
                    acknowledged: 0,
                    total: 200
                }
            ),
            "{e}"
        );
        assert!(kinesis.landed().is_empty());
        assert!(
            returned <= deadline + Duration::from_secs(1),
            "retries went on {:?} past the deadline",
            returned - deadline
        );
    }

    #[tokio::test]
    async fn a_deadline_after_the_last_record_changes_nothing() {
        let mut sim = simulation(20, 500, 0.0, ProducerConfig::default());
        let sink = CountingSink::default();
        let deadline = Instant::now() + Duration::from_secs(3600);
        let options = PublishOptions {
            deadline: Some(deadline),
            ..options()
        };
        let report = publish(&sink, &mut sim, &options, &mut |_| {})
            .await
            .unwrap();
        assert_eq!(report.records, 500);
        assert_eq!(sink.stored(), 500);
    }

    #[tokio::test]
    async fn a_paced_run_keeps_its_rate() {
        let producers = ProducerConfig {
            producers: 4,
            retry_share: 0.05,
            retry_distance: RetryDistance { min: 1, max: 50 },
        };
        let mut sim = simulation(20, 400, 0.0, producers);
        let kinesis = FakeKinesis::new();
        let options = PublishOptions {
            rate: Some(1_000.0),
            ..options()
        };
        let report = publish(&kinesis, &mut sim, &options, &mut |_| {})
            .await
            .unwrap();
        assert_eq!(report.records, 400);
        assert!(
            report.elapsed >= Duration::from_millis(390),
            "400 records at 1000/s took {:?}",
            report.elapsed
        );
        check_landed(&kinesis, &sim, simulation(20, 400, 0.0, producers));
    }
}
