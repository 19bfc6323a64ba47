//! Running the pipeline: for each workload, batch size and phase, a fresh stream and
//! tables, the local Pipe to the measured processor, the publisher child, and the figures
//! of what happened until the processor caught up.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use inventory_generator::Skew;
use inventory_local::emulators::sdk_config_for;
use inventory_local::kinesis::ensure_stream;
use inventory_local::pipe::{ensure_pipe_table, PipeRunner, PipeStatsSnapshot, PIPE_TABLE};
use inventory_local::pipe_settings::PipeSettings;
use inventory_processor::{Processor, ProcessorSettings};
use inventory_store::tables::ensure_tables;
use inventory_store::Tables;
use tokio::sync::mpsc;

use crate::children::{publish_child, start_emulators, Published};
use crate::measured::{processor_thread, BenchTarget, Job, Metrics, RequestCounter};
use crate::naive::naive_loop;
use crate::procfs::{proc_cpu, proc_kib, reset_peak, thread_cpu, wall_ms};
use crate::{report, workloads, RunArgs};

pub(crate) struct Ctx {
    pub(crate) args: RunArgs,
    pub(crate) endpoint: String,
    pub(crate) emulator_pid: String,
    pub(crate) db: aws_sdk_dynamodb::Client,
    pub(crate) kinesis: aws_sdk_kinesis::Client,
    pub(crate) processor_db: aws_sdk_dynamodb::Client,
    pub(crate) counter: RequestCounter,
    pub(crate) jobs: mpsc::UnboundedSender<Job>,
    pub(crate) processor_tid: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Drain,
    Paced,
}

pub(crate) struct PhaseResult {
    pub(crate) label: String,
    pub(crate) batch: u32,
    pub(crate) window: u32,
    /// What the Pipe did: its polls and the payloads it would bill.
    pub(crate) pipe: PipeStatsSnapshot,
    pub(crate) published: Published,
    pub(crate) metrics: Metrics,
    pub(crate) requests: BTreeMap<String, u64>,
    /// The drain: from the first records fetched to the last batch's end. Paced: from the
    /// first record's arrival to the last batch's end.
    pub(crate) elapsed: Duration,
    /// From the Pipe's start (shard discovery, iterators) to the first records fetched.
    pub(crate) startup: Option<Duration>,
    pub(crate) processor_cpu: Duration,
    pub(crate) process_cpu: Duration,
    pub(crate) emulator_cpu: Duration,
    pub(crate) process_peak_kib: u64,
    pub(crate) emulator_peak_kib: u64,
    pub(crate) complete: bool,
}

pub(crate) async fn run(mut args: RunArgs) -> anyhow::Result<()> {
    if args.quick {
        args.drain_events = 10_000;
        args.duration = Duration::from_secs(10);
        args.naive_events = 1_000;
    }
    let (mut child, endpoint) = start_emulators()?;
    let emulator_pid = child.0.id().to_string();
    let config = sdk_config_for(&endpoint);
    let counter = RequestCounter::default();
    let processor_db = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&config)
            .interceptor(counter.clone())
            .build(),
    );
    let (jobs, processor_tid) = processor_thread()?;
    let db = aws_sdk_dynamodb::Client::new(&config);
    // Every phase's Pipe keeps its checkpoints there, under its own name.
    ensure_pipe_table(&db, PIPE_TABLE).await?;
    let ctx = Ctx {
        db,
        kinesis: aws_sdk_kinesis::Client::new(&config),
        args,
        endpoint,
        emulator_pid,
        processor_db,
        counter,
        jobs,
        processor_tid,
    };
    println!("{}", report::machine_line());
    println!(
        "emulators in child pid {} at {}; {} products, {} shards, window {} s\n",
        ctx.emulator_pid, ctx.endpoint, ctx.args.products, ctx.args.shards, ctx.args.window
    );

    let mut naive = Vec::new();
    if ctx.args.naive_events > 0 {
        for skew in ctx.args.workloads.clone() {
            for concurrency in [1, ProcessorSettings::default().write_concurrency] {
                let r = naive_loop(&ctx, skew, concurrency).await?;
                report::print_naive(skew, concurrency, r);
                naive.push((skew, concurrency, r.0 as f64 / r.1.as_secs_f64()));
            }
        }
        println!();
    }

    let mut results = Vec::new();
    for (w, skew, batch, phase) in plan(&ctx.args) {
        let r = run_phase(&ctx, w, skew, batch, phase).await?;
        report::print_phase(&r);
        results.push((skew, phase, r));
    }

    report::print_summary(&results);
    report::print_comparison(&results, &naive);
    report::print_lag_splits(&results);
    let capacity = report::print_capacity(&results, &ctx.args);
    let costs = report::print_costs(&results, &ctx.args);
    report::print_targets(&results, &naive, capacity.as_ref(), &costs, &ctx.args);
    let all_complete = results.iter().all(|(_, _, r)| r.complete);
    drop(child.0.stdin.take());
    if !all_complete {
        bail!("some phases did not catch up within --timeout (see above)");
    }
    Ok(())
}

/// The phases to run, in order: (workload index, workload, batch size, phase).
fn plan(args: &RunArgs) -> Vec<(usize, Skew, u32, Phase)> {
    let template_batch = PipeSettings::default().batch_size;
    let mut batch_sizes = args.batch_sizes.clone();
    // The lag target is at the template's settings: always pace that batch size too.
    if !batch_sizes.contains(&template_batch) {
        batch_sizes.push(template_batch);
    }
    let mut plan = Vec::new();
    for (w, skew) in args.workloads.iter().copied().enumerate() {
        for &batch in &batch_sizes {
            for phase in [Phase::Drain, Phase::Paced] {
                let skip = match phase {
                    Phase::Drain => args.drain_events == 0,
                    Phase::Paced => args.duration.is_zero() || args.rate <= 0.0,
                };
                // Quick: the drains the CPU and throughput targets name, and the paced
                // phase at the template's batch size (the lag target).
                let wanted = if phase == Phase::Drain && !args.batch_sizes.contains(&batch) {
                    false
                } else if !args.quick {
                    true
                } else {
                    match phase {
                        Phase::Drain => {
                            (skew == Skew::Uniform && batch == 100)
                                || (skew != Skew::Uniform && batch == 1_000)
                        }
                        Phase::Paced => batch == template_batch,
                    }
                };
                if !skip && wanted {
                    plan.push((w, skew, batch, phase));
                }
            }
        }
    }
    plan
}

pub(crate) async fn run_phase(
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
        workloads::skew_name(skew),
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
        processor: Processor::with_settings(
            ctx.processor_db.clone(),
            tables.clone(),
            std::sync::Arc::new(inventory_processor::KinesisShards(ctx.kinesis.clone())),
            ProcessorSettings {
                history: ctx.args.history,
                ..ProcessorSettings::default()
            },
        ),
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
        PIPE_TABLE,
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
    let pipe_stats = pipe.stats.snapshot();
    pipe.stop().await?;
    let requests = ctx.counter.take();
    let metrics = std::mem::take(&mut *metrics.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    if !complete {
        eprintln!(
            "   did not catch up: {} of {} events applied",
            metrics.applied, expected
        );
    }
    let first_fetched_ms = metrics.first_fetched_ms.unwrap_or(started_ms);
    let elapsed = match phase {
        // A running Pipe has found its shards already: its start-up is not throughput.
        Phase::Drain => {
            Duration::from_millis((metrics.last_done_ms - first_fetched_ms).max(1) as u64)
        }
        Phase::Paced => Duration::from_millis(
            (metrics.last_done_ms - metrics.first_arrival_ms.unwrap_or(started_ms)).max(1) as u64,
        ),
    };
    Ok(PhaseResult {
        label,
        batch,
        window: ctx.args.window,
        pipe: pipe_stats,
        published,
        metrics,
        requests,
        elapsed,
        startup: (phase == Phase::Drain)
            .then(|| Duration::from_millis((first_fetched_ms - started_ms).max(0) as u64)),
        processor_cpu: cpu1.0.saturating_sub(cpu0.0),
        process_cpu: cpu1.1.saturating_sub(cpu0.1),
        emulator_cpu: cpu1.2.saturating_sub(cpu0.2),
        process_peak_kib,
        emulator_peak_kib,
        complete,
    })
}
