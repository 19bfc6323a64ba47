//! The processor on its production path: the invocation body as Pipes sends it, read by
//! the Lambda's body reader, then `process_batch`. And the items it stores.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use inventory_domain::{BatchResponse, PipeRecord};
use inventory_processor::{BatchReport, Processor};
use serde_json::Value;

/// What an EventBridge Pipe with a Kinesis source sends a Lambda (the shape AWS documents).
const PIPES_FIXTURE: &str = include_str!("../../processor/tests/fixtures/pipes-kinesis-batch.json");

/// Delivers a batch as a Pipe does: serialised to the JSON Pipes sends (checked against the
/// fixture's shape), read by the Lambda's body reader, processed, and the response through
/// JSON and back, so both wire shapes are what the Lambda sees and sends.
pub async fn deliver(processor: &Processor, batch: &[PipeRecord]) -> BatchReport {
    let wire = serde_json::to_vec(batch).unwrap();
    assert_pipes_shape(&wire);
    let read = inventory_processor::body::read_body(wire).expect("a Pipes batch");
    assert_eq!(
        read.to_records(),
        batch,
        "the body reader reads what was sent"
    );
    let report = processor.process_batch(&read).await;
    let response: BatchResponse =
        serde_json::from_str(&serde_json::to_string(&report.response).unwrap()).unwrap();
    assert_eq!(response, report.response);
    report
}

/// Panics unless `wire` is a top-level JSON array of flat records with exactly the
/// fixture's fields, each of the fixture's JSON type (a string, or a number for the
/// arrival time): no `Records` wrapper, no nested `kinesis` object, nothing missing.
pub fn assert_pipes_shape(wire: &[u8]) {
    let fixture: Value = serde_json::from_str(PIPES_FIXTURE).unwrap();
    let model = fixture[0].as_object().expect("the fixture's first record");
    let shape_of = |record: &serde_json::Map<String, Value>| -> BTreeMap<String, &'static str> {
        record
            .iter()
            .map(|(k, v)| (k.clone(), json_type(v)))
            .collect()
    };
    let want = shape_of(model);
    let sent: Value = serde_json::from_slice(wire).expect("the payload is JSON");
    let records = sent.as_array().unwrap_or_else(|| {
        panic!(
            "Pipes sends a top-level JSON array, not {}",
            json_type(&sent)
        )
    });
    for (i, record) in records.iter().enumerate() {
        let record = record
            .as_object()
            .unwrap_or_else(|| panic!("record {i} is a {}, not an object", json_type(record)));
        assert_eq!(
            shape_of(record),
            want,
            "record {i}'s fields and their JSON types differ from the Pipes fixture's"
        );
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// An event's JSON, as a producer puts it (a product_added has a name).
pub fn event(id: &str, kind: &str, product: &str, quantity: Option<u64>) -> String {
    let mut p = serde_json::json!({"product_id": product, "timestamp": "2023-09-11T12:00:00Z"});
    if let Some(q) = quantity {
        p["quantity"] = q.into();
    }
    if kind == "product_added" {
        p["product_name"] = format!("Product {product}").into();
    }
    serde_json::json!({"event_id": id, "event_type": kind, "product": p}).to_string()
}

pub fn text(item: &HashMap<String, AttributeValue>, name: &str) -> String {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

pub fn number(item: &HashMap<String, AttributeValue>, name: &str) -> u64 {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX)
}

/// (quantity, status, version) of a stored product.
pub fn stock(item: &HashMap<String, AttributeValue>) -> (u64, String, u64) {
    (
        number(item, "quantity"),
        text(item, "status"),
        number(item, "version"),
    )
}

/// The product item without the wall-clock `updated_at`, for comparing two runs.
pub fn state_of(item: &HashMap<String, AttributeValue>) -> HashMap<String, AttributeValue> {
    item.iter()
        .filter(|(k, _)| k.as_str() != "updated_at")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}
