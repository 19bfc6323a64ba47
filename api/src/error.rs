use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use inventory_domain::api::ErrorBody;

/// Every error the API returns, as `{error, message}` with its status code. Internal
/// details are logged, never sent.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    InvalidCursor(String),
    #[error("{0}")]
    Unprocessable(String),
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
    #[error("the redrive stopped part-way: {0}. What was republished is marked; redrive again to send the rest")]
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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        match &self {
            ApiError::Internal(detail) => tracing::error!(error = %detail, "request failed"),
            ApiError::LaunchFailed(e) => tracing::error!(error = %e, "request failed"),
            ApiError::RedriveFailed(e) => tracing::error!(error = %e, "request failed"),
            _ => {}
        }
        let body = ErrorBody {
            error: code.to_owned(),
            message: self.to_string(),
        };
        let mut response = (status, Json(body)).into_response();
        if matches!(self, ApiError::Unauthorized) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
