//! The processor's CloudWatch metrics, in Embedded Metric Format (EMF): JSON lines on stdout
//! that CloudWatch Logs turns into metrics, with no API call in the invocation's path.
//! infra/template.yaml's dashboard finds them by SEARCH in [`NAMESPACE`].
//!
//! Built here with serde from typed structs rather than with `metrics_cloudwatch_embedded`:
//! that crate needs the `metrics` facade's process-global recorder, which sums every
//! `Processor` in the process (tests, the local Pipe runner) and flushes whatever was
//! recorded since the last flush, so a batch's document would not be a function of that
//! batch's [`BatchReport`]. The document is small and fixed by AWS's EMF specification.

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;

use crate::BatchReport;

/// The CloudWatch namespace the dashboard searches.
pub const NAMESPACE: &str = "InventoryPipeline";
/// The environment variable naming the deployment stage, the `Stage` dimension when set.
pub const STAGE_VAR: &str = "STAGE";

pub const EVENTS_APPLIED: &str = "EventsApplied";
pub const DUPLICATES: &str = "Duplicates";
pub const REJECTIONS: &str = "Rejections";
pub const LAG_MS: &str = "LagMs";
pub const PRODUCT_WRITES: &str = "ProductWrites";

const STAGE: &str = "Stage";
const REASON: &str = "Reason";

/// One EMF document: the `_aws` metadata plus, flattened beside it, the dimension values and
/// the metric values (EMF reads both from the document's top level).
#[derive(Debug, Serialize)]
pub struct EmfDocument {
    #[serde(rename = "_aws")]
    aws: EmfMetadata,
    #[serde(flatten)]
    dimensions: BTreeMap<&'static str, String>,
    #[serde(flatten)]
    values: BTreeMap<&'static str, u64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct EmfMetadata {
    /// Milliseconds since the Unix epoch.
    timestamp: i64,
    #[serde(rename = "CloudWatchMetrics")]
    directives: [MetricDirective; 1],
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct MetricDirective {
    namespace: &'static str,
    /// One dimension set: every metric of the document is reported under all its dimensions.
    dimensions: [Vec<&'static str>; 1],
    metrics: Vec<MetricDefinition>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct MetricDefinition {
    name: &'static str,
    unit: &'static str,
}

impl EmfDocument {
    fn new(timestamp_ms: i64, stage: Option<&str>) -> Self {
        let mut dimensions = BTreeMap::new();
        if let Some(stage) = stage.filter(|s| !s.is_empty()) {
            dimensions.insert(STAGE, stage.to_owned());
        }
        Self {
            aws: EmfMetadata {
                timestamp: timestamp_ms,
                directives: [MetricDirective {
                    namespace: NAMESPACE,
                    dimensions: [dimensions.keys().copied().collect()],
                    metrics: Vec::new(),
                }],
            },
            dimensions,
            values: BTreeMap::new(),
        }
    }

    fn dimension(mut self, name: &'static str, value: &str) -> Self {
        self.dimensions.insert(name, value.to_owned());
        self.aws.directives[0].dimensions[0] = self.dimensions.keys().copied().collect();
        self
    }

    fn metric(mut self, name: &'static str, unit: &'static str, value: u64) -> Self {
        self.aws.directives[0]
            .metrics
            .push(MetricDefinition { name, unit });
        self.values.insert(name, value);
        self
    }

    /// The document as one line of JSON, as CloudWatch Logs expects an EMF log event.
    pub fn to_line(&self) -> String {
        // Only strings, integers and maps with string keys: serialisation cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The batch's metrics as EMF documents: one with the batch's counts (and its lag, when it
/// had records), then one per rejection reason seen, since a document carries a single
/// value per dimension and `Rejections` is split by `Reason`. `stage` (from [`STAGE_VAR`])
/// becomes the `Stage` dimension of every document when set.
pub fn emf_documents(
    report: &BatchReport,
    stage: Option<&str>,
    timestamp_ms: i64,
) -> Vec<EmfDocument> {
    let mut batch = EmfDocument::new(timestamp_ms, stage)
        .metric(EVENTS_APPLIED, "Count", report.applied)
        .metric(
            DUPLICATES,
            "Count",
            report.redeliveries + report.producer_duplicates,
        )
        .metric(PRODUCT_WRITES, "Count", report.product_write_requests);
    if let Some(lag) = report.lag_ms {
        batch = batch.metric(LAG_MS, "Milliseconds", lag);
    }
    let mut documents = vec![batch];
    documents.extend(report.rejected.iter().filter(|(_, count)| **count > 0).map(
        |(reason, count)| {
            EmfDocument::new(timestamp_ms, stage)
                .dimension(REASON, reason.as_str())
                .metric(REJECTIONS, "Count", *count)
        },
    ));
    documents
}

/// Writes the batch's documents (see [`emf_documents`]), one line each, through one writer,
/// so that with a locked stdout no log line lands inside a document.
pub fn write_emf(
    out: &mut impl Write,
    report: &BatchReport,
    stage: Option<&str>,
    timestamp_ms: i64,
) -> std::io::Result<()> {
    for doc in emf_documents(report, stage, timestamp_ms) {
        writeln!(out, "{}", doc.to_line())?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use inventory_domain::RejectionReason;
    use serde_json::{json, Value};

    use super::*;

    fn report() -> BatchReport {
        BatchReport {
            records: 12,
            applied: 7,
            redeliveries: 2,
            producer_duplicates: 1,
            rejected: [
                (RejectionReason::InsufficientStock, 2),
                (RejectionReason::InvalidJson, 1),
            ]
            .into_iter()
            .collect(),
            product_write_requests: 5,
            lag_ms: Some(840),
            ..BatchReport::default()
        }
    }

    fn parsed(doc: &EmfDocument) -> Value {
        serde_json::from_str(&doc.to_line()).expect("an EMF document is JSON")
    }

    /// Each metric the directive declares, with its unit and its top-level value.
    fn metrics_of(doc: &Value) -> BTreeMap<String, (String, Value)> {
        doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .expect("Metrics is an array")
            .iter()
            .map(|m| {
                let name = m["Name"].as_str().expect("a metric has a name").to_owned();
                let unit = m["Unit"].as_str().expect("a metric has a unit").to_owned();
                let value = doc[&name].clone();
                (name, (unit, value))
            })
            .collect()
    }

    #[test]
    fn the_batch_document_carries_each_count_with_its_unit() {
        let docs = emf_documents(&report(), Some("prod"), 1_764_072_000_123);
        let batch = parsed(&docs[0]);
        assert_eq!(batch["_aws"]["Timestamp"], json!(1_764_072_000_123_i64));
        assert_eq!(
            batch["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            json!("InventoryPipeline")
        );
        assert_eq!(
            batch["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Stage"]])
        );
        assert_eq!(batch["Stage"], json!("prod"));
        let metrics = metrics_of(&batch);
        assert_eq!(
            metrics,
            [
                ("EventsApplied", ("Count", json!(7))),
                ("Duplicates", ("Count", json!(3))),
                ("ProductWrites", ("Count", json!(5))),
                ("LagMs", ("Milliseconds", json!(840))),
            ]
            .into_iter()
            .map(|(n, (u, v))| (n.to_owned(), (u.to_owned(), v)))
            .collect()
        );
        assert!(batch.get("Rejections").is_none());
    }

    #[test]
    fn rejections_get_one_document_per_reason() {
        let docs = emf_documents(&report(), Some("prod"), 1);
        let rejections: Vec<Value> = docs[1..].iter().map(parsed).collect();
        assert_eq!(rejections.len(), 2);
        let mut seen = BTreeMap::new();
        for doc in &rejections {
            assert_eq!(
                doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
                json!([["Reason", "Stage"]])
            );
            assert_eq!(doc["Stage"], json!("prod"));
            let metrics = metrics_of(doc);
            assert_eq!(metrics.len(), 1, "only Rejections in {doc}");
            let (unit, value) = &metrics["Rejections"];
            assert_eq!(unit, "Count");
            seen.insert(
                doc["Reason"].as_str().unwrap_or_default().to_owned(),
                value.clone(),
            );
        }
        assert_eq!(
            seen,
            [
                ("insufficient_stock".to_owned(), json!(2)),
                ("invalid_json".to_owned(), json!(1)),
            ]
            .into_iter()
            .collect()
        );
    }

    #[test]
    fn without_a_stage_the_documents_have_an_empty_dimension_set() {
        let docs = emf_documents(&report(), None, 1);
        let batch = parsed(&docs[0]);
        assert_eq!(
            batch["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([[]])
        );
        assert!(batch.get("Stage").is_none());
        let rejection = parsed(&docs[1]);
        assert_eq!(
            rejection["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Reason"]])
        );
    }

    #[test]
    fn write_emf_writes_one_json_line_per_document() {
        let mut out = Vec::new();
        write_emf(&mut out, &report(), None, 1).expect("writing to a Vec cannot fail");
        let text = String::from_utf8(out).expect("JSON is UTF-8");
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is one JSON document"))
            .collect();
        assert_eq!(lines.len(), 1 + report().rejected.len());
        assert!(lines
            .iter()
            .all(|l| l["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "InventoryPipeline"));
    }

    #[test]
    fn an_empty_batch_reports_zero_counts_and_no_lag() {
        let docs = emf_documents(&BatchReport::default(), Some("dev"), 1);
        assert_eq!(docs.len(), 1, "no rejections, no rejection documents");
        let metrics = metrics_of(&parsed(&docs[0]));
        assert_eq!(metrics["EventsApplied"].1, json!(0));
        assert!(!metrics.contains_key("LagMs"));
    }
}
