//! The API Lambda (Function URL, payload v2): the shared router under lambda_http.
//!
//! Environment (infra/template.yaml): INVENTORY_TABLE, EVENTS_TABLE; COGNITO_ISSUER and the
//! console's app client id, COGNITO_CLIENT_ID or the name of the secret holding it,
//! COGNITO_CLIENT_ID_SECRET (the template cannot pass the id itself without a dependency
//! cycle); GENERATOR_FUNCTION (absent: the stage runs no simulations, and starting one
//! answers 503); SIMULATION_MAX_EVENT_AGE_SECONDS; optionally API_TOKEN or
//! API_TOKEN_SECRET_ARN (a static token); DEAD_LETTER_FUNCTION (the function that redrives
//! dead letters; absent: redrive answers 503).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use inventory_api::jwt::{JwtSettings, JwtVerifier};
use inventory_api::{
    router, ApiConfig, AppState, DisabledLauncher, LambdaLauncher, LambdaRedriver,
    SimulationLauncher, SimulationLimits,
};
use inventory_store::Tables;

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    // lambda_http's subscriber follows the function's logging configuration
    // (AWS_LAMBDA_LOG_FORMAT / AWS_LAMBDA_LOG_LEVEL, set in infra/template.yaml), then RUST_LOG.
    lambda_http::tracing::init_default_subscriber();
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let secrets = aws_sdk_secretsmanager::Client::new(&config);
    let read_secret = |id: String, what: &'static str| {
        let secrets = secrets.clone();
        async move {
            anyhow::Ok(
                secrets
                    .get_secret_value()
                    .secret_id(&id)
                    .send()
                    .await
                    .with_context(|| format!("reading {what} from secret {id}"))?
                    .secret_string()
                    .map(str::to_owned),
            )
        }
    };
    let token = match var("API_TOKEN_SECRET_ARN") {
        Some(arn) => read_secret(arn, "the API token").await?,
        None => var("API_TOKEN"),
    };
    let client_id = match var("COGNITO_CLIENT_ID_SECRET") {
        Some(name) => read_secret(name, "the console's app client id").await?,
        None => var("COGNITO_CLIENT_ID"),
    };
    let api = ApiConfig {
        token,
        allowed_origins: var("ALLOWED_ORIGINS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(str::to_owned)
            .collect(),
    };
    let mut limits = SimulationLimits::default();
    if let Some(secs) = var("SIMULATION_MAX_EVENT_AGE_SECONDS") {
        limits.max_event_age = Duration::from_secs(secs.parse().with_context(|| {
            format!("SIMULATION_MAX_EVENT_AGE_SECONDS must be whole seconds, not `{secs}`")
        })?);
    }
    let launcher: Arc<dyn SimulationLauncher> = match var("GENERATOR_FUNCTION") {
        Some(function) => Arc::new(LambdaLauncher {
            client: aws_sdk_lambda::Client::new(&config),
            function,
            limits,
        }),
        None => {
            tracing::info!("GENERATOR_FUNCTION is not set: simulations are disabled");
            Arc::new(DisabledLauncher)
        }
    };
    let mut state = AppState::new(
        aws_sdk_dynamodb::Client::new(&config),
        Tables::from_env()?,
        api,
        launcher,
    )
    .with_simulation_limits(limits);
    match var("DEAD_LETTER_FUNCTION") {
        Some(function) => {
            state = state.with_redriver(Arc::new(LambdaRedriver {
                client: aws_sdk_lambda::Client::new(&config),
                function,
            }));
        }
        None => tracing::info!("DEAD_LETTER_FUNCTION is not set: dead letters cannot be redriven"),
    }
    match (var("COGNITO_ISSUER"), client_id) {
        (Some(issuer), Some(client)) => {
            state = state.with_jwt(JwtVerifier::new(JwtSettings::cognito(&issuer, &client)));
        }
        (None, None) => {
            tracing::warn!("COGNITO_ISSUER and COGNITO_CLIENT_ID are not set: only the static token (if any) can sign in");
        }
        _ => {
            return Err(anyhow::anyhow!(
                "set both COGNITO_ISSUER and COGNITO_CLIENT_ID (or COGNITO_CLIENT_ID_SECRET): the user pool's issuer URL and the console's app client id, or neither"
            )
            .into())
        }
    }
    lambda_http::run(router(state)).await
}
