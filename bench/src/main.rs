//! `inventory-bench`: figures for docs/performance.md from the whole local pipeline.
//!
//! `run` starts the embedded emulators in a child process (so their CPU and memory are not
//! counted as the processor's), then for each workload × batch size:
//! - drain: publishes N events into a fresh stream first, then starts the Pipe and times how
//!   fast the processor empties it (full batches: the capacity figure);
//! - paced: starts the Pipe, publishes at a target rate from another child process, and
//!   measures each event's lag from its Kinesis arrival to the end of the batch that wrote it;
//!
//! and compares with a naive loop of one UpdateItem per event on the same emulator. The
//! processor runs on a dedicated thread, so its CPU time is that thread's; DynamoDB requests
//! are counted by an interceptor on the processor's client as well as by its `BatchReport`.
//!
//! `startup` times the release `processor` binary from exec to its first poll of the Lambda
//! runtime API, against a stub of that API. `log-load` times a cold instance's read of its
//! shard's dedup window.
//!
//! The modules, by role: [`workloads`] (what is published), [`children`] (the emulator and
//! publisher child processes), [`measured`] (the processor as the Pipe's target, on its own
//! thread, and what it did), [`pipeline`] (running each phase), [`naive`] (the baseline
//! loop), [`procfs`] (CPU and memory readings), [`model`] (the capacity model and the cost
//! per million events), [`report`] (what is printed, and each figure against its target),
//! [`startup`].

mod catalog_pages;
mod children;
mod idle_console;
mod log_load;
mod measured;
mod model;
mod naive;
mod pipeline;
mod procfs;
mod report;
mod startup;
mod workloads;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use inventory_generator::Skew;
use inventory_local::pipe_settings::PipeSettings;

#[derive(Parser)]
#[command(about = "Throughput, lag, DynamoDB cost and resource figures of the local pipeline")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The pipeline benchmark (drain and paced phases per workload and batch size).
    Run(RunArgs),
    /// Exec → first poll of the Lambda runtime API of the release `processor` binary.
    Startup {
        /// The processor binary (built by `cargo build --release -p inventory-processor`).
        #[arg(long)]
        processor: Option<PathBuf>,
        #[arg(long, default_value_t = 20)]
        runs: usize,
    },
    /// A cold instance's load of its shard's dedup window, per window length
    /// (docs/consistency.md, "Window limits").
    LogLoad(log_load::LogLoadArgs),
    /// `/api/inventory` at a real catalog's size: the load, then p50/p99 per question
    /// against one product's GET and a naive sort-everything answer (docs/performance.md).
    CatalogPages(catalog_pages::CatalogPagesArgs),
    /// An open console's DynamoDB read units per second while no events flow, measured
    /// from DynamoDB's consumed capacity (docs/performance.md).
    IdleConsole(idle_console::IdleConsoleArgs),
    /// Internal: the embedded emulators until standard input closes.
    #[command(hide = true)]
    Emulators,
    /// Internal: publish one simulation and print a JSON summary.
    #[command(hide = true)]
    Publish(PublishArgs),
}

#[derive(clap::Args, Clone)]
pub(crate) struct RunArgs {
    /// Workloads, comma-separated: `uniform`, `zipf:<exponent>`.
    #[arg(long, value_delimiter = ',', default_value = "uniform,zipf:1.1")]
    pub(crate) workloads: Vec<Skew>,
    /// Pipe batch sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    pub(crate) batch_sizes: Vec<u32>,
    /// Distinct products.
    #[arg(long, default_value_t = 1_000)]
    pub(crate) products: usize,
    /// Kinesis shards (the local stack's default).
    #[arg(long, default_value_t = 4)]
    pub(crate) shards: i32,
    /// MaximumBatchingWindowInSeconds (default: the template's, as the local Pipe's
    /// defaults are).
    #[arg(long, default_value_t = PipeSettings::default().maximum_batching_window_in_seconds)]
    pub(crate) window: u32,
    /// Events published before the Pipe starts, per drain phase (0 skips the phase).
    #[arg(long, default_value_t = 20_000)]
    pub(crate) drain_events: u64,
    /// Events per second in the paced phase.
    #[arg(long, default_value_t = 1_000.0)]
    pub(crate) rate: f64,
    /// Length of the paced phase (0s skips it).
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub(crate) duration: Duration,
    /// Events of each naive one-UpdateItem-per-event loop (0 skips it).
    #[arg(long, default_value_t = 3_000)]
    pub(crate) naive_events: u64,
    /// Give up on a phase that has not caught up after this long.
    #[arg(long, default_value = "300s", value_parser = humantime::parse_duration)]
    pub(crate) timeout: Duration,
    #[arg(long, default_value_t = 42)]
    pub(crate) seed: u64,
    /// Keep each product's history (the processor's `PRODUCT_HISTORY=on`), priced in the
    /// cost table's write units.
    #[arg(long)]
    pub(crate) history: bool,
    /// A quick subset (about a minute): only the phases the targets need (uniform batch
    /// 100 and Zipf batch 1,000 drains, the template's batch size paced), with
    /// --drain-events 10000, --duration 10s and --naive-events 1000 in place of theirs.
    #[arg(long)]
    pub(crate) quick: bool,
    /// Capacity model: DynamoDB latency per request, ms (AWS: "single-digit milliseconds").
    #[arg(long, default_value_t = 10.0)]
    pub(crate) ddb_latency_ms: f64,
    /// Capacity model: Pipes → Lambda synchronous invoke overhead, ms.
    #[arg(long, default_value_t = 20.0)]
    pub(crate) invoke_overhead_ms: f64,
    /// Capacity model: one GetRecords, ms.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) get_records_ms: f64,
    /// Capacity model: the processor's MemorySize in infra/template.yaml, checked against
    /// the target with the local Pipe's BatchSize (the template's).
    #[arg(long, default_value_t = 1_769)]
    pub(crate) memory_mb: u32,
    /// Capacity model: the records per second one shard's processor must keep up with.
    #[arg(long, default_value_t = 2_000.0)]
    pub(crate) shard_target: f64,
    /// Capacity model: the pick keeps up with the target this much over it (0.05: 5 %).
    #[arg(long, default_value_t = 0.05)]
    pub(crate) shard_margin: f64,
}

#[derive(clap::Args, Clone)]
pub(crate) struct PublishArgs {
    #[arg(long)]
    pub(crate) endpoint: String,
    #[arg(long)]
    pub(crate) stream: String,
    #[arg(long)]
    pub(crate) events: u64,
    #[arg(long)]
    pub(crate) products: usize,
    #[arg(long)]
    pub(crate) skew: Skew,
    #[arg(long)]
    pub(crate) seed: u64,
    #[arg(long)]
    pub(crate) run_id: String,
    /// 0: as fast as Kinesis accepts.
    #[arg(long)]
    pub(crate) rate: f64,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,dynoxide=error,inventory_processor=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Cmd::Emulators => rt.block_on(children::emulators()),
        Cmd::Publish(args) => rt.block_on(children::publisher(args)),
        Cmd::Run(args) => rt.block_on(pipeline::run(args)),
        Cmd::Startup { processor, runs } => rt.block_on(startup::startup(processor, runs)),
        Cmd::LogLoad(args) => rt.block_on(log_load::log_load(args)),
        Cmd::CatalogPages(args) => rt.block_on(catalog_pages::catalog_pages(args)),
        Cmd::IdleConsole(args) => rt.block_on(idle_console::idle_console(args)),
    }
}
