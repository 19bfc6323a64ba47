//! The console's HTTP client. It deserialises the API's JSON with the same types the API
//! serialises (`inventory_domain::api`), including `/api/stats`, whose totals may be `null`.
//!
//! Credentials go in `x-inventory-auth: Bearer <token>`: in AWS the API sits behind
//! CloudFront's origin access control, which replaces `Authorization` with its own
//! signature. Every POST also sends `x-amz-content-sha256`, the hex SHA-256 of its exact
//! body, which CloudFront needs to sign a request with a body for a Lambda function URL.

use gloo_net::http::{Request, RequestBuilder, Response};
use inventory_domain::api::{
    DeadLetterPage, ErrorBody, InventoryPage, RedriveRequest, RedriveResult, RejectionPage,
    SimulationAccepted, SimulationList, SimulationRequest, Stats,
};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

/// The header the API reads credentials from.
pub const AUTH_HEADER: &str = "x-inventory-auth";

/// The hex SHA-256 of a request body, as `x-amz-content-sha256` carries it.
pub fn content_sha256(body: &[u8]) -> String {
    Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// No answer at all (network, server down, CORS).
    Unreachable(String),
    /// 401: the token is missing or wrong.
    Unauthorized(String),
    /// Any other error status, with the API's message.
    Status(u16, String),
}

impl ApiError {
    pub fn message(&self) -> String {
        match self {
            ApiError::Unreachable(m) => format!("API unreachable: {m}"),
            ApiError::Unauthorized(m) => format!("Unauthorised: {m}"),
            ApiError::Status(code, m) => format!("{code}: {m}"),
        }
    }
}

/// `config.json` beside index.html, written at deploy time (scripts/upload_console.py) so
/// the API's address and the sign-in change without rebuilding the wasm.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ConsoleConfig {
    /// e.g. `https://d111.cloudfront.net`; empty for the same origin.
    #[serde(default)]
    pub api_base_url: String,
    /// The user pool's hosted UI; absent locally, where the API token field is shown.
    #[serde(default)]
    pub cognito: Option<CognitoConfig>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CognitoConfig {
    /// `https://<prefix>.auth.<region>.amazoncognito.com`
    pub domain: String,
    /// The console's (public) app client.
    pub client_id: String,
    /// The console's own URL, registered as the client's callback.
    pub redirect_uri: String,
}

pub async fn load_config() -> ConsoleConfig {
    match Request::get("config.json").send().await {
        Ok(r) if r.ok() => r.json().await.unwrap_or_default(),
        _ => ConsoleConfig::default(),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Api {
    base: String,
    /// The signed-in user's access token, sent with every request.
    credential: Option<String>,
}

impl Api {
    pub fn new(base_url: &str) -> Self {
        Self {
            base: base_url.trim_end_matches('/').to_owned(),
            credential: None,
        }
    }

    pub fn with_credential(mut self, credential: Option<String>) -> Self {
        self.credential = credential;
        self
    }

    pub fn signed_in(&self) -> bool {
        self.credential.is_some()
    }

    fn authorised(&self, req: RequestBuilder, token: Option<&str>) -> RequestBuilder {
        match token.or(self.credential.as_deref()) {
            Some(t) if !t.is_empty() => req.header(AUTH_HEADER, &format!("Bearer {t}")),
            _ => req,
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        let resp = self
            .authorised(Request::get(&self.url(path)), None)
            .send()
            .await
            .map_err(|e| ApiError::Unreachable(e.to_string()))?;
        read(resp).await
    }

    pub fn base(&self) -> &str {
        if self.base.is_empty() {
            "this site"
        } else {
            &self.base
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn inventory(&self, status: &str) -> Result<InventoryPage, ApiError> {
        let mut path = "/api/inventory?limit=1000".to_owned();
        if status != "all" {
            path.push_str("&status=");
            path.push_str(status);
        }
        self.get(&path).await
    }

    pub async fn stats(&self) -> Result<Stats, ApiError> {
        self.get("/api/stats").await
    }

    pub async fn rejections(&self) -> Result<RejectionPage, ApiError> {
        self.get("/api/rejections?limit=25").await
    }

    pub async fn dead_letters(&self) -> Result<DeadLetterPage, ApiError> {
        self.get("/api/dead-letters?limit=25").await
    }

    /// Redrives every pending dead letter (oldest first, up to 500 per call) with the
    /// signed-in user's token, or `token` (the local stack's); with `include_past_window`
    /// also those older than the dedup window.
    pub async fn redrive(
        &self,
        token: Option<&str>,
        include_past_window: bool,
    ) -> Result<RedriveResult, ApiError> {
        self.post(
            "/api/dead-letters/redrive",
            token,
            &RedriveRequest {
                ids: Vec::new(),
                include_past_window,
            },
        )
        .await
    }

    async fn post<B: serde::Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        token: Option<&str>,
        request: &B,
    ) -> Result<T, ApiError> {
        let body =
            serde_json::to_string(request).map_err(|e| ApiError::Status(0, e.to_string()))?;
        // CloudFront's origin access control signs the request to the Function URL; with a
        // body it needs the body's hash from the viewer.
        let req = self
            .authorised(Request::post(&self.url(path)), token)
            .header("Content-Type", "application/json")
            .header("x-amz-content-sha256", &content_sha256(body.as_bytes()))
            .body(body)
            .map_err(|e| ApiError::Status(0, e.to_string()))?;
        let resp = req
            .send()
            .await
            .map_err(|e| ApiError::Unreachable(e.to_string()))?;
        read(resp).await
    }

    pub async fn simulations(&self) -> Result<SimulationList, ApiError> {
        self.get("/api/simulations").await
    }

    /// Starts a simulation with the signed-in user's token, or `token` (the local stack's).
    pub async fn start_simulation(
        &self,
        token: Option<&str>,
        request: &SimulationRequest,
    ) -> Result<SimulationAccepted, ApiError> {
        self.post("/api/simulations", token, request).await
    }
}

async fn read<T: DeserializeOwned>(resp: Response) -> Result<T, ApiError> {
    let status = resp.status();
    if resp.ok() {
        return resp
            .json()
            .await
            .map_err(|e| ApiError::Status(status, format!("unexpected response: {e}")));
    }
    let message = match resp.json::<ErrorBody>().await {
        Ok(body) => body.message,
        Err(_) => resp.status_text(),
    };
    if status == 401 {
        Err(ApiError::Unauthorized(message))
    } else {
        Err(ApiError::Status(status, message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_content_hash_is_the_hex_sha256_of_the_body() {
        assert_eq!(
            content_sha256(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            content_sha256(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn stats_with_unavailable_totals_read_as_none() {
        let s: Stats = serde_json::from_str(
            r#"{"products": 3, "active_products": 2, "units": null, "events_applied": 5,
                "duplicates_ignored": 0, "rejections": {}, "rejections_total": 0, "lag_ms": null,
                "last_batch_at": null, "throughput_last_minute": 0.0, "throughput": [],
                "generated_at": "2026-01-01T00:00:00Z", "unavailable": ["units"],
                "totals_source": "status_index"}"#,
        )
        .unwrap();
        assert_eq!((s.products, s.units), (Some(3), None));
        assert_eq!(s.unavailable, ["units"]);
    }
}
