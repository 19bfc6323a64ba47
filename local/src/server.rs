//! The local server: the API router (the same one the API Lambda runs), the console's
//! static files, and simulations as background tasks, on one port.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Json;
use inventory_api::auth::Reads;
use inventory_api::{
    publish_deadline, router, ApiConfig, AppState, BoxFuture, DeadLetterRedriver, LaunchError,
    RedriveError, SimulationLauncher, SimulationLimits,
};
use inventory_dead_letters::Redriver;
use inventory_domain::api::{RedriveRequest, RedriveResult, SimulationStatus};
use inventory_generator::{run_simulation, SimulationContext};
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

/// The console's shell; `cargo leptos watch` builds only `pkg/`, so the server supplies it.
const INDEX_HTML: &str = include_str!("../../console/index.html");
/// Starts the console's wasm (a file, not an inline script, for the policy below).
const BOOT_JS: &str = include_str!("../../console/boot.js");

/// The console's Content-Security-Policy, as CloudFront sends it in AWS
/// (`ConsoleSecurityHeaders` in infra/template.yaml, which adds the user pool's hosted UI to
/// `connect-src` and `form-action`; testkit/tests/console_csp.rs checks the two agree). Only
/// this origin's scripts, wasm and styles; the API on this origin.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

use crate::stack::LocalStack;

/// Runs each simulation as a tokio task in this process, with the publishing deadline the
/// API Lambda's launcher gives the generator Lambda.
pub struct LocalLauncher {
    pub ctx: SimulationContext,
    pub verify_timeout: Duration,
    pub limits: SimulationLimits,
}

impl SimulationLauncher for LocalLauncher {
    fn launch(&self, status: SimulationStatus) -> BoxFuture<Result<(), LaunchError>> {
        let (ctx, timeout) = (self.ctx.clone(), self.verify_timeout);
        // As the generator Lambda's payload carries it: `run_simulation` reads that text, so
        // an unreadable one is recorded as the run's failure.
        let deadline = publish_deadline(status.created_at, self.limits)
            .as_ref()
            .map(inventory_domain::rfc3339::to_millis);
        tokio::spawn(run_simulation(ctx, status, timeout, deadline));
        Box::pin(async { Ok(()) })
    }
}

/// Redrive in this process: the same code the dead-letter function runs in AWS.
pub struct InProcessRedriver(pub Redriver);

impl DeadLetterRedriver for InProcessRedriver {
    fn redrive(&self, request: RedriveRequest) -> BoxFuture<Result<RedriveResult, RedriveError>> {
        let redriver = self.0.clone();
        Box::pin(async move {
            redriver
                .redrive(&request)
                .await
                .map_err(|e| RedriveError::InProcess(Box::new(e)))
        })
    }
}

#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub port: u16,
    pub api: ApiConfig,
    /// The built console (index.html, JS, wasm, CSS); API only when it does not exist.
    pub site_dir: Option<PathBuf>,
}

/// The API state for a local stack, with simulations as local tasks. Reads are open to
/// anyone ([`Reads::Open`]): this is development, and the console here has no sign-in (the
/// API Lambda needs sign-in for reads unless `PUBLIC_READS` opens some).
pub fn local_state(stack: &LocalStack, api: ApiConfig) -> AppState {
    let ctx = SimulationContext {
        kinesis: stack.kinesis.clone(),
        db: stack.db.clone(),
        tables: stack.options.tables.clone(),
        stream: stack.options.stream.clone(),
    };
    let limits = SimulationLimits::default();
    let mut state = AppState::new(
        stack.db.clone(),
        stack.options.tables.clone(),
        api,
        Arc::new(LocalLauncher {
            ctx,
            verify_timeout: limits.verify_allowance,
            limits,
        }),
    );
    // The same limits for the API's lock and the launcher's deadline.
    state.limits = limits;
    state
        .with_reads(Reads::Open)
        .with_redriver(Arc::new(InProcessRedriver(stack.redriver())))
}

/// Serves the API and the console; returns the bound address and the server task.
pub async fn serve(
    stack: &LocalStack,
    options: ServerOptions,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let mut router = router(local_state(stack, options.api));
    if let Some(dir) = options.site_dir {
        let config = dir.join("config.json");
        router = router
            .route(
                "/config.json",
                get(move || async move {
                    // The deployed file if built; else the API is this same origin.
                    match tokio::fs::read(&config).await {
                        Ok(bytes) => {
                            ([("content-type", "application/json")], bytes).into_response()
                        }
                        Err(_) => Json(serde_json::json!({"api_base_url": ""})).into_response(),
                    }
                }),
            )
            .route("/", get(|| async { Html(INDEX_HTML) }))
            .route(
                "/boot.js",
                get(|| async { ([("content-type", "text/javascript")], BOOT_JS) }),
            )
            .fallback_service(
                ServeDir::new(&dir).not_found_service(get(|| async { Html(INDEX_HTML) })),
            );
    }
    // The browser test runs the console under the policy it has in AWS.
    let router = router.layer(SetResponseHeaderLayer::if_not_present(
        axum::http::header::CONTENT_SECURITY_POLICY,
        axum::http::HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    ));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.port)).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(crate::net::nodelay(listener), router).await {
            tracing::error!(error = %e, "local server stopped");
        }
    });
    Ok((addr, task))
}
