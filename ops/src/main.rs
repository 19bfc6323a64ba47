//! `inventory-ops replay` rebuilds the inventory from the stream into fresh tables and
//! compares them with the live table; `inventory-ops soak` runs the local pipeline at a
//! sustained rate and verifies the result.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use inventory_generator::verify::render;
use inventory_generator::{
    publish, verify, ProducerConfig, PublishOptions, RetryDistance, Simulation, VerifyOptions,
};
use inventory_local::lambda_host::{processor_binary, LambdaHost, LambdaHostOptions};
use inventory_local::pipe_settings::PipeSettings;
use inventory_local::stack::{LocalStack, StackOptions};
use inventory_ops::replay::replay;
use inventory_store::Tables;

#[derive(Parser)]
#[command(
    version,
    about = "Operator tools for the inventory pipeline: replay the stream against the live table, soak the local stack"
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
    data_dir: Option<std::path::PathBuf>,
    /// Shards of the Kinesis stream.
    #[arg(long, default_value_t = 4)]
    shards: i32,
    #[command(flatten)]
    pipe: PipeSettings,
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

#[derive(Subcommand)]
enum Command {
    /// Rebuild the inventory from the stream (TRIM_HORIZON) into fresh tables with the
    /// processor's code and compare them with the live table, item by item. Reaches the
    /// stream and tables the SDK's standard way (AWS_ENDPOINT_URL for the local stack, or
    /// AWS itself). Exits non-zero on any difference.
    Replay {
        /// The Kinesis stream to read.
        #[arg(long, env = "STREAM_NAME", default_value = "inventory-events")]
        stream: String,
        /// The live inventory table.
        #[arg(long, env = "INVENTORY_TABLE", default_value = "inventory")]
        inventory_table: String,
        /// The live events table (only its name's suffix is reused for the replay's).
        #[arg(long, env = "EVENTS_TABLE", default_value = "inventory-events")]
        events_table: String,
        /// Prefix of the fresh tables the replay writes (default `replay-<unix time>-`).
        #[arg(long)]
        into: Option<String>,
    },
    /// Run the local pipeline at a sustained rate for a while, printing throughput, lag and
    /// memory every few seconds, then verify the result. Not part of the tests.
    Soak {
        #[command(flatten)]
        stack: StackArgs,
        /// How long to publish.
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Events per second.
        #[arg(long, default_value_t = 2_000.0)]
        rate: f64,
        /// Distinct products.
        #[arg(long, default_value_t = 1_000)]
        products: usize,
        /// Product popularity: `uniform`, `zipf` or `zipf:<exponent>`.
        #[arg(long, default_value = "zipf:1.1")]
        skew: inventory_generator::Skew,
        /// Seconds between report lines.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        every: Duration,
        /// Concurrent producers sharing the products (1 to 100).
        #[arg(long, default_value_t = 1)]
        producers: usize,
        /// Fraction of records that are a producer's late retry of an earlier event.
        #[arg(long, default_value_t = 0.0)]
        retry_share: f64,
        /// Records put between an event and its late retry: MIN..MAX (both ends included),
        /// MIN..=MAX or one number.
        #[arg(long, default_value = "1..=2000", value_parser = inventory_generator::simulation::parse_retry_distance)]
        retry_distance: RetryDistance,
    },
}

/// Most processor instances a replay runs at once (it replays the shards that are ready
/// together, one batch per shard at a time).
const REPLAY_PROCESSOR_INSTANCES: usize = 16;
#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                "warn,inventory_ops=info,inventory_local=info,dynoxide=error".into()
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Replay {
            stream,
            inventory_table,
            events_table,
            into,
        } => {
            let config = inventory_generator::aws::sdk_config().await?;
            let live = Tables {
                inventory: inventory_table,
                events: events_table,
            };
            let prefix =
                into.unwrap_or_else(|| format!("replay-{}-", chrono::Utc::now().timestamp()));
            let fresh = Tables {
                inventory: format!("{prefix}{}", live.inventory),
                events: format!("{prefix}{}", live.events),
            };
            // The processor binary, reaching AWS (or the local stack) as this process does.
            let env = std::env::vars()
                .filter(|(k, _)| k.starts_with("AWS_") || k == "HOME")
                .filter(|(k, _)| k != "INVENTORY_TABLE" && k != "EVENTS_TABLE")
                .chain([
                    ("INVENTORY_TABLE".to_owned(), fresh.inventory.clone()),
                    ("EVENTS_TABLE".to_owned(), fresh.events.clone()),
                ]);
            let processor = LambdaHost::new(LambdaHostOptions::processor(
                processor_binary()?,
                env,
                REPLAY_PROCESSOR_INSTANCES,
            ));
            println!(
                "Replaying stream {stream} from TRIM_HORIZON into {} (and {}), then comparing with {}…",
                fresh.inventory, fresh.events, live.inventory
            );
            let report = replay(
                &aws_sdk_kinesis::Client::new(&config),
                &aws_sdk_dynamodb::Client::new(&config),
                &stream,
                &live,
                &fresh,
                &processor,
            )
            .await?;
            println!(
                "replayed {} records from {} shards: {} applied, {} rejected, {} duplicates ignored",
                report.records, report.shards, report.applied, report.rejected, report.duplicates
            );
            println!(
                "compared: {} products identical, {} live products ahead of the replay point, {} live products with no event left in the stream (older than its retention)",
                report.identical, report.live_ahead, report.not_in_stream
            );
            for d in report.differences.iter().take(50) {
                println!("  difference: {d:?}");
            }
            if report.is_identical() {
                println!("verdict: identical ({} events replayed)", report.records);
                Ok(ExitCode::SUCCESS)
            } else {
                println!("verdict: {} differences", report.differences.len());
                Ok(ExitCode::FAILURE)
            }
        }
        Command::Soak {
            stack,
            duration,
            rate,
            products,
            skew,
            every,
            producers,
            retry_share,
            retry_distance,
        } => {
            let producers = ProducerConfig {
                producers,
                retry_share,
                retry_distance,
            };
            soak(
                stack_options(&stack),
                duration,
                rate,
                products,
                skew,
                every,
                producers,
            )
            .await
        }
    }
}

/// The soak run: sustained publishing with periodic figures, then a verdict.
async fn soak(
    options: StackOptions,
    duration: Duration,
    rate: f64,
    products: usize,
    skew: inventory_generator::Skew,
    every: Duration,
    producers: ProducerConfig,
) -> anyhow::Result<ExitCode> {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    // Refuse bad settings before starting the stack.
    producers.check_rate(Some(rate))?;
    let stack = LocalStack::start(options).await?;
    let (pipe, processor) = stack.start_processor_pipe()?;
    let events = (duration.as_secs_f64() * rate).round() as u64;
    let simulation = Simulation::with_producers(
        inventory_generator::SimConfig {
            products,
            events,
            skew,
            seed: rand::random(),
            run_id: inventory_generator::new_run_id(),
            faults: inventory_generator::FaultRatios {
                duplicates: 0.05,
                malformed: 0.01,
                invalid_transitions: 0.01,
            },
        },
        producers,
    )?;
    println!(
        "Soak: {events} events at {rate:.0}/s for {} over {products} products by {} producers ({:.1}% late retries {} records later); a line every {}.",
        humantime::format_duration(duration),
        producers.producers,
        producers.retry_share * 100.0,
        producers.retry_distance,
        humantime::format_duration(every)
    );
    println!("elapsed_s published delivered events_per_s backlog lag_ms rss_mb peak_rss_mb");
    let published = Arc::new(AtomicU64::new(0));
    let publisher = {
        let published = published.clone();
        let kinesis = stack.kinesis.clone();
        let stream = stack.options.stream.clone();
        tokio::spawn(async move {
            let mut simulation = simulation;
            let mut progress = |p: &inventory_generator::publish::PublishProgress| {
                published.store(p.acknowledged, Ordering::Relaxed);
            };
            let result = publish(
                &kinesis,
                &mut simulation,
                &PublishOptions {
                    stream,
                    rate: Some(rate),
                    max_attempts: 20,
                    deadline: None,
                },
                &mut progress,
            )
            .await;
            (simulation, result)
        })
    };
    let started = std::time::Instant::now();
    let mut last = (0u64, started);
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let delivered = pipe.stats.records_delivered.load(Ordering::Relaxed);
        let sent = published.load(Ordering::Relaxed);
        let per_s = (delivered - last.0) as f64 / last.1.elapsed().as_secs_f64().max(1e-9);
        last = (delivered, std::time::Instant::now());
        let (rss, peak) = memory_mb(&processor.pids());
        println!(
            "{:>9.0} {sent:>9} {delivered:>9} {per_s:>12.0} {:>7} {:>6} {rss:>6.0} {peak:>11.0}",
            started.elapsed().as_secs_f64(),
            sent.saturating_sub(delivered),
            lag_ms(&stack).await.map_or("-".into(), |l| l.to_string()),
        );
        if publisher.is_finished() && delivered >= sent {
            break;
        }
    }
    let (simulation, result) = publisher.await?;
    result?;
    let expected = simulation.expected();
    let verdict = verify(
        &stack.db,
        &stack.options.tables,
        &expected,
        &VerifyOptions {
            timeout: Duration::from_secs(300),
            ..VerifyOptions::default()
        },
    )
    .await?;
    print!("{}", render(&expected, &verdict, 10));
    pipe.stop().await?;
    Ok(if verdict.is_consistent() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The processor's latest figure of how old an event was when it was applied.
async fn lag_ms(stack: &LocalStack) -> Option<i64> {
    inventory_store::stats::read_total(&stack.db, &stack.options.tables)
        .await
        .ok()??
        .last_lag_ms
}

/// Resident and peak resident memory, MB, of this process (emulators, Pipe, API) and the
/// processor instances `pids` (each one's peak, added up).
fn memory_mb(pids: &[u32]) -> (f64, f64) {
    let of = |process: String| {
        let status = std::fs::read_to_string(format!("/proc/{process}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
                .map_or(0.0, |kb| kb / 1024.0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    };
    std::iter::once("self".to_owned())
        .chain(pids.iter().map(u32::to_string))
        .map(of)
        .fold((0.0, 0.0), |(rss, peak), (r, p)| (rss + r, peak + p))
}
