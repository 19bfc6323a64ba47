use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use inventory_domain::api::ErrorBody;

/// Every error the API returns, as `{error, message}` with its status code. Internal
/// details are logged, never sent: a 5xx answers one sentence and a request id, and the log
/// line with the details carries the same id.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    InvalidCursor(String),
    #[error("{0}")]
    Unprocessable(String),
    /// Each field is within its limits, but they do not fit together (a rule between fields,
    /// which the OpenAPI document states in prose: JSON Schema cannot).
    #[error("{0}")]
    Inconsistent(String),
    #[error("sign in (the console's Sign in button), or send `x-inventory-auth: Bearer <token>` (locally `Authorization: Bearer <token>` works too; the token is the API_TOKEN `make dev` prints)")]
    Unauthorized,
    #[error("no API token is configured on the server, so nothing can be started: set API_TOKEN (or API_TOKEN_SECRET_ARN in AWS)")]
    NotConfigured,
    #[error("{0}")]
    NotFound(String),
    /// Another simulation holds the one-at-a-time lock.
    #[error("{0}")]
    Conflict(String),
    #[error("simulations are disabled on this deployment (no generator: the prod stage has none); run them in a dev stage or locally")]
    SimulationsDisabled,
    #[error("the simulation could not be started; try again")]
    LaunchFailed(#[source] crate::LaunchError),
    #[error("redrive is not available on this deployment: the API has no dead-letter function to ask (set DEAD_LETTER_FUNCTION)")]
    RedriveDisabled,
    #[error("the redrive stopped part-way; what was republished is marked, so redrive again to send the rest")]
    RedriveFailed(#[source] crate::RedriveError),
    #[error("internal error; the API's logs have the details")]
    Internal(String),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::InvalidCursor(_) => (StatusCode::BAD_REQUEST, "invalid_cursor"),
            ApiError::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
            ApiError::Inconsistent(_) => (StatusCode::UNPROCESSABLE_ENTITY, "inconsistent_request"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::NotConfigured => (StatusCode::SERVICE_UNAVAILABLE, "not_configured"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "simulation_running"),
            ApiError::SimulationsDisabled => {
                (StatusCode::SERVICE_UNAVAILABLE, "simulations_disabled")
            }
            ApiError::LaunchFailed(_) => (StatusCode::BAD_GATEWAY, "launch_failed"),
            ApiError::RedriveDisabled => (StatusCode::SERVICE_UNAVAILABLE, "redrive_disabled"),
            ApiError::RedriveFailed(_) => (StatusCode::BAD_GATEWAY, "redrive_failed"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<inventory_store::StoreError> for ApiError {
    fn from(e: inventory_store::StoreError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl ApiError {
    /// What is logged of a server-side error and never sent: its cause, when it has one.
    fn internals(&self) -> Option<String> {
        match self {
            ApiError::Internal(detail) => Some(detail.clone()),
            ApiError::LaunchFailed(e) => Some(e.to_string()),
            ApiError::RedriveFailed(e) => Some(e.to_string()),
            _ => None,
        }
    }
}

/// The header that carries a 5xx answer's request id, which its log line carries too.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        let mut message = self.to_string();
        let request_id = status
            .is_server_error()
            .then(|| ulid::Ulid::new().to_string());
        if let Some(id) = &request_id {
            match self.internals() {
                Some(internals) => {
                    tracing::error!(request_id = %id, error = %internals, code, "request failed")
                }
                None => tracing::warn!(request_id = %id, code, "request refused: {message}"),
            }
            message = format!("{message} (request id {id})");
        }
        let body = ErrorBody {
            error: code.to_owned(),
            message,
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(id) = request_id.and_then(|id| HeaderValue::from_str(&id).ok()) {
            response.headers_mut().insert(REQUEST_ID_HEADER, id);
        }
        if matches!(self, ApiError::Unauthorized) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(e: ApiError) -> (StatusCode, bool, ErrorBody) {
        let response = e.into_response();
        let status = response.status();
        let has_id = response.headers().contains_key(REQUEST_ID_HEADER);
        let bytes = futures::executor::block_on(axum::body::to_bytes(response.into_body(), 4096))
            .unwrap_or_default();
        (
            status,
            has_id,
            serde_json::from_slice(&bytes).unwrap_or(ErrorBody {
                error: String::new(),
                message: String::new(),
            }),
        )
    }

    /// Every variant: a 4xx says what to change; a 5xx is one sentence, a request id (in
    /// the body and the header), and none of its cause's text.
    #[test]
    fn every_error_body_is_a_sentence_and_a_5xx_carries_no_internals() {
        const SECRET: &str = "ValidationException aws_request_id dynoxide 127.0.0.1:4566";
        let redrive = || crate::RedriveError::InProcess(SECRET.into());
        let launch = || crate::LaunchError::Invoke {
            function: "fn".into(),
            message: SECRET.into(),
        };
        let all = [
            ApiError::BadRequest("limit must be 1 to 200".into()),
            ApiError::InvalidCursor("the cursor is not one this API gave".into()),
            ApiError::Unprocessable("ids[0] is not a dead letter's id".into()),
            ApiError::Inconsistent("events at rate take too long".into()),
            ApiError::Unauthorized,
            ApiError::NotConfigured,
            ApiError::NotFound("no product `x`".into()),
            ApiError::Conflict("another simulation runs".into()),
            ApiError::SimulationsDisabled,
            ApiError::LaunchFailed(launch()),
            ApiError::RedriveDisabled,
            ApiError::RedriveFailed(redrive()),
            ApiError::Internal(SECRET.into()),
        ];
        for e in all {
            let shown = format!("{e:?}");
            let (status, has_id, body) = body_of(e);
            assert!(
                !body.error.is_empty() && !body.message.is_empty(),
                "{shown}"
            );
            assert!(!body.message.contains(SECRET), "{shown}: {}", body.message);
            assert!(body.message.len() < 240, "{shown}: {}", body.message);
            if status.is_server_error() {
                assert!(has_id, "{shown}: no x-request-id");
                assert!(
                    body.message.contains("(request id "),
                    "{shown}: {}",
                    body.message
                );
            } else {
                assert!(status.is_client_error() && !has_id, "{shown}");
            }
        }
    }
}
