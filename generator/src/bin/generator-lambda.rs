//! The generator as a Lambda: the API invokes it asynchronously with a simulation to run,
//! so the simulation is never tied to an HTTP request.

use std::time::Duration;

use inventory_domain::api::SimulationRequest;
use inventory_generator::run::{queued, run_simulation, SimulationContext};
use inventory_store::simulations::load_status;
use inventory_store::Tables;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde::Deserialize;

#[derive(Deserialize)]
struct StartSimulation {
    id: String,
    request: SimulationRequest,
    /// RFC 3339; no event is published after it. Absent from payloads of older APIs.
    #[serde(default)]
    publish_deadline: Option<String>,
}

/// Time kept back from the Lambda deadline to record the verdict.
const MARGIN: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> Result<(), Error> {
    // lambda_runtime's subscriber follows the function's logging configuration
    // (AWS_LAMBDA_LOG_FORMAT / AWS_LAMBDA_LOG_LEVEL, set in infra/template.yaml), then RUST_LOG.
    lambda_runtime::tracing::init_default_subscriber();
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let stream = std::env::var("STREAM_NAME")
        .map_err(|_| "STREAM_NAME is not set: set it to the Kinesis stream's name")?;
    let ctx = SimulationContext {
        kinesis: aws_sdk_kinesis::Client::new(&config),
        db: aws_sdk_dynamodb::Client::new(&config),
        tables: Tables::from_env()?,
        stream,
    };
    lambda_runtime::run(service_fn(|event: LambdaEvent<StartSimulation>| {
        let ctx = ctx.clone();
        async move {
            let remaining = event
                .context
                .deadline()
                .duration_since(std::time::SystemTime::now())
                .unwrap_or_default();
            // The API saved the queued status; keep its creation time.
            let StartSimulation {
                id,
                request,
                publish_deadline,
            } = event.payload;
            let status = match load_status(&ctx.db, &ctx.tables, &id).await {
                Ok(Some(saved)) => saved,
                _ => queued(&id, &request),
            };
            let done = run_simulation(
                ctx,
                status,
                remaining.saturating_sub(MARGIN),
                publish_deadline,
            )
            .await;
            Ok::<_, Error>(serde_json::json!({"id": done.id, "state": done.state}))
        }
    }))
    .await
}
