//! The API router (the one the API Lambda runs), driven with `tower::ServiceExt::oneshot`
//! against the embedded emulators, and a simulation started through it end to end.

use inventory_testkit as harness;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use harness::{
    local_stack, start_in_process_pipe, try_wait_for, wait_for_delivered, CATCH_UP, PATIENCE,
};
use http_body_util::BodyExt as _;
use inventory_api::{router, ApiConfig, AppState, BoxFuture, LaunchError, SimulationLauncher};
use inventory_domain::api::{
    HistoryEntry, HistoryOutcome, HistoryPage, InventoryPage, RejectionPage, SimulationState,
    SimulationStatus, Stats,
};
use inventory_local::server::local_state;
use inventory_local::stack::{LocalStack, StackOptions};
use serde_json::{json, Value};
use tower::ServiceExt as _;

const TOKEN: &str = "test-token-0123456789";
const CONSOLE: &str = "https://console.example.com";

#[derive(Default)]
struct RecordingLauncher(Mutex<Vec<SimulationStatus>>);

impl SimulationLauncher for RecordingLauncher {
    fn launch(&self, status: SimulationStatus) -> BoxFuture<Result<(), LaunchError>> {
        self.0.lock().unwrap().push(status);
        Box::pin(async { Ok(()) })
    }
}

fn config() -> ApiConfig {
    ApiConfig {
        token: Some(TOKEN.into()),
        allowed_origins: vec![CONSOLE.into()],
    }
}

async fn stack() -> LocalStack {
    local_stack(StackOptions {
        shards: 1,
        ..StackOptions::default()
    })
    .await
}

async fn call(router: &Router, req: Request<Body>) -> (StatusCode, HeaderMap, Value) {
    let resp = router.clone().oneshot(req).await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    (status, headers, body)
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn post(uri: &str, token: Option<&str>, body: &str) -> Request<Body> {
    let mut b = Request::post(uri).header(header::CONTENT_TYPE, "application/json");
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    b.body(Body::from(body.to_owned())).unwrap()
}

/// Puts events through the processor the way the Pipe would.
async fn seed(stack: &LocalStack) {
    let events = [
        (
            "A1",
            json!({"event_id":"1","event_type":"product_added","product":{"product_id":"A1","product_name":"Laptop","quantity":10,"timestamp":"2023-09-11T12:00:00Z"}}),
        ),
        (
            "B2",
            json!({"event_id":"2","event_type":"product_added","product":{"product_id":"B2","product_name":"Mouse","quantity":50,"timestamp":"2023-09-11T12:00:01Z"}}),
        ),
        (
            "C3",
            json!({"event_id":"3","event_type":"product_added","product":{"product_id":"C3","product_name":"Desk","quantity":3,"timestamp":"2023-09-11T12:00:02Z"}}),
        ),
        (
            "C3",
            json!({"event_id":"4","event_type":"product_removed","product":{"product_id":"C3","timestamp":"2023-09-11T12:00:03Z"}}),
        ),
        (
            "A1",
            json!({"event_id":"5","event_type":"quantity_decreased","product":{"product_id":"A1","quantity":99,"timestamp":"2023-09-11T12:00:04Z"}}),
        ),
        (
            "A1",
            json!({"event_id":"6","event_type":"quantity_decreased","product":{"product_id":"A1","quantity":4,"timestamp":"2023-09-11T12:00:05Z"}}),
        ),
    ];
    for (pk, e) in &events {
        stack
            .kinesis
            .put_record()
            .stream_name(&stack.options.stream)
            .partition_key(*pk)
            .data(aws_sdk_kinesis::primitives::Blob::new(e.to_string()))
            .send()
            .await
            .unwrap();
    }
    stack
        .kinesis
        .put_record()
        .stream_name(&stack.options.stream)
        .partition_key("A1")
        .data(aws_sdk_kinesis::primitives::Blob::new("{oops"))
        .send()
        .await
        .unwrap();
    let pipe = start_in_process_pipe(stack);
    wait_for_delivered(&pipe.stats, 7, PATIENCE).await;
    assert_eq!(
        pipe.stats.snapshot().records_delivered,
        7,
        "the seed records were processed"
    );
    pipe.stop().await.unwrap();
}

async fn seeded() -> (LocalStack, Router, Arc<RecordingLauncher>) {
    let stack = stack().await;
    seed(&stack).await;
    let launcher = Arc::new(RecordingLauncher::default());
    let state = AppState::new(
        stack.db.clone(),
        stack.options.tables.clone(),
        config(),
        launcher.clone(),
    );
    let router = router(state);
    (stack, router, launcher)
}

#[tokio::test]
async fn inventory_lists_filters_sorts_and_pages() {
    let (_stack, router, _) = seeded().await;
    let (status, _, body) = call(&router, get("/api/inventory")).await;
    assert_eq!(status, StatusCode::OK);
    let page: InventoryPage = serde_json::from_value(body).unwrap();
    let ids: Vec<_> = page.items.iter().map(|p| p.product_id.as_str()).collect();
    assert_eq!(ids, ["A1", "B2", "C3"]);
    let a1 = &page.items[0];
    assert_eq!(
        (a1.quantity, a1.version, a1.product_name.as_str()),
        (6, 2, "Laptop")
    );

    let (_, _, body) = call(&router, get("/api/inventory?status=removed")).await;
    let page: InventoryPage = serde_json::from_value(body).unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].product_id, "C3");

    let (_, _, body) = call(&router, get("/api/inventory?sort=quantity&order=desc")).await;
    let page: InventoryPage = serde_json::from_value(body).unwrap();
    let q: Vec<u64> = page.items.iter().map(|p| p.quantity).collect();
    assert_eq!(q, [50, 6, 0]);

    // Search: the start of an id, or of a word of the name, any case.
    for (q, want) in [("B", "B2"), ("mou", "B2"), ("LAPTOP", "A1")] {
        let (_, _, body) = call(&router, get(&format!("/api/inventory?q={q}"))).await;
        let page: InventoryPage = serde_json::from_value(body).unwrap();
        let ids: Vec<&str> = page.items.iter().map(|p| p.product_id.as_str()).collect();
        assert_eq!(ids, [want], "{q}");
    }
    // Low stock: active products at or under the threshold (C3 is removed).
    let (_, _, body) = call(&router, get("/api/inventory?low_stock=10")).await;
    let page: InventoryPage = serde_json::from_value(body).unwrap();
    let ids: Vec<&str> = page.items.iter().map(|p| p.product_id.as_str()).collect();
    assert_eq!((ids, page.matching), (vec!["A1"], 1));

    // Pages of 2 with the opaque cursor cover everything once.
    let (_, _, body) = call(&router, get("/api/inventory?limit=2")).await;
    let first: InventoryPage = serde_json::from_value(body).unwrap();
    assert_eq!(first.items.len(), 2);
    let cursor = first.next_cursor.clone().expect("a next page");
    let (_, _, body) = call(
        &router,
        get(&format!("/api/inventory?limit=2&cursor={cursor}")),
    )
    .await;
    let second: InventoryPage = serde_json::from_value(body).unwrap();
    let mut all: Vec<String> = first
        .items
        .iter()
        .chain(&second.items)
        .map(|p| p.product_id.clone())
        .collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 3);

    for bad in [
        "/api/inventory?limit=0",
        "/api/inventory?limit=5000",
        "/api/inventory?status=lost",
        "/api/inventory?sort=colour",
    ] {
        let (status, _, body) = call(&router, get(bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"], "bad_request", "{bad}: {body}");
    }
    let (status, _, body) = call(&router, get("/api/inventory?cursor=not-a-cursor")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_cursor");
}

/// The catalog costs a Scan once per instance; after that an idle poll costs one empty Query
/// (0.5 read units, as the emulator bills it), an unchanged page answers 304, and a write
/// the processor makes shows at the next look.
#[tokio::test]
async fn an_instance_reads_the_table_once_then_only_what_changed() {
    let stack = stack().await;
    seed(&stack).await;
    let state = AppState::new(
        stack.db.clone(),
        stack.options.tables.clone(),
        config(),
        Arc::new(RecordingLauncher::default()),
    )
    .with_catalog_look_interval(Duration::ZERO);
    let catalog = state.catalog.clone();
    let router = router(state);
    let (status, headers, _) = call(&router, get("/api/inventory")).await;
    assert_eq!(status, StatusCode::OK);
    let etag = headers[header::ETAG].to_str().unwrap().to_owned();
    assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
    let loaded = catalog.cost().await;
    assert!(loaded.requests > 0 && loaded.read_units > 0.0, "{loaded:?}");

    const POLLS: u64 = 10;
    for _ in 0..POLLS {
        let req = Request::get("/api/inventory")
            .header(header::IF_NONE_MATCH, &etag)
            .body(Body::empty())
            .unwrap();
        let (status, _, body) = call(&router, req).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        assert_eq!(body, Value::Null, "a 304 has no body");
    }
    let idle = catalog.cost().await;
    assert_eq!(idle.requests - loaded.requests, POLLS, "one Query a look");
    assert!(
        idle.read_units - loaded.read_units <= 0.5 * POLLS as f64,
        "{loaded:?} → {idle:?}"
    );

    // A change through the pipeline: the next look reads it, and the page changes.
    stack
        .kinesis
        .put_record()
        .stream_name(&stack.options.stream)
        .partition_key("B2")
        .data(aws_sdk_kinesis::primitives::Blob::new(
            json!({"event_id":"7","event_type":"quantity_increased","product":{"product_id":"B2","quantity":5,"timestamp":"2023-09-11T12:00:06Z"}}).to_string(),
        ))
        .send()
        .await
        .unwrap();
    let pipe = start_in_process_pipe(&stack);
    // Polled as the console does, with the last ETag: 304 until the write shows.
    let page: InventoryPage =
        harness::wait::wait_for("the write to show in the listing", PATIENCE, || {
            let (router, etag) = (router.clone(), etag.clone());
            async move {
                let req = Request::get("/api/inventory")
                    .header(header::IF_NONE_MATCH, &etag)
                    .body(Body::empty())
                    .unwrap();
                let (status, headers, body) = call(&router, req).await;
                if status == StatusCode::NOT_MODIFIED {
                    return None;
                }
                assert_eq!(status, StatusCode::OK, "{body}");
                assert_ne!(headers[header::ETAG].to_str().unwrap(), etag);
                serde_json::from_value(body).ok()
            }
        })
        .await;
    pipe.stop().await.unwrap();
    let b2 = page.items.iter().find(|p| p.product_id == "B2").unwrap();
    assert_eq!(b2.quantity, 55);
}

#[tokio::test]
async fn a_products_history_lists_every_event_newest_first_and_adds_up_to_its_stock() {
    let (_stack, router, _) = seeded().await;
    // Pages of one entry, following the cursor (bounded).
    let mut entries: Vec<HistoryEntry> = Vec::new();
    let mut uri = "/api/inventory/A1/history?limit=1".to_owned();
    for _ in 0..10 {
        let (status, _, body) = call(&router, get(&uri)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let page: HistoryPage = serde_json::from_value(body).unwrap();
        assert!(page.items.len() <= 1);
        entries.extend(page.items);
        match page.next_cursor {
            Some(c) => uri = format!("/api/inventory/A1/history?limit=1&cursor={c}"),
            None => break,
        }
    }
    let seen: Vec<(&str, HistoryOutcome, Option<&str>, u64)> = entries
        .iter()
        .map(|e| {
            (
                e.event_id.as_str(),
                e.outcome,
                e.reason.as_deref(),
                e.stock_after,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("6", HistoryOutcome::Applied, None, 6),
            (
                "5",
                HistoryOutcome::Rejected,
                Some("insufficient_stock"),
                10
            ),
            ("1", HistoryOutcome::Applied, None, 10),
        ]
    );
    assert_eq!(entries[0].quantity, Some(4));
    assert_eq!(entries[2].event_type, "product_added");
    assert_eq!(inventory_domain::history::adds_up(&entries, 6), Ok(()));
    // A removed product's history ends at 0; an unknown product is a 404.
    let (_, _, body) = call(&router, get("/api/inventory/C3/history")).await;
    let page: HistoryPage = serde_json::from_value(body).unwrap();
    assert_eq!(inventory_domain::history::adds_up(&page.items, 0), Ok(()));
    assert_eq!(page.items.len(), 2);
    let (status, _, _) = call(&router, get("/api/inventory/NOPE/history")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = call(&router, get("/api/inventory/A1/history?limit=0")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn one_product_or_a_json_404() {
    let (_stack, router, _) = seeded().await;
    let (status, _, body) = call(&router, get("/api/inventory/B2")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["quantity"], 50);
    assert_eq!(body["status"], "active");
    for missing in ["/api/inventory/NOPE", "/api/inventory/has%20space"] {
        let (status, _, body) = call(&router, get(missing)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"], "not_found");
        assert!(body["message"].as_str().unwrap().contains("no product"));
    }
    let (status, _, body) = call(&router, get("/api/nothing-here")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");
}

#[tokio::test]
async fn stats_report_exact_totals_and_the_rejections() {
    let (_stack, router, _) = seeded().await;
    let (status, _, body) = call(&router, get("/api/stats")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let stats: Stats = serde_json::from_value(body).unwrap();
    // From the processor's shard counters, units included: 6 + 50 (C3 was removed).
    assert_eq!(
        (stats.products, stats.active_products, stats.units),
        (Some(3), Some(2), Some(56))
    );
    assert_eq!(stats.events_applied, Some(5));
    assert_eq!(stats.rejections.get("insufficient_stock"), Some(&1));
    assert_eq!(stats.rejections.get("invalid_json"), Some(&1));
    assert_eq!(stats.rejections_total, 2);
    assert!(stats.lag_ms.is_some() && stats.last_batch_at.is_some());
    assert_eq!(stats.throughput.len(), 60);
    assert!(
        stats
            .throughput
            .iter()
            .map(|p| p.applied_per_sec)
            .sum::<f64>()
            > 0.0
    );
}

#[tokio::test]
async fn rejections_are_listed_newest_first_and_paged() {
    let (_stack, router, _) = seeded().await;
    let (status, _, body) = call(&router, get("/api/rejections")).await;
    assert_eq!(status, StatusCode::OK);
    let page: RejectionPage = serde_json::from_value(body).unwrap();
    let reasons: Vec<&str> = page.items.iter().map(|r| r.reason.as_str()).collect();
    assert_eq!(
        reasons,
        ["invalid_json", "insufficient_stock"],
        "newest first"
    );
    assert_eq!(page.items[1].product_id.as_deref(), Some("A1"));
    assert!(page.items[0].record_id.starts_with("shardId-"));

    let (_, _, body) = call(&router, get("/api/rejections?limit=1")).await;
    let first: RejectionPage = serde_json::from_value(body).unwrap();
    let cursor = first.next_cursor.expect("more");
    let (_, _, body) = call(
        &router,
        get(&format!("/api/rejections?limit=1&cursor={cursor}")),
    )
    .await;
    let second: RejectionPage = serde_json::from_value(body).unwrap();
    assert_eq!(second.items[0].reason.as_str(), "insufficient_stock");

    let (status, _, _) = call(&router, get("/api/rejections?limit=500")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn starting_a_simulation_needs_the_token_and_stays_within_limits() {
    let (_stack, router, launcher) = seeded().await;
    let (status, headers, body) = call(&router, post("/api/simulations", None, "{}")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
    assert_eq!(body["error"], "unauthorized");
    let (status, _, _) = call(&router, post("/api/simulations", Some("wrong"), "{}")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    for (request, word) in [
        (r#"{"events": 2000000}"#, "events"),
        (r#"{"rate": 6000}"#, "rate"),
        (r#"{"products": 20000}"#, "products"),
        (r#"{"duplicates": 0.5, "malformed": 0.5}"#, "sum"),
        (r#"{"skew": "pareto"}"#, "skew"),
        (r#"{"events": "many"}"#, "events"),
        ("{not json", "JSON"),
    ] {
        let (status, _, body) = call(&router, post("/api/simulations", Some(TOKEN), request)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{request}");
        // Ratios each within 0..1 but over the sum's limit break a rule between fields.
        let code = if word == "sum" {
            "inconsistent_request"
        } else {
            "invalid_request"
        };
        assert_eq!(body["error"], code, "{request}");
        assert!(
            body["message"].as_str().unwrap().contains(word),
            "{request}: {body}"
        );
    }
    assert!(launcher.0.lock().unwrap().is_empty());

    let (status, headers, body) = call(
        &router,
        post(
            "/api/simulations",
            Some(TOKEN),
            r#"{"events": 500, "products": 20}"#,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(headers[header::LOCATION], format!("/api/simulations/{id}"));
    assert_eq!(launcher.0.lock().unwrap()[0].id, id);

    let (status, _, body) = call(&router, get(&format!("/api/simulations/{id}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["state"], "queued");
    assert_eq!(body["events_target"], 500);
    let (_, _, body) = call(&router, get("/api/simulations")).await;
    assert_eq!(body["items"][0]["id"], id.as_str());
    let (status, _, _) = call(&router, get("/api/simulations/01JD3Z5Q4V6H3W2X9K7M5N1P0R")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = call(&router, get("/api/simulations/not-an-id")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn without_a_configured_token_nothing_can_be_started() {
    let stack = stack().await;
    let state = AppState::new(
        stack.db.clone(),
        stack.options.tables.clone(),
        ApiConfig::default(),
        Arc::new(RecordingLauncher::default()),
    );
    let (status, _, body) = call(&router(state), post("/api/simulations", Some(""), "{}")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"], "not_configured");
}

#[tokio::test]
async fn cors_allows_only_the_console_origin() {
    let (_stack, router, _) = seeded().await;
    let preflight = |origin: &str| {
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/api/simulations")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                "authorization,content-type",
            )
            .body(Body::empty())
            .unwrap()
    };
    let (_, headers, _) = call(&router, preflight(CONSOLE)).await;
    assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], CONSOLE);
    assert!(headers[header::ACCESS_CONTROL_ALLOW_HEADERS]
        .to_str()
        .unwrap()
        .contains("authorization"));
    let (_, headers, _) = call(&router, preflight("https://evil.example.com")).await;
    assert!(headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());

    let req = Request::get("/api/stats")
        .header(header::ORIGIN, CONSOLE)
        .body(Body::empty())
        .unwrap();
    let (_, headers, _) = call(&router, req).await;
    assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], CONSOLE);
}

#[tokio::test]
async fn internal_errors_do_not_leak_details() {
    let stack = stack().await;
    let state = AppState::new(
        stack.db.clone(),
        inventory_store::Tables::with_prefix("missing-"),
        config(),
        Arc::new(RecordingLauncher::default()),
    );
    let (status, _, body) = call(&router(state), get("/api/inventory")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["error"], "internal");
    let text = body.to_string();
    assert!(
        !text.contains("missing-") && !text.contains("ResourceNotFound"),
        "{text}"
    );
}

#[tokio::test]
async fn the_openapi_document_describes_every_endpoint() {
    let (_stack, router, _) = seeded().await;
    let (status, _, body) = call(&router, get("/api/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    for path in [
        "/api/inventory",
        "/api/inventory/{product_id}",
        "/api/stats",
        "/api/rejections",
        "/api/simulations",
        "/api/simulations/{id}",
        "/api/openapi.json",
    ] {
        assert!(body["paths"][path].is_object(), "{path} missing");
    }
    assert!(body["paths"]["/api/simulations"]["post"]["security"].is_array());
    assert!(body["components"]["schemas"]["SimulationRequest"].is_object());
}

/// A simulation started through the API runs to a verdict of 0 mismatches, and its status
/// shows it publishing while it does: 3,000 events at 1,000 a second publish for about 3 s,
/// over which the status (saved every second) reports a part of them sent at least once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_simulation_started_through_the_api_verifies_with_zero_mismatches() {
    let stack = stack().await;
    let pipe = start_in_process_pipe(&stack);
    let router = router(local_state(&stack, config()));
    let request = r#"{"products": 50, "events": 3000, "rate": 1000, "duplicates": 0.05, "malformed": 0.01, "invalid": 0.02, "seed": 7}"#;
    let (status, _, body) = call(&router, post("/api/simulations", Some(TOKEN), request)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let url = body["status_url"].as_str().unwrap().to_owned();
    // The events sent of every status seen while publishing, in the order seen, and the
    // latest status (for the message if no verdict comes).
    let publishing: Mutex<Vec<u64>> = Mutex::default();
    let latest: Mutex<Option<SimulationStatus>> = Mutex::default();
    let status = try_wait_for(CATCH_UP, || async {
        let (_, _, body) = call(&router, get(&url)).await;
        let s: SimulationStatus = serde_json::from_value(body).unwrap();
        if s.state == SimulationState::Publishing {
            publishing.lock().unwrap().push(s.events_sent);
        }
        let ended = matches!(
            s.state,
            SimulationState::Completed | SimulationState::Failed
        );
        *latest.lock().unwrap() = Some(s.clone());
        ended.then_some(s)
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "no verdict after {CATCH_UP:?}; the simulation is {:?}",
            latest.lock().unwrap()
        )
    });
    let publishing = publishing.into_inner().unwrap();
    assert_eq!(status.error, None);
    let verdict = status.verdict.expect("a verdict");
    assert!(verdict.caught_up);
    assert_eq!(verdict.mismatches, 0, "{:?}", verdict.details);
    assert_eq!(verdict.rejections_expected, verdict.rejections_stored);
    assert_eq!(status.events_sent, 3000);
    // Progress was reported while the simulation ran, not only at its end: some status
    // said it was publishing with part of the events sent, and the counts never went back.
    assert!(
        publishing.iter().any(|&sent| sent > 0 && sent < 3000),
        "no status showed the simulation part-way through publishing; events sent seen while publishing: {publishing:?}"
    );
    assert!(
        publishing.windows(2).all(|w| w[0] <= w[1]),
        "events sent went backwards: {publishing:?}"
    );
    pipe.stop().await.unwrap();
}

/// The local server opens every read to anyone, on purpose: its console has no sign-in
/// (the API Lambda needs one unless `PUBLIC_READS` opens the inventory reads).
#[tokio::test]
async fn the_local_server_keeps_reads_open() {
    let stack = stack().await;
    let state = local_state(&stack, config());
    assert_eq!(state.reads, inventory_api::auth::Reads::Open);
    let router = router(state);
    for uri in [
        "/api/inventory",
        "/api/stats",
        "/api/rejections",
        "/api/dead-letters",
        "/api/simulations",
    ] {
        let (status, _, body) = call(&router, get(uri)).await;
        assert_eq!(status, StatusCode::OK, "anonymous {uri}: {body}");
    }
}
