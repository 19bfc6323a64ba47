//! The console's REST API: [`app`] builds one axum `Router`, which `lambda_http::run`
//! serves in AWS (`src/bin/api.rs`) and the local server serves in development.

pub mod auth;
pub mod contract;
pub mod error;
pub mod jwt;
pub mod limits;
pub mod routes;
pub mod store;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::routing::get;
use axum::Router;
use inventory_domain::api::{DeadLetterStatus, RedriveRequest, RedriveResult, SimulationStatus};
use inventory_domain::catalog::{SortKey, SortOrder};
use inventory_store::Tables;
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa::OpenApi;

pub use error::ApiError;

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Starts a simulation somewhere other than the HTTP request: a background task locally,
/// an asynchronous Lambda invocation in AWS.
pub trait SimulationLauncher: Send + Sync + 'static {
    fn launch(&self, status: SimulationStatus) -> BoxFuture<Result<(), LaunchError>>;

    /// Whether simulations can run at all; `POST /api/simulations` answers 503 otherwise.
    fn enabled(&self) -> bool {
        true
    }
}

/// Why a simulation could not be started. The request has already taken the lock and saved
/// its status: the API marks the run failed with this text and frees the lock.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The deployment runs no simulations ([`DisabledLauncher`]).
    #[error("simulations are disabled on this deployment")]
    Disabled,
    /// Lambda did not take the asynchronous invocation of the generator; starting again may
    /// work.
    #[error("invoking the generator function `{function}`: {message}")]
    Invoke { function: String, message: String },
}

/// Why a redrive stopped. What was republished before it stopped is marked, so a redrive
/// again sends only the rest.
#[derive(Debug, thiserror::Error)]
pub enum RedriveError {
    /// Lambda did not run the dead-letter function.
    #[error("invoking the dead-letter function `{function}`: {message}")]
    Invoke { function: String, message: String },
    /// The dead-letter function ran and failed; its logs say why.
    #[error("the dead-letter function failed ({kind}): {body}")]
    FunctionFailed { kind: String, body: String },
    /// The dead-letter function answered something else than a redrive result (a version
    /// mismatch between it and the API).
    #[error("the dead-letter function answered what is not a redrive result: {0}")]
    NotAResult(#[source] serde_json::Error),
    /// The redrive run in this process (the local stack) failed.
    #[error(transparent)]
    InProcess(Box<dyn std::error::Error + Send + Sync>),
}

/// Where no generator is deployed (the `prod` stage): simulations are refused with 503.
pub struct DisabledLauncher;

impl SimulationLauncher for DisabledLauncher {
    fn launch(&self, _status: SimulationStatus) -> BoxFuture<Result<(), LaunchError>> {
        Box::pin(async { Err(LaunchError::Disabled) })
    }

    fn enabled(&self) -> bool {
        false
    }
}

/// How long a simulation may run. Its events may be published only within `max_event_age`
/// of its start (a request that would take longer at its rate is refused, and the generator
/// is told the deadline); the one-at-a-time lock is held for that plus `verify_allowance`,
/// the time its verification may take, so a run that crashed frees the lock by then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimulationLimits {
    pub max_event_age: Duration,
    pub verify_allowance: Duration,
}

impl Default for SimulationLimits {
    /// Ten minutes of events and five of verification: the generator Lambda's 15-minute
    /// timeout (infra/template.yaml).
    fn default() -> Self {
        Self {
            max_event_age: Duration::from_secs(600),
            verify_allowance: Duration::from_secs(300),
        }
    }
}

impl SimulationLimits {
    /// How long the lock is held.
    pub fn lock_for(&self) -> Duration {
        self.max_event_age + self.verify_allowance
    }
}

/// How often at most an instance looks for changed products (docs/architecture.md, "Reads"):
/// a product write shows within this plus the console's poll, and an idle look costs 0.5
/// read units.
pub const CATALOG_LOOK_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Default)]
pub struct ApiConfig {
    /// Bearer token that `POST` endpoints require; `None` refuses every `POST`.
    pub token: Option<String>,
    /// Origins allowed by CORS (the console's), e.g. `https://d111.cloudfront.net`.
    pub allowed_origins: Vec<String>,
}

#[derive(Clone)]
pub struct AppState {
    pub db: aws_sdk_dynamodb::Client,
    pub tables: Tables,
    pub config: Arc<ApiConfig>,
    pub launcher: Arc<dyn SimulationLauncher>,
    /// The warm instance's copy of the catalog, which every listing reads.
    pub catalog: Arc<store::CatalogCache>,
    /// The statistics that cannot change any more, for `/api/stats`.
    pub stats: Arc<store::StatsCache>,
    /// The rejections of days that ended, for `/api/rejections`.
    pub rejections: Arc<store::RejectionsCache>,
    /// The user pool's token verifier (AWS); `None` locally, where the bearer token serves.
    pub jwt: Option<Arc<jwt::JwtVerifier>>,
    /// Who may read without signing in: [`auth::Reads::Open`] unless set with
    /// [`AppState::with_reads`]; the API Lambda sets it from `PUBLIC_READS`, the local server
    /// sets `Open`.
    pub reads: auth::Reads,
    pub limits: SimulationLimits,
    /// Republishes dead letters to the stream; `None` when the deployment has none
    /// (`DEAD_LETTER_FUNCTION` unset), and redrive answers 503.
    pub redriver: Option<Arc<dyn DeadLetterRedriver>>,
}

impl AppState {
    pub fn new(
        db: aws_sdk_dynamodb::Client,
        tables: Tables,
        config: ApiConfig,
        launcher: Arc<dyn SimulationLauncher>,
    ) -> Self {
        Self {
            db,
            tables,
            config: Arc::new(config),
            launcher,
            catalog: Arc::new(store::CatalogCache::new(CATALOG_LOOK_INTERVAL)),
            stats: Arc::new(store::StatsCache::default()),
            rejections: Arc::new(store::RejectionsCache::default()),
            jwt: None,
            reads: auth::Reads::Open,
            limits: SimulationLimits::default(),
            redriver: None,
        }
    }

    /// Accepts the user pool's access tokens (in `x-inventory-auth`).
    pub fn with_jwt(mut self, verifier: jwt::JwtVerifier) -> Self {
        self.jwt = Some(Arc::new(verifier));
        self
    }

    /// Who may read without signing in.
    pub fn with_reads(mut self, reads: auth::Reads) -> Self {
        self.reads = reads;
        self
    }

    pub fn with_redriver(mut self, redriver: Arc<dyn DeadLetterRedriver>) -> Self {
        self.redriver = Some(redriver);
        self
    }

    /// How often at most the catalog looks for changes ([`CATALOG_LOOK_INTERVAL`]).
    pub fn with_catalog_look_interval(mut self, interval: Duration) -> Self {
        self.catalog = Arc::new(store::CatalogCache::new(interval));
        self
    }

    pub fn with_simulation_limits(mut self, limits: SimulationLimits) -> Self {
        self.limits = limits;
        self
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Inventory pipeline API", description = "Live inventory, pipeline figures and simulations."),
    paths(
        routes::list_inventory, routes::get_product, routes::product_history, routes::get_stats, routes::list_rejections,
        routes::start_simulation, routes::get_simulation, routes::list_simulations,
        routes::list_dead_letters, routes::redrive_dead_letters, routes::openapi
    ),
    // The query parameters' enums, which utoipa refers to without collecting them.
    components(schemas(SortKey, SortOrder, DeadLetterStatus)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "In AWS: the Cognito access token in `x-inventory-auth: Bearer <jwt>` (CloudFront replaces `Authorization`). Locally: the API token, in either header.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The API's router.
pub fn router(state: AppState) -> Router {
    let origins: Vec<HeaderValue> = state
        .config
        .allowed_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            auth::AUTH_HEADER,
            HeaderName::from_static("x-amz-content-sha256"),
            header::IF_NONE_MATCH,
        ])
        // A console on another origin reads the ETag, so its polls can be answered 304.
        .expose_headers([header::ETAG])
        .max_age(Duration::from_secs(600));
    Router::new()
        .route("/api/inventory", get(routes::list_inventory))
        .route("/api/inventory/{product_id}", get(routes::get_product))
        .route(
            "/api/inventory/{product_id}/history",
            get(routes::product_history),
        )
        .route("/api/stats", get(routes::get_stats))
        .route("/api/rejections", get(routes::list_rejections))
        .route(
            "/api/simulations",
            get(routes::list_simulations).post(routes::start_simulation),
        )
        .route("/api/simulations/{id}", get(routes::get_simulation))
        .route("/api/dead-letters", get(routes::list_dead_letters))
        .route(
            "/api/dead-letters/redrive",
            axum::routing::post(routes::redrive_dead_letters),
        )
        .route("/api/openapi.json", get(routes::openapi))
        .route("/api/{*rest}", axum::routing::any(routes::not_found))
        .layer(DefaultBodyLimit::max(limits::MAX_BODY_BYTES))
        .layer(cors)
        .with_state(state)
}

/// Republishes pending dead letters (the ids given, or the oldest pending ones when empty).
/// In AWS the dead-letter function does it ([`LambdaRedriver`]), so the API itself cannot
/// write to the stream; locally the same code runs in process.
pub trait DeadLetterRedriver: Send + Sync + 'static {
    fn redrive(&self, request: RedriveRequest) -> BoxFuture<Result<RedriveResult, RedriveError>>;
}

/// Redrives by invoking the dead-letter function synchronously with `{"redrive": {...}}`.
pub struct LambdaRedriver {
    pub client: aws_sdk_lambda::Client,
    pub function: String,
}

impl DeadLetterRedriver for LambdaRedriver {
    fn redrive(&self, request: RedriveRequest) -> BoxFuture<Result<RedriveResult, RedriveError>> {
        let (client, function) = (self.client.clone(), self.function.clone());
        Box::pin(async move {
            let payload = serde_json::json!({ "redrive": request });
            let out = client
                .invoke()
                .function_name(&function)
                .invocation_type(aws_sdk_lambda::types::InvocationType::RequestResponse)
                .payload(aws_sdk_lambda::primitives::Blob::new(payload.to_string()))
                .send()
                .await
                .map_err(|e| RedriveError::Invoke {
                    function,
                    message: aws_sdk_lambda::error::DisplayErrorContext(e).to_string(),
                })?;
            let body = out.payload.map(|p| p.into_inner()).unwrap_or_default();
            if let Some(kind) = out.function_error {
                return Err(RedriveError::FunctionFailed {
                    kind,
                    body: String::from_utf8_lossy(&body).into_owned(),
                });
            }
            serde_json::from_slice(&body).map_err(RedriveError::NotAResult)
        })
    }
}

/// Starts a simulation by invoking the generator Lambda asynchronously (InvocationType
/// Event), so it runs within Lambda's limits and not in the API's request. The payload
/// carries the publishing deadline (`publish_deadline`, RFC 3339: the start plus the maximum
/// event age), past which the generator must publish nothing more.
pub struct LambdaLauncher {
    pub client: aws_sdk_lambda::Client,
    pub function: String,
    pub limits: SimulationLimits,
}

/// The time after which a simulation that started at `created_at` publishes no more
/// events.
pub fn publish_deadline(
    created_at: chrono::DateTime<chrono::Utc>,
    limits: SimulationLimits,
) -> Option<chrono::DateTime<chrono::Utc>> {
    let age = chrono::Duration::from_std(limits.max_event_age).ok()?;
    created_at.checked_add_signed(age)
}

impl SimulationLauncher for LambdaLauncher {
    fn launch(&self, status: SimulationStatus) -> BoxFuture<Result<(), LaunchError>> {
        let (client, function) = (self.client.clone(), self.function.clone());
        let deadline = publish_deadline(status.created_at, self.limits);
        Box::pin(async move {
            let payload = serde_json::json!({
                "id": status.id,
                "request": status.request,
                "publish_deadline": deadline.as_ref().map(inventory_domain::rfc3339::to_millis),
            });
            client
                .invoke()
                .function_name(&function)
                .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
                .payload(aws_sdk_lambda::primitives::Blob::new(payload.to_string()))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| LaunchError::Invoke {
                    function,
                    message: aws_sdk_lambda::error::DisplayErrorContext(e).to_string(),
                })
        })
    }
}
