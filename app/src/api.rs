//! The console's HTTP client. It deserialises the API's JSON with the same types the API
//! serialises (`inventory_domain::api`).

use gloo_net::http::{Request, Response};
use inventory_domain::api::{
    ErrorBody, InventoryPage, RejectionPage, SimulationAccepted, SimulationList, SimulationRequest,
    Stats,
};
use serde::de::DeserializeOwned;
use serde::Deserialize;

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

/// `config.json` beside index.html, written at deploy time so the API's address changes
/// without rebuilding the wasm.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ConsoleConfig {
    /// e.g. `https://abc.lambda-url.eu-west-1.on.aws`; empty for the same origin.
    #[serde(default)]
    pub api_base_url: String,
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
}

impl Api {
    pub fn new(base_url: &str) -> Self {
        Self {
            base: base_url.trim_end_matches('/').to_owned(),
        }
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
        get(&self.url(&path)).await
    }

    pub async fn stats(&self) -> Result<Stats, ApiError> {
        get(&self.url("/api/stats")).await
    }

    pub async fn rejections(&self) -> Result<RejectionPage, ApiError> {
        get(&self.url("/api/rejections?limit=25")).await
    }

    pub async fn simulations(&self) -> Result<SimulationList, ApiError> {
        get(&self.url("/api/simulations")).await
    }

    pub async fn start_simulation(
        &self,
        token: &str,
        request: &SimulationRequest,
    ) -> Result<SimulationAccepted, ApiError> {
        let req = Request::post(&self.url("/api/simulations"))
            .header("Authorization", &format!("Bearer {token}"))
            .json(request)
            .map_err(|e| ApiError::Status(0, e.to_string()))?;
        let resp = req
            .send()
            .await
            .map_err(|e| ApiError::Unreachable(e.to_string()))?;
        read(resp).await
    }
}

async fn get<T: DeserializeOwned>(url: &str) -> Result<T, ApiError> {
    let resp = Request::get(url)
        .send()
        .await
        .map_err(|e| ApiError::Unreachable(e.to_string()))?;
    read(resp).await
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
