//! `inventory-local up` runs the local system until Ctrl-C; `inventory-local demo` runs it,
//! publishes a simulated series through it and verifies the result.

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use inventory_api::ApiConfig;
use inventory_generator::cli::{init_logging, progress_reporter};
use inventory_generator::verify::render;
use inventory_generator::{
    publish, verify, Expected, ProducerConfig, PublishOptions, PublishReport, Simulation,
    VerifyOptions, VerifyReport,
};
use inventory_local::cli::{Cli, Command, DemoArgs, UpArgs};
use inventory_local::dead_letter_queue::DeadLetterQueue;
use inventory_local::lambda_host::LambdaHost;
use inventory_local::pipe::{dead_letters, PipeHandle};
use inventory_local::server::{serve, ServerOptions};
use inventory_local::stack::LocalStack;

/// Records the demo's run as the API records its runs, so the console shows its verdict.
async fn record_demo_run(
    stack: &LocalStack,
    expected: &Expected,
    verdict: &VerifyReport,
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
    init_logging("warn,inventory_local=info,dynoxide=error");
    match Cli::parse_or_up(std::env::args_os()).command {
        Command::Up(args) => up(args).await,
        Command::Demo(args) => demo(args).await,
    }
}

/// `up`: the local stack, the API and the console, until Ctrl-C.
async fn up(args: UpArgs) -> anyhow::Result<ExitCode> {
    let UpArgs {
        stack,
        http_port,
        api_token,
        site_dir,
        allowed_origin,
    } = args;
    let stack = LocalStack::start(stack.stack_options()).await?;
    let (pipe, _processor) = stack.start_processor_pipe()?;
    // Dead letters are archived as they come, as the queue's Lambda does in AWS.
    let _dead_letters = stack.start_dead_letter_queue();
    let token = api_token.unwrap_or_else(random_token);
    let mut origins = vec![
        format!("http://127.0.0.1:{http_port}"),
        format!("http://localhost:{http_port}"),
    ];
    origins.extend(allowed_origin);
    let has_console = site_dir.join("pkg/inventory_console.wasm").exists();
    let (addr, _server) = serve_api(&stack, http_port, &token, origins, site_dir.clone()).await?;
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

/// A token for the API's simulation starts when none is given.
fn random_token() -> String {
    ulid::Ulid::new().to_string().to_lowercase()
}

/// Serves the API (requiring `token` to start simulations) and the console in `site_dir`.
async fn serve_api(
    stack: &LocalStack,
    port: u16,
    token: &str,
    allowed_origins: Vec<String>,
    site_dir: PathBuf,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let served = serve(
        stack,
        ServerOptions {
            port,
            api: ApiConfig {
                token: Some(token.to_owned()),
                allowed_origins,
            },
            site_dir: Some(site_dir),
        },
    )
    .await?;
    Ok(served)
}

/// `demo`: start the stack, publish a simulated series, verify DynamoDB, report, and serve
/// on (or stop).
async fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    // Bad settings are refused before the stack starts.
    let mut simulation = args.sim.simulation()?;
    let DemoStack {
        stack,
        pipe,
        _processor,
        _dead_letters,
    } = start_demo_stack(&args).await?;
    print_demo_plan(&args, &stack, &simulation);
    let report = publish_simulation(&stack, &mut simulation, &args).await?;
    print_published(&report);
    let expected = simulation.expected();
    let verdict = verify_demo(&stack, &expected, &args).await?;
    report_demo(&stack, &pipe, &expected, &verdict, args.sim.rate).await?;
    if !verdict.is_consistent() {
        pipe.stop().await?;
        return Ok(ExitCode::FAILURE);
    }
    serve_or_stop(&stack, pipe, &args).await?;
    Ok(ExitCode::SUCCESS)
}

/// The demo's running system; each part runs until it is dropped.
struct DemoStack {
    stack: LocalStack,
    pipe: PipeHandle,
    _processor: Arc<LambdaHost>,
    _dead_letters: DeadLetterQueue,
}

/// The demo's stack, its Pipe and processor running, and its dead-letter queue archiving.
async fn start_demo_stack(args: &DemoArgs) -> anyhow::Result<DemoStack> {
    let stack = LocalStack::start(args.stack.stack_options()).await?;
    let (pipe, processor) = stack.start_processor_pipe()?;
    let dead_letters = stack.start_dead_letter_queue();
    Ok(DemoStack {
        stack,
        pipe,
        _processor: processor,
        _dead_letters: dead_letters,
    })
}

/// What the demo is about to publish, and where.
fn print_demo_plan(args: &DemoArgs, stack: &LocalStack, simulation: &Simulation) {
    let config = simulation.config();
    println!(
        "Local stack on {} ({} shards). Publishing {} events over {} products ({:?}, {:.0}/s, run {}, seed {}) with {:.0}% duplicates, {:.0}% malformed, {:.0}% invalid transitions…",
        stack.aws.endpoint(),
        stack.options.shards,
        config.events,
        config.products,
        config.skew,
        args.sim.rate,
        config.run_id,
        config.seed,
        config.faults.duplicates * 100.0,
        config.faults.malformed * 100.0,
        config.faults.invalid_transitions * 100.0,
    );
    let producers = *simulation.producers();
    if producers != ProducerConfig::default() {
        println!(
            "{} producers; {:.1}% of records are late retries {} records after their original",
            producers.producers,
            producers.retry_share * 100.0,
            producers.retry_distance
        );
    }
}

/// Publishes the whole simulation to the stack's stream, showing progress.
async fn publish_simulation(
    stack: &LocalStack,
    simulation: &mut Simulation,
    args: &DemoArgs,
) -> anyhow::Result<PublishReport> {
    let sim = &args.sim;
    let mut progress = progress_reporter(simulation.config().events);
    let report = publish(
        &stack.kinesis,
        simulation,
        &PublishOptions {
            stream: stack.options.stream.clone(),
            rate: sim.rate(),
            max_attempts: 20,
            deadline: None,
        },
        &mut progress,
    )
    .await?;
    Ok(report)
}

fn print_published(report: &PublishReport) {
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
}

/// Waits (up to the demo's timeout) for DynamoDB to hold what the simulation expects.
async fn verify_demo(
    stack: &LocalStack,
    expected: &Expected,
    args: &DemoArgs,
) -> anyhow::Result<VerifyReport> {
    let timeout = args.timeout;
    let verdict = verify(
        &stack.db,
        &stack.options.tables,
        expected,
        &VerifyOptions {
            timeout,
            progress: true,
            ..VerifyOptions::default()
        },
    )
    .await?;
    Ok(verdict)
}

/// Prints the verdict and the Pipe's figures, and records the run for the console.
async fn report_demo(
    stack: &LocalStack,
    pipe: &PipeHandle,
    expected: &Expected,
    verdict: &VerifyReport,
    rate: f64,
) -> anyhow::Result<()> {
    print!("{}", render(expected, verdict, 15));
    record_demo_run(stack, expected, verdict, rate).await;
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
    Ok(())
}

/// With `--serve` from a terminal, serves the console and API on the demo's data until
/// Ctrl-C; otherwise stops the Pipe.
async fn serve_or_stop(
    stack: &LocalStack,
    pipe: PipeHandle,
    args: &DemoArgs,
) -> anyhow::Result<()> {
    if !(args.serve && std::io::stdin().is_terminal()) {
        pipe.stop().await?;
        println!("\nRun `make dev` to keep the local stack running with the console and API.");
        return Ok(());
    }
    let token = random_token();
    let (addr, _server) =
        serve_api(stack, args.http_port, &token, vec![], args.site_dir.clone()).await?;
    println!("\nConsole: http://{addr}/   (API token for starting simulations: {token})");
    println!("The stack keeps running with the demo's data. Press Ctrl-C to stop.");
    pipe.run_until_ctrl_c().await?;
    Ok(())
}
