//! The API Lambda (Function URL, payload v2): the shared router under lambda_http.
//!
//! Environment (infra/template.yaml), read into [`Config`]: INVENTORY_TABLE, EVENTS_TABLE;
//! COGNITO_ISSUER and the console's app client id, COGNITO_CLIENT_ID or the name of the
//! secret holding it, COGNITO_CLIENT_ID_SECRET (the template cannot pass the id itself
//! without a dependency cycle); GENERATOR_FUNCTION (absent: the stage runs no simulations,
//! and starting one answers 503); SIMULATION_MAX_EVENT_AGE_SECONDS; optionally API_TOKEN or
//! API_TOKEN_SECRET_ARN (a static token); DEAD_LETTER_FUNCTION (the function that redrives
//! dead letters; absent: redrive answers 503); ALLOWED_ORIGINS (CORS, comma-separated);
//! PUBLIC_READS (`true` opens the inventory reads and stats to anonymous callers, capped and
//! cacheable; `false`, the default, needs sign-in for every read: api/src/auth.rs, `Reads`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser as _;
use inventory_api::auth::Reads;
use inventory_api::jwt::{JwtSettings, JwtVerifier};
use inventory_api::{
    router, ApiConfig, AppState, DisabledLauncher, LambdaLauncher, LambdaRedriver,
    SimulationLauncher, SimulationLimits,
};
use inventory_store::Tables;

/// The API Lambda's configuration, from its environment only (a Lambda has no command
/// line). An optional variable set to blanks counts as unset. Each field's value name is its
/// variable's, so a parse error names the variable.
#[derive(Debug, clap::Parser)]
#[command(
    name = "api",
    about = "The inventory API Lambda, configured by its environment"
)]
struct Config {
    /// The inventory table.
    #[arg(long, env = "INVENTORY_TABLE", value_parser = not_blank)]
    inventory_table: String,
    /// The events table (idempotency records, rejections, history).
    #[arg(long, env = "EVENTS_TABLE", value_parser = not_blank)]
    events_table: String,
    /// A static bearer token that signs in (scripts, the local stack).
    #[arg(long, env = "API_TOKEN")]
    api_token: Option<String>,
    /// The secret holding the static token; read instead of API_TOKEN when set.
    #[arg(long, env = "API_TOKEN_SECRET_ARN")]
    api_token_secret_arn: Option<String>,
    /// The user pool's issuer URL.
    #[arg(long, env = "COGNITO_ISSUER")]
    cognito_issuer: Option<String>,
    /// The console's app client id.
    #[arg(long, env = "COGNITO_CLIENT_ID")]
    cognito_client_id: Option<String>,
    /// The secret holding the console's app client id; read instead of COGNITO_CLIENT_ID.
    #[arg(long, env = "COGNITO_CLIENT_ID_SECRET")]
    cognito_client_id_secret: Option<String>,
    /// The generator function simulations run in; unset, simulations answer 503.
    #[arg(long, env = "GENERATOR_FUNCTION")]
    generator_function: Option<String>,
    /// How long after its start a simulation may publish, in whole seconds.
    #[arg(long, env = "SIMULATION_MAX_EVENT_AGE_SECONDS", value_parser = whole_seconds,
          default_value_t = SimulationLimits::default().max_event_age.as_secs())]
    simulation_max_event_age_seconds: u64,
    /// The dead-letter function, which redrives; unset, redrive answers 503.
    #[arg(long, env = "DEAD_LETTER_FUNCTION")]
    dead_letter_function: Option<String>,
    /// The origins CORS allows (the console's), comma-separated.
    #[arg(long, env = "ALLOWED_ORIGINS", value_delimiter = ',')]
    allowed_origins: Vec<String>,
    /// `true`: anyone may read the inventory and stats (pages capped, answers cacheable);
    /// `false` (the default): every read needs a signed-in user.
    #[arg(long, env = "PUBLIC_READS", action = clap::ArgAction::Set, value_parser = true_or_false,
          default_value = "false")]
    public_reads: bool,
}

/// `true` or `false`; blanks are `false`, as when the variable is unset.
fn true_or_false(value: &str) -> Result<bool, String> {
    match value.trim() {
        "true" => Ok(true),
        "false" | "" => Ok(false),
        other => Err(format!("must be true or false, not `{other}`")),
    }
}

fn not_blank(value: &str) -> Result<String, String> {
    if value.trim().is_empty() {
        Err("must name a table, not be blank".to_owned())
    } else {
        Ok(value.to_owned())
    }
}

/// Whole seconds; blanks are the default, as when the variable is unset.
fn whole_seconds(value: &str) -> Result<u64, String> {
    if value.trim().is_empty() {
        return Ok(SimulationLimits::default().max_event_age.as_secs());
    }
    value
        .trim()
        .parse()
        .map_err(|_| format!("must be whole seconds, not `{value}`"))
}

/// `None` for a variable set to blanks, as for one unset.
fn set(value: &Option<String>) -> Option<String> {
    value.clone().filter(|v| !v.trim().is_empty())
}

impl Config {
    /// Reads the environment; a command line is ignored.
    fn from_env() -> anyhow::Result<Self> {
        Self::try_parse_from(["api"]).map_err(|e| {
            // clap speaks of a command line: keep only what it says of the values.
            let said = e.to_string();
            let what: Vec<&str> = said
                .lines()
                .filter(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
                .filter(|l| !l.trim().is_empty())
                .collect();
            anyhow::anyhow!(
                "the API's environment (infra/template.yaml sets it; each <NAME> is a variable): {}",
                what.join("\n").trim_start_matches("error: ")
            )
        })
    }

    fn tables(&self) -> Tables {
        Tables {
            inventory: self.inventory_table.clone(),
            events: self.events_table.clone(),
        }
    }

    fn limits(&self) -> SimulationLimits {
        SimulationLimits {
            max_event_age: Duration::from_secs(self.simulation_max_event_age_seconds),
            ..SimulationLimits::default()
        }
    }

    /// Who may read without signing in.
    fn reads(&self) -> Reads {
        if self.public_reads {
            Reads::PublicInventory
        } else {
            Reads::SignedIn
        }
    }

    fn allowed_origins(&self) -> Vec<String> {
        self.allowed_origins
            .iter()
            .map(|o| o.trim())
            .filter(|o| !o.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    // lambda_http's subscriber follows the function's logging configuration
    // (AWS_LAMBDA_LOG_FORMAT / AWS_LAMBDA_LOG_LEVEL, set in infra/template.yaml), then RUST_LOG.
    lambda_http::tracing::init_default_subscriber();
    let env = Config::from_env()?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let state = app_state(&env, &aws).await?;
    lambda_http::run(router(state)).await
}

/// The router's state as the environment describes it.
async fn app_state(env: &Config, aws: &aws_config::SdkConfig) -> anyhow::Result<AppState> {
    let secrets = aws_sdk_secretsmanager::Client::new(aws);
    let token = match set(&env.api_token_secret_arn) {
        Some(arn) => read_secret(&secrets, &arn, "the API token").await?,
        None => set(&env.api_token),
    };
    let client_id = match set(&env.cognito_client_id_secret) {
        Some(name) => read_secret(&secrets, &name, "the console's app client id").await?,
        None => set(&env.cognito_client_id),
    };
    let api = ApiConfig {
        token,
        allowed_origins: env.allowed_origins(),
    };
    let limits = env.limits();
    let db = aws_sdk_dynamodb::Client::new(aws);
    let mut state = AppState::new(db, env.tables(), api, launcher(env, aws, limits))
        .with_simulation_limits(limits)
        .with_reads(env.reads());
    match set(&env.dead_letter_function) {
        Some(function) => {
            state = state.with_redriver(Arc::new(LambdaRedriver {
                client: aws_sdk_lambda::Client::new(aws),
                function,
            }));
        }
        None => tracing::info!("DEAD_LETTER_FUNCTION is not set: dead letters cannot be redriven"),
    }
    match user_pool(set(&env.cognito_issuer), client_id)? {
        Some(verifier) => Ok(state.with_jwt(verifier)),
        None => Ok(state),
    }
}

/// The secret's text.
async fn read_secret(
    secrets: &aws_sdk_secretsmanager::Client,
    id: &str,
    what: &str,
) -> anyhow::Result<Option<String>> {
    Ok(secrets
        .get_secret_value()
        .secret_id(id)
        .send()
        .await
        .with_context(|| format!("reading {what} from secret {id}"))?
        .secret_string()
        .map(str::to_owned))
}

/// The generator function's launcher, or the one that refuses where none is deployed.
fn launcher(
    env: &Config,
    aws: &aws_config::SdkConfig,
    limits: SimulationLimits,
) -> Arc<dyn SimulationLauncher> {
    match set(&env.generator_function) {
        Some(function) => Arc::new(LambdaLauncher {
            client: aws_sdk_lambda::Client::new(aws),
            function,
            limits,
        }),
        None => {
            tracing::info!("GENERATOR_FUNCTION is not set: simulations are disabled");
            Arc::new(DisabledLauncher)
        }
    }
}

/// The user pool's token verifier: both its issuer and the console's client id, or neither
/// (then only the static token, if any, signs in).
fn user_pool(
    issuer: Option<String>,
    client_id: Option<String>,
) -> anyhow::Result<Option<JwtVerifier>> {
    match (issuer, client_id) {
        (Some(issuer), Some(client)) => Ok(Some(JwtVerifier::new(JwtSettings::cognito(
            &issuer, &client,
        )))),
        (None, None) => {
            tracing::warn!("COGNITO_ISSUER and COGNITO_CLIENT_ID are not set: only the static token (if any) can sign in");
            Ok(None)
        }
        _ => Err(anyhow::anyhow!(
            "set both COGNITO_ISSUER and COGNITO_CLIENT_ID (or COGNITO_CLIENT_ID_SECRET): the user pool's issuer URL and the console's app client id, or neither"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> Result<Config, clap::Error> {
        let mut args = vec!["api", "--inventory-table", "i", "--events-table", "e"];
        args.extend_from_slice(extra);
        Config::try_parse_from(args)
    }

    #[test]
    fn reads_need_sign_in_unless_public_reads_is_true() {
        // PUBLIC_READS is not set in the test's environment: the default is what an API
        // Lambda without the variable gets.
        if std::env::var_os("PUBLIC_READS").is_none() {
            assert_eq!(parse(&[]).unwrap().reads(), Reads::SignedIn);
        }
        for (given, reads) in [
            ("false", Reads::SignedIn),
            (" ", Reads::SignedIn),
            ("true", Reads::PublicInventory),
        ] {
            assert_eq!(parse(&["--public-reads", given]).unwrap().reads(), reads);
        }
        assert!(parse(&["--public-reads", "yes"]).is_err());
    }
}
