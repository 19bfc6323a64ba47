//! HTTP proxies in front of the local endpoint: [`Gate`] holds chosen calls until opened,
//! [`AgingProxy`] makes chosen Kinesis records look older than they are.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use base64::Engine as _;
use http_body_util::BodyExt as _;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use inventory_local::sdk_config_for;
use serde_json::Value;

use super::wait::{wait_until, PATIENCE};

/// Rewrites a response body; given the call's `X-Amz-Target`.
type Rewrite = Arc<dyn Fn(&str, Vec<u8>) -> Vec<u8> + Send + Sync>;

/// Holds calls whose `X-Amz-Target` ends with the suffix until the semaphore opens.
struct Hold {
    suffix: &'static str,
    open: Arc<tokio::sync::Semaphore>,
    held: Arc<AtomicUsize>,
}

/// Starts a proxy to `upstream` on 127.0.0.1 port 0; returns its endpoint.
async fn start_proxy(upstream: &str, hold: Option<Hold>, rewrite: Option<Rewrite>) -> String {
    let client: Client<HttpConnector, Body> =
        Client::builder(hyper_util::rt::TokioExecutor::new()).build(HttpConnector::new());
    let upstream = upstream.to_owned();
    let hold = hold.map(Arc::new);
    let app = axum::Router::new().fallback(move |req: Request| {
        let (client, upstream, hold, rewrite) = (
            client.clone(),
            upstream.clone(),
            hold.clone(),
            rewrite.clone(),
        );
        async move {
            let target = req
                .headers()
                .get("x-amz-target")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            if let Some(hold) = hold.filter(|h| target.ends_with(h.suffix)) {
                hold.held.fetch_add(1, Ordering::SeqCst);
                // Closed until opened; once opened it lets everything through.
                let _ = hold.open.acquire().await;
            }
            let (mut parts, body) = req.into_parts();
            let pq = parts
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned();
            parts.uri = format!("{upstream}{pq}").parse().unwrap();
            let response = client
                .request(Request::from_parts(parts, body))
                .await
                .unwrap();
            let Some(rewrite) = rewrite else {
                return response.map(Body::new);
            };
            let (mut parts, body) = response.into_parts();
            let bytes = body.collect().await.unwrap().to_bytes().to_vec();
            // The length changes with the body; hyper sets it again from the new one.
            parts.headers.remove(axum::http::header::CONTENT_LENGTH);
            axum::response::Response::from_parts(parts, Body::from(rewrite(&target, bytes)))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    endpoint
}

/// An HTTP proxy in front of the local endpoint that holds every request whose
/// `X-Amz-Target` ends with `hold_suffix` until [`Gate::open`], so a test can make one
/// client's write arrive after another client's, deterministically.
pub struct Gate {
    pub endpoint: String,
    open: Arc<tokio::sync::Semaphore>,
    pub held: Arc<AtomicUsize>,
}

impl Gate {
    pub async fn start(upstream: &str, hold_suffix: &'static str) -> Gate {
        let open = Arc::new(tokio::sync::Semaphore::new(0));
        let held = Arc::new(AtomicUsize::new(0));
        let hold = Hold {
            suffix: hold_suffix,
            open: open.clone(),
            held: held.clone(),
        };
        let endpoint = start_proxy(upstream, Some(hold), None).await;
        Gate {
            endpoint,
            open,
            held,
        }
    }

    /// Waits (bounded) until the gate holds at least one request.
    pub async fn wait_until_holding(&self) {
        wait_until("the gate to hold a request", PATIENCE, || {
            self.held.load(Ordering::SeqCst) > 0
        })
        .await;
    }

    pub fn open(&self) {
        self.open.add_permits(1 << 20);
    }
}

/// A Kinesis proxy whose GetRecords answers give each record whose data starts with
/// `marker` an `ApproximateArrivalTimestamp` `age` earlier than the emulator's: records
/// that arrived long ago, without waiting for them to age.
pub struct AgingProxy {
    pub endpoint: String,
}

impl AgingProxy {
    pub async fn start(upstream: &str, marker: &'static str, age: Duration) -> AgingProxy {
        let rewrite: Rewrite = Arc::new(move |target, body| {
            if !target.ends_with("GetRecords") {
                return body;
            }
            age_records(body, marker, age)
        });
        AgingProxy {
            endpoint: start_proxy(upstream, None, Some(rewrite)).await,
        }
    }

    pub fn kinesis_client(&self) -> aws_sdk_kinesis::Client {
        aws_sdk_kinesis::Client::new(&sdk_config_for(&self.endpoint))
    }
}

/// A GetRecords answer (JSON) with the marked records' arrival moved back by `age`.
fn age_records(body: Vec<u8>, marker: &str, age: Duration) -> Vec<u8> {
    let Ok(mut answer) = serde_json::from_slice::<Value>(&body) else {
        // An error the SDK should see as it is.
        return body;
    };
    let Some(records) = answer.get_mut("Records").and_then(Value::as_array_mut) else {
        return body;
    };
    for record in records {
        let data = record
            .get("Data")
            .and_then(Value::as_str)
            .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
            .unwrap_or_default();
        if !data.starts_with(marker.as_bytes()) {
            continue;
        }
        let arrival = record["ApproximateArrivalTimestamp"]
            .as_f64()
            .expect("GetRecords gives each record's arrival as epoch seconds");
        record["ApproximateArrivalTimestamp"] = (arrival - age.as_secs_f64()).into();
    }
    serde_json::to_vec(&answer).unwrap()
}
