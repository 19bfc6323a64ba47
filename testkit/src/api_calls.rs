//! The API's router called in process, as CloudFront would call it.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt as _;
use serde_json::Value;
use tower::ServiceExt as _;

/// The bearer token the tests' API is configured with.
pub const TOKEN: &str = "test-token-0123456789";

/// One request through the router: its status and JSON body (`null` when not JSON).
pub async fn call(router: &Router, req: Request<Body>) -> (StatusCode, Value) {
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// `POST /api/simulations` with `body`, signed in with [`TOKEN`].
pub fn start(body: &str) -> Request<Body> {
    Request::post("/api/simulations")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::from(body.to_owned()))
        .unwrap()
}
