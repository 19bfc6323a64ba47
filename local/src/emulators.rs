//! The embedded AWS: dynoxide (DynamoDB on SQLite) and ferrokinesis (Kinesis), behind one
//! endpoint on 127.0.0.1 so every client is configured with a single `AWS_ENDPOINT_URL`.
//! Requests are routed by their `X-Amz-Target` (`DynamoDB_20120810.*` or `Kinesis_*`);
//! `UpdateShardCount` is answered here, as splits and merges that record lineage.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::ServiceExt as _;

/// Region and static credentials the local stack uses; the emulators accept any.
pub const LOCAL_REGION: &str = "us-east-1";
pub const LOCAL_ACCESS_KEY: &str = "local";
pub const LOCAL_SECRET_KEY: &str = "local";

#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("cannot listen on {addr}: {source}. Is another local stack running? Pick another port with --port")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot open the DynamoDB data file {path}: {message}. Check the directory is writable, or drop --data-dir to keep state in memory")]
    Database { path: String, message: String },
}

#[derive(Debug, Clone, Default)]
pub struct EmulatorOptions {
    /// Port of the single endpoint; 0 picks a free one.
    pub port: u16,
    /// Keep DynamoDB and Kinesis state here across restarts; in memory when `None`.
    pub data_dir: Option<PathBuf>,
    /// Enforce Kinesis' per-shard write limits (1,000 records/s, 1 MB/s), so producers see
    /// the partial PutRecords failures AWS returns under load.
    pub enforce_kinesis_limits: bool,
}

/// The DynamoDB emulator's database: in `data_dir` (created if need be), or in memory.
fn open_dynamodb(data_dir: Option<&std::path::Path>) -> Result<dynoxide::Database, EmulatorError> {
    let Some(dir) = data_dir else {
        return dynoxide::Database::memory().map_err(|e| EmulatorError::Database {
            path: ":memory:".into(),
            message: e.to_string(),
        });
    };
    let path = dir.join("dynamodb.sqlite3");
    std::fs::create_dir_all(dir).map_err(|e| EmulatorError::Database {
        path: dir.display().to_string(),
        message: e.to_string(),
    })?;
    dynoxide::Database::new(&path.to_string_lossy()).map_err(|e| EmulatorError::Database {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// The Kinesis emulator's settings: streams ready at once, its state kept in the data
/// directory when there is one.
fn kinesis_options(options: &EmulatorOptions) -> ferrokinesis::store::StoreOptions {
    ferrokinesis::store::StoreOptions {
        create_stream_ms: 0,
        delete_stream_ms: 0,
        update_stream_ms: 0,
        shard_limit: 64,
        enforce_limits: options.enforce_kinesis_limits,
        durable: options
            .data_dir
            .as_ref()
            .map(|dir| ferrokinesis::store::DurableStateOptions {
                state_dir: dir.join("kinesis"),
                snapshot_interval_secs: 30,
                max_retained_bytes: None,
            }),
        ..Default::default()
    }
}

/// Running emulators. Dropping it stops them.
pub struct LocalAws {
    endpoint: String,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl LocalAws {
    pub async fn start(options: EmulatorOptions) -> Result<Self, EmulatorError> {
        let (stop, stopped) = watch::channel(false);
        let until_stopped = move |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };

        let db = open_dynamodb(options.data_dir.as_deref())?;
        let dynamo_listener = bind(0).await?;
        let dynamo_addr = local_addr(&dynamo_listener)?;
        crate::net::nodelay_on_accepted(&dynamo_listener);
        let rx = stopped.clone();
        let dynamo_task = tokio::spawn(async move {
            if let Err(e) =
                dynoxide::server::serve_with_shutdown(dynamo_listener, db, until_stopped(rx)).await
            {
                tracing::error!(error = %e, "DynamoDB emulator stopped");
            }
        });

        let (kinesis, _store) = ferrokinesis::create_app(kinesis_options(&options));

        let listener = bind(options.port).await?;
        let addr = local_addr(&listener)?;
        let gateway = Gateway {
            kinesis,
            // Calls back into this endpoint, for UpdateShardCount's splits and merges.
            kinesis_client: aws_sdk_kinesis::Client::new(&sdk_config_for(&format!(
                "http://{addr}"
            ))),
            kinesis_puts: Arc::default(),
            dynamo: format!("http://{dynamo_addr}"),
            http: HttpClient::builder(TokioExecutor::new()).build(crate::net::connector()),
        };
        let app = Router::new().fallback(route).with_state(gateway);
        let rx = stopped.clone();
        let gateway_task = tokio::spawn(async move {
            if let Err(e) = axum::serve(crate::net::nodelay(listener), app)
                .with_graceful_shutdown(until_stopped(rx))
                .await
            {
                tracing::error!(error = %e, "local AWS endpoint stopped");
            }
        });
        Ok(Self {
            endpoint: format!("http://{addr}"),
            stop,
            tasks: vec![dynamo_task, gateway_task],
        })
    }

    /// The URL to give the SDKs (`AWS_ENDPOINT_URL`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// SDK configuration for this endpoint, as the environment variables printed by the
    /// local stack would give.
    pub fn sdk_config(&self) -> SdkConfig {
        sdk_config_for(&self.endpoint)
    }

    /// Stops accepting requests and waits briefly for requests in flight. Clients that keep
    /// idle connections open would hold a graceful shutdown forever, so after a grace
    /// period the servers are stopped regardless (every write is already durable).
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        for mut t in self.tasks.drain(..) {
            if tokio::time::timeout(std::time::Duration::from_secs(2), &mut t)
                .await
                .is_err()
            {
                t.abort();
            }
        }
    }
}

impl Drop for LocalAws {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// SDK configuration for a local endpoint with the local stack's region and credentials.
pub fn sdk_config_for(endpoint: &str) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(LOCAL_REGION))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
            aws_sdk_dynamodb::config::Credentials::new(
                LOCAL_ACCESS_KEY,
                LOCAL_SECRET_KEY,
                None,
                None,
                "inventory-local",
            ),
        ))
        .build()
}

async fn bind(port: u16) -> Result<TcpListener, EmulatorError> {
    let addr = format!("127.0.0.1:{port}");
    TcpListener::bind(&addr)
        .await
        .map_err(|source| EmulatorError::Bind { addr, source })
}

fn local_addr(listener: &TcpListener) -> Result<SocketAddr, EmulatorError> {
    listener.local_addr().map_err(|source| EmulatorError::Bind {
        addr: "127.0.0.1".into(),
        source,
    })
}

#[derive(Clone)]
struct Gateway {
    kinesis: Router,
    kinesis_client: aws_sdk_kinesis::Client,
    /// Held across each PutRecord/PutRecords. ferrokinesis numbers a put's records before it
    /// stores them, so with two puts in flight on a shard a reader could see the later one,
    /// move its iterator past it, and never see the earlier one (docs/challenges.md §15).
    /// Kinesis makes records readable in sequence order; one put at a time restores that.
    kinesis_puts: Arc<tokio::sync::Mutex<()>>,
    dynamo: String,
    http: HttpClient<HttpConnector, Body>,
}

async fn route(State(gw): State<Gateway>, req: Request) -> Response {
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let is_dynamo = target.starts_with("DynamoDB_");
    let is_put = target.ends_with(".PutRecord") || target.ends_with(".PutRecords");
    if target.ends_with(".UpdateShardCount") {
        // As Kinesis does it, by splits and merges that record each new shard's parents.
        let body = match axum::body::to_bytes(req.into_body(), 1 << 20).await {
            Ok(body) => body,
            Err(e) => return (axum::http::StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        };
        return crate::update_shard_count::answer(&gw.kinesis_client, &body).await;
    }
    if !is_dynamo {
        let _one_put_at_a_time = if is_put {
            Some(gw.kinesis_puts.lock().await)
        } else {
            None
        };
        return match gw.kinesis.oneshot(req).await {
            Ok(resp) => resp,
            Err(never) => match never {},
        };
    }
    forward(&gw.http, &gw.dynamo, req).await
}

/// Sends `req` to `upstream` (`http://host:port`) with the same path and query.
pub(crate) async fn forward(
    http: &HttpClient<HttpConnector, Body>,
    upstream: &str,
    req: Request,
) -> Response {
    let (mut parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    parts.uri = match format!("{upstream}{path}").parse() {
        Ok(uri) => uri,
        Err(_) => return (axum::http::StatusCode::BAD_REQUEST, "bad path").into_response(),
    };
    match http.request(Request::from_parts(parts, body)).await {
        Ok(resp) => resp.map(Body::new),
        Err(e) => (
            axum::http::StatusCode::BAD_GATEWAY,
            format!("upstream {upstream} unreachable: {e}"),
        )
            .into_response(),
    }
}
