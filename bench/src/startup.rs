//! The processor's start-up: the release `processor` binary from exec to its first poll of
//! the Lambda runtime API, served by the local stack's Runtime API with nothing queued.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use inventory_local::runtime_api::{self, InvocationQueue, RuntimeEvent};
use tokio::sync::mpsc;

use crate::children::ChildGuard;
use crate::procfs::proc_kib;

pub(crate) async fn startup(processor: Option<PathBuf>, runs: usize) -> anyhow::Result<()> {
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
    // Nothing is ever queued: each process's first poll is held open until it is killed.
    let (queue, mut events) = InvocationQueue::new("processor");
    let (addr, server) = runtime_api::spawn(queue)?;

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
        let at = tokio::time::timeout(Duration::from_secs(10), first_poll(&mut events))
            .await
            .context("the processor did not poll the runtime API within 10 s")?
            .context("the runtime API stopped")?;
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

/// When the runtime next asked for an invocation; `None` once the API is gone.
async fn first_poll(events: &mut mpsc::UnboundedReceiver<RuntimeEvent>) -> Option<Instant> {
    while let Some(event) = events.recv().await {
        if let RuntimeEvent::Polled(at) = event {
            return Some(at);
        }
    }
    None
}
