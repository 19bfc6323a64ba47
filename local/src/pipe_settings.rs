//! The Pipe's source settings, named as in `AWS::Pipes::Pipe`
//! `SourceParameters.KinesisStreamParameters`. One place defines the defaults; the local
//! runner uses them and a test checks infra/template.yaml sets the same values.
//!
//! `BatchSize` and `MaximumBatchingWindowInSeconds` are what docs/performance.md picks:
//! the capacity model's smallest batch with which one shard's processor keeps up with
//! twice a shard's 1,000 records/s, and no window, so that at 1,000 events/s an event
//! waits for the next poll (at most 200 ms while records flow) rather than for a window.

use clap::Args;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Args)]
#[serde(rename_all = "PascalCase")]
pub struct PipeSettings {
    /// Records per invocation (Pipes: 1-10000).
    #[arg(long = "batch-size", default_value_t = 1_000)]
    pub batch_size: u32,
    /// Seconds to gather records before invoking with a partial batch (Pipes: 0-300; 0:
    /// invoke with what each GetRecords returns).
    #[arg(long = "maximum-batching-window-in-seconds", default_value_t = 0)]
    pub maximum_batching_window_in_seconds: u32,
    /// Retries of a failing batch before it goes to the dead-letter queue (-1: until the
    /// record expires; Pipes: -1-10000).
    #[arg(
        long = "maximum-retry-attempts",
        default_value_t = 50,
        allow_negative_numbers = true
    )]
    pub maximum_retry_attempts: i32,
    /// Records older than this go to the dead-letter queue instead of the target (-1: never;
    /// Pipes: -1 or 60-604800). Kept days below the stream's 7-day retention, so a dead-lettered
    /// range can still be read back (and redriven) before Kinesis trims it.
    #[arg(
        long = "maximum-record-age-in-seconds",
        default_value_t = 82_800,
        allow_negative_numbers = true
    )]
    pub maximum_record_age_in_seconds: i32,
    /// Concurrent batches per shard (Pipes: 1-10). The local runner supports 1: one batch
    /// per shard at a time, which keeps a hot product's events strictly in order.
    #[arg(long = "parallelization-factor", default_value_t = 1)]
    pub parallelization_factor: u32,
    /// The only value Pipes accepts: halve a failing batch to isolate the bad record.
    #[arg(
        long = "on-partial-batch-item-failure",
        default_value = "AUTOMATIC_BISECT"
    )]
    pub on_partial_batch_item_failure: String,
    /// Where a new pipe starts reading.
    #[arg(long = "starting-position", default_value = "TRIM_HORIZON")]
    pub starting_position: String,
}

impl Default for PipeSettings {
    fn default() -> Self {
        Self {
            batch_size: 1_000,
            maximum_batching_window_in_seconds: 0,
            maximum_retry_attempts: 50,
            maximum_record_age_in_seconds: 82_800,
            parallelization_factor: 1,
            on_partial_batch_item_failure: "AUTOMATIC_BISECT".into(),
            starting_position: "TRIM_HORIZON".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("pipe setting {name}: {message}")]
pub struct InvalidSetting {
    pub name: &'static str,
    pub message: String,
}

impl PipeSettings {
    /// Checks the ranges Pipes enforces, plus what the local runner supports.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let bad = |name, message: &str| {
            Err(InvalidSetting {
                name,
                message: message.to_owned(),
            })
        };
        if !(1..=10_000).contains(&self.batch_size) {
            return bad("BatchSize", "must be 1 to 10000");
        }
        if self.maximum_batching_window_in_seconds > 300 {
            return bad("MaximumBatchingWindowInSeconds", "must be 0 to 300");
        }
        if !(-1..=10_000).contains(&self.maximum_retry_attempts) {
            return bad("MaximumRetryAttempts", "must be -1 to 10000");
        }
        let age = self.maximum_record_age_in_seconds;
        if age != -1 && !(60..=604_800).contains(&age) {
            return bad("MaximumRecordAgeInSeconds", "must be -1 or 60 to 604800");
        }
        if self.parallelization_factor != 1 {
            return bad(
                "ParallelizationFactor",
                "the local runner supports 1 (one batch per shard at a time)",
            );
        }
        if self.on_partial_batch_item_failure != "AUTOMATIC_BISECT" {
            return bad("OnPartialBatchItemFailure", "must be AUTOMATIC_BISECT");
        }
        if !matches!(self.starting_position.as_str(), "TRIM_HORIZON" | "LATEST") {
            return bad("StartingPosition", "must be TRIM_HORIZON or LATEST");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        settings: PipeSettings,
    }

    #[test]
    fn flag_defaults_equal_the_struct_defaults() {
        let parsed = Cli::parse_from(["x"]).settings;
        assert_eq!(parsed, PipeSettings::default());
        parsed.validate().unwrap();
    }

    #[test]
    fn out_of_range_settings_are_refused() {
        let s = PipeSettings {
            batch_size: 0,
            ..Default::default()
        };
        assert_eq!(s.validate().unwrap_err().name, "BatchSize");
        let s = PipeSettings {
            maximum_record_age_in_seconds: 30,
            ..Default::default()
        };
        assert!(s.validate().is_err());
    }
}
