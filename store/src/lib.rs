//! The DynamoDB side of the pipeline: where each table's items live and how they are
//! encoded. The processor, the API, the generator and the local tools all read and write
//! through it, so the layout is defined once.

pub mod batch;
pub mod catalog;
pub mod config;
pub mod dead_letters;
pub mod error;
pub mod history;
pub mod items;
pub mod locks;
pub mod redrive_lock;
pub mod rejections;
pub mod shard_log;
pub mod simulation_lock;
pub mod simulations;
pub mod stats;
pub mod tables;

pub use config::Tables;
pub use error::StoreError;
pub use items::ProductItem;
pub use rejections::RejectionItem;
pub use stats::{StatsCounters, StatsItem};

/// Builds a DynamoDB client the SDK's standard way (region, credentials chain,
/// `AWS_ENDPOINT_URL`), so one binary runs against AWS and the local emulator.
pub async fn dynamodb_client_from_env() -> aws_sdk_dynamodb::Client {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    aws_sdk_dynamodb::Client::new(&config)
}
