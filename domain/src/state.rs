//! The per-product state machine and the bookkeeping that makes its effect exactly-once:
//! the last applied sequence number (redeliveries) and a short window of recent event ids
//! (a producer's duplicate publishes). Pure: no I/O.

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::event::{Change, InventoryEvent, Rejection, RejectionReason, MAX_STOCK};
use crate::sequence::SequenceNumber;

/// How many recent event ids a product remembers to recognise a producer's duplicate.
/// A producer retries an event before it sends that product's next one (the generator
/// guarantees it; the SDK's retries do too), so a duplicate lands within a few events of its
/// original; 16 covers that with margin while keeping the item within one 1 KB write unit.
pub const RECENT_IDS: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductStatus {
    Active,
    Removed,
}

impl ProductStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ProductStatus::Active => "active",
            ProductStatus::Removed => "removed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "active" => Some(ProductStatus::Active),
            "removed" => Some(ProductStatus::Removed),
            _ => None,
        }
    }
}

/// Hashes of the most recent event ids, oldest first. 8 bytes each instead of the ids
/// themselves keeps the item small; a false match needs a 64-bit collision within 16 ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecentIds(Vec<u64>);

impl RecentIds {
    pub fn contains(&self, key: &str) -> bool {
        self.0.contains(&xxh3_64(key.as_bytes()))
    }

    pub fn push(&mut self, key: &str) {
        if self.0.len() == RECENT_IDS {
            self.0.remove(0);
        }
        self.0.push(xxh3_64(key.as_bytes()));
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.iter().flat_map(|h| h.to_le_bytes()).collect()
    }

    /// Reads what [`RecentIds::to_bytes`] wrote; a trailing partial hash is ignored.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let mut hashes: Vec<u64> = bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect();
        let excess = hashes.len().saturating_sub(RECENT_IDS);
        hashes.drain(..excess);
        Self(hashes)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What is stored per product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductRecord {
    pub product_id: String,
    pub name: String,
    pub quantity: u64,
    pub status: ProductStatus,
    /// Events applied to this product, ever. Also the optimistic-concurrency version.
    pub version: u64,
    /// The last sequence number this product has processed (applied or rejected).
    pub last_sequence: SequenceNumber,
    pub last_event_at: String,
    pub recent_ids: RecentIds,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DuplicateKind {
    /// The same record again (a retry of the batch): its sequence number is not new.
    Redelivery,
    /// The same event id in a new record (the producer published it twice).
    ProducerDuplicate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    Duplicate(DuplicateKind),
    Rejected(Rejection),
}

/// One event with its position in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequencedEvent {
    pub sequence: SequenceNumber,
    /// The record's identity (`shardId:sequenceNumber`), which stands in for a missing
    /// event id.
    pub record_id: String,
    pub event: InventoryEvent,
}

impl SequencedEvent {
    pub fn dedup_key(&self) -> &str {
        self.event.dedup_key(&self.record_id)
    }
}

/// Applies one event to a product. `current` is `None` for a product never added.
pub fn apply(current: &mut Option<ProductRecord>, ev: &SequencedEvent) -> Outcome {
    if let Some(rec) = current.as_ref() {
        if ev.sequence <= rec.last_sequence {
            return Outcome::Duplicate(DuplicateKind::Redelivery);
        }
        if rec.recent_ids.contains(ev.dedup_key()) {
            // Remembered as processed so a redelivery of this record is also a duplicate.
            let rec = current.as_mut().expect("checked above");
            rec.last_sequence = ev.sequence.clone();
            return Outcome::Duplicate(DuplicateKind::ProducerDuplicate);
        }
    }
    match transition(current.as_ref(), &ev.event) {
        Ok(next) => {
            let mut rec = next;
            rec.version = current.as_ref().map_or(0, |r| r.version) + 1;
            rec.last_sequence = ev.sequence.clone();
            rec.last_event_at = ev.event.timestamp.clone();
            rec.recent_ids.push(ev.dedup_key());
            *current = Some(rec);
            Outcome::Applied
        }
        Err(rejection) => {
            // An existing product remembers the rejected event too, so neither its
            // redelivery nor a duplicate publish is rejected (and recorded) twice.
            if let Some(rec) = current.as_mut() {
                rec.last_sequence = ev.sequence.clone();
                rec.recent_ids.push(ev.dedup_key());
            }
            Outcome::Rejected(rejection)
        }
    }
}

/// The state machine proper, without bookkeeping. Returns the next record with the old
/// bookkeeping fields, which [`apply`] then advances.
fn transition(
    current: Option<&ProductRecord>,
    event: &InventoryEvent,
) -> Result<ProductRecord, Rejection> {
    let active = current.filter(|r| r.status == ProductStatus::Active);
    match (&event.change, active) {
        (Change::Added { name, quantity }, None) => {
            let mut next = current.cloned().unwrap_or_else(|| ProductRecord {
                product_id: event.product_id.clone(),
                name: String::new(),
                quantity: 0,
                status: ProductStatus::Active,
                version: 0,
                last_sequence: SequenceNumber::parse("0").expect("0 is a sequence number"),
                last_event_at: String::new(),
                recent_ids: RecentIds::default(),
            });
            next.name.clone_from(name);
            next.quantity = *quantity;
            next.status = ProductStatus::Active;
            Ok(next)
        }
        (Change::Added { .. }, Some(_)) => Err(Rejection::new(
            RejectionReason::AlreadyExists,
            format!("product {} is already active", event.product_id),
        )),
        (_, None) => Err(Rejection::new(
            RejectionReason::ProductNotFound,
            format!(
                "product {} is not active (never added or removed)",
                event.product_id
            ),
        )),
        (Change::Removed, Some(rec)) => {
            let mut next = rec.clone();
            next.status = ProductStatus::Removed;
            next.quantity = 0;
            Ok(next)
        }
        (Change::Increased(amount), Some(rec)) => {
            let quantity = rec
                .quantity
                .checked_add(*amount)
                .filter(|q| *q <= MAX_STOCK)
                .ok_or_else(|| {
                    Rejection::new(
                        RejectionReason::StockLimitExceeded,
                        format!("stock {} + {amount} would exceed {MAX_STOCK}", rec.quantity),
                    )
                })?;
            Ok(ProductRecord {
                quantity,
                ..rec.clone()
            })
        }
        (Change::Decreased(amount), Some(rec)) => {
            let quantity = rec.quantity.checked_sub(*amount).ok_or_else(|| {
                Rejection::new(
                    RejectionReason::InsufficientStock,
                    format!("stock is {}, cannot take {amount}", rec.quantity),
                )
            })?;
            Ok(ProductRecord {
                quantity,
                ..rec.clone()
            })
        }
    }
}

/// The result of folding one product's events of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductFold {
    pub record: Option<ProductRecord>,
    /// One outcome per input event, in input order.
    pub outcomes: Vec<Outcome>,
    /// Whether the stored item must be written (something was applied or rejected against
    /// an existing product).
    pub changed: bool,
}

/// Folds a product's events (in stream order) over its stored record.
pub fn fold_product(current: Option<ProductRecord>, events: &[SequencedEvent]) -> ProductFold {
    let before = current.clone();
    let mut record = current;
    let outcomes = events.iter().map(|ev| apply(&mut record, ev)).collect();
    let changed = record != before;
    ProductFold {
        record,
        outcomes,
        changed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn ev(seq: u64, id: &str, product: &str, change: Change) -> SequencedEvent {
        SequencedEvent {
            sequence: SequenceNumber::parse(&seq.to_string()).unwrap(),
            record_id: format!("shardId-000000000000:{seq}"),
            event: InventoryEvent {
                event_id: Some(id.to_owned()),
                product_id: product.to_owned(),
                change,
                timestamp: "2023-09-11T12:00:00Z".into(),
            },
        }
    }

    fn added(q: u64) -> Change {
        Change::Added {
            name: "Laptop".into(),
            quantity: q,
        }
    }

    fn rejected(o: &Outcome) -> Option<RejectionReason> {
        match o {
            Outcome::Rejected(r) => Some(r.reason),
            _ => None,
        }
    }

    #[test]
    fn lifecycle_add_change_remove_readd() {
        let events = [
            ev(1, "a", "P", added(10)),
            ev(2, "b", "P", Change::Decreased(3)),
            ev(3, "c", "P", Change::Increased(5)),
            ev(4, "d", "P", Change::Removed),
            ev(5, "e", "P", added(2)),
        ];
        let fold = fold_product(None, &events);
        let rec = fold.record.unwrap();
        assert!(fold.outcomes.iter().all(|o| *o == Outcome::Applied));
        assert_eq!(
            (rec.quantity, rec.status, rec.version),
            (2, ProductStatus::Active, 5)
        );
        assert_eq!(rec.last_sequence.as_str(), "5");
    }

    #[test]
    fn invalid_transitions_are_rejected_with_their_reason() {
        let events = [
            ev(1, "a", "P", Change::Increased(1)),
            ev(2, "b", "P", added(1)),
            ev(3, "c", "P", added(1)),
            ev(4, "d", "P", Change::Decreased(2)),
            ev(5, "e", "P", Change::Increased(MAX_STOCK)),
            ev(6, "f", "P", Change::Removed),
            ev(7, "g", "P", Change::Removed),
            ev(8, "h", "P", Change::Decreased(1)),
        ];
        let fold = fold_product(None, &events);
        let reasons: Vec<_> = fold.outcomes.iter().map(rejected).collect();
        use RejectionReason::*;
        assert_eq!(
            reasons,
            vec![
                Some(ProductNotFound),
                None,
                Some(AlreadyExists),
                Some(InsufficientStock),
                Some(StockLimitExceeded),
                None,
                Some(ProductNotFound),
                Some(ProductNotFound)
            ]
        );
        let rec = fold.record.unwrap();
        assert_eq!((rec.quantity, rec.version), (0, 2));
        assert_eq!(
            rec.last_sequence.as_str(),
            "8",
            "rejections advance the position"
        );
    }

    #[test]
    fn a_rejection_on_a_never_added_product_stores_nothing() {
        let fold = fold_product(None, &[ev(1, "a", "P", Change::Decreased(1))]);
        assert_eq!(fold.record, None);
        assert!(!fold.changed);
    }

    #[test]
    fn redelivery_and_producer_duplicates_change_nothing() {
        let first = fold_product(
            None,
            &[
                ev(1, "a", "P", added(10)),
                ev(2, "b", "P", Change::Decreased(4)),
            ],
        );
        let again = fold_product(
            first.record.clone(),
            &[
                ev(2, "b", "P", Change::Decreased(4)),
                ev(3, "b", "P", Change::Decreased(4)),
            ],
        );
        assert_eq!(
            again.outcomes,
            vec![
                Outcome::Duplicate(DuplicateKind::Redelivery),
                Outcome::Duplicate(DuplicateKind::ProducerDuplicate)
            ]
        );
        let rec = again.record.unwrap();
        assert_eq!((rec.quantity, rec.version), (6, 2));
    }

    #[test]
    fn recent_ids_survive_storage_and_stay_bounded() {
        let mut ids = RecentIds::default();
        for i in 0..40 {
            ids.push(&format!("id-{i}"));
        }
        assert_eq!(ids.len(), RECENT_IDS);
        let back = RecentIds::from_bytes(&ids.to_bytes());
        assert_eq!(back, ids);
        assert!(back.contains("id-39") && !back.contains("id-0"));
    }

    // ---- property: any batching, crash and redelivery gives the state of one clean run ----

    #[derive(Debug, Clone)]
    enum Op {
        Add(u64),
        Remove,
        Inc(u64),
        Dec(u64),
        /// A producer duplicate of an earlier event of the same product (index back).
        Dup(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u64..20).prop_map(Op::Add),
            Just(Op::Remove),
            (1u64..10).prop_map(Op::Inc),
            (1u64..15).prop_map(Op::Dec),
            (0usize..4).prop_map(Op::Dup),
        ]
    }

    fn stream(ops: &[(u8, Op)]) -> Vec<SequencedEvent> {
        let mut out: Vec<SequencedEvent> = Vec::new();
        for (i, (p, op)) in ops.iter().enumerate() {
            let product = format!("P{p}");
            let seq = (i as u64 + 1) * 7;
            let change = match op {
                Op::Add(q) => added(*q),
                Op::Remove => Change::Removed,
                Op::Inc(q) => Change::Increased(*q),
                Op::Dec(q) => Change::Decreased(*q),
                Op::Dup(back) => {
                    let same: Vec<_> = out
                        .iter()
                        .filter(|e| e.event.product_id == product)
                        .collect();
                    if let Some(orig) = same.iter().rev().nth(*back).or(same.last()) {
                        let mut dup = (*orig).clone();
                        dup.sequence = SequenceNumber::parse(&seq.to_string()).unwrap();
                        dup.record_id = format!("shardId-000000000000:{seq}");
                        out.push(dup);
                        continue;
                    }
                    Change::Removed
                }
            };
            out.push(ev(seq, &format!("e{i}"), &product, change));
        }
        out
    }

    type Store = BTreeMap<String, ProductRecord>;

    /// Processes one delivery of a batch; only the products in `committed` get their write
    /// through (the rest "crashed"). Returns the rejections recorded, keyed by record id.
    fn deliver(
        store: &mut Store,
        batch: &[SequencedEvent],
        commit: impl Fn(usize) -> bool,
    ) -> BTreeMap<String, RejectionReason> {
        let mut by_product: BTreeMap<&str, Vec<SequencedEvent>> = BTreeMap::new();
        for e in batch {
            by_product
                .entry(&e.event.product_id)
                .or_default()
                .push(e.clone());
        }
        let mut rejections = BTreeMap::new();
        for (i, (product, events)) in by_product.into_iter().enumerate() {
            if !commit(i) {
                continue;
            }
            let fold = fold_product(store.get(product).cloned(), &events);
            for (e, o) in events.iter().zip(&fold.outcomes) {
                if let Some(r) = rejected(o) {
                    rejections.insert(e.record_id.clone(), r);
                }
            }
            if let Some(rec) = fold.record.filter(|_| fold.changed) {
                store.insert(product.to_owned(), rec);
            }
        }
        rejections
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn batching_crashes_and_redelivery_never_change_the_result(
            ops in prop::collection::vec((0u8..4, op()), 1..60),
            cuts in prop::collection::vec(1usize..60, 0..8),
            crash_masks in prop::collection::vec(any::<u8>(), 8),
            replay_from in 0usize..60,
        ) {
            let events = stream(&ops);
            let mut once = Store::new();
            let expected_rejections = deliver(&mut once, &events, |_| true);

            let mut bounds: Vec<usize> = cuts.into_iter().map(|c| c.min(events.len())).collect();
            bounds.push(0);
            bounds.push(events.len());
            bounds.sort_unstable();
            bounds.dedup();
            let mut store = Store::new();
            let mut rejections = BTreeMap::new();
            for (k, w) in bounds.windows(2).enumerate() {
                let batch = &events[w[0]..w[1]];
                // A crash after some products' writes, then the Pipe redelivers the batch.
                let mask = crash_masks[k % crash_masks.len()];
                rejections.extend(deliver(&mut store, batch, |i| mask & (1 << (i % 8)) != 0));
                rejections.extend(deliver(&mut store, batch, |_| true));
            }
            // A later redelivery of an arbitrary suffix of the stream (e.g. a checkpoint lost).
            let from = replay_from.min(events.len());
            rejections.extend(deliver(&mut store, &events[from..], |_| true));

            prop_assert_eq!(&store, &once);
            // Rejections are stored keyed by record id, so a re-recorded one overwrites itself.
            prop_assert_eq!(rejections, expected_rejections);
        }

        #[test]
        fn stock_is_never_negative_and_matches_a_simple_model(
            ops in prop::collection::vec((0u8..1, op()), 1..80),
        ) {
            let events = stream(&ops);
            let fold = fold_product(None, &events);
            // An independent, naive model of the same rules.
            let mut model: Option<(bool, u64)> = None;
            let mut seen: Vec<&str> = Vec::new();
            for e in &events {
                if seen.contains(&e.dedup_key()) { continue; }
                let active = matches!(model, Some((true, _)));
                match (&e.event.change, active) {
                    (Change::Added { quantity, .. }, false) => { model = Some((true, *quantity)); }
                    (Change::Removed, true) => { model = Some((false, 0)); }
                    (Change::Increased(a), true) => { let q = model.unwrap().1 + a; model = Some((true, q)); }
                    (Change::Decreased(a), true) if model.unwrap().1 >= *a => { let q = model.unwrap().1 - a; model = Some((true, q)); }
                    _ => {}
                }
                if model.is_some() { seen.push(e.dedup_key()); }
            }
            let got = fold.record.map(|r| (r.status == ProductStatus::Active, r.quantity));
            prop_assert_eq!(got, model);
        }
    }
}
