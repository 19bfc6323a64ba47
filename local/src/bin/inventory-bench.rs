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
//! runtime API, against a stub of that API.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead as _, Read as _, Write as _};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::types::AttributeValue;
use clap::{Parser, Subcommand};
use futures::StreamExt as _;
use inventory_domain::pipes::PipeBatch;
use inventory_domain::{parse_event, Change};
use inventory_generator::{publish, FaultRatios, PublishOptions, SimConfig, Simulation, Skew};
use inventory_local::emulators::{sdk_config_for, EmulatorOptions, LocalAws};
use inventory_local::kinesis::ensure_stream;
use inventory_local::pipe::{BoxFuture, PipeRunner, Target};
use inventory_local::pipe_settings::PipeSettings;
use inventory_processor::{BatchReport, Processor, ProcessorSettings, Tables};
use inventory_store::tables::ensure_tables;
use tokio::sync::{mpsc, oneshot};

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
    /// Internal: the embedded emulators until standard input closes.
    #[command(hide = true)]
    Emulators,
    /// Internal: publish one simulation and print a JSON summary.
    #[command(hide = true)]
    Publish(PublishArgs),
}

#[derive(clap::Args, Clone)]
struct RunArgs {
    /// Workloads, comma-separated: `uniform`, `zipf:<exponent>`.
    #[arg(long, value_delimiter = ',', default_value = "uniform,zipf:1.1")]
    workloads: Vec<Skew>,
    /// Pipe batch sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    batch_sizes: Vec<u32>,
    /// Distinct products.
    #[arg(long, default_value_t = 1_000)]
    products: usize,
    /// Kinesis shards (the local stack's default).
    #[arg(long, default_value_t = 4)]
    shards: i32,
    /// MaximumBatchingWindowInSeconds (the template's value).
    #[arg(long, default_value_t = 1)]
    window: u32,
    /// Events published before the Pipe starts, per drain phase (0 skips the phase).
    #[arg(long, default_value_t = 20_000)]
    drain_events: u64,
    /// Events per second in the paced phase.
    #[arg(long, default_value_t = 1_000.0)]
    rate: f64,
    /// Length of the paced phase (0s skips it).
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Events of each naive one-UpdateItem-per-event loop (0 skips it).
    #[arg(long, default_value_t = 3_000)]
    naive_events: u64,
    /// Give up on a phase that has not caught up after this long.
    #[arg(long, default_value = "300s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

#[derive(clap::Args, Clone)]
struct PublishArgs {
    #[arg(long)]
    endpoint: String,
    #[arg(long)]
    stream: String,
    #[arg(long)]
    events: u64,
    #[arg(long)]
    products: usize,
    #[arg(long)]
    skew: Skew,
    #[arg(long)]
    seed: u64,
    #[arg(long)]
    run_id: String,
    /// 0: as fast as Kinesis accepts.
    #[arg(long)]
    rate: f64,
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
        Cmd::Emulators => rt.block_on(emulators()),
        Cmd::Publish(args) => rt.block_on(publisher(args)),
        Cmd::Run(args) => rt.block_on(run(args)),
        Cmd::Startup { processor, runs } => rt.block_on(startup(processor, runs)),
    }
}

// ---------------------------------------------------------------- child processes

async fn emulators() -> anyhow::Result<()> {
    let aws = LocalAws::start(EmulatorOptions::default()).await?;
    println!("{}", aws.endpoint());
    std::io::stdout().flush()?;
    // The parent holds our stdin; its end (or the parent's death) stops us.
    tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    })
    .await?;
    aws.stop().await;
    Ok(())
}

async fn publisher(args: PublishArgs) -> anyhow::Result<()> {
    let kinesis = aws_sdk_kinesis::Client::new(&sdk_config_for(&args.endpoint));
    let mut sim = Simulation::new(SimConfig {
        products: args.products,
        events: args.events,
        skew: args.skew,
        seed: args.seed,
        run_id: args.run_id,
        faults: FaultRatios::default(),
    })?;
    let cpu0 = proc_cpu("self")?;
    let report = publish(
        &kinesis,
        &mut sim,
        &PublishOptions {
            stream: args.stream,
            rate: (args.rate > 0.0).then_some(args.rate),
            max_attempts: 20,
        },
        &mut |_| {},
    )
    .await?;
    let expected = sim.expected();
    println!(
        "{}",
        serde_json::json!({
            "records": report.records,
            "applied": expected.applied,
            "calls": report.calls,
            "elapsed_s": report.elapsed.as_secs_f64(),
            "cpu_s": (proc_cpu("self")? - cpu0).as_secs_f64(),
        })
    );
    Ok(())
}

/// A child process that is killed if we return early.
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Debug, serde::Deserialize)]
struct Published {
    records: u64,
    applied: u64,
    calls: u64,
    elapsed_s: f64,
    cpu_s: f64,
}

/// Runs the publisher child to completion.
async fn publish_child(
    endpoint: &str,
    stream: &str,
    skew: Skew,
    events: u64,
    products: usize,
    rate: f64,
    seed: u64,
) -> anyhow::Result<Published> {
    let exe = std::env::current_exe()?;
    let skew = match skew {
        Skew::Uniform => "uniform".to_owned(),
        Skew::Zipf(s) => format!("zipf:{s}"),
    };
    let args: Vec<String> = [
        "publish",
        "--endpoint",
        endpoint,
        "--stream",
        stream,
        "--events",
        &events.to_string(),
        "--products",
        &products.to_string(),
        "--skew",
        &skew,
        "--seed",
        &seed.to_string(),
        "--run-id",
        "bench",
        "--rate",
        &rate.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(exe)
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
    })
    .await??;
    if !out.status.success() {
        bail!("the publisher failed ({})", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("publisher printed `{line}`"))
}

// ---------------------------------------------------------------- /proc readings

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions and only reads a constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// User + system CPU of a process (`self` or a pid), all its threads.
fn proc_cpu(pid: &str) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("unexpected /proc stat format")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(f.get(i).context("short /proc stat")?.parse::<f64>()?)
    };
    // utime and stime are fields 14 and 15 of stat(5); `rest` starts at field 3.
    Ok(Duration::from_secs_f64(
        (ticks(11)? + ticks(12)?) / clock_ticks(),
    ))
}

/// CPU time of one thread of this process, in nanoseconds (schedstat's first field).
fn thread_cpu(tid: &str) -> anyhow::Result<Duration> {
    let s = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))?;
    let ns: u64 = s
        .split_whitespace()
        .next()
        .context("empty schedstat")?
        .parse()?;
    Ok(Duration::from_nanos(ns))
}

/// A `Vm…` line of /proc/<pid>/status, in KiB.
fn proc_kib(pid: &str, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .with_context(|| format!("no {field} in /proc/{pid}/status"))?;
    Ok(line
        .trim_start_matches(field)
        .trim_start_matches(':')
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?)
}

/// Resets the peak RSS (VmHWM) so it covers only what follows.
fn reset_peak(pid: &str) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

// ---------------------------------------------------------------- request counting

/// Counts the processor's DynamoDB HTTP requests (every attempt) by operation.
#[derive(Debug, Default, Clone)]
struct RequestCounter(Arc<Mutex<BTreeMap<String, u64>>>);

impl RequestCounter {
    fn take(&self) -> BTreeMap<String, u64> {
        self.0
            .lock()
            .map(|mut m| std::mem::take(&mut *m))
            .unwrap_or_default()
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let op = context
            .request()
            .headers()
            .get("x-amz-target")
            .and_then(|t| t.rsplit_once('.'))
            .map_or("?", |(_, op)| op)
            .to_owned();
        if let Ok(mut m) = self.0.lock() {
            *m.entry(op).or_default() += 1;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- the measured processor

/// What the processor did in one phase, summed over its batches.
#[derive(Debug, Default)]
struct Metrics {
    batches: u64,
    records: u64,
    distinct_products: u64,
    applied: u64,
    rejected: u64,
    failed_batches: u64,
    product_writes: u64,
    products_written: u64,
    rejection_writes: u64,
    read_requests: u64,
    /// Kinesis arrival → the end of the batch that wrote the event, per applied event.
    lags_ms: Vec<i64>,
    first_arrival_ms: Option<i64>,
    last_done_ms: i64,
}

struct Job {
    payload: Vec<u8>,
    processor: Processor,
    metrics: Arc<Mutex<Metrics>>,
    reply: oneshot::Sender<Result<Vec<u8>, String>>,
}

/// The Pipe's target: hands each batch to the processor thread, like an invocation.
struct BenchTarget {
    jobs: mpsc::UnboundedSender<Job>,
    processor: Processor,
    metrics: Arc<Mutex<Metrics>>,
}

impl Target for BenchTarget {
    fn invoke(&self, payload: Vec<u8>) -> BoxFuture<Result<Vec<u8>, String>> {
        let (reply, response) = oneshot::channel();
        let sent = self.jobs.send(Job {
            payload,
            processor: self.processor.clone(),
            metrics: self.metrics.clone(),
            reply,
        });
        Box::pin(async move {
            sent.map_err(|_| "the processor thread stopped".to_owned())?;
            response
                .await
                .map_err(|_| "the processor thread dropped the batch".to_owned())?
        })
    }
}

/// Starts the processor thread: one core's worth of runtime, as a Lambda instance has.
/// Returns the job queue and the thread's id (for its CPU time).
fn processor_thread() -> anyhow::Result<(mpsc::UnboundedSender<Job>, String)> {
    let (jobs, mut queue) = mpsc::unbounded_channel::<Job>();
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("processor".into())
        .spawn(move || {
            let tid = std::fs::read_link("/proc/thread-self")
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
            let _ = tid_tx.send(tid);
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("cannot start the processor runtime: {e}");
                    return;
                }
            };
            rt.block_on(async move {
                while let Some(job) = queue.recv().await {
                    tokio::spawn(invoke(job));
                }
            });
        })?;
    let tid = tid_rx
        .recv()?
        .context("cannot find the processor thread's id in /proc/thread-self")?;
    Ok((jobs, tid))
}

/// One invocation, with the same JSON in and out as the Lambda runtime (the body read as a
/// `PipeBatch`, as `Processor::handle_batch` takes it).
async fn invoke(job: Job) {
    let batch: PipeBatch = match serde_json::from_slice(&job.payload) {
        Ok(r) => r,
        Err(e) => {
            let _ = job
                .reply
                .send(Err(format!("the payload is not a Pipes batch: {e}")));
            return;
        }
    };
    let report: BatchReport = job.processor.process_batch(&batch).await;
    let done = wall_ms();
    let failed_from = report
        .response
        .batch_item_failures
        .first()
        .and_then(|f| batch.iter().position(|r| r.event_id == f.item_identifier));
    let settled = batch.iter().take(failed_from.unwrap_or(batch.len()));
    let distinct: HashSet<&str> = batch.iter().map(|r| r.partition_key).collect();
    if let Ok(mut m) = job.metrics.lock() {
        m.batches += 1;
        m.records += batch.len() as u64;
        m.distinct_products += distinct.len() as u64;
        m.applied += report.applied;
        m.rejected += report.rejected_total();
        m.failed_batches += u64::from(failed_from.is_some());
        m.product_writes += report.product_write_requests;
        m.products_written += report.products_written;
        m.rejection_writes += report.rejection_write_requests;
        m.read_requests += report.read_requests;
        for r in settled {
            let arrival = r.arrival_millis();
            m.lags_ms.push(done - arrival);
            m.first_arrival_ms = Some(m.first_arrival_ms.map_or(arrival, |f| f.min(arrival)));
        }
        m.last_done_ms = m.last_done_ms.max(done);
    }
    let _ = job
        .reply
        .send(serde_json::to_vec(&report.response).map_err(|e| e.to_string()));
}

// ---------------------------------------------------------------- the run

struct Ctx {
    args: RunArgs,
    endpoint: String,
    emulator_pid: String,
    db: aws_sdk_dynamodb::Client,
    kinesis: aws_sdk_kinesis::Client,
    processor_db: aws_sdk_dynamodb::Client,
    counter: RequestCounter,
    jobs: mpsc::UnboundedSender<Job>,
    processor_tid: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Drain,
    Paced,
}

struct PhaseResult {
    label: String,
    published: Published,
    metrics: Metrics,
    requests: BTreeMap<String, u64>,
    elapsed: Duration,
    processor_cpu: Duration,
    process_cpu: Duration,
    emulator_cpu: Duration,
    process_peak_kib: u64,
    emulator_peak_kib: u64,
    complete: bool,
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let mut child = ChildGuard(
        Command::new(std::env::current_exe()?)
            .arg("emulators")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?,
    );
    let mut line = String::new();
    let stdout = child
        .0
        .stdout
        .take()
        .context("emulator child has no stdout")?;
    std::io::BufReader::new(stdout).read_line(&mut line)?;
    let endpoint = line.trim().to_owned();
    if !endpoint.starts_with("http://") {
        bail!("the emulator child did not print its endpoint (got `{endpoint}`)");
    }
    let emulator_pid = child.0.id().to_string();
    let config = sdk_config_for(&endpoint);
    let counter = RequestCounter::default();
    let processor_db = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&config)
            .interceptor(counter.clone())
            .build(),
    );
    let (jobs, processor_tid) = processor_thread()?;
    let ctx = Ctx {
        db: aws_sdk_dynamodb::Client::new(&config),
        kinesis: aws_sdk_kinesis::Client::new(&config),
        args,
        endpoint,
        emulator_pid,
        processor_db,
        counter,
        jobs,
        processor_tid,
    };
    println!("{}", machine_line());
    println!(
        "emulators in child pid {} at {}; {} products, {} shards, window {} s\n",
        ctx.emulator_pid, ctx.endpoint, ctx.args.products, ctx.args.shards, ctx.args.window
    );

    let mut naive = Vec::new();
    if ctx.args.naive_events > 0 {
        for skew in ctx.args.workloads.clone() {
            for concurrency in [1, ProcessorSettings::default().write_concurrency] {
                let r = naive_loop(&ctx, skew, concurrency).await?;
                println!(
                    "naive loop {}, {} in flight: {} UpdateItem in {:.2} s = {:.0} writes/s (= events/s)",
                    skew_name(skew),
                    concurrency,
                    r.0,
                    r.1.as_secs_f64(),
                    r.0 as f64 / r.1.as_secs_f64()
                );
                naive.push((skew, concurrency, r.0 as f64 / r.1.as_secs_f64()));
            }
        }
        println!();
    }

    let mut results = Vec::new();
    for (w, skew) in ctx.args.workloads.clone().into_iter().enumerate() {
        for &batch in &ctx.args.batch_sizes.clone() {
            for phase in [Phase::Drain, Phase::Paced] {
                let skip = match phase {
                    Phase::Drain => ctx.args.drain_events == 0,
                    Phase::Paced => ctx.args.duration.is_zero() || ctx.args.rate <= 0.0,
                };
                if skip {
                    continue;
                }
                let r = run_phase(&ctx, w, skew, batch, phase).await?;
                print_phase(&r);
                results.push((skew, phase, r));
            }
        }
    }

    println!("\n## Summary\n");
    println!("| workload | batch | phase | events/s | lag p50 / p95 / p99 ms | product writes / event | writes / distinct product / batch | all DynamoDB writes / event | reads / batch | processor CPU µs / event | pipe+processor peak RSS MiB |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (_, _, r) in &results {
        let m = &r.metrics;
        let writes = total_writes(&r.requests);
        let (p50, p95, p99) = (
            pct(&m.lags_ms, 50.0),
            pct(&m.lags_ms, 95.0),
            pct(&m.lags_ms, 99.0),
        );
        println!(
            "| {} | {:.0} | {:.0} / {:.0} / {:.0} | {:.3} | {:.3} | {:.3} | {:.2} | {:.1} | {:.1} |",
            r.label,
            m.applied as f64 / r.elapsed.as_secs_f64().max(1e-9),
            p50,
            p95,
            p99,
            ratio(m.product_writes, m.applied),
            ratio(m.product_writes, m.distinct_products),
            ratio(writes, m.applied),
            ratio(m.read_requests, m.batches),
            r.processor_cpu.as_secs_f64() * 1e6 / (m.applied.max(1) as f64),
            r.process_peak_kib as f64 / 1024.0,
        );
    }
    if !naive.is_empty() {
        println!(
            "\n## Coalescing pipeline vs a naive loop (one UpdateItem per event, same emulator)\n"
        );
        println!("| workload | batch | pipeline events/s (drain) | naive writes/s, 1 in flight | ratio | naive writes/s, 32 in flight | ratio |");
        println!("|---|---|---|---|---|---|---|");
        for (skew, phase, r) in &results {
            if *phase != Phase::Drain {
                continue;
            }
            let eps = r.metrics.applied as f64 / r.elapsed.as_secs_f64().max(1e-9);
            let find = |c: usize| {
                naive
                    .iter()
                    .find(|(s, cc, _)| s == skew && *cc == c)
                    .map_or(f64::NAN, |n| n.2)
            };
            let (n1, n32) = (
                find(1),
                find(ProcessorSettings::default().write_concurrency),
            );
            println!(
                "| {} | {:.0} | {:.0} | {:.2}× | {:.0} | {:.2}× |",
                r.label
                    .rsplit_once(" |")
                    .map_or(r.label.as_str(), |(a, _)| a),
                eps,
                n1,
                eps / n1,
                n32,
                eps / n32
            );
        }
    }
    let all_complete = results.iter().all(|(_, _, r)| r.complete);
    drop(child.0.stdin.take());
    if !all_complete {
        bail!("some phases did not catch up within --timeout (see above)");
    }
    Ok(())
}

fn skew_name(skew: Skew) -> String {
    match skew {
        Skew::Uniform => "uniform".into(),
        Skew::Zipf(s) => format!("zipf({s})"),
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    a as f64 / (b.max(1) as f64)
}

fn total_writes(requests: &BTreeMap<String, u64>) -> u64 {
    requests
        .iter()
        .filter(|(op, _)| {
            matches!(
                op.as_str(),
                "PutItem" | "UpdateItem" | "DeleteItem" | "BatchWriteItem" | "TransactWriteItems"
            )
        })
        .map(|(_, n)| n)
        .sum()
}

fn pct(values: &[i64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_unstable();
    let rank = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[rank.min(v.len() - 1)] as f64
}

async fn run_phase(
    ctx: &Ctx,
    workload: usize,
    skew: Skew,
    batch: u32,
    phase: Phase,
) -> anyhow::Result<PhaseResult> {
    let tag = format!(
        "bench-w{workload}-b{batch}-{}",
        match phase {
            Phase::Drain => "drain",
            Phase::Paced => "paced",
        }
    );
    let label = format!(
        "{} | {} | {}",
        skew_name(skew),
        batch,
        match phase {
            Phase::Drain => format!("drain {}", ctx.args.drain_events),
            Phase::Paced => format!("paced {:.0}/s", ctx.args.rate),
        }
    );
    eprintln!("== {label}");
    let tables = Tables::with_prefix(&format!("{tag}-"));
    ensure_tables(&ctx.db, &tables).await?;
    ensure_stream(&ctx.kinesis, &tag, ctx.args.shards).await?;
    let metrics = Arc::new(Mutex::new(Metrics::default()));
    let target = Arc::new(BenchTarget {
        jobs: ctx.jobs.clone(),
        processor: Processor::new(ctx.processor_db.clone(), tables.clone()),
        metrics: metrics.clone(),
    });
    let runner = PipeRunner::new(
        format!("{tag}-pipe"),
        tag.clone(),
        PipeSettings {
            batch_size: batch,
            maximum_batching_window_in_seconds: ctx.args.window,
            ..PipeSettings::default()
        },
        ctx.kinesis.clone(),
        ctx.db.clone(),
        tables,
        target,
    );
    let seed = ctx.args.seed + workload as u64;
    let (events, rate) = match phase {
        Phase::Drain => (ctx.args.drain_events, 0.0),
        Phase::Paced => (
            (ctx.args.duration.as_secs_f64() * ctx.args.rate).round() as u64,
            ctx.args.rate,
        ),
    };
    let publish = || {
        publish_child(
            &ctx.endpoint,
            &tag,
            skew,
            events,
            ctx.args.products,
            rate,
            seed,
        )
    };
    let preloaded = match phase {
        Phase::Drain => {
            let p = publish().await?;
            eprintln!("   preloaded {} records in {:.1} s", p.records, p.elapsed_s);
            Some(p)
        }
        Phase::Paced => None,
    };

    ctx.counter.take();
    reset_peak("self");
    reset_peak(&ctx.emulator_pid);
    let cpu0 = (
        thread_cpu(&ctx.processor_tid)?,
        proc_cpu("self")?,
        proc_cpu(&ctx.emulator_pid)?,
    );
    let started_ms = wall_ms();
    let pipe = runner.spawn();
    let published = match preloaded {
        Some(p) => p,
        None => publish().await?,
    };
    let expected = published.applied;
    let deadline = Instant::now() + ctx.args.timeout;
    let complete = loop {
        let applied = metrics.lock().map_or(0, |m| m.applied);
        if applied >= expected {
            break true;
        }
        if Instant::now() > deadline || pipe.is_finished() {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let cpu1 = (
        thread_cpu(&ctx.processor_tid)?,
        proc_cpu("self")?,
        proc_cpu(&ctx.emulator_pid)?,
    );
    let process_peak_kib = proc_kib("self", "VmHWM")?;
    let emulator_peak_kib = proc_kib(&ctx.emulator_pid, "VmHWM")?;
    pipe.stop().await?;
    let requests = ctx.counter.take();
    let metrics = std::mem::take(&mut *metrics.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    if !complete {
        eprintln!(
            "   did not catch up: {} of {} events applied",
            metrics.applied, expected
        );
    }
    let elapsed = match phase {
        Phase::Drain => Duration::from_millis((metrics.last_done_ms - started_ms).max(1) as u64),
        Phase::Paced => Duration::from_millis(
            (metrics.last_done_ms - metrics.first_arrival_ms.unwrap_or(started_ms)).max(1) as u64,
        ),
    };
    Ok(PhaseResult {
        label,
        published,
        metrics,
        requests,
        elapsed,
        processor_cpu: cpu1.0.saturating_sub(cpu0.0),
        process_cpu: cpu1.1.saturating_sub(cpu0.1),
        emulator_cpu: cpu1.2.saturating_sub(cpu0.2),
        process_peak_kib,
        emulator_peak_kib,
        complete,
    })
}

fn print_phase(r: &PhaseResult) {
    let m = &r.metrics;
    let secs = r.elapsed.as_secs_f64().max(1e-9);
    println!("### {}", r.label);
    println!(
        "  published      {} records in {:.2} s ({:.0}/s, {} PutRecords calls; publisher CPU {:.2} s)",
        r.published.records,
        r.published.elapsed_s,
        r.published.records as f64 / r.published.elapsed_s.max(1e-9),
        r.published.calls,
        r.published.cpu_s
    );
    println!(
        "  processed      {} events applied in {:.2} s = {:.0} events/s sustained{}",
        m.applied,
        secs,
        m.applied as f64 / secs,
        if r.complete { "" } else { "  (INCOMPLETE)" }
    );
    println!(
        "  batches        {} (mean {:.0} records, {:.1} distinct products), {} failed, {} rejected",
        m.batches,
        ratio(m.records, m.batches),
        ratio(m.distinct_products, m.batches),
        m.failed_batches,
        m.rejected
    );
    println!(
        "  lag ms         p50 {:.0}  p95 {:.0}  p99 {:.0}  max {:.0}  (Kinesis arrival → end of the batch that wrote it)",
        pct(&m.lags_ms, 50.0),
        pct(&m.lags_ms, 95.0),
        pct(&m.lags_ms, 99.0),
        pct(&m.lags_ms, 100.0)
    );
    println!(
        "  product writes {} = {:.3} per event, {:.3} per distinct product per batch ({} products written)",
        m.product_writes,
        ratio(m.product_writes, m.applied),
        ratio(m.product_writes, m.distinct_products),
        m.products_written
    );
    println!(
        "  reads          {} BatchGetItem = {:.2} per batch",
        m.read_requests,
        ratio(m.read_requests, m.batches)
    );
    let writes = total_writes(&r.requests);
    println!(
        "  all requests   {:?}: {} writes = {:.3} per event (stats: 2 UpdateItem per batch)",
        r.requests,
        writes,
        ratio(writes, m.applied)
    );
    println!(
        "  CPU            processor thread {:.2} s ({:.1} µs/event, {:.0}% of a core); pipe+processor process {:.2} s; emulators {:.2} s ({:.0}% of a core)",
        r.processor_cpu.as_secs_f64(),
        r.processor_cpu.as_secs_f64() * 1e6 / m.applied.max(1) as f64,
        100.0 * r.processor_cpu.as_secs_f64() / secs,
        r.process_cpu.as_secs_f64(),
        r.emulator_cpu.as_secs_f64(),
        100.0 * r.emulator_cpu.as_secs_f64() / secs,
    );
    println!(
        "  peak RSS       pipe+processor process {:.1} MiB; emulators {:.1} MiB",
        r.process_peak_kib as f64 / 1024.0,
        r.emulator_peak_kib as f64 / 1024.0
    );
}

/// One UpdateItem per event, `concurrency` in flight, on the same emulator. Returns the
/// writes made and the time they took.
async fn naive_loop(ctx: &Ctx, skew: Skew, concurrency: usize) -> anyhow::Result<(u64, Duration)> {
    let table = format!(
        "bench-naive-{}-{concurrency}-inventory",
        skew_name(skew).replace(['(', ')', '.'], "")
    );
    ensure_tables(
        &ctx.db,
        &Tables {
            inventory: table.clone(),
            events: format!("{table}-events"),
        },
    )
    .await?;
    let mut sim = Simulation::new(SimConfig {
        products: ctx.args.products,
        events: ctx.args.naive_events,
        skew,
        seed: ctx.args.seed,
        run_id: "naive".into(),
        faults: FaultRatios::default(),
    })?;
    let mut updates = Vec::new();
    while let Some(r) = sim.next_record() {
        let ev = parse_event(&r.data).map_err(|e| anyhow::anyhow!("{}", e.detail))?;
        let delta: i64 = match ev.change {
            Change::Added { quantity, .. } | Change::Increased(quantity) => quantity as i64,
            Change::Decreased(q) => -(q as i64),
            Change::Removed => 0,
        };
        updates.push((ev.product_id, delta));
    }
    let writes = updates.len() as u64;
    let started = Instant::now();
    let results: Vec<_> = futures::stream::iter(updates)
        .map(|(id, delta)| {
            let db = ctx.db.clone();
            let table = table.clone();
            async move {
                db.update_item()
                    .table_name(table)
                    .key("product_id", AttributeValue::S(id))
                    .update_expression("ADD quantity :d, version :one SET updated_at = :now")
                    .expression_attribute_values(":d", AttributeValue::N(delta.to_string()))
                    .expression_attribute_values(":one", AttributeValue::N("1".into()))
                    .expression_attribute_values(":now", AttributeValue::N(wall_ms().to_string()))
                    .send()
                    .await
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed();
    if let Some(Err(e)) = results.into_iter().find(|r| r.is_err()) {
        bail!(
            "naive UpdateItem failed: {}",
            aws_sdk_dynamodb::error::DisplayErrorContext(e)
        );
    }
    Ok((writes, elapsed))
}

fn machine_line() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find(|l| l.starts_with("MemTotal"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|k| k.parse::<u64>().ok())
    });
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "machine: {cpus} CPUs, {model}, {:.1} GiB RAM; load average {}",
        mem.unwrap_or(0) as f64 / 1024.0 / 1024.0,
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}

// ---------------------------------------------------------------- startup

async fn startup(processor: Option<PathBuf>, runs: usize) -> anyhow::Result<()> {
    let bin = match processor {
        Some(p) => p,
        None => std::env::current_exe()?
            .parent()
            .context("no directory for the current executable")?
            .join("processor"),
    };
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    if !bin.exists() {
        bail!(
            "{} does not exist: build it with `cargo build --release -p inventory-processor --bin processor` or pass --processor",
            bin.display()
        );
    }
    let (polled_tx, mut polled) = mpsc::unbounded_channel::<Instant>();
    let app = axum::Router::new()
        .route(
            "/2018-06-01/runtime/invocation/next",
            axum::routing::get(move || {
                let _ = polled_tx.send(Instant::now());
                // Ready is all we measure: hold the poll open until the process is killed.
                std::future::pending::<&'static str>()
            }),
        )
        .fallback(|| async { "" });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let mut times = Vec::with_capacity(runs);
    let mut rss = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let child = Command::new(&bin)
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "processor")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "local")
            .env("AWS_SECRET_ACCESS_KEY", "local")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("INVENTORY_TABLE", "inventory")
            .env("EVENTS_TABLE", "inventory-events")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        let pid = child.id().to_string();
        let mut guard = ChildGuard(child);
        let at = tokio::time::timeout(Duration::from_secs(10), polled.recv())
            .await
            .context("the processor did not poll the runtime API within 10 s")?
            .context("the runtime API stub stopped")?;
        times.push(at.saturating_duration_since(started));
        rss.push(proc_kib(&pid, "VmRSS").unwrap_or(0));
        let _ = guard.0.kill();
    }
    server.abort();
    times.sort();
    rss.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let size = std::fs::metadata(&bin).map_or(0, |m| m.len());
    println!(
        "processor start → ready (first poll of the runtime API), {runs} runs of {} ({:.1} MiB): min {:.1} ms, p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms; RSS when ready p50 {:.1} MiB",
        bin.display(),
        size as f64 / 1024.0 / 1024.0,
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[((times.len() as f64 * 0.95) as usize).min(times.len() - 1)]),
        ms(times[times.len() - 1]),
        rss[rss.len() / 2] as f64 / 1024.0
    );
    Ok(())
}
