//! Compares what DynamoDB holds with the simulation's expected state. It waits (bounded)
//! until the pipeline has caught up, so lag is never reported as a mismatch.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Days, Utc};
use inventory_domain::RejectionReason;
use inventory_store::items::{self, rejection_partition};
use inventory_store::Tables;
use serde::Serialize;

use crate::sim::{Expected, ExpectedProduct, ExpectedStatus};

#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// How long to wait for the pipeline to catch up.
    pub timeout: Duration,
    pub poll_interval: Duration,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(120),
            poll_interval: Duration::from_millis(500),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StoredProduct {
    pub status: ExpectedStatus,
    pub quantity: u64,
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Mismatch {
    Product {
        product_id: String,
        expected: ExpectedProduct,
        stored: Option<StoredProduct>,
    },
    Rejections {
        reason: RejectionReason,
        expected: u64,
        stored: u64,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// Whether everything expected had arrived before the deadline.
    pub caught_up: bool,
    pub waited_ms: u128,
    pub mismatches: Vec<Mismatch>,
    pub stored: BTreeMap<String, StoredProduct>,
    pub rejections: BTreeMap<RejectionReason, u64>,
}

impl VerifyReport {
    pub fn is_consistent(&self) -> bool {
        self.mismatches.is_empty()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("DynamoDB {operation} failed: {message}. Are INVENTORY_TABLE/EVENTS_TABLE and AWS_ENDPOINT_URL right?")]
    Dynamo {
        operation: &'static str,
        message: String,
    },
}

fn dynamo_err<E: std::error::Error>(operation: &'static str, e: E) -> VerifyError {
    VerifyError::Dynamo {
        operation,
        message: aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string(),
    }
}

/// Polls until every expected product and rejection is there (or the timeout), then
/// compares exactly.
pub async fn verify(
    db: &Client,
    tables: &Tables,
    expected: &Expected,
    options: &VerifyOptions,
) -> Result<VerifyReport, VerifyError> {
    let started = Instant::now();
    loop {
        let stored = read_products(db, tables, expected).await?;
        let rejections = read_rejections(db, tables, expected).await?;
        let caught_up = expected
            .products
            .iter()
            .all(|(id, e)| match stored.get(id) {
                None => e.status == ExpectedStatus::Absent,
                Some(s) => s.version >= e.version,
            })
            && expected
                .rejections
                .iter()
                .all(|(r, n)| rejections.get(r).copied().unwrap_or(0) >= *n);
        if caught_up || started.elapsed() >= options.timeout {
            let mismatches = compare(expected, &stored, &rejections);
            return Ok(VerifyReport {
                caught_up,
                waited_ms: started.elapsed().as_millis(),
                mismatches,
                stored,
                rejections,
            });
        }
        tokio::time::sleep(options.poll_interval).await;
    }
}

pub fn compare(
    expected: &Expected,
    stored: &BTreeMap<String, StoredProduct>,
    rejections: &BTreeMap<RejectionReason, u64>,
) -> Vec<Mismatch> {
    let mut out = Vec::new();
    for (id, e) in &expected.products {
        let s = stored.get(id).copied();
        let ok = match s {
            None => e.status == ExpectedStatus::Absent,
            Some(s) => s.status == e.status && s.quantity == e.quantity && s.version == e.version,
        };
        if !ok {
            out.push(Mismatch::Product {
                product_id: id.clone(),
                expected: e.clone(),
                stored: s,
            });
        }
    }
    for reason in RejectionReason::ALL {
        let (e, s) = (
            expected.rejections.get(&reason).copied().unwrap_or(0),
            rejections.get(&reason).copied().unwrap_or(0),
        );
        if e != s {
            out.push(Mismatch::Rejections {
                reason,
                expected: e,
                stored: s,
            });
        }
    }
    out
}

async fn read_products(
    db: &Client,
    tables: &Tables,
    expected: &Expected,
) -> Result<BTreeMap<String, StoredProduct>, VerifyError> {
    let mut out = BTreeMap::new();
    let ids: Vec<&String> = expected.products.keys().collect();
    for page in ids.chunks(100) {
        let mut keys: Vec<_> = page.iter().map(|id| items::product_key(id)).collect();
        while !keys.is_empty() {
            let ka = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut keys)))
                .consistent_read(true)
                .build()
                .map_err(|e| dynamo_err("BatchGetItem", e))?;
            let resp = db
                .batch_get_item()
                .request_items(&tables.inventory, ka)
                .send()
                .await
                .map_err(|e| dynamo_err("BatchGetItem", e))?;
            for item in resp
                .responses()
                .and_then(|r| r.get(&tables.inventory))
                .into_iter()
                .flatten()
            {
                let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
                let num = |k: &str| {
                    item.get(k)
                        .and_then(|v| v.as_n().ok())
                        .and_then(|v| v.parse::<u64>().ok())
                };
                let (Some(id), Some(q), Some(v)) =
                    (text(items::PRODUCT_ID), num("quantity"), num("version"))
                else {
                    continue;
                };
                let status = match text("status").as_deref() {
                    Some("active") => ExpectedStatus::Active,
                    Some("removed") => ExpectedStatus::Removed,
                    _ => continue,
                };
                out.insert(
                    id,
                    StoredProduct {
                        status,
                        quantity: q,
                        version: v,
                    },
                );
            }
            keys = resp
                .unprocessed_keys()
                .and_then(|u| u.get(&tables.inventory))
                .map(|k| k.keys().to_vec())
                .unwrap_or_default();
        }
    }
    Ok(out)
}

/// Counts this run's rejections: one Query per day since the run started, filtered on the
/// run's partition-key prefix.
async fn read_rejections(
    db: &Client,
    tables: &Tables,
    expected: &Expected,
) -> Result<BTreeMap<RejectionReason, u64>, VerifyError> {
    let mut counts = BTreeMap::new();
    let start = DateTime::parse_from_rfc3339(&expected.started_at)
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_else(|_| Utc::now());
    let prefix = format!("{}-", expected.config.run_id);
    let mut day = start.date_naive().pred_opt().unwrap_or(start.date_naive());
    while day <= Utc::now().date_naive() {
        let mut start_key = None;
        loop {
            let resp = db
                .query()
                .table_name(&tables.events)
                .key_condition_expression("pk = :pk")
                .filter_expression("begins_with(partition_key, :run)")
                .expression_attribute_values(
                    ":pk",
                    AttributeValue::S(rejection_partition(&day.format("%Y-%m-%d").to_string())),
                )
                .expression_attribute_values(":run", AttributeValue::S(prefix.clone()))
                .projection_expression("reason")
                .consistent_read(true)
                .set_exclusive_start_key(start_key)
                .send()
                .await
                .map_err(|e| dynamo_err("Query", e))?;
            for item in resp.items() {
                if let Some(r) = item
                    .get("reason")
                    .and_then(|v| v.as_s().ok())
                    .and_then(|r| RejectionReason::parse(r))
                {
                    *counts.entry(r).or_default() += 1;
                }
            }
            start_key = resp.last_evaluated_key().cloned();
            if start_key.is_none() {
                break;
            }
        }
        day = match day.checked_add_days(Days::new(1)) {
            Some(d) => d,
            None => break,
        };
    }
    Ok(counts)
}

/// The human-readable report: products (the busiest first), totals, rejections, verdict.
pub fn render(expected: &Expected, report: &VerifyReport, max_rows: usize) -> String {
    let mut s = String::new();
    let mut rows: Vec<(&String, &ExpectedProduct)> = expected.products.iter().collect();
    rows.sort_by(|a, b| b.1.records.cmp(&a.1.records).then(a.0.cmp(b.0)));
    let _ = writeln!(
        s,
        "{:<18} {:>9} {:>9} {:>8} {:>8}  check",
        "product", "status", "quantity", "version", "records"
    );
    for (id, e) in rows.iter().take(max_rows) {
        let stored = report.stored.get(*id);
        let (status, q, v) = stored.map_or(("absent", 0, 0), |p| {
            (
                match p.status {
                    ExpectedStatus::Active => "active",
                    ExpectedStatus::Removed => "removed",
                    ExpectedStatus::Absent => "absent",
                },
                p.quantity,
                p.version,
            )
        });
        let ok = !report
            .mismatches
            .iter()
            .any(|m| matches!(m, Mismatch::Product { product_id, .. } if product_id == *id));
        let _ = writeln!(
            s,
            "{id:<18} {status:>9} {q:>9} {v:>8} {:>8}  {}",
            e.records,
            if ok { "ok" } else { "MISMATCH" }
        );
    }
    if rows.len() > max_rows {
        let _ = writeln!(s, "… and {} more products", rows.len() - max_rows);
    }
    let stored_units: u64 = report.stored.values().map(|p| p.quantity).sum();
    let active = report
        .stored
        .values()
        .filter(|p| p.status == ExpectedStatus::Active)
        .count();
    let _ = writeln!(
        s,
        "\ntotals: {} products ({} active), {} units in stock (expected {}), {} records published, {} events applied",
        report.stored.len(),
        active,
        stored_units,
        expected.total_units(),
        expected.records,
        expected.applied
    );
    let late = if expected.late_retries > 0 {
        format!(
            "{} of them late retries {} records after their original; ",
            expected.late_retries, expected.producers.retry_distance
        )
    } else {
        String::new()
    };
    let _ = writeln!(
        s,
        "duplicates ignored: {} ({late}every stored version matches the model, so none was applied twice)",
        expected.duplicates
    );
    let _ = write!(s, "rejections by reason:");
    if report.rejections.is_empty() && expected.rejections.is_empty() {
        let _ = write!(s, " none");
    }
    for reason in RejectionReason::ALL {
        let (e, got) = (
            expected.rejections.get(&reason).copied().unwrap_or(0),
            report.rejections.get(&reason).copied().unwrap_or(0),
        );
        if e > 0 || got > 0 {
            let _ = write!(s, " {reason}={got}");
            if e != got {
                let _ = write!(s, " (expected {e})");
            }
        }
    }
    let _ = writeln!(s);
    for m in report.mismatches.iter().take(50) {
        match m {
            Mismatch::Product {
                product_id,
                expected,
                stored,
            } => {
                let _ = writeln!(
                    s,
                    "MISMATCH {product_id}: expected {:?} qty {} v{}, stored {}",
                    expected.status,
                    expected.quantity,
                    expected.version,
                    stored.map_or("nothing".to_owned(), |p| format!(
                        "{:?} qty {} v{}",
                        p.status, p.quantity, p.version
                    ))
                );
            }
            Mismatch::Rejections {
                reason,
                expected,
                stored,
            } => {
                let _ = writeln!(
                    s,
                    "MISMATCH rejections {reason}: expected {expected}, stored {stored}"
                );
            }
        }
    }
    let _ = writeln!(
        s,
        "verdict: {} mismatches across {} products and {} rejection reasons{}",
        report.mismatches.len(),
        expected.products.len(),
        RejectionReason::ALL.len(),
        if report.caught_up {
            String::new()
        } else {
            format!(
                " (the pipeline had not caught up after {} ms)",
                report.waited_ms
            )
        }
    );
    s
}
