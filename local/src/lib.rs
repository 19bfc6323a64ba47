//! The local stack: embedded AWS emulators and a local EventBridge Pipe runner, so the
//! whole pipeline runs on one machine with no AWS account. Never linked into a Lambda.

pub mod cli;
pub mod dead_letter_queue;
pub mod emulators;
pub mod fault_proxy;
pub mod kinesis;
pub mod lambda_host;
mod net;
pub mod pipe;
pub mod pipe_settings;
pub mod poll_cadence;
pub mod runtime_api;
pub mod server;
pub mod stack;
mod update_shard_count;

pub use emulators::{sdk_config_for, EmulatorOptions, LocalAws};
