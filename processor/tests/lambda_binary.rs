//! The `processor` binary as Lambda runs it: a stand-in for the Lambda Runtime API hands it
//! invocations and records what it answers. This proves the body reaches the handler
//! through `RawBodies` (lambda_runtime would otherwise deserialise it first). DynamoDB is a
//! closed port here: what the processor writes is proved against the emulator in
//! local/tests; this test is about the binary's wiring.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::mpsc;

const FIXTURE: &[u8] = include_bytes!("fixtures/pipes-kinesis-batch.json");

#[derive(Debug)]
enum Answer {
    Response(String, String),
    Error(String, String),
}

/// Invocations still to hand out: request id and body.
type Invocations = Arc<Mutex<VecDeque<(String, Vec<u8>)>>>;

#[derive(Clone)]
struct RuntimeApi {
    queue: Invocations,
    answers: mpsc::UnboundedSender<Answer>,
}

async fn next(State(api): State<RuntimeApi>) -> (HeaderMap, Vec<u8>) {
    let item = api.queue.lock().expect("queue").pop_front();
    let Some((id, body)) = item else {
        // No more work: hold the poll, as Lambda does between invocations.
        return std::future::pending().await;
    };
    let mut headers = HeaderMap::new();
    let header = |v: &str| HeaderValue::from_str(v).expect("header value");
    headers.insert("lambda-runtime-aws-request-id", header(&id));
    headers.insert("lambda-runtime-deadline-ms", header("9999999999999"));
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        header("arn:aws:lambda:us-east-1:123456789012:function:processor"),
    );
    (headers, body)
}

async fn response(State(api): State<RuntimeApi>, Path(id): Path<String>, body: String) {
    let _ = api.answers.send(Answer::Response(id, body));
}

async fn error(State(api): State<RuntimeApi>, Path(id): Path<String>, body: String) {
    let _ = api.answers.send(Answer::Error(id, body));
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_binary_reads_each_invocation_body_and_answers_the_runtime_api() {
    let (tx, mut answers) = mpsc::unbounded_channel();
    let api = RuntimeApi {
        queue: Arc::new(Mutex::new(VecDeque::from([
            ("inv-batch".to_owned(), FIXTURE.to_vec()),
            (
                "inv-not-a-batch".to_owned(),
                br#"{"Records":[{"kinesis":{"data":"e30="}}]}"#.to_vec(),
            ),
            ("inv-empty".to_owned(), b"[]".to_vec()),
        ]))),
        answers: tx,
    };
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .with_state(api);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    // A port nothing listens on: DynamoDB calls fail at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dynamodb = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);

    let mut child = Killed(
        Command::new(env!("CARGO_BIN_EXE_processor"))
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
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
    let (line_tx, mut lines) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line_tx.send(line).is_err() {
                return;
            }
        }
    });

    let mut got = Vec::new();
    while got.len() < 3 {
        let answer = tokio::time::timeout(Duration::from_secs(60), answers.recv())
            .await
            .expect("the processor answered within 60 s")
            .expect("the Runtime API stand-in is running");
        got.push(answer);
    }
    // Answers come in invocation order: the runtime takes one invocation at a time.
    let mut got = got.into_iter();

    // The fixture's record could not be read from DynamoDB, so the Pipe is told to retry
    // from it: its eventID came from the body.
    match got.next().unwrap() {
        Answer::Response(id, body) => {
            assert_eq!(id, "inv-batch");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(
                v["batchItemFailures"][0]["itemIdentifier"],
                "shardId-000000000000:49590338271490256608559692538361571095921575989136588898",
                "{body}"
            );
        }
        other => panic!("expected a response, got {other:?}"),
    }
    match got.next().unwrap() {
        Answer::Error(id, body) => {
            assert_eq!(id, "inv-not-a-batch");
            assert!(
                body.contains("not an EventBridge Pipes batch"),
                "the error names the problem: {body}"
            );
        }
        other => panic!("expected an error, got {other:?}"),
    }
    match got.next().unwrap() {
        Answer::Response(id, body) => {
            assert_eq!(id, "inv-empty");
            assert_eq!(body, r#"{"batchItemFailures":[]}"#);
        }
        other => panic!("expected a response, got {other:?}"),
    }

    // Each batch that was processed (not the one refused) printed its metrics before its
    // answer: the batch's document with a lag, the empty batch's without.
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
