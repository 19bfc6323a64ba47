//! The simulation request's producer fields (`producers`, `retry_share`, `retry_distance`)
//! through the API's router: refused with 422 and a message naming the field, defaulted when
//! absent, passed to the launcher as sent, and described in the OpenAPI document. DynamoDB is
//! a stand-in that accepts every write (the emulators live in `inventory-local`).

use inventory_testkit as support;

use support::{call, start, TOKEN};

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use inventory_api::{router, ApiConfig, AppState, BoxFuture, LaunchError, SimulationLauncher};
use inventory_domain::api::{RetryDistance, SimulationStatus};
use inventory_store::Tables;

#[derive(Default)]
struct RecordingLauncher(Mutex<Vec<SimulationStatus>>);

impl SimulationLauncher for RecordingLauncher {
    fn launch(&self, status: SimulationStatus) -> BoxFuture<Result<(), LaunchError>> {
        self.0.lock().unwrap().push(status);
        Box::pin(async { Ok(()) })
    }
}

async fn test_router() -> (Router, Arc<RecordingLauncher>) {
    let launcher = Arc::new(RecordingLauncher::default());
    let state = AppState::new(
        support::accepting_dynamodb().await,
        Tables {
            inventory: "inventory".into(),
            events: "inventory-events".into(),
        },
        ApiConfig {
            token: Some(TOKEN.into()),
            allowed_origins: vec![],
        },
        launcher.clone(),
    );
    (router(state), launcher)
}

#[tokio::test]
async fn producer_fields_out_of_range_are_refused_with_422() {
    let (router, launcher) = test_router().await;
    for (request, word) in [
        (r#"{"producers": 0}"#, "producers"),
        (r#"{"producers": 101}"#, "producers"),
        (r#"{"producers": "four"}"#, "producers"),
        (r#"{"producers": -1}"#, "producers"),
        (r#"{"retry_share": 1.5}"#, "retry_share"),
        (r#"{"retry_share": -0.05}"#, "retry_share"),
        (r#"{"retry_share": 0.85}"#, "sum"),
        (r#"{"retry_distance": {"min": 10, "max": 5}}"#, "min <= max"),
        (r#"{"retry_distance": {"max": 2000000}}"#, "retry_distance"),
        (r#"{"retry_distance": "1..2000"}"#, "retry_distance"),
        (r#"{"retry_distance": {"min": -1}}"#, "retry_distance"),
        (r#"{"retry_share": 0.05, "rate": 1}"#, "raise rate"),
    ] {
        let (status, body) = call(&router, start(request)).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{request}: {body}"
        );
        // A rule between fields, each within its own limits, has its own code.
        let between_fields = ["sum", "min <= max", "raise rate"].contains(&word);
        let code = if between_fields {
            "inconsistent_request"
        } else {
            "invalid_request"
        };
        assert_eq!(body["error"], code, "{request}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains(word), "{request}: {message}");
    }
    assert!(launcher.0.lock().unwrap().is_empty(), "nothing was started");
}

#[tokio::test]
async fn producer_fields_default_when_absent_and_pass_through_when_set() {
    let (router, launcher) = test_router().await;
    let (status, body) = call(
        &router,
        start(r#"{"products": 50, "events": 3000, "duplicates": 0.05}"#),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, body) = call(
        &router,
        start(
            r#"{"producers": 10, "retry_share": 0.05, "retry_distance": {"min": 1, "max": 2000}}"#,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    let launched = launcher.0.lock().unwrap().clone();
    let old = &launched[0].request;
    assert_eq!(
        (old.producers, old.retry_share, old.retry_distance),
        (1, 0.0, RetryDistance { min: 1, max: 2_000 }),
        "a request from before producers runs as before"
    );
    let new = &launched[1].request;
    assert_eq!(
        (new.producers, new.retry_share, new.retry_distance),
        (10, 0.05, RetryDistance { min: 1, max: 2_000 })
    );
}

#[tokio::test]
async fn the_openapi_document_describes_the_producer_fields() {
    let (router, _) = test_router().await;
    let (status, doc) = call(
        &router,
        Request::get("/api/openapi.json")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let schemas = &doc["components"]["schemas"];
    let request = &schemas["SimulationRequest"]["properties"];
    for field in ["producers", "retry_share", "retry_distance"] {
        assert!(request[field].is_object(), "{field}: {request}");
    }
    let distance = &schemas["RetryDistance"]["properties"];
    assert!(distance["min"].is_object() && distance["max"].is_object());
}
