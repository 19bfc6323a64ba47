//! The Lambda Runtime API a function's runtime polls for work, served on 127.0.0.1:
//! `GET /2018-06-01/runtime/invocation/next` hands out the next invocation with the
//! `Lambda-Runtime-*` headers, and the runtime answers with `POST
//! …/invocation/{id}/response` or `…/error` (a function error), or `POST …/init/error` when
//! it cannot start.
//!
//! Where the invocations come from is the server's [`Invocations`]: the local Lambda host
//! ([`crate::lambda_host`]) hands out its pool's queue, one API per instance; an
//! [`InvocationQueue`] hands out what a test or a bench pushed and reports what the runtime
//! did as [`RuntimeEvent`]s.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

use crate::emulators::LOCAL_REGION;

/// The API's path prefix, under the address given to the function as
/// `AWS_LAMBDA_RUNTIME_API`.
pub const RUNTIME_PATH: &str = "/2018-06-01/runtime";
/// The deadline an [`InvocationQueue`] gives its invocations: Lambda's longest timeout.
const QUEUE_DEADLINE: Duration = Duration::from_secs(15 * 60);

/// One invocation as the runtime receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub request_id: String,
    /// The event, as the function's handler gets it.
    pub payload: Vec<u8>,
    /// When the invocation times out, in milliseconds since the Unix epoch.
    pub deadline_ms: u64,
    pub function_arn: String,
}

/// Why an answer from the runtime was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not an invocation this runtime holds (answered 400).
    #[error("no such invocation is held by this runtime")]
    UnknownRequest,
    /// The API is shutting down (answered 410).
    #[error("the Runtime API is shutting down")]
    Gone,
}

impl Refusal {
    fn status(self) -> StatusCode {
        match self {
            Refusal::UnknownRequest => StatusCode::BAD_REQUEST,
            Refusal::Gone => StatusCode::GONE,
        }
    }
}

/// Where a Runtime API's invocations come from, and where its answers go.
pub trait Invocations: Clone + Send + Sync + 'static {
    /// The next invocation for the runtime, waiting until there is one; `None` when the API
    /// is shutting down (answered 410 Gone).
    fn next(&self) -> impl Future<Output = Option<Invocation>> + Send;
    /// The function's response to `request_id`.
    fn respond(&self, request_id: &str, body: Vec<u8>) -> Result<(), Refusal>;
    /// The function's error for `request_id`, as `errorType: errorMessage`.
    fn fail(&self, request_id: &str, message: String) -> Result<(), Refusal>;
    /// The runtime could not initialise, as `errorType: errorMessage`.
    fn init_failed(&self, message: String) -> Result<(), Refusal>;
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeApiError {
    #[error("cannot listen for the Runtime API on 127.0.0.1: {0}. Check the machine allows local listeners (ulimit -n, a firewall)")]
    Listen(std::io::Error),
}

/// The Runtime API's routes over `invocations`.
pub fn router<I: Invocations>(invocations: I) -> Router {
    Router::new()
        .route(&format!("{RUNTIME_PATH}/invocation/next"), get(next::<I>))
        .route(
            &format!("{RUNTIME_PATH}/invocation/{{id}}/response"),
            post(response::<I>),
        )
        .route(
            &format!("{RUNTIME_PATH}/invocation/{{id}}/error"),
            post(function_error::<I>),
        )
        .route(&format!("{RUNTIME_PATH}/init/error"), post(init_error::<I>))
        .with_state(invocations)
}

/// Serves `invocations` on a free port of 127.0.0.1: the address to give the function as
/// `AWS_LAMBDA_RUNTIME_API`, and the server's task (abort it to stop serving).
pub fn spawn<I: Invocations>(
    invocations: I,
) -> Result<(SocketAddr, JoinHandle<()>), RuntimeApiError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .and_then(tokio::net::TcpListener::from_std)
        .map_err(RuntimeApiError::Listen)?;
    let addr = listener.local_addr().map_err(RuntimeApiError::Listen)?;
    let router = router(invocations);
    let server = tokio::spawn(async move {
        if let Err(e) = axum::serve(crate::net::nodelay(listener), router).await {
            tracing::warn!(error = %e, "a Runtime API listener stopped");
        }
    });
    Ok((addr, server))
}

/// The ARN Lambda would give function `name` in the local stack's region.
pub fn function_arn(name: &str) -> String {
    format!("arn:aws:lambda:{LOCAL_REGION}:000000000000:function:{name}")
}

/// Now plus `timeout`, in milliseconds since the Unix epoch (a `deadline_ms`).
pub fn deadline_ms(timeout: Duration) -> u64 {
    SystemTime::now()
        .checked_add(timeout)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(u64::MAX, |d| {
            u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
        })
}

async fn next<I: Invocations>(State(invocations): State<I>) -> Response {
    let Some(invocation) = invocations.next().await else {
        return StatusCode::GONE.into_response();
    };
    let mut headers = HeaderMap::new();
    let mut header = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    header("lambda-runtime-aws-request-id", invocation.request_id);
    header(
        "lambda-runtime-deadline-ms",
        invocation.deadline_ms.to_string(),
    );
    header(
        "lambda-runtime-invoked-function-arn",
        invocation.function_arn,
    );
    header("lambda-runtime-trace-id", trace_id());
    header("content-type", "application/json".to_owned());
    (headers, invocation.payload).into_response()
}

/// An X-Ray trace header: `Root=1-<8 hex time>-<24 hex random>;Sampled=0`.
fn trace_id() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!(
        "Root=1-{secs:08x}-{:024x};Sampled=0",
        rand::random::<u128>() >> 32
    )
}

fn accepted(answer: Result<(), Refusal>) -> StatusCode {
    answer.map_or_else(Refusal::status, |()| StatusCode::ACCEPTED)
}

async fn response<I: Invocations>(
    State(invocations): State<I>,
    Path(request_id): Path<String>,
    body: Bytes,
) -> StatusCode {
    accepted(invocations.respond(&request_id, body.to_vec()))
}

async fn function_error<I: Invocations>(
    State(invocations): State<I>,
    Path(request_id): Path<String>,
    body: Bytes,
) -> StatusCode {
    accepted(invocations.fail(&request_id, describe_error(&body)))
}

async fn init_error<I: Invocations>(State(invocations): State<I>, body: Bytes) -> StatusCode {
    accepted(invocations.init_failed(describe_error(&body)))
}

/// The error document a runtime posts: `{"errorType": …, "errorMessage": …}`.
#[derive(serde::Deserialize)]
struct ErrorDocument {
    #[serde(rename = "errorType", default)]
    error_type: String,
    #[serde(rename = "errorMessage", default)]
    error_message: String,
}

/// A posted error as `errorType: errorMessage` (the body as it is when it is not a document).
fn describe_error(body: &[u8]) -> String {
    match serde_json::from_slice::<ErrorDocument>(body) {
        Ok(doc) if doc.error_type.is_empty() => doc.error_message,
        Ok(doc) => format!("{}: {}", doc.error_type, doc.error_message),
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    }
}

/// What the runtime did with an [`InvocationQueue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeEvent {
    /// It asked for an invocation (when the request arrived).
    Polled(Instant),
    Response {
        request_id: String,
        body: Vec<u8>,
    },
    Error {
        request_id: String,
        message: String,
    },
    InitError(String),
}

/// Invocations pushed by a test or a bench, handed out in order; a poll with nothing
/// queued waits, as Lambda's does between invocations.
#[derive(Clone)]
pub struct InvocationQueue {
    inner: Arc<Queue>,
}

struct Queue {
    function_arn: String,
    state: Mutex<QueueState>,
    pushed: Notify,
    events: mpsc::UnboundedSender<RuntimeEvent>,
}

#[derive(Default)]
struct QueueState {
    pending: VecDeque<Invocation>,
    /// Handed out and not answered yet.
    held: HashSet<String>,
}

impl InvocationQueue {
    /// An empty queue for function `function_name`, and what its runtime does.
    pub fn new(function_name: &str) -> (Self, mpsc::UnboundedReceiver<RuntimeEvent>) {
        let (events, received) = mpsc::unbounded_channel();
        let queue = Queue {
            function_arn: function_arn(function_name),
            state: Mutex::default(),
            pushed: Notify::new(),
            events,
        };
        let queue = Self {
            inner: Arc::new(queue),
        };
        (queue, received)
    }

    /// Queues an invocation of `payload` as `request_id`.
    pub fn push(&self, request_id: impl Into<String>, payload: Vec<u8>) {
        let invocation = Invocation {
            request_id: request_id.into(),
            payload,
            deadline_ms: deadline_ms(QUEUE_DEADLINE),
            function_arn: self.inner.function_arn.clone(),
        };
        self.state().pending.push_back(invocation);
        self.inner.pushed.notify_one();
    }

    fn state(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn report(&self, event: RuntimeEvent) {
        // Nobody listening is fine: the events are for whoever wants them.
        let _ = self.inner.events.send(event);
    }

    /// Answers `request_id` if it is held, reporting `event`.
    fn answer(&self, request_id: &str, event: RuntimeEvent) -> Result<(), Refusal> {
        if !self.state().held.remove(request_id) {
            return Err(Refusal::UnknownRequest);
        }
        self.report(event);
        Ok(())
    }
}

impl Invocations for InvocationQueue {
    async fn next(&self) -> Option<Invocation> {
        self.report(RuntimeEvent::Polled(Instant::now()));
        loop {
            // Registered before looking, so a push in between still wakes this poll.
            let pushed = self.inner.pushed.notified();
            tokio::pin!(pushed);
            pushed.as_mut().enable();
            {
                let mut state = self.state();
                if let Some(invocation) = state.pending.pop_front() {
                    state.held.insert(invocation.request_id.clone());
                    return Some(invocation);
                }
            }
            pushed.await;
        }
    }

    fn respond(&self, request_id: &str, body: Vec<u8>) -> Result<(), Refusal> {
        let event = RuntimeEvent::Response {
            request_id: request_id.to_owned(),
            body,
        };
        self.answer(request_id, event)
    }

    fn fail(&self, request_id: &str, message: String) -> Result<(), Refusal> {
        let event = RuntimeEvent::Error {
            request_id: request_id.to_owned(),
            message,
        };
        self.answer(request_id, event)
    }

    fn init_failed(&self, message: String) -> Result<(), Refusal> {
        self.report(RuntimeEvent::InitError(message));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A runtime's requests, over HTTP as the function makes them.
    async fn call(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
        use http_body_util::BodyExt as _;
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<String>();
        let request = axum::http::Request::builder()
            .method(method)
            .uri(format!("http://{addr}{RUNTIME_PATH}{path}"))
            .body(body.to_owned())
            .expect("a valid request");
        let response = client.request(request).await.expect("the API answers");
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("a body")
            .to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn a_queue_hands_out_invocations_in_order_and_reports_the_answers() {
        let (queue, mut events) = InvocationQueue::new("f");
        let (addr, server) = spawn(queue.clone()).expect("the API listens");
        queue.push("a", b"[1]".to_vec());
        queue.push("b", b"[2]".to_vec());
        assert_eq!(
            call(addr, "GET", "/invocation/next", "").await,
            (200, "[1]".into())
        );
        assert_eq!(
            call(addr, "POST", "/invocation/a/response", "ok").await.0,
            202
        );
        assert_eq!(
            call(addr, "GET", "/invocation/next", "").await,
            (200, "[2]".into())
        );
        let error = r#"{"errorType":"Boom","errorMessage":"it broke"}"#;
        assert_eq!(
            call(addr, "POST", "/invocation/b/error", error).await.0,
            202
        );
        // An answer to an invocation not held is refused.
        assert_eq!(
            call(addr, "POST", "/invocation/a/response", "again")
                .await
                .0,
            400
        );
        server.abort();

        let mut answers = Vec::new();
        while let Ok(event) = events.try_recv() {
            if !matches!(event, RuntimeEvent::Polled(_)) {
                answers.push(event);
            }
        }
        assert_eq!(
            answers,
            [
                RuntimeEvent::Response {
                    request_id: "a".into(),
                    body: b"ok".to_vec()
                },
                RuntimeEvent::Error {
                    request_id: "b".into(),
                    message: "Boom: it broke".into()
                },
            ]
        );
    }

    #[test]
    fn an_error_that_is_not_a_document_is_kept_as_it_is() {
        assert_eq!(describe_error(b"plain words"), "plain words");
        assert_eq!(describe_error(br#"{"errorMessage":"m"}"#), "m");
    }
}
