//! The REST API's JSON types. The API serialises them and the wasm console deserialises
//! them, so the contract between the two cannot drift.

use std::collections::BTreeMap;

use chrono::{DateTime, SubsecRound as _, Utc};
use serde::{Deserialize, Serialize};

use crate::event::RejectionReason;
use crate::state::ProductStatus;
use crate::workload::{FaultRatios, Skew, DEFAULT_ZIPF_EXPONENT};

/// Limits a simulation request must stay within.
pub const MAX_SIMULATION_EVENTS: u64 = 1_000_000;
pub const MAX_SIMULATION_RATE: f64 = 5_000.0;
pub const MAX_SIMULATION_PRODUCTS: u32 = 10_000;
pub const MAX_SIMULATION_PRODUCERS: u32 = 100;
pub const MAX_SIMULATION_RETRY_DISTANCE: u64 = 1_000_000;
/// A late retry must land within the processor's 15-minute duplicate window; 10 minutes
/// leave room for pipeline lag.
pub const MAX_RETRY_DELAY_SECS: f64 = 600.0;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProductView {
    pub product_id: String,
    pub product_name: String,
    pub quantity: u64,
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "active"))]
    pub status: ProductStatus,
    /// Events applied to this product.
    pub version: u64,
    /// The last applied event's own timestamp (UTC, RFC 3339, its fraction in 0, 3, 6 or 9
    /// digits).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub last_event_at: DateTime<Utc>,
    /// When the processor last wrote the item (UTC, RFC 3339, to the millisecond).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    #[serde(with = "crate::rfc3339::millis")]
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InventoryPage {
    pub items: Vec<ProductView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
    /// Products matching the filters and search, all pages together.
    #[serde(default)]
    pub matching: u64,
}

/// What became of an event of a product's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum HistoryOutcome {
    /// It changed the stock (or added or removed the product).
    Applied,
    /// The producer sent this event id again: ignored.
    Duplicate,
    /// Refused; `reason` says why (for example `insufficient_stock`).
    Rejected,
}

/// One event of a product's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistoryEntry {
    /// The event's own timestamp (UTC, RFC 3339, its fraction in 0, 3, 6 or 9 digits).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: DateTime<Utc>,
    /// `product_added`, `product_removed`, `quantity_increased` or `quantity_decreased`.
    pub event_type: String,
    /// The quantity the event carried (none for a removal).
    pub quantity: Option<u64>,
    pub event_id: String,
    pub outcome: HistoryOutcome,
    /// Why it was rejected (a rejection reason, as `/api/rejections` names them).
    pub reason: Option<String>,
    /// The product's stock after it.
    pub stock_after: u64,
}

/// `GET /api/inventory/{id}/history`: newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistoryPage {
    pub product_id: String,
    pub items: Vec<HistoryEntry>,
    /// Pass as `cursor` to get older events; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ThroughputPoint {
    /// Start of the 10-second bucket (UTC, RFC 3339; a whole second, so no fraction).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: DateTime<Utc>,
    pub applied_per_sec: f64,
    /// Rejections recorded per second in the bucket.
    #[serde(default)]
    pub rejected_per_sec: f64,
    /// The lag of the bucket's last batch (its processing time minus its newest applied
    /// record's arrival), when it applied any.
    #[serde(default)]
    pub lag_ms: Option<i64>,
}

/// `/api/stats`: the processor's per-shard counters, summed (docs/consistency.md,
/// "Counters"). A total is `null` before the first batch counted anything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Stats {
    /// Products with an item (active or removed).
    pub products: Option<u64>,
    pub active_products: Option<u64>,
    /// Units in stock over all active products.
    pub units: Option<u64>,
    /// Events applied (the shard counters' sum).
    pub events_applied: Option<u64>,
    /// Duplicates skipped (redeliveries and producer duplicates; counted with each batch
    /// that completes).
    pub duplicates_ignored: u64,
    /// Rejections recorded, by reason (counted with each batch that completes).
    pub rejections: BTreeMap<String, u64>,
    pub rejections_total: u64,
    /// At the last batch: its processing time minus the newest applied record's arrival.
    pub lag_ms: Option<i64>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    #[serde(default, with = "crate::rfc3339::option_millis")]
    pub last_batch_at: Option<DateTime<Utc>>,
    /// Events applied per second over the last minute.
    pub throughput_last_minute: f64,
    /// The last 10 minutes, oldest first, in 10-second buckets.
    pub throughput: Vec<ThroughputPoint>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    #[serde(with = "crate::rfc3339::millis")]
    pub generated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RejectionView {
    /// The Kinesis record's eventID (`shardId:sequenceNumber`).
    pub record_id: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "insufficient_stock"))]
    pub reason: RejectionReason,
    pub detail: String,
    pub product_id: Option<String>,
    pub event_id: Option<String>,
    pub partition_key: String,
    /// When the record reached the stream; null only for a rejection stored before this
    /// was recorded.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    #[serde(default, with = "crate::rfc3339::option_millis")]
    pub arrived_at: Option<DateTime<Utc>>,
    /// When the processor rejected it; null only for a rejection stored before this was
    /// recorded.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    #[serde(default, with = "crate::rfc3339::option_millis")]
    pub rejected_at: Option<DateTime<Utc>>,
    /// The first 1,024 characters of the record's base64 data.
    pub data_base64_excerpt: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RejectionPage {
    pub items: Vec<RejectionView>,
    pub next_cursor: Option<String>,
}

/// Where an archived dead letter stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterStatus {
    /// Not applied: waiting for a redrive.
    Pending,
    /// Claimed by a redrive that is publishing it (no other redrive sends it); one whose
    /// redrive was interrupted is taken up again by a later redrive.
    Redriving,
    /// Republished to the stream (same partition key and bytes, so the same event id).
    Redriven,
    /// The processor handled this record before the Pipe gave up on its batch (its shard
    /// log, its rejection, its batch's logged delivery or its product's position says so):
    /// kept for the record, never redriven.
    ProcessedBefore,
}

/// One record the Pipe dead-lettered, as the dead-letter consumer archived it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeadLetterView {
    /// The archive's id for this record: what a redrive names.
    pub id: String,
    /// The Kinesis record's eventID (`shardId:sequenceNumber`).
    pub record_id: String,
    pub status: DeadLetterStatus,
    /// Why the Pipe gave up on the record's batch.
    pub reason: String,
    pub product_id: Option<String>,
    pub event_id: Option<String>,
    pub partition_key: String,
    /// When the record reached the stream (UTC, RFC 3339, to the millisecond).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    #[serde(with = "crate::rfc3339::millis")]
    pub arrived_at: DateTime<Utc>,
    /// When the dead-letter consumer archived it (UTC, RFC 3339, to the millisecond).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    #[serde(with = "crate::rfc3339::millis")]
    pub dead_lettered_at: DateTime<Utc>,
    /// When a redrive last republished it; null until one has.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    #[serde(default, with = "crate::rfc3339::option_millis")]
    pub redriven_at: Option<DateTime<Utc>>,
    pub redrive_count: u64,
    /// The first 1,024 characters of the record's base64 data; only for a signed-in user.
    pub data_base64_excerpt: Option<String>,
    pub data_base64_length: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeadLetterPage {
    pub items: Vec<DeadLetterView>,
    pub next_cursor: Option<String>,
}

/// Which dead letters to republish: the ids listed, or when empty every pending one (up to
/// [`MAX_REDRIVE`] per request).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct RedriveRequest {
    pub ids: Vec<String>,
    /// Also redrive records that arrived longer ago than the dedup window. Without it they are
    /// held back: a producer's retry of such a record, applied meanwhile, would no longer be
    /// recognised as its duplicate, so redriving it could apply the event twice.
    pub include_past_window: bool,
}

/// Dead letters one redrive request handles at most.
pub const MAX_REDRIVE: usize = 500;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RedriveResult {
    /// Records put back on the stream.
    pub republished: u64,
    /// Records not republished, each with why.
    pub skipped: Vec<RedriveSkip>,
    /// Pending dead letters this request did not reach (more than [`MAX_REDRIVE`], or its
    /// time budget ran out): call again.
    pub remaining: bool,
    /// Pending dead letters that arrived longer ago than the dedup window, held back because
    /// the request did not set `include_past_window`.
    #[serde(default)]
    pub held_past_window: u64,
    /// The dedup window the redrive judged by, in seconds.
    #[serde(default)]
    pub dedup_window_seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RedriveSkip {
    pub id: String,
    pub why: String,
}

/// What to simulate. Every field has a default, so `{}` is a valid request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct SimulationRequest {
    /// Distinct products (1 to 10,000).
    #[cfg_attr(
        feature = "openapi",
        schema(minimum = 1, maximum = 10_000, default = 200)
    )]
    pub products: u32,
    /// Records to publish (1 to 1,000,000), faults and duplicates included.
    #[cfg_attr(
        feature = "openapi",
        schema(minimum = 1, maximum = 1_000_000, default = 20_000)
    )]
    pub events: u64,
    /// Events per second (up to 5,000).
    #[cfg_attr(
        feature = "openapi",
        schema(exclusive_minimum = 0, maximum = 5_000, default = 1_000)
    )]
    pub rate: f64,
    /// `uniform`, `zipf` or `zipf:<exponent>` (an exponent above 0): in JSON the text
    /// [`Skew`] reads, not its tagged form.
    #[serde(with = "skew_as_text")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "zipf:1.1",
        pattern = r"^(uniform|zipf(:([0-9]*[1-9][0-9]*(\.[0-9]*)?|[0-9]*\.[0-9]*[1-9][0-9]*))?)$",
        max_length = 32))]
    pub skew: Skew,
    /// Fraction of records that are a producer's duplicate (0 to 1).
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 1, default = 0.05))]
    pub duplicates: f64,
    /// Fraction of records that are malformed (0 to 1).
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 1, default = 0.01))]
    pub malformed: f64,
    /// Fraction of records that are invalid transitions (0 to 1).
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 1, default = 0.01))]
    pub invalid: f64,
    pub seed: Option<u64>,
    /// Concurrent producers sharing the products (1 to 100); a product's events still land
    /// in order.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100, default = 1))]
    pub producers: u32,
    /// Fraction of records that are a producer's late retry of an earlier event (same bytes
    /// and event_id), as after a timed-out PutRecords that had succeeded.
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 1, default = 0))]
    pub retry_share: f64,
    /// How many other records are put between an event and its late retry.
    pub retry_distance: RetryDistance,
}

/// [`SimulationRequest::skew`] as the text [`Skew`]'s `FromStr` and `Display` speak
/// (`"zipf:1.1"`); an unreadable one fails the request's deserialisation, naming the skews.
mod skew_as_text {
    use serde::{de, Deserialize, Deserializer, Serializer};

    use crate::workload::Skew;

    pub fn serialize<S: Serializer>(skew: &Skew, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(skew)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Skew, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

/// A range of record counts, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct RetryDistance {
    #[cfg_attr(feature = "openapi", schema(maximum = 1_000_000, default = 1))]
    pub min: u64,
    #[cfg_attr(feature = "openapi", schema(maximum = 1_000_000, default = 2000))]
    pub max: u64,
}

impl Default for RetryDistance {
    fn default() -> Self {
        Self { min: 1, max: 2_000 }
    }
}

/// `MIN..=MAX`, as the generator's `--retry-distance` reads it.
impl std::fmt::Display for RetryDistance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}..={}", self.min, self.max)
    }
}

impl Default for SimulationRequest {
    fn default() -> Self {
        Self {
            products: 200,
            events: 20_000,
            rate: 1_000.0,
            skew: Skew::Zipf(DEFAULT_ZIPF_EXPONENT),
            duplicates: 0.05,
            malformed: 0.01,
            invalid: 0.01,
            seed: None,
            producers: 1,
            retry_share: 0.0,
            retry_distance: RetryDistance::default(),
        }
    }
}

impl SimulationRequest {
    /// The request's fault ratios (`invalid` is the invalid transitions' share).
    pub fn fault_ratios(&self) -> FaultRatios {
        FaultRatios {
            duplicates: self.duplicates,
            malformed: self.malformed,
            invalid_transitions: self.invalid,
        }
    }

    /// Checks the request against the limits; the message says what to change.
    pub fn validate(&self) -> Result<(), String> {
        if self.products == 0 || self.products > MAX_SIMULATION_PRODUCTS {
            return Err(format!(
                "products must be between 1 and {MAX_SIMULATION_PRODUCTS}"
            ));
        }
        if self.events == 0 || self.events > MAX_SIMULATION_EVENTS {
            return Err(format!(
                "events must be between 1 and {MAX_SIMULATION_EVENTS}"
            ));
        }
        if !(self.rate > 0.0 && self.rate <= MAX_SIMULATION_RATE) {
            return Err(format!(
                "rate must be more than 0 and at most {MAX_SIMULATION_RATE} events per second"
            ));
        }
        if self.producers == 0 || self.producers > MAX_SIMULATION_PRODUCERS {
            return Err(format!(
                "producers must be between 1 and {MAX_SIMULATION_PRODUCERS}"
            ));
        }
        self.fault_ratios()
            .check(self.retry_share)
            .map_err(|e| e.to_string())?;
        let d = self.retry_distance;
        if d.min > d.max || d.max > MAX_SIMULATION_RETRY_DISTANCE {
            return Err(format!(
                "retry_distance must have min <= max <= {MAX_SIMULATION_RETRY_DISTANCE}"
            ));
        }
        if self.retry_share > 0.0 && d.max as f64 / self.rate > MAX_RETRY_DELAY_SECS {
            return Err(format!(
                "retry_distance.max {} at rate {} lands a late retry more than {MAX_RETRY_DELAY_SECS} s after its original, past the processor's duplicate window: lower retry_distance.max or raise rate",
                d.max, self.rate
            ));
        }
        // JSON reads only a valid skew, but one built in code may hold any exponent: check it
        // by the one rule, `FromStr`'s.
        self.skew
            .to_string()
            .parse::<Skew>()
            .map_err(|e| format!("skew: {e}"))?;
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SimulationAccepted {
    pub id: String,
    /// Where to poll its progress.
    pub status_url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SimulationState {
    Queued,
    Publishing,
    Verifying,
    Completed,
    Failed,
}

/// The consistency check at the end of a simulation: DynamoDB against the generator's model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Verdict {
    pub mismatches: u64,
    pub products_checked: u64,
    /// Whether everything expected had arrived before the check gave up waiting.
    pub caught_up: bool,
    pub expected_units: u64,
    pub stored_units: u64,
    pub duplicates_ignored: u64,
    pub rejections_expected: BTreeMap<String, u64>,
    pub rejections_stored: BTreeMap<String, u64>,
    /// The first mismatches, described.
    pub details: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SimulationStatus {
    pub id: String,
    pub state: SimulationState,
    pub request: SimulationRequest,
    /// Prefix of this simulation's product ids.
    pub run_id: String,
    pub events_sent: u64,
    pub events_target: u64,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    #[serde(with = "crate::rfc3339::millis")]
    pub created_at: DateTime<Utc>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    #[serde(with = "crate::rfc3339::millis")]
    pub updated_at: DateTime<Utc>,
    pub verdict: Option<Verdict>,
    pub error: Option<String>,
}

impl SimulationStatus {
    /// A simulation accepted but not started.
    pub fn queued(id: &str, request: &SimulationRequest, now: DateTime<Utc>) -> Self {
        // To the millisecond, as JSON carries it, so a status read back equals this one.
        let now = now.trunc_subsecs(3);
        Self {
            id: id.to_owned(),
            state: SimulationState::Queued,
            request: request.clone(),
            run_id: run_id_for(id),
            events_sent: 0,
            events_target: request.events,
            created_at: now,
            updated_at: now,
            verdict: None,
            error: None,
        }
    }
}

/// Product ids of a simulation start with this (`s` + the last 10 characters of its id,
/// lower-cased), so simulations against one table never share a product.
pub fn run_id_for(simulation_id: &str) -> String {
    let chars: Vec<char> = simulation_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let tail: String = chars[chars.len().saturating_sub(10)..].iter().collect();
    format!("s{}", tail.to_ascii_lowercase())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SimulationList {
    pub items: Vec<SimulationStatus>,
}

/// Every error response: a stable machine-readable code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_short_alphanumeric_and_distinct() {
        let a = run_id_for("01JD3Z5Q4V6H3W2X9K7M5N1P0R");
        let b = run_id_for("01JD3Z5Q4V6H3W2X9K7M5N1P0S");
        assert_ne!(a, b);
        assert_eq!(a, "s9k7m5n1p0r");
    }

    #[test]
    fn the_skew_is_the_text_it_reads_in_json() {
        let r: SimulationRequest = serde_json::from_str(r#"{"skew": "zipf:1.5"}"#).unwrap();
        assert_eq!(r.skew, Skew::Zipf(1.5));
        let uniform: SimulationRequest = serde_json::from_str(r#"{"skew": "uniform"}"#).unwrap();
        assert_eq!(uniform.skew, Skew::Uniform);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["skew"], "zipf:1.5");
        for bad in [r#"{"skew": "pareto"}"#, r#"{"skew": "zipf:-1"}"#] {
            let e = serde_json::from_str::<SimulationRequest>(bad).unwrap_err();
            assert!(e.to_string().contains("skew"), "{bad}: {e}");
        }
    }

    #[test]
    fn an_empty_request_takes_the_defaults_and_is_valid() {
        let r: SimulationRequest = serde_json::from_str("{}").unwrap();
        assert_eq!(r, SimulationRequest::default());
        r.validate().unwrap();
    }

    #[test]
    fn requests_over_the_limits_say_which_limit() {
        let over = |f: fn(&mut SimulationRequest)| {
            let mut r = SimulationRequest::default();
            f(&mut r);
            r.validate().unwrap_err()
        };
        assert!(over(|r| r.events = 1_000_001).contains("events"));
        assert!(over(|r| r.rate = 5_001.0).contains("rate"));
        assert!(over(|r| r.products = 10_001).contains("products"));
        assert!(over(|r| r.duplicates = 0.95).contains("sum"));
        assert!(over(|r| r.skew = Skew::Zipf(-1.0)).contains("skew"));
        assert!(over(|r| r.rate = f64::NAN).contains("rate"));
        assert!(over(|r| r.producers = 0).contains("producers"));
        assert!(over(|r| r.producers = 101).contains("producers"));
        assert!(over(|r| r.retry_share = -0.1).contains("retry_share"));
        assert!(over(|r| r.retry_share = f64::NAN).contains("retry_share"));
        assert!(over(|r| r.retry_share = 0.9).contains("sum"));
        assert!(
            over(|r| r.retry_distance = RetryDistance { min: 5, max: 4 }).contains("min <= max")
        );
        assert!(over(|r| r.retry_distance.max = 1_000_001).contains("retry_distance"));
        assert!(over(|r| {
            r.retry_share = 0.05;
            r.rate = 1.0;
        })
        .contains("raise rate"));
    }

    #[test]
    fn requests_from_before_producers_take_one_producer_without_late_retries() {
        let r: SimulationRequest =
            serde_json::from_str(r#"{"events": 500, "duplicates": 0.1}"#).unwrap();
        assert_eq!(
            (r.producers, r.retry_share, r.retry_distance),
            (1, 0.0, RetryDistance { min: 1, max: 2_000 })
        );
        let r: SimulationRequest = serde_json::from_str(
            r#"{"producers": 10, "retry_share": 0.05, "retry_distance": {"max": 500}}"#,
        )
        .unwrap();
        assert_eq!(r.retry_distance, RetryDistance { min: 1, max: 500 });
        r.validate().unwrap();
    }
}
