//! infra/template.yaml and the local Pipe runner must describe the same Pipe.

use inventory_local::pipe_settings::PipeSettings;

const TEMPLATE: &str = include_str!("../../infra/template.yaml");

/// The `key: value` lines of the Pipe's `KinesisStreamParameters` block.
fn kinesis_parameters() -> Vec<(String, String)> {
    let mut lines = TEMPLATE
        .lines()
        .skip_while(|l| !l.trim().starts_with("KinesisStreamParameters:"));
    let header = lines
        .next()
        .expect("the template defines KinesisStreamParameters");
    let indent = header.len() - header.trim_start().len();
    lines
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
        .filter(|l| l.len() - l.trim_start().len() == indent + 2)
        .filter_map(|l| l.trim().split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

#[test]
fn the_template_and_the_local_runner_use_the_same_pipe_settings() {
    let in_template = kinesis_parameters();
    let defaults = serde_json::to_value(PipeSettings::default()).unwrap();
    let defaults = defaults.as_object().unwrap();
    for (name, value) in defaults {
        let want = match value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let got = in_template
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone());
        assert_eq!(got.as_deref(), Some(want.as_str()), "{name}");
    }
    // Nothing set in the template that the local runner does not model.
    for (k, _) in &in_template {
        assert!(
            defaults.contains_key(k) || k == "DeadLetterConfig",
            "{k} is in the template but not in PipeSettings"
        );
    }
}

#[test]
fn the_pipe_has_no_filter_and_a_synchronous_target() {
    // A filter would drop non-matching records silently; bad records must reach the
    // processor and be recorded as rejections.
    assert!(!TEMPLATE.contains("FilterCriteria"));
    assert!(TEMPLATE.contains("InvocationType: REQUEST_RESPONSE"));
    let age = kinesis_parameters()
        .into_iter()
        .find(|(k, _)| k == "MaximumRecordAgeInSeconds")
        .map(|(_, v)| v.parse::<u64>().unwrap())
        .unwrap();
    let retention_hours: u64 = TEMPLATE
        .lines()
        .find_map(|l| l.trim().strip_prefix("RetentionPeriodHours:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("the stream sets RetentionPeriodHours");
    // A dead letter names a shard and a sequence range, not the records: the range must
    // still be readable for days after the record age sends it there.
    let margin = 3 * 86_400;
    assert!(
        age + margin <= retention_hours * 3600,
        "records expire into the DLQ after {age} s but the stream keeps them {retention_hours} h: \
         a dead-lettered range must stay readable at least 3 days"
    );
}

/// The template's largest dedup window is the one docs/consistency.md's "Window limits"
/// sizes a cold start for (`MAX_TEMPLATE_WINDOW_SECONDS`).
#[test]
fn the_largest_dedup_window_is_the_one_a_cold_start_is_sized_for() {
    let block: Vec<&str> = TEMPLATE
        .lines()
        .skip_while(|l| l.trim() != "DedupWindowSeconds:")
        .take_while(|l| !l.trim().starts_with("Description:"))
        .collect();
    let max: i64 = block
        .iter()
        .find_map(|l| l.trim().strip_prefix("MaxValue:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("DedupWindowSeconds has a MaxValue");
    assert_eq!(max, inventory_domain::dedup::MAX_TEMPLATE_WINDOW_SECONDS);
}
