//! A fault-injecting HTTP proxy for DynamoDB on 127.0.0.1: it sits between a client (the
//! processor's) and the local endpoint and, at configured rates, answers with the errors
//! AWS returns under load: throttling (400 `ProvisionedThroughputExceededException`), 500
//! `InternalServerError`, 503 — and, worst of all for idempotency, a 500 *after* forwarding
//! the request, so the write happened but the client believes it failed.
//!
//! The SDK's retries, the processor's `batchItemFailures` and the Pipe's retries must then
//! lose and double nothing (`local/tests/fault_suite.rs`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::config::retry::RetryConfig;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Probabilities, per DynamoDB request, of each injected fault (they are exclusive; their
/// sum must be at most 1).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FaultRates {
    pub throttle: f64,
    pub server_error: f64,
    pub unavailable: f64,
    /// Forward the request, then answer 500: the write is applied, the client sees a failure.
    pub lost_response: f64,
    /// Only requests for this operation (`X-Amz-Target` suffix, e.g. `BatchWriteItem`) get
    /// faults; `None` means every request.
    pub only: Option<&'static str>,
}

/// What the proxy did, for a test to assert the faults really happened.
#[derive(Debug, Default)]
pub struct FaultCounts {
    pub requests: AtomicU64,
    pub throttled: AtomicU64,
    pub server_errors: AtomicU64,
    pub unavailable: AtomicU64,
    pub lost_responses: AtomicU64,
}

impl FaultCounts {
    pub fn injected(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
            + self.server_errors.load(Ordering::Relaxed)
            + self.unavailable.load(Ordering::Relaxed)
            + self.lost_responses.load(Ordering::Relaxed)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FaultProxyError {
    #[error("fault rates must each be in [0, 1] and sum to at most 1 (got {0:?})")]
    Rates(FaultRates),
    #[error("cannot listen on 127.0.0.1: {0}")]
    Bind(std::io::Error),
}

#[derive(Clone)]
struct ProxyState {
    upstream: String,
    rates: FaultRates,
    rng: Arc<Mutex<StdRng>>,
    counts: Arc<FaultCounts>,
    http: HttpClient<HttpConnector, Body>,
}

/// A running proxy; dropping it stops it.
pub struct FaultProxy {
    endpoint: String,
    pub counts: Arc<FaultCounts>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (an `http://host:port` endpoint) on a free local port.
    pub async fn start(
        upstream: &str,
        rates: FaultRates,
        seed: u64,
    ) -> Result<Self, FaultProxyError> {
        let all = [
            rates.throttle,
            rates.server_error,
            rates.unavailable,
            rates.lost_response,
        ];
        if all.iter().any(|r| !(0.0..=1.0).contains(r)) || all.iter().sum::<f64>() > 1.0 {
            return Err(FaultProxyError::Rates(rates));
        }
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(FaultProxyError::Bind)?;
        let addr = listener.local_addr().map_err(FaultProxyError::Bind)?;
        let counts = Arc::new(FaultCounts::default());
        let state = ProxyState {
            upstream: upstream.trim_end_matches('/').to_owned(),
            rates,
            rng: Arc::new(Mutex::new(StdRng::seed_from_u64(seed))),
            counts: counts.clone(),
            http: HttpClient::builder(TokioExecutor::new()).build(crate::net::connector()),
        };
        let app = Router::new().fallback(proxy).with_state(state);
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(crate::net::nodelay(listener), app).await {
                tracing::error!(error = %e, "fault proxy stopped");
            }
        });
        Ok(Self {
            endpoint: format!("http://{addr}"),
            counts,
            task,
        })
    }

    /// The URL to give the client instead of the real endpoint.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// A DynamoDB client that goes through the proxy, with the SDK's standard retries capped
    /// at `max_attempts` (1: none), so a test decides how many faults reach the caller.
    pub fn dynamodb_client(&self, max_attempts: u32) -> aws_sdk_dynamodb::Client {
        let config =
            aws_sdk_dynamodb::config::Builder::from(&crate::sdk_config_for(&self.endpoint))
                .retry_config(
                    RetryConfig::standard()
                        .with_max_attempts(max_attempts)
                        .with_initial_backoff(Duration::from_millis(2)),
                )
                .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

enum Fault {
    None,
    Throttle,
    ServerError,
    Unavailable,
    LostResponse,
}

async fn proxy(State(st): State<ProxyState>, req: Request) -> Response {
    st.counts.requests.fetch_add(1, Ordering::Relaxed);
    let targeted = st.rates.only.is_none_or(|op| {
        req.headers()
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.ends_with(&format!(".{op}")))
    });
    let fault = if !targeted {
        Fault::None
    } else {
        // A poisoned lock only means another request panicked; the generator is still usable.
        let mut rng = st.rng.lock().unwrap_or_else(|p| p.into_inner());
        let x: f64 = rng.random();
        let r = st.rates;
        if x < r.throttle {
            Fault::Throttle
        } else if x < r.throttle + r.server_error {
            Fault::ServerError
        } else if x < r.throttle + r.server_error + r.unavailable {
            Fault::Unavailable
        } else if x < r.throttle + r.server_error + r.unavailable + r.lost_response {
            Fault::LostResponse
        } else {
            Fault::None
        }
    };
    match fault {
        Fault::Throttle => {
            st.counts.throttled.fetch_add(1, Ordering::Relaxed);
            return aws_error(
                StatusCode::BAD_REQUEST,
                "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                "injected throttling",
            );
        }
        Fault::ServerError => {
            st.counts.server_errors.fetch_add(1, Ordering::Relaxed);
            return aws_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "com.amazonaws.dynamodb.v20120810#InternalServerError",
                "injected internal error",
            );
        }
        Fault::Unavailable => {
            st.counts.unavailable.fetch_add(1, Ordering::Relaxed);
            return aws_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "com.amazonaws.dynamodb.v20120810#ServiceUnavailable",
                "injected unavailability",
            );
        }
        Fault::None | Fault::LostResponse => {}
    }
    let response = forward(&st, req).await;
    if matches!(fault, Fault::LostResponse) && response.status().is_success() {
        st.counts.lost_responses.fetch_add(1, Ordering::Relaxed);
        return aws_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "com.amazonaws.dynamodb.v20120810#InternalServerError",
            "injected: the request was applied but its response was lost",
        );
    }
    response
}

async fn forward(st: &ProxyState, req: Request) -> Response {
    crate::emulators::forward(&st.http, &st.upstream, req).await
}

/// An error in DynamoDB's JSON protocol shape, which the SDK classifies (throttling and 5xx
/// are retried).
fn aws_error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = serde_json::json!({ "__type": kind, "message": message }).to_string();
    let mut resp = (status, Bytes::from(body)).into_response();
    let headers = resp.headers_mut();
    headers.insert(
        "content-type",
        HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    if let Some(short) = kind.rsplit('#').next() {
        if let Ok(v) = HeaderValue::from_str(short) {
            headers.insert("x-amzn-errortype", v);
        }
    }
    resp
}
