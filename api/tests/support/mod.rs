//! What the API's integration tests share: DynamoDB clients for an embedded dynoxide or for
//! a stand-in endpoint, configured as the SDK would be against AWS.

#![allow(dead_code)] // each test file uses a part

use aws_sdk_dynamodb::Client;
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt as _;
use inventory_store::tables::ensure_tables;
use inventory_store::Tables;
use serde_json::Value;
use tower::ServiceExt as _;

/// A client for the DynamoDB endpoint at `addr`, with test credentials.
pub fn client_at(addr: std::net::SocketAddr) -> Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .endpoint_url(format!("http://{addr}"))
        .build();
    Client::from_conf(config)
}

/// An embedded dynoxide on 127.0.0.1:0 with the pipeline's tables, named with `prefix`.
pub async fn dynamodb(prefix: &str) -> (Client, Tables) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let db = dynoxide::Database::memory().unwrap();
    tokio::spawn(dynoxide::server::serve_on(listener, db));
    let client = client_at(addr);
    let tables = Tables::with_prefix(prefix);
    ensure_tables(&client, &tables).await.unwrap();
    (client, tables)
}

/// A DynamoDB endpoint that answers every request with `{}` (what PutItem returns), for
/// tests of what the API does before and around its writes.
pub async fn accepting_dynamodb() -> Client {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = Router::new()
        .fallback(|| async { ([(header::CONTENT_TYPE, "application/x-amz-json-1.0")], "{}") });
    tokio::spawn(async move { axum::serve(listener, fake).await });
    client_at(addr)
}

/// The bearer token the tests' API is configured with.
pub const TOKEN: &str = "test-token-0123456789";

/// One request through the router: its status and JSON body (`null` when not JSON).
pub async fn call(router: &Router, req: Request<Body>) -> (StatusCode, Value) {
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// `POST /api/simulations` with `body`, signed in with [`TOKEN`].
pub fn start(body: &str) -> Request<Body> {
    Request::post("/api/simulations")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::from(body.to_owned()))
        .unwrap()
}
