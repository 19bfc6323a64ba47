//! One run of a simulation started from the API: publish, then verify, saving its status as
//! it goes where the API reads it. Runs as a background task locally and as the generator
//! Lambda in AWS. (The simulated events themselves come from [`crate::simulation`].)

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, SubsecRound as _, Utc};
use inventory_domain::api::{SimulationRequest, SimulationState, SimulationStatus, Verdict};
use inventory_store::simulations::save_status;
use inventory_store::Tables;

use crate::publish::{publish, PublishError, PublishOptions};
use crate::simulation::{ProducerConfig, SimConfig, Simulation};
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
    SimulationStatus::queued(id, request, Utc::now())
}

/// Runs the simulation to the end and returns its final status (also saved).
///
/// `publish_deadline` (RFC 3339, from the API: the start plus the maximum event age) is when
/// publishing must stop. A run cut short there is recorded as failed without a verdict: the
/// model expects every generated event, so checking DynamoDB against it would report
/// mismatches that are not the pipeline's.
pub async fn run_simulation(
    ctx: SimulationContext,
    mut status: SimulationStatus,
    verify_timeout: Duration,
    publish_deadline: Option<String>,
) -> SimulationStatus {
    let deadline = match publish_deadline.as_deref().map(parse_deadline).transpose() {
        Ok(d) => d,
        Err(message) => return finish_failed(&ctx, status, message).await,
    };
    let mut simulation = match simulation_of(&status) {
        Ok(s) => s,
        Err(message) => return finish_failed(&ctx, status, message).await,
    };
    status.state = SimulationState::Publishing;
    save(&ctx, &mut status).await;
    if let Err(message) =
        publish_saving_progress(&ctx, &mut status, &mut simulation, deadline).await
    {
        return finish_failed(&ctx, status, message).await;
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

/// The simulation the status's request describes, every setting checked; why not otherwise.
fn simulation_of(status: &SimulationStatus) -> Result<Simulation, String> {
    let request = &status.request;
    request.validate()?;
    let config = to_config(&status.run_id, request);
    let producers = ProducerConfig {
        producers: request.producers as usize,
        retry_share: request.retry_share,
        retry_distance: request.retry_distance,
    };
    producers
        .check_rate(Some(request.rate))
        .and_then(|_| Simulation::with_producers(config, producers))
        .map_err(|e| e.to_string())
}

/// Publishes the whole simulation by `deadline`, saving how many records were sent once a
/// second (not on every PutRecords); why the run failed otherwise.
async fn publish_saving_progress(
    ctx: &SimulationContext,
    status: &mut SimulationStatus,
    simulation: &mut Simulation,
    deadline: Option<DateTime<Utc>>,
) -> Result<(), String> {
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
        rate: Some(status.request.rate),
        max_attempts: 30,
        deadline: deadline.map(|d| instant_at(d, Utc::now(), Instant::now())),
    };
    let progress_sent = sent.clone();
    let result = publish(&ctx.kinesis, simulation, &options, &mut |p| {
        progress_sent.store(p.acknowledged, Ordering::Relaxed)
    })
    .await;
    reporter.abort();
    let _ = reporter.await;
    status.events_sent = sent.load(Ordering::Relaxed);
    match result {
        Ok(_) => Ok(()),
        Err(e @ PublishError::Deadline { .. }) => {
            let at = deadline
                .map(|d| d.to_rfc3339_opts(SecondsFormat::Millis, true))
                .unwrap_or_default();
            Err(format!(
                "cut short at its publishing deadline {at} (the maximum event age): {e}. No verdict: the model counts every event of the run, so DynamoDB is not checked against it"
            ))
        }
        Err(e) => Err(e.to_string()),
    }
}

fn parse_deadline(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| {
            format!("publish_deadline {s:?} is not an RFC 3339 time ({e}); the API sends e.g. 2026-01-01T00:10:00.000Z")
        })
}

/// The monotonic instant of wall-clock `at`, given that `now_wall` and `now` are the same
/// moment; a time already past is `now`.
fn instant_at(at: DateTime<Utc>, now_wall: DateTime<Utc>, now: Instant) -> Instant {
    now + (at - now_wall).to_std().unwrap_or_default()
}

fn to_config(run_id: &str, r: &SimulationRequest) -> SimConfig {
    SimConfig {
        products: r.products as usize,
        events: r.events,
        skew: r.skew,
        seed: r.seed.unwrap_or_else(rand::random),
        run_id: run_id.to_owned(),
        faults: r.fault_ratios(),
    }
}

/// The status of a run made outside the API (`make demo`'s, the CLI's), complete with its
/// verdict, so the console lists it beside the runs it started. `rate` is the run's pace.
pub fn completed_run(
    id: &str,
    expected: &Expected,
    report: &VerifyReport,
    rate: f64,
) -> SimulationStatus {
    let c = &expected.config;
    let request = SimulationRequest {
        products: u32::try_from(c.products).unwrap_or(u32::MAX),
        events: c.events,
        rate,
        skew: c.skew,
        duplicates: c.faults.duplicates,
        malformed: c.faults.malformed,
        invalid: c.faults.invalid_transitions,
        seed: Some(c.seed),
        producers: u32::try_from(expected.producers.producers).unwrap_or(u32::MAX),
        retry_share: expected.producers.retry_share,
        retry_distance: expected.producers.retry_distance,
    };
    let mut status = SimulationStatus::queued(id, &request, expected.started_at);
    status.run_id.clone_from(&c.run_id);
    status.events_sent = expected.records;
    status.state = SimulationState::Completed;
    status.verdict = Some(to_verdict(expected, report));
    status.updated_at = Utc::now().trunc_subsecs(3);
    status
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
    // To the millisecond, as the status is stored.
    status.updated_at = Utc::now().trunc_subsecs(3);
    if let Err(e) = save_status(&ctx.db, &ctx.tables, status).await {
        tracing::warn!(id = %status.id, error = %e, "could not record simulation progress");
    }
}

#[cfg(test)]
mod tests {
    use inventory_domain::api::SimulationRequest;

    use super::*;

    /// Clients of an endpoint nothing listens on, without retries: saving a status fails at
    /// once (and is only logged), and any put to Kinesis would fail the run another way.
    fn unreachable_context() -> SimulationContext {
        let credentials =
            aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "test");
        let endpoint = "http://127.0.0.1:1";
        let region = aws_sdk_dynamodb::config::Region::new("us-east-1");
        let db = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .credentials_provider(credentials.clone())
            .region(region.clone())
            .endpoint_url(endpoint)
            .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
            .build();
        let kinesis = aws_sdk_kinesis::Config::builder()
            .behavior_version(aws_sdk_kinesis::config::BehaviorVersion::latest())
            .credentials_provider(credentials)
            .region(region)
            .endpoint_url(endpoint)
            .retry_config(aws_sdk_kinesis::config::retry::RetryConfig::disabled())
            .build();
        SimulationContext {
            kinesis: aws_sdk_kinesis::Client::from_conf(kinesis),
            db: aws_sdk_dynamodb::Client::from_conf(db),
            tables: Tables {
                inventory: "inventory".into(),
                events: "events".into(),
            },
            stream: "stream".into(),
        }
    }

    fn request() -> SimulationRequest {
        serde_json::from_value(serde_json::json!({"products": 10, "events": 200, "rate": 100.0}))
            .expect("a minimal simulation request")
    }

    #[tokio::test]
    async fn a_deadline_already_passed_fails_the_run_without_a_verdict_and_says_why() {
        let status = queued("01JTESTDEADLINE0000000000", &request());
        let passed = (Utc::now() - chrono::Duration::seconds(1))
            .to_rfc3339_opts(SecondsFormat::Millis, true);
        let done = tokio::time::timeout(
            Duration::from_secs(30),
            run_simulation(
                unreachable_context(),
                status,
                Duration::from_secs(1),
                Some(passed.clone()),
            ),
        )
        .await
        .expect("a run past its deadline ends at once");
        assert_eq!(done.state, SimulationState::Failed);
        assert_eq!(done.events_sent, 0);
        assert!(done.verdict.is_none());
        let error = done.error.unwrap_or_default();
        assert!(
            error.contains("publishing deadline")
                && error.contains(&passed)
                && error.contains("0 of 200"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_deadline_that_is_not_a_time_fails_the_run_before_publishing() {
        let status = queued("01JTESTDEADLINE0000000001", &request());
        let done = run_simulation(
            unreachable_context(),
            status,
            Duration::from_secs(1),
            Some("in ten minutes".into()),
        )
        .await;
        assert_eq!(done.state, SimulationState::Failed);
        assert!(done.error.unwrap_or_default().contains("RFC 3339"));
    }

    #[test]
    fn a_wall_clock_deadline_maps_to_the_same_distance_on_the_monotonic_clock() {
        let (wall, now) = (Utc::now(), Instant::now());
        let ahead = instant_at(wall + chrono::Duration::milliseconds(1_500), wall, now);
        assert_eq!(ahead - now, Duration::from_millis(1_500));
        let past = instant_at(wall - chrono::Duration::seconds(5), wall, now);
        assert_eq!(past, now);
    }
}
