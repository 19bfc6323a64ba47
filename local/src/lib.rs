//! The local stack: embedded AWS emulators and a local EventBridge Pipe runner, so the
//! whole pipeline runs on one machine with no AWS account. Never linked into a Lambda.

pub mod emulators;
pub mod kinesis;

pub use emulators::{sdk_config_for, EmulatorOptions, LocalAws};
