//! The simulated catalogue: a seeded, reproducible stream of e-commerce events (additions,
//! sales, restocks, removals, re-additions) with optional faults, and the model of the
//! state those events must produce.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, SubsecRound as _, Utc};
use inventory_domain::api::{MAX_RETRY_DELAY_SECS, MAX_SIMULATION_RETRY_DISTANCE};
pub use inventory_domain::workload::{FaultRatioError, FaultRatios, Skew, MAX_FAULT_SHARE};
use inventory_domain::{ProductRecord, ProductStatus, RecentIds, RejectionReason, SequenceNumber};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimConfig {
    /// Distinct products in the catalogue.
    pub products: usize,
    /// Records to publish in all, faults and duplicates included.
    pub events: u64,
    pub skew: Skew,
    pub seed: u64,
    /// Prefix of every product id, so runs against one table never collide.
    pub run_id: String,
    pub faults: FaultRatios,
}

/// Most producers a simulation plays at once.
pub const MAX_PRODUCERS: usize = 100;
/// Longest distance between an event and its late retry, in records.
pub const MAX_RETRY_DISTANCE: u64 = MAX_SIMULATION_RETRY_DISTANCE;
/// How long after its original a late retry may land and still be recognised: the
/// processor remembers event ids for 15 minutes; 10 leave room for pipeline lag.
pub const RETRY_WINDOW_SECS: f64 = MAX_RETRY_DELAY_SECS;

/// How many other records are put between an event and its late retry (both ends included).
pub use inventory_domain::api::RetryDistance;

/// Refuses a distance whose ends are the wrong way round or beyond [`MAX_RETRY_DISTANCE`].
pub fn check_retry_distance(d: RetryDistance) -> Result<(), SimError> {
    if d.min > d.max || d.max > MAX_RETRY_DISTANCE {
        return Err(SimError::RetryDistance(d));
    }
    Ok(())
}

/// Reads `MIN..MAX`, `MIN..=MAX` or `MIN-MAX`, both ends included (`1..2000`: 1 to 2,000
/// records later), or `N` alone; checked as [`check_retry_distance`] does. The parser of
/// `--retry-distance`.
pub fn parse_retry_distance(s: &str) -> Result<RetryDistance, SimError> {
    let text = s.trim();
    let (min, max) = text
        .split_once("..=")
        .or_else(|| text.split_once(".."))
        .or_else(|| text.split_once('-'))
        .unwrap_or((text, text));
    let number = |n: &str| n.trim().parse::<u64>().ok();
    match (number(min), number(max)) {
        (Some(min), Some(max)) => {
            let d = RetryDistance { min, max };
            check_retry_distance(d)?;
            Ok(d)
        }
        _ => Err(SimError::RetryDistanceSyntax(s.to_owned())),
    }
}

/// The producers a simulation plays: many order services publishing the same products at
/// once, some putting an event again late, as an SDK does when a timed-out PutRecords had in
/// fact succeeded. Every field has a default (one producer, no late retries).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProducerConfig {
    /// Concurrent producers, each with its own PutRecords loop (1 to [`MAX_PRODUCERS`]).
    pub producers: usize,
    /// Fraction of records that are a late retry of an earlier event (same bytes, event_id
    /// and partition key).
    pub retry_share: f64,
    /// Records put between an event and its late retry.
    pub retry_distance: RetryDistance,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            producers: 1,
            retry_share: 0.0,
            retry_distance: RetryDistance::default(),
        }
    }
}

impl ProducerConfig {
    /// Refuses a distance that, at `rate` records/s, would land a retry after the processor
    /// has forgotten its original (it would then be applied twice). `None`: unpaced.
    pub fn check_rate(&self, rate: Option<f64>) -> Result<(), SimError> {
        match rate {
            Some(rate)
                if self.retry_share > 0.0
                    && rate > 0.0
                    && self.retry_distance.max as f64 / rate > RETRY_WINDOW_SECS =>
            {
                Err(SimError::RetryTooLate {
                    max: self.retry_distance.max,
                    rate,
                })
            }
            _ => Ok(()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("--products must be between 1 and 100000 (got {0})")]
    Products(usize),
    #[error("--duplicates, --malformed and --invalid must each be in [0, 1] and sum to at most {MAX_FAULT_SHARE} (got {}, {} and {})", .0.duplicates, .0.malformed, .0.invalid_transitions)]
    Faults(FaultRatios),
    #[error("Zipf exponent must be > 0 and finite (got {0})")]
    Skew(f64),
    #[error("run id must be 1-16 characters of A-Z, a-z, 0-9 (got `{0}`)")]
    RunId(String),
    #[error("--producers must be between 1 and {MAX_PRODUCERS} (got {0})")]
    Producers(usize),
    #[error("--retry-share must be in [0, 1] and sum with --duplicates, --malformed and --invalid to at most {MAX_FAULT_SHARE} (got {share}, the others {others})")]
    RetryShare { share: f64, others: f64 },
    #[error(
        "--retry-distance must be MIN..=MAX with MIN <= MAX <= {MAX_RETRY_DISTANCE} (got {0})"
    )]
    RetryDistance(RetryDistance),
    #[error("--retry-distance `{0}` is not a range of record counts: write MIN..MAX (both ends included, e.g. 1..2000), MIN..=MAX or one number")]
    RetryDistanceSyntax(String),
    #[error("--retry-distance up to {max} records at {rate} records/s lands a retry more than {RETRY_WINDOW_SECS} s after its original, past the processor's duplicate window: lower the distance's maximum or raise --rate")]
    RetryTooLate { max: u64, rate: f64 },
}

/// One record to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutRecord {
    pub partition_key: String,
    pub data: Vec<u8>,
    /// Position in the generated stream, from 1.
    pub index: u64,
    /// The producer that puts it, from 0.
    pub producer: usize,
    pub retry: Retry,
}

/// A record's part in a late retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Retry {
    /// An ordinary record.
    #[default]
    No,
    /// An event its producer will put again later.
    Later,
    /// The late copy of record `original`: put only once `distance` other records were
    /// acknowledged after the original was.
    Of { original: u64, distance: u64 },
}

/// Expected state of one product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpectedStatus {
    /// Never added: no item may exist.
    Absent,
    Active,
    Removed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectedProduct {
    pub status: ExpectedStatus,
    pub quantity: u64,
    /// Events applied (the stored `version`).
    pub version: u64,
    /// Records published with this product's partition key.
    pub records: u64,
}

/// What the pipeline must end with; written as JSON by `generator publish`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Expected {
    pub config: SimConfig,
    /// Absent in files written before producers were simulated: one producer, no late retries.
    #[serde(default)]
    pub producers: ProducerConfig,
    #[serde(with = "inventory_domain::rfc3339::millis")]
    pub started_at: DateTime<Utc>,
    pub records: u64,
    pub applied: u64,
    /// Records that repeat an earlier event (its immediate duplicates and late retries): each
    /// must change nothing.
    pub duplicates: u64,
    /// Of `duplicates`, the late retries.
    #[serde(default)]
    pub late_retries: u64,
    pub rejections: BTreeMap<RejectionReason, u64>,
    pub products: BTreeMap<String, ExpectedProduct>,
}

impl Expected {
    pub fn total_units(&self) -> u64 {
        self.products.values().map(|p| p.quantity).sum()
    }
}

#[derive(Debug, Clone, Copy)]
struct Model {
    active: bool,
    ever_added: bool,
    quantity: u64,
    version: u64,
}

/// A product's name: three words picked by its index (so a catalog has names to search by
/// word, each word shared by many products) and its number.
pub fn product_name(p: usize) -> String {
    const STYLES: [&str; 16] = [
        "Rustic",
        "Modern",
        "Classic",
        "Compact",
        "Deluxe",
        "Vintage",
        "Sleek",
        "Sturdy",
        "Portable",
        "Ergonomic",
        "Minimal",
        "Premium",
        "Folding",
        "Smart",
        "Heavy",
        "Light",
    ];
    const MATERIALS: [&str; 16] = [
        "Oak",
        "Steel",
        "Walnut",
        "Bamboo",
        "Glass",
        "Leather",
        "Cotton",
        "Ceramic",
        "Copper",
        "Marble",
        "Linen",
        "Wool",
        "Granite",
        "Aluminium",
        "Pine",
        "Rattan",
    ];
    const THINGS: [&str; 32] = [
        "Chair", "Table", "Lamp", "Desk", "Shelf", "Stool", "Bench", "Cabinet", "Mirror", "Clock",
        "Vase", "Rug", "Kettle", "Mug", "Bowl", "Plate", "Tray", "Basket", "Frame", "Cushion",
        "Blanket", "Towel", "Speaker", "Keyboard", "Mouse", "Monitor", "Backpack", "Bottle",
        "Wallet", "Umbrella", "Jacket", "Sneaker",
    ];
    format!(
        "{} {} {} {}",
        STYLES[p % 16],
        MATERIALS[(p / 16) % 16],
        THINGS[(p / 256) % 32],
        p + 1
    )
}

/// Product `p` of a catalog written straight to the table (benchmarks, browser tests): id
/// `<id_prefix>-P<p + 1, 6 digits>`, named by [`product_name`], as the processor would have
/// stored it after one event on shard 0.
pub fn catalog_product(
    id_prefix: &str,
    p: usize,
    quantity: u64,
    status: ProductStatus,
) -> ProductRecord {
    ProductRecord {
        product_id: format!("{id_prefix}-P{:06}", p + 1),
        name: product_name(p),
        quantity,
        status,
        version: 1,
        last_sequence: SequenceNumber::zero(),
        last_shard: Some(0),
        last_stream: None,
        // 2026-12-01T00:00:00Z
        last_event_at: DateTime::from_timestamp(1_796_083_200, 0).unwrap_or_default(),
        recent_ids: RecentIds::default(),
        history: None,
    }
}

pub struct Simulation {
    /// Every product is added first, in order, before the mix ([`Simulation::loading_catalog`]).
    load_catalog: bool,
    config: SimConfig,
    producers: ProducerConfig,
    rng: StdRng,
    /// Picks producers and retry distances, apart from `rng` so that the events of a seed are
    /// the same whatever the producers.
    producer_rng: StdRng,
    zipf: Option<Zipf<f64>>,
    ids: Vec<String>,
    model: Vec<Model>,
    records_by_product: Vec<u64>,
    generated: u64,
    applied: u64,
    duplicates: u64,
    rejections: BTreeMap<RejectionReason, u64>,
    /// A duplicate waiting to follow its original.
    pending_duplicate: Option<(usize, OutRecord)>,
    /// Late retries by the position reserved for them in the stream.
    late: BTreeMap<u64, (usize, OutRecord)>,
    late_retries: u64,
    started_at: DateTime<Utc>,
}

impl Simulation {
    /// One producer, no late retries.
    pub fn new(config: SimConfig) -> Result<Self, SimError> {
        Self::with_producers(config, ProducerConfig::default())
    }

    /// A simulation played by `producers.producers` producers, `producers.retry_share` of
    /// whose records are late retries.
    pub fn with_producers(config: SimConfig, producers: ProducerConfig) -> Result<Self, SimError> {
        if producers.producers == 0 || producers.producers > MAX_PRODUCERS {
            return Err(SimError::Producers(producers.producers));
        }
        check_retry_distance(producers.retry_distance)?;
        if config.products == 0 || config.products > 100_000 {
            return Err(SimError::Products(config.products));
        }
        config
            .faults
            .check(producers.retry_share)
            .map_err(|e| match e {
                FaultRatioError::Faults(f) => SimError::Faults(f),
                FaultRatioError::RetryShare { share, others } => {
                    SimError::RetryShare { share, others }
                }
            })?;
        if config.run_id.is_empty()
            || config.run_id.len() > 16
            || !config.run_id.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(SimError::RunId(config.run_id.clone()));
        }
        let zipf = match config.skew {
            Skew::Uniform => None,
            Skew::Zipf(s) => {
                Some(Zipf::new(config.products as f64, s).map_err(|_| SimError::Skew(s))?)
            }
        };
        let ids = (0..config.products)
            .map(|i| format!("{}-P{:05}", config.run_id, i + 1))
            .collect();
        Ok(Self {
            load_catalog: false,
            rng: StdRng::seed_from_u64(config.seed),
            producer_rng: StdRng::seed_from_u64(config.seed ^ 0x9E37_79B9_7F4A_7C15),
            producers,
            zipf,
            ids,
            model: vec![
                Model {
                    active: false,
                    ever_added: false,
                    quantity: 0,
                    version: 0
                };
                config.products
            ],
            records_by_product: vec![0; config.products],
            generated: 0,
            applied: 0,
            duplicates: 0,
            rejections: BTreeMap::new(),
            pending_duplicate: None,
            late: BTreeMap::new(),
            late_retries: 0,
            // To the millisecond, as the expected model's file holds it.
            started_at: Utc::now().trunc_subsecs(3),
            config,
        })
    }

    /// Makes the first records add every product, one `product_added` each in id order with
    /// a stock of 0 to 1,000: a catalog of `products` in as many records, before the mix.
    pub fn loading_catalog(mut self) -> Self {
        self.load_catalog = true;
        self
    }

    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    pub fn producers(&self) -> &ProducerConfig {
        &self.producers
    }

    pub fn generated(&self) -> u64 {
        self.generated
    }

    pub fn is_done(&self) -> bool {
        self.generated >= self.config.events
    }

    /// The next record, or `None` when all have been generated.
    pub fn next_record(&mut self) -> Option<OutRecord> {
        if self.is_done() {
            return None;
        }
        self.generated += 1;
        let index = self.generated;
        // A late retry's position was reserved when its original was made.
        if let Some((p, retry)) = self.late.remove(&index) {
            self.duplicates += 1;
            self.late_retries += 1;
            self.records_by_product[p] += 1;
            return Some(OutRecord { index, ..retry });
        }
        if let Some((p, dup)) = self.pending_duplicate.take() {
            self.duplicates += 1;
            self.records_by_product[p] += 1;
            return Some(OutRecord { index, ..dup });
        }
        if self.load_catalog && index <= self.config.products as u64 {
            let p = (index - 1) as usize;
            let mut record = self.added(p, 0..=1_000);
            record.index = index;
            record.producer = self.pick_producer();
            self.records_by_product[p] += 1;
            return Some(record);
        }
        let f = self.config.faults;
        let roll: f64 = self.rng.random();
        let p = self.pick_product();
        let producer = self.pick_producer();
        let valid = roll >= f.malformed + f.invalid_transitions;
        let mut record = if roll < f.malformed {
            self.malformed(p)
        } else if !valid {
            self.invalid_transition(p)
        } else {
            self.valid_event(p)
        };
        record.index = index;
        record.producer = producer;
        if valid {
            // Only valid events are repeated: a repeat of a rejected one would be rejected
            // again. The duplicate directly follows its original, as a producer's immediate
            // retry would; a late retry comes `retry_distance` records later.
            let share = 1.0 - f.malformed - f.invalid_transitions;
            let dup_roll: f64 = self.rng.random();
            if dup_roll < f.duplicates / share {
                self.pending_duplicate = Some((p, record.clone()));
            } else if dup_roll < (f.duplicates + self.producers.retry_share) / share {
                self.plan_late_retry(p, &mut record);
            }
        }
        self.records_by_product[p] += 1;
        Some(record)
    }

    /// Reserves a position for the late retry of `record` (at `index`) within the distance
    /// range and the run, and marks the original. Without a free position, no retry.
    fn plan_late_retry(&mut self, p: usize, record: &mut OutRecord) {
        let (index, d) = (record.index, self.producers.retry_distance);
        let first = index + d.min + 1;
        let last = (index + d.max + 1).min(self.config.events);
        if first > last {
            return;
        }
        let target = (index + 1 + self.producer_rng.random_range(d.min..=d.max)).min(last);
        let Some(slot) = (target..=last)
            .chain(first..target)
            .find(|s| !self.late.contains_key(s))
        else {
            return;
        };
        record.retry = Retry::Later;
        let copy = OutRecord {
            retry: Retry::Of {
                original: index,
                distance: slot - index - 1,
            },
            ..record.clone()
        };
        self.late.insert(slot, (p, copy));
    }

    fn pick_producer(&mut self) -> usize {
        match self.producers.producers {
            0 | 1 => 0,
            n => self.producer_rng.random_range(0..n),
        }
    }

    fn pick_product(&mut self) -> usize {
        match &self.zipf {
            None => self.rng.random_range(0..self.config.products),
            Some(z) => {
                let k = z.sample(&mut self.rng) as usize;
                k.clamp(1, self.config.products) - 1
            }
        }
    }

    fn event_id(&mut self) -> String {
        let ms = Utc::now().timestamp_millis().max(0) as u64;
        ulid::Ulid::from_parts(ms, self.rng.random()).to_string()
    }

    fn encode(
        &mut self,
        p: usize,
        kind: &str,
        name: Option<String>,
        quantity: Option<u64>,
    ) -> OutRecord {
        let mut product = serde_json::json!({
            "product_id": self.ids[p],
            "timestamp": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        });
        if let Some(n) = name {
            product["product_name"] = n.into();
        }
        if let Some(q) = quantity {
            product["quantity"] = q.into();
        }
        let event = serde_json::json!({
            "event_id": self.event_id(),
            "event_type": kind,
            "product": product,
        });
        OutRecord {
            partition_key: self.ids[p].clone(),
            data: event.to_string().into_bytes(),
            // Set by `next_record`.
            index: 0,
            producer: 0,
            retry: Retry::No,
        }
    }

    /// Adds product `p` (not active) with a stock drawn from `stock`.
    fn added(&mut self, p: usize, stock: std::ops::RangeInclusive<u64>) -> OutRecord {
        let m = self.model[p];
        self.applied += 1;
        let q = self.rng.random_range(stock);
        self.model[p] = Model {
            active: true,
            ever_added: true,
            quantity: q,
            version: m.version + 1,
        };
        self.encode(p, "product_added", Some(product_name(p)), Some(q))
    }

    fn valid_event(&mut self, p: usize) -> OutRecord {
        let m = self.model[p];
        if !m.active {
            return self.added(p, 20..=200);
        }
        self.applied += 1;
        let (kind, name, q, next) = {
            let roll: f64 = self.rng.random();
            if roll < 0.01 {
                ("product_removed", None, None, (false, 0))
            } else if m.quantity == 0 || roll > 0.75 {
                let q = self.rng.random_range(5..=50);
                ("quantity_increased", None, Some(q), (true, m.quantity + q))
            } else {
                let q = self.rng.random_range(1..=m.quantity.min(5));
                ("quantity_decreased", None, Some(q), (true, m.quantity - q))
            }
        };
        self.model[p] = Model {
            active: next.0,
            ever_added: true,
            quantity: next.1,
            version: m.version + 1,
        };
        self.encode(p, kind, name, q)
    }

    fn invalid_transition(&mut self, p: usize) -> OutRecord {
        let m = self.model[p];
        let (reason, record) = if m.active {
            if self.rng.random_bool(0.5) {
                let rec = self.encode(p, "product_added", Some("Again".into()), Some(1));
                (RejectionReason::AlreadyExists, rec)
            } else {
                let over = m.quantity + self.rng.random_range(1..=10);
                let rec = self.encode(p, "quantity_decreased", None, Some(over));
                (RejectionReason::InsufficientStock, rec)
            }
        } else {
            let kind = [
                "quantity_increased",
                "quantity_decreased",
                "product_removed",
            ][self.rng.random_range(0..3)];
            let rec = self.encode(p, kind, None, Some(1));
            (RejectionReason::ProductNotFound, rec)
        };
        *self.rejections.entry(reason).or_default() += 1;
        record
    }

    fn malformed(&mut self, p: usize) -> OutRecord {
        let id = self.ids[p].clone();
        let ts = "2023-09-11T12:00:00Z";
        let (reason, data): (RejectionReason, Vec<u8>) = match self.rng.random_range(0..6) {
            0 => (
                RejectionReason::InvalidJson,
                format!(r#"{{"event_type":"quantity_increased","product":{{"product_id":"{id}""#)
                    .into_bytes(),
            ),
            1 => (RejectionReason::InvalidJson, vec![0xC3, 0x28, 0xFF, b'{', b'}']),
            2 => (
                RejectionReason::UnknownEventType,
                format!(r#"{{"event_type":"product_sold","product":{{"product_id":"{id}","quantity":1,"timestamp":"{ts}"}}}}"#)
                    .into_bytes(),
            ),
            3 => (
                RejectionReason::SchemaViolation,
                format!(r#"{{"event_type":"quantity_decreased","product":{{"product_id":"{id}","quantity":-3,"timestamp":"{ts}"}}}}"#)
                    .into_bytes(),
            ),
            4 => (
                RejectionReason::SchemaViolation,
                format!(r#"{{"event_type":"quantity_increased","product":{{"product_id":"{id}","quantity":2.5,"timestamp":"{ts}"}}}}"#)
                    .into_bytes(),
            ),
            _ => (
                RejectionReason::PayloadTooLarge,
                format!(
                    r#"{{"event_type":"quantity_increased","product":{{"product_id":"{id}","quantity":1,"timestamp":"{ts}","note":"{}"}}}}"#,
                    "x".repeat(20_000)
                )
                .into_bytes(),
            ),
        };
        *self.rejections.entry(reason).or_default() += 1;
        OutRecord {
            partition_key: id,
            data,
            index: 0,
            producer: 0,
            retry: Retry::No,
        }
    }

    /// The state the pipeline must end with once every generated record is processed.
    pub fn expected(&self) -> Expected {
        let products = self
            .ids
            .iter()
            .zip(&self.model)
            .zip(&self.records_by_product)
            .filter(|(_, records)| **records > 0)
            .map(|((id, m), records)| {
                let status = match (m.ever_added, m.active) {
                    (false, _) => ExpectedStatus::Absent,
                    (true, true) => ExpectedStatus::Active,
                    (true, false) => ExpectedStatus::Removed,
                };
                (
                    id.clone(),
                    ExpectedProduct {
                        status,
                        quantity: m.quantity,
                        version: m.version,
                        records: *records,
                    },
                )
            })
            .collect();
        Expected {
            config: self.config.clone(),
            producers: self.producers,
            started_at: self.started_at,
            records: self.generated,
            applied: self.applied,
            duplicates: self.duplicates,
            late_retries: self.late_retries,
            rejections: self.rejections.clone(),
            products,
        }
    }
}

/// A short random run id.
pub fn new_run_id() -> String {
    let n: u32 = rand::rng().random();
    format!("r{n:08x}")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::VecDeque;

    use inventory_domain::{
        fold_product, parse_event, Outcome, ProductStatus, SequenceNumber, SequencedEvent,
    };

    /// An event at position `seq` of one shard.
    fn sequenced(seq: u64, ev: inventory_domain::InventoryEvent) -> SequencedEvent {
        SequencedEvent::new(
            SequenceNumber::parse(&seq.to_string()).unwrap(),
            format!("shardId-000000000000:{seq}"),
            0,
            ev,
        )
    }

    fn config(seed: u64, faults: FaultRatios) -> SimConfig {
        SimConfig {
            products: 20,
            events: 3000,
            skew: Skew::Zipf(1.1),
            seed,
            run_id: "t1".into(),
            faults,
        }
    }

    /// Runs the records through the real validator and state machine in order and checks the
    /// simulation's own model agrees: the generator never lies about what it sent.
    fn replay(
        sim: &mut Simulation,
    ) -> (
        Expected,
        BTreeMap<String, Option<inventory_domain::ProductRecord>>,
        BTreeMap<RejectionReason, u64>,
        u64,
    ) {
        let mut state: BTreeMap<String, Option<inventory_domain::ProductRecord>> = BTreeMap::new();
        let mut rejections = BTreeMap::new();
        let mut dups = 0;
        let mut seq = 0u64;
        while let Some(r) = sim.next_record() {
            seq += 1;
            match parse_event(&r.data) {
                Err(rej) => *rejections.entry(rej.reason).or_default() += 1,
                Ok(ev) => {
                    assert_eq!(ev.product_id, r.partition_key);
                    let slot = state.entry(r.partition_key.clone()).or_default();
                    let se = sequenced(seq, ev);
                    let fold = fold_product(slot.clone(), std::slice::from_ref(&se));
                    match &fold.outcomes[0] {
                        Outcome::Rejected(rej) => *rejections.entry(rej.reason).or_default() += 1,
                        Outcome::Duplicate(_) => dups += 1,
                        Outcome::Applied => {}
                    }
                    *slot = fold.record;
                }
            }
        }
        (sim.expected(), state, rejections, dups)
    }

    #[test]
    fn model_matches_the_real_state_machine_with_every_fault() {
        let faults = FaultRatios {
            duplicates: 0.05,
            malformed: 0.02,
            invalid_transitions: 0.03,
        };
        let mut sim = Simulation::new(config(42, faults)).unwrap();
        let (expected, state, rejections, dups) = replay(&mut sim);
        assert_eq!(expected.records, 3000);
        assert_eq!(rejections, expected.rejections);
        assert_eq!(dups, expected.duplicates);
        assert!(
            expected.duplicates > 50 && expected.rejections.len() >= 6,
            "faults happened"
        );
        assert_state_is_expected(&expected, &state);
    }

    #[test]
    fn without_faults_every_record_applies() {
        let mut sim = Simulation::new(config(1, FaultRatios::default())).unwrap();
        let (expected, _, rejections, dups) = replay(&mut sim);
        assert!(rejections.is_empty());
        assert_eq!((dups, expected.applied), (0, 3000));
    }

    #[test]
    fn same_seed_same_stream() {
        let mut a = Simulation::new(config(9, FaultRatios::default())).unwrap();
        let mut b = Simulation::new(config(9, FaultRatios::default())).unwrap();
        for _ in 0..100 {
            let (x, y) = (a.next_record().unwrap(), b.next_record().unwrap());
            assert_eq!(x.partition_key, y.partition_key);
        }
        assert_eq!(a.expected().products, b.expected().products);
    }

    #[test]
    fn zipf_concentrates_on_the_first_products() {
        let mut sim = Simulation::new(SimConfig {
            products: 200,
            events: 20_000,
            ..config(5, FaultRatios::default())
        })
        .unwrap();
        while sim.next_record().is_some() {}
        let e = sim.expected();
        let first = e.products["t1-P00001"].records;
        assert!(first as f64 > 0.15 * 20_000.0, "hot product got {first}");
    }

    #[test]
    fn bad_settings_are_refused_with_a_reason() {
        let bad = SimConfig {
            products: 0,
            ..config(1, FaultRatios::default())
        };
        assert!(Simulation::new(bad).is_err());
        let bad = config(
            1,
            FaultRatios {
                duplicates: 0.5,
                malformed: 0.5,
                invalid_transitions: 0.0,
            },
        );
        assert!(Simulation::new(bad)
            .err()
            .unwrap()
            .to_string()
            .contains("sum"));
    }

    type State = BTreeMap<String, Option<inventory_domain::ProductRecord>>;

    pub(crate) fn assert_state_is_expected(expected: &Expected, state: &State) {
        for (id, p) in &expected.products {
            let got = state.get(id).cloned().flatten();
            match p.status {
                ExpectedStatus::Absent => assert!(got.is_none(), "{id}"),
                s => {
                    let rec = got.unwrap_or_else(|| panic!("{id} expected {s:?}, absent"));
                    let status = if s == ExpectedStatus::Active {
                        ProductStatus::Active
                    } else {
                        ProductStatus::Removed
                    };
                    assert_eq!(
                        (rec.status, rec.quantity, rec.version),
                        (status, p.quantity, p.version),
                        "{id}"
                    );
                }
            }
        }
    }

    /// What the processor makes of records in the order they landed: each product's events
    /// through the real validator and state machine, an event id seen before skipped (the
    /// processor's duplicate window covers every retry here) after checking it repeats its
    /// first record byte for byte.
    #[derive(Default)]
    pub(crate) struct Landed {
        pub state: State,
        pub rejections: BTreeMap<RejectionReason, u64>,
        /// Records repeating an earlier event id.
        pub repeats: u64,
        /// For each repeat, how many records landed between it and its first record.
        pub repeat_distances: Vec<u64>,
        first: std::collections::HashMap<String, (u64, String, Vec<u8>)>,
        landed: u64,
    }

    impl Landed {
        pub fn land(&mut self, partition_key: &str, data: &[u8]) {
            self.landed += 1;
            let seq = self.landed;
            match parse_event(data) {
                Err(rej) => *self.rejections.entry(rej.reason).or_default() += 1,
                Ok(ev) => {
                    assert_eq!(ev.product_id, partition_key);
                    if let Some(id) = ev.event_id.clone() {
                        if let Some((at, key, bytes)) = self.first.get(&id) {
                            assert_eq!(
                                (key.as_str(), bytes.as_slice()),
                                (partition_key, data),
                                "a repeat of event {id} is not a copy of its first record"
                            );
                            self.repeats += 1;
                            self.repeat_distances.push(seq - at - 1);
                            return;
                        }
                        self.first
                            .insert(id, (seq, partition_key.to_owned(), data.to_vec()));
                    }
                    let slot = self.state.entry(partition_key.to_owned()).or_default();
                    let fold = fold_product(slot.clone(), &[sequenced(seq, ev)]);
                    match &fold.outcomes[0] {
                        Outcome::Rejected(rej) => {
                            *self.rejections.entry(rej.reason).or_default() += 1
                        }
                        Outcome::Duplicate(d) => panic!("unexpected duplicate {d:?}"),
                        Outcome::Applied => {}
                    }
                    *slot = fold.record;
                }
            }
        }

        /// The pipeline's verdict: exactly the model's state, rejections and repeats.
        pub fn assert_expected(&self, expected: &Expected) {
            assert_eq!(self.landed, expected.records, "records landed");
            assert_eq!(self.rejections, expected.rejections);
            assert_eq!(self.repeats, expected.duplicates, "repeats");
            assert_state_is_expected(expected, &self.state);
        }
    }

    fn late_config(products: usize, events: u64, seed: u64) -> (SimConfig, ProducerConfig) {
        (
            SimConfig {
                products,
                events,
                skew: Skew::Zipf(1.1),
                seed,
                run_id: "late".into(),
                faults: FaultRatios {
                    duplicates: 0.02,
                    malformed: 0.01,
                    invalid_transitions: 0.02,
                },
            },
            ProducerConfig {
                producers: 4,
                retry_share: 0.05,
                retry_distance: RetryDistance { min: 1, max: 2_000 },
            },
        )
    }

    #[test]
    fn late_retries_are_byte_identical_copies_at_their_distances() {
        let (config, producers) = late_config(200, 20_000, 11);
        let mut sim = Simulation::with_producers(config, producers).unwrap();
        let mut originals: BTreeMap<u64, OutRecord> = BTreeMap::new();
        let (mut late, mut distances) = (0u64, Vec::new());
        let mut by_producer = [0u64; 4];
        while let Some(r) = sim.next_record() {
            by_producer[r.producer] += 1;
            match r.retry {
                Retry::No => {}
                Retry::Later => {
                    originals.insert(r.index, r);
                }
                Retry::Of { original, distance } => {
                    let o = originals
                        .remove(&original)
                        .expect("a late retry follows its original");
                    assert_eq!(
                        (&o.partition_key, &o.data, o.producer),
                        (&r.partition_key, &r.data, r.producer),
                        "a late retry is its original's producer putting the same bytes"
                    );
                    assert_eq!(r.index - original - 1, distance);
                    assert!((1..=2_000).contains(&distance), "{distance}");
                    late += 1;
                    distances.push(distance);
                }
            }
        }
        let e = sim.expected();
        assert!(originals.is_empty(), "every planned retry was made");
        assert_eq!(e.late_retries, late);
        assert_eq!(e.records, 20_000);
        assert!(e.duplicates > late, "immediate duplicates too");
        let share = late as f64 / 20_000.0;
        assert!((0.04..0.06).contains(&share), "late retry share {share}");
        distances.sort_unstable();
        let median = distances[distances.len() / 2];
        assert!(
            (800..1_200).contains(&median),
            "distances spread: median {median}"
        );
        assert!(by_producer.iter().all(|n| *n > 4_000), "{by_producer:?}");
    }

    /// Concurrent producers land the products' records interleaved in any way that keeps each
    /// product's originals in order, and each late retry anywhere after its original: the
    /// state must be the model's whatever the interleaving.
    #[test]
    fn any_landing_order_that_keeps_each_products_order_gives_the_expected_state() {
        for seed in 0..4 {
            // 10 producers on 3 hot products.
            let (mut config, mut producers) = late_config(3, 6_000, seed);
            config.skew = Skew::Uniform;
            producers.producers = 10;
            let mut sim = Simulation::with_producers(config, producers).unwrap();
            let mut queues: BTreeMap<String, VecDeque<OutRecord>> = BTreeMap::new();
            let mut retries: BTreeMap<u64, OutRecord> = BTreeMap::new();
            while let Some(r) = sim.next_record() {
                match r.retry {
                    Retry::Of { original, .. } => {
                        retries.insert(original, r);
                    }
                    _ => queues
                        .entry(r.partition_key.clone())
                        .or_default()
                        .push_back(r),
                }
            }
            let expected = sim.expected();
            assert!(expected.late_retries > 200);
            let mut rng = StdRng::seed_from_u64(seed);
            let mut released: Vec<OutRecord> = Vec::new();
            let mut landed = Landed::default();
            loop {
                let keys: Vec<String> = queues
                    .iter()
                    .filter(|(_, q)| !q.is_empty())
                    .map(|(k, _)| k.clone())
                    .collect();
                if keys.is_empty() {
                    break;
                }
                if !released.is_empty() && rng.random_bool(0.05) {
                    let r = released.swap_remove(rng.random_range(0..released.len()));
                    landed.land(&r.partition_key, &r.data);
                }
                let key = &keys[rng.random_range(0..keys.len())];
                let Some(r) = queues.get_mut(key).and_then(VecDeque::pop_front) else {
                    continue;
                };
                landed.land(&r.partition_key, &r.data);
                if let Some(retry) = retries.remove(&r.index) {
                    released.push(retry);
                }
            }
            for r in released {
                landed.land(&r.partition_key, &r.data);
            }
            assert!(retries.is_empty());
            landed.assert_expected(&expected);
        }
    }

    #[test]
    fn producers_share_the_products_without_changing_the_events() {
        let cfg = config(3, FaultRatios::default());
        let mut one = Simulation::new(cfg.clone()).unwrap();
        let mut ten = Simulation::with_producers(
            cfg,
            ProducerConfig {
                producers: 10,
                ..ProducerConfig::default()
            },
        )
        .unwrap();
        let mut hot_producers = std::collections::BTreeSet::new();
        while let Some(a) = one.next_record() {
            let b = ten.next_record().unwrap();
            assert_eq!(
                (a.partition_key.as_str(), a.index),
                (b.partition_key.as_str(), b.index)
            );
            assert_eq!(a.producer, 0);
            assert!(b.producer < 10);
            if b.partition_key == "t1-P00001" {
                hot_producers.insert(b.producer);
            }
        }
        assert_eq!(
            hot_producers.len(),
            10,
            "every producer sells the hot product"
        );
        assert_eq!(one.expected().products, ten.expected().products);
    }

    #[test]
    fn bad_producer_settings_are_refused_with_what_to_change() {
        let refused = |f: fn(&mut ProducerConfig)| {
            let mut p = ProducerConfig::default();
            f(&mut p);
            Simulation::with_producers(config(1, FaultRatios::default()), p)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(refused(|p| p.producers = 0).contains("--producers"));
        assert!(refused(|p| p.producers = MAX_PRODUCERS + 1).contains("--producers"));
        assert!(refused(|p| p.retry_share = -0.1).contains("--retry-share"));
        assert!(refused(|p| p.retry_share = 1.5).contains("--retry-share"));
        assert!(refused(|p| p.retry_share = f64::NAN).contains("--retry-share"));
        assert!(
            refused(|p| p.retry_distance = RetryDistance { min: 9, max: 3 })
                .contains("--retry-distance")
        );
        assert!(
            refused(|p| p.retry_distance.max = MAX_RETRY_DISTANCE + 1).contains("--retry-distance")
        );
        let with_faults = SimConfig {
            faults: FaultRatios {
                duplicates: 0.5,
                malformed: 0.2,
                invalid_transitions: 0.1,
            },
            ..config(1, FaultRatios::default())
        };
        let p = ProducerConfig {
            retry_share: 0.2,
            ..ProducerConfig::default()
        };
        let e = Simulation::with_producers(with_faults, p).err().unwrap();
        assert!(e.to_string().contains("at most 0.9"), "{e}");
        assert!(check_retry_distance(RetryDistance { min: 5, max: 4 }).is_err());

        // A retry must land within the processor's duplicate window.
        assert!(p
            .check_rate(Some(1.0))
            .unwrap_err()
            .to_string()
            .contains("raise --rate"));
        assert!(p.check_rate(Some(100.0)).is_ok());
        assert!(p.check_rate(None).is_ok());
        assert!(ProducerConfig::default().check_rate(Some(1.0)).is_ok());
    }

    #[test]
    fn expected_files_from_before_producers_still_read() {
        let mut sim = Simulation::new(config(2, FaultRatios::default())).unwrap();
        while sim.next_record().is_some() {}
        let mut json = serde_json::to_value(sim.expected()).unwrap();
        let obj = json.as_object_mut().unwrap();
        obj.remove("producers");
        obj.remove("late_retries");
        let e: Expected = serde_json::from_value(json).unwrap();
        assert_eq!(
            (e.producers, e.late_retries),
            (ProducerConfig::default(), 0)
        );
    }
}
