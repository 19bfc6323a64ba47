//! One simulation at a time, against a real DynamoDB API (the embedded dynoxide emulator, the
//! real SDK client): the lock is a conditional write, so of many concurrent starts exactly
//! one wins; a second start while one runs gets 409 with a message naming it; the lock frees
//! itself when its holder has ended or it has expired, and only its holder releases it. A
//! stage without a generator answers 503. Rejections' data excerpts go to signed-in callers
//! only.

use inventory_testkit as support;

use support::{call, start, TOKEN};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use chrono::Utc;
use inventory_api::store::simulations;
use inventory_api::{
    router, ApiConfig, AppState, BoxFuture, DisabledLauncher, LaunchError, SimulationLauncher,
    SimulationLimits,
};
use inventory_domain::api::{SimulationRequest, SimulationState, SimulationStatus};
use inventory_domain::arn::StreamArn;
use inventory_domain::{PipeRecord, Rejection, RejectionReason};
use inventory_store::rejections::{RejectedRecord, RejectionItem};
use inventory_store::simulation_lock::{self, LOCK_PK, LOCK_SK};
use inventory_store::Tables;

#[derive(Default)]
struct CountingLauncher(AtomicUsize);

impl SimulationLauncher for CountingLauncher {
    fn launch(&self, _status: SimulationStatus) -> BoxFuture<Result<(), LaunchError>> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Ok(()) })
    }
}

fn router_with(db: &Client, tables: &Tables, launcher: Arc<dyn SimulationLauncher>) -> Router {
    router(AppState::new(
        db.clone(),
        tables.clone(),
        ApiConfig {
            token: Some(TOKEN.into()),
            allowed_origins: vec![],
        },
        launcher,
    ))
}

async fn set_state(db: &Client, tables: &Tables, id: &str, state: SimulationState) {
    let mut status = simulations::load(db, tables, id).await.unwrap().unwrap();
    status.state = state;
    simulations::save(db, tables, &status).await.unwrap();
}

#[tokio::test]
async fn a_second_start_gets_409_until_the_first_has_ended() {
    let (db, tables) = support::dynamodb("lock-test-").await;
    let launcher = Arc::new(CountingLauncher::default());
    let router = router_with(&db, &tables, launcher.clone());

    let (status, first) = call(&router, start(r#"{"events": 100}"#)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    let first_id = first["id"].as_str().unwrap().to_owned();

    let (status, body) = call(&router, start(r#"{"events": 100}"#)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "simulation_running");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains(&first_id) && message.contains("one runs at a time"),
        "{message}"
    );
    assert_eq!(launcher.0.load(Ordering::SeqCst), 1);

    // Still publishing: still held.
    set_state(&db, &tables, &first_id, SimulationState::Publishing).await;
    let (status, _) = call(&router, start(r#"{"events": 100}"#)).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Ended: the next start takes the lock over.
    set_state(&db, &tables, &first_id, SimulationState::Completed).await;
    let (status, second) = call(&router, start(r#"{"events": 100}"#)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{second}");
    assert_eq!(launcher.0.load(Ordering::SeqCst), 2);
    let held = simulation_lock::holder(&db, &tables, Utc::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(held.holder, second["id"].as_str().unwrap());
}

#[tokio::test]
async fn of_concurrent_starts_exactly_one_takes_the_lock() {
    let (db, tables) = support::dynamodb("lock-test-").await;
    let now = Utc::now();
    let attempts = (0..8).map(|i| {
        let (db, tables) = (db.clone(), tables.clone());
        tokio::spawn(async move {
            simulation_lock::acquire(
                &db,
                &tables,
                &format!("SIM{i}"),
                now,
                Duration::from_secs(900),
            )
            .await
            .unwrap()
        })
    });
    let results = futures::future::join_all(attempts).await;
    let winners = results.iter().filter(|r| matches!(r, Ok(Ok(())))).count();
    assert_eq!(winners, 1, "{results:?}");
}

#[tokio::test]
async fn the_lock_expires_and_only_its_holder_releases_it() {
    let (db, tables) = support::dynamodb("lock-test-").await;
    let now = Utc::now();
    let hold = Duration::from_secs(60);
    assert_eq!(
        simulation_lock::acquire(&db, &tables, "A", now, hold)
            .await
            .unwrap(),
        Ok(())
    );
    // "A" has no status record and took the lock just now: presumed running.
    let refused = simulation_lock::acquire(&db, &tables, "B", now, hold)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(refused.holder, "A");
    assert!(!simulation_lock::release(&db, &tables, "B").await.unwrap());
    assert_eq!(
        simulation_lock::holder(&db, &tables, now)
            .await
            .unwrap()
            .map(|h| h.holder)
            .as_deref(),
        Some("A")
    );

    // Past its expiry (a run that crashed), anyone may take it.
    let later = now + chrono::Duration::seconds(61);
    assert!(simulation_lock::holder(&db, &tables, later)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        simulation_lock::acquire(&db, &tables, "C", later, hold)
            .await
            .unwrap(),
        Ok(())
    );
    assert!(simulation_lock::release(&db, &tables, "C").await.unwrap());
    let item = db
        .get_item()
        .table_name(&tables.events)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(LOCK_PK.into()),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S(LOCK_SK.into()),
        )
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    assert!(item.item.is_none(), "released: the item is gone");
}

#[tokio::test]
async fn a_stage_without_a_generator_answers_503_and_requests_past_the_event_age_422() {
    let (db, tables) = support::dynamodb("lock-test-").await;
    let router = router_with(&db, &tables, Arc::new(DisabledLauncher));
    let (status, body) = call(&router, start("{}")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "simulations_disabled");
    assert!(body["message"].as_str().unwrap().contains("disabled"));

    let launcher = Arc::new(CountingLauncher::default());
    let router = inventory_api::router(
        AppState::new(
            db.clone(),
            tables.clone(),
            ApiConfig {
                token: Some(TOKEN.into()),
                allowed_origins: vec![],
            },
            launcher.clone(),
        )
        .with_simulation_limits(SimulationLimits {
            max_event_age: Duration::from_secs(60),
            ..SimulationLimits::default()
        }),
    );
    // 10,000 events at 100/s take 100 s, past a 60 s maximum age.
    let (status, body) = call(&router, start(r#"{"events": 10000, "rate": 100}"#)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("maximum event age"),
        "{body}"
    );
    assert_eq!(launcher.0.load(Ordering::SeqCst), 0);
    assert!(simulation_lock::holder(&db, &tables, Utc::now())
        .await
        .unwrap()
        .is_none());
    let defaults = SimulationRequest::default();
    assert!(
        defaults.events as f64 / defaults.rate <= 60.0,
        "the default request fits"
    );
}

#[tokio::test]
async fn rejection_excerpts_go_to_signed_in_callers_only() {
    let (db, tables) = support::dynamodb("lock-test-").await;
    let now = Utc::now();
    let stream = StreamArn::parse("arn:aws:kinesis:us-east-1:123456789012:stream/s").unwrap();
    let record = PipeRecord::new(
        &stream,
        "shardId-000000000000",
        "1",
        "P1",
        "bm90IGpzb24=".into(),
        now.timestamp_millis() as f64 / 1000.0,
    );
    let rejection = Rejection::new(RejectionReason::InvalidJson, "not JSON");
    let item = RejectionItem::new(
        &RejectedRecord {
            record: &record,
            rejection: &rejection,
            product_id: None,
            event_id: None,
        },
        now,
    );
    db.put_item()
        .table_name(&tables.events)
        .set_item(Some(item.to_item().unwrap()))
        .send()
        .await
        .unwrap();
    let router = router_with(&db, &tables, Arc::new(CountingLauncher::default()));

    let get = |auth: Option<&str>| {
        let mut req = Request::get("/api/rejections");
        if let Some(auth) = auth {
            req = req.header("x-inventory-auth", auth);
        }
        req.body(Body::empty()).unwrap()
    };
    let (status, anonymous) = call(&router, get(None)).await;
    assert_eq!(status, StatusCode::OK, "{anonymous}");
    assert_eq!(anonymous["excerpts_withheld"], true);
    assert_eq!(anonymous["items"][0]["data_base64_excerpt"], "");
    assert_eq!(anonymous["items"][0]["reason"], "invalid_json");

    let (status, signed_in) = call(&router, get(Some(&format!("Bearer {TOKEN}")))).await;
    assert_eq!(status, StatusCode::OK, "{signed_in}");
    assert_eq!(signed_in["excerpts_withheld"], false);
    assert_eq!(signed_in["items"][0]["data_base64_excerpt"], "bm90IGpzb24=");

    // A wrong credential is refused, not quietly treated as anonymous.
    let (status, _) = call(&router, get(Some("Bearer wrong"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
