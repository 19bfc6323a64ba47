//! One run of a simulation started from the API: publish, then verify, saving its status as
//! it goes where the API reads it. Runs as a background task locally and as the generator
//! Lambda in AWS. (The simulated events themselves come from [`crate::event_source`].)

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use inventory_domain::api::{SimulationRequest, SimulationState, SimulationStatus, Verdict};
use inventory_store::simulations::save_status;
use inventory_store::Tables;

use crate::event_source::{ProducerConfig, RetryDistance, SimConfig, Simulation};
use crate::publish::{publish, PublishOptions};
use crate::verify::{verify, VerifyOptions, VerifyReport};
use crate::Expected;

/// Everything a simulation needs to reach the stack.
#[derive(Clone)]
pub struct SimulationContext {
    pub kinesis: aws_sdk_kinesis::Client,
    pub db: aws_sdk_dynamodb::Client,
    pub tables: Tables,
    pub stream: String,
}

/// The status of a simulation that has been accepted but not started.
pub fn queued(id: &str, request: &SimulationRequest) -> SimulationStatus {
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    SimulationStatus::queued(id, request, &now)
}

/// Runs the simulation to the end and returns its final status (also saved).
pub async fn run_simulation(
    ctx: SimulationContext,
    mut status: SimulationStatus,
    verify_timeout: Duration,
) -> SimulationStatus {
    let request = status.request.clone();
    let config = match request
        .validate()
        .and_then(|_| to_config(&status.run_id, &request))
    {
        Ok(c) => c,
        Err(message) => return finish_failed(&ctx, status, message).await,
    };
    let producers = ProducerConfig {
        producers: request.producers as usize,
        retry_share: request.retry_share,
        retry_distance: RetryDistance {
            min: request.retry_distance.min,
            max: request.retry_distance.max,
        },
    };
    let mut simulation = match producers
        .check_rate(Some(request.rate))
        .and_then(|_| Simulation::with_producers(config, producers))
    {
        Ok(s) => s,
        Err(e) => return finish_failed(&ctx, status, e.to_string()).await,
    };
    status.state = SimulationState::Publishing;
    save(&ctx, &mut status).await;

    // Progress goes to DynamoDB once a second, not on every PutRecords.
    let sent = Arc::new(AtomicU64::new(0));
    let reporter = {
        let (ctx, sent, mut status) = (ctx.clone(), sent.clone(), status.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                status.events_sent = sent.load(Ordering::Relaxed);
                save(&ctx, &mut status).await;
            }
        })
    };
    let options = PublishOptions {
        stream: ctx.stream.clone(),
        rate: Some(request.rate),
        max_attempts: 30,
    };
    let progress_sent = sent.clone();
    let result = publish(&ctx.kinesis, &mut simulation, &options, &mut |p| {
        progress_sent.store(p.acknowledged, Ordering::Relaxed)
    })
    .await;
    reporter.abort();
    let _ = reporter.await;
    status.events_sent = sent.load(Ordering::Relaxed);
    if let Err(e) = result {
        return finish_failed(&ctx, status, e.to_string()).await;
    }

    status.state = SimulationState::Verifying;
    save(&ctx, &mut status).await;
    let expected = simulation.expected();
    let options = VerifyOptions {
        timeout: verify_timeout,
        ..VerifyOptions::default()
    };
    match verify(&ctx.db, &ctx.tables, &expected, &options).await {
        Ok(report) => {
            status.verdict = Some(to_verdict(&expected, &report));
            status.state = SimulationState::Completed;
            save(&ctx, &mut status).await;
            status
        }
        Err(e) => finish_failed(&ctx, status, e.to_string()).await,
    }
}

fn to_config(run_id: &str, r: &SimulationRequest) -> Result<SimConfig, String> {
    Ok(SimConfig {
        products: r.products as usize,
        events: r.events,
        skew: r.skew().map_err(|e| format!("skew: {e}"))?,
        seed: r.seed.unwrap_or_else(rand::random),
        run_id: run_id.to_owned(),
        faults: r.fault_ratios(),
    })
}

pub fn to_verdict(expected: &Expected, report: &VerifyReport) -> Verdict {
    let names = |m: &std::collections::BTreeMap<inventory_domain::RejectionReason, u64>| {
        m.iter().map(|(k, v)| (k.as_str().to_owned(), *v)).collect()
    };
    let details = report
        .mismatches
        .iter()
        .take(50)
        .map(ToString::to_string)
        .collect();
    Verdict {
        mismatches: report.mismatches.len() as u64,
        products_checked: expected.products.len() as u64,
        caught_up: report.caught_up,
        expected_units: expected.total_units(),
        stored_units: report.stored.values().map(|p| p.quantity).sum(),
        duplicates_ignored: expected.duplicates,
        rejections_expected: names(&expected.rejections),
        rejections_stored: names(&report.rejections),
        details,
    }
}

async fn finish_failed(
    ctx: &SimulationContext,
    mut status: SimulationStatus,
    message: String,
) -> SimulationStatus {
    tracing::error!(id = %status.id, %message, "simulation failed");
    status.state = SimulationState::Failed;
    status.error = Some(message);
    save(ctx, &mut status).await;
    status
}

async fn save(ctx: &SimulationContext, status: &mut SimulationStatus) {
    status.updated_at = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    if let Err(e) = save_status(&ctx.db, &ctx.tables, status).await {
        tracing::warn!(id = %status.id, error = %e, "could not record simulation progress");
    }
}
