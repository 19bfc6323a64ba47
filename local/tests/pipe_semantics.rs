//! The local Pipe runner's EventBridge Pipes semantics, observed from a recording target
//! over the real Kinesis emulator.

use inventory_testkit as harness;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use harness::*;
use inventory_domain::{BatchItemFailure, BatchResponse, PipeRecord, SequenceNumber};
use inventory_local::pipe::{
    wall_us, BoxFuture, InvokeTiming, PipeHandle, PipeStats, Target, TargetError,
};
use inventory_local::pipe_settings::PipeSettings;

#[derive(Default)]
struct Log {
    /// Every invocation: shard and the records' data.
    invocations: Vec<(String, Vec<String>)>,
    in_flight: HashMap<String, usize>,
    max_in_flight: usize,
    /// data strings that already failed once (for fail-once behaviour).
    failed_once: HashSet<String>,
}

/// A target that records what it gets and fails on request: a record whose data starts
/// with "poison" fails every invocation containing it; "fail-once" is reported as a batch
/// item failure the first time; "bogus-id" makes the response name an unknown record once.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Log>>);

fn data_of(r: &PipeRecord) -> String {
    use base64::Engine as _;
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(&r.data)
            .unwrap(),
    )
    .unwrap()
}

impl Target for Recorder {
    fn invoke(&self, payload: Vec<u8>) -> BoxFuture<'static, Result<Vec<u8>, TargetError>> {
        let log = self.0.clone();
        Box::pin(async move {
            let records: Vec<PipeRecord> =
                serde_json::from_slice(&payload).map_err(TargetError::function)?;
            let shard = records[0].shard_id().to_owned();
            {
                let mut l = log.lock().unwrap();
                let n = l.in_flight.entry(shard.clone()).or_default();
                *n += 1;
                let n = *n;
                l.max_in_flight = l.max_in_flight.max(n);
                l.invocations
                    .push((shard.clone(), records.iter().map(data_of).collect()));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
            let mut l = log.lock().unwrap();
            *l.in_flight.get_mut(&shard).unwrap() -= 1;
            let mut response = BatchResponse::default();
            for r in &records {
                let d = data_of(r);
                if d.starts_with("poison") {
                    return Err(TargetError::function("poisoned"));
                }
                if (d.starts_with("fail-once") || d.starts_with("bogus-id"))
                    && l.failed_once.insert(d.clone())
                {
                    let item_identifier = if d.starts_with("bogus-id") {
                        "shardId-999:1".to_owned()
                    } else {
                        r.event_id.clone()
                    };
                    response
                        .batch_item_failures
                        .push(BatchItemFailure { item_identifier });
                    break;
                }
            }
            Ok(serde_json::to_vec(&response).unwrap())
        })
    }
}

impl Recorder {
    fn invocations(&self) -> Vec<(String, Vec<String>)> {
        self.0.lock().unwrap().invocations.clone()
    }
}

async fn run_pipe(s: &Stack, target: &Recorder, settings: PipeSettings) -> PipeHandle {
    let mut runner = s.pipe_runner(settings, Arc::new(target.clone()));
    runner.min_backoff = Duration::from_millis(1);
    runner.spawn()
}

/// Waits (bounded) until the invocations so far satisfy `done`; a passing run takes well
/// under a second, a slow CI machine several.
async fn wait_for_invocations(
    target: &Recorder,
    what: &str,
    mut done: impl FnMut(&[(String, Vec<String>)]) -> bool,
) {
    let waited = try_wait_for(PATIENCE, || {
        let held = done(&target.invocations());
        async move { held.then_some(()) }
    })
    .await;
    if waited.is_none() {
        panic!(
            "timed out after {PATIENCE:?} waiting for {what}; invocations: {:?}",
            target.invocations()
        );
    }
}

#[tokio::test]
async fn batches_respect_batch_size_shard_order_and_one_batch_per_shard() {
    let s = stack(3).await;
    for i in 0..400 {
        s.put(&format!("key-{}", i % 17), format!("r{i:04}")).await;
    }
    let stream = s.read_all().await;
    let target = Recorder::default();
    let pipe = run_pipe(
        &s,
        &target,
        PipeSettings {
            batch_size: 37,
            maximum_batching_window_in_seconds: 0,
            ..Default::default()
        },
    )
    .await;
    wait_for_invocations(&target, "the 400 records", |inv| {
        inv.iter().map(|(_, r)| r.len()).sum::<usize>() >= 400
    })
    .await;
    pipe.stop().await.unwrap();

    let mut delivered: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (shard, records) in target.invocations() {
        assert!(!records.is_empty() && records.len() <= 37);
        delivered.entry(shard).or_default().extend(records);
    }
    for (shard, records) in stream {
        let want: Vec<String> = records.iter().map(data_of).collect();
        assert_eq!(
            delivered.remove(&shard).unwrap_or_default(),
            want,
            "{shard}"
        );
        let seqs: Vec<SequenceNumber> = records
            .iter()
            .map(|r| SequenceNumber::parse(&r.sequence_number).unwrap())
            .collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    }
    assert_eq!(target.0.lock().unwrap().max_in_flight, 1);
}

#[tokio::test]
async fn the_batching_window_gathers_a_partial_batch() {
    let s = stack(1).await;
    let target = Recorder::default();
    let pipe = run_pipe(
        &s,
        &target,
        PipeSettings {
            batch_size: 1000,
            maximum_batching_window_in_seconds: 2,
            ..Default::default()
        },
    )
    .await;
    for i in 0..10 {
        s.put("k", format!("w{i}")).await;
    }
    wait_for_invocations(&target, "an invocation", |inv| !inv.is_empty()).await;
    pipe.stop().await.unwrap();
    let inv = target.invocations();
    assert_eq!(inv.len(), 1, "{inv:?}");
    assert_eq!(inv[0].1.len(), 10);
}

#[tokio::test]
async fn a_batch_item_failure_retries_from_that_record_only() {
    let s = stack(1).await;
    for d in ["a", "b", "fail-once", "c", "d"] {
        s.put("k", d).await;
    }
    let target = Recorder::default();
    let pipe = run_pipe(
        &s,
        &target,
        PipeSettings {
            maximum_batching_window_in_seconds: 1,
            ..Default::default()
        },
    )
    .await;
    wait_for_invocations(&target, "the redelivery", |inv| inv.len() >= 2).await;
    pipe.stop().await.unwrap();
    let inv: Vec<Vec<String>> = target.invocations().into_iter().map(|(_, r)| r).collect();
    assert_eq!(inv[0], ["a", "b", "fail-once", "c", "d"]);
    assert_eq!(
        inv[1],
        ["fail-once", "c", "d"],
        "redelivered from the failed record"
    );
    assert_eq!(inv.len(), 2);
}

#[tokio::test]
async fn an_unknown_item_identifier_fails_the_whole_batch() {
    let s = stack(1).await;
    for d in ["a", "bogus-id", "c"] {
        s.put("k", d).await;
    }
    let target = Recorder::default();
    let pipe = run_pipe(
        &s,
        &target,
        PipeSettings {
            maximum_batching_window_in_seconds: 1,
            ..Default::default()
        },
    )
    .await;
    wait_for_invocations(&target, "the whole batch again", |inv| {
        inv.iter().map(|(_, r)| r.len()).sum::<usize>() >= 6
    })
    .await;
    pipe.stop().await.unwrap();
    let all: Vec<String> = target
        .invocations()
        .into_iter()
        .flat_map(|(_, r)| r)
        .collect();
    // "a" came again: nothing of the batch counted as done.
    assert_eq!(all.iter().filter(|d| *d == "a").count(), 2, "{all:?}");
}

#[tokio::test]
async fn a_poison_record_is_bisected_out_and_dead_lettered_and_the_shard_moves_on() {
    let s = stack(1).await;
    for i in 0..40 {
        let d = if i == 21 {
            "poison".to_owned()
        } else {
            format!("ok{i:02}")
        };
        s.put("k", d).await;
    }
    let target = Recorder::default();
    let pipe = run_pipe(
        &s,
        &target,
        PipeSettings {
            maximum_batching_window_in_seconds: 1,
            maximum_retry_attempts: 2,
            ..Default::default()
        },
    )
    .await;
    let dlq = wait_for("the poison's dead letter", PATIENCE, || async {
        let d = s.dead_letters().await;
        (!d.is_empty()).then_some(d)
    })
    .await;
    s.put("k", "after").await;
    wait_for_invocations(&target, "the record put after the poison", |inv| {
        inv.iter().any(|(_, r)| r == &["after"])
    })
    .await;
    let stats = pipe.stats.snapshot();
    pipe.stop().await.unwrap();

    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0]["KinesisBatchInfo"]["batchSize"], 1);
    let stream = s.read_one_shard().await;
    assert_eq!(
        dlq[0]["KinesisBatchInfo"]["startSequenceNumber"],
        stream[21].sequence_number.as_str()
    );
    // Every good record got through; the poison was tried 1 + 2 times alone.
    let succeeded: HashSet<String> = target
        .invocations()
        .into_iter()
        .filter(|(_, r)| !r.iter().any(|d| d == "poison"))
        .flat_map(|(_, r)| r)
        .collect();
    assert_eq!(succeeded.len(), 40);
    let alone = target
        .invocations()
        .iter()
        .filter(|(_, r)| r == &["poison"])
        .count();
    assert_eq!(alone, 3);
    assert!(stats.bisections > 0 && stats.dead_lettered == 1);
}

#[tokio::test]
async fn a_checkpoint_of_a_stream_that_no_longer_exists_stops_the_pipe_with_a_reason() {
    let s = stack(1).await;
    s.put("k", "one").await;
    let target = Recorder::default();
    let pipe = run_pipe(&s, &target, PipeSettings::default()).await;
    wait_for_invocations(&target, "an invocation", |inv| !inv.is_empty()).await;
    wait_until("a checkpoint", PATIENCE, || {
        stat(&pipe, |s| &s.checkpoints) > 0
    })
    .await;
    pipe.stop().await.unwrap();

    // The stream is replaced; the table keeps the old checkpoint. The pipe tells the two
    // apart by their creation time, which the emulator stamps to the second (and 2 s
    // early): a stream created again too soon looks like the old one, so it is created
    // again until its creation time differs.
    let created = || async {
        s.kinesis
            .describe_stream_summary()
            .stream_name(&s.stream)
            .send()
            .await
            .unwrap()
            .stream_description_summary()
            .unwrap()
            .stream_creation_timestamp()
            .secs()
    };
    let old = created().await;
    wait_until_async(
        "the stream created again to get a new creation time",
        PATIENCE,
        || async {
            delete_stream(&s.kinesis, &s.stream).await;
            inventory_local::kinesis::ensure_stream(&s.kinesis, &s.stream, 1)
                .await
                .unwrap();
            let renewed = created().await != old;
            if !renewed {
                // The creation time moves on with the clock's next second, not sooner.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            renewed
        },
    )
    .await;
    let err = run_pipe(&s, &target, PipeSettings::default())
        .await
        .stop()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("out of step"), "{err}");
}

// ---------------------------------------------------------------- record age

/// How old [`AgingProxy`] makes the records marked `old-`: two hours.
const OLD: Duration = Duration::from_secs(2 * 3600);

/// Puts five records marked `old-` and starts a Pipe reading them through an
/// [`AgingProxy`] that makes them [`OLD`], with the given MaximumRecordAgeInSeconds.
/// Returns the pipe and the five records' sequence numbers.
async fn pipe_over_old_records(
    s: &Stack,
    target: &Recorder,
    maximum_record_age_in_seconds: i32,
) -> (PipeHandle, Vec<String>) {
    let mut old = Vec::new();
    for i in 0..5 {
        old.push(s.put("k", format!("old-{i}")).await);
    }
    let aging = AgingProxy::start(s.aws.endpoint(), "old-", OLD).await;
    let mut runner = s.pipe_runner_reading_with(
        aging.kinesis_client(),
        PipeSettings {
            maximum_batching_window_in_seconds: 0,
            maximum_record_age_in_seconds,
            ..Default::default()
        },
        Arc::new(target.clone()),
    );
    runner.min_backoff = Duration::from_millis(1);
    (runner.spawn(), old)
}

/// MaximumRecordAgeInSeconds: records that arrived in Kinesis longer ago than the maximum
/// age are not delivered; their batch goes to the dead-letter queue with that reason, and
/// the shard moves on to what comes next.
#[tokio::test]
async fn records_older_than_the_maximum_age_are_dead_lettered_not_delivered() {
    let s = stack(1).await;
    let target = Recorder::default();
    let (pipe, old) = pipe_over_old_records(&s, &target, 3600).await;
    wait_until("the five old records to be dead-lettered", PATIENCE, || {
        stat(&pipe, |s| &s.dead_lettered) == 5
    })
    .await;
    s.put("k", "fresh").await;
    // Counted once the target has answered, so nothing of it is still in flight.
    wait_until("the fresh record to be delivered", PATIENCE, || {
        stat(&pipe, |s| &s.records_delivered) == 1
    })
    .await;
    let stats = pipe.stats.snapshot();
    pipe.stop().await.unwrap();

    let delivered: Vec<String> = target
        .invocations()
        .into_iter()
        .flat_map(|(_, r)| r)
        .collect();
    assert_eq!(
        delivered,
        ["fresh"],
        "only the fresh record reached the target"
    );
    assert_eq!((stats.dead_lettered, stats.records_delivered), (5, 1));
    let dlq = s.dead_letters().await;
    assert!(!dlq.is_empty());
    for letter in &dlq {
        assert_eq!(
            letter["reason"], "MaximumRecordAgeInSeconds exceeded",
            "{letter}"
        );
    }
    let info = |i: usize, field: &str| dlq[i]["KinesisBatchInfo"][field].clone();
    let sizes: Vec<u64> = (0..dlq.len())
        .map(|i| info(i, "batchSize").as_u64().unwrap())
        .collect();
    assert_eq!(sizes.iter().sum::<u64>(), 5, "{dlq:?}");
    assert_eq!(info(0, "startSequenceNumber"), old[0].as_str());
    assert_eq!(info(dlq.len() - 1, "endSequenceNumber"), old[4].as_str());
}

/// The same two-hour-old records within a three-hour maximum age are delivered: the age
/// is compared with the maximum, not merely read.
#[tokio::test]
async fn records_younger_than_the_maximum_age_are_delivered() {
    let s = stack(1).await;
    let target = Recorder::default();
    let (pipe, _) = pipe_over_old_records(&s, &target, 3 * 3600).await;
    wait_until("the five old records to be delivered", PATIENCE, || {
        stat(&pipe, |s| &s.records_delivered) == 5
    })
    .await;
    let stats = pipe.stats.snapshot();
    pipe.stop().await.unwrap();
    assert_eq!((stats.dead_lettered, stats.records_delivered), (0, 5));
    assert!(s.dead_letters().await.is_empty());
}

/// Kinesis makes a record readable only in sequence order: a consumer never sees a later
/// record of a shard before an earlier one, so moving its iterator past what it read skips
/// nothing. The embedded emulator numbers a put before storing it, so producers racing on a
/// shard broke that (challenges.md §15) until the local endpoint serialised puts. A reader
/// tailing the shard as fast as it can catches the race within a few hundred puts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reader_tailing_a_shard_sees_every_record_of_concurrent_producers() {
    use std::sync::atomic::AtomicBool;
    const PRODUCERS: usize = 8;
    const PUTS: usize = 100;
    const RECORDS: usize = 5;
    let s = stack(1).await;
    let shard = inventory_local::kinesis::shard_ids(&s.kinesis, &s.stream)
        .await
        .unwrap()
        .remove(0);
    let done = Arc::new(AtomicBool::new(false));
    let reader = tokio::spawn(tail_shard_until(
        s.kinesis.clone(),
        s.stream.clone(),
        shard,
        done.clone(),
    ));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let (kinesis, stream) = (s.kinesis.clone(), s.stream.clone());
            tokio::spawn(async move {
                for i in 0..PUTS {
                    let data = (0..RECORDS).map(|r| format!("p{p}-{i:04}-{r}"));
                    put_records(&kinesis, &stream, &format!("producer-{p}"), data).await;
                }
            })
        })
        .collect();
    for p in producers {
        p.await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    wait_until("the reader to catch up", PATIENCE, || reader.is_finished()).await;
    let seen = reader.await.unwrap();

    let stored: Vec<String> = s.read_one_shard().await.iter().map(data_of).collect();
    assert_eq!(stored.len(), PRODUCERS * PUTS * RECORDS);
    let seen_set: HashSet<&String> = seen.iter().collect();
    let missing: Vec<&String> = stored.iter().filter(|d| !seen_set.contains(d)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} stored records were never returned to a reader that tailed the shard, e.g. {:?}",
        missing.len(),
        stored.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(seen, stored, "read in the shard's order");
}

/// Reads `shard` from its start as fast as it can, and returns every record's data once
/// `done` is set and a read after it comes back empty (caught up).
async fn tail_shard_until(
    kinesis: aws_sdk_kinesis::Client,
    stream: String,
    shard: String,
    done: Arc<std::sync::atomic::AtomicBool>,
) -> Vec<String> {
    use aws_sdk_kinesis::types::ShardIteratorType;
    let mut iterator = kinesis
        .get_shard_iterator()
        .stream_name(&stream)
        .shard_id(&shard)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap()
        .shard_iterator
        .unwrap();
    let mut seen = Vec::new();
    // Bounded by the caller, which waits for this task with the harness's patience.
    loop {
        // Read `done` before the call: an empty read after it means caught up.
        let finished = done.load(Ordering::SeqCst);
        let resp = kinesis
            .get_records()
            .shard_iterator(&iterator)
            .send()
            .await
            .unwrap();
        seen.extend(
            resp.records()
                .iter()
                .map(|r| String::from_utf8_lossy(r.data().as_ref()).into_owned()),
        );
        if finished && resp.records().is_empty() {
            return seen;
        }
        iterator = resp.next_shard_iterator.unwrap();
    }
}

/// One PutRecords call of `data` under one partition key; every record is accepted.
async fn put_records(
    kinesis: &aws_sdk_kinesis::Client,
    stream: &str,
    key: &str,
    data: impl Iterator<Item = String>,
) {
    use aws_sdk_kinesis::types::PutRecordsRequestEntry;
    let entries = data.map(|d| {
        PutRecordsRequestEntry::builder()
            .partition_key(key)
            .data(d.into_bytes().into())
            .build()
            .unwrap()
    });
    let out = kinesis
        .put_records()
        .stream_name(stream)
        .set_records(Some(entries.collect()))
        .send()
        .await
        .unwrap();
    assert_eq!(out.failed_record_count(), Some(0));
}

// ---------------------------------------------------------------- resharding

/// One invocation a [`HeldTarget`] let through: the shard and its records' (partition key, data).
#[derive(Debug, Clone)]
struct Delivery {
    shard: String,
    records: Vec<(String, String)>,
}

/// A target that records every invocation in the order they began and can be held shut,
/// so a test can reshard while the pipe still has records of the parent shards to deliver.
#[derive(Clone)]
struct HeldTarget {
    log: Arc<Mutex<Vec<Delivery>>>,
    open: Arc<tokio::sync::watch::Sender<bool>>,
}

impl HeldTarget {
    fn new() -> Self {
        Self {
            log: Arc::default(),
            open: Arc::new(tokio::sync::watch::Sender::new(true)),
        }
    }

    fn hold(&self) {
        self.open.send_replace(false);
    }

    fn release(&self) {
        self.open.send_replace(true);
    }

    fn deliveries(&self) -> Vec<Delivery> {
        self.log.lock().unwrap().clone()
    }

    fn delivered(&self) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .map(|d| d.records.len())
            .sum()
    }

    /// Each partition key's data in the order the target got them.
    fn by_key(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for d in self.deliveries() {
            for (key, data) in d.records {
                out.entry(key).or_default().push(data);
            }
        }
        out
    }
}

impl Target for HeldTarget {
    fn invoke(&self, payload: Vec<u8>) -> BoxFuture<'static, Result<Vec<u8>, TargetError>> {
        let (log, mut open) = (self.log.clone(), self.open.subscribe());
        Box::pin(async move {
            // The sender lives as long as the target, which the pipe holds.
            let _ = open.wait_for(|open| *open).await;
            let records: Vec<PipeRecord> =
                serde_json::from_slice(&payload).map_err(TargetError::function)?;
            let shard = records[0].shard_id().to_owned();
            let records = records
                .iter()
                .map(|r| (r.partition_key.clone(), data_of(r)))
                .collect();
            log.lock().unwrap().push(Delivery { shard, records });
            Ok(br#"{"batchItemFailures":[]}"#.to_vec())
        })
    }
}

fn gated_pipe(s: &Stack, target: &HeldTarget, settings: PipeSettings) -> PipeHandle {
    let mut runner = s.pipe_runner(settings, Arc::new(target.clone()));
    runner.min_backoff = Duration::from_millis(1);
    // Fast, so a test does not wait out the 1 s default for each generation of shards.
    runner.shard_listing_interval = Duration::from_millis(50);
    runner.spawn()
}

fn stat(pipe: &PipeHandle, counter: fn(&PipeStats) -> &AtomicU64) -> u64 {
    counter(&pipe.stats).load(Ordering::SeqCst)
}

/// Puts records with PutRecords, 500 at most a call, each (partition key, data, explicit
/// hash key). A key appears at most once a call, so its records are stored in the order
/// they are given.
async fn put_all(s: &Stack, records: &[(String, String, Option<u128>)]) {
    use aws_sdk_kinesis::primitives::Blob;
    use aws_sdk_kinesis::types::PutRecordsRequestEntry;
    let mut calls: Vec<Vec<PutRecordsRequestEntry>> = Vec::new();
    let mut keys_in_last: HashSet<&str> = HashSet::new();
    for (key, data, hash) in records {
        if calls.is_empty() || calls.last().unwrap().len() == 500 || !keys_in_last.insert(key) {
            calls.push(Vec::new());
            keys_in_last = HashSet::from([key.as_str()]);
        }
        let entry = PutRecordsRequestEntry::builder()
            .partition_key(key)
            .data(Blob::new(data.clone()))
            .set_explicit_hash_key(hash.map(|h| h.to_string()))
            .build()
            .unwrap();
        calls.last_mut().unwrap().push(entry);
    }
    s.put_calls(calls).await;
}

/// One round: `per_key` records for each key, interleaved across keys, appended to `put`.
async fn publish_round(
    s: &Stack,
    round: usize,
    keys: &[(String, Option<u128>)],
    per_key: usize,
    put: &mut Vec<(String, String)>,
) {
    let mut records = Vec::new();
    for i in 0..per_key {
        for (key, hash) in keys {
            records.push((key.clone(), format!("{key}/r{round}/{i:03}"), *hash));
        }
    }
    put_all(s, &records).await;
    put.extend(records.into_iter().map(|(k, d, _)| (k, d)));
}

fn by_key(put: &[(String, String)]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, data) in put {
        out.entry(key.clone()).or_default().push(data.clone());
    }
    out
}

/// Every record delivered once and each partition key's in the order they were put;
/// otherwise names the first key that differs and where.
fn assert_delivered_as_put(target: &HeldTarget, put: &[(String, String)]) {
    let (got, want) = (target.by_key(), by_key(put));
    for (key, want) in &want {
        let got = got.get(key).map(Vec::as_slice).unwrap_or_default();
        if got != want.as_slice() {
            let at = got
                .iter()
                .zip(want)
                .position(|(g, w)| g != w)
                .unwrap_or(got.len().min(want.len()));
            panic!(
                "{key}: {} records delivered, {} put; they first differ at #{at}: delivered {:?}, put {:?}",
                got.len(),
                want.len(),
                got.get(at),
                want.get(at)
            );
        }
    }
    let unknown: Vec<&String> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(unknown.is_empty(), "delivered keys never put: {unknown:?}");
}

/// Kinesis on-demand reshards by itself under load. Records flow while the stream goes
/// 4 → 8 (UpdateShardCount), splits one shard, merges two, and goes back to 4; before each
/// reshard the target is held, so the parents still have records to deliver when their
/// children fill up. Every record arrives once, each key's in the order they were put, and
/// no shard's first delivery comes before the last of an older shard covering some of the
/// same hash keys (its parents, or ancestors further back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reshard_under_load_delivers_every_record_once_in_order_parents_first() {
    const KEYS: usize = 64;
    const PER_KEY: usize = 8;
    let s = stack(4).await;
    let target = HeldTarget::new();
    let pipe = gated_pipe(
        &s,
        &target,
        PipeSettings {
            batch_size: 25,
            maximum_batching_window_in_seconds: 0,
            ..Default::default()
        },
    );
    let keys: Vec<(String, Option<u128>)> =
        (0..KEYS).map(|k| (format!("key-{k:02}"), None)).collect();
    let mut put = Vec::new();
    publish_round(&s, 0, &keys, PER_KEY, &mut put).await;
    let steps = [
        Reshard::Count(8),
        Reshard::SplitFirst,
        Reshard::MergeFirst,
        Reshard::Count(4),
    ];
    for (i, step) in steps.into_iter().enumerate() {
        target.hold();
        publish_round(&s, 2 * i + 1, &keys, PER_KEY, &mut put).await;
        reshard(&s.kinesis, &s.stream, step).await;
        publish_round(&s, 2 * i + 2, &keys, PER_KEY, &mut put).await;
        target.release();
    }
    wait_until("every record is delivered", PATIENCE, || {
        target.delivered() >= put.len()
    })
    .await;
    let shards = listed(&s.kinesis, &s.stream).await;
    let closed = shards.iter().filter(|l| l.closed).count() as u64;
    assert_eq!(closed, 15, "4 + 8 + split 1 + merge 2 closed: {shards:#?}");
    wait_until("every closed shard is finished", PATIENCE, || {
        assert!(!pipe.is_finished(), "the pipe ended by itself");
        stat(&pipe, |s| &s.shards_finished) == closed
            && stat(&pipe, |s| &s.shards_started) == shards.len() as u64
    })
    .await;

    // Nothing lost, nothing twice, each key in put order.
    assert_eq!(target.delivered(), put.len());
    assert_delivered_as_put(&target, &put);
    assert_parents_delivered_before_children(&target, &shards);
    assert!(
        shards.iter().any(|l| l.adjacent_parent.is_some())
            && shards.iter().any(|l| l.parent.is_some()),
        "split and merge children were followed: {shards:#?}"
    );
    assert!(!pipe.is_finished(), "the pipe is still running");
    pipe.stop().await.unwrap();
}

/// Parents before children: every older shard overlapping a newer one in hash keys was
/// delivered to its end before the newer one's first delivery (checked for 20 pairs at
/// least).
fn assert_parents_delivered_before_children(target: &HeldTarget, shards: &[Listed]) {
    let deliveries = target.deliveries();
    let (mut first, mut last) = (HashMap::new(), HashMap::new());
    for (i, d) in deliveries.iter().enumerate() {
        first.entry(d.shard.clone()).or_insert(i);
        last.insert(d.shard.clone(), i);
    }
    let mut checked = 0;
    for older in shards {
        for newer in shards
            .iter()
            .filter(|n| n.number > older.number && n.overlaps(older))
        {
            if let (Some(&end), Some(&begin)) = (last.get(&older.id), first.get(&newer.id)) {
                assert!(
                    end < begin,
                    "{} was delivered (invocation {begin}) before {} was done (invocation {end})",
                    newer.id,
                    older.id
                );
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 20,
        "only {checked} parent/child pairs had deliveries"
    );
}

/// The reported bug: `UpdateShardCount` on a running pipe with no events flowing made it
/// end (every shard task ended once its shard closed), and with it `inventory-local up`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reshard_with_no_events_flowing_does_not_end_the_pipe() {
    let s = stack(4).await;
    let target = HeldTarget::new();
    let pipe = gated_pipe(&s, &target, PipeSettings::default());
    wait_until("the four shards are read", PATIENCE, || {
        stat(&pipe, |s| &s.shards_started) == 4
    })
    .await;
    reshard(&s.kinesis, &s.stream, Reshard::Count(8)).await;
    wait_until(
        "the 4 closed shards are finished and the 8 new ones read",
        PATIENCE,
        || {
            assert!(!pipe.is_finished(), "the pipe ended by itself");
            stat(&pipe, |s| &s.shards_finished) == 4 && stat(&pipe, |s| &s.shards_started) == 12
        },
    )
    .await;
    // It keeps listing and running with nothing to do...
    let listings = stat(&pipe, |s| &s.shard_listings);
    wait_until("two more listings", PATIENCE, || {
        assert!(!pipe.is_finished(), "the pipe ended by itself");
        stat(&pipe, |s| &s.shard_listings) >= listings + 2
    })
    .await;
    // ...and delivers what comes next, from the new shards.
    s.put("after-the-reshard", "hello").await;
    wait_until("the new record is delivered", PATIENCE, || {
        target.delivered() == 1
    })
    .await;
    let shard = target.deliveries()[0].shard.clone();
    assert!(
        inventory_local::kinesis::shard_number(&shard).unwrap() >= 4,
        "{shard}"
    );
    assert!(!pipe.is_finished());
    pipe.stop().await.unwrap();
}

/// Stopped after a reshard and started again, the pipe does not read its finished parents
/// again, resumes the children from their checkpoints, and starts a child that has none
/// yet from its first record although the pipe starts at LATEST: it holds only records
/// newer than its parents', which the pipe delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_after_a_reshard_skips_finished_parents_and_resumes_the_children() {
    const PER_KEY: usize = 5;
    let s = stack(2).await;
    let settings = PipeSettings {
        batch_size: 10,
        maximum_batching_window_in_seconds: 0,
        starting_position: "LATEST".into(),
        ..Default::default()
    };
    let first = HeldTarget::new();
    let pipe = gated_pipe(&s, &first, settings.clone());
    wait_until("both shards are read from LATEST", PATIENCE, || {
        stat(&pipe, |s| &s.shards_started) == 2
    })
    .await;
    let mut before = Vec::new();
    publish_round(&s, 0, &keys_in(&[0, 1, 2, 3]), PER_KEY, &mut before).await;
    let children = split_both_shards_into_quarters(&s).await;
    // Only the first and third children get records before the restart.
    publish_round(&s, 1, &keys_in(&[0, 2]), PER_KEY, &mut before).await;
    wait_until(
        "the first run delivered everything and finished both parents",
        PATIENCE,
        || first.delivered() == before.len() && stat(&pipe, |s| &s.shards_finished) == 2,
    )
    .await;
    pipe.stop().await.unwrap();
    assert_delivered_as_put(&first, &before);

    let mut after = Vec::new();
    publish_round(&s, 2, &keys_in(&[0, 1, 2, 3]), PER_KEY, &mut after).await;
    let second = HeldTarget::new();
    let pipe = gated_pipe(&s, &second, settings);
    wait_until("the four children are read", PATIENCE, || {
        stat(&pipe, |s| &s.shards_started) == 4
    })
    .await;
    publish_round(&s, 3, &keys_in(&[0, 1, 2, 3]), PER_KEY, &mut after).await;
    wait_until(
        "the second run delivered what was put since the first",
        PATIENCE,
        || second.delivered() >= after.len(),
    )
    .await;
    // A few more listings: the finished parents are never started again.
    let listings = stat(&pipe, |s| &s.shard_listings);
    wait_until("two more listings", PATIENCE, || {
        stat(&pipe, |s| &s.shard_listings) >= listings + 2
    })
    .await;
    // Nothing of the first run again, nothing lost.
    assert_delivered_as_put(&second, &after);
    assert!(second
        .deliveries()
        .iter()
        .all(|d| children.contains(&d.shard)));
    assert_eq!(stat(&pipe, |s| &s.shards_started), 4);
    assert_eq!(stat(&pipe, |s| &s.shards_finished), 0);
    assert!(!pipe.is_finished());
    pipe.stop().await.unwrap();
}

/// A quarter of the hash-key space.
const QUARTER: u128 = u128::MAX / 4 + 1;

/// Six keys pinned to each of the given quarters of the hash-key space, which
/// [`split_both_shards_into_quarters`] makes the four children.
fn keys_in(quarters: &[u128]) -> Vec<(String, Option<u128>)> {
    quarters
        .iter()
        .flat_map(|&q| (0..6u128).map(move |k| (format!("q{q}-key{k}"), Some(q * QUARTER + k + 1))))
        .collect()
}

/// Splits both shards of a two-shard stream in the middle of their ranges, so each child
/// covers a quarter of the hash keys; returns the four children.
async fn split_both_shards_into_quarters(s: &Stack) -> Vec<String> {
    for shard in ["shardId-000000000000", "shardId-000000000001"] {
        let start = listed(&s.kinesis, &s.stream)
            .await
            .into_iter()
            .find(|l| l.id == shard)
            .unwrap()
            .range
            .0;
        s.kinesis
            .split_shard()
            .stream_name(&s.stream)
            .shard_to_split(shard)
            .new_starting_hash_key((start + QUARTER).to_string())
            .send()
            .await
            .unwrap();
        wait_until_async("the stream to be ACTIVE", PATIENCE, || {
            is_active(&s.kinesis, &s.stream)
        })
        .await;
    }
    let children: Vec<String> = open_shards(&s.kinesis, &s.stream)
        .await
        .into_iter()
        .map(|l| l.id)
        .collect();
    assert_eq!(children.len(), 4);
    children
}

/// Puts a record at each end of every open shard's hash-key range, keeping their sequence
/// numbers by shard.
async fn put_in_each_open_shard(s: &Stack, records: &mut HashMap<String, Vec<SequenceNumber>>) {
    for l in open_shards(&s.kinesis, &s.stream).await {
        for hash in [l.range.0, l.range.1] {
            let out = s
                .kinesis
                .put_record()
                .stream_name(&s.stream)
                .partition_key("k")
                .explicit_hash_key(hash.to_string())
                .data(aws_sdk_kinesis::primitives::Blob::new("x"))
                .send()
                .await
                .unwrap();
            assert_eq!(out.shard_id(), l.id);
            records
                .entry(l.id.clone())
                .or_default()
                .push(SequenceNumber::parse(out.sequence_number()).unwrap());
        }
    }
}

/// A pipe that starts at LATEST on a stream resharded before it started delivers only
/// what is put after it started: a shard already closed holds only older records, and so
/// do the first records of its children, which start at LATEST like any open shard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipe_starting_at_latest_after_a_reshard_delivers_only_newer_records() {
    let s = stack(2).await;
    let keys: Vec<(String, Option<u128>)> = (0..16).map(|k| (format!("key-{k}"), None)).collect();
    let mut old = Vec::new();
    publish_round(&s, 0, &keys, 3, &mut old).await;
    reshard(&s.kinesis, &s.stream, Reshard::SplitFirst).await;
    publish_round(&s, 1, &keys, 3, &mut old).await;

    let target = HeldTarget::new();
    let pipe = gated_pipe(
        &s,
        &target,
        PipeSettings {
            maximum_batching_window_in_seconds: 0,
            starting_position: "LATEST".into(),
            ..Default::default()
        },
    );
    // The three open shards; the closed one is not read at all.
    wait_until("the open shards are read from LATEST", PATIENCE, || {
        stat(&pipe, |s| &s.shards_started) == 3
    })
    .await;
    let mut new = Vec::new();
    publish_round(&s, 2, &keys, 3, &mut new).await;
    wait_until("the new records are delivered", PATIENCE, || {
        target.delivered() >= new.len()
    })
    .await;
    assert_delivered_as_put(&target, &new);
    assert_eq!(stat(&pipe, |s| &s.shards_started), 3);
    assert_eq!(stat(&pipe, |s| &s.shards_finished), 0);
    pipe.stop().await.unwrap();
}

/// What the local Kinesis (ferrokinesis 0.7 behind the local endpoint) does across a
/// reshard, which the Pipe and the processor build on:
/// - a child's shard number is greater than its parents' (a new shard is numbered after
///   every shard the stream has had), for split, merge and UpdateShardCount alike;
/// - SplitShard and MergeShards record the lineage, and so does UpdateShardCount: the local
///   endpoint scales by splits and merges as Kinesis does (ferrokinesis' own would list its
///   new shards without parents);
/// - a sequence number starts with its shard's creation second, then the last hex digit
///   of the shard number, then the shard's record counter. A child's records are greater
///   than its parents' when it was created in a later second, or in the same second with
///   a greater last hex digit, which is so for the shards 0-15 here but NOT in general:
///   a shard 16 created in the same second as its parent 15 numbers its records below the
///   parent's (shown at the end with the emulator's own encoder).
#[tokio::test]
async fn ferrokinesis_numbers_children_after_their_parents_and_what_that_means_for_sequence_numbers(
) {
    let s = stack(2).await;
    let mut records = HashMap::new();
    put_in_each_open_shard(&s, &mut records).await;
    for step in [Reshard::SplitFirst, Reshard::MergeFirst, Reshard::Count(4)] {
        reshard(&s.kinesis, &s.stream, step).await;
        put_in_each_open_shard(&s, &mut records).await;
    }
    let shards = listed(&s.kinesis, &s.stream).await;
    let by_id: HashMap<&str, &Listed> = shards.iter().map(|l| (l.id.as_str(), l)).collect();
    assert_split_merge_and_count_record_their_parents(&shards, &by_id);
    assert_children_numbered_and_sequenced_after_parents(&s, &by_id, &records).await;
    assert_sequence_numbers_follow_creation_second_and_shard_digit(&shards, &records);
}

/// The lineage each reshard records, and UpdateShardCount's uniform scaling.
fn assert_split_merge_and_count_record_their_parents(
    shards: &[Listed],
    by_id: &HashMap<&str, &Listed>,
) {
    // Split: shard 0 → 2 and 3, parent recorded.
    for child in ["shardId-000000000002", "shardId-000000000003"] {
        assert_eq!(by_id[child].parent.as_deref(), Some("shardId-000000000000"));
        assert_eq!(by_id[child].adjacent_parent, None);
    }
    // Merge: 2 + 3 → 4, both parents recorded.
    let merged = by_id["shardId-000000000004"];
    assert_eq!(merged.parent.as_deref(), Some("shardId-000000000002"));
    assert_eq!(
        merged.adjacent_parent.as_deref(),
        Some("shardId-000000000003")
    );
    // UpdateShardCount to 4: shard 4 split at a quarter of the hash keys, shard 1 at three
    // quarters, each child naming its parent.
    let counted: Vec<&Listed> = shards.iter().filter(|l| l.number >= 5).collect();
    assert_eq!(counted.len(), 4);
    assert!(counted
        .iter()
        .all(|l| l.parent.is_some() && l.adjacent_parent.is_none()));
    let quarter = 1u128 << 126;
    let ranges: Vec<(u128, u128)> = counted.iter().map(|l| l.range).collect();
    assert_eq!(
        ranges,
        vec![
            (0, quarter - 1),
            (quarter, 2 * quarter - 1),
            (2 * quarter, 3 * quarter - 1),
            (3 * quarter, u128::MAX)
        ],
        "uniform scaling"
    );
}

/// The lineage as the Pipe sees it (the recorded parents): each child is numbered after
/// its parents and its records are greater than theirs.
async fn assert_children_numbered_and_sequenced_after_parents(
    s: &Stack,
    by_id: &HashMap<&str, &Listed>,
    records: &HashMap<String, Vec<SequenceNumber>>,
) {
    let lineage = inventory_local::kinesis::list_shards(&s.kinesis, &s.stream)
        .await
        .unwrap();
    let mut pairs = 0;
    for shard in &lineage {
        let child = by_id[shard.id.as_str()];
        for parent in &shard.parents {
            let parent = by_id[parent.as_str()];
            assert!(child.number > parent.number, "{} → {}", parent.id, child.id);
            assert!(parent.closed && parent.overlaps(child));
            let newest_of_parent = records[&parent.id].iter().max().unwrap();
            assert!(child.starting_sequence > *newest_of_parent);
            assert!(records[&child.id].iter().all(|c| c > newest_of_parent));
            pairs += 1;
        }
    }
    // 2 split + 2 merge + the 4 new shards, each with one parent.
    let expected: Vec<(&str, Vec<&str>)> = vec![
        ("shardId-000000000005", vec!["shardId-000000000004"]),
        ("shardId-000000000006", vec!["shardId-000000000004"]),
        ("shardId-000000000007", vec!["shardId-000000000001"]),
        ("shardId-000000000008", vec!["shardId-000000000001"]),
    ];
    for (id, parents) in expected {
        let got = &lineage.iter().find(|l| l.id == id).unwrap().parents;
        assert_eq!(got, &parents, "{id}");
    }
    assert_eq!(pairs, 2 + 2 + 4);
}

/// The order of sequence numbers across shards follows (creation second, last hex digit
/// of the shard number): here it holds, but not from shard 15 to a shard 16 created in
/// the same second.
fn assert_sequence_numbers_follow_creation_second_and_shard_digit(
    shards: &[Listed],
    records: &HashMap<String, Vec<SequenceNumber>>,
) {
    use ferrokinesis::sequence::{parse_sequence, stringify_sequence, SeqObj};
    let creation = |seq: &SequenceNumber| parse_sequence(seq.as_str()).unwrap().shard_create_time;
    for l in shards {
        assert_eq!(
            parse_sequence(l.starting_sequence.as_str())
                .unwrap()
                .shard_ix as u64,
            l.number
        );
        assert!(records[&l.id]
            .iter()
            .all(|r| creation(r) == creation(&l.starting_sequence)));
    }
    let at = |shard_ix: i64, seq_ix: u64| {
        SequenceNumber::parse(&stringify_sequence(&SeqObj {
            shard_create_time: 1_800_000_000_000,
            seq_ix: Some(seq_ix),
            byte1: None,
            seq_time: Some(1_800_000_000_500),
            seq_rand: None,
            shard_ix,
            version: 2,
        }))
        .unwrap()
    };
    assert!(
        at(16, 0) < at(15, 1000),
        "a child shard 16 created in its parent's second numbers its records below the parent's"
    );
}

/// One invocation as [`TimedRecorder`] saw it: the records' arrival (ms), the Pipe's
/// timing, and when the target was called (µs).
type TimedInvocation = (Vec<i64>, InvokeTiming, i64);

/// A target that records each invocation's records (arrival ms) with the Pipe's timing.
#[derive(Clone, Default)]
struct TimedRecorder(Arc<Mutex<Vec<TimedInvocation>>>);

impl Target for TimedRecorder {
    fn invoke(&self, _: Vec<u8>) -> BoxFuture<'static, Result<Vec<u8>, TargetError>> {
        Box::pin(async { Err(TargetError::function("the Pipe must call invoke_timed")) })
    }

    fn invoke_timed(
        &self,
        payload: Vec<u8>,
        timing: InvokeTiming,
    ) -> BoxFuture<'static, Result<Vec<u8>, TargetError>> {
        let called_us = wall_us();
        let log = self.0.clone();
        Box::pin(async move {
            let records: Vec<PipeRecord> =
                serde_json::from_slice(&payload).map_err(TargetError::function)?;
            let arrivals = records.iter().map(PipeRecord::arrival_millis).collect();
            log.lock().unwrap().push((arrivals, timing, called_us));
            Ok(br#"{"batchItemFailures":[]}"#.to_vec())
        })
    }
}

impl TimedRecorder {
    fn delivered(&self) -> usize {
        self.0.lock().unwrap().iter().map(|(a, _, _)| a.len()).sum()
    }
}

#[tokio::test]
async fn the_target_is_told_when_each_record_was_fetched_and_the_invocation_began() {
    let s = stack(1).await;
    let target = TimedRecorder::default();
    let pipe = s
        .pipe_runner(
            PipeSettings {
                maximum_batching_window_in_seconds: 0,
                ..Default::default()
            },
            Arc::new(target.clone()),
        )
        .spawn();
    for i in 0..20 {
        s.put(&format!("k{}", i % 3), format!("t{i}")).await;
    }
    wait_until("the 20 records", PATIENCE, || target.delivered() >= 20).await;
    let stats = pipe.stats.clone();
    pipe.stop().await.unwrap();

    let invocations = target.0.lock().unwrap().clone();
    for (arrivals, timing, called_us) in &invocations {
        assert_eq!(timing.fetched_us.len(), arrivals.len(), "{timing:?}");
        for (arrival_ms, fetched_us) in arrivals.iter().zip(&timing.fetched_us) {
            // The arrival time has millisecond precision; the fetch cannot precede it.
            assert!(
                *fetched_us >= arrival_ms * 1000 - 1000,
                "fetched at {fetched_us} µs, arrived at {arrival_ms} ms"
            );
            assert!(*fetched_us <= timing.invoke_start_us, "{timing:?}");
        }
        assert!(timing.invoke_start_us <= *called_us, "{timing:?}");
    }
    // Each small payload is one 64 KB chunk: one billed Pipes request per invocation.
    let stats = stats.snapshot();
    assert_eq!(stats.billed_requests, invocations.len() as u64, "{stats:?}");
    assert!(stats.payload_bytes > 20 * 100, "{stats:?}");
}
