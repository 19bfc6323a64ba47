//! The processor Lambda's library: everything but the runtime loop, so tests and the local
//! Pipe runner drive the same code the Lambda runs.

pub mod body;
pub mod config;
pub mod dedup_log;
pub mod error;
pub mod handler;
pub mod items;
pub mod simulations;
pub mod tables;

pub use config::Tables;
pub use error::ProcessorError;
pub use handler::{BatchReport, Processor, ProcessorSettings};

/// Builds a DynamoDB client the SDK's standard way (region, credentials chain,
/// `AWS_ENDPOINT_URL`), so one binary runs against AWS and the local emulator.
pub async fn dynamodb_client_from_env() -> aws_sdk_dynamodb::Client {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    aws_sdk_dynamodb::Client::new(&config)
}
