//! The child processes: the embedded emulators (so their CPU and memory are not counted as
//! the processor's) and the publisher (so publishing does not compete with the Pipe's
//! process). Both are this binary, run with a hidden subcommand.

use std::io::{BufRead as _, Read as _, Write as _};
use std::process::{Command, Stdio};

use anyhow::{bail, Context as _};
use inventory_generator::{publish, PublishOptions, Skew};
use inventory_local::emulators::{sdk_config_for, EmulatorOptions, LocalAws};

use crate::procfs::proc_cpu;
use crate::workloads;
use crate::PublishArgs;

pub(crate) async fn emulators() -> anyhow::Result<()> {
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

pub(crate) async fn publisher(args: PublishArgs) -> anyhow::Result<()> {
    let kinesis = aws_sdk_kinesis::Client::new(&sdk_config_for(&args.endpoint));
    let mut sim = workloads::simulation(
        args.products,
        args.events,
        args.skew,
        args.seed,
        &args.run_id,
    )?;
    let cpu0 = proc_cpu("self")?;
    let report = publish(
        &kinesis,
        &mut sim,
        &PublishOptions {
            stream: args.stream,
            rate: (args.rate > 0.0).then_some(args.rate),
            max_attempts: 20,
            deadline: None,
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
pub(crate) struct ChildGuard(pub(crate) std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct Published {
    pub(crate) records: u64,
    pub(crate) applied: u64,
    pub(crate) calls: u64,
    pub(crate) elapsed_s: f64,
    pub(crate) cpu_s: f64,
}

/// Runs the publisher child to completion.
pub(crate) async fn publish_child(
    endpoint: &str,
    stream: &str,
    skew: Skew,
    events: u64,
    products: usize,
    rate: f64,
    seed: u64,
) -> anyhow::Result<Published> {
    let exe = std::env::current_exe()?;
    let skew = workloads::skew_arg(skew);
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

/// Starts the emulator child; returns it and the endpoint it printed.
pub(crate) fn start_emulators() -> anyhow::Result<(ChildGuard, String)> {
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
    Ok((child, endpoint))
}
