//! Reads of the tables the processor writes, shaped as the API's types.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use aws_sdk_dynamodb::Client;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Days, SecondsFormat, Utc};
use inventory_domain::api::{
    InventoryPage, ProductView, RejectionPage, RejectionView, Stats, ThroughputPoint,
};
use inventory_domain::{ProductStatus, RejectionReason};
use inventory_store::items::{self, STATS_BUCKET_SECS, STATS_PK};
use inventory_store::tables::STATUS_INDEX;
use inventory_store::Tables;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::error::ApiError;

type Item = HashMap<String, AttributeValue>;

fn dynamo<E: std::error::Error>(operation: &str, e: E) -> ApiError {
    ApiError::Internal(format!(
        "DynamoDB {operation}: {}",
        aws_sdk_dynamodb::error::DisplayErrorContext(e)
    ))
}

fn text(item: &Item, k: &str) -> Option<String> {
    item.get(k).and_then(|v| v.as_s().ok()).cloned()
}

fn num(item: &Item, k: &str) -> Option<i64> {
    item.get(k)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

pub fn product_view(item: &Item) -> Option<ProductView> {
    Some(ProductView {
        product_id: text(item, items::PRODUCT_ID)?,
        product_name: text(item, "product_name").unwrap_or_default(),
        quantity: num(item, "quantity")? as u64,
        status: ProductStatus::parse(&text(item, "status")?)?,
        version: num(item, "version")? as u64,
        last_event_at: text(item, "last_event_at").unwrap_or_default(),
        updated_at: text(item, "updated_at").unwrap_or_default(),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SortKey {
    ProductId,
    Name,
    Quantity,
    UpdatedAt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SortOrder {
    Asc,
    Desc,
}

pub struct InventoryQuery {
    pub status: Option<ProductStatus>,
    pub search: Option<String>,
    pub sort: SortKey,
    pub order: SortOrder,
    pub limit: usize,
    pub cursor: Option<String>,
}

/// A page of products, sorted as asked within the page. One status without a search is a
/// Query of the status index (keys only) plus a BatchGetItem of the page; a search (which
/// DynamoDB can only answer by reading items) is a Scan of `limit` items from the cursor on.
/// Either way a request reads a page, never the whole table.
pub async fn inventory_page(
    db: &Client,
    tables: &Tables,
    q: &InventoryQuery,
) -> Result<InventoryPage, ApiError> {
    match q.status {
        Some(status) if q.search.as_deref().is_none_or(str::is_empty) => {
            status_page(db, tables, status, q).await
        }
        _ => scan_page(db, tables, q).await,
    }
}

async fn status_page(
    db: &Client,
    tables: &Tables,
    status: ProductStatus,
    q: &InventoryQuery,
) -> Result<InventoryPage, ApiError> {
    let status_value = AttributeValue::S(status.as_str().into());
    let start = match &q.cursor {
        None => None,
        Some(c) => {
            let mut key = items::product_key(&decode_cursor::<String>(c)?);
            key.insert("status".into(), status_value.clone());
            Some(key)
        }
    };
    let resp = db
        .query()
        .table_name(&tables.inventory)
        .index_name(STATUS_INDEX)
        .key_condition_expression("#st = :st")
        .expression_attribute_names("#st", "status")
        .expression_attribute_values(":st", status_value)
        .limit(q.limit as i32)
        .set_exclusive_start_key(start)
        .send()
        .await
        .map_err(|e| dynamo("Query", e))?;
    let ids: Vec<String> = resp
        .items()
        .iter()
        .filter_map(|k| text(k, items::PRODUCT_ID))
        .collect();
    let mut out = Vec::with_capacity(ids.len());
    for page in ids.chunks(100) {
        let mut keys: Vec<Item> = page.iter().map(|id| items::product_key(id)).collect();
        for attempt in 0.. {
            if keys.is_empty() {
                break;
            }
            if attempt == 5 {
                return Err(dynamo(
                    "BatchGetItem",
                    std::io::Error::other("keys left unprocessed after 5 attempts (throttled)"),
                ));
            }
            let ka = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut keys)))
                .build()
                .map_err(|e| dynamo("BatchGetItem", e))?;
            let got = db
                .batch_get_item()
                .request_items(&tables.inventory, ka)
                .send()
                .await
                .map_err(|e| dynamo("BatchGetItem", e))?;
            out.extend(
                got.responses()
                    .and_then(|r| r.get(&tables.inventory))
                    .into_iter()
                    .flatten()
                    .filter_map(product_view)
                    // The index is eventually consistent: a product that changed status
                    // since is left out rather than shown under the wrong one.
                    .filter(|p| p.status == status),
            );
            keys = got
                .unprocessed_keys()
                .and_then(|u| u.get(&tables.inventory))
                .map(|k| k.keys().to_vec())
                .unwrap_or_default();
        }
    }
    sort_products(&mut out, q.sort, q.order);
    let next_cursor = resp
        .last_evaluated_key()
        .and_then(|k| text(k, items::PRODUCT_ID))
        .map(|id| encode_cursor(&id));
    Ok(InventoryPage {
        items: out,
        next_cursor,
    })
}

async fn scan_page(
    db: &Client,
    tables: &Tables,
    q: &InventoryQuery,
) -> Result<InventoryPage, ApiError> {
    let mut start = match &q.cursor {
        None => None,
        Some(c) => Some(items::product_key(&decode_cursor::<String>(c)?)),
    };
    let mut out = Vec::new();
    // A filtered Scan can return short pages; a few more calls fill the page.
    for _ in 0..10 {
        let mut filters = Vec::new();
        let mut req = db
            .scan()
            .table_name(&tables.inventory)
            .limit((q.limit - out.len()) as i32)
            .set_exclusive_start_key(start.take());
        if let Some(status) = q.status {
            filters.push("#st = :st");
            req = req
                .expression_attribute_names("#st", "status")
                .expression_attribute_values(":st", AttributeValue::S(status.as_str().into()));
        }
        if let Some(search) = q.search.as_ref().filter(|s| !s.is_empty()) {
            filters.push("(contains(product_id, :q) OR contains(product_name, :q))");
            req = req.expression_attribute_values(":q", AttributeValue::S(search.clone()));
        }
        if !filters.is_empty() {
            req = req.filter_expression(filters.join(" AND "));
        }
        let resp = req.send().await.map_err(|e| dynamo("Scan", e))?;
        out.extend(resp.items().iter().filter_map(product_view));
        start = resp.last_evaluated_key().cloned();
        if start.is_none() || out.len() >= q.limit {
            break;
        }
    }
    sort_products(&mut out, q.sort, q.order);
    let next_cursor = start
        .as_ref()
        .and_then(|k| text(k, items::PRODUCT_ID))
        .map(|id| encode_cursor(&id));
    Ok(InventoryPage {
        items: out,
        next_cursor,
    })
}

pub fn sort_products(items: &mut [ProductView], key: SortKey, order: SortOrder) {
    items.sort_by(|a, b| {
        let o = match key {
            SortKey::ProductId => a.product_id.cmp(&b.product_id),
            SortKey::Name => a.product_name.cmp(&b.product_name),
            SortKey::Quantity => a.quantity.cmp(&b.quantity),
            SortKey::UpdatedAt => a.updated_at.cmp(&b.updated_at),
        }
        .then_with(|| a.product_id.cmp(&b.product_id));
        if order == SortOrder::Desc {
            o.reverse()
        } else {
            o
        }
    });
}

pub async fn product(
    db: &Client,
    tables: &Tables,
    id: &str,
) -> Result<Option<ProductView>, ApiError> {
    let out = db
        .get_item()
        .table_name(&tables.inventory)
        .set_key(Some(items::product_key(id)))
        .send()
        .await
        .map_err(|e| dynamo("GetItem", e))?;
    Ok(out.item().and_then(product_view))
}

/// Product totals, computed from the items (exact) and cached briefly so a console polling
/// every second does not read the table every second.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    pub products: u64,
    pub active: u64,
    pub units: u64,
    pub applied: u64,
}

pub struct TotalsCache {
    ttl: Duration,
    cached: Mutex<Option<(Instant, Totals)>>,
}

impl TotalsCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            cached: Mutex::new(None),
        }
    }

    pub async fn get(&self, db: &Client, tables: &Tables) -> Result<Totals, ApiError> {
        let mut cached = self.cached.lock().await;
        if let Some((at, totals)) = *cached {
            if at.elapsed() < self.ttl {
                return Ok(totals);
            }
        }
        let totals = scan_totals(db, tables).await?;
        *cached = Some((Instant::now(), totals));
        Ok(totals)
    }
}

async fn scan_totals(db: &Client, tables: &Tables) -> Result<Totals, ApiError> {
    let mut t = Totals::default();
    let mut start = None;
    loop {
        let resp = db
            .scan()
            .table_name(&tables.inventory)
            .projection_expression("#st, quantity, version")
            .expression_attribute_names("#st", "status")
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| dynamo("Scan", e))?;
        for item in resp.items() {
            t.products += 1;
            t.applied += num(item, "version").unwrap_or(0) as u64;
            if text(item, "status").as_deref() == Some("active") {
                t.active += 1;
                t.units += num(item, "quantity").unwrap_or(0) as u64;
            }
        }
        start = resp.last_evaluated_key().cloned();
        if start.is_none() {
            return Ok(t);
        }
    }
}

/// How far back the throughput chart goes.
const CHART_SECS: i64 = 600;

pub async fn stats(db: &Client, tables: &Tables, totals: &TotalsCache) -> Result<Stats, ApiError> {
    let now = Utc::now();
    let totals = totals.get(db, tables).await?;
    let total_item = db
        .get_item()
        .table_name(&tables.events)
        .key("pk", AttributeValue::S(STATS_PK.into()))
        .key("sk", AttributeValue::S(items::STATS_TOTAL_SK.into()))
        .send()
        .await
        .map_err(|e| dynamo("GetItem", e))?
        .item()
        .cloned()
        .unwrap_or_default();
    let current = now.timestamp() - now.timestamp().rem_euclid(STATS_BUCKET_SECS);
    let first = current - CHART_SECS + STATS_BUCKET_SECS;
    let buckets = db
        .query()
        .table_name(&tables.events)
        .key_condition_expression("pk = :pk AND sk BETWEEN :a AND :b")
        .expression_attribute_values(":pk", AttributeValue::S(STATS_PK.into()))
        .expression_attribute_values(":a", AttributeValue::S(items::stats_sort_key(first)))
        .expression_attribute_values(":b", AttributeValue::S(items::stats_sort_key(current)))
        .send()
        .await
        .map_err(|e| dynamo("Query", e))?;
    let by_start: BTreeMap<i64, &Item> = buckets
        .items()
        .iter()
        .filter_map(|i| {
            let sk = text(i, "sk")?;
            Some((sk.strip_prefix("BUCKET#")?.parse().ok()?, i))
        })
        .collect();
    let mut throughput = Vec::new();
    let mut last_minute = 0;
    let mut start = first;
    while start <= current {
        let applied = by_start
            .get(&start)
            .and_then(|i| num(i, "applied"))
            .unwrap_or(0);
        if start > current - 60 {
            last_minute += applied;
        }
        throughput.push(ThroughputPoint {
            at: DateTime::<Utc>::from_timestamp(start, 0)
                .unwrap_or(now)
                .to_rfc3339_opts(SecondsFormat::Secs, true),
            applied_per_sec: applied as f64 / STATS_BUCKET_SECS as f64,
        });
        start += STATS_BUCKET_SECS;
    }
    let rejections: BTreeMap<String, u64> = RejectionReason::ALL
        .iter()
        .filter_map(|r| {
            let n = num(&total_item, &items::reason_counter(*r)).unwrap_or(0);
            (n > 0).then(|| (r.as_str().to_owned(), n as u64))
        })
        .collect();
    Ok(Stats {
        products: totals.products,
        active_products: totals.active,
        units: totals.units,
        events_applied: totals.applied,
        duplicates_ignored: num(&total_item, "duplicates").unwrap_or(0) as u64,
        rejections_total: rejections.values().sum(),
        rejections,
        lag_ms: num(&total_item, "last_lag_ms"),
        last_batch_at: num(&total_item, "updated_at")
            .and_then(DateTime::<Utc>::from_timestamp_millis)
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true)),
        throughput_last_minute: last_minute as f64 / 60.0,
        throughput,
        generated_at: now.to_rfc3339_opts(SecondsFormat::Millis, true),
    })
}

#[derive(Serialize, Deserialize)]
struct RejectionCursor {
    day: String,
    sk: String,
}

/// How many days of rejections are kept (their TTL) and so looked through.
const REJECTION_DAYS: u64 = items::REJECTION_TTL_DAYS as u64;

pub async fn rejections_page(
    db: &Client,
    tables: &Tables,
    limit: usize,
    cursor: Option<&str>,
) -> Result<RejectionPage, ApiError> {
    let today = Utc::now().date_naive();
    let (mut day, mut start) = match cursor {
        None => (today, None),
        Some(c) => {
            let c: RejectionCursor = decode_cursor(c)?;
            let day = chrono::NaiveDate::parse_from_str(&c.day, "%Y-%m-%d").map_err(|_| {
                ApiError::InvalidCursor("the cursor is not one this API gave".into())
            })?;
            (day, Some(c.sk).filter(|sk| !sk.is_empty()))
        }
    };
    let oldest = today
        .checked_sub_days(Days::new(REJECTION_DAYS))
        .unwrap_or(today);
    let mut out = Vec::new();
    let mut next = None;
    while day >= oldest && out.len() < limit {
        let pk = items::rejection_partition(&day.format("%Y-%m-%d").to_string());
        let resp = db
            .query()
            .table_name(&tables.events)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
            .scan_index_forward(false)
            .limit((limit - out.len()) as i32)
            .set_exclusive_start_key(start.take().map(|sk| {
                HashMap::from([
                    ("pk".to_owned(), AttributeValue::S(pk.clone())),
                    ("sk".to_owned(), AttributeValue::S(sk)),
                ])
            }))
            .send()
            .await
            .map_err(|e| dynamo("Query", e))?;
        out.extend(resp.items().iter().filter_map(rejection_view));
        match resp.last_evaluated_key().and_then(|k| text(k, "sk")) {
            Some(sk) => {
                start = Some(sk.clone());
                next = Some(RejectionCursor {
                    day: day.format("%Y-%m-%d").to_string(),
                    sk,
                });
            }
            None => {
                next = None;
                day = match day.pred_opt() {
                    Some(d) => d,
                    None => break,
                };
                if out.len() >= limit && day >= oldest {
                    // The page is full at a day boundary: continue from the previous day.
                    next = Some(RejectionCursor {
                        day: day.format("%Y-%m-%d").to_string(),
                        sk: String::new(),
                    });
                }
            }
        }
    }
    // An empty `sk` means "from the start of that day".
    let next_cursor = next.map(|c| encode_cursor(&c));
    Ok(RejectionPage {
        items: out,
        next_cursor,
    })
}

fn rejection_view(item: &Item) -> Option<RejectionView> {
    Some(RejectionView {
        record_id: text(item, "record_id")?,
        reason: RejectionReason::parse(&text(item, "reason")?)?,
        detail: text(item, "detail").unwrap_or_default(),
        product_id: text(item, "product_id"),
        event_id: text(item, "event_id"),
        partition_key: text(item, "partition_key").unwrap_or_default(),
        arrived_at: text(item, "arrived_at").unwrap_or_default(),
        rejected_at: text(item, "rejected_at").unwrap_or_default(),
        data_base64_excerpt: text(item, "data_base64_excerpt").unwrap_or_default(),
    })
}

fn encode_cursor<T: Serialize>(value: &T) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap_or_default())
}

fn decode_cursor<T: for<'de> Deserialize<'de>>(cursor: &str) -> Result<T, ApiError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| {
            ApiError::InvalidCursor(
                "the cursor is not one this API gave; start again without it".into(),
            )
        })
}
