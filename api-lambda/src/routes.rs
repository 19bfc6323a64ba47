//! The endpoints. Each is a plain async function over [`AppState`], documented for the
//! OpenAPI document by its `#[utoipa::path]`.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use inventory_domain::api::{
    ErrorBody, InventoryPage, ProductView, RejectionPage, SimulationAccepted, SimulationList,
    SimulationRequest, SimulationStatus, Stats,
};
use inventory_domain::ProductStatus;
use inventory_store::simulations;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::ApiError;
use crate::store::{self, InventoryQuery, SortKey, SortOrder};
use crate::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InventoryParams {
    /// `active` or `removed`; all products when omitted.
    pub status: Option<String>,
    /// Only products whose id or name contains this text.
    pub q: Option<String>,
    /// `product_id` (default), `name`, `quantity` or `updated_at`; orders the page.
    pub sort: Option<SortKey>,
    /// `asc` (default) or `desc`.
    pub order: Option<SortOrder>,
    /// Products per page, 1 to 1000 (default 100).
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// List products, a page at a time.
#[utoipa::path(get, path = "/api/inventory", params(InventoryParams),
    responses((status = 200, body = InventoryPage), (status = 400, body = ErrorBody)))]
pub async fn list_inventory(
    State(state): State<AppState>,
    query: Result<Query<InventoryParams>, QueryRejection>,
) -> Result<Json<InventoryPage>, ApiError> {
    let Query(p) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let status = match p.status.as_deref() {
        None | Some("") | Some("all") => None,
        Some(s) => Some(ProductStatus::parse(s).ok_or_else(|| {
            ApiError::BadRequest(format!("status `{s}` is not one of active, removed, all"))
        })?),
    };
    let limit = p.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest("limit must be 1 to 1000".into()));
    }
    let query = InventoryQuery {
        status,
        search: p.q,
        sort: p.sort.unwrap_or(SortKey::ProductId),
        order: p.order.unwrap_or(SortOrder::Asc),
        limit,
        cursor: p.cursor,
    };
    Ok(Json(
        store::inventory_page(&state.db, &state.tables, &query).await?,
    ))
}

/// One product.
#[utoipa::path(get, path = "/api/inventory/{product_id}",
    params(("product_id" = String, Path, description = "The product's id")),
    responses((status = 200, body = ProductView), (status = 404, body = ErrorBody)))]
pub async fn get_product(
    State(state): State<AppState>,
    Path(product_id): Path<String>,
) -> Result<Json<ProductView>, ApiError> {
    if !inventory_domain::event::is_valid_product_id(&product_id) {
        return Err(ApiError::NotFound(format!("no product `{product_id}`")));
    }
    store::product(&state.db, &state.tables, &product_id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no product `{product_id}`")))
}

/// Totals, throughput, lag, duplicates and rejections.
#[utoipa::path(get, path = "/api/stats", responses((status = 200, body = Stats)))]
pub async fn get_stats(State(state): State<AppState>) -> Result<Json<Stats>, ApiError> {
    Ok(Json(
        store::stats(&state.db, &state.tables, &state.totals).await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page, 1 to 200 (default 50).
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Rejected records, newest first.
#[utoipa::path(get, path = "/api/rejections", params(PageParams),
    responses((status = 200, body = RejectionPage), (status = 400, body = ErrorBody)))]
pub async fn list_rejections(
    State(state): State<AppState>,
    query: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<RejectionPage>, ApiError> {
    let Query(p) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = p.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::BadRequest("limit must be 1 to 200".into()));
    }
    Ok(Json(
        store::rejections_page(&state.db, &state.tables, limit, p.cursor.as_deref()).await?,
    ))
}

/// Start a simulation; it runs in the background and this returns at once.
#[utoipa::path(post, path = "/api/simulations", request_body = SimulationRequest,
    security(("bearer" = [])),
    responses((status = 202, body = SimulationAccepted), (status = 401, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn start_simulation(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<SimulationRequest>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    crate::auth::require_token(&state.config, &headers)?;
    let Json(request) = body.map_err(|e| ApiError::Unprocessable(e.body_text()))?;
    request.validate().map_err(ApiError::Unprocessable)?;
    let id = ulid::Ulid::new().to_string();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let status = SimulationStatus::queued(&id, &request, &now);
    simulations::save_status(&state.db, &state.tables, &status).await?;
    if let Err(e) = state.launcher.launch(status).await {
        return Err(ApiError::LaunchFailed(e));
    }
    let status_url = format!("/api/simulations/{id}");
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, status_url.clone())],
        Json(SimulationAccepted { id, status_url }),
    ))
}

/// A simulation's progress and, once the pipeline has caught up, its verdict.
#[utoipa::path(get, path = "/api/simulations/{id}",
    params(("id" = String, Path, description = "The id `POST /api/simulations` returned")),
    responses((status = 200, body = SimulationStatus), (status = 404, body = ErrorBody)))]
pub async fn get_simulation(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SimulationStatus>, ApiError> {
    if ulid::Ulid::from_string(&id).is_err() {
        return Err(ApiError::NotFound(format!("no simulation `{id}`")));
    }
    simulations::load_status(&state.db, &state.tables, &id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no simulation `{id}`")))
}

/// The latest simulations, newest first.
#[utoipa::path(get, path = "/api/simulations", responses((status = 200, body = SimulationList)))]
pub async fn list_simulations(
    State(state): State<AppState>,
) -> Result<Json<SimulationList>, ApiError> {
    Ok(Json(SimulationList {
        items: simulations::list_recent(&state.db, &state.tables, 10).await?,
    }))
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", responses((status = 200, description = "OpenAPI 3.1")))]
pub async fn openapi() -> impl IntoResponse {
    use utoipa::OpenApi as _;
    Json(crate::ApiDoc::openapi())
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint; see /api/openapi.json".into())
}
