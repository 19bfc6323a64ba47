//! Compares what DynamoDB holds with the simulation's expected state. It waits (bounded)
//! until the pipeline has caught up, so lag is never reported as a mismatch.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use chrono::{Days, Utc};
use inventory_domain::{ProductStatus, RejectionReason};
use inventory_store::batch::{batch_get, UNPROCESSED_RETRY};
use inventory_store::items::{product_key, ProductItem};
use inventory_store::{rejections, StoreError, Tables};
use serde::Serialize;

use crate::progress::{Reporter, LINE_EVERY};
use crate::simulation::{Expected, ExpectedProduct, ExpectedStatus};

#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// How long to wait for the pipeline to catch up.
    pub timeout: Duration,
    pub poll_interval: Duration,
    /// Show on stderr how far the pipeline has caught up while waiting (see
    /// [`crate::progress`]). Off by default, so tests and the simulation Lambda stay quiet.
    pub progress: bool,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(120),
            poll_interval: Duration::from_millis(500),
            progress: false,
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

/// One line for people: the verify report's and the simulation verdict's details.
impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mismatch::Product {
                product_id,
                expected,
                stored,
            } => {
                write!(
                    f,
                    "{product_id}: expected {:?} quantity {} version {}, stored ",
                    expected.status, expected.quantity, expected.version
                )?;
                match stored {
                    Some(p) => write!(
                        f,
                        "{:?} quantity {} version {}",
                        p.status, p.quantity, p.version
                    ),
                    None => f.write_str("nothing"),
                }
            }
            Mismatch::Rejections {
                reason,
                expected,
                stored,
            } => write!(
                f,
                "rejections {reason}: expected {expected}, stored {stored}"
            ),
        }
    }
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
    #[error("{0}. Are INVENTORY_TABLE/EVENTS_TABLE and AWS_ENDPOINT_URL right?")]
    Store(#[from] StoreError),
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
    let mut reporter = options.progress.then(|| {
        Reporter::new(
            Some(expected.products.len() as u64),
            "{spinner} [{bar:30}] {msg}",
            LINE_EVERY,
        )
    });
    loop {
        let stored = read_products(db, tables, expected).await?;
        let rejections = read_rejections(db, tables, expected).await?;
        let arrived = Arrived::of(expected, &stored, &rejections);
        let caught_up = arrived.all(expected);
        let out_of_time = started.elapsed() >= options.timeout;
        if let Some(reporter) = &mut reporter {
            let position = arrived.products as u64;
            let text = || arrived.describe(expected, started.elapsed(), options.timeout);
            if caught_up || out_of_time {
                reporter.finish(&text());
            } else {
                reporter.update(position, text);
            }
        }
        if caught_up || out_of_time {
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

/// How much of what is expected has arrived: products at (or past) their expected version,
/// or absent as expected, and rejection reasons counted as often as expected.
struct Arrived {
    products: usize,
    rejection_reasons: usize,
}

impl Arrived {
    fn of(
        expected: &Expected,
        stored: &BTreeMap<String, StoredProduct>,
        rejections: &BTreeMap<RejectionReason, u64>,
    ) -> Self {
        let products = expected
            .products
            .iter()
            .filter(|(id, e)| match stored.get(*id) {
                None => e.status == ExpectedStatus::Absent,
                Some(s) => s.version >= e.version,
            })
            .count();
        let rejection_reasons = expected
            .rejections
            .iter()
            .filter(|(r, n)| rejections.get(*r).copied().unwrap_or(0) >= **n)
            .count();
        Self {
            products,
            rejection_reasons,
        }
    }

    /// Whether everything has arrived: the pipeline has caught up.
    fn all(&self, expected: &Expected) -> bool {
        self.products == expected.products.len()
            && self.rejection_reasons == expected.rejections.len()
    }

    /// What verify waits for and how far it is, for the progress line.
    fn describe(&self, expected: &Expected, waited: Duration, timeout: Duration) -> String {
        let state = if self.all(expected) {
            "the pipeline has caught up"
        } else if waited >= timeout {
            "stopped waiting: the pipeline has not caught up"
        } else {
            "waiting for the pipeline to catch up"
        };
        format!(
            "verify: {state}: {}/{} products at their expected version, {}/{} rejection reasons counted ({:.0} s of {:.0} s)",
            self.products,
            expected.products.len(),
            self.rejection_reasons,
            expected.rejections.len(),
            waited.as_secs_f64(),
            timeout.as_secs_f64()
        )
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

/// The expected products' items, strongly consistent, in batches; keys DynamoDB leaves
/// unprocessed are retried with backoff and jitter ([`UNPROCESSED_RETRY`]).
async fn read_products(
    db: &Client,
    tables: &Tables,
    expected: &Expected,
) -> Result<BTreeMap<String, StoredProduct>, VerifyError> {
    let keys = expected.products.keys().map(|id| product_key(id)).collect();
    let got = batch_get(db, &tables.inventory, keys, true, UNPROCESSED_RETRY).await;
    if let Some((_, e)) = got.failed.into_iter().next() {
        return Err(e.into());
    }
    got.items
        .into_iter()
        .map(|item| {
            let p = ProductItem::from_item(item)?;
            let status = match p.status {
                ProductStatus::Active => ExpectedStatus::Active,
                ProductStatus::Removed => ExpectedStatus::Removed,
            };
            Ok((
                p.product_id,
                StoredProduct {
                    status,
                    quantity: p.quantity,
                    version: p.version,
                },
            ))
        })
        .collect()
}

/// Counts this run's rejections: each day's partition since the run started (and the day
/// before, for records that arrived just before midnight), only the run's partition keys.
async fn read_rejections(
    db: &Client,
    tables: &Tables,
    expected: &Expected,
) -> Result<BTreeMap<RejectionReason, u64>, VerifyError> {
    let mut counts = BTreeMap::new();
    let start = expected.started_at;
    let prefix = format!("{}-", expected.config.run_id);
    let mut day = start.date_naive().pred_opt().unwrap_or(start.date_naive());
    while day <= Utc::now().date_naive() {
        let day_counts =
            rejections::count_by_reason(db, tables, &day.format("%Y-%m-%d").to_string(), &prefix)
                .await?;
        for (reason, n) in day_counts {
            *counts.entry(reason).or_default() += n;
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
    render_products(&mut s, expected, report, max_rows);
    render_totals(&mut s, expected, report);
    render_rejections(&mut s, expected, report);
    render_verdict(&mut s, expected, report);
    s
}

/// The busiest `max_rows` products, each as stored and whether it matches.
fn render_products(s: &mut String, expected: &Expected, report: &VerifyReport, max_rows: usize) {
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
}

/// What the table holds against the model, and the duplicates it ignored.
fn render_totals(s: &mut String, expected: &Expected, report: &VerifyReport) {
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
}

/// Rejections counted by reason, with the expected count where it differs.
fn render_rejections(s: &mut String, expected: &Expected, report: &VerifyReport) {
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
}

/// The mismatches (the first 50) and the verdict line.
fn render_verdict(s: &mut String, expected: &Expected, report: &VerifyReport) {
    for m in report.mismatches.iter().take(50) {
        let _ = writeln!(s, "MISMATCH {m}");
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::to_verdict;
    use crate::simulation::{ProducerConfig, SimConfig, Simulation};

    fn expected() -> Expected {
        let mut sim = Simulation::new(SimConfig {
            products: 3,
            events: 30,
            skew: crate::Skew::Uniform,
            seed: 7,
            run_id: "v".into(),
            faults: crate::FaultRatios::default(),
        })
        .unwrap();
        while sim.next_record().is_some() {}
        assert_eq!(sim.producers(), &ProducerConfig::default());
        sim.expected()
    }

    #[test]
    fn progress_counts_what_has_arrived_and_says_what_it_waits_for() {
        let expected = expected();
        let none = Arrived::of(&expected, &BTreeMap::new(), &BTreeMap::new());
        let absent = expected
            .products
            .values()
            .filter(|e| e.status == ExpectedStatus::Absent)
            .count();
        assert_eq!(none.products, absent);
        assert!(!none.all(&expected));
        let (one, two) = (Duration::from_secs(1), Duration::from_secs(2));
        let text = none.describe(&expected, one, two);
        assert!(
            text.contains("waiting for the pipeline")
                && text.contains(&format!("{absent}/{} products", expected.products.len())),
            "{text}"
        );
        assert!(none
            .describe(&expected, two, two)
            .contains("stopped waiting"));

        let stored = expected
            .products
            .iter()
            .map(|(id, e)| {
                let p = StoredProduct {
                    status: e.status,
                    quantity: e.quantity,
                    version: e.version,
                };
                (id.clone(), p)
            })
            .collect();
        let all = Arrived::of(&expected, &stored, &expected.rejections);
        assert!(all.all(&expected));
        assert!(all.describe(&expected, one, two).contains("has caught up"));
    }

    #[test]
    fn a_mismatch_reads_the_same_in_the_report_and_the_verdict() {
        let expected = expected();
        let (id, e) = expected.products.iter().next().unwrap();
        let stored_wrong = StoredProduct {
            status: ExpectedStatus::Removed,
            quantity: e.quantity + 1,
            version: e.version + 1,
        };
        let stored = BTreeMap::from([(id.clone(), stored_wrong)]);
        let rejections = BTreeMap::from([(RejectionReason::InvalidJson, 2)]);
        let mismatches = compare(&expected, &stored, &rejections);
        let product = mismatches
            .iter()
            .find(|m| matches!(m, Mismatch::Product { product_id, .. } if product_id == id))
            .unwrap();
        assert_eq!(
            product.to_string(),
            format!(
                "{id}: expected {:?} quantity {} version {}, stored Removed quantity {} version {}",
                e.status,
                e.quantity,
                e.version,
                e.quantity + 1,
                e.version + 1
            )
        );
        let missing = mismatches
            .iter()
            .find(|m| matches!(m, Mismatch::Product { product_id, .. } if product_id != id))
            .unwrap();
        assert!(missing.to_string().ends_with("stored nothing"), "{missing}");
        let rejected = Mismatch::Rejections {
            reason: RejectionReason::InvalidJson,
            expected: 0,
            stored: 2,
        };
        assert!(mismatches.contains(&rejected));
        assert_eq!(
            rejected.to_string(),
            "rejections invalid_json: expected 0, stored 2"
        );

        let report = VerifyReport {
            caught_up: true,
            waited_ms: 0,
            mismatches,
            stored,
            rejections,
        };
        let text = render(&expected, &report, 10);
        let verdict = to_verdict(&expected, &report);
        assert_eq!(verdict.details.len(), report.mismatches.len());
        for (m, detail) in report.mismatches.iter().zip(&verdict.details) {
            assert_eq!(detail, &m.to_string());
            assert!(text.contains(&format!("MISMATCH {m}\n")), "{text}");
        }
    }
}
