//! The per-product state machine and the bookkeeping that makes its effect exactly-once:
//! the product's position in the stream (redeliveries), the shard log of processed events
//! (a producer's duplicate at any distance inside the window, [`crate::dedup`]) and a short
//! list of recent event ids kept in the item (duplicates past the window). Pure: no I/O.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{xxh3_128, xxh3_64};

use crate::dedup::{
    self, classify, DedupKey, EventKeys, LogKey, LogRecord, Seen, SeenIndex, Verdict,
};
use crate::event::{Change, InventoryEvent, Rejection, RejectionReason, MAX_STOCK};
use crate::lineage::{self, Place, Position, RecordAt, Stray, StreamId, StreamLineage};
use crate::sequence::SequenceNumber;

/// How many recent event ids a product item remembers. The shard log recognises
/// duplicates at any distance inside its window; these 16 still catch a near duplicate
/// past the window's edge, at no extra write (they stay inside the item's 1 KB unit).
pub const RECENT_IDS: usize = 16;
/// Bytes of each recent id's hash: 80 bits, so a fresh event is taken for one of its
/// product's last 16 at most once in 10⁹ years at 100 shards × 1,000 events/s.
const RECENT_ID_BYTES: usize = 10;

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

/// Hashes of the most recent event ids, oldest first: 80 bits each instead of the ids
/// themselves keeps the item small. Items written before the ids were widened hold 64-bit
/// hashes (`legacy`, older than every wide one); they are still matched until newer ids push
/// them out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecentIds {
    legacy: Vec<u64>,
    wide: Vec<[u8; RECENT_ID_BYTES]>,
}

fn recent_hash(key: &str) -> [u8; RECENT_ID_BYTES] {
    let mut out = [0; RECENT_ID_BYTES];
    out.copy_from_slice(&xxh3_128(key.as_bytes()).to_le_bytes()[..RECENT_ID_BYTES]);
    out
}

impl RecentIds {
    pub fn contains(&self, key: &str) -> bool {
        self.wide.contains(&recent_hash(key))
            || (!self.legacy.is_empty() && self.legacy.contains(&xxh3_64(key.as_bytes())))
    }

    pub fn push(&mut self, key: &str) {
        if self.len() == RECENT_IDS {
            if self.legacy.is_empty() {
                self.wide.remove(0);
            } else {
                self.legacy.remove(0);
            }
        }
        self.wide.push(recent_hash(key));
    }

    /// The wide hashes, as stored (attribute `recent`).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.wide.concat()
    }

    /// The 64-bit hashes of an item written before the widening (attribute `recent_ids`);
    /// empty once they have rolled out.
    pub fn legacy_bytes(&self) -> Vec<u8> {
        self.legacy.iter().flat_map(|h| h.to_le_bytes()).collect()
    }

    /// Reads what [`to_bytes`](Self::to_bytes) and [`legacy_bytes`](Self::legacy_bytes)
    /// wrote; a trailing partial hash is ignored, and only the newest 16 are kept.
    pub fn from_parts(legacy: &[u8], wide: &[u8]) -> Self {
        let mut ids = Self {
            legacy: legacy
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect(),
            wide: wide
                .chunks_exact(RECENT_ID_BYTES)
                .map(|c| c.try_into().unwrap_or([0; RECENT_ID_BYTES]))
                .collect(),
        };
        let excess = ids.wide.len().saturating_sub(RECENT_IDS);
        ids.wide.drain(..excess);
        let excess = ids.len().saturating_sub(RECENT_IDS);
        ids.legacy.drain(..excess.min(ids.legacy.len()));
        ids
    }

    /// Reads 64-bit hashes alone (an item written before the widening).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self::from_parts(bytes, &[])
    }

    pub fn len(&self) -> usize {
        self.legacy.len() + self.wide.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
    /// The number of the shard `last_sequence` belongs to (`None` in items written before
    /// shards were tracked: those compare sequence numbers as before).
    pub last_shard: Option<u64>,
    /// The stream `last_shard` belongs to (`None` in items written before streams were
    /// tracked: taken as the stream of the record compared with it).
    pub last_stream: Option<StreamId>,
    /// The last applied event's own timestamp.
    pub last_event_at: DateTime<Utc>,
    pub recent_ids: RecentIds,
    /// The key of the history entries of the write that stored this state (`None` with
    /// history off, or in items written before it): the next write's entries point back to
    /// it ([`crate::history`]).
    pub history: Option<crate::history::HistoryKey>,
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

impl ProductRecord {
    /// Where the product stands in the stream.
    pub fn position(&self) -> Position<'_> {
        Position {
            stream: self.last_stream,
            shard: self.last_shard,
            sequence: &self.last_sequence,
        }
    }

    fn move_to(&mut self, ev: &SequencedEvent, stream: Option<StreamId>) {
        self.last_sequence = ev.sequence.clone();
        self.last_shard = Some(ev.shard);
        if stream.is_some() {
            self.last_stream = stream;
        }
    }
}

/// One event with its position in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequencedEvent {
    /// The shard's number ([`dedup::shard_ordinal`]); sequence numbers are compared only
    /// within one shard.
    pub shard: u64,
    pub sequence: SequenceNumber,
    /// The record's identity (`shardId:sequenceNumber`), which stands in for a missing
    /// event id.
    pub record_id: String,
    /// The record's `approximateArrivalTimestamp` in ms, rounded down to
    /// [`dedup::ARRIVAL_UNIT_MS`]: the dedup window's clock.
    pub arrival_ms: i64,
    /// [`DedupKey::of`] the product and the dedup key, and the 64-bit key logs written
    /// before the widening hold.
    pub keys: EventKeys,
    /// [`dedup::content_hash`] of the event.
    pub content: u32,
    /// [`dedup::record_hash`] of the sequence number.
    pub record: u32,
    pub event: InventoryEvent,
}

impl SequencedEvent {
    /// `record_id` is the Pipes `eventID` (`shardId-…:sequenceNumber`); the shard comes
    /// from it.
    pub fn new(
        sequence: SequenceNumber,
        record_id: String,
        arrival_ms: i64,
        event: InventoryEvent,
    ) -> Self {
        let shard = dedup::shard_ordinal(record_id.split_once(':').map_or("", |(s, _)| s));
        let dedup_key = event.dedup_key(&record_id);
        let keys = EventKeys {
            key: DedupKey::of(&event.product_id, dedup_key),
            legacy: dedup::legacy_dedup_hash(&event.product_id, dedup_key),
        };
        let content = dedup::content_hash(&event);
        let record = dedup::record_hash(sequence.as_str());
        Self {
            shard,
            record,
            sequence,
            record_id,
            arrival_ms: dedup::arrival_unit(arrival_ms),
            keys,
            content,
            event,
        }
    }

    pub fn dedup_key(&self) -> &str {
        self.event.dedup_key(&self.record_id)
    }

    pub fn log_record(&self) -> LogRecord {
        LogRecord {
            key: LogKey::Wide(self.keys.key),
            content: self.content,
            record: self.record,
            arrival_ms: self.arrival_ms,
        }
    }
}

/// Where a fold's events come from, to place each against its product's position
/// ([`lineage::place`]).
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// The stream as Kinesis lists it (the processor, the dead-letter consumer).
    Listed(&'a StreamLineage),
    /// No listing (the generator's model, fuzzing): one stream, where a record on the
    /// position's shard is behind it at or before its sequence number and a record on any
    /// other shard is ahead.
    Unlisted,
}

impl Source<'_> {
    /// Where `ev` of the product with hash key `hash` stands against `current`.
    pub fn place(&self, hash: u128, ev: &SequencedEvent, current: Option<&ProductRecord>) -> Place {
        match self {
            Source::Listed(lineage) => lineage::place(
                lineage,
                RecordAt {
                    shard: ev.shard,
                    sequence: &ev.sequence,
                    hash,
                },
                current.map(ProductRecord::position).as_ref(),
            ),
            Source::Unlisted => match current {
                Some(rec) if rec.last_shard.is_none_or(|s| s == ev.shard) => {
                    if ev.sequence <= rec.last_sequence {
                        Place::Behind
                    } else {
                        Place::Ahead
                    }
                }
                _ => Place::Ahead,
            },
        }
    }

    fn stream(&self) -> Option<StreamId> {
        match self {
            Source::Listed(lineage) => Some(lineage.stream),
            Source::Unlisted => None,
        }
    }
}

/// What a fold consults and remembers to recognise duplicates: the shard log (through
/// `index`), the events this fold already processed, and the window; and where the events
/// come from, to place them against the product's position.
pub struct DedupContext<'a> {
    pub index: &'a dyn SeenIndex,
    pub window_ms: i64,
    pub source: Source<'a>,
    this_fold: HashMap<DedupKey, Seen>,
    /// [`lineage::hash_key`] of the product, computed once per fold.
    hash: Option<u128>,
}

impl<'a> DedupContext<'a> {
    pub fn new(index: &'a dyn SeenIndex, window_ms: i64, source: Source<'a>) -> Self {
        Self {
            index,
            window_ms,
            source,
            this_fold: HashMap::new(),
            hash: None,
        }
    }

    fn verdict(&self, ev: &SequencedEvent) -> Verdict {
        let seen = self
            .this_fold
            .get(&ev.keys.key)
            .copied()
            .or_else(|| self.index.seen(ev.keys));
        classify(seen, ev.content, ev.record, ev.arrival_ms, self.window_ms)
    }

    fn remember(&mut self, ev: &SequencedEvent) {
        self.this_fold.entry(ev.keys.key).or_insert(Seen {
            content: ev.content,
            record: ev.record,
            arrival_ms: ev.arrival_ms,
        });
    }

    fn place(&mut self, ev: &SequencedEvent, current: Option<&ProductRecord>) -> Place {
        let hash = *self
            .hash
            .get_or_insert_with(|| lineage::hash_key(&ev.event.product_id));
        self.source.place(hash, ev, current)
    }
}

/// Applies one event to a product without a shard log or a listing (the item's own
/// bookkeeping only). `current` is `None` for a product never added.
pub fn apply(current: &mut Option<ProductRecord>, ev: &SequencedEvent) -> Outcome {
    apply_in(
        current,
        ev,
        &mut DedupContext::new(&dedup::NoLog, 0, Source::Unlisted),
    )
}

/// The rejection of a record outside its product's lineage.
fn stray_rejection(ev: &SequencedEvent, stray: Stray) -> Rejection {
    let product = &ev.event.product_id;
    let shard = dedup::shard_id(ev.shard);
    match stray {
        Stray::WrongShard => Rejection::new(
            RejectionReason::WrongShard,
            format!(
                "record {} of product {product} is on {shard}, whose hash-key range does not hold the product's partition key: it was put with ExplicitHashKey, so nothing orders it with the product's other events. Put it again with partition key = product_id and no ExplicitHashKey",
                ev.record_id
            ),
        ),
        Stray::OlderStream => Rejection::new(
            RejectionReason::OlderStream,
            format!(
                "record {} of product {product} comes from a stream created before the one the product now follows (a stream was deleted and created again, or a second stream feeds these tables): it cannot be ordered with the product's events. Put it again on the current stream",
                ev.record_id
            ),
        ),
    }
}

/// Applies one event to a product, consulting the shard log and the listing through
/// `dedup`.
pub fn apply_in(
    current: &mut Option<ProductRecord>,
    ev: &SequencedEvent,
    dedup: &mut DedupContext<'_>,
) -> Outcome {
    match dedup.place(ev, current.as_ref()) {
        Place::Behind => return Outcome::Duplicate(DuplicateKind::Redelivery),
        // Never moves the position, and is never logged: a corrected copy of it (same id,
        // put the right way) must still be applied. An event its shard's lineage already
        // processed changes nothing either way: it was processed before its product moved
        // on (a stream re-read after the product moved to a newer one), so it is a duplicate.
        Place::Stray(stray) => {
            return match dedup.verdict(ev) {
                Verdict::SameRecord => Outcome::Duplicate(DuplicateKind::Redelivery),
                Verdict::Duplicate => Outcome::Duplicate(DuplicateKind::ProducerDuplicate),
                Verdict::New | Verdict::IdReused => Outcome::Rejected(stray_rejection(ev, stray)),
            };
        }
        Place::Ahead => {}
    }
    let stream = dedup.source.stream();
    let verdict = dedup.verdict(ev);
    let recent = current
        .as_ref()
        .is_some_and(|rec| rec.recent_ids.contains(ev.dedup_key()));
    let skip = match verdict {
        // Processed before and logged; its product (if any) was not written past it,
        // e.g. a rejection of a product never added.
        Verdict::SameRecord => Some(Outcome::Duplicate(DuplicateKind::Redelivery)),
        Verdict::Duplicate => Some(Outcome::Duplicate(DuplicateKind::ProducerDuplicate)),
        Verdict::IdReused => Some(Outcome::Rejected(Rejection::new(
            RejectionReason::EventIdReused,
            format!(
                "event_id {} was already used for another event of product {}: the producer must give every event its own id (kept the first)",
                ev.dedup_key(),
                ev.event.product_id
            ),
        ))),
        Verdict::New if recent => Some(Outcome::Duplicate(DuplicateKind::ProducerDuplicate)),
        Verdict::New => None,
    };
    if let Some(outcome) = skip {
        // Remembered as processed, so a redelivery of this record is also a duplicate.
        if let Some(rec) = current.as_mut() {
            rec.move_to(ev, stream);
        }
        return outcome;
    }
    dedup.remember(ev);
    match transition(current.as_ref(), &ev.event) {
        Ok(next) => {
            let mut rec = next;
            rec.version = current.as_ref().map_or(0, |r| r.version) + 1;
            rec.move_to(ev, stream);
            rec.last_event_at = ev.event.timestamp;
            rec.recent_ids.push(ev.dedup_key());
            *current = Some(rec);
            Outcome::Applied
        }
        Err(rejection) => {
            // An existing product remembers the rejected event too, so neither its
            // redelivery nor a duplicate publish is rejected (and recorded) twice.
            if let Some(rec) = current.as_mut() {
                rec.move_to(ev, stream);
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
                last_sequence: SequenceNumber::zero(),
                last_shard: None,
                last_stream: None,
                // Set again by `apply` with the rest of the bookkeeping; a new product's
                // time is its first event's.
                last_event_at: event.timestamp,
                recent_ids: RecentIds::default(),
                history: None,
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
    /// What the shard log must add once this fold's work is stored: every event processed
    /// here (applied or rejected by the state machine), and every redelivered one the log
    /// does not hold yet (its first processing may have ended before its log write).
    pub to_log: Vec<LogRecord>,
}

/// Folds a product's events (in stream order) over its stored record, without a shard log.
pub fn fold_product(current: Option<ProductRecord>, events: &[SequencedEvent]) -> ProductFold {
    fold_product_in(current, events, &dedup::NoLog, 0, Source::Unlisted)
}

/// Folds a product's events (in stream order, all from one shard of `source`) over its
/// stored record, placing each against the product's position and recognising duplicates
/// through the shard log `index` within `window_ms`.
pub fn fold_product_in(
    current: Option<ProductRecord>,
    events: &[SequencedEvent],
    index: &dyn SeenIndex,
    window_ms: i64,
    source: Source<'_>,
) -> ProductFold {
    let before = current.clone();
    let mut record = current;
    let mut dedup = DedupContext::new(index, window_ms, source);
    let mut to_log = Vec::new();
    let outcomes = events
        .iter()
        .map(|ev| {
            let outcome = apply_in(&mut record, ev, &mut dedup);
            let log = match &outcome {
                Outcome::Applied => true,
                // Not a reused id (the first use stays the logged one), nor a record outside
                // the lineage (a corrected copy of it must still be applied).
                Outcome::Rejected(r) => !matches!(
                    r.reason,
                    RejectionReason::EventIdReused
                        | RejectionReason::WrongShard
                        | RejectionReason::OlderStream
                ),
                // Processed before: logged here only if neither the log nor this fold
                // knows its key (then it was the first of its id, and its first processing
                // ended before the log write). A known key means an earlier record holds it.
                Outcome::Duplicate(DuplicateKind::Redelivery) => {
                    let unknown = dedup.verdict(ev) == Verdict::New;
                    if unknown {
                        dedup.remember(ev);
                    }
                    unknown
                }
                Outcome::Duplicate(DuplicateKind::ProducerDuplicate) => false,
            };
            if log {
                to_log.push(ev.log_record());
            }
            outcome
        })
        .collect();
    let changed = record != before;
    ProductFold {
        record,
        outcomes,
        changed,
        to_log,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn ev(seq: u64, id: &str, product: &str, change: Change) -> SequencedEvent {
        ev_in(0, seq, seq as i64, id, product, change)
    }

    fn ev_in(
        shard: u64,
        seq: u64,
        arrival_ms: i64,
        id: &str,
        product: &str,
        change: Change,
    ) -> SequencedEvent {
        SequencedEvent::new(
            SequenceNumber::parse(&seq.to_string()).unwrap(),
            format!("{}:{seq}", crate::dedup::shard_id(shard)),
            arrival_ms,
            InventoryEvent {
                event_id: Some(id.to_owned()),
                product_id: product.to_owned(),
                change,
                timestamp: "2023-09-11T12:00:00Z".parse().unwrap(),
            },
        )
    }

    fn added(q: u64) -> Change {
        Change::Added {
            name: "Laptop".into(),
            quantity: q,
        }
    }

    /// Folds `events` against `log` and logs what the fold hands the log, as the processor
    /// does once a batch's writes succeeded.
    fn fold_and_log(
        current: Option<ProductRecord>,
        events: &[SequencedEvent],
        log: &mut crate::dedup::ShardLog,
        window_ms: i64,
        source: Source<'_>,
    ) -> ProductFold {
        let fold = fold_product_in(current, events, &*log, window_ms, source);
        fold.to_log.iter().for_each(|r| log.insert(*r));
        fold
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
        let back = RecentIds::from_parts(&ids.legacy_bytes(), &ids.to_bytes());
        assert_eq!(back, ids);
        assert!(back.contains("id-39") && !back.contains("id-0"));
    }

    #[test]
    fn recent_ids_of_an_item_written_before_the_widening_are_matched_until_they_roll_out() {
        let legacy: Vec<u8> = (0..16)
            .flat_map(|i| xxh3_64(format!("old-{i}").as_bytes()).to_le_bytes())
            .collect();
        let mut ids = RecentIds::from_bytes(&legacy);
        assert!(ids.contains("old-0") && ids.contains("old-15"));
        ids.push("new-0");
        assert!(!ids.contains("old-0") && ids.contains("old-1") && ids.contains("new-0"));
        assert_eq!(ids.len(), RECENT_IDS);
        let back = RecentIds::from_parts(&ids.legacy_bytes(), &ids.to_bytes());
        assert_eq!(back, ids);
        for i in 1..16 {
            ids.push(&format!("new-{i}"));
        }
        assert!(ids.legacy_bytes().is_empty() && !ids.contains("old-15"));
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
                        dup.arrival_ms = seq as i64;
                        dup.record = crate::dedup::record_hash(dup.sequence.as_str());
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

    #[test]
    fn a_retry_two_thousand_events_later_is_a_duplicate_through_the_log() {
        let mut log = crate::dedup::ShardLog::default();
        let first = fold_and_log(
            None,
            &[
                ev(1, "a", "P", added(10)),
                ev(2, "sale", "P", Change::Decreased(4)),
            ],
            &mut log,
            crate::dedup::DEFAULT_WINDOW_MS,
            Source::Unlisted,
        );
        let mut rec = first.record;
        // 2,000 other events later (more than the item's 16 recent ids).
        let others: Vec<_> = (0..2000)
            .map(|i| ev(3 + i, &format!("o{i}"), "P", Change::Increased(1)))
            .collect();
        let fold = fold_and_log(
            rec,
            &others,
            &mut log,
            crate::dedup::DEFAULT_WINDOW_MS,
            Source::Unlisted,
        );
        rec = fold.record;
        let retry = ev(5000, "sale", "P", Change::Decreased(4));
        let fold = fold_product_in(
            rec.clone(),
            std::slice::from_ref(&retry),
            &log,
            crate::dedup::DEFAULT_WINDOW_MS,
            Source::Unlisted,
        );
        assert_eq!(
            fold.outcomes,
            vec![Outcome::Duplicate(DuplicateKind::ProducerDuplicate)]
        );
        assert_eq!(fold.record.as_ref().map(|r| r.quantity), Some(2006));
        // Without the log, the item's 16 recent ids no longer hold it: applied twice.
        let blind = fold_product(rec, std::slice::from_ref(&retry));
        assert_eq!(blind.outcomes, vec![Outcome::Applied]);
    }

    #[test]
    fn a_reused_event_id_with_other_content_is_rejected_with_its_own_reason() {
        let mut log = crate::dedup::ShardLog::default();
        let first = fold_and_log(
            None,
            &[ev(1, "a", "P", added(10))],
            &mut log,
            60_000,
            Source::Unlisted,
        );
        let fold = fold_product_in(
            first.record,
            &[ev(2, "a", "P", Change::Decreased(3))],
            &log,
            60_000,
            Source::Unlisted,
        );
        assert_eq!(
            rejected(&fold.outcomes[0]),
            Some(RejectionReason::EventIdReused)
        );
        assert_eq!(fold.record.map(|r| r.quantity), Some(10));
        assert!(
            fold.to_log.is_empty(),
            "the first use of the id stays the logged one"
        );
    }

    #[test]
    fn past_the_window_a_retry_is_new_again_unless_among_the_recent_ids() {
        let window = 1_000;
        let mut log = crate::dedup::ShardLog::default();
        let first = fold_and_log(
            None,
            &[
                ev(1, "a", "P", added(10)),
                ev(2, "b", "P", Change::Decreased(1)),
            ],
            &mut log,
            window,
            Source::Unlisted,
        );
        let mut rec = first.record;
        let others: Vec<_> = (0..20)
            .map(|i| ev(3 + i, &format!("o{i}"), "P", Change::Increased(1)))
            .collect();
        let fold = fold_product_in(rec, &others, &log, window, Source::Unlisted);
        rec = fold.record;
        // Arrives 5 s after its original: outside the 1 s window and past the recent ids.
        let late = ev_in(0, 100, 5_000, "b", "P", Change::Decreased(1));
        let fold = fold_product_in(
            rec,
            std::slice::from_ref(&late),
            &log,
            window,
            Source::Unlisted,
        );
        assert_eq!(fold.outcomes, vec![Outcome::Applied]);
    }

    #[test]
    fn a_child_shard_with_smaller_sequence_numbers_is_not_taken_for_a_redelivery() {
        // As ListShards lists a split of shard 0: children 5 and 6, numbered from 1 again.
        let listed = split_listing();
        let fold = |current, events: &[SequencedEvent]| {
            fold_product_in(current, events, &dedup::NoLog, 0, Source::Listed(&listed))
        };
        let parent = fold(None, &[ev_in(0, 900, 1, "a", "P", added(10))]);
        let child_of_p = child_holding("P");
        let child = fold(
            parent.record,
            &[ev_in(child_of_p, 3, 2, "b", "P", Change::Decreased(4))],
        );
        assert_eq!(child.outcomes, vec![Outcome::Applied]);
        let rec = child.record.unwrap();
        assert_eq!((rec.quantity, rec.last_shard), (6, Some(child_of_p)));
        assert_eq!(rec.last_stream, Some(STREAM));
        // A late delivery from the parent (a stuck invocation) is behind the product.
        let late = fold(
            Some(rec),
            &[ev_in(0, 901, 3, "c", "P", Change::Decreased(1))],
        );
        assert_eq!(
            late.outcomes,
            vec![Outcome::Duplicate(DuplicateKind::Redelivery)]
        );
    }

    const STREAM: StreamId = StreamId {
        arn: 11,
        created_ms: 1_000,
    };

    /// Shard 0 (closed at 1,000,000 + 10,000) split into 5 (lower half of the hash keys) and
    /// 6 (upper half), each numbering its records from 1.
    fn split_listing() -> StreamLineage {
        let half = u128::MAX / 2;
        let shard = |id, parents: &[u64], keys, start: u64, end: Option<u64>| lineage::Shard {
            id,
            parents: parents.to_vec(),
            hash_keys: keys,
            starting_sequence: SequenceNumber::parse(&start.to_string()).unwrap(),
            ending_sequence: end.map(|e| SequenceNumber::parse(&e.to_string()).unwrap()),
        };
        StreamLineage::new(
            STREAM,
            [
                shard(0, &[], (0, u128::MAX), 1, Some(1_010_000)),
                shard(5, &[0], (0, half), 1, None),
                shard(6, &[0], (half + 1, u128::MAX), 1, None),
            ],
        )
    }

    /// The child of [`split_listing`] whose hash keys hold `product`'s.
    fn child_holding(product: &str) -> u64 {
        if lineage::hash_key(product) <= u128::MAX / 2 {
            5
        } else {
            6
        }
    }

    #[test]
    fn a_record_outside_the_lineage_is_rejected_and_moves_nothing() {
        let listed = split_listing();
        let fold = |current, events: &[SequencedEvent]| {
            fold_product_in(current, events, &dedup::NoLog, 0, Source::Listed(&listed))
        };
        let home = child_holding("P");
        let other = 11 - home;
        let first = fold(None, &[ev_in(home, 10, 1, "a", "P", added(10))]);
        // Put with ExplicitHashKey on the sibling, with a higher sequence number.
        let stray = fold(
            first.record.clone(),
            &[ev_in(other, 500, 2, "s", "P", Change::Decreased(7))],
        );
        assert_eq!(
            rejected(&stray.outcomes[0]),
            Some(RejectionReason::WrongShard)
        );
        assert!(!stray.changed && stray.to_log.is_empty());
        // The product's next records on its own shard are applied, none taken for a
        // redelivery; the stray's corrected copy (same id, right shard) too.
        let next = fold(
            stray.record,
            &[
                ev_in(home, 11, 3, "b", "P", Change::Decreased(2)),
                ev_in(home, 12, 4, "s", "P", Change::Decreased(7)),
            ],
        );
        assert_eq!(next.outcomes, vec![Outcome::Applied, Outcome::Applied]);
        assert_eq!(next.record.map(|r| r.quantity), Some(1));
    }

    #[test]
    fn a_recreated_stream_moves_the_product_and_its_old_stream_is_stray_after() {
        let old = split_listing();
        let recreated = StreamLineage::single(
            StreamId {
                arn: STREAM.arn,
                created_ms: 9_000,
            },
            0,
        );
        let first = fold_product_in(
            None,
            &[ev_in(child_holding("P"), 50, 1, "a", "P", added(10))],
            &dedup::NoLog,
            0,
            Source::Listed(&old),
        );
        // The new stream's shard 0 restarts at sequence number 1, below the position.
        let moved = fold_product_in(
            first.record,
            &[ev_in(0, 1, 2, "b", "P", Change::Decreased(4))],
            &dedup::NoLog,
            0,
            Source::Listed(&recreated),
        );
        assert_eq!(moved.outcomes, vec![Outcome::Applied]);
        let late = fold_product_in(
            moved.record,
            &[ev_in(
                child_holding("P"),
                51,
                3,
                "c",
                "P",
                Change::Decreased(1),
            )],
            &dedup::NoLog,
            0,
            Source::Listed(&old),
        );
        assert_eq!(
            rejected(&late.outcomes[0]),
            Some(RejectionReason::OlderStream)
        );
        assert_eq!(late.record.map(|r| r.quantity), Some(6));
    }

    #[test]
    fn a_redelivery_of_a_logged_record_is_not_rejected_after_its_product_moved_stream() {
        let old = split_listing();
        let mut log = dedup::ShardLog::default();
        let rec = ev_in(child_holding("P"), 50, 1, "a", "P", added(10));
        let first = fold_and_log(
            None,
            std::slice::from_ref(&rec),
            &mut log,
            60_000,
            Source::Listed(&old),
        );
        let recreated = StreamLineage::single(
            StreamId {
                arn: STREAM.arn,
                created_ms: 9_000,
            },
            0,
        );
        let moved = fold_product_in(
            first.record,
            &[ev_in(0, 1, 2, "b", "P", Change::Decreased(4))],
            &log,
            60_000,
            Source::Listed(&recreated),
        );
        let again = fold_product_in(moved.record, &[rec], &log, 60_000, Source::Listed(&old));
        assert_eq!(
            again.outcomes,
            vec![Outcome::Duplicate(DuplicateKind::Redelivery)]
        );
    }

    // ---- property: many producers, late retries, a reshard, crashes and dead letters ----

    #[derive(Debug, Clone)]
    enum Put {
        /// A new event of product `.0`.
        Event(u8, Op),
        /// A producer's retry: a copy of the record put `.0` puts earlier (any product).
        Retry(usize),
        /// A producer bug: the id of the record `.0` puts earlier, with other content.
        Reuse(usize),
    }

    fn put() -> impl Strategy<Value = Put> {
        prop_oneof![
            6 => (0u8..3, op().prop_filter("no in-place dups", |o| !matches!(o, Op::Dup(_))))
                .prop_map(|(p, o)| Put::Event(p, o)),
            2 => (1usize..2000).prop_map(Put::Retry),
            1 => (1usize..2000).prop_map(Put::Reuse),
        ]
    }

    /// The stream as the shards hold it: records before `reshard_at` in shard 0, the rest in
    /// shard 3 with sequence numbers starting again from 1 (smaller than the parent's).
    fn producer_stream(puts: &[Put], reshard_at: usize) -> Vec<SequencedEvent> {
        let mut out: Vec<SequencedEvent> = Vec::new();
        for (i, p) in puts.iter().enumerate() {
            let (shard, seq) = if i < reshard_at {
                (0, 1_000_000 + i as u64)
            } else {
                (3, 1 + i as u64)
            };
            let arrival = i as i64 * 10;
            let at = |back: usize| out.len().checked_sub(back.min(out.len()).max(1));
            let next = match p {
                Put::Event(product, op) => {
                    let change = match op {
                        Op::Add(q) => added(*q),
                        Op::Remove => Change::Removed,
                        Op::Inc(q) => Change::Increased(*q),
                        Op::Dec(q) => Change::Decreased(*q),
                        Op::Dup(_) => Change::Removed,
                    };
                    ev_in(
                        shard,
                        seq,
                        arrival,
                        &format!("e{i}"),
                        &format!("P{product}"),
                        change,
                    )
                }
                Put::Retry(back) => match at(*back) {
                    Some(k) => {
                        let orig = &out[k].event;
                        ev_in(
                            shard,
                            seq,
                            arrival,
                            orig.event_id.as_deref().unwrap_or_default(),
                            &orig.product_id,
                            orig.change.clone(),
                        )
                    }
                    None => continue,
                },
                Put::Reuse(back) => match at(*back) {
                    Some(k) => {
                        let orig = &out[k].event;
                        let change = match orig.change {
                            Change::Increased(q) => Change::Increased(q + 1),
                            _ => Change::Increased(1),
                        };
                        ev_in(
                            shard,
                            seq,
                            arrival,
                            orig.event_id.as_deref().unwrap_or_default(),
                            &orig.product_id,
                            change,
                        )
                    }
                    None => continue,
                },
            };
            out.push(next);
        }
        out
    }

    /// Each distinct event applied once, in stream order, skipping dead-lettered records;
    /// a reused id with other content is rejected. Returns the products and rejections.
    fn distinct_once(
        events: &[SequencedEvent],
        lost: &dyn Fn(usize) -> bool,
    ) -> (Store, BTreeMap<String, RejectionReason>) {
        let mut store = Store::new();
        let mut rejections = BTreeMap::new();
        let mut first: BTreeMap<(String, String), u32> = BTreeMap::new();
        for (i, e) in events.iter().enumerate() {
            if lost(i) {
                continue;
            }
            let id = (e.event.product_id.clone(), e.dedup_key().to_owned());
            match first.get(&id) {
                Some(c) if *c == e.content => continue,
                Some(_) => {
                    rejections.insert(e.record_id.clone(), RejectionReason::EventIdReused);
                    continue;
                }
                None => {
                    first.insert(id, e.content);
                }
            }
            let mut rec = store.get(&e.event.product_id).cloned();
            if let Outcome::Rejected(r) = apply(&mut rec, e) {
                rejections.insert(e.record_id.clone(), r.reason);
            }
            if let Some(rec) = rec {
                store.insert(e.event.product_id.clone(), rec);
            }
        }
        (store, rejections)
    }

    type Logs = BTreeMap<u64, crate::dedup::ShardLog>;

    /// One delivery of a batch through the processor's steps: fold against the lineage's
    /// logs, write the products `commit` lets through, then (if `log_written`) append what
    /// the committed products processed to the batch's shard log.
    fn deliver_logged(
        store: &mut Store,
        logs: &mut Logs,
        listing: &StreamLineage,
        batch: &[SequencedEvent],
        commit: impl Fn(usize) -> bool,
        log_written: bool,
    ) -> BTreeMap<String, RejectionReason> {
        let mut by_product: BTreeMap<&str, Vec<SequencedEvent>> = BTreeMap::new();
        for e in batch {
            by_product
                .entry(&e.event.product_id)
                .or_default()
                .push(e.clone());
        }
        let shard = batch.first().map_or(0, |e| e.shard);
        let mut rejections = BTreeMap::new();
        let mut to_log = Vec::new();
        for (i, (product, events)) in by_product.into_iter().enumerate() {
            let lineage = crate::dedup::LineageLogs {
                logs: logs.values().collect(),
            };
            let fold = fold_product_in(
                store.get(product).cloned(),
                &events,
                &lineage,
                crate::dedup::DEFAULT_WINDOW_MS,
                Source::Listed(listing),
            );
            if !commit(i) {
                continue;
            }
            for (e, o) in events.iter().zip(&fold.outcomes) {
                if let Some(r) = rejected(o) {
                    rejections.insert(e.record_id.clone(), r);
                }
            }
            to_log.extend(fold.to_log.iter().copied());
            if let Some(rec) = fold.record.filter(|_| fold.changed) {
                store.insert(product.to_owned(), rec);
            }
        }
        if log_written {
            let log = logs.entry(shard).or_default();
            to_log.into_iter().for_each(|r| log.insert(r));
        }
        rejections
    }

    fn visible(store: &Store) -> BTreeMap<String, (ProductStatus, u64, u64)> {
        store
            .iter()
            .map(|(k, r)| (k.clone(), (r.status, r.quantity, r.version)))
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Several producers per product (their puts interleaved at random), retries and
        /// reused ids at random distances inside the window, a reshard whose child numbers
        /// its records from 1 again, random batch splits, crashes between the product
        /// writes and the log write, and dead-lettered batches: the state is that of applying
        /// each distinct delivered event once.
        #[test]
        fn many_producers_late_retries_reshards_and_crashes_apply_each_event_once(
            puts in prop::collection::vec(put(), 1..400),
            reshard_frac in 0.0f64..1.0,
            cuts in prop::collection::vec(1usize..400, 0..30),
            fates in prop::collection::vec(any::<u8>(), 32),
        ) {
            let reshard_at = (puts.len() as f64 * reshard_frac) as usize;
            let events = producer_stream(&puts, reshard_at);
            let mut bounds: Vec<usize> = cuts.into_iter().map(|c| c.min(events.len())).collect();
            bounds.extend([0, events.len(), reshard_at.min(events.len())]);
            bounds.sort_unstable();
            bounds.dedup();
            let batches: Vec<(usize, usize)> = bounds.windows(2).map(|w| (w[0], w[1])).collect();
            // Fate of a batch: 0-1 dead-lettered (never processed: its retries ran out
            // before any write, or its records aged out), 2-4 a crash after some product
            // writes and before the log write, then the Pipe's redelivery; else clean.
            let fate = |k: usize| fates[k % fates.len()] % 16;
            let lost = |i: usize| {
                batches
                    .iter()
                    .enumerate()
                    .any(|(k, (a, b))| (*a..*b).contains(&i) && fate(k) < 2)
            };
            let (expected, expected_rejections) = distinct_once(&events, &lost);
            // As ListShards lists the stream after the reshard: shard 0 closed, its child 3
            // (every hash key) numbering its records from 1 again.
            let seq = |n: u64| SequenceNumber::parse(&n.to_string()).unwrap();
            let listing = StreamLineage::new(STREAM, [
                lineage::Shard { id: 0, parents: vec![], hash_keys: (0, u128::MAX), starting_sequence: seq(1_000_000), ending_sequence: Some(seq(1_000_000 + puts.len() as u64)) },
                lineage::Shard { id: 3, parents: vec![0], hash_keys: (0, u128::MAX), starting_sequence: seq(1), ending_sequence: None },
            ]);

            let mut store = Store::new();
            let mut logs = Logs::new();
            let mut rejections = BTreeMap::new();
            for (k, (a, b)) in batches.iter().enumerate() {
                let batch = &events[*a..*b];
                match fate(k) {
                    0 | 1 => continue,
                    f @ 2..=4 => {
                        let mask = fates[(k + 7) % fates.len()] as usize + usize::from(f);
                        rejections.extend(deliver_logged(&mut store, &mut logs, &listing, batch, |i| mask & (1 << (i % 8)) != 0, false));
                        rejections.extend(deliver_logged(&mut store, &mut logs, &listing, batch, |_| true, true));
                    }
                    _ => {
                        rejections.extend(deliver_logged(&mut store, &mut logs, &listing, batch, |_| true, true));
                    }
                }
            }
            prop_assert_eq!(visible(&store), visible(&expected));
            prop_assert_eq!(rejections, expected_rejections);
        }
    }
}
