//! The simulated catalogue: a seeded, reproducible stream of e-commerce events (additions,
//! sales, restocks, removals, re-additions) with optional faults, and the model of the
//! state those events must produce.

use std::collections::BTreeMap;

use chrono::{SecondsFormat, Utc};
use inventory_domain::RejectionReason;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use serde::{Deserialize, Serialize};

/// How often each product is picked.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "exponent", rename_all = "snake_case")]
pub enum Skew {
    Uniform,
    /// Product k (1-based) is picked with probability ∝ 1 / k^exponent.
    Zipf(f64),
}

/// Fractions of generated records that are faults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultRatios {
    /// A valid event published a second time (same event_id, new record).
    pub duplicates: f64,
    /// Records that are not valid events (bad JSON, bad fields, unknown type, oversized).
    pub malformed: f64,
    /// Valid events the product's state must refuse (oversell, double add, unknown product).
    pub invalid_transitions: f64,
}

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

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("--products must be between 1 and 100000 (got {0})")]
    Products(usize),
    #[error("fault ratios must each be in [0, 1] and sum to at most 0.9 (got {0:?})")]
    Faults(FaultRatios),
    #[error("Zipf exponent must be > 0 and finite (got {0})")]
    Skew(f64),
    #[error("run id must be 1-16 characters of A-Z, a-z, 0-9 (got `{0}`)")]
    RunId(String),
}

/// One record to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutRecord {
    pub partition_key: String,
    pub data: Vec<u8>,
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
    pub started_at: String,
    pub records: u64,
    pub applied: u64,
    pub duplicates: u64,
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

pub struct Simulation {
    config: SimConfig,
    rng: StdRng,
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
    started_at: String,
}

impl Simulation {
    pub fn new(config: SimConfig) -> Result<Self, SimError> {
        if config.products == 0 || config.products > 100_000 {
            return Err(SimError::Products(config.products));
        }
        let f = config.faults;
        let ratios = [f.duplicates, f.malformed, f.invalid_transitions];
        if ratios.iter().any(|r| !(0.0..=1.0).contains(r)) || ratios.iter().sum::<f64>() > 0.9 {
            return Err(SimError::Faults(f));
        }
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
            rng: StdRng::seed_from_u64(config.seed),
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
            started_at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            config,
        })
    }

    pub fn config(&self) -> &SimConfig {
        &self.config
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
        if let Some((p, dup)) = self.pending_duplicate.take() {
            self.duplicates += 1;
            self.records_by_product[p] += 1;
            return Some(dup);
        }
        let f = self.config.faults;
        let roll: f64 = self.rng.random();
        let p = self.pick_product();
        let record = if roll < f.malformed {
            self.malformed(p)
        } else if roll < f.malformed + f.invalid_transitions {
            self.invalid_transition(p)
        } else {
            let record = self.valid_event(p);
            // The duplicate directly follows its original, as a producer's retry would.
            let dup_roll: f64 = self.rng.random();
            if dup_roll < f.duplicates / (1.0 - f.malformed - f.invalid_transitions) {
                self.pending_duplicate = Some((p, record.clone()));
            }
            record
        };
        self.records_by_product[p] += 1;
        Some(record)
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
        }
    }

    fn valid_event(&mut self, p: usize) -> OutRecord {
        let m = self.model[p];
        self.applied += 1;
        let (kind, name, q, next) = if !m.active {
            let q = self.rng.random_range(20..=200);
            let name = format!("Product {}", p + 1);
            ("product_added", Some(name), Some(q), (true, q))
        } else {
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
            started_at: self.started_at.clone(),
            records: self.generated,
            applied: self.applied,
            duplicates: self.duplicates,
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
mod tests {
    use super::*;
    use inventory_domain::{
        fold_product, parse_event, Outcome, ProductStatus, SequenceNumber, SequencedEvent,
    };

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
                    let se = SequencedEvent {
                        sequence: SequenceNumber::parse(&seq.to_string()).unwrap(),
                        record_id: format!("s:{seq}"),
                        event: ev,
                    };
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
        for (id, p) in &expected.products {
            let got = state.get(id).cloned().flatten();
            match p.status {
                ExpectedStatus::Absent => assert!(got.is_none(), "{id}"),
                s => {
                    let rec = got.unwrap();
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
}
