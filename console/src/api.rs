//! The console's HTTP client. It deserialises the API's JSON with the same types the API
//! serialises (`inventory_domain::api`), including `/api/stats`, whose totals may be `null`.
//! An inventory page is asked for with the `ETag` of the copy held (`If-None-Match`): an
//! unchanged page comes back `304 Not Modified`, without a body.
//!
//! Credentials go in `x-inventory-auth: Bearer <token>`: in AWS the API sits behind
//! CloudFront's origin access control, which replaces `Authorization` with its own
//! signature. Every POST also sends `x-amz-content-sha256`, the hex SHA-256 of its exact
//! body, which CloudFront needs to sign a request with a body for a Lambda function URL.

use gloo_net::http::{Request, RequestBuilder, Response};
use inventory_domain::api::{
    DeadLetterPage, ErrorBody, HistoryPage, InventoryPage, ProductView, RedriveRequest,
    RedriveResult, RejectionView, SimulationAccepted, SimulationList, SimulationRequest, Stats,
};
use inventory_domain::catalog::{SortKey, SortOrder};
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

/// Products per inventory page.
pub const PAGE_SIZE: usize = 50;

/// Rejections read per poll (the newest); the console filters them by reason and product.
pub const REJECTIONS_READ: usize = 200;

/// History entries per page of a product's history.
pub const HISTORY_PAGE: usize = 50;

/// One page of the inventory, as the console asks for it: sorted, filtered and searched by
/// the API over the whole catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct InventoryQuery {
    /// `all`, `active` or `removed`.
    pub status: String,
    pub sort: SortKey,
    pub order: SortOrder,
    /// Words, each the start of a word of the name or of the id.
    pub search: String,
    /// Only active products at or under this stock.
    pub low_stock: Option<u64>,
    /// `next_cursor` of the page before; `None` for the first page.
    pub cursor: Option<String>,
}

impl Default for InventoryQuery {
    fn default() -> Self {
        Self {
            status: "all".into(),
            sort: SortKey::ProductId,
            order: SortOrder::Asc,
            search: String::new(),
            low_stock: None,
            cursor: None,
        }
    }
}

pub fn sort_param(key: SortKey) -> &'static str {
    match key {
        SortKey::ProductId => "product_id",
        SortKey::Name => "name",
        SortKey::Quantity => "quantity",
        SortKey::UpdatedAt => "updated_at",
    }
}

impl InventoryQuery {
    /// The request's path and query string.
    pub fn path(&self) -> String {
        let order = match self.order {
            SortOrder::Asc => "asc",
            SortOrder::Desc => "desc",
        };
        let mut path = format!(
            "/api/inventory?limit={PAGE_SIZE}&sort={}&order={order}",
            sort_param(self.sort)
        );
        if self.status != "all" {
            path.push_str("&status=");
            path.push_str(&encode_component(&self.status));
        }
        if let Some(t) = self.low_stock {
            path.push_str(&format!("&low_stock={t}"));
        }
        let search = self.search.trim();
        if !search.is_empty() {
            path.push_str("&q=");
            path.push_str(&encode_component(search));
        }
        if let Some(c) = &self.cursor {
            path.push_str("&cursor=");
            path.push_str(&encode_component(c));
        }
        path
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A GET sent with `If-None-Match`.
#[derive(Debug, Clone, PartialEq)]
pub enum Conditional<T> {
    /// A new body, and its `ETag` when the API sent one (and the browser may read it).
    Changed { body: T, etag: Option<String> },
    /// `304 Not Modified`: the copy held is current.
    Unchanged,
}

/// `/api/rejections`: the data excerpts are withheld (empty) unless the caller is signed in.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RejectionList {
    pub items: Vec<RejectionView>,
    pub next_cursor: Option<String>,
    #[serde(default)]
    pub excerpts_withheld: bool,
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

    /// A GET answered `304 Not Modified` when `etag` is still the resource's.
    async fn get_if_changed<T: DeserializeOwned>(
        &self,
        path: &str,
        etag: Option<&str>,
    ) -> Result<Conditional<T>, ApiError> {
        let mut req = self.authorised(Request::get(&self.url(path)), None);
        if let Some(etag) = etag {
            req = req.header("If-None-Match", etag);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| ApiError::Unreachable(e.to_string()))?;
        if resp.status() == 304 {
            return Ok(Conditional::Unchanged);
        }
        let etag = resp.headers().get("etag");
        Ok(Conditional::Changed {
            body: read(resp).await?,
            etag,
        })
    }

    /// A page of the inventory; `etag` is that of the copy held of the same page.
    pub async fn inventory(
        &self,
        query: &InventoryQuery,
        etag: Option<&str>,
    ) -> Result<Conditional<InventoryPage>, ApiError> {
        self.get_if_changed(&query.path(), etag).await
    }

    pub async fn product(&self, product_id: &str) -> Result<ProductView, ApiError> {
        self.get(&format!("/api/inventory/{}", encode_component(product_id)))
            .await
    }

    /// A product's history, newest first; `cursor` is the `next_cursor` of the newer page.
    pub async fn history(
        &self,
        product_id: &str,
        cursor: Option<&str>,
    ) -> Result<HistoryPage, ApiError> {
        let mut path = format!(
            "/api/inventory/{}/history?limit={HISTORY_PAGE}",
            encode_component(product_id)
        );
        if let Some(c) = cursor {
            path.push_str("&cursor=");
            path.push_str(&encode_component(c));
        }
        self.get(&path).await
    }

    pub async fn stats(&self) -> Result<Stats, ApiError> {
        self.get("/api/stats").await
    }

    /// The newest rejections, with `token` (the local stack's) when given, else the
    /// signed-in user's: their data excerpts only come to a signed-in caller.
    pub async fn rejections(&self, token: Option<&str>) -> Result<RejectionList, ApiError> {
        let path = format!("/api/rejections?limit={REJECTIONS_READ}");
        let resp = self
            .authorised(Request::get(&self.url(&path)), token)
            .send()
            .await
            .map_err(|e| ApiError::Unreachable(e.to_string()))?;
        read(resp).await
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
    fn stats_before_the_first_batch_read_as_none() {
        let s: Stats = serde_json::from_str(
            r#"{"products": 3, "active_products": 2, "units": null, "events_applied": 5,
                "duplicates_ignored": 0, "rejections": {}, "rejections_total": 0, "lag_ms": null,
                "last_batch_at": null, "throughput_last_minute": 0.0, "throughput": [],
                "generated_at": "2026-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!((s.products, s.units), (Some(3), None));
    }

    #[test]
    fn an_inventory_query_names_only_what_it_asks() {
        assert_eq!(
            InventoryQuery::default().path(),
            "/api/inventory?limit=50&sort=product_id&order=asc"
        );
        let q = InventoryQuery {
            status: "active".into(),
            sort: SortKey::Quantity,
            order: SortOrder::Desc,
            search: " oak chair ".into(),
            low_stock: Some(5),
            cursor: Some("a+b/c=".into()),
        };
        assert_eq!(
            q.path(),
            "/api/inventory?limit=50&sort=quantity&order=desc&status=active&low_stock=5&q=oak%20chair&cursor=a%2Bb%2Fc%3D"
        );
    }

    #[test]
    fn rejections_read_with_or_without_the_withheld_flag() {
        let l: RejectionList =
            serde_json::from_str(r#"{"items": [], "next_cursor": null}"#).unwrap();
        assert!(!l.excerpts_withheld);
        let l: RejectionList = serde_json::from_str(
            r#"{"items": [], "next_cursor": null, "excerpts_withheld": true}"#,
        )
        .unwrap();
        assert!(l.excerpts_withheld);
    }
}
