//! The `processor` binary as Lambda runs it: the local stack's Lambda Runtime API
//! (`inventory_local::runtime_api`) hands it queued invocations and reports what it
//! answers. This proves the body reaches the handler through `RawBodies` (lambda_runtime
//! would otherwise deserialise it first). DynamoDB is a closed port here: what the
//! processor writes is proved against the emulator in local/tests; this test is about the
//! binary's wiring.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use inventory_local::runtime_api::{self, InvocationQueue, RuntimeEvent};
use tokio::sync::mpsc;

const FIXTURE: &[u8] = include_bytes!("fixtures/pipes-kinesis-batch.json");

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The three invocations, queued on a Runtime API: a Pipes batch, a body that is not one,
/// and an empty batch.
fn runtime_api_with_three_invocations() -> (SocketAddr, mpsc::UnboundedReceiver<RuntimeEvent>) {
    let (queue, events) = InvocationQueue::new("processor");
    queue.push("inv-batch", FIXTURE.to_vec());
    queue.push(
        "inv-not-a-batch",
        br#"{"Records":[{"kinesis":{"data":"e30="}}]}"#.to_vec(),
    );
    queue.push("inv-empty", b"[]".to_vec());
    let (addr, _server) = runtime_api::spawn(queue).expect("the Runtime API listens");
    (addr, events)
}

/// The processor binary against the Runtime API at `runtime_api`, its DynamoDB a port
/// nothing listens on (so its calls fail at once), and its stdout's lines.
fn start_processor(runtime_api: SocketAddr) -> (Killed, mpsc::UnboundedReceiver<String>) {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let dynamodb = format!("http://{}", closed.local_addr().expect("its address"));
    drop(closed);
    let mut child = Killed(
        Command::new(env!("CARGO_BIN_EXE_processor"))
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "processor")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_ENDPOINT_URL", &dynamodb)
            .env("AWS_MAX_ATTEMPTS", "1")
            .env("INVENTORY_TABLE", "inventory")
            .env("EVENTS_TABLE", "inventory-events")
            .env("RUST_LOG", "error")
            .env("STAGE", "test")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the processor binary starts"),
    );
    // The child's stdout, line by line: the EMF documents it prints after each batch.
    let stdout = child.0.stdout.take().expect("stdout is piped");
    let (line_tx, lines) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line_tx.send(line).is_err() {
                return;
            }
        }
    });
    (child, lines)
}

/// The first `n` answers the runtime posted (its polls skipped), each within 60 s.
async fn answers(
    events: &mut mpsc::UnboundedReceiver<RuntimeEvent>,
    n: usize,
) -> Vec<RuntimeEvent> {
    let mut got = Vec::new();
    while got.len() < n {
        let event = tokio::time::timeout(Duration::from_secs(60), events.recv())
            .await
            .expect("the processor answered within 60 s")
            .expect("the Runtime API is running");
        if !matches!(event, RuntimeEvent::Polled(_)) {
            got.push(event);
        }
    }
    got
}

#[tokio::test]
async fn the_binary_reads_each_invocation_body_and_answers_the_runtime_api() {
    let (addr, mut events) = runtime_api_with_three_invocations();
    let (_child, mut lines) = start_processor(addr);
    // Answers come in invocation order: the runtime takes one invocation at a time.
    let mut got = answers(&mut events, 3).await.into_iter();

    // The fixture's record could not be read from DynamoDB, so the Pipe is told to retry
    // from it: its eventID came from the body.
    match got.next() {
        Some(RuntimeEvent::Response { request_id, body }) => {
            assert_eq!(request_id, "inv-batch");
            let v: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
            assert_eq!(
                v["batchItemFailures"][0]["itemIdentifier"],
                "shardId-000000000000:49590338271490256608559692538361571095921575989136588898",
                "{v}"
            );
        }
        other => panic!("expected a response, got {other:?}"),
    }
    match got.next() {
        Some(RuntimeEvent::Error {
            request_id,
            message,
        }) => {
            assert_eq!(request_id, "inv-not-a-batch");
            assert!(
                message.contains("not an EventBridge Pipes batch"),
                "the error names the problem: {message}"
            );
        }
        other => panic!("expected an error, got {other:?}"),
    }
    match got.next() {
        Some(RuntimeEvent::Response { request_id, body }) => {
            assert_eq!(request_id, "inv-empty");
            assert_eq!(
                String::from_utf8_lossy(&body),
                r#"{"batchItemFailures":[]}"#
            );
        }
        other => panic!("expected a response, got {other:?}"),
    }
    check_metrics_documents(&mut lines).await;
}

/// Each batch that was processed (not the one refused) printed its metrics before its
/// answer: the batch's document with a lag, the empty batch's without.
async fn check_metrics_documents(lines: &mut mpsc::UnboundedReceiver<String>) {
    let mut documents = Vec::new();
    while documents.len() < 2 {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.recv())
            .await
            .expect("the processor printed two EMF documents within 10 s of answering")
            .expect("the processor's stdout stays open while it runs");
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
            if v.get("_aws").is_some() {
                documents.push(v);
            }
        }
    }
    for doc in &documents {
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Namespace"], "InventoryPipeline",
            "{doc}"
        );
        assert_eq!(doc["Stage"], "test", "{doc}");
        assert_eq!(doc["EventsApplied"], 0, "nothing could be applied: {doc}");
    }
    assert!(
        documents[0]["LagMs"].as_u64().is_some_and(|lag| lag > 0),
        "the fixture's record arrived in 2023: {}",
        documents[0]
    );
    assert!(
        documents[1].get("LagMs").is_none(),
        "an empty batch has no lag: {}",
        documents[1]
    );
}
