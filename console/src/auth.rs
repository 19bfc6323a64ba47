//! Sign-in with the Cognito user pool's hosted UI: the authorization code flow with PKCE.
//!
//! `sign_in` keeps a random code verifier and state in sessionStorage and sends the browser to
//! the hosted UI with the verifier's S256 challenge; the hosted UI sends it back with `code`
//! and `state`, and `complete_sign_in` exchanges the code (with the verifier) at the pool's
//! `/oauth2/token` for tokens. The access token (what the API verifies) is kept in
//! sessionStorage with its expiry, so it lasts as long as the tab, and is sent in
//! `x-inventory-auth` (CloudFront replaces `Authorization`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use gloo_net::http::Request;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::api::CognitoConfig;

const VERIFIER_KEY: &str = "inventory-console-pkce-verifier";
const STATE_KEY: &str = "inventory-console-pkce-state";
const TOKEN_KEY: &str = "inventory-console-access-token";
const EXPIRES_KEY: &str = "inventory-console-access-token-expires-ms";

fn session() -> Option<web_sys::Storage> {
    web_sys::window().and_then(|w| w.session_storage().ok().flatten())
}

fn random_urlsafe(bytes: usize) -> Result<String, String> {
    let mut buf = vec![0u8; bytes];
    web_sys::window()
        .ok_or("no window")?
        .crypto()
        .and_then(|c| c.get_random_values_with_u8_array(&mut buf))
        .map_err(|_| "the browser's crypto.getRandomValues is unavailable".to_owned())?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

/// The PKCE S256 challenge of a verifier (RFC 7636).
pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn query(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", String::from(js_sys::encode_uri_component(v))))
        .collect::<Vec<_>>()
        .join("&")
}

/// Sends the browser to the hosted UI.
pub fn sign_in(cfg: &CognitoConfig) -> Result<(), String> {
    let verifier = random_urlsafe(32)?;
    let state = random_urlsafe(16)?;
    let storage = session().ok_or("sessionStorage is unavailable")?;
    storage
        .set_item(VERIFIER_KEY, &verifier)
        .and_then(|_| storage.set_item(STATE_KEY, &state))
        .map_err(|_| "sessionStorage is full or blocked".to_owned())?;
    let url = format!(
        "{}/oauth2/authorize?{}",
        cfg.domain,
        query(&[
            ("response_type", "code"),
            ("client_id", &cfg.client_id),
            ("redirect_uri", &cfg.redirect_uri),
            ("scope", "openid email"),
            ("code_challenge_method", "S256"),
            ("code_challenge", &challenge(&verifier)),
            ("state", &state),
        ])
    );
    web_sys::window()
        .ok_or("no window")?
        .location()
        .assign(&url)
        .map_err(|_| "could not go to the sign-in page".to_owned())
}

/// Forgets the tokens and signs out of the hosted UI too.
pub fn sign_out(cfg: &CognitoConfig) {
    if let Some(s) = session() {
        let _ = s.remove_item(TOKEN_KEY);
        let _ = s.remove_item(EXPIRES_KEY);
    }
    let url = format!(
        "{}/logout?{}",
        cfg.domain,
        query(&[
            ("client_id", &cfg.client_id),
            ("logout_uri", &cfg.redirect_uri)
        ])
    );
    if let Some(w) = web_sys::window() {
        let _ = w.location().assign(&url);
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: f64,
}

/// When the page is the hosted UI's redirect (`?code=…&state=…`), exchanges the code for
/// tokens and removes them from the address bar. `Ok(false)` when it is not a redirect.
pub async fn complete_sign_in(cfg: &CognitoConfig) -> Result<bool, String> {
    let window = web_sys::window().ok_or("no window")?;
    let href = window.location().href().map_err(|_| "no location")?;
    let url = web_sys::Url::new(&href).map_err(|_| "unreadable location")?;
    let params = url.search_params();
    let (Some(code), Some(state)) = (params.get("code"), params.get("state")) else {
        if let Some(error) = params.get("error_description").or(params.get("error")) {
            clean_address(&window);
            return Err(format!("sign-in failed: {error}"));
        }
        return Ok(false);
    };
    clean_address(&window);
    let storage = session().ok_or("sessionStorage is unavailable")?;
    let expected = storage.get_item(STATE_KEY).ok().flatten();
    let verifier = storage.get_item(VERIFIER_KEY).ok().flatten();
    let _ = storage.remove_item(STATE_KEY);
    let _ = storage.remove_item(VERIFIER_KEY);
    if expected.as_deref() != Some(state.as_str()) {
        return Err("sign-in answer does not match this tab's request; sign in again".into());
    }
    let verifier = verifier.ok_or("sign-in was not started in this tab; sign in again")?;
    let body = query(&[
        ("grant_type", "authorization_code"),
        ("client_id", &cfg.client_id),
        ("code", &code),
        ("redirect_uri", &cfg.redirect_uri),
        ("code_verifier", &verifier),
    ]);
    let resp = Request::post(&format!("{}/oauth2/token", cfg.domain))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .map_err(|e| e.to_string())?
        .send()
        .await
        .map_err(|e| format!("the sign-in service is unreachable: {e}"))?;
    if !resp.ok() {
        return Err(format!(
            "the sign-in service refused the code ({}); sign in again",
            resp.status()
        ));
    }
    let tokens: TokenResponse = resp
        .json()
        .await
        .map_err(|e| format!("unexpected answer from the sign-in service: {e}"))?;
    let expires_ms = js_sys::Date::now() + tokens.expires_in * 1000.0;
    storage
        .set_item(TOKEN_KEY, &tokens.access_token)
        .and_then(|_| storage.set_item(EXPIRES_KEY, &expires_ms.to_string()))
        .map_err(|_| "sessionStorage is full or blocked".to_owned())?;
    Ok(true)
}

fn clean_address(window: &web_sys::Window) {
    if let (Ok(history), Ok(path)) = (window.history(), window.location().pathname()) {
        let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&path));
    }
}

/// The signed-in user's access token, while it is valid (a minute's margin).
pub fn access_token() -> Option<String> {
    let storage = session()?;
    let expires: f64 = storage.get_item(EXPIRES_KEY).ok()??.parse().ok()?;
    if expires - 60_000.0 < js_sys::Date::now() {
        let _ = storage.remove_item(TOKEN_KEY);
        return None;
    }
    storage.get_item(TOKEN_KEY).ok()?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_challenge_is_rfc_7636s_example() {
        // RFC 7636, appendix B.
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
