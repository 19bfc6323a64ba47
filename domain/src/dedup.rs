//! Recognising a producer's duplicate at any distance: the per-shard log of processed
//! events (pure part). The processor persists each batch's log records in DynamoDB
//! (one item per batch) and keeps them in the warm instance's memory; this module holds the
//! record format, its binary codec and the in-memory index. No I/O.
//!
//! An entry says "an event with this (product, event id) and this content arrived in the
//! stream at this time and was processed (applied or rejected)". A later record with the
//! same key arriving within the window is a producer duplicate (same content) or a reused
//! id (other content); see [`classify`].

use std::collections::{HashMap, VecDeque};

use xxhash_rust::xxh3::Xxh3;

use crate::event::{Change, InventoryEvent};

/// The default window: a duplicate arriving up to this long after its original is
/// recognised. Producers' SDKs retry within seconds; 15 minutes leaves room for a
/// producer that queues and retries after an outage.
pub const DEFAULT_WINDOW_MS: i64 = 15 * 60 * 1000;
/// The longest window: Kinesis' longest retention (365 days); the processor refuses more.
pub const MAX_WINDOW_MS: i64 = 365 * 24 * 3600 * 1000;

/// The window a `DEDUP_WINDOW_SECONDS` setting names, in ms: whole seconds from 1 to
/// [`MAX_WINDOW_MS`]; `None` for anything else. One reading for every component that must
/// agree with the processor (the processor, the dead-letter consumer).
pub fn window_ms_from_seconds(raw: &str) -> Option<i64> {
    raw.trim()
        .parse::<i64>()
        .ok()
        .filter(|s| *s >= 1 && s.saturating_mul(1000) <= MAX_WINDOW_MS)
        .map(|s| s * 1000)
}

/// Bytes per record in a log item: key hash (8), content hash (4), record hash (4),
/// arrival offset (4).
pub const LOG_RECORD_BYTES: usize = 20;
const LOG_FORMAT: u8 = 1;
const LOG_HEADER_BYTES: usize = 1 + 8;

/// The identity of an event for deduplication: its product and its dedup key (the
/// `event_id`, or the record identity when the producer sent none). 64 bits: a false
/// match needs a collision among one product's events inside the window.
pub fn dedup_hash(product_id: &str, dedup_key: &str) -> u64 {
    let mut h = Xxh3::new();
    h.update(product_id.as_bytes());
    h.update(&[0]);
    h.update(dedup_key.as_bytes());
    h.digest()
}

/// What the event says, to tell a retry (same content) from a reused id (other content).
/// Built from the parsed fields, so a retry serialised differently still matches.
pub fn content_hash(event: &InventoryEvent) -> u32 {
    let mut h = Xxh3::new();
    h.update(event.product_id.as_bytes());
    h.update(&[0]);
    match &event.change {
        Change::Added { name, quantity } => {
            h.update(b"a");
            h.update(&quantity.to_le_bytes());
            h.update(name.as_bytes());
        }
        Change::Removed => h.update(b"r"),
        Change::Increased(q) => {
            h.update(b"i");
            h.update(&q.to_le_bytes());
        }
        Change::Decreased(q) => {
            h.update(b"d");
            h.update(&q.to_le_bytes());
        }
    }
    h.update(&[0]);
    h.update(event.timestamp.as_bytes());
    h.digest() as u32
}

/// Which record carried an event (its sequence number, hashed): a redelivery of the same
/// record is not a producer's duplicate, even when both arrived in the same millisecond.
pub fn record_hash(sequence_number: &str) -> u32 {
    xxhash_rust::xxh3::xxh3_64(sequence_number.as_bytes()) as u32
}

/// One processed event as the log keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRecord {
    pub key: u64,
    pub content: u32,
    /// [`record_hash`] of the record that carried it.
    pub record: u32,
    /// The record's `approximateArrivalTimestamp`, in ms.
    pub arrival_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogDecodeError {
    #[error("dedup log item has format {0}, which this processor does not know: deploy the processor version that wrote it or newer")]
    Format(u8),
    #[error("dedup log item is {0} bytes, not a whole number of records: the item is corrupt; delete it (the processor then treats its events as never seen)")]
    Length(usize),
}

/// Encodes a batch's log records: a format byte, the earliest arrival, then per record the
/// key, the content, the record and the arrival as an offset from the earliest (a batch spans far less
/// than the 49 days a u32 of ms holds; a larger offset is clamped, which only shortens how
/// long that one entry is remembered).
pub fn encode_log(records: &[LogRecord]) -> Vec<u8> {
    let base = records.iter().map(|r| r.arrival_ms).min().unwrap_or(0);
    let mut out = Vec::with_capacity(LOG_HEADER_BYTES + records.len() * LOG_RECORD_BYTES);
    out.push(LOG_FORMAT);
    out.extend_from_slice(&base.to_le_bytes());
    for r in records {
        let offset = u32::try_from(r.arrival_ms - base).unwrap_or(u32::MAX);
        out.extend_from_slice(&r.key.to_le_bytes());
        out.extend_from_slice(&r.content.to_le_bytes());
        out.extend_from_slice(&r.record.to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
    }
    out
}

pub fn decode_log(bytes: &[u8]) -> Result<Vec<LogRecord>, LogDecodeError> {
    let Some((&format, rest)) = bytes.split_first() else {
        return Err(LogDecodeError::Length(0));
    };
    if format != LOG_FORMAT {
        return Err(LogDecodeError::Format(format));
    }
    if rest.len() < 8 || (rest.len() - 8) % LOG_RECORD_BYTES != 0 {
        return Err(LogDecodeError::Length(bytes.len()));
    }
    let (base, body) = rest.split_at(8);
    let base = i64::from_le_bytes(
        base.try_into()
            .map_err(|_| LogDecodeError::Length(bytes.len()))?,
    );
    Ok(body
        .chunks_exact(LOG_RECORD_BYTES)
        .map(|c| {
            let word = |r: std::ops::Range<usize>| -> [u8; 8] {
                let mut w = [0u8; 8];
                w[..r.len()].copy_from_slice(&c[r]);
                w
            };
            let key = u64::from_le_bytes(word(0..8));
            let content = u64::from_le_bytes(word(8..12)) as u32;
            let record = u64::from_le_bytes(word(12..16)) as u32;
            let offset = u64::from_le_bytes(word(16..20)) as i64;
            LogRecord {
                key,
                content,
                record,
                arrival_ms: base + offset,
            }
        })
        .collect())
}

/// What the log knows of a key: the content and arrival of the processed event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub content: u32,
    pub record: u32,
    pub arrival_ms: i64,
}

/// Where a fold looks up processed events.
pub trait SeenIndex {
    fn seen(&self, key: u64) -> Option<Seen>;
}

/// No log: only the product item's own bookkeeping deduplicates.
pub struct NoLog;

impl SeenIndex for NoLog {
    fn seen(&self, _key: u64) -> Option<Seen> {
        None
    }
}

impl SeenIndex for HashMap<u64, Seen> {
    fn seen(&self, key: u64) -> Option<Seen> {
        self.get(&key).copied()
    }
}

/// A record against what the log knows of its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not seen within the window: process it.
    New,
    /// This very record was processed before (same key, content and record).
    SameRecord,
    /// A new record of an event already processed: a producer's retry.
    Duplicate,
    /// A new record with an id already used for other content: the producer has a bug.
    IdReused,
}

/// Classifies a record (content, record hash, arrival) against what was seen of its key,
/// within `window_ms` before its arrival. Pure and exact, so a replay of the stream
/// reaches the same verdicts whatever was pruned from memory.
pub fn classify(
    seen: Option<Seen>,
    content: u32,
    record: u32,
    arrival_ms: i64,
    window_ms: i64,
) -> Verdict {
    match seen {
        Some(s) if s.arrival_ms >= arrival_ms.saturating_sub(window_ms) => {
            if s.content != content {
                Verdict::IdReused
            } else if s.record == record {
                Verdict::SameRecord
            } else {
                Verdict::Duplicate
            }
        }
        _ => Verdict::New,
    }
}

/// The processed events of one shard that are still inside the window, in memory.
#[derive(Debug, Default, Clone)]
pub struct ShardLog {
    entries: HashMap<u64, Seen>,
    /// (arrival, key), oldest first, to prune by time.
    by_arrival: VecDeque<(i64, u64)>,
    /// The highest log item number read or written (items are numbered 1, 2, … per shard).
    pub high_water: u64,
    /// Shards whose products moved into this one (a split or merge): their logs hold these
    /// products' earlier events.
    pub parents: Vec<String>,
    /// Read to its end after a child shard was seen: the shard is closed and drained (Pipes
    /// reads a child only then), so nothing more is written to its log.
    pub sealed: bool,
    /// The oldest arrival this copy is complete from (what was read back on a cold load);
    /// `None` when it holds everything written since the shard began, as far as this
    /// instance knows. A batch needing older entries reads them again.
    pub loaded_from: Option<i64>,
}

impl ShardLog {
    pub fn insert(&mut self, r: LogRecord) {
        let seen = Seen {
            content: r.content,
            record: r.record,
            arrival_ms: r.arrival_ms,
        };
        // A key is logged again only when its earlier record had left the window (a
        // duplicate or a reuse inside the window is never logged): the later record is then
        // the one a further retry is measured against.
        if self
            .entries
            .get(&r.key)
            .is_some_and(|old| old.arrival_ms >= r.arrival_ms)
        {
            return;
        }
        self.entries.insert(r.key, seen);
        self.by_arrival.push_back((r.arrival_ms, r.key));
    }

    pub fn get(&self, key: u64) -> Option<Seen> {
        self.entries.get(&key).copied()
    }

    /// Whether this exact record (key and arrival) is already in the log.
    pub fn has_record(&self, r: &LogRecord) -> bool {
        self.entries
            .get(&r.key)
            .is_some_and(|s| s.record == r.record && s.content == r.content)
    }

    /// Forgets entries that no record arriving at or after `oldest_arrival_ms` can match.
    pub fn prune(&mut self, oldest_arrival_ms: i64, window_ms: i64) {
        let cutoff = oldest_arrival_ms.saturating_sub(window_ms);
        self.loaded_from = Some(self.loaded_from.map_or(cutoff, |f| f.max(cutoff)));
        while let Some(&(arrival, key)) = self.by_arrival.front() {
            if arrival >= cutoff {
                break;
            }
            self.by_arrival.pop_front();
            if self
                .entries
                .get(&key)
                .is_some_and(|s| s.arrival_ms == arrival)
            {
                self.entries.remove(&key);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn add_parent(&mut self, shard: &str) -> bool {
        if self.parents.iter().any(|p| p == shard) {
            return false;
        }
        self.parents.push(shard.to_owned());
        true
    }
}

impl SeenIndex for ShardLog {
    fn seen(&self, key: u64) -> Option<Seen> {
        self.get(key)
    }
}

/// The logs of a shard and its ancestors, as one index for a fold.
pub struct Lineage<'a> {
    pub logs: Vec<&'a ShardLog>,
}

impl SeenIndex for Lineage<'_> {
    fn seen(&self, key: u64) -> Option<Seen> {
        // A key lives in one product's lineage; its latest logged record decides (see
        // `ShardLog::insert`).
        self.logs
            .iter()
            .filter_map(|l| l.get(key))
            .max_by_key(|s| s.arrival_ms)
    }
}

/// The number in a Kinesis shard id (`shardId-000000000004` → 4). Kinesis numbers shards
/// in the order it creates them, and a child shard is created after its parents, so along a
/// product's lineage (one open shard holds its hash key at a time) the numbers increase.
pub fn shard_ordinal(shard_id: &str) -> u64 {
    let digits = shard_id
        .rsplit(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap_or_default();
    digits.parse().unwrap_or(0)
}

/// The shard id of an ordinal, as Kinesis writes it.
pub fn shard_id(ordinal: u64) -> String {
    format!("shardId-{ordinal:012}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_window_setting_is_whole_seconds_from_one_to_a_year() {
        assert_eq!(window_ms_from_seconds(" 900 "), Some(900_000));
        assert_eq!(window_ms_from_seconds("31536000"), Some(MAX_WINDOW_MS));
        for refused in ["0", "-5", "31536001", "15m", "", "9223372036854775807"] {
            assert_eq!(window_ms_from_seconds(refused), None, "{refused}");
        }
    }

    #[test]
    fn shard_ordinals_round_trip() {
        assert_eq!(shard_ordinal("shardId-000000000004"), 4);
        assert_eq!(shard_ordinal("shardId-000000000123"), 123);
        assert_eq!(shard_id(123), "shardId-000000000123");
        assert_eq!(shard_ordinal("nonsense"), 0);
    }

    #[test]
    fn classify_by_content_arrival_and_window() {
        let seen = Some(Seen {
            content: 7,
            record: 3,
            arrival_ms: 1_000,
        });
        assert_eq!(classify(seen, 7, 3, 1_000, 60_000), Verdict::SameRecord);
        assert_eq!(
            classify(seen, 7, 4, 1_000, 60_000),
            Verdict::Duplicate,
            "another record in the same millisecond"
        );
        assert_eq!(classify(seen, 7, 4, 5_000, 60_000), Verdict::Duplicate);
        assert_eq!(classify(seen, 8, 4, 5_000, 60_000), Verdict::IdReused);
        assert_eq!(classify(seen, 7, 4, 61_000, 60_000), Verdict::Duplicate);
        assert_eq!(
            classify(seen, 7, 4, 61_001, 60_000),
            Verdict::New,
            "past the window"
        );
        assert_eq!(classify(None, 7, 4, 5_000, 60_000), Verdict::New);
    }

    #[test]
    fn a_corrupt_log_item_is_an_error_not_a_panic() {
        assert_eq!(decode_log(&[]), Err(LogDecodeError::Length(0)));
        assert_eq!(decode_log(&[9, 0, 0]), Err(LogDecodeError::Format(9)));
        assert_eq!(decode_log(&[1, 0, 0]), Err(LogDecodeError::Length(3)));
        let mut ok = encode_log(&[LogRecord {
            key: 1,
            content: 2,
            record: 4,
            arrival_ms: 3,
        }]);
        ok.push(0);
        assert!(decode_log(&ok).is_err());
    }

    #[test]
    fn prune_forgets_only_what_no_later_record_can_match() {
        let mut log = ShardLog::default();
        for (i, t) in [100i64, 200, 300].into_iter().enumerate() {
            log.insert(LogRecord {
                key: i as u64,
                content: 0,
                record: i as u32,
                arrival_ms: t,
            });
        }
        log.prune(350, 100);
        assert_eq!(log.get(0), None);
        assert!(log.get(1).is_none() && log.get(2).is_some());
        assert_eq!(log.len(), 1);
    }

    proptest! {
        #[test]
        fn log_records_survive_the_codec(
            records in prop::collection::vec((any::<u64>(), any::<u32>(), any::<u32>(), 0i64..86_400_000), 0..300),
            base in 1_600_000_000_000i64..1_900_000_000_000,
        ) {
            let records: Vec<LogRecord> = records
                .into_iter()
                .map(|(key, content, record, off)| LogRecord { key, content, record, arrival_ms: base + off })
                .collect();
            let bytes = encode_log(&records);
            prop_assert_eq!(bytes.len(), 9 + records.len() * LOG_RECORD_BYTES);
            prop_assert_eq!(decode_log(&bytes).unwrap(), records);
        }

        #[test]
        fn decode_log_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_log(&bytes);
        }
    }
}
