//! The local Pipe runner's EventBridge Pipes semantics, observed from a recording target
//! over the real Kinesis emulator.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use inventory_domain::{BatchItemFailure, BatchResponse, PipeRecord, SequenceNumber};
use inventory_local::pipe::{dead_letters, BoxFuture, PipeHandle, Target};
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
    fn invoke(&self, payload: Vec<u8>) -> BoxFuture<Result<Vec<u8>, String>> {
        let log = self.0.clone();
        Box::pin(async move {
            let records: Vec<PipeRecord> =
                serde_json::from_slice(&payload).map_err(|e| e.to_string())?;
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
                    return Err("poisoned".into());
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

async fn run_pipe(s: &common::Stack, target: &Recorder, settings: PipeSettings) -> PipeHandle {
    let mut runner = s.pipe_runner(settings, Arc::new(target.clone()));
    runner.min_backoff = Duration::from_millis(1);
    runner.spawn()
}

async fn wait_for(target: &Recorder, mut done: impl FnMut(&[(String, Vec<String>)]) -> bool) {
    // Up to 30 s: a passing run takes well under one, a slow CI machine several.
    for _ in 0..3000 {
        if done(&target.invocations()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out; invocations: {:?}", target.invocations());
}

#[tokio::test]
async fn batches_respect_batch_size_shard_order_and_one_batch_per_shard() {
    let s = common::stack(3).await;
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
    wait_for(&target, |inv| {
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
    let s = common::stack(1).await;
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
    wait_for(&target, |inv| !inv.is_empty()).await;
    pipe.stop().await.unwrap();
    let inv = target.invocations();
    assert_eq!(inv.len(), 1, "{inv:?}");
    assert_eq!(inv[0].1.len(), 10);
}

#[tokio::test]
async fn a_batch_item_failure_retries_from_that_record_only() {
    let s = common::stack(1).await;
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
    wait_for(&target, |inv| inv.len() >= 2).await;
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
    let s = common::stack(1).await;
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
    wait_for(&target, |inv| {
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
    let s = common::stack(1).await;
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
    let dlq = loop {
        let d = dead_letters(&s.db, &s.tables, "test-pipe").await.unwrap();
        if !d.is_empty() {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    s.put("k", "after").await;
    wait_for(&target, |inv| inv.iter().any(|(_, r)| r == &["after"])).await;
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
    let s = common::stack(1).await;
    s.put("k", "one").await;
    let target = Recorder::default();
    let pipe = run_pipe(&s, &target, PipeSettings::default()).await;
    wait_for(&target, |inv| !inv.is_empty()).await;
    while pipe
        .stats
        .checkpoints
        .load(std::sync::atomic::Ordering::SeqCst)
        == 0
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    pipe.stop().await.unwrap();

    // The stream is replaced; the table keeps the old checkpoint.
    s.kinesis
        .delete_stream()
        .stream_name(&s.stream)
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    inventory_local::kinesis::ensure_stream(&s.kinesis, &s.stream, 1)
        .await
        .unwrap();
    let err = run_pipe(&s, &target, PipeSettings::default())
        .await
        .stop()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("out of step"), "{err}");
}

/// Kinesis makes a record readable only in sequence order: a consumer never sees a later
/// record of a shard before an earlier one, so moving its iterator past what it read skips
/// nothing. The embedded emulator numbers a put before storing it, so producers racing on a
/// shard broke that (challenges.md §15) until the local endpoint serialised puts. A reader
/// tailing the shard as fast as it can catches the race within a few hundred puts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reader_tailing_a_shard_sees_every_record_of_concurrent_producers() {
    use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};
    use std::sync::atomic::{AtomicBool, Ordering};
    const PRODUCERS: usize = 8;
    const PUTS: usize = 100;
    const RECORDS: usize = 5;
    let s = common::stack(1).await;
    let shard = inventory_local::kinesis::shard_ids(&s.kinesis, &s.stream)
        .await
        .unwrap()
        .remove(0);
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (kinesis, stream, done) = (s.kinesis.clone(), s.stream.clone(), done.clone());
        tokio::spawn(async move {
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
        })
    };
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let (kinesis, stream) = (s.kinesis.clone(), s.stream.clone());
            tokio::spawn(async move {
                for i in 0..PUTS {
                    let entries = (0..RECORDS).map(|r| {
                        PutRecordsRequestEntry::builder()
                            .partition_key(format!("producer-{p}"))
                            .data(format!("p{p}-{i:04}-{r}").into_bytes().into())
                            .build()
                            .unwrap()
                    });
                    let out = kinesis
                        .put_records()
                        .stream_name(&stream)
                        .set_records(Some(entries.collect()))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(out.failed_record_count(), Some(0));
                }
            })
        })
        .collect();
    for p in producers {
        p.await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
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
