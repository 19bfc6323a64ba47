//! The endpoints. Each is a plain async function over [`AppState`], documented for the
//! OpenAPI document by its `#[utoipa::path]`. Who calls comes as an argument
//! ([`Caller`], [`SignedIn`]); so do the seams a write needs ([`Launcher`], [`Redriver`]),
//! which answer 503 where the deployment has none.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use inventory_domain::api::{
    DeadLetterPage, DeadLetterStatus, ErrorBody, HistoryPage, InventoryPage, ProductView,
    RedriveRequest, RedriveResult, RejectionView, SimulationAccepted, SimulationList,
    SimulationRequest, SimulationState, SimulationStatus,
};
use inventory_domain::ProductStatus;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{InventoryReader, Reader, SignedIn};
use crate::error::ApiError;
use crate::limits;
use crate::store::{self, simulations, InventoryQuery};
use crate::{AppState, DeadLetterRedriver, SimulationLauncher};
use inventory_domain::api::Stats;
use inventory_domain::catalog::{SortKey, SortOrder};
use inventory_store::simulation_lock;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InventoryParams {
    /// `active` or `removed`; every product when omitted (`all`).
    #[param(value_type = Option<ProductStatusFilter>, inline)]
    pub status: Option<String>,
    /// Only active products with at most this many in stock.
    #[param(minimum = 0)]
    pub low_stock: Option<u64>,
    /// Words, case-insensitive: a product matches when each is the start of a word of its
    /// name or of its id (at most 100 characters).
    #[param(max_length = 100)]
    pub q: Option<String>,
    /// `product_id` (default), `name`, `quantity` or `updated_at`, over the whole catalog.
    pub sort: Option<SortKey>,
    /// `asc` (default) or `desc`.
    pub order: Option<SortOrder>,
    /// Products per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000, default = 100)]
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page (of the same sort and order); only a cursor this
    /// API gave is one (400 `invalid_cursor` otherwise).
    #[param(pattern = "^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
}

/// Which products `GET /api/inventory` lists (`status`); for the document only: the
/// handler reads the text, so its refusal names the choices.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum ProductStatusFilter {
    All,
    Active,
    Removed,
}

/// List products, a page at a time, sorted, filtered and searched over the whole catalog.
/// Answers `304 Not Modified` to an `If-None-Match` with the page's current `ETag`.
/// Needs a signed-in caller, unless the deployment has `PUBLIC_READS` on: an anonymous
/// caller then gets at most 100 products a page, whatever `limit` says, with
/// `Cache-Control: public, max-age=5`.
#[utoipa::path(get, path = "/api/inventory", params(InventoryParams),
    security((), ("bearer" = [])),
    responses((status = 200, body = InventoryPage), (status = 304, description = "Unchanged since the ETag given"),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list_inventory(
    State(state): State<AppState>,
    InventoryReader(audience): InventoryReader,
    headers: HeaderMap,
    query: Result<Query<InventoryParams>, QueryRejection>,
) -> Result<axum::response::Response, ApiError> {
    let Query(p) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let status = match p.status.as_deref() {
        None | Some("all") => None,
        Some(s) => Some(ProductStatus::parse(s).ok_or_else(|| {
            ApiError::BadRequest(format!("status `{s}` is not one of active, removed, all"))
        })?),
    };
    let limit = limits::INVENTORY_PAGE.check(p.limit)?;
    let query = InventoryQuery {
        status,
        low_stock: p.low_stock,
        search: p.q,
        sort: p.sort.unwrap_or(SortKey::ProductId),
        order: p.order.unwrap_or(SortOrder::Asc),
        limit: audience.page_limit(limit),
        cursor: p.cursor,
    };
    let page = store::inventory_page(&state.db, &state.tables, &state.catalog, &query).await?;
    Ok(audience.cache(with_etag(&headers, &page)))
}

/// The body with an `ETag` (a hash of it), or `304 Not Modified` when the caller already
/// has it: a poll of an unchanged page sends no body. `no-cache`: a cache must ask each time.
pub fn with_etag<T: Serialize>(headers: &HeaderMap, body: &T) -> axum::response::Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let etag = format!("\"{:032x}\"", xxhash_rust::xxh3::xxh3_128(&bytes));
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let common = [
        (header::ETAG, etag),
        (header::CACHE_CONTROL, "no-cache".to_owned()),
    ];
    if unchanged {
        (StatusCode::NOT_MODIFIED, common).into_response()
    } else {
        (
            common,
            [(header::CONTENT_TYPE, "application/json".to_owned())],
            bytes,
        )
            .into_response()
    }
}

/// One product. Needs a signed-in caller unless the deployment has `PUBLIC_READS` on (an
/// anonymous answer then has `Cache-Control: public, max-age=5`).
#[utoipa::path(get, path = "/api/inventory/{product_id}",
    params(("product_id" = String, Path, description = "The product's id", pattern = "^[A-Za-z0-9_-]+$", max_length = 64)),
    security((), ("bearer" = [])),
    responses((status = 200, body = ProductView), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn get_product(
    State(state): State<AppState>,
    InventoryReader(audience): InventoryReader,
    Path(product_id): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    if !inventory_domain::event::is_valid_product_id(&product_id) {
        return Err(ApiError::NotFound(format!("no product `{product_id}`")));
    }
    let product: ProductView =
        store::product(&state.db, &state.tables, &state.catalog, &product_id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no product `{product_id}`")))?;
    Ok(audience.cache(Json(product)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// Events per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200, default = 50)]
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page; only a cursor this API gave is one.
    #[param(pattern = "^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
}

/// A product's history, newest first: every event that touched it (applied, ignored as a
/// producer's duplicate, or rejected with its reason) and the stock after it, kept 8 days,
/// with history on (`PRODUCT_HISTORY`). Answers `ETag`/`304` like the listing. Needs a
/// signed-in caller unless the deployment has `PUBLIC_READS` on: an anonymous caller then
/// gets at most 100 events a page, with `Cache-Control: public, max-age=5`.
#[utoipa::path(get, path = "/api/inventory/{product_id}/history",
    params(("product_id" = String, Path, description = "The product's id", pattern = "^[A-Za-z0-9_-]+$", max_length = 64), HistoryParams),
    security((), ("bearer" = [])),
    responses((status = 200, body = HistoryPage), (status = 304, description = "Unchanged since the ETag given"),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn product_history(
    State(state): State<AppState>,
    InventoryReader(audience): InventoryReader,
    Path(product_id): Path<String>,
    headers: HeaderMap,
    query: Result<Query<HistoryParams>, QueryRejection>,
) -> Result<axum::response::Response, ApiError> {
    let Query(p) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = limits::PAGE.check(p.limit)?;
    if !inventory_domain::event::is_valid_product_id(&product_id) {
        return Err(ApiError::NotFound(format!("no product `{product_id}`")));
    }
    let page = store::history::history_page(
        &state.db,
        &state.tables,
        &product_id,
        audience.page_limit(limit),
        p.cursor.as_deref(),
    )
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("no product `{product_id}`")))?;
    Ok(audience.cache(with_etag(&headers, &page)))
}

/// Totals, throughput, lag, duplicates and rejections (the processor's counters); the
/// totals are `null` before its first batch. Needs a signed-in caller unless the deployment
/// has `PUBLIC_READS` on (an anonymous answer then has `Cache-Control: public, max-age=5`).
#[utoipa::path(get, path = "/api/stats", security((), ("bearer" = [])),
    responses((status = 200, body = Stats), (status = 401, body = ErrorBody)))]
pub async fn get_stats(
    State(state): State<AppState>,
    InventoryReader(audience): InventoryReader,
) -> Result<axum::response::Response, ApiError> {
    let stats = state.stats.stats(&state.db, &state.tables).await?;
    Ok(audience.cache(Json(stats)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200, default = 50)]
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page; only a cursor this API gave is one.
    #[param(pattern = "^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
}

/// A page of rejections. The raw data excerpt is producer data: only a signed-in caller
/// gets it; for anyone else (only where reads are open: the local stack) each
/// `data_base64_excerpt` is empty and `excerpts_withheld` is true.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RejectionList {
    pub items: Vec<RejectionView>,
    pub next_cursor: Option<String>,
    pub excerpts_withheld: bool,
}

/// Rejected records, newest first. Needs a signed-in caller (the local stack lets anyone
/// read them, the data excerpts withheld).
#[utoipa::path(get, path = "/api/rejections", params(PageParams),
    security(("bearer" = [])),
    responses((status = 200, body = RejectionList), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody)))]
pub async fn list_rejections(
    State(state): State<AppState>,
    Reader(caller): Reader,
    query: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<RejectionList>, ApiError> {
    let Query(p) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = limits::PAGE.check(p.limit)?;
    let page = store::rejections_page(
        &state.db,
        &state.tables,
        &state.rejections,
        limit,
        p.cursor.as_deref(),
    )
    .await?;
    let withheld = !caller.is_signed_in();
    Ok(Json(RejectionList {
        items: page
            .items
            .into_iter()
            .map(|mut r| {
                if withheld {
                    r.data_base64_excerpt.clear();
                }
                r
            })
            .collect(),
        next_cursor: page.next_cursor,
        excerpts_withheld: withheld,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeadLetterParams {
    /// `pending`, `redriven` or `processed_before`; all when omitted.
    pub status: Option<DeadLetterStatus>,
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200, default = 50)]
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page; only a cursor this API gave is one.
    #[param(pattern = "^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
}

/// Records the Pipe dead-lettered, archived by the dead-letter consumer, newest first. Needs
/// a signed-in caller (the local stack lets anyone read them, the data excerpts withheld).
#[utoipa::path(get, path = "/api/dead-letters", params(DeadLetterParams),
    security(("bearer" = [])),
    responses((status = 200, body = DeadLetterPage), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody)))]
pub async fn list_dead_letters(
    State(state): State<AppState>,
    Reader(caller): Reader,
    query: Result<Query<DeadLetterParams>, QueryRejection>,
) -> Result<Json<DeadLetterPage>, ApiError> {
    let Query(p) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = limits::PAGE.check(p.limit)?;
    let after = p
        .cursor
        .as_deref()
        .map(store::cursors::decode::<String>)
        .transpose()?;
    let (items, next) = inventory_store::dead_letters::list(
        &state.db,
        &state.tables,
        p.status,
        inventory_store::dead_letters::Order::NewestFirst,
        limit,
        after.as_deref(),
    )
    .await?;
    let signed_in = caller.is_signed_in();
    Ok(Json(DeadLetterPage {
        items: items.into_iter().map(|i| i.into_view(signed_in)).collect(),
        next_cursor: next.map(|n| store::cursors::encode(&n)),
    }))
}

/// Republish dead letters to the stream (the ids given, or every pending one when `ids` is
/// empty, up to 500 per request) with their partition keys and bytes, so their event ids:
/// the processor applies each once. Needs a signed-in caller.
#[utoipa::path(post, path = "/api/dead-letters/redrive", request_body = RedriveRequest,
    security(("bearer" = [])),
    responses((status = 200, body = RedriveResult), (status = 401, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 502, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn redrive_dead_letters(
    Redriver(redriver): Redriver,
    SignedIn(caller): SignedIn,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<RedriveResult>, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::Unprocessable(e.body_text()))?;
    // serde reads a struct from an array of its fields too; the document says an object.
    if !body.is_object() {
        return Err(ApiError::Unprocessable(
            "the body must be a JSON object, e.g. {\"ids\": []}".into(),
        ));
    }
    let request: RedriveRequest = serde_json::from_value(body)
        .map_err(|e| ApiError::Unprocessable(format!("the body is not a redrive request: {e}")))?;
    check_redrive_ids(&request.ids)?;
    let result = redriver
        .redrive(request)
        .await
        .map_err(ApiError::RedriveFailed)?;
    tracing::info!(
        ?caller,
        republished = result.republished,
        skipped = result.skipped.len(),
        "dead letters redriven"
    );
    Ok(Json(result))
}

/// JSON Schema's `integer` is any number without a fraction, so `77.0` is one; serde reads
/// only `77` as an integer. Every such number becomes its integer form (which a float field
/// reads as well), so the body means what the document says it does.
fn integral_numbers_as_integers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) if n.is_f64() => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            if x.fract() == 0.0 && x >= 0.0 && x < u64::MAX as f64 {
                *value = Value::from(x as u64);
            } else if x.fract() == 0.0 && x < 0.0 && x >= i64::MIN as f64 {
                *value = Value::from(x as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_numbers_as_integers),
        Value::Object(map) => map.values_mut().for_each(integral_numbers_as_integers),
        _ => {}
    }
}

/// Refuses ids no archived dead letter can have (422 naming the first), before the archive
/// is asked: a key DynamoDB cannot take would fail the whole redrive.
fn check_redrive_ids(ids: &[String]) -> Result<(), ApiError> {
    if ids.len() > limits::MAX_REDRIVE_IDS {
        return Err(ApiError::Unprocessable(format!(
            "ids names {} dead letters, more than the {} one redrive takes: send them in several",
            ids.len(),
            limits::MAX_REDRIVE_IDS
        )));
    }
    match ids.iter().position(|id| !limits::is_dead_letter_id(id)) {
        Some(i) => Err(ApiError::Unprocessable(format!(
            "ids[{i}] `{}` is not a dead letter's id (`<arrival ms, 13 digits>#shardId-<12 digits>:<sequence number>`): use the ids GET /api/dead-letters lists",
            ids[i].chars().take(80).collect::<String>()
        ))),
        None => Ok(()),
    }
}

/// Start a simulation; it runs in the background and this returns at once. One runs at a
/// time (409 while another does); it needs a signed-in caller. Each field's limits are in
/// its schema; the fields must also fit together, which JSON Schema cannot say (422
/// `inconsistent_request` otherwise): `events / rate` at most the maximum event age (600 s),
/// `duplicates + malformed + invalid + retry_share` at most 0.9, `retry_distance.min` at
/// most its `max`, and with `retry_share` above 0, `retry_distance.max / rate` at most 600 s.
#[utoipa::path(post, path = "/api/simulations", request_body = SimulationRequest,
    security(("bearer" = [])),
    responses((status = 202, body = SimulationAccepted), (status = 401, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn start_simulation(
    State(state): State<AppState>,
    Launcher(launcher): Launcher,
    SignedIn(caller): SignedIn,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(mut body) = body.map_err(|e| ApiError::Unprocessable(e.body_text()))?;
    integral_numbers_as_integers(&mut body);
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let Json(request) = Json::<SimulationRequest>::from_bytes(&bytes)
        .map_err(|e| ApiError::Unprocessable(e.body_text()))?;
    if let Err(message) = request.validate() {
        return Err(if limits::simulation_fields_in_range(&request) {
            ApiError::Inconsistent(message)
        } else {
            ApiError::Unprocessable(message)
        });
    }
    check_event_age(&request, state.limits.max_event_age)?;
    let id = ulid::Ulid::new().to_string();
    let now = chrono::Utc::now();
    if let Err(held) =
        simulation_lock::acquire(&state.db, &state.tables, &id, now, state.limits.lock_for())
            .await?
    {
        return Err(ApiError::Conflict(held.message()));
    }
    tracing::info!(simulation = %id, ?caller, "simulation starting");
    let mut status = SimulationStatus::queued(&id, &request, now);
    if let Err(e) = simulations::save(&state.db, &state.tables, &status).await {
        release_lock(&state, &id).await;
        return Err(e);
    }
    if let Err(e) = launcher.launch(status.clone()).await {
        status.state = SimulationState::Failed;
        status.error = Some(format!("could not be started: {e}"));
        if let Err(save) = simulations::save(&state.db, &state.tables, &status).await {
            tracing::warn!(simulation = %id, error = %save, "failed launch not recorded");
        }
        release_lock(&state, &id).await;
        return Err(ApiError::LaunchFailed(e));
    }
    let status_url = format!("/api/simulations/{id}");
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, status_url.clone())],
        Json(SimulationAccepted { id, status_url }),
    ))
}

/// The deployment's simulation launcher; 503 (`simulations_disabled`) where simulations
/// cannot run. Taken before [`SignedIn`], so such a stage says so to anyone.
pub struct Launcher(pub Arc<dyn SimulationLauncher>);

impl FromRequestParts<AppState> for Launcher {
    type Rejection = ApiError;

    async fn from_request_parts(_: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if state.launcher.enabled() {
            Ok(Launcher(state.launcher.clone()))
        } else {
            Err(ApiError::SimulationsDisabled)
        }
    }
}

/// The deployment's dead-letter redriver; 503 (`redrive_disabled`) where there is none.
/// Taken before [`SignedIn`], so such a deployment says so to anyone.
pub struct Redriver(pub Arc<dyn DeadLetterRedriver>);

impl FromRequestParts<AppState> for Redriver {
    type Rejection = ApiError;

    async fn from_request_parts(_: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        state
            .redriver
            .clone()
            .map(Redriver)
            .ok_or(ApiError::RedriveDisabled)
    }
}

/// Refuses a request whose events, at its rate, would be published later than the maximum
/// event age after its start.
pub fn check_event_age(
    request: &SimulationRequest,
    max_event_age: std::time::Duration,
) -> Result<(), ApiError> {
    let publishing = request.events as f64 / request.rate;
    if publishing > max_event_age.as_secs_f64() {
        return Err(ApiError::Inconsistent(format!(
            "{} events at {} per second take {publishing:.0} s, longer than the maximum event age of {} s: lower events or raise rate",
            request.events,
            request.rate,
            max_event_age.as_secs()
        )));
    }
    Ok(())
}

/// Best effort: the lock also expires by itself.
async fn release_lock(state: &AppState, id: &str) {
    if let Err(e) = simulation_lock::release(&state.db, &state.tables, id).await {
        tracing::warn!(simulation = %id, error = %e, "simulation lock not released; it expires by itself");
    }
}

/// A simulation's progress and, once the pipeline has caught up, its verdict. Needs a
/// signed-in caller (the local stack lets anyone read it).
#[utoipa::path(get, path = "/api/simulations/{id}",
    params(("id" = String, Path, description = "The id `POST /api/simulations` returned", pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")),
    security(("bearer" = [])),
    responses((status = 200, body = SimulationStatus), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn get_simulation(
    State(state): State<AppState>,
    _reader: Reader,
    Path(id): Path<String>,
) -> Result<Json<SimulationStatus>, ApiError> {
    if ulid::Ulid::from_string(&id).is_err() {
        return Err(ApiError::NotFound(format!("no simulation `{id}`")));
    }
    simulations::load(&state.db, &state.tables, &id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no simulation `{id}`")))
}

/// The latest simulations, newest first. Needs a signed-in caller (the local stack lets
/// anyone read them).
#[utoipa::path(get, path = "/api/simulations", security(("bearer" = [])),
    responses((status = 200, body = SimulationList), (status = 401, body = ErrorBody)))]
pub async fn list_simulations(
    State(state): State<AppState>,
    _reader: Reader,
) -> Result<Json<SimulationList>, ApiError> {
    Ok(Json(SimulationList {
        items: simulations::recent(&state.db, &state.tables).await?,
    }))
}

/// This document, as this deployment enforces it; public wherever the API runs.
#[utoipa::path(get, path = "/api/openapi.json", security(()), responses((status = 200, description = "OpenAPI 3.1")))]
pub async fn openapi(State(state): State<AppState>) -> impl IntoResponse {
    Json(crate::contract::document(state.reads))
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint; see /api/openapi.json".into())
}
