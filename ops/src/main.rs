//! `inventory-ops replay` rebuilds the inventory from the stream into fresh tables and
//! compares them with the live table; `inventory-ops soak` runs the local pipeline at a
//! sustained rate and verifies the result. The command line is [`inventory_ops::cli::Cli`].

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use clap::Parser as _;
use inventory_generator::cli::init_logging;
use inventory_generator::progress::{Reporter, LINE_EVERY};
use inventory_generator::publish::{PublishError, PublishProgress};
use inventory_generator::verify::render;
use inventory_generator::{
    new_run_id, publish, verify, FaultRatios, PublishOptions, SimConfig, Simulation, VerifyOptions,
};
use inventory_local::lambda_host::{processor_binary, LambdaHost, LambdaHostOptions};
use inventory_local::pipe::PipeHandle;
use inventory_local::stack::LocalStack;
use inventory_ops::cli::{Cli, Command, ReplayArgs, SoakArgs};
use inventory_ops::replay::{replay, ReplayProgress, ReplayReport};
use inventory_store::Tables;

/// Most processor instances a replay runs at once (it replays the shards that are ready
/// together, one batch per shard at a time).
const REPLAY_PROCESSOR_INSTANCES: usize = 16;

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    init_logging("warn,inventory_ops=info,inventory_local=info,dynoxide=error");
    match Cli::parse().command {
        Command::Replay(args) => replay_command(args).await,
        Command::Soak(args) => soak(args).await,
    }
}

/// `inventory-ops replay`: replays the stream into fresh tables through the processor
/// binary and prints how they compare with the live ones.
async fn replay_command(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let config = inventory_generator::aws::sdk_config().await?;
    let live = Tables {
        inventory: args.inventory_table,
        events: args.events_table,
    };
    let prefix = args
        .into
        .unwrap_or_else(|| format!("replay-{}-", chrono::Utc::now().timestamp()));
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
    let stream = args.stream;
    println!(
        "Replaying stream {stream} from TRIM_HORIZON into {} (and {}), then comparing with {}…",
        fresh.inventory, fresh.events, live.inventory
    );
    let reporter = Mutex::new(Reporter::new(
        None,
        "{spinner} {msg} [{elapsed}]",
        LINE_EVERY,
    ));
    let progress = |p: ReplayProgress| show_replay_progress(&reporter, p);
    let report = replay(
        &aws_sdk_kinesis::Client::new(&config),
        &aws_sdk_dynamodb::Client::new(&config),
        &stream,
        &live,
        &fresh,
        &processor,
        &progress,
    )
    .await?;
    lock(&reporter).finish(&format!(
        "replay: {} records replayed and compared",
        report.records
    ));
    Ok(print_replay_report(&report))
}

/// Progress of the replay on stderr: a spinner on a terminal, a line every few seconds
/// otherwise, and a line as comparing starts.
fn show_replay_progress(reporter: &Mutex<Reporter>, progress: ReplayProgress) {
    let mut reporter = lock(reporter);
    match progress {
        ReplayProgress::Replaying {
            records,
            shards_done,
            shards,
        } => reporter.update(records, || {
            format!(
                "replay: {records} records replayed, {shards_done} of {shards} shards to their end"
            )
        }),
        ReplayProgress::Comparing { records } => reporter.note(
            records,
            &format!("replay: {records} records replayed; reading and comparing the tables"),
        ),
    }
}

fn lock(reporter: &Mutex<Reporter>) -> MutexGuard<'_, Reporter> {
    // Only a panic while showing progress poisons it; the progress shown is still right.
    reporter.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Prints the replay's figures, differences and verdict; failure on any difference.
fn print_replay_report(report: &ReplayReport) -> ExitCode {
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
        ExitCode::SUCCESS
    } else {
        println!("verdict: {} differences", report.differences.len());
        ExitCode::FAILURE
    }
}

/// `inventory-ops soak`: sustained publishing with periodic figures, then a verdict.
async fn soak(args: SoakArgs) -> anyhow::Result<ExitCode> {
    let producers = args.producer_config();
    // Refuse bad settings before starting the stack.
    producers.check_rate(Some(args.rate))?;
    let stack = LocalStack::start(args.stack.stack_options()).await?;
    let (pipe, processor) = stack.start_processor_pipe()?;
    let simulation = soak_simulation(&args)?;
    println!(
        "Soak: {} events at {:.0}/s for {} over {} products by {} producers ({:.1}% late retries {} records later); a line every {}.",
        simulation.config().events,
        args.rate,
        humantime::format_duration(args.duration),
        args.products,
        producers.producers,
        producers.retry_share * 100.0,
        producers.retry_distance,
        humantime::format_duration(args.every)
    );
    let published = Arc::new(AtomicU64::new(0));
    let publisher = spawn_publisher(&stack, simulation, args.rate, published.clone());
    report_until_delivered(&stack, &pipe, &processor, args.every, || {
        // Finished first: the count read after it is final.
        let finished = publisher.is_finished();
        (published.load(Ordering::Relaxed), finished)
    })
    .await;
    let (simulation, result) = publisher.await?;
    result?;
    let expected = simulation.expected();
    let verdict = verify(
        &stack.db,
        &stack.options.tables,
        &expected,
        &VerifyOptions {
            timeout: Duration::from_secs(300),
            progress: true,
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

/// The soak's simulation: `--duration` at `--rate`, with a few faults of each kind.
fn soak_simulation(args: &SoakArgs) -> anyhow::Result<Simulation> {
    let events = (args.duration.as_secs_f64() * args.rate).round() as u64;
    let config = SimConfig {
        products: args.products,
        events,
        skew: args.skew,
        seed: rand::random(),
        run_id: new_run_id(),
        faults: FaultRatios {
            duplicates: 0.05,
            malformed: 0.01,
            invalid_transitions: 0.01,
        },
    };
    Ok(Simulation::with_producers(config, args.producer_config())?)
}

/// Publishes the simulation at `rate` in a background task, counting acknowledged records
/// in `published`; the task gives the simulation back with the outcome.
fn spawn_publisher(
    stack: &LocalStack,
    mut simulation: Simulation,
    rate: f64,
    published: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<(Simulation, Result<(), PublishError>)> {
    let kinesis = stack.kinesis.clone();
    let options = PublishOptions {
        stream: stack.options.stream.clone(),
        rate: Some(rate),
        max_attempts: 20,
        deadline: None,
    };
    tokio::spawn(async move {
        let mut progress = |p: &PublishProgress| published.store(p.acknowledged, Ordering::Relaxed);
        let result = publish(&kinesis, &mut simulation, &options, &mut progress).await;
        (simulation, result.map(|_| ()))
    })
}

/// Prints a line of figures every `every` until publishing has finished and the Pipe has
/// delivered everything published. `progress` gives (records published, whether
/// publishing has finished).
async fn report_until_delivered(
    stack: &LocalStack,
    pipe: &PipeHandle,
    processor: &LambdaHost,
    every: Duration,
    progress: impl Fn() -> (u64, bool),
) {
    println!("elapsed_s published delivered events_per_s backlog lag_ms rss_mb peak_rss_mb");
    let started = Instant::now();
    let mut last = (0u64, started);
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let delivered = pipe.stats.records_delivered.load(Ordering::Relaxed);
        let (sent, finished) = progress();
        let per_s = (delivered - last.0) as f64 / last.1.elapsed().as_secs_f64().max(1e-9);
        last = (delivered, Instant::now());
        let (rss, peak) = memory_mb(&processor.pids());
        println!(
            "{:>9.0} {sent:>9} {delivered:>9} {per_s:>12.0} {:>7} {:>6} {rss:>6.0} {peak:>11.0}",
            started.elapsed().as_secs_f64(),
            sent.saturating_sub(delivered),
            lag_ms(stack).await.map_or("-".into(), |l| l.to_string()),
        );
        if finished && delivered >= sent {
            break;
        }
    }
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
