//! Signed-in users in AWS: access tokens signed by an RSA key this test makes, checked by the
//! API against a JWKS this test serves on 127.0.0.1, through the router as CloudFront
//! delivers requests (`Authorization` is CloudFront's SigV4 signature, the user's token is
//! in `x-inventory-auth`). A valid token starts a simulation (202); an expired one, one for
//! another app client, one signed by a key the pool does not publish, one from another
//! issuer, an id token, and no token at all are refused with 401. The JWKS is fetched once
//! and cached, fetched again for an unknown `kid` (key rotation), and not more often than
//! the refetch interval; fetches are single-flight, and a slow one (for an unknown `kid`)
//! does not delay a token whose key is known. A signed-in read is answered `no-cache`, an
//! anonymous one refused where reads need sign-in. DynamoDB is a stand-in that accepts every
//! write.

use inventory_testkit as support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http_body_util::BodyExt as _;
use inventory_api::auth::Reads;
use inventory_api::jwt::{JwtSettings, JwtVerifier};
use inventory_api::{router, ApiConfig, AppState, BoxFuture, LaunchError, SimulationLauncher};
use inventory_domain::api::SimulationStatus;
use inventory_store::Tables;
use serde_json::{json, Value};
use tower::ServiceExt as _;

const CLIENT_ID: &str = "console-client-id";

struct SigningKey {
    kid: String,
    pair: KeyPair,
}

impl SigningKey {
    fn new(kid: &str) -> Self {
        Self {
            kid: kid.to_owned(),
            pair: KeyPair::generate(KeySize::Rsa2048).expect("an RSA key"),
        }
    }

    fn jwk(&self) -> Value {
        let public = PublicKeyComponents::<Vec<u8>>::from(self.pair.public_key());
        json!({
            "kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(&public.n), "e": URL_SAFE_NO_PAD.encode(&public.e),
        })
    }

    /// A JWT with these claims, signed RS256 with this key but naming `kid`.
    fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": kid});
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                message.as_bytes(),
                &mut signature,
            )
            .expect("signing");
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    fn sign(&self, claims: &Value) -> String {
        self.sign_as(&self.kid, claims)
    }
}

/// Serves a JWKS at `/pool/.well-known/jwks.json` and counts the fetches; the set can be
/// replaced (a key rotation), and each answer delayed (a slow endpoint).
struct Jwks {
    issuer: String,
    keys: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
    delay: Arc<Mutex<Duration>>,
}

async fn serve_jwks(keys: &[&SigningKey]) -> Jwks {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let set = Arc::new(Mutex::new(
        json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()}),
    ));
    let fetches = Arc::new(AtomicUsize::new(0));
    let delay = Arc::new(Mutex::new(Duration::ZERO));
    let (served, counted, delayed) = (set.clone(), fetches.clone(), delay.clone());
    let router = Router::new().route(
        "/pool/.well-known/jwks.json",
        get(move || {
            let (served, counted, delayed) = (served.clone(), counted.clone(), delayed.clone());
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                let pause = *delayed.lock().unwrap();
                tokio::time::sleep(pause).await;
                let body = served.lock().unwrap().to_string();
                ([(header::CONTENT_TYPE, "application/json")], body)
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    Jwks {
        issuer: format!("http://{addr}/pool"),
        keys: set,
        fetches,
        delay,
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn access_claims(issuer: &str) -> Value {
    json!({
        "sub": "7d5e0f6a-user", "username": "operator", "token_use": "access",
        "client_id": CLIENT_ID, "iss": issuer, "iat": now() - 10, "exp": now() + 3600,
        "scope": "openid",
    })
}

#[derive(Default)]
struct CountingLauncher(AtomicUsize);

impl SimulationLauncher for CountingLauncher {
    fn launch(&self, _status: SimulationStatus) -> BoxFuture<Result<(), LaunchError>> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Ok(()) })
    }
}

async fn signed_in_router(verifier: JwtVerifier) -> (Router, Arc<CountingLauncher>) {
    let launcher = Arc::new(CountingLauncher::default());
    let state = AppState::new(
        support::accepting_dynamodb().await,
        Tables::with_prefix("jwt-test-"),
        // As in AWS: no static token, reads need sign-in.
        ApiConfig::default(),
        launcher.clone(),
    )
    .with_jwt(verifier)
    .with_reads(Reads::SignedIn);
    (router(state), launcher)
}

/// `POST /api/simulations` as CloudFront forwards it: its own SigV4 `Authorization`, the
/// user's token (if any) in `x-inventory-auth`.
async fn start(router: &Router, token: Option<&str>) -> (StatusCode, Value) {
    let mut req = Request::post("/api/simulations")
        .header(header::CONTENT_TYPE, "application/json")
        .header(
            header::AUTHORIZATION,
            "AWS4-HMAC-SHA256 Credential=ASIA/20260101/us-east-1/lambda/aws4_request, SignedHeaders=host, Signature=00",
        );
    if let Some(token) = token {
        req = req.header("x-inventory-auth", format!("Bearer {token}"));
    }
    let resp = router
        .clone()
        .oneshot(req.body(Body::from(r#"{"events": 100}"#)).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn only_a_valid_access_token_of_the_pool_and_client_is_accepted() {
    let pool_key = SigningKey::new("pool-key-1");
    let stranger = SigningKey::new("pool-key-1");
    let jwks = serve_jwks(&[&pool_key]).await;
    let (router, launcher) = signed_in_router(JwtVerifier::new(JwtSettings::cognito(
        &jwks.issuer,
        CLIENT_ID,
    )))
    .await;

    let valid = pool_key.sign(&access_claims(&jwks.issuer));
    let (status, body) = start(&router, Some(&valid)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(launcher.0.load(Ordering::SeqCst), 1);

    let mut expired = access_claims(&jwks.issuer);
    expired["exp"] = json!(now() - 3600);
    let mut other_client = access_claims(&jwks.issuer);
    other_client["client_id"] = json!("someone-elses-client");
    let mut other_issuer = access_claims(&jwks.issuer);
    other_issuer["iss"] = json!("https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Other");
    let mut id_token = access_claims(&jwks.issuer);
    id_token["token_use"] = json!("id");
    id_token["aud"] = json!(CLIENT_ID);
    let refused = [
        ("expired", Some(pool_key.sign(&expired))),
        ("another app client", Some(pool_key.sign(&other_client))),
        ("another issuer", Some(pool_key.sign(&other_issuer))),
        // Same kid, but a key the pool does not publish: the signature does not verify.
        (
            "a key not the pool's",
            Some(stranger.sign(&access_claims(&jwks.issuer))),
        ),
        (
            "an unknown kid",
            Some(pool_key.sign_as("not-a-pool-key", &access_claims(&jwks.issuer))),
        ),
        ("an id token", Some(pool_key.sign(&id_token))),
        ("a tampered token", Some(format!("{valid}x"))),
        ("not a JWT", Some("opaque".to_owned())),
        ("no token", None),
    ];
    for (what, token) in refused {
        let (status, body) = start(&router, token.as_deref()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
        assert_eq!(body["error"], "unauthorized", "{what}: {body}");
    }
    assert_eq!(
        launcher.0.load(Ordering::SeqCst),
        1,
        "nothing refused was started"
    );
    // The token in `Authorization` alone is not read in AWS: CloudFront overwrites it.
    let resp = router
        .clone()
        .oneshot(
            Request::post("/api/simulations")
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::AUTHORIZATION, format!("Bearer {valid}"))
                .body(Body::from("{}"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_jwks_is_cached_and_refetched_for_a_new_key_at_most_once_per_interval() {
    let first = SigningKey::new("k1");
    let rotated = SigningKey::new("k2");
    let jwks = serve_jwks(&[&first]).await;
    let settings = JwtSettings::cognito(&jwks.issuer, CLIENT_ID);

    let verifier = JwtVerifier::new(settings.clone()).with_refetch_after(Duration::ZERO);
    let claims = access_claims(&jwks.issuer);
    for _ in 0..3 {
        verifier.verify(&first.sign(&claims)).await.unwrap();
    }
    assert_eq!(
        jwks.fetches.load(Ordering::SeqCst),
        1,
        "fetched once, then cached"
    );

    // The pool rotates: the new key is found by refetching.
    *jwks.keys.lock().unwrap() = json!({"keys": [first.jwk(), rotated.jwk()]});
    verifier.verify(&rotated.sign(&claims)).await.unwrap();
    assert_eq!(jwks.fetches.load(Ordering::SeqCst), 2);

    // Within the interval, an unknown kid is refused without another fetch.
    let bounded = JwtVerifier::new(settings).with_refetch_after(Duration::from_secs(3600));
    bounded.verify(&first.sign(&claims)).await.unwrap();
    let fetched = jwks.fetches.load(Ordering::SeqCst);
    for _ in 0..5 {
        assert!(bounded
            .verify(&first.sign_as("forged-kid", &claims))
            .await
            .is_err());
    }
    assert_eq!(
        jwks.fetches.load(Ordering::SeqCst),
        fetched,
        "forged kids did not make it fetch again"
    );
}

/// How long the JWKS endpoint takes to answer in the tests below: past the verifier's 3 s
/// fetch timeout, as a stalled endpoint.
const SLOW_FETCH: Duration = Duration::from_secs(5);
/// How long a request whose key is known may take while a fetch is under way (a loaded
/// machine's margin; the fetch takes [`SLOW_FETCH`]).
const PROMPT: Duration = Duration::from_secs(1);

#[tokio::test]
async fn a_slow_fetch_for_an_unknown_kid_does_not_delay_a_known_key() {
    let key = SigningKey::new("k1");
    let jwks = serve_jwks(&[&key]).await;
    let verifier = Arc::new(
        JwtVerifier::new(JwtSettings::cognito(&jwks.issuer, CLIENT_ID))
            .with_refetch_after(Duration::ZERO),
    );
    let claims = access_claims(&jwks.issuer);
    let known = key.sign(&claims);
    verifier.verify(&known).await.unwrap();

    // A forged kid makes a fetch, which the endpoint now answers slowly.
    *jwks.delay.lock().unwrap() = SLOW_FETCH;
    let forged = key.sign_as("forged-kid", &claims);
    let refused = tokio::spawn({
        let verifier = verifier.clone();
        async move { verifier.verify(&forged).await }
    });
    support::wait_until("the slow fetch to start", PROMPT, || {
        jwks.fetches.load(Ordering::SeqCst) == 2
    })
    .await;

    let started = Instant::now();
    let answered = tokio::time::timeout(PROMPT, verifier.verify(&known)).await;
    assert!(
        answered.is_ok_and(|claims| claims.is_ok()),
        "a token with a known key waited {:?} for the fetch of another kid",
        started.elapsed()
    );
    assert!(refused.await.unwrap().is_err(), "the forged kid is refused");
}

#[tokio::test]
async fn one_fetch_at_a_time_however_many_requests_need_it() {
    let key = SigningKey::new("k1");
    let jwks = serve_jwks(&[&key]).await;
    *jwks.delay.lock().unwrap() = PROMPT;
    let verifier = Arc::new(JwtVerifier::new(JwtSettings::cognito(
        &jwks.issuer,
        CLIENT_ID,
    )));
    let token = key.sign(&access_claims(&jwks.issuer));
    let requests: Vec<_> = (0..5)
        .map(|_| {
            let (verifier, token) = (verifier.clone(), token.clone());
            tokio::spawn(async move { verifier.verify(&token).await })
        })
        .collect();
    for request in requests {
        request.await.unwrap().unwrap();
    }
    assert_eq!(
        jwks.fetches.load(Ordering::SeqCst),
        1,
        "one fetch served all five"
    );
}

/// `GET /api/inventory` as CloudFront forwards it, with the user's token if any.
async fn list(router: &Router, token: Option<&str>) -> (StatusCode, Option<String>) {
    let mut req = Request::get("/api/inventory");
    if let Some(token) = token {
        req = req.header("x-inventory-auth", format!("Bearer {token}"));
    }
    let resp = router
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let cache = resp
        .headers()
        .get(header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (resp.status(), cache)
}

#[tokio::test]
async fn a_signed_in_user_reads_what_an_anonymous_caller_cannot() {
    let pool_key = SigningKey::new("pool-key-1");
    let jwks = serve_jwks(&[&pool_key]).await;
    let (router, _) = signed_in_router(JwtVerifier::new(JwtSettings::cognito(
        &jwks.issuer,
        CLIENT_ID,
    )))
    .await;
    let token = pool_key.sign(&access_claims(&jwks.issuer));

    let (status, _) = list(&router, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "anonymous");
    let (status, cache) = list(&router, Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "signed in");
    assert_eq!(
        cache.as_deref(),
        Some("no-cache"),
        "a signed-in answer is not shared"
    );
}
