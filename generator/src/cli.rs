//! The `generator` binary's command line ([`Cli`]), the simulation options ([`SimArgs`])
//! it shares with the local stack's `demo`, the producer options ([`ProducerArgs`]) those
//! share with `inventory-ops soak`, and the logging every command line starts
//! ([`init_logging`]).

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::publish::PublishProgress;
use crate::simulation::{
    new_run_id, parse_retry_distance, FaultRatios, ProducerConfig, RetryDistance, SimConfig,
    SimError, Simulation, Skew,
};

/// `generator publish` simulates a catalogue and publishes its events to Kinesis in real
/// time; `generator verify` checks DynamoDB against what was published.
#[derive(Debug, Parser)]
#[command(
    version,
    about = "Mock e-commerce event source for the inventory pipeline"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Simulate a catalogue and publish its events to Kinesis (PutRecords, partition key =
    /// product_id); write the expected final state as JSON.
    Publish(PublishArgs),
    /// Compare DynamoDB with an expected-state file; exit code 1 on any mismatch.
    Verify(VerifyArgs),
}

// `generator publish`'s options (the subcommand's help is on [`Command::Publish`]).
#[derive(Debug, Clone, Args)]
pub struct PublishArgs {
    /// Kinesis stream name.
    #[arg(long, env = "STREAM_NAME", default_value = "inventory-events")]
    pub stream: String,
    /// Where to write the expected final state.
    #[arg(long, default_value = "expected.json")]
    pub expected_out: PathBuf,
    #[command(flatten)]
    pub sim: SimArgs,
}

// `generator verify`'s options (the subcommand's help is on [`Command::Verify`]).
#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// The file `publish` wrote.
    #[arg(long, default_value = "expected.json")]
    pub expected: PathBuf,
    /// How long to wait for the pipeline to catch up (e.g. 30s, 2m).
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    #[arg(long, env = "INVENTORY_TABLE", default_value = "inventory")]
    pub inventory_table: String,
    #[arg(long, env = "EVENTS_TABLE", default_value = "inventory-events")]
    pub events_table: String,
    /// Products to list (the busiest first).
    #[arg(long, default_value_t = 20)]
    pub rows: usize,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// What to simulate.
#[derive(Debug, Clone, Args)]
pub struct SimArgs {
    /// Records to publish in all (faults and duplicates included).
    #[arg(long, default_value_t = 20_000, conflicts_with = "duration")]
    pub events: u64,
    /// Publish for this long at --rate instead of a fixed --events (e.g. 30s, 2m).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Events per second, paced in real time; 0 publishes as fast as Kinesis accepts.
    #[arg(long, default_value_t = 2_000.0)]
    pub rate: f64,
    /// Distinct products in the catalogue.
    #[arg(long, default_value_t = 200)]
    pub products: usize,
    /// Add every product first, one `product_added` each with a stock of 0 to 1,000 and a
    /// name of words to search by: with `--events` equal to `--products` and `--rate 0`, the
    /// fastest way to fill the stack with a catalog of that size.
    #[arg(long)]
    pub load_catalog: bool,
    /// Product popularity: `uniform`, `zipf` (exponent 1.1) or `zipf:<exponent>`.
    #[arg(long, default_value = "zipf:1.1")]
    pub skew: Skew,
    /// Seed for a reproducible run (random when omitted).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Prefix of this run's product ids (random when omitted), so runs never collide.
    #[arg(long)]
    pub run_id: Option<String>,
    /// Fraction of records that are a duplicate publish of the previous event (same event_id).
    #[arg(long, default_value_t = 0.0)]
    pub duplicates: f64,
    /// Fraction of records that are malformed (bad JSON, bad fields, unknown type, oversized).
    #[arg(long, default_value_t = 0.0)]
    pub malformed: f64,
    /// Fraction of records that are invalid transitions (oversell, double add, unknown product).
    #[arg(long, default_value_t = 0.0)]
    pub invalid: f64,
    #[command(flatten)]
    pub producer: ProducerArgs,
}

/// How many producers put the events, and which they put again late: the options a
/// simulation (`publish`, `demo`) and a soak (`inventory-ops soak`) share.
#[derive(Debug, Clone, Args)]
pub struct ProducerArgs {
    /// Concurrent producers (each its own PutRecords loop) sharing the products, hot ones
    /// included; a product's events still land in order (1 to 100).
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// Fraction of records that are a late retry: a producer puts an event again after its
    /// acknowledgement was lost (same bytes and event_id), --retry-distance records later.
    #[arg(long, default_value_t = 0.0)]
    pub retry_share: f64,
    /// Records put between an event and its late retry: MIN..MAX (both ends included),
    /// MIN..=MAX or one number.
    #[arg(long, default_value = "1..=2000", value_parser = parse_retry_distance)]
    pub retry_distance: RetryDistance,
}

impl ProducerArgs {
    pub fn config(&self) -> ProducerConfig {
        ProducerConfig {
            producers: self.producers,
            retry_share: self.retry_share,
            retry_distance: self.retry_distance,
        }
    }
}

impl SimArgs {
    pub fn to_config(&self) -> SimConfig {
        let events = match self.duration {
            Some(d) if self.rate > 0.0 => (d.as_secs_f64() * self.rate).round() as u64,
            _ => self.events,
        };
        SimConfig {
            products: self.products,
            events,
            skew: self.skew,
            seed: self.seed.unwrap_or_else(rand::random),
            run_id: self.run_id.clone().unwrap_or_else(new_run_id),
            faults: FaultRatios {
                duplicates: self.duplicates,
                malformed: self.malformed,
                invalid_transitions: self.invalid,
            },
        }
    }

    pub fn rate(&self) -> Option<f64> {
        (self.rate > 0.0).then_some(self.rate)
    }

    pub fn producer_config(&self) -> ProducerConfig {
        self.producer.config()
    }

    /// The simulation these options describe, every option checked.
    pub fn simulation(&self) -> Result<Simulation, SimError> {
        let producers = self.producer_config();
        producers.check_rate(self.rate())?;
        let simulation = Simulation::with_producers(self.to_config(), producers)?;
        Ok(if self.load_catalog {
            simulation.loading_catalog()
        } else {
            simulation
        })
    }
}

/// Logs to stderr at the levels `RUST_LOG` names, else at `default_filter` (a
/// `tracing_subscriber::EnvFilter` directive): the start of each of the workspace's command
/// lines.
pub fn init_logging(default_filter: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_filter.into()),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// A progress bar on a terminal, a plain line every few seconds otherwise.
pub fn progress_reporter(total: u64) -> impl FnMut(&PublishProgress) + Send {
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} published {pos}/{len} [{bar:30}] {per_sec} eta {eta} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    });
    let mut last_line = Instant::now();
    let mut finished = false;
    let started = Instant::now();
    move |p: &PublishProgress| match &bar {
        Some(bar) => {
            bar.set_position(p.acknowledged);
            if p.retried > 0 {
                bar.set_message(format!("({} retried)", p.retried));
            }
            if p.acknowledged >= p.total {
                bar.finish();
            }
        }
        None => {
            let done = p.acknowledged >= p.total;
            if (last_line.elapsed() >= Duration::from_secs(2) && !done) || (done && !finished) {
                last_line = Instant::now();
                finished = done;
                eprintln!(
                    "published {}/{} records ({:.0}/s, {} retried)",
                    p.acknowledged,
                    p.total,
                    p.acknowledged as f64 / started.elapsed().as_secs_f64().max(1e-9),
                    p.retried
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// The simulation options alone.
    #[derive(Parser)]
    struct SimOnly {
        #[command(flatten)]
        sim: SimArgs,
    }

    fn parse(args: &[&str]) -> Result<SimArgs, String> {
        SimOnly::try_parse_from(std::iter::once("generator").chain(args.iter().copied()))
            .map(|c| c.sim)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_command_line_reads_each_subcommand_and_refuses_what_it_cannot_read() {
        let cli = |words: &str| Cli::try_parse_from(words.split_whitespace());
        let Command::Verify(v) = cli("generator verify --timeout 2m --rows 5 --json")
            .unwrap()
            .command
        else {
            panic!("verify is read as Verify");
        };
        assert_eq!(
            (v.timeout, v.rows, v.json, v.expected.to_str()),
            (Duration::from_secs(120), 5, true, Some("expected.json"))
        );
        let Command::Publish(p) = cli("generator publish --events 10 --expected-out e.json")
            .unwrap()
            .command
        else {
            panic!("publish is read as Publish");
        };
        assert_eq!(
            (p.sim.events, p.expected_out.to_str()),
            (10, Some("e.json"))
        );
        for bad in [
            "generator",
            "generator replay",
            "generator verify --timeout soon",
            "generator publish --retry-distance 5..1",
        ] {
            assert!(cli(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn retry_distances_read_as_inclusive_ranges() {
        let d = |s: &str| parse_retry_distance(s).map(|d| (d.min, d.max));
        assert_eq!(d("1..2000").unwrap(), (1, 2000));
        assert_eq!(d("1..=2000").unwrap(), (1, 2000));
        assert_eq!(d(" 10 - 20 ").unwrap(), (10, 20));
        assert_eq!(d("500").unwrap(), (500, 500));
        assert_eq!(d("0..0").unwrap(), (0, 0));
        for bad in ["", "..", "1..", "..5", "a..b", "-1..5", "1.5..3", "1..2..3"] {
            let e = d(bad).unwrap_err().to_string();
            assert!(e.contains("MIN..MAX"), "{bad}: {e}");
        }
        let e = d("2000..1").unwrap_err().to_string();
        assert!(e.contains("MIN <= MAX"), "{e}");
        assert!(d("1..2000000").is_err());
        assert_eq!(RetryDistance::default().to_string(), "1..=2000");
    }

    #[test]
    fn producer_options_default_to_one_producer_without_late_retries() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.producer_config(), ProducerConfig::default());
        let sim = args.simulation().unwrap();
        assert_eq!(sim.producers().producers, 1);
    }

    #[test]
    fn producer_options_are_read_and_checked() {
        let args = parse(&[
            "--producers",
            "4",
            "--retry-share",
            "0.05",
            "--retry-distance",
            "1..2000",
        ])
        .unwrap();
        let p = args.simulation().unwrap().producers().to_owned();
        assert_eq!(
            (p.producers, p.retry_share, p.retry_distance),
            (4, 0.05, RetryDistance { min: 1, max: 2000 })
        );

        let e = parse(&["--retry-distance", "2000..1"]).err().unwrap();
        assert!(
            e.contains("--retry-distance") && e.contains("MIN <= MAX"),
            "{e}"
        );
        let e = parse(&["--producers", "many"]).err().unwrap();
        assert!(e.contains("--producers"), "{e}");
        let refused = |args: &[&str]| parse(args).unwrap().simulation().err().unwrap().to_string();
        assert!(refused(&["--producers", "0"]).contains("--producers must be between 1 and 100"));
        assert!(refused(&["--retry-share", "1.2"]).contains("--retry-share"));
        assert!(refused(&["--retry-share", "0.5", "--duplicates", "0.5"]).contains("at most 0.9"));
        let e = refused(&[
            "--retry-share",
            "0.05",
            "--rate",
            "2",
            "--retry-distance",
            "1..2000",
        ]);
        assert!(e.contains("raise --rate"), "{e}");
    }
}
