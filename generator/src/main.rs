//! `generator publish` simulates a catalogue and publishes its events to Kinesis in real
//! time; `generator verify` checks DynamoDB against what was published. The command line is
//! [`inventory_generator::cli::Cli`].

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use inventory_generator::aws::sdk_config;
use inventory_generator::cli::{
    init_logging, progress_reporter, Cli, Command, PublishArgs, VerifyArgs,
};
use inventory_generator::verify::render;
use inventory_generator::{publish, verify, Expected, PublishOptions, VerifyOptions};
use inventory_store::Tables;

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    init_logging("warn");
    // Parsed first: `--help` and argument errors never touch the AWS configuration.
    match Cli::parse().command {
        Command::Publish(args) => publish_command(args).await,
        Command::Verify(args) => verify_command(args).await,
    }
}

/// `generator publish`: publishes the simulation, then writes its expected state.
async fn publish_command(args: PublishArgs) -> anyhow::Result<ExitCode> {
    let PublishArgs {
        stream,
        expected_out,
        sim,
    } = args;
    // Bad settings are refused before anything is sent.
    let mut simulation = sim.simulation()?;
    let kinesis = aws_sdk_kinesis::Client::new(&sdk_config().await?);
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

/// `generator verify`: compares DynamoDB with the expected-state file; fails on a mismatch.
async fn verify_command(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read(&args.expected).with_context(|| {
        format!(
            "reading {} (run `generator publish` first)",
            args.expected.display()
        )
    })?;
    let expected: Expected = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not an expected-state file", args.expected.display()))?;
    let db = aws_sdk_dynamodb::Client::new(&sdk_config().await?);
    let tables = Tables {
        inventory: args.inventory_table,
        events: args.events_table,
    };
    let options = VerifyOptions {
        timeout: args.timeout,
        progress: true,
        ..VerifyOptions::default()
    };
    let report = verify(&db, &tables, &expected, &options).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&expected, &report, args.rows));
    }
    Ok(if report.is_consistent() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
