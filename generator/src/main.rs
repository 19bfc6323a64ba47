//! `generator publish` simulates a catalogue and publishes its events to Kinesis in real
//! time; `generator verify` checks DynamoDB against what was published.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use inventory_generator::cli::{progress_reporter, SimArgs};
use inventory_generator::verify::render;
use inventory_generator::{publish, verify, Expected, PublishOptions, VerifyOptions};
use inventory_store::Tables;

#[derive(Parser)]
#[command(
    version,
    about = "Mock e-commerce event source for the inventory pipeline"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Simulate a catalogue and publish its events to Kinesis (PutRecords, partition key =
    /// product_id); write the expected final state as JSON.
    Publish {
        /// Kinesis stream name.
        #[arg(long, env = "STREAM_NAME", default_value = "inventory-events")]
        stream: String,
        /// Where to write the expected final state.
        #[arg(long, default_value = "expected.json")]
        expected_out: PathBuf,
        #[command(flatten)]
        sim: SimArgs,
    },
    /// Compare DynamoDB with an expected-state file; exit code 1 on any mismatch.
    Verify {
        /// The file `publish` wrote.
        #[arg(long, default_value = "expected.json")]
        expected: PathBuf,
        /// How long to wait for the pipeline to catch up (e.g. 30s, 2m).
        #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
        timeout: Duration,
        #[arg(long, env = "INVENTORY_TABLE", default_value = "inventory")]
        inventory_table: String,
        #[arg(long, env = "EVENTS_TABLE", default_value = "inventory-events")]
        events_table: String,
        /// Products to list (the busiest first).
        #[arg(long, default_value_t = 20)]
        rows: usize,
        /// Print the report as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    // After parsing: `--help` and argument errors never touch the AWS configuration.
    let config = inventory_generator::aws::sdk_config;
    match cli.command {
        Command::Publish {
            stream,
            expected_out,
            sim,
        } => {
            // Bad settings are refused before anything is sent.
            let mut simulation = sim.simulation()?;
            let kinesis = aws_sdk_kinesis::Client::new(&config().await?);
            let options = PublishOptions {
                stream,
                rate: sim.rate(),
                max_attempts: 20,
                deadline: None,
            };
            let mut progress = progress_reporter(simulation.config().events);
            let report = publish(&kinesis, &mut simulation, &options, &mut progress).await?;
            let expected = simulation.expected();
            std::fs::write(&expected_out, serde_json::to_vec_pretty(&expected)?)
                .with_context(|| format!("writing {}", expected_out.display()))?;
            println!(
                "published {} records in {:.1}s ({:.0}/s, {} calls, {} retried) by {} producers, {} late retries ({} cut short at the end); run {} seed {}; expected state in {}",
                report.records,
                report.elapsed.as_secs_f64(),
                report.records_per_second(),
                report.calls,
                report.retried,
                report.producers,
                report.late_retries,
                report.late_retries_cut_short,
                expected.config.run_id,
                expected.config.seed,
                expected_out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify {
            expected,
            timeout,
            inventory_table,
            events_table,
            rows,
            json,
        } => {
            let text = std::fs::read(&expected).with_context(|| {
                format!(
                    "reading {} (run `generator publish` first)",
                    expected.display()
                )
            })?;
            let expected: Expected = serde_json::from_slice(&text)
                .with_context(|| format!("{} is not an expected-state file", expected.display()))?;
            let db = aws_sdk_dynamodb::Client::new(&config().await?);
            let tables = Tables {
                inventory: inventory_table,
                events: events_table,
            };
            let options = VerifyOptions {
                timeout,
                ..VerifyOptions::default()
            };
            let report = verify(&db, &tables, &expected, &options).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", render(&expected, &report, rows));
            }
            Ok(if report.is_consistent() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
