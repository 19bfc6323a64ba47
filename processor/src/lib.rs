//! The processor Lambda's library: everything but the runtime loop, so tests and the local
//! Pipe runner drive the same code the Lambda runs.

pub mod body;
pub mod config;
pub mod error;
pub mod handler;
pub mod metrics;

pub use config::ProcessorConfig;
pub use error::ProcessorError;
pub use handler::{BatchReport, Phases, Processor, ProcessorSettings};
pub use inventory_store::{dynamodb_client_from_env, Tables};
pub use inventory_stream::{FixedShards, KinesisShards, ListShards};
