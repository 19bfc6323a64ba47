//! The OpenAPI document the router serves (`/api/openapi.json`): every `$ref` resolves, every
//! limit the handlers enforce is declared with the very constants they check against, and
//! who may call each operation is what the deployment's `Reads` says. Also the error
//! bodies a client sees: a 422 that names the field, a 5xx of one sentence and a request id.
//! DynamoDB is a stand-in that accepts every call (the document reads no table).

use inventory_testkit as support;

use support::{call, TOKEN};

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use inventory_api::auth::Reads;
use inventory_api::limits::{self, PageLimit};
use inventory_api::{
    router, ApiConfig, AppState, BoxFuture, DeadLetterRedriver, DisabledLauncher, RedriveError,
};
use inventory_domain::api::{
    RedriveRequest, RedriveResult, MAX_SIMULATION_EVENTS, MAX_SIMULATION_PRODUCERS,
    MAX_SIMULATION_PRODUCTS, MAX_SIMULATION_RATE, MAX_SIMULATION_RETRY_DISTANCE,
};
use inventory_store::Tables;
use serde_json::{json, Value};

/// A redriver that fails as the SDK does, with the request and the emulator's name in its
/// error; or, with `None`, one that republishes nothing.
struct FailingRedriver(Option<&'static str>);

const SDK_ERROR: &str = "dispatch failure: POST http://127.0.0.1:4566/ dynoxide x-amz-target: DynamoDB_20120810.BatchGetItem";

impl DeadLetterRedriver for FailingRedriver {
    fn redrive(&self, _: RedriveRequest) -> BoxFuture<Result<RedriveResult, RedriveError>> {
        let failure = self.0;
        Box::pin(async move {
            match failure {
                Some(text) => Err(RedriveError::InProcess(text.into())),
                None => Ok(RedriveResult::default()),
            }
        })
    }
}

async fn api(reads: Reads, redriver: FailingRedriver) -> Router {
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
        Arc::new(DisabledLauncher),
    )
    .with_reads(reads)
    .with_redriver(Arc::new(redriver));
    router(state)
}

async fn served_document(reads: Reads) -> Value {
    let router = api(reads, FailingRedriver(None)).await;
    let get = Request::get("/api/openapi.json")
        .body(Body::empty())
        .unwrap();
    let (status, doc) = call(&router, get).await;
    assert_eq!(status, StatusCode::OK);
    doc
}

/// Every `$ref` in `value`, with where it is.
fn refs(value: &Value, at: &str, found: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => found.push((at.to_owned(), r.clone())),
                    _ => refs(v, &format!("{at}/{k}"), found),
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                refs(v, &format!("{at}/{i}"), found);
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn every_ref_in_the_served_document_resolves() {
    for reads in [Reads::Open, Reads::PublicInventory, Reads::SignedIn] {
        let doc = served_document(reads).await;
        let mut found = Vec::new();
        refs(&doc, "", &mut found);
        assert!(found.len() > 20, "the document refers to its schemas");
        let missing: Vec<_> = found
            .iter()
            .filter(|(_, r)| {
                r.strip_prefix('#')
                    .and_then(|pointer| doc.pointer(pointer))
                    .is_none()
            })
            .collect();
        assert!(missing.is_empty(), "unresolved $refs: {missing:?}");
    }
}

/// The schema of query or path parameter `name` of `GET path`.
fn parameter<'a>(doc: &'a Value, path: &str, name: &str) -> &'a Value {
    doc["paths"][path]["get"]["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == name))
        .map(|p| &p["schema"])
        .unwrap_or_else(|| panic!("GET {path} declares no parameter {name}"))
}

fn assert_page_limit(doc: &Value, path: &str, limit: PageLimit) {
    let schema = parameter(doc, path, "limit");
    assert_eq!(
        (&schema["minimum"], &schema["maximum"], &schema["default"]),
        (&json!(1), &json!(limit.max), &json!(limit.default)),
        "GET {path} limit"
    );
    let cursor = parameter(doc, path, "cursor");
    assert_eq!(
        cursor["pattern"],
        limits::CURSOR_PATTERN,
        "GET {path} cursor"
    );
}

#[tokio::test]
async fn every_enforced_limit_is_declared() {
    let doc = served_document(Reads::Open).await;
    assert_page_limit(&doc, "/api/inventory", limits::INVENTORY_PAGE);
    for path in [
        "/api/inventory/{product_id}/history",
        "/api/rejections",
        "/api/dead-letters",
    ] {
        assert_page_limit(&doc, path, limits::PAGE);
    }
    let q = parameter(&doc, "/api/inventory", "q");
    assert_eq!(q["maxLength"], json!(limits::MAX_SEARCH_CHARS));
    let status = parameter(&doc, "/api/inventory", "status");
    assert_eq!(status["enum"], json!(["all", "active", "removed"]));
    let low_stock = parameter(&doc, "/api/inventory", "low_stock");
    assert_eq!(
        (&low_stock["minimum"], &low_stock["maximum"]),
        (&json!(0), &json!(u64::MAX))
    );
    for (name, variants) in [
        (
            "SortKey",
            json!(["product_id", "name", "quantity", "updated_at"]),
        ),
        ("SortOrder", json!(["asc", "desc"])),
        (
            "DeadLetterStatus",
            json!(["pending", "redriving", "redriven", "processed_before"]),
        ),
    ] {
        assert_eq!(
            doc["components"]["schemas"][name]["enum"], variants,
            "{name}"
        );
    }
    for path in [
        "/api/inventory/{product_id}",
        "/api/inventory/{product_id}/history",
    ] {
        let id = parameter(&doc, path, "product_id");
        assert_eq!(id["pattern"], limits::PRODUCT_ID_PATTERN, "{path}");
        assert_eq!(id["maxLength"], json!(limits::MAX_PRODUCT_ID_LEN), "{path}");
    }
    let id = parameter(&doc, "/api/simulations/{id}", "id");
    assert_eq!(id["pattern"], limits::SIMULATION_ID_PATTERN);

    let ids = &doc["components"]["schemas"]["RedriveRequest"]["properties"]["ids"];
    assert_eq!(ids["maxItems"], json!(limits::MAX_REDRIVE_IDS));
    assert_eq!(ids["items"]["pattern"], limits::DEAD_LETTER_ID_PATTERN);
    assert_eq!(
        ids["items"]["maxLength"],
        json!(limits::MAX_DEAD_LETTER_ID_CHARS)
    );
}

/// Timestamps are `DateTime<Utc>` in the code and RFC 3339 text on the wire: declared so.
#[tokio::test]
async fn every_timestamp_is_a_date_time() {
    let doc = served_document(Reads::Open).await;
    for (schema, field) in [
        ("ProductView", "last_event_at"),
        ("ProductView", "updated_at"),
        ("HistoryEntry", "at"),
        ("ThroughputPoint", "at"),
        ("Stats", "last_batch_at"),
        ("Stats", "generated_at"),
        ("RejectionView", "arrived_at"),
        ("RejectionView", "rejected_at"),
        ("DeadLetterView", "arrived_at"),
        ("DeadLetterView", "dead_lettered_at"),
        ("DeadLetterView", "redriven_at"),
        ("SimulationStatus", "created_at"),
        ("SimulationStatus", "updated_at"),
    ] {
        let property = &doc["components"]["schemas"][schema]["properties"][field];
        assert_eq!(
            property["format"], "date-time",
            "{schema}.{field}: {property}"
        );
    }
}

#[tokio::test]
async fn a_simulation_requests_limits_are_declared() {
    let doc = served_document(Reads::Open).await;
    let fields = &doc["components"]["schemas"]["SimulationRequest"]["properties"];
    let range = |name: &str| {
        (
            fields[name]["minimum"].as_f64(),
            fields[name]["maximum"].as_f64(),
        )
    };
    assert_eq!(
        range("products"),
        (Some(1.0), Some(f64::from(MAX_SIMULATION_PRODUCTS)))
    );
    assert_eq!(
        range("events"),
        (Some(1.0), Some(MAX_SIMULATION_EVENTS as f64))
    );
    assert_eq!(
        range("producers"),
        (Some(1.0), Some(f64::from(MAX_SIMULATION_PRODUCERS)))
    );
    for ratio in ["duplicates", "malformed", "invalid", "retry_share"] {
        assert_eq!(range(ratio), (Some(0.0), Some(1.0)), "{ratio}");
    }
    assert_eq!(fields["rate"]["exclusiveMinimum"].as_f64(), Some(0.0));
    assert_eq!(
        fields["rate"]["maximum"].as_f64(),
        Some(MAX_SIMULATION_RATE)
    );
    assert!(fields["skew"]["pattern"].is_string());
    let distance = &doc["components"]["schemas"]["RetryDistance"]["properties"];
    for end in ["min", "max"] {
        assert_eq!(
            distance[end]["maximum"].as_f64(),
            Some(MAX_SIMULATION_RETRY_DISTANCE as f64),
            "retry_distance.{end}"
        );
    }
}

#[tokio::test]
async fn who_may_call_each_operation_is_what_the_deployment_enforces() {
    let bearer = json!([{ "bearer": [] }]);
    let optional = json!([{}, { "bearer": [] }]);
    let security =
        |doc: &Value, method: &str, path: &str| doc["paths"][path][method]["security"].clone();
    let open = served_document(Reads::Open).await;
    assert_eq!(security(&open, "get", "/api/dead-letters"), optional);
    assert_eq!(security(&open, "post", "/api/simulations"), bearer);
    let public = served_document(Reads::PublicInventory).await;
    assert_eq!(security(&public, "get", "/api/inventory"), optional);
    assert_eq!(security(&public, "get", "/api/rejections"), bearer);
    let signed_in = served_document(Reads::SignedIn).await;
    assert_eq!(security(&signed_in, "get", "/api/inventory"), bearer);
    assert_eq!(
        security(&signed_in, "get", "/api/openapi.json"),
        json!([{}])
    );
}

fn redrive(body: &str) -> Request<Body> {
    Request::post("/api/dead-letters/redrive")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::from(body.to_owned()))
        .unwrap()
}

#[tokio::test]
async fn a_redrive_of_ids_the_archive_cannot_have_is_a_422_naming_the_field() {
    let router = api(Reads::Open, FailingRedriver(Some(SDK_ERROR))).await;
    let too_many = json!({ "ids": vec!["1694433600500#shardId-000000000002:4959"; 501] });
    for body in [
        r#"{"ids": [""]}"#.to_owned(),
        r#"{"ids": ["1694433600500#shardId-000000000002:4959", "P1"]}"#.to_owned(),
        too_many.to_string(),
    ] {
        let (status, answer) = call(&router, redrive(&body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert_eq!(answer["error"], "invalid_request");
        assert!(
            answer["message"]
                .as_str()
                .is_some_and(|m| m.contains("ids")),
            "{answer}"
        );
    }
}

#[tokio::test]
async fn a_failed_redrive_answers_one_sentence_and_a_request_id_not_the_sdks_error() {
    let router = api(Reads::Open, FailingRedriver(Some(SDK_ERROR))).await;
    let resp = tower::ServiceExt::oneshot(
        router.clone(),
        redrive(r#"{"ids": ["1694433600500#shardId-000000000002:4959"]}"#),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    let answer: Value = serde_json::from_slice(&bytes).unwrap();
    let message = answer["message"].as_str().unwrap();
    assert_eq!(answer["error"], "redrive_failed");
    assert!(
        message.ends_with(&format!("(request id {request_id})")),
        "{message}"
    );
    for internal in ["dispatch", "127.0.0.1", "dynoxide", "x-amz", "BatchGetItem"] {
        assert!(!message.contains(internal), "{internal} leaked: {message}");
    }
    assert!(bytes.len() < 300, "one sentence, not {} bytes", bytes.len());
}
