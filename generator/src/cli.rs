//! Command-line options shared by the `generator` binary and the local stack's `demo`.

use std::io::IsTerminal as _;
use std::str::FromStr;
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::publish::PublishProgress;
use crate::sim::{new_run_id, FaultRatios, SimConfig, Skew};

impl FromStr for Skew {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            None if s == "uniform" => Ok(Skew::Uniform),
            None if s == "zipf" => Ok(Skew::Zipf(1.1)),
            Some(("zipf", e)) => e
                .parse::<f64>()
                .ok()
                .filter(|e| *e > 0.0 && e.is_finite())
                .map(Skew::Zipf)
                .ok_or_else(|| format!("`{e}` is not a positive Zipf exponent")),
            _ => Err(format!(
                "`{s}`: use `uniform`, `zipf` (exponent 1.1) or `zipf:<exponent>`"
            )),
        }
    }
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
