//! The API Lambda (Function URL, payload v2): the shared router under lambda_http.

use std::sync::Arc;

use anyhow::Context as _;
use inventory_api::{app, ApiConfig, AppState, LambdaLauncher};
use inventory_store::Tables;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .without_time()
        .init();
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let token = match std::env::var("API_TOKEN_SECRET_ARN") {
        Ok(arn) => aws_sdk_secretsmanager::Client::new(&config)
            .get_secret_value()
            .secret_id(&arn)
            .send()
            .await
            .with_context(|| format!("reading the API token from secret {arn}"))?
            .secret_string()
            .map(str::to_owned),
        Err(_) => std::env::var("API_TOKEN").ok(),
    };
    let api = ApiConfig {
        token,
        allowed_origins: std::env::var("ALLOWED_ORIGINS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(str::to_owned)
            .collect(),
    };
    let launcher = LambdaLauncher {
        client: aws_sdk_lambda::Client::new(&config),
        function: std::env::var("GENERATOR_FUNCTION")
            .context("GENERATOR_FUNCTION is not set: the generator Lambda's name or ARN")?,
    };
    let state = AppState::new(
        aws_sdk_dynamodb::Client::new(&config),
        Tables::from_env()?,
        api,
        Arc::new(launcher),
    );
    lambda_http::run(app(state)).await
}
