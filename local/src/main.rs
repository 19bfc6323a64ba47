//! `inventory-local up` runs the local system until Ctrl-C; `inventory-local demo` runs it,
//! publishes a simulated series through it and verifies the result.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use inventory_api::ApiConfig;
use inventory_generator::cli::{progress_reporter, SimArgs};
use inventory_generator::verify::render;
use inventory_generator::{publish, verify, ProducerConfig, PublishOptions, VerifyOptions};
use inventory_local::pipe::dead_letters;
use inventory_local::pipe_settings::PipeSettings;
use inventory_local::server::{serve, ServerOptions};
use inventory_local::stack::{LocalStack, StackOptions};

#[derive(Parser)]
#[command(
    version,
    about = "The inventory pipeline on this machine: embedded DynamoDB and Kinesis, a local EventBridge Pipe and the processor"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct StackArgs {
    /// Port of the local AWS endpoint (DynamoDB and Kinesis); 0 picks a free one.
    #[arg(long, default_value_t = 4566)]
    port: u16,
    /// Keep DynamoDB and Kinesis state here across restarts (in memory when omitted).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Shards of the Kinesis stream.
    #[arg(long, default_value_t = 4)]
    shards: i32,
    #[command(flatten)]
    pipe: PipeSettings,
}

#[derive(Subcommand)]
enum Command {
    /// Start the local stack, the API and the console, and keep them running until Ctrl-C.
    Up {
        #[command(flatten)]
        stack: StackArgs,
        /// Port of the API and console.
        #[arg(long, default_value_t = 3000)]
        http_port: u16,
        /// Bearer token the API requires to start simulations (random when omitted).
        #[arg(long, env = "API_TOKEN")]
        api_token: Option<String>,
        /// The built console to serve (index.html and its assets).
        #[arg(long, env = "LEPTOS_SITE_ROOT", default_value = "target/site")]
        site_dir: PathBuf,
        /// Extra origins allowed by CORS (the console served elsewhere, e.g. a dev server).
        #[arg(long)]
        allowed_origin: Vec<String>,
    },
    /// Start the local stack, publish a simulated series through it, verify DynamoDB, and
    /// exit (non-zero on any mismatch).
    Demo {
        #[command(flatten)]
        stack: StackArgs,
        #[command(flatten)]
        sim: SimArgs,
        /// How long to wait for the pipeline to catch up before comparing.
        #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
        timeout: Duration,
        /// After a consistent verdict, keep the stack running and serve the console and API
        /// until Ctrl-C (only when run from a terminal; scripts get the exit code at once).
        #[arg(long)]
        serve: bool,
        /// Port of the console and API when serving.
        #[arg(long, default_value_t = 3000)]
        http_port: u16,
        /// The built console to serve.
        #[arg(long, default_value = "target/site")]
        site_dir: PathBuf,
    },
}

fn stack_options(args: &StackArgs) -> StackOptions {
    StackOptions {
        port: args.port,
        data_dir: args.data_dir.clone(),
        shards: args.shards,
        pipe: args.pipe.clone(),
        ..StackOptions::default()
    }
}

/// Records the demo's run as the API records its runs, so the console shows its verdict.
async fn record_demo_run(
    stack: &LocalStack,
    expected: &inventory_generator::Expected,
    verdict: &inventory_generator::VerifyReport,
    rate: f64,
) {
    let recorded = inventory_generator::run::completed_run(
        &ulid::Ulid::new().to_string(),
        expected,
        verdict,
        rate,
    );
    if let Err(e) =
        inventory_store::simulations::save_status(&stack.db, &stack.options.tables, &recorded).await
    {
        eprintln!("the demo's verdict was not recorded for the console: {e}");
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,inventory_local=info,dynoxide=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    // No arguments (as `cargo leptos watch` runs it) means `up`.
    let cli = if std::env::args_os().len() == 1 {
        Cli::parse_from(["inventory-local", "up"])
    } else {
        Cli::parse()
    };
    match cli.command {
        Command::Up {
            stack,
            http_port,
            api_token,
            site_dir,
            allowed_origin,
        } => {
            let stack = LocalStack::start(stack_options(&stack)).await?;
            let (pipe, _processor) = stack.start_processor_pipe()?;
            // Dead letters are archived as they come, as the queue's Lambda does in AWS.
            let _dead_letters = stack.start_dead_letter_queue();
            let token = api_token.unwrap_or_else(|| ulid::Ulid::new().to_string().to_lowercase());
            let mut origins = vec![
                format!("http://127.0.0.1:{http_port}"),
                format!("http://localhost:{http_port}"),
            ];
            origins.extend(allowed_origin);
            let has_console = site_dir.join("pkg/inventory_console.wasm").exists();
            let (addr, _server) = serve(
                &stack,
                ServerOptions {
                    port: http_port,
                    api: ApiConfig {
                        token: Some(token.clone()),
                        allowed_origins: origins,
                    },
                    site_dir: Some(site_dir.clone()),
                },
            )
            .await?;
            println!("Local stack running.");
            if has_console {
                println!("  console:  http://{addr}/");
            } else {
                println!(
                    "  console:  not built ({} has no index.html; `make console` builds it)",
                    site_dir.display()
                );
            }
            println!("  API:      http://{addr}/api  (OpenAPI: http://{addr}/api/openapi.json)");
            println!("  API token for starting simulations: {token}");
            println!("To use the stack from another shell:");
            for (k, v) in stack.env() {
                println!("export {k}={v}");
            }
            println!("Press Ctrl-C to stop.");
            pipe.run_until_ctrl_c().await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo {
            stack,
            sim,
            timeout,
            serve: keep_serving,
            http_port,
            site_dir,
        } => {
            // Bad settings are refused before the stack starts.
            let mut simulation = sim.simulation()?;
            let config = simulation.config().clone();
            let producers = *simulation.producers();
            let stack = LocalStack::start(stack_options(&stack)).await?;
            let (pipe, _processor) = stack.start_processor_pipe()?;
            let _dead_letters = stack.start_dead_letter_queue();
            println!(
                "Local stack on {} ({} shards). Publishing {} events over {} products ({:?}, {:.0}/s, run {}, seed {}) with {:.0}% duplicates, {:.0}% malformed, {:.0}% invalid transitions…",
                stack.aws.endpoint(),
                stack.options.shards,
                config.events,
                config.products,
                config.skew,
                sim.rate,
                config.run_id,
                config.seed,
                config.faults.duplicates * 100.0,
                config.faults.malformed * 100.0,
                config.faults.invalid_transitions * 100.0,
            );
            if producers != ProducerConfig::default() {
                println!(
                    "{} producers; {:.1}% of records are late retries {} records after their original",
                    producers.producers,
                    producers.retry_share * 100.0,
                    producers.retry_distance
                );
            }
            let mut progress = progress_reporter(simulation.config().events);
            let report = publish(
                &stack.kinesis,
                &mut simulation,
                &PublishOptions {
                    stream: stack.options.stream.clone(),
                    rate: sim.rate(),
                    max_attempts: 20,
                    deadline: None,
                },
                &mut progress,
            )
            .await?;
            let late = if report.late_retries > 0 {
                format!(
                    "; {} late retries, {} put short of their distance at the end",
                    report.late_retries, report.late_retries_cut_short
                )
            } else {
                String::new()
            };
            println!(
                "Published {} records in {:.1}s ({:.0}/s{late}). Waiting for the pipeline to catch up…\n",
                report.records,
                report.elapsed.as_secs_f64(),
                report.records_per_second()
            );
            let expected = simulation.expected();
            let verdict = verify(
                &stack.db,
                &stack.options.tables,
                &expected,
                &VerifyOptions {
                    timeout,
                    progress: true,
                    ..VerifyOptions::default()
                },
            )
            .await?;
            print!("{}", render(&expected, &verdict, 15));
            record_demo_run(&stack, &expected, &verdict, sim.rate).await;
            let stats = pipe.stats.snapshot();
            let dlq = dead_letters(
                &stack.db,
                &stack.options.pipe_table,
                &stack.options.pipe_name,
            )
            .await?;
            println!(
                "pipe: {} invocations, {} records delivered, {} dead-lettered",
                stats.invocations,
                stats.records_delivered,
                dlq.len()
            );
            if !verdict.is_consistent() {
                pipe.stop().await?;
                return Ok(ExitCode::FAILURE);
            }
            if keep_serving && std::io::stdin().is_terminal() {
                let token = ulid::Ulid::new().to_string().to_lowercase();
                let (addr, _server) = serve(
                    &stack,
                    ServerOptions {
                        port: http_port,
                        api: ApiConfig {
                            token: Some(token.clone()),
                            allowed_origins: vec![],
                        },
                        site_dir: Some(site_dir),
                    },
                )
                .await?;
                println!(
                    "\nConsole: http://{addr}/   (API token for starting simulations: {token})"
                );
                println!("The stack keeps running with the demo's data. Press Ctrl-C to stop.");
                pipe.run_until_ctrl_c().await?;
            } else {
                pipe.stop().await?;
                println!(
                    "\nRun `make dev` to keep the local stack running with the console and API."
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
