//! The `inventory-ops` command line: [`Cli`], one [`Command`] per tool.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use inventory_generator::cli::ProducerArgs;
use inventory_generator::{ProducerConfig, Skew};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Operator tools for the inventory pipeline: replay the stream against the live table, soak the local stack"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Rebuild the inventory from the stream (TRIM_HORIZON) into fresh tables with the
    /// processor's code and compare them with the live table, item by item. Reaches the
    /// stream and tables the SDK's standard way (AWS_ENDPOINT_URL for the local stack, or
    /// AWS itself). Exits non-zero on any difference.
    Replay(ReplayArgs),
    /// Run the local pipeline at a sustained rate for a while, printing throughput, lag and
    /// memory every few seconds, then verify the result. Not part of the tests.
    Soak(SoakArgs),
}

// `inventory-ops replay`'s options (the subcommand's help is on [`Command::Replay`]).
#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// The Kinesis stream to read.
    #[arg(long, env = "STREAM_NAME", default_value = "inventory-events")]
    pub stream: String,
    /// The live inventory table.
    #[arg(long, env = "INVENTORY_TABLE", default_value = "inventory")]
    pub inventory_table: String,
    /// The live events table (only its name's suffix is reused for the replay's).
    #[arg(long, env = "EVENTS_TABLE", default_value = "inventory-events")]
    pub events_table: String,
    /// Prefix of the fresh tables the replay writes (default `replay-<unix time>-`).
    #[arg(long)]
    pub into: Option<String>,
}

// `inventory-ops soak`'s options (the subcommand's help is on [`Command::Soak`]).
#[derive(Debug, Clone, Args)]
pub struct SoakArgs {
    #[command(flatten)]
    pub stack: StackArgs,
    /// How long to publish.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Events per second.
    #[arg(long, default_value_t = 2_000.0)]
    pub rate: f64,
    /// Distinct products.
    #[arg(long, default_value_t = 1_000)]
    pub products: usize,
    /// Product popularity: `uniform`, `zipf` or `zipf:<exponent>`.
    #[arg(long, default_value = "zipf:1.1")]
    pub skew: Skew,
    /// Seconds between report lines.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub every: Duration,
    #[command(flatten)]
    pub producer: ProducerArgs,
}

impl SoakArgs {
    pub fn producer_config(&self) -> ProducerConfig {
        self.producer.config()
    }
}

/// Where the local stack listens and how its Pipe batches: as `inventory-local`'s.
pub use inventory_local::cli::StackArgs;

#[cfg(test)]
mod tests {
    use inventory_generator::RetryDistance;

    use super::*;

    fn cli(words: &str) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(words.split_whitespace())
    }

    #[test]
    fn replay_and_soak_read_their_options() {
        let Command::Replay(r) = cli("inventory-ops replay --stream s --into r-")
            .unwrap()
            .command
        else {
            panic!("replay is read as Replay");
        };
        assert_eq!((r.stream.as_str(), r.into.as_deref()), ("s", Some("r-")));
        let Command::Soak(s) =
            cli("inventory-ops soak --duration 30s --port 0 --producers 4 --retry-distance 1..50")
                .unwrap()
                .command
        else {
            panic!("soak is read as Soak");
        };
        assert_eq!(s.duration, Duration::from_secs(30));
        assert_eq!(s.stack.stack_options().port, 0);
        let p = s.producer_config();
        assert_eq!(
            (p.producers, p.retry_distance),
            (4, RetryDistance { min: 1, max: 50 })
        );
    }

    #[test]
    fn what_cannot_be_read_is_refused() {
        for bad in [
            "inventory-ops",
            "inventory-ops publish",
            "inventory-ops soak --duration soon",
            "inventory-ops soak --retry-distance 9..3",
            "inventory-ops soak --skew steep",
        ] {
            assert!(cli(bad).is_err(), "{bad}");
        }
    }
}
