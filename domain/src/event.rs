//! The event contract (docs/events.md, docs/event.schema.json): decoding a Kinesis
//! record's payload into a validated [`InventoryEvent`], or a [`Rejection`] that says why not.

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Largest accepted payload (decoded bytes). An inventory event is a few hundred bytes; the
/// cap keeps a hostile 1 MB record from costing more than a check of its length.
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024;
/// Largest quantity an event may carry.
pub const MAX_EVENT_QUANTITY: u64 = 1_000_000_000;
/// Stock never exceeds 2^53 - 1, so it stays exact in JSON numbers and JavaScript.
pub const MAX_STOCK: u64 = (1 << 53) - 1;
pub const MAX_PRODUCT_ID_LEN: usize = 64;
pub const MAX_PRODUCT_NAME_LEN: usize = 200;
pub const MAX_EVENT_ID_LEN: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    ProductAdded,
    ProductRemoved,
    QuantityIncreased,
    QuantityDecreased,
}

impl EventType {
    pub const ALL: [EventType; 4] = [
        EventType::ProductAdded,
        EventType::ProductRemoved,
        EventType::QuantityIncreased,
        EventType::QuantityDecreased,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::ProductAdded => "product_added",
            EventType::ProductRemoved => "product_removed",
            EventType::QuantityIncreased => "quantity_increased",
            EventType::QuantityDecreased => "quantity_decreased",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == raw)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an event does to one product, with the validated amount or starting stock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    Added { name: String, quantity: u64 },
    Removed,
    Increased(u64),
    Decreased(u64),
}

impl Change {
    pub fn event_type(&self) -> EventType {
        match self {
            Change::Added { .. } => EventType::ProductAdded,
            Change::Removed => EventType::ProductRemoved,
            Change::Increased(_) => EventType::QuantityIncreased,
            Change::Decreased(_) => EventType::QuantityDecreased,
        }
    }
}

/// A validated event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryEvent {
    /// The producer's id, or `None` when the producer did not set one (the record identity
    /// then stands in; see [`InventoryEvent::dedup_key`]).
    pub event_id: Option<String>,
    pub product_id: String,
    pub change: Change,
    /// The producer's `product.timestamp`, in UTC. Its text, [`crate::rfc3339::to_auto`], is
    /// what [`crate::dedup::content_hash`] hashes and what a product and its history store.
    pub timestamp: DateTime<Utc>,
}

impl InventoryEvent {
    /// The identity used to recognise a producer's duplicate publish.
    pub fn dedup_key<'a>(&'a self, record_identity: &'a str) -> &'a str {
        self.event_id.as_deref().unwrap_or(record_identity)
    }
}

/// Why a record was not applied. The wire names are stable: they are stored with each
/// rejection and counted by the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectionReason {
    InvalidBase64,
    PayloadTooLarge,
    InvalidJson,
    SchemaViolation,
    UnknownEventType,
    AlreadyExists,
    ProductNotFound,
    InsufficientStock,
    StockLimitExceeded,
    /// A new record carries an `event_id` already processed for this product with other
    /// content: the producer reused an id (a bug), so neither event may be dropped unseen.
    EventIdReused,
    /// The record is on a shard whose hash-key range does not hold its product's partition
    /// key (put with `ExplicitHashKey`): outside the product's shard lineage.
    WrongShard,
    /// The record comes from a stream created before the one its product follows (a stream
    /// deleted and created again, or a second stream feeding the same tables).
    OlderStream,
}

impl RejectionReason {
    pub const ALL: [RejectionReason; 12] = [
        RejectionReason::InvalidBase64,
        RejectionReason::PayloadTooLarge,
        RejectionReason::InvalidJson,
        RejectionReason::SchemaViolation,
        RejectionReason::UnknownEventType,
        RejectionReason::AlreadyExists,
        RejectionReason::ProductNotFound,
        RejectionReason::InsufficientStock,
        RejectionReason::StockLimitExceeded,
        RejectionReason::EventIdReused,
        RejectionReason::WrongShard,
        RejectionReason::OlderStream,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectionReason::InvalidBase64 => "invalid_base64",
            RejectionReason::PayloadTooLarge => "payload_too_large",
            RejectionReason::InvalidJson => "invalid_json",
            RejectionReason::SchemaViolation => "schema_violation",
            RejectionReason::UnknownEventType => "unknown_event_type",
            RejectionReason::AlreadyExists => "already_exists",
            RejectionReason::ProductNotFound => "product_not_found",
            RejectionReason::InsufficientStock => "insufficient_stock",
            RejectionReason::StockLimitExceeded => "stock_limit_exceeded",
            RejectionReason::EventIdReused => "event_id_reused",
            RejectionReason::WrongShard => "wrong_shard",
            RejectionReason::OlderStream => "older_stream",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == raw)
    }

    /// Malformed input, as opposed to a valid event the product's state refuses.
    pub fn is_malformed(self) -> bool {
        matches!(
            self,
            RejectionReason::InvalidBase64
                | RejectionReason::PayloadTooLarge
                | RejectionReason::InvalidJson
                | RejectionReason::SchemaViolation
                | RejectionReason::UnknownEventType
        )
    }
}

impl fmt::Display for RejectionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reason plus a human-readable detail (for schema violations, the field and the rule).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    pub reason: RejectionReason,
    pub detail: String,
}

impl Rejection {
    pub fn new(reason: RejectionReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }

    fn schema(field: &str, rule: &str) -> Self {
        Self::new(RejectionReason::SchemaViolation, format!("{field}: {rule}"))
    }
}

/// Decodes a Kinesis record's base64 `data` and validates the event in it.
pub fn decode_record_data(data_base64: &str) -> Result<InventoryEvent, Rejection> {
    decode_record_data_with(data_base64, &mut Vec::new())
}

/// [`decode_record_data`] decoding into `scratch` (cleared first), so a caller decoding a
/// batch reuses one buffer instead of allocating one per record.
pub fn decode_record_data_with(
    data_base64: &str,
    scratch: &mut Vec<u8>,
) -> Result<InventoryEvent, Rejection> {
    // Checked before decoding so an oversized record costs nothing more than its length.
    if data_base64.len() > MAX_PAYLOAD_BYTES.div_ceil(3) * 4 {
        return Err(Rejection::new(
            RejectionReason::PayloadTooLarge,
            format!(
                "payload is about {} bytes; the limit is {MAX_PAYLOAD_BYTES}",
                data_base64.len() / 4 * 3
            ),
        ));
    }
    scratch.clear();
    // base64-simd decodes exactly what the base64 crate's STANDARD engine does (padded,
    // canonical trailing bits; proptest below) a few times faster; only a record it refuses
    // is decoded again by the base64 crate, for an error that says where it went wrong.
    if base64_simd::STANDARD
        .decode_append(data_base64, scratch)
        .is_err()
    {
        let detail = match base64::engine::general_purpose::STANDARD.decode(data_base64) {
            Err(e) => e.to_string(),
            Ok(_) => "not standard padded base64".to_owned(),
        };
        return Err(Rejection::new(RejectionReason::InvalidBase64, detail));
    }
    parse_event(scratch)
}

#[derive(Deserialize)]
struct WireEvent<'a> {
    #[serde(borrow, default)]
    event_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    event_type: Cow<'a, str>,
    #[serde(borrow)]
    product: WireProduct<'a>,
}

#[derive(Deserialize)]
struct WireProduct<'a> {
    #[serde(borrow)]
    product_id: Cow<'a, str>,
    #[serde(borrow, default)]
    product_name: Option<Cow<'a, str>>,
    #[serde(default)]
    quantity: Option<u64>,
    #[serde(borrow)]
    timestamp: Cow<'a, str>,
}

/// Parses and validates an event payload (decoded bytes).
pub fn parse_event(bytes: &[u8]) -> Result<InventoryEvent, Rejection> {
    if bytes.len() > MAX_PAYLOAD_BYTES {
        return Err(Rejection::new(
            RejectionReason::PayloadTooLarge,
            format!(
                "payload is {} bytes; the limit is {MAX_PAYLOAD_BYTES}",
                bytes.len()
            ),
        ));
    }
    match serde_json::from_slice::<WireEvent<'_>>(bytes) {
        Ok(wire) => validate(wire),
        // The typed parse is the fast path; only a failing record pays for finding out why.
        Err(_) => Err(diagnose(bytes)),
    }
}

fn validate(wire: WireEvent<'_>) -> Result<InventoryEvent, Rejection> {
    let event_type =
        EventType::parse(&wire.event_type).ok_or_else(|| unknown_type(&wire.event_type))?;
    let event_id = match wire.event_id {
        None => None,
        Some(id) => {
            if id.is_empty() || id.chars().count() > MAX_EVENT_ID_LEN {
                return Err(Rejection::schema(
                    "event_id",
                    "must be 1 to 128 characters when present",
                ));
            }
            Some(id.into_owned())
        }
    };
    let p = wire.product;
    if !is_valid_product_id(&p.product_id) {
        return Err(Rejection::schema(
            "product.product_id",
            "must be 1 to 64 characters of A-Z, a-z, 0-9, '_' or '-'",
        ));
    }
    let timestamp = DateTime::parse_from_rfc3339(&p.timestamp)
        .map_err(|_| Rejection::schema("product.timestamp", "must be an RFC 3339 date-time"))?
        .with_timezone(&Utc);
    let change = match event_type {
        EventType::ProductAdded => {
            let name = p.product_name.ok_or_else(|| {
                Rejection::schema("product.product_name", "is required for product_added")
            })?;
            let len = name.chars().count();
            if len == 0 || len > MAX_PRODUCT_NAME_LEN || name.chars().any(char::is_control) {
                return Err(Rejection::schema(
                    "product.product_name",
                    "must be 1 to 200 characters without control characters",
                ));
            }
            let quantity = p.quantity.ok_or_else(|| {
                Rejection::schema("product.quantity", "is required for product_added")
            })?;
            check_max(quantity)?;
            Change::Added {
                name: name.into_owned(),
                quantity,
            }
        }
        EventType::ProductRemoved => Change::Removed,
        EventType::QuantityIncreased | EventType::QuantityDecreased => {
            let amount = p.quantity.ok_or_else(|| {
                Rejection::schema("product.quantity", "is required for quantity changes")
            })?;
            if amount == 0 {
                return Err(Rejection::schema(
                    "product.quantity",
                    "must be greater than 0 for quantity changes",
                ));
            }
            check_max(amount)?;
            if event_type == EventType::QuantityIncreased {
                Change::Increased(amount)
            } else {
                Change::Decreased(amount)
            }
        }
    };
    Ok(InventoryEvent {
        event_id,
        product_id: p.product_id.into_owned(),
        change,
        timestamp,
    })
}

fn check_max(quantity: u64) -> Result<(), Rejection> {
    if quantity > MAX_EVENT_QUANTITY {
        return Err(Rejection::schema(
            "product.quantity",
            "must be at most 1000000000",
        ));
    }
    Ok(())
}

fn unknown_type(raw: &str) -> Rejection {
    let shown: String = raw.chars().take(64).collect();
    Rejection::new(
        RejectionReason::UnknownEventType,
        format!(
            "event_type `{shown}` is not one of product_added, product_removed, quantity_increased, quantity_decreased"
        ),
    )
}

pub fn is_valid_product_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_PRODUCT_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Slow path for a payload the typed parse refused: name the first thing wrong with it.
fn diagnose(bytes: &[u8]) -> Rejection {
    use serde_json::Value;
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            let detail = if std::str::from_utf8(bytes).is_err() {
                "payload is not UTF-8 text".to_owned()
            } else {
                format!("payload is not JSON: {e}")
            };
            return Rejection::new(RejectionReason::InvalidJson, detail);
        }
    };
    let Some(obj) = value.as_object() else {
        return Rejection::schema("$", "the event must be a JSON object");
    };
    match obj.get("event_type") {
        None => return Rejection::schema("event_type", "is required"),
        Some(Value::String(s)) if EventType::parse(s).is_none() => return unknown_type(s),
        Some(Value::String(_)) => {}
        Some(_) => return Rejection::schema("event_type", "must be a string"),
    }
    match obj.get("event_id") {
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(_) => return Rejection::schema("event_id", "must be a string"),
    }
    let Some(product) = obj.get("product") else {
        return Rejection::schema("product", "is required");
    };
    let Some(product) = product.as_object() else {
        return Rejection::schema("product", "must be an object");
    };
    for (field, rule) in [
        ("product_id", "must be a string"),
        ("timestamp", "must be an RFC 3339 date-time string"),
    ] {
        match product.get(field) {
            None => return Rejection::schema(&format!("product.{field}"), "is required"),
            Some(Value::String(_)) => {}
            Some(_) => return Rejection::schema(&format!("product.{field}"), rule),
        }
    }
    match product.get("product_name") {
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(_) => return Rejection::schema("product.product_name", "must be a string"),
    }
    match product.get("quantity") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) if n.is_u64() => {}
        Some(_) => {
            return Rejection::schema(
                "product.quantity",
                "must be a whole number from 0 to 1000000000",
            )
        }
    }
    Rejection::schema("$", "the event does not match the schema")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rfc3339::to_auto;

    fn b64(s: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn reason_of(payload: &str) -> RejectionReason {
        parse_event(payload.as_bytes()).unwrap_err().reason
    }

    const SAMPLE: &str = r#"{"event_id": "01J8ZQ", "event_type": "product_added",
        "product": {"product_id": "P98765", "product_name": "Laptop", "quantity": 10,
                    "timestamp": "2023-09-11T12:00:00Z"}}"#;

    #[test]
    fn the_briefs_sample_event_is_valid() {
        let ev = parse_event(SAMPLE.as_bytes()).unwrap();
        assert_eq!(ev.product_id, "P98765");
        assert_eq!(ev.event_id.as_deref(), Some("01J8ZQ"));
        assert_eq!(
            ev.change,
            Change::Added {
                name: "Laptop".into(),
                quantity: 10
            }
        );
        assert_eq!(to_auto(&ev.timestamp), "2023-09-11T12:00:00Z");
    }

    #[test]
    fn event_id_is_optional() {
        let ev = parse_event(
            br#"{"event_type":"product_removed","product":{"product_id":"A","timestamp":"2023-09-11T12:00:00+02:00"}}"#,
        )
        .unwrap();
        assert_eq!(ev.event_id, None);
        assert_eq!(ev.change, Change::Removed);
        assert_eq!(
            to_auto(&ev.timestamp),
            "2023-09-11T10:00:00Z",
            "normalised to UTC"
        );
        assert_eq!(ev.dedup_key("shardId-0:42"), "shardId-0:42");
    }

    #[test]
    fn removal_ignores_quantity_and_name() {
        let ev = parse_event(br#"{"event_type":"product_removed","product":{"product_id":"A","product_name":"x","quantity":5,"timestamp":"2023-09-11T12:00:00Z"}}"#).unwrap();
        assert_eq!(ev.change, Change::Removed);
    }

    #[test]
    fn malformed_payloads_get_their_reasons() {
        assert_eq!(reason_of("{not json"), RejectionReason::InvalidJson);
        assert_eq!(reason_of("[]"), RejectionReason::SchemaViolation);
        assert_eq!(
            reason_of(r#"{"event_type":"product_sold","product":{}}"#),
            RejectionReason::UnknownEventType
        );
        let r = parse_event(br#"{"event_type":"quantity_increased","product":{"product_id":"A","quantity":"5","timestamp":"2023-09-11T12:00:00Z"}}"#).unwrap_err();
        assert_eq!(r.reason, RejectionReason::SchemaViolation);
        assert!(r.detail.starts_with("product.quantity"), "{}", r.detail);
    }

    #[test]
    fn quantities_must_be_whole_bounded_and_positive_for_changes() {
        for q in ["-1", "1.5", "1e3", "1000000001", "18446744073709551616"] {
            let p = format!(
                r#"{{"event_type":"quantity_decreased","product":{{"product_id":"A","quantity":{q},"timestamp":"2023-09-11T12:00:00Z"}}}}"#
            );
            let r = parse_event(p.as_bytes()).unwrap_err();
            assert_eq!(r.reason, RejectionReason::SchemaViolation, "{q}");
            assert!(
                r.detail.starts_with("product.quantity"),
                "{q}: {}",
                r.detail
            );
        }
        let zero = r#"{"event_type":"quantity_increased","product":{"product_id":"A","quantity":0,"timestamp":"2023-09-11T12:00:00Z"}}"#;
        assert_eq!(reason_of(zero), RejectionReason::SchemaViolation);
        let add_zero = r#"{"event_type":"product_added","product":{"product_id":"A","product_name":"n","quantity":0,"timestamp":"2023-09-11T12:00:00Z"}}"#;
        assert!(
            parse_event(add_zero.as_bytes()).is_ok(),
            "an add may start at 0"
        );
    }

    #[test]
    fn product_ids_and_names_are_checked() {
        for id in ["", "has space", "ü", &"x".repeat(65), "a/b"] {
            let p = serde_json::json!({"event_type":"product_removed","product":{"product_id":id,"timestamp":"2023-09-11T12:00:00Z"}});
            let r = parse_event(p.to_string().as_bytes()).unwrap_err();
            assert_eq!(
                r.detail.split(':').next(),
                Some("product.product_id"),
                "{id}"
            );
        }
        let p = serde_json::json!({"event_type":"product_added","product":{"product_id":"A","quantity":1,"timestamp":"2023-09-11T12:00:00Z"}});
        let r = parse_event(p.to_string().as_bytes()).unwrap_err();
        assert!(r.detail.starts_with("product.product_name"));
    }

    #[test]
    fn timestamps_are_normalised_to_utc_with_autosi_fractions() {
        for (raw, want) in [
            ("2023-09-11T12:00:00Z", "2023-09-11T12:00:00Z"),
            ("2023-09-11T12:00:00.120Z", "2023-09-11T12:00:00.120Z"),
            ("2023-09-11T12:00:00.000Z", "2023-09-11T12:00:00Z"),
            ("2023-09-11T12:00:00.1Z", "2023-09-11T12:00:00.100Z"),
            ("2023-09-11T12:00:00.120000Z", "2023-09-11T12:00:00.120Z"),
            ("2023-09-11T12:00:00.123456Z", "2023-09-11T12:00:00.123456Z"),
            (
                "2023-09-11T12:00:00.123456789Z",
                "2023-09-11T12:00:00.123456789Z",
            ),
            (
                "2023-09-11T12:00:00.1234567891Z",
                "2023-09-11T12:00:00.123456789Z",
            ),
            ("2023-09-11t12:00:00z", "2023-09-11T12:00:00Z"),
            ("2023-09-11 12:00:00Z", "2023-09-11T12:00:00Z"),
            ("2023-09-11T12:00:00+00:00", "2023-09-11T12:00:00Z"),
            ("2023-09-11T12:00:00-00:00", "2023-09-11T12:00:00Z"),
            ("2023-09-11T14:00:00.5+02:00", "2023-09-11T12:00:00.500Z"),
            ("2016-12-31T23:59:60Z", "2016-12-31T23:59:60Z"),
        ] {
            let p = format!(
                r#"{{"event_type":"product_removed","product":{{"product_id":"A","timestamp":"{raw}"}}}}"#
            );
            let got = parse_event(p.as_bytes()).map(|e| to_auto(&e.timestamp));
            assert_eq!(got.as_deref().ok(), Some(want), "{raw}");
        }
    }

    #[test]
    fn timestamp_must_be_rfc3339() {
        let p = r#"{"event_type":"product_removed","product":{"product_id":"A","timestamp":"yesterday"}}"#;
        let r = parse_event(p.as_bytes()).unwrap_err();
        assert!(r.detail.starts_with("product.timestamp"));
    }

    #[test]
    fn hostile_inputs_are_rejected_not_panics() {
        assert_eq!(
            parse_event(&[0xff, 0xfe, b'{']).unwrap_err().reason,
            RejectionReason::InvalidJson
        );
        let deep = "[".repeat(10_000);
        assert_eq!(reason_of(&deep), RejectionReason::InvalidJson);
        let big = vec![b' '; MAX_PAYLOAD_BYTES + 1];
        assert_eq!(
            parse_event(&big).unwrap_err().reason,
            RejectionReason::PayloadTooLarge
        );
        assert_eq!(
            decode_record_data(&b64(&vec![b'a'; 1 << 20]))
                .unwrap_err()
                .reason,
            RejectionReason::PayloadTooLarge
        );
        assert_eq!(
            decode_record_data("not base64!").unwrap_err().reason,
            RejectionReason::InvalidBase64
        );
    }

    #[test]
    fn decodes_the_shared_pipes_fixture_payload() {
        let data = "eyJldmVudF90eXBlIjoicHJvZHVjdF9hZGRlZCIsInByb2R1Y3QiOnsicHJvZHVjdF9pZCI6IlA5ODc2NSIsInByb2R1Y3RfbmFtZSI6IkxhcHRvcCIsInF1YW50aXR5IjoxMCwidGltZXN0YW1wIjoiMjAyMy0wOS0xMVQxMjowMDowMFoifX0=";
        let ev = decode_record_data(data).unwrap();
        assert_eq!(ev.product_id, "P98765");
    }

    #[test]
    fn reason_names_round_trip() {
        for r in RejectionReason::ALL {
            assert_eq!(RejectionReason::parse(r.as_str()), Some(r));
            assert_eq!(
                serde_json::to_string(&r).unwrap(),
                format!("\"{}\"", r.as_str())
            );
        }
    }
}

#[cfg(test)]
mod base64_props {
    use base64::Engine as _;
    use proptest::prelude::*;

    fn both(text: &str) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
        let simd = base64_simd::STANDARD.decode_to_vec(text).ok();
        let crate_ = base64::engine::general_purpose::STANDARD.decode(text).ok();
        (simd, crate_)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// Valid encodings of any bytes decode the same.
        #[test]
        fn valid_base64_decodes_the_same(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let text = base64::engine::general_purpose::STANDARD.encode(&bytes);
            prop_assert_eq!(both(&text), (Some(bytes.clone()), Some(bytes)));
        }

        /// Near-misses (a character changed, removed or added, padding moved, whitespace,
        /// URL-safe letters, non-canonical trailing bits) are refused by both or by neither.
        #[test]
        fn mangled_base64_is_judged_the_same(
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
            at in any::<prop::sample::Index>(),
            with in prop::sample::select(vec!['=', '-', '_', ' ', '\n', '/', '+', 'A', 'B', 'Q', 'é', '\0']),
            how in 0usize..3,
        ) {
            let mut text: Vec<char> = base64::engine::general_purpose::STANDARD.encode(&bytes).chars().collect();
            let i = if text.is_empty() { 0 } else { at.index(text.len()) };
            match how {
                0 if !text.is_empty() => text[i] = with,
                1 if !text.is_empty() => { text.remove(i); }
                _ => text.insert(i, with),
            }
            let text: String = text.into_iter().collect();
            let (simd, crate_) = both(&text);
            prop_assert_eq!(simd, crate_, "{:?}", text);
        }

        /// Arbitrary short strings over the alphabet and padding.
        #[test]
        fn any_text_is_judged_the_same(text in "[A-Za-z0-9+/=]{0,24}") {
            let (simd, crate_) = both(&text);
            prop_assert_eq!(simd, crate_, "{:?}", text);
        }
    }
}

#[cfg(test)]
mod schema_tests {
    //! docs/event.schema.json is for producers; these checks keep it saying what the code does.
    use super::*;
    use serde_json::Value;

    fn schema() -> Value {
        serde_json::from_str(include_str!("../../docs/event.schema.json")).unwrap()
    }

    #[test]
    fn schema_lists_exactly_the_event_types() {
        let s = schema();
        let listed: Vec<&str> = s["properties"]["event_type"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let ours: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        assert_eq!(listed, ours);
    }

    #[test]
    fn schema_limits_match_the_validator() {
        let s = schema();
        let p = &s["properties"]["product"]["properties"];
        assert_eq!(p["quantity"]["maximum"], MAX_EVENT_QUANTITY);
        assert_eq!(p["product_name"]["maxLength"], MAX_PRODUCT_NAME_LEN);
        assert_eq!(
            p["product_id"]["pattern"],
            format!("^[A-Za-z0-9_-]{{1,{MAX_PRODUCT_ID_LEN}}}$")
        );
        assert_eq!(s["properties"]["event_id"]["maxLength"], MAX_EVENT_ID_LEN);
        for example in s["examples"].as_array().unwrap() {
            parse_event(example.to_string().as_bytes()).unwrap();
        }
    }
}
