//! Cognito access tokens: what the console sends for a signed-in user in AWS.
//!
//! A token is accepted when its RS256 signature verifies against a key of the user pool's
//! JWKS (by `kid`), its `iss` is the pool, it has not expired, its `token_use` is `access`
//! and its `client_id` is the console's app client. Access tokens, not id tokens: they are
//! the ones meant for an API, and Cognito puts the app client in `client_id` (they have no
//! `aud`; an id token has `aud` and `token_use: id`, so it is refused).
//!
//! The JWKS is fetched on first use and kept; a token naming a `kid` the cached set lacks
//! (the pool rotated its keys) makes one refetch, at most once per [`REFETCH_AFTER`], so a
//! stream of forged `kid`s cannot make the API hammer the pool's endpoint.
//!
//! A fetch never blocks a request whose key is known: the keys are read under a lock that is
//! only ever held to copy a key or swap in a fetched set, never across the fetch. Fetches are
//! single-flight: one at a time; a request with an unknown `kid` that arrives during one
//! waits for it and looks again, and is refused if its key is still not there.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::Mutex;

/// The least time between two JWKS fetches caused by an unknown `kid`.
pub const REFETCH_AFTER: Duration = Duration::from_secs(60);
/// How long a JWKS fetch may take before the request is refused.
const FETCH_TIMEOUT: Duration = Duration::from_secs(3);
/// Clock skew tolerated on `exp`.
const LEEWAY_SECS: u64 = 30;

/// What identifies the user pool and the console's app client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtSettings {
    /// `https://cognito-idp.<region>.amazonaws.com/<pool id>`, the tokens' `iss`.
    pub issuer: String,
    /// The console's app client id, the access tokens' `client_id`.
    pub client_id: String,
    /// Where the pool publishes its keys: `<issuer>/.well-known/jwks.json`.
    pub jwks_url: String,
}

impl JwtSettings {
    /// The settings of a Cognito user pool: the JWKS lives under the issuer.
    pub fn cognito(issuer: &str, client_id: &str) -> Self {
        let issuer = issuer.trim_end_matches('/').to_owned();
        Self {
            jwks_url: format!("{issuer}/.well-known/jwks.json"),
            issuer,
            client_id: client_id.to_owned(),
        }
    }
}

/// Why a token was refused; the API answers 401 for each (503 for [`JwtError::Jwks`]).
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("the token is not a JWT: {0}")]
    Malformed(String),
    #[error("the token is signed with {0:?}; only RS256 is accepted")]
    Algorithm(Algorithm),
    #[error("the token names no key (kid)")]
    NoKeyId,
    #[error("the token's key `{0}` is not one of the user pool's")]
    UnknownKey(String),
    #[error("the token was refused: {0}")]
    Invalid(String),
    #[error("the token is an {0} token; send the access token")]
    WrongUse(String),
    #[error("the token was issued for another app client")]
    WrongClient,
    #[error("the user pool's keys could not be read from {url}: {message}")]
    Jwks { url: String, message: String },
}

/// The claims of a Cognito access token the API reads.
#[derive(Debug, Clone, Deserialize)]
pub struct AccessClaims {
    pub sub: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub token_use: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
}

pub struct JwtVerifier {
    settings: JwtSettings,
    http: reqwest::Client,
    /// The pool's keys by `kid`. A std lock: held only to copy a key or replace the set,
    /// never across an `.await`.
    keys: RwLock<HashMap<String, DecodingKey>>,
    /// When the last fetch started. Held across a fetch: the single flight.
    fetching: Mutex<Option<Instant>>,
    refetch_after: Duration,
}

impl JwtVerifier {
    pub fn new(settings: JwtSettings) -> Self {
        Self {
            settings,
            http: reqwest::Client::builder()
                .timeout(FETCH_TIMEOUT)
                .build()
                .unwrap_or_default(),
            keys: RwLock::new(HashMap::new()),
            fetching: Mutex::new(None),
            refetch_after: REFETCH_AFTER,
        }
    }

    /// Changes the least time between two fetches caused by an unknown `kid` (tests).
    pub fn with_refetch_after(mut self, refetch_after: Duration) -> Self {
        self.refetch_after = refetch_after;
        self
    }

    pub fn settings(&self) -> &JwtSettings {
        &self.settings
    }

    /// Verifies `token` and returns its claims.
    pub async fn verify(&self, token: &str) -> Result<AccessClaims, JwtError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| JwtError::Malformed(e.to_string()))?;
        if header.alg != Algorithm::RS256 {
            return Err(JwtError::Algorithm(header.alg));
        }
        let kid = header.kid.ok_or(JwtError::NoKeyId)?;
        let key = self.key(&kid).await?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = LEEWAY_SECS;
        // Access tokens carry no `aud`; the app client is checked on `client_id` below.
        validation.validate_aud = false;
        let claims = jsonwebtoken::decode::<AccessClaims>(token, &key, &validation)
            .map_err(|e| JwtError::Invalid(e.to_string()))?
            .claims;
        match claims.token_use.as_deref() {
            Some("access") => {}
            other => return Err(JwtError::WrongUse(other.unwrap_or("unmarked").to_owned())),
        }
        if claims.client_id.as_deref() != Some(self.settings.client_id.as_str()) {
            return Err(JwtError::WrongClient);
        }
        Ok(claims)
    }

    /// The key named `kid`, fetching the JWKS when it was never fetched, or when `kid` is
    /// unknown and the last fetch is older than the refetch interval ([`REFETCH_AFTER`]).
    async fn key(&self, kid: &str) -> Result<DecodingKey, JwtError> {
        if let Some(key) = self.known(kid) {
            return Ok(key);
        }
        // One fetch at a time: who comes while one is under way waits for it.
        let mut last_fetch = self.fetching.lock().await;
        // The fetch this request waited for may have brought the key.
        if let Some(key) = self.known(kid) {
            return Ok(key);
        }
        if last_fetch.is_some_and(|at| at.elapsed() < self.refetch_after) {
            return Err(JwtError::UnknownKey(kid.to_owned()));
        }
        // Counted as a fetch even when it fails, so a failing endpoint is not retried on
        // every request either.
        *last_fetch = Some(Instant::now());
        let keys = self.fetch().await?;
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = keys;
        self.known(kid)
            .ok_or_else(|| JwtError::UnknownKey(kid.to_owned()))
    }

    /// The key named `kid` in the set held, without waiting for any fetch.
    fn known(&self, kid: &str) -> Option<DecodingKey> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(kid)
            .cloned()
    }

    async fn fetch(&self) -> Result<HashMap<String, DecodingKey>, JwtError> {
        let url = &self.settings.jwks_url;
        let failed = |message: String| JwtError::Jwks {
            url: url.clone(),
            message,
        };
        let body = self
            .http
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| failed(e.to_string()))?
            .bytes()
            .await
            .map_err(|e| failed(e.to_string()))?;
        let set: JwkSet = serde_json::from_slice(&body).map_err(|e| failed(e.to_string()))?;
        let keys: HashMap<String, DecodingKey> = set
            .keys
            .iter()
            .filter_map(|jwk| {
                let kid = jwk.common.key_id.clone()?;
                DecodingKey::from_jwk(jwk)
                    .inspect_err(|e| tracing::warn!(%kid, error = %e, "JWKS key left out"))
                    .ok()
                    .map(|key| (kid, key))
            })
            .collect();
        tracing::info!(keys = keys.len(), %url, "user pool keys fetched");
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cognito_settings_put_the_jwks_under_the_issuer() {
        let s = JwtSettings::cognito(
            "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC/",
            "client",
        );
        assert_eq!(
            s.issuer,
            "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC"
        );
        assert_eq!(
            s.jwks_url,
            "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC/.well-known/jwks.json"
        );
    }
}
