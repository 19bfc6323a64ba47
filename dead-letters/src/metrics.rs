//! The consumer's one CloudWatch metric, [`NOT_ARCHIVED`]: how many dead-letter messages of
//! a queue invocation it could not archive on this attempt. Each is a batch item failure,
//! which SQS retries and then parks, so the function's `Errors` metric never sees it;
//! infra/template.yaml's `DeadLetterNotArchivedAlarm` fires on any non-zero sum.
//!
//! Written in Embedded Metric Format (EMF): one JSON line on stdout that CloudWatch Logs turns
//! into the metric, with no API call in the handler's path. Same namespace and `Stage`
//! dimension as the processor's metrics (processor/src/metrics.rs). Built with `serde_json`
//! rather than `metrics_cloudwatch_embedded`, whose process-global recorder would flush
//! whatever any consumer in the process recorded since the last flush.

use aws_lambda_events::sqs::SqsBatchResponse;
use serde_json::{json, Value};

/// The CloudWatch namespace of the pipeline's own metrics.
pub const NAMESPACE: &str = "InventoryPipeline";
/// Dead-letter messages the consumer could not archive (and left in the queue to retry).
pub const NOT_ARCHIVED: &str = "DeadLettersNotArchived";
/// The environment variable naming the deployment stage, the `Stage` dimension when set.
pub const STAGE_VAR: &str = "STAGE";

const STAGE: &str = "Stage";

/// The messages not archived on this attempt: those the response hands back to the queue.
pub fn not_archived(response: &SqsBatchResponse) -> u64 {
    response.batch_item_failures.len() as u64
}

/// The EMF document counting `not_archived` messages, dimensioned by `stage` when set and
/// not blank (the alarm reads the metric with `Stage`; without it the metric has no
/// dimensions). A count of 0 is written too: a queue invocation that archived everything
/// reports so.
pub fn not_archived_document(not_archived: u64, stage: Option<&str>, timestamp_ms: i64) -> Value {
    let stage = stage.filter(|s| !s.trim().is_empty());
    let dimensions: Vec<&str> = stage.iter().map(|_| STAGE).collect();
    let mut document = json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dimensions],
                "Metrics": [{"Name": NOT_ARCHIVED, "Unit": "Count"}],
            }],
        },
        NOT_ARCHIVED: not_archived,
    });
    if let Some(stage) = stage {
        document[STAGE] = json!(stage);
    }
    document
}

/// The queue invocation's metric as one line of JSON, as CloudWatch Logs expects an EMF
/// log event.
pub fn not_archived_line(
    response: &SqsBatchResponse,
    stage: Option<&str>,
    timestamp_ms: i64,
) -> String {
    not_archived_document(not_archived(response), stage, timestamp_ms).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response_failing(ids: &[&str]) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        for id in ids {
            response.add_failure(*id);
        }
        response
    }

    fn parsed(line: &str) -> Value {
        assert!(!line.contains('\n'), "an EMF log event is one line: {line}");
        serde_json::from_str(line).expect("an EMF line is JSON")
    }

    #[test]
    fn messages_not_archived_are_counted_under_the_stage() {
        let line = not_archived_line(
            &response_failing(&["m1", "m3"]),
            Some("prod"),
            1_764_072_000_123,
        );
        let doc = parsed(&line);
        assert_eq!(
            doc["_aws"],
            json!({
                "Timestamp": 1_764_072_000_123_i64,
                "CloudWatchMetrics": [{
                    "Namespace": "InventoryPipeline",
                    "Dimensions": [["Stage"]],
                    "Metrics": [{"Name": "DeadLettersNotArchived", "Unit": "Count"}],
                }],
            })
        );
        assert_eq!(doc["DeadLettersNotArchived"], json!(2));
        assert_eq!(doc["Stage"], json!("prod"));
    }

    #[test]
    fn an_invocation_that_archived_everything_counts_zero() {
        let doc = parsed(&not_archived_line(
            &SqsBatchResponse::default(),
            Some("dev"),
            1,
        ));
        assert_eq!(doc["DeadLettersNotArchived"], json!(0));
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"],
            json!(NOT_ARCHIVED)
        );
    }

    #[test]
    fn without_a_stage_the_metric_has_no_dimensions() {
        for stage in [None, Some(""), Some("  ")] {
            let doc = parsed(&not_archived_line(&response_failing(&["m1"]), stage, 1));
            assert_eq!(
                doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
                json!([[]])
            );
            assert!(doc.get("Stage").is_none(), "{stage:?}: {doc}");
            assert_eq!(doc["DeadLettersNotArchived"], json!(1));
        }
    }
}
