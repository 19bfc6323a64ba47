//! Dead letters end to end on the local stack: the Pipe gives up on batches, the
//! dead-letter consumer (fed by the local queue as SQS feeds its Lambda) reads each range
//! back from the stream and archives its records, the API lists them and redrives them, and
//! `verify` then finds the table exact: every event applied once.
//!
//! The target fails every batch while the "outage" lasts, in the two ways that matter:
//! - on shard 0 after the processor applied the batch (the function crashed on its way
//!   out): those records must be archived as processed before and never redriven;
//! - on shard 1 before the processor ran: those records are pending and a redrive applies
//!   them.
//!
//! A product's events are all on one shard, so each is either wholly applied in order or
//! wholly redriven in order, and the generator's model holds.
//!
//! A redrive sends each record as the stream holds it: a forged archive item sends nothing,
//! and an archive item whose bytes were changed sends the stream's.

use inventory_testkit as harness;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use base64::Engine as _;
use harness::*;
use http_body_util::BodyExt as _;
use inventory_api::{router, ApiConfig};
use inventory_domain::api::{DeadLetterPage, DeadLetterStatus, RedriveResult};
use inventory_generator::{Simulation, Skew};
use inventory_local::dead_letter_queue::DeadLetterQueue;
use inventory_local::pipe::{BoxFuture, PipeHandle, Target, TargetError};
use inventory_local::pipe_settings::PipeSettings;
use inventory_local::server::local_state;
use inventory_local::stack::{LocalStack, StackOptions};
use serde_json::{json, Value};
use tower::ServiceExt as _;

const TOKEN: &str = "dead-letter-test-token-0123";

/// The processor, or while `failing` an invocation that fails: after running the processor
/// for shard 0's batches, without running it for the others'.
struct OutageTarget {
    inner: InProcessTarget,
    failing: AtomicBool,
}

impl Target for OutageTarget {
    fn invoke(&self, payload: Vec<u8>) -> BoxFuture<'static, Result<Vec<u8>, TargetError>> {
        let inner = self.inner.clone();
        let failing = self.failing.load(Ordering::SeqCst);
        Box::pin(async move {
            if !failing {
                return inner.invoke(payload).await;
            }
            let first_shard = String::from_utf8_lossy(&payload).contains("shardId-000000000000:");
            if first_shard {
                inner.invoke(payload).await?;
                Err(TargetError::function(
                    "injected: the function crashed after its writes",
                ))
            } else {
                Err(TargetError::function(
                    "injected: the function crashed before its writes",
                ))
            }
        })
    }
}

async fn call(
    router: &Router,
    method: Method,
    uri: &str,
    body: Option<Value>,
    auth: bool,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if auth {
        request = request.header(header::AUTHORIZATION, format!("Bearer {TOKEN}"));
    }
    let request = match body {
        Some(b) => request
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_string())),
        None => request.body(Body::empty()),
    }
    .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// The most requests a listing or a redrive of every dead letter may take (2,000 records,
/// 200 listed or 500 redriven per request): more fails the test instead of looping forever.
const MAX_REQUESTS: usize = 100;

/// Every archived dead letter, through the API's pages: status → count.
async fn statuses(router: &Router) -> BTreeMap<DeadLetterStatus, u64> {
    let mut counts = BTreeMap::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_REQUESTS {
        let uri = match &cursor {
            Some(c) => format!("/api/dead-letters?limit=200&cursor={c}"),
            None => "/api/dead-letters?limit=200".to_owned(),
        };
        let (status, body) = call(router, Method::GET, &uri, None, true).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let page: DeadLetterPage = serde_json::from_value(body).unwrap();
        for item in &page.items {
            *counts.entry(item.status).or_default() += 1;
            assert!(
                item.data_base64_excerpt.is_some(),
                "a signed-in caller sees the data"
            );
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return counts,
        }
    }
    panic!("the dead-letter listing did not end after {MAX_REQUESTS} pages");
}

/// Redrives every pending dead letter, 500 per request, as the console does; returns the
/// records republished.
async fn redrive_all(router: &Router) -> u64 {
    let mut republished = 0;
    for _ in 0..MAX_REQUESTS {
        let (status, body) = call(
            router,
            Method::POST,
            "/api/dead-letters/redrive",
            Some(json!({"ids": []})),
            true,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let result: RedriveResult = serde_json::from_value(body).unwrap();
        assert_eq!(
            result.held_past_window, 0,
            "every record is inside the window"
        );
        republished += result.republished;
        if !result.remaining {
            return republished;
        }
    }
    panic!("a redrive of everything pending needed more than {MAX_REQUESTS} requests");
}

/// Two shards, and a Pipe that gives up on a batch after one retry.
async fn stack_giving_up_fast() -> LocalStack {
    LocalStack::start(StackOptions {
        shards: 2,
        pipe: PipeSettings {
            maximum_batching_window_in_seconds: 0,
            maximum_retry_attempts: 1,
            ..PipeSettings::default()
        },
        ..StackOptions::default()
    })
    .await
    .unwrap()
}

/// The Pipe to `target`, with retries, bisections and polls within milliseconds: every
/// batch of the run fails, and each record's way to its dead letter takes seconds at the
/// Pipe's real pace.
fn spawn_fast_pipe(stack: &LocalStack, target: Arc<OutageTarget>) -> PipeHandle {
    let mut runner = stack.pipe_to(target);
    runner.min_backoff = Duration::from_millis(1);
    runner.max_backoff = Duration::from_millis(5);
    runner.idle_poll = Duration::from_millis(20);
    runner.min_poll_interval = Duration::from_millis(5);
    runner.spawn()
}

/// Publishes `simulation` while the target fails, so the Pipe dead-letters every record and
/// the consumer archives each; then ends the outage. Returns the Pipe, the consumer and
/// how many records were published.
async fn dead_letter_a_run(
    stack: &LocalStack,
    simulation: &mut Simulation,
) -> (PipeHandle, DeadLetterQueue, u64) {
    let target = Arc::new(OutageTarget {
        inner: InProcessTarget::on(stack),
        failing: AtomicBool::new(true),
    });
    let pipe = spawn_fast_pipe(stack, target.clone());
    let queue = stack.start_dead_letter_queue();
    let published = publish_all(stack, simulation, None).await.records;
    wait_until("the Pipe to dead-letter every record", CATCH_UP, || {
        pipe.stats.dead_lettered.load(Ordering::SeqCst) >= published
    })
    .await;
    wait_until("the consumer to archive every record", CATCH_UP, || {
        queue.stats.records_archived.load(Ordering::SeqCst) >= published
    })
    .await;
    target.failing.store(false, Ordering::SeqCst);
    (pipe, queue, published)
}

/// Every record is archived once, some processed before and some pending; returns how
/// many are pending.
async fn check_both_kinds_archived(router: &Router, published: u64) -> u64 {
    let before = statuses(router).await;
    let processed = before
        .get(&DeadLetterStatus::ProcessedBefore)
        .copied()
        .unwrap_or(0);
    let pending = before.get(&DeadLetterStatus::Pending).copied().unwrap_or(0);
    assert_eq!(
        processed + pending,
        published,
        "every record archived once: {before:?}"
    );
    assert!(
        processed > 0 && pending > 0,
        "both kinds of failure happened: {before:?}"
    );
    pending
}

/// Without signing in: no redrive, and no data in the listing.
async fn check_anonymous_caller_cannot_redrive_or_read_data(router: &Router) {
    let (status, _) = call(
        router,
        Method::POST,
        "/api/dead-letters/redrive",
        Some(json!({})),
        false,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, anonymous) = call(
        router,
        Method::GET,
        "/api/dead-letters?limit=5",
        None,
        false,
    )
    .await;
    let anonymous: DeadLetterPage = serde_json::from_value(anonymous).unwrap();
    assert!(anonymous
        .items
        .iter()
        .all(|i| i.data_base64_excerpt.is_none()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dead_letters_are_archived_listed_and_redriven_so_every_event_applies_once() {
    init_tracing();
    let stack = stack_giving_up_fast().await;
    // The whole run is published during the outage.
    let mut simulation = sim("dlq", 40, 2_000, Skew::Zipf(1.1), 7);
    let (pipe, queue, published) = dead_letter_a_run(&stack, &mut simulation).await;

    let router = router(local_state(
        &stack,
        ApiConfig {
            token: Some(TOKEN.into()),
            allowed_origins: vec![],
        },
    ));
    let pending = check_both_kinds_archived(&router, published).await;
    check_anonymous_caller_cannot_redrive_or_read_data(&router).await;

    // Redrive every pending one, 500 per request.
    assert_eq!(redrive_all(&router).await, pending);

    let report = assert_verified(&stack, &simulation).await;
    assert!(report.is_consistent());

    // A second redrive finds nothing to send; the table stays exact.
    let (_, body) = call(
        &router,
        Method::POST,
        "/api/dead-letters/redrive",
        Some(json!({"ids": []})),
        true,
    )
    .await;
    let again: RedriveResult = serde_json::from_value(body).unwrap();
    assert_eq!(again.republished, 0);
    // Naming a processed-before record explicitly is refused with why.
    let after = statuses(&router).await;
    assert_eq!(after.get(&DeadLetterStatus::Pending), None, "{after:?}");
    assert_eq!(
        after.get(&DeadLetterStatus::Redriven).copied(),
        Some(pending)
    );
    queue.stop().await;
    pipe.stop().await.unwrap();
}

/// One redrive request, as the console sends it: `ids` (all pending when empty).
async fn redrive(router: &Router, ids: &[&str]) -> RedriveResult {
    let (status, body) = call(
        router,
        Method::POST,
        "/api/dead-letters/redrive",
        Some(json!({ "ids": ids })),
        true,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_value(body).unwrap()
}

/// A record as the stream holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OnStream {
    shard: String,
    sequence: String,
    partition_key: String,
    data: Vec<u8>,
}

/// The most GetRecords pages one shard's read may take (a test stream holds a few thousand
/// records, one page or two).
const MAX_PAGES: usize = 50;

/// Every record on the stream, shard by shard, in stream order.
async fn records_on_stream(stack: &LocalStack) -> Vec<OnStream> {
    let kinesis = &stack.kinesis;
    let stream = &stack.options.stream;
    let mut out = Vec::new();
    for shard in listed(kinesis, stream).await {
        let mut iterator = kinesis
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(&shard.id)
            .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator;
        for _ in 0..MAX_PAGES {
            let Some(it) = iterator.take() else { break };
            let page = kinesis
                .get_records()
                .shard_iterator(it)
                .send()
                .await
                .unwrap();
            out.extend(page.records().iter().map(|r| OnStream {
                shard: shard.id.clone(),
                sequence: r.sequence_number().to_owned(),
                partition_key: r.partition_key().unwrap_or_default().to_owned(),
                data: r.data().as_ref().to_vec(),
            }));
            if page.records().is_empty() && page.millis_behind_latest() == Some(0) {
                break;
            }
            iterator = page.next_shard_iterator;
        }
    }
    out
}

/// `number` (decimal digits) plus one: a sequence number next to a real one, which Kinesis
/// never handed out (its encoding ends in the format's version).
fn plus_one(number: &str) -> String {
    let mut digits: Vec<u8> = number.bytes().map(|b| b - b'0').collect();
    for d in digits.iter_mut().rev() {
        if *d < 9 {
            *d += 1;
            return digits.iter().map(|d| char::from(b'0' + d)).collect();
        }
        *d = 0;
    }
    format!(
        "1{}",
        digits
            .iter()
            .map(|d| char::from(b'0' + d))
            .collect::<String>()
    )
}

fn api_router(stack: &LocalStack) -> Router {
    router(local_state(
        stack,
        ApiConfig {
            token: Some(TOKEN.into()),
            allowed_origins: vec![],
        },
    ))
}

/// Someone with write access to the events table writes a pending dead letter the way the
/// consumer writes one, naming a record the stream never held, and redrives: nothing is
/// published, the redrive says why, and later redrives of everything pending pass it by.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_forged_dead_letter_republishes_nothing() {
    init_tracing();
    let stack = stack_giving_up_fast().await;
    let mut simulation = sim("forged", 5, 40, Skew::Uniform, 3);
    publish_all(&stack, &mut simulation, None).await;
    let before = records_on_stream(&stack).await;
    let last = before.last().expect("the run published records");
    let arn = stack
        .kinesis
        .describe_stream_summary()
        .stream_name(&stack.options.stream)
        .send()
        .await
        .unwrap()
        .stream_description_summary
        .unwrap()
        .stream_arn;
    let forged = inventory_domain::PipeRecord::new(
        &inventory_domain::arn::StreamArn::parse(&arn).unwrap(),
        &last.shard,
        &plus_one(&last.sequence),
        &last.partition_key,
        base64::engine::general_purpose::STANDARD.encode(br#"{"forged":true}"#),
        chrono::Utc::now().timestamp_millis() as f64 / 1000.0,
    );
    let item = inventory_store::dead_letters::DeadLetterItem::new(
        &forged,
        &inventory_store::dead_letters::DeadLetterFacts {
            reason: "forged",
            attempts: Some(1),
            product_id: None,
            event_id: None,
            status: DeadLetterStatus::Pending,
        },
        chrono::Utc::now(),
    );
    let written = inventory_store::dead_letters::archive(
        &stack.db,
        &stack.options.tables,
        std::slice::from_ref(&item),
    )
    .await
    .unwrap();
    assert_eq!(written, 1);

    let router = api_router(&stack);
    let result = redrive(&router, &[]).await;
    assert_eq!(result.republished, 0, "{result:?}");
    let skipped = result.skipped.iter().find(|s| s.id == item.sk);
    assert!(
        skipped.is_some_and(|s| s.why.starts_with("not on the stream")),
        "{result:?}"
    );
    assert_eq!(records_on_stream(&stack).await, before, "nothing published");

    // Found missing once, it holds back no later redrive of everything pending; named by
    // its id it is looked for again, and still sends nothing.
    let again = redrive(&router, &[]).await;
    assert!(
        again.skipped.is_empty() && again.republished == 0,
        "{again:?}"
    );
    let named = redrive(&router, &[&item.sk]).await;
    assert_eq!(named.republished, 0, "{named:?}");
    assert!(named
        .skipped
        .iter()
        .any(|s| s.id == item.sk && s.why.starts_with("not on the stream")));
    assert_eq!(records_on_stream(&stack).await, before, "nothing published");
    let listed = statuses(&router).await;
    assert_eq!(
        listed.get(&DeadLetterStatus::Pending),
        Some(&1),
        "{listed:?}"
    );
}

/// An archived dead letter's data is changed to other bytes before the redrive: the redrive
/// publishes the stream's own record, so the stock ends exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tampered_dead_letter_republishes_the_streams_bytes() {
    init_tracing();
    let stack = stack_giving_up_fast().await;
    let mut simulation = sim("tampered", 8, 200, Skew::Zipf(1.1), 11);
    let (pipe, queue, _) = dead_letter_a_run(&stack, &mut simulation).await;

    // Tamper with the oldest pending one: the bytes a redrive of the archive would send.
    let tables = &stack.options.tables;
    let (pending, _) = inventory_store::dead_letters::list(
        &stack.db,
        tables,
        Some(DeadLetterStatus::Pending),
        inventory_store::dead_letters::Order::OldestFirst,
        1000,
        None,
    )
    .await
    .unwrap();
    let mut tampered = pending.first().expect("a pending dead letter").clone();
    let original = tampered.data_base64.clone().unwrap();
    let forged = base64::engine::general_purpose::STANDARD.encode(br#"{"tampered":true}"#);
    tampered.data_base64 = Some(forged.clone());
    stack
        .db
        .put_item()
        .table_name(&tables.events)
        .set_item(Some(tampered.to_item().unwrap()))
        .send()
        .await
        .unwrap();

    let before = records_on_stream(&stack).await;
    let router = api_router(&stack);
    assert_eq!(redrive_all(&router).await, pending.len() as u64);
    let after = records_on_stream(&stack).await;
    let new: Vec<&OnStream> = after.iter().filter(|r| !before.contains(r)).collect();
    assert_eq!(new.len(), pending.len());
    let original_bytes = base64::engine::general_purpose::STANDARD
        .decode(&original)
        .unwrap();
    let forged_bytes = base64::engine::general_purpose::STANDARD
        .decode(&forged)
        .unwrap();
    assert!(
        new.iter()
            .any(|r| r.data == original_bytes && r.partition_key == tampered.partition_key),
        "the stream's bytes went back"
    );
    assert!(
        new.iter().all(|r| r.data != forged_bytes),
        "the tampered bytes were not sent"
    );

    let report = assert_verified(&stack, &simulation).await;
    assert!(report.is_consistent());
    queue.stop().await;
    pipe.stop().await.unwrap();
}
