//! Who is calling: anonymous, the holder of the local bearer token, or a user signed in to
//! the Cognito user pool (AWS).
//!
//! Credentials travel in `x-inventory-auth: Bearer <token>` ([`AUTH_HEADER`]). In AWS the API
//! is reached only through CloudFront's origin access control, which signs every origin
//! request with SigV4 and so *replaces* `Authorization`: a user's JWT sent there would never
//! arrive. Locally (and for scripts) `Authorization: Bearer <token>` is read too, when the
//! custom header is absent.
//!
//! A handler learns who calls by taking an extractor as an argument: [`Caller`] for reads
//! that show more to a signed-in caller, [`SignedIn`] for what needs sign-in, and for reads
//! [`InventoryReader`] or [`Reader`], which follow the deployment's [`Reads`]. Axum runs the
//! extractor before the handler, so no handler can forget the check.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq as _;

use crate::error::ApiError;
use crate::jwt::JwtError;
use crate::AppState;

/// The header that carries the caller's credentials past CloudFront's origin signing.
pub const AUTH_HEADER: HeaderName = HeaderName::from_static("x-inventory-auth");

/// The caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Anonymous,
    /// Presented the server's static token (the local stack).
    Token,
    /// A signed-in user of the user pool (`sub`, and the user name when the token has one).
    User {
        sub: String,
        username: Option<String>,
    },
}

impl Caller {
    pub fn is_signed_in(&self) -> bool {
        !matches!(self, Caller::Anonymous)
    }
}

/// Any caller, anonymous included; a credential that does not hold is refused (401, see
/// [`identify`]).
impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        identify(state, &parts.headers).await
    }
}

/// A caller who is signed in (or holds the local token): a handler that takes it runs only
/// for them (401 otherwise, 503 when nothing could ever sign in; see [`require_signed_in`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIn(pub Caller);

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        require_signed_in(state, &parts.headers).await.map(SignedIn)
    }
}

/// Who may read without signing in. `/api/openapi.json` is public whatever this says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reads {
    /// Every read needs a signed-in caller: the API Lambda (`PUBLIC_READS` unset or false).
    SignedIn,
    /// The inventory reads (listing, one product, its history) and `/api/stats` are open to
    /// anonymous callers, whose pages hold at most [`ANONYMOUS_PAGE_LIMIT`] items and whose
    /// answers CloudFront may cache for [`PUBLIC_MAX_AGE_SECS`]; the other reads need sign-in
    /// (the API Lambda with `PUBLIC_READS=true`).
    PublicInventory,
    /// Every read is open to anyone, the payload excerpts still only to a signed-in caller:
    /// the local stack (`make dev`), whose console has no sign-in.
    Open,
}

/// The most items an anonymous caller gets in a page under [`Reads::PublicInventory`],
/// whatever its `limit` asks: a page costs reads, and an anonymous caller can be anyone.
pub const ANONYMOUS_PAGE_LIMIT: usize = 100;

/// How long CloudFront may serve an anonymous answer from its cache under
/// [`Reads::PublicInventory`].
pub const PUBLIC_MAX_AGE_SECS: u32 = 5;

/// Whom a read's answer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// One caller: `Cache-Control` as the handler sets it (`no-cache` with an `ETag`).
    Private,
    /// Any anonymous caller ([`Reads::PublicInventory`]): pages capped at
    /// [`ANONYMOUS_PAGE_LIMIT`], the answer cacheable by CloudFront for
    /// [`PUBLIC_MAX_AGE_SECS`], so a flood of anonymous reads mostly costs no DynamoDB reads.
    Public,
}

impl Audience {
    /// The page size this audience gets for `limit`.
    pub fn page_limit(self, limit: usize) -> usize {
        match self {
            Audience::Private => limit,
            Audience::Public => limit.min(ANONYMOUS_PAGE_LIMIT),
        }
    }

    /// `response`, marked cacheable by anyone for a public audience.
    pub fn cache(self, response: impl IntoResponse) -> Response {
        let mut response = response.into_response();
        if self == Audience::Public {
            response.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_str(&format!("public, max-age={PUBLIC_MAX_AGE_SECS}"))
                    .unwrap_or(HeaderValue::from_static("no-cache")),
            );
        }
        response
    }
}

/// A caller of the inventory reads and `/api/stats`, and whom the answer is for: anyone
/// under [`Reads::Open`]; anyone under [`Reads::PublicInventory`] (an anonymous caller is a
/// [`Audience::Public`]); a signed-in caller under [`Reads::SignedIn`] (401 otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InventoryReader(pub Audience);

impl FromRequestParts<AppState> for InventoryReader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let audience = match state.reads {
            // As before sign-in existed: credentials are not read.
            Reads::Open => Audience::Private,
            Reads::PublicInventory => match identify(state, &parts.headers).await? {
                Caller::Anonymous => Audience::Public,
                _ => Audience::Private,
            },
            Reads::SignedIn => {
                require_signed_in(state, &parts.headers).await?;
                Audience::Private
            }
        };
        Ok(InventoryReader(audience))
    }
}

/// A caller of the other reads (rejections, dead letters, simulations): anyone under
/// [`Reads::Open`], else a signed-in caller (401 otherwise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reader(pub Caller);

impl FromRequestParts<AppState> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match state.reads {
            Reads::Open => identify(state, &parts.headers).await.map(Reader),
            Reads::PublicInventory | Reads::SignedIn => {
                require_signed_in(state, &parts.headers).await.map(Reader)
            }
        }
    }
}

/// The bearer credential of a request: `x-inventory-auth` first, then `Authorization`.
/// `Err` when a header is there but is not `Bearer <something>`.
pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let value = match headers.get(&AUTH_HEADER) {
        Some(v) => v,
        None => match headers.get(header::AUTHORIZATION) {
            Some(v) => v,
            None => return Ok(None),
        },
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(Some)
        .ok_or(ApiError::Unauthorized)
}

/// Identifies the caller. No credential is [`Caller::Anonymous`]; a credential that is
/// neither the static token nor a valid access token is refused (401), so a client learns
/// that its sign-in has expired instead of silently seeing less.
pub async fn identify(state: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    // With a user pool (AWS), `Authorization` is CloudFront's SigV4 signature, not the
    // caller's: only the custom header counts.
    let given = if state.jwt.is_some() && !headers.contains_key(&AUTH_HEADER) {
        None
    } else {
        bearer(headers)?
    };
    let Some(given) = given else {
        return Ok(Caller::Anonymous);
    };
    if token_matches(state.config.token.as_deref(), given) {
        return Ok(Caller::Token);
    }
    match &state.jwt {
        Some(verifier) => match verifier.verify(given).await {
            Ok(claims) => Ok(Caller::User {
                sub: claims.sub,
                username: claims.username,
            }),
            Err(JwtError::Jwks { url, message }) => Err(ApiError::Internal(format!(
                "user pool keys unavailable ({url}): {message}"
            ))),
            Err(e) => {
                tracing::info!(error = %e, "token refused");
                Err(ApiError::Unauthorized)
            }
        },
        None => Err(ApiError::Unauthorized),
    }
}

/// The caller, who must be signed in (or hold the local token).
pub async fn require_signed_in(state: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    // Nothing could ever sign in: say so, whatever was sent.
    if state.jwt.is_none() && !has_token(&state.config) {
        return Err(ApiError::NotConfigured);
    }
    match identify(state, headers).await? {
        Caller::Anonymous => Err(ApiError::Unauthorized),
        caller => Ok(caller),
    }
}

fn has_token(config: &crate::ApiConfig) -> bool {
    config.token.as_deref().is_some_and(|t| !t.is_empty())
}

/// Compares `given` with the configured token in constant time. `subtle` compares every
/// byte whatever the first difference, so the time taken says nothing about how much of a
/// guess was right; the length is not secret (tokens are generated at a fixed length).
fn token_matches(expected: Option<&str>, given: &str) -> bool {
    expected
        .filter(|t| !t.is_empty())
        .is_some_and(|expected| bool::from(given.as_bytes().ct_eq(expected.as_bytes())))
}

/// Checks the bearer credential (`x-inventory-auth` or `Authorization`) against the
/// configured token alone, in constant time.
pub fn require_token(config: &crate::ApiConfig, headers: &HeaderMap) -> Result<(), ApiError> {
    if !has_token(config) {
        return Err(ApiError::NotConfigured);
    }
    let given = bearer(headers)?.ok_or(ApiError::Unauthorized)?;
    if token_matches(config.token.as_deref(), given) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;
    use crate::ApiConfig;

    fn check(
        token: Option<&str>,
        header_name: HeaderName,
        value: Option<&str>,
    ) -> Result<(), ApiError> {
        let config = ApiConfig {
            token: token.map(str::to_owned),
            allowed_origins: vec![],
        };
        let mut headers = HeaderMap::new();
        if let Some(value) = value {
            headers.insert(header_name, HeaderValue::from_str(value).unwrap());
        }
        require_token(&config, &headers)
    }

    #[test]
    fn only_the_whole_token_is_accepted_in_either_header() {
        for name in [header::AUTHORIZATION, AUTH_HEADER] {
            assert!(check(Some("abc"), name.clone(), Some("Bearer abc")).is_ok());
            assert!(check(Some("abc"), name.clone(), Some("Bearer  abc ")).is_ok());
            for wrong in [
                "Bearer abd",
                "Bearer abcd",
                "Bearer ab",
                "Bearer ",
                "abc",
                "Basic abc",
            ] {
                assert!(
                    matches!(
                        check(Some("abc"), name.clone(), Some(wrong)),
                        Err(ApiError::Unauthorized)
                    ),
                    "{name}: {wrong}"
                );
            }
            assert!(matches!(
                check(Some("abc"), name.clone(), None),
                Err(ApiError::Unauthorized)
            ));
        }
    }

    #[test]
    fn without_a_configured_token_nothing_is_accepted() {
        assert!(matches!(
            check(None, header::AUTHORIZATION, Some("Bearer abc")),
            Err(ApiError::NotConfigured)
        ));
        assert!(matches!(
            check(Some(""), header::AUTHORIZATION, Some("Bearer ")),
            Err(ApiError::NotConfigured)
        ));
    }

    #[test]
    fn the_custom_header_wins_over_authorization() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=cloudfront"),
        );
        headers.insert(AUTH_HEADER, HeaderValue::from_static("Bearer user-jwt"));
        assert_eq!(bearer(&headers).unwrap(), Some("user-jwt"));
    }
}
