//! Who may read, through the router against a DynamoDB emulator holding 120 products.
//! Where reads are closed (the API Lambda's default), every GET under `/api/*` but the
//! OpenAPI document answers an anonymous caller 401. With `PUBLIC_READS` the inventory reads
//! and the statistics answer anyone, an anonymous page holding at most 100 items and marked
//! `Cache-Control: public, max-age=5` (so CloudFront serves floods from its cache), while
//! rejections, dead letters and simulations still need sign-in. A signed-in answer is always
//! `no-cache` with an `ETag`. Open reads (the local stack) answer anyone as before.

use inventory_testkit as support;

use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use chrono::Utc;
use http_body_util::BodyExt as _;
use inventory_api::auth::{Reads, ANONYMOUS_PAGE_LIMIT, AUTH_HEADER};
use inventory_api::{router, ApiConfig, AppState, DisabledLauncher};
use inventory_domain::{ProductRecord, ProductStatus, RecentIds, SequenceNumber};
use inventory_store::items::ProductItem;
use inventory_store::Tables;
use serde_json::Value;
use tower::ServiceExt as _;

const TOKEN: &str = "read-access-token-0123456789";
const PRODUCTS: usize = 120;
/// The answer CloudFront may share between anonymous callers.
const PUBLIC: &str = "public, max-age=5";

/// Every read that needs sign-in where reads are closed.
const READS: [&str; 8] = [
    "/api/inventory",
    "/api/inventory/p-000",
    "/api/inventory/p-000/history",
    "/api/stats",
    "/api/rejections",
    "/api/dead-letters",
    "/api/simulations",
    "/api/simulations/01J8ZQ4V6H3W2X9K7M5N1P0R00",
];
/// The reads `PUBLIC_READS` opens to anonymous callers.
const PUBLIC_READS: [&str; 4] = [
    "/api/inventory",
    "/api/inventory/p-000",
    "/api/inventory/p-000/history",
    "/api/stats",
];

fn product(id: &str) -> ProductRecord {
    ProductRecord {
        product_id: id.into(),
        name: format!("name of {id}"),
        quantity: 7,
        status: ProductStatus::Active,
        version: 1,
        last_sequence: SequenceNumber::parse(
            "49590338271490256608559692538361571095921575989136588898",
        )
        .unwrap(),
        last_shard: Some(0),
        last_stream: None,
        last_event_at: "2023-09-11T12:00:00Z".parse().unwrap(),
        recent_ids: RecentIds::default(),
        history: None,
    }
}

/// A DynamoDB emulator with [`PRODUCTS`] products, `p-000` to `p-119`.
async fn catalog() -> (Client, Tables) {
    let (db, tables) = support::dynamodb("read-access-").await;
    for i in 0..PRODUCTS {
        let item = ProductItem::from_record(&product(&format!("p-{i:03}")), Utc::now());
        db.put_item()
            .table_name(&tables.inventory)
            .set_item(Some(item.to_item().unwrap()))
            .send()
            .await
            .unwrap();
    }
    (db, tables)
}

async fn api(reads: Reads) -> Router {
    let (db, tables) = catalog().await;
    let config = ApiConfig {
        token: Some(TOKEN.into()),
        allowed_origins: vec![],
    };
    router(AppState::new(db, tables, config, Arc::new(DisabledLauncher)).with_reads(reads))
}

struct Answer {
    status: StatusCode,
    cache_control: Option<String>,
    etag: bool,
    body: Value,
}

impl Answer {
    fn items(&self) -> usize {
        self.body["items"].as_array().map_or(0, Vec::len)
    }
}

/// `GET uri`, with `credential` in `x-inventory-auth` when given.
async fn get(router: &Router, uri: &str, credential: Option<&str>) -> Answer {
    let mut req = Request::get(uri);
    if let Some(credential) = credential {
        req = req.header(AUTH_HEADER, format!("Bearer {credential}"));
    }
    let resp = router
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        cache_control: headers
            .get(header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        etag: headers.contains_key(header::ETAG),
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

#[tokio::test]
async fn where_reads_are_closed_every_read_but_the_document_needs_sign_in() {
    let api = api(Reads::SignedIn).await;
    for uri in READS {
        let anonymous = get(&api, uri, None).await;
        assert_eq!(
            anonymous.status,
            StatusCode::UNAUTHORIZED,
            "anonymous {uri}"
        );
        assert_eq!(anonymous.body["error"], "unauthorized", "anonymous {uri}");
        let wrong = get(&api, uri, Some("not-the-token")).await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "wrong token {uri}");
        let signed_in = get(&api, uri, Some(TOKEN)).await;
        assert!(
            matches!(signed_in.status, StatusCode::OK | StatusCode::NOT_FOUND),
            "signed in {uri}: {} {}",
            signed_in.status,
            signed_in.body
        );
    }
    let document = get(&api, "/api/openapi.json", None).await;
    assert_eq!(document.status, StatusCode::OK, "the document is public");

    let page = get(&api, "/api/inventory?limit=1000", Some(TOKEN)).await;
    assert_eq!(page.items(), PRODUCTS, "a signed-in page is not capped");
    assert_eq!(page.cache_control.as_deref(), Some("no-cache"));
    assert!(page.etag, "a signed-in page has an ETag");
}

#[tokio::test]
async fn public_reads_open_the_inventory_and_stats_capped_and_cacheable() {
    let api = api(Reads::PublicInventory).await;
    for uri in PUBLIC_READS {
        let anonymous = get(&api, uri, None).await;
        assert_eq!(
            anonymous.status,
            StatusCode::OK,
            "anonymous {uri}: {}",
            anonymous.body
        );
        assert_eq!(
            anonymous.cache_control.as_deref(),
            Some(PUBLIC),
            "anonymous {uri}"
        );
        let signed_in = get(&api, uri, Some(TOKEN)).await;
        assert_eq!(signed_in.status, StatusCode::OK, "signed in {uri}");
        assert_ne!(
            signed_in.cache_control.as_deref(),
            Some(PUBLIC),
            "signed in {uri}"
        );
        // A credential that does not hold is refused, not read as anonymous.
        let wrong = get(&api, uri, Some("not-the-token")).await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "wrong token {uri}");
    }
    for uri in READS.iter().filter(|uri| !PUBLIC_READS.contains(uri)) {
        let anonymous = get(&api, uri, None).await;
        assert_eq!(
            anonymous.status,
            StatusCode::UNAUTHORIZED,
            "anonymous {uri}"
        );
    }

    let first = get(&api, "/api/inventory?limit=1000", None).await;
    assert_eq!(
        first.items(),
        ANONYMOUS_PAGE_LIMIT,
        "an anonymous page is capped"
    );
    let cursor = first.body["next_cursor"].as_str().expect("a next page");
    let rest = get(
        &api,
        &format!("/api/inventory?limit=1000&cursor={cursor}"),
        None,
    )
    .await;
    assert_eq!(
        rest.items(),
        PRODUCTS - ANONYMOUS_PAGE_LIMIT,
        "the rest on the next page"
    );

    let page = get(&api, "/api/inventory?limit=1000", Some(TOKEN)).await;
    assert_eq!(page.items(), PRODUCTS, "a signed-in page is not capped");
    assert_eq!(page.cache_control.as_deref(), Some("no-cache"));
    assert!(page.etag, "a signed-in page has an ETag");
}

#[tokio::test]
async fn open_reads_answer_anyone_as_the_local_stack_does() {
    let api = api(Reads::Open).await;
    for uri in READS {
        let anonymous = get(&api, uri, None).await;
        assert!(
            matches!(anonymous.status, StatusCode::OK | StatusCode::NOT_FOUND),
            "anonymous {uri}: {} {}",
            anonymous.status,
            anonymous.body
        );
        assert_ne!(anonymous.cache_control.as_deref(), Some(PUBLIC), "{uri}");
    }
    let page = get(&api, "/api/inventory?limit=1000", None).await;
    assert_eq!(page.items(), PRODUCTS, "not capped");
    assert_eq!(page.cache_control.as_deref(), Some("no-cache"));
}
