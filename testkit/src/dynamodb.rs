//! DynamoDB for tests: the real SDK client configured as against AWS, reaching an embedded
//! dynoxide on 127.0.0.1 or a stand-in endpoint.

use aws_sdk_dynamodb::Client;
use axum::http::header;
use axum::Router;
use inventory_store::tables::ensure_tables;
use inventory_store::Tables;

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
