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
/// The longest window the template offers (`DedupWindowSeconds`' MaxValue): at 1,000 events/s
/// on a shard, a cold instance reads 1.2 million entries (24 MB of log items, 6,000 strongly
/// consistent read units: 2 s of one DynamoDB partition's 3,000 per second) and holds about
/// 120 MB (docs/consistency.md, "Window limits"; `inventory-bench log-load`).
pub const MAX_TEMPLATE_WINDOW_SECONDS: i64 = 1_200;

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

/// The arrival clock's unit in the log, in ms: arrivals are rounded down to it where they are
/// read ([`arrival_unit`]), so every instance and a replay compare the same numbers.
pub const ARRIVAL_UNIT_MS: i64 = 10;

/// `approximateArrivalTimestamp` in ms, rounded down to [`ARRIVAL_UNIT_MS`].
pub fn arrival_unit(arrival_ms: i64) -> i64 {
    arrival_ms.div_euclid(ARRIVAL_UNIT_MS) * ARRIVAL_UNIT_MS
}

/// Bytes per record in a log item with a batch that spans under 1.28 s: key (12), content
/// (4), record (3), arrival offset (1; a varint of [`ARRIVAL_UNIT_MS`] units, 2 bytes for a
/// batch spanning up to 164 s).
pub const LOG_RECORD_BYTES: usize = 20;
const LOG_FORMAT: u8 = 2;
/// Format 1 (until 2026-12): 64-bit keys, 32-bit record hashes, 4-byte offsets in ms. Read,
/// never written, so a log written before an upgrade still finds its duplicates.
const LEGACY_FORMAT: u8 = 1;
const LEGACY_RECORD_BYTES: usize = 20;
const LOG_HEADER_BYTES: usize = 1 + 8;
/// Record hashes keep 24 bits: they only tell a redelivery from a producer's duplicate.
const RECORD_MASK: u32 = 0x00ff_ffff;

/// The identity of an event for deduplication: 96 bits of xxh3-128 over its product and its
/// dedup key (the `event_id`, or the record identity when the producer sent none). A false
/// match needs two of one lineage's events inside the window to agree on all 96 bits: at
/// most 1 in 10⁶ years at the largest window the template allows (docs/consistency.md,
/// "Dedup keys").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DedupKey(u128);

impl DedupKey {
    pub const BYTES: usize = 12;
    const MASK: u128 = (1 << 96) - 1;

    pub fn of(product_id: &str, dedup_key: &str) -> Self {
        let mut h = Xxh3::new();
        h.update(product_id.as_bytes());
        h.update(&[0]);
        h.update(dedup_key.as_bytes());
        Self(h.digest128() & Self::MASK)
    }

    pub fn to_bytes(self) -> [u8; Self::BYTES] {
        let mut out = [0; Self::BYTES];
        out.copy_from_slice(&self.0.to_le_bytes()[..Self::BYTES]);
        out
    }

    pub fn from_bytes(bytes: [u8; Self::BYTES]) -> Self {
        let mut wide = [0u8; 16];
        wide[..Self::BYTES].copy_from_slice(&bytes);
        Self(u128::from_le_bytes(wide))
    }

    /// Test hook: the key with its low 64 bits set to 0, as if it collided with every other
    /// key at the width format 1 used (`ProcessorSettings::collide_dedup_keys`).
    pub fn collided(self) -> Self {
        Self(self.0 & !(u64::MAX as u128))
    }
}

/// The key format 1 logs held: 64 bits of xxh3 over the same input.
pub fn legacy_dedup_hash(product_id: &str, dedup_key: &str) -> u64 {
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
    // The normalised text, as the stored logs' hashes were made of it.
    h.update(crate::rfc3339::to_auto(&event.timestamp).as_bytes());
    h.digest() as u32
}

/// Which record carried an event (its sequence number, hashed to 24 bits): a redelivery of
/// the same record is not a producer's duplicate, even when both arrived in the same
/// millisecond.
pub fn record_hash(sequence_number: &str) -> u32 {
    (xxhash_rust::xxh3::xxh3_64(sequence_number.as_bytes()) as u32) & RECORD_MASK
}

/// Where a log entry is kept: format 2's wide keys, or format 1's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogKey {
    Wide(DedupKey),
    Legacy(u64),
}

/// One processed event as the log keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRecord {
    pub key: LogKey,
    pub content: u32,
    /// [`record_hash`] of the record that carried it.
    pub record: u32,
    /// The record's arrival, in ms, a multiple of [`ARRIVAL_UNIT_MS`].
    pub arrival_ms: i64,
}

/// The keys of an event, to look it up in logs of either format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventKeys {
    pub key: DedupKey,
    pub legacy: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogDecodeError {
    #[error("shard log item has format {0}, which this processor does not know: deploy the processor version that wrote it or newer")]
    Format(u8),
    #[error("shard log item is {0} bytes, not a whole number of records: the item is corrupt; delete it (the processor then treats its events as never seen)")]
    Length(usize),
}

/// Encodes a batch's log records (format 2): a format byte, the earliest arrival in
/// [`ARRIVAL_UNIT_MS`] units, then per record the key, the content, the record and the
/// arrival as a varint offset from the earliest. Format-1 keys are never written: their
/// records are skipped.
pub fn encode_log(records: &[LogRecord]) -> Vec<u8> {
    let units = |ms: i64| ms.div_euclid(ARRIVAL_UNIT_MS);
    let base = records
        .iter()
        .map(|r| units(r.arrival_ms))
        .min()
        .unwrap_or(0);
    let mut out = Vec::with_capacity(LOG_HEADER_BYTES + records.len() * (LOG_RECORD_BYTES + 1));
    out.push(LOG_FORMAT);
    out.extend_from_slice(&base.to_le_bytes());
    for r in records {
        let LogKey::Wide(key) = r.key else {
            continue;
        };
        out.extend_from_slice(&key.to_bytes());
        out.extend_from_slice(&r.content.to_le_bytes());
        out.extend_from_slice(&(r.record & RECORD_MASK).to_le_bytes()[..3]);
        let mut offset = u64::try_from(units(r.arrival_ms) - base).unwrap_or(0);
        loop {
            let byte = (offset & 0x7f) as u8;
            offset >>= 7;
            if offset == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
    }
    out
}

pub fn decode_log(bytes: &[u8]) -> Result<Vec<LogRecord>, LogDecodeError> {
    let Some((&format, rest)) = bytes.split_first() else {
        return Err(LogDecodeError::Length(0));
    };
    let length = || LogDecodeError::Length(bytes.len());
    if rest.len() < 8 {
        return Err(match format {
            LOG_FORMAT | LEGACY_FORMAT => length(),
            other => LogDecodeError::Format(other),
        });
    }
    let (base, body) = rest.split_at(8);
    let base = i64::from_le_bytes(base.try_into().map_err(|_| length())?);
    match format {
        LOG_FORMAT => decode_wide(base, body).ok_or_else(length),
        LEGACY_FORMAT => decode_legacy(base, body).ok_or_else(length),
        other => Err(LogDecodeError::Format(other)),
    }
}

fn decode_wide(base_units: i64, mut body: &[u8]) -> Option<Vec<LogRecord>> {
    let mut out = Vec::with_capacity(body.len() / LOG_RECORD_BYTES);
    while !body.is_empty() {
        let (fixed, rest) = body.split_at_checked(DedupKey::BYTES + 4 + 3)?;
        let key = DedupKey::from_bytes(fixed[..DedupKey::BYTES].try_into().ok()?);
        let content = u32::from_le_bytes(fixed[12..16].try_into().ok()?);
        let record = u32::from_le_bytes([fixed[16], fixed[17], fixed[18], 0]);
        let mut offset: u64 = 0;
        let mut used = 0;
        loop {
            let byte = *rest.get(used)?;
            // A u64 holds ten 7-bit groups; more is corrupt.
            if used >= 10 {
                return None;
            }
            offset |= u64::from(byte & 0x7f) << (7 * used);
            used += 1;
            if byte & 0x80 == 0 {
                break;
            }
        }
        body = &rest[used..];
        let units = base_units.checked_add(i64::try_from(offset).ok()?)?;
        out.push(LogRecord {
            key: LogKey::Wide(key),
            content,
            record,
            arrival_ms: units.checked_mul(ARRIVAL_UNIT_MS)?,
        });
    }
    Some(out)
}

fn decode_legacy(base_ms: i64, body: &[u8]) -> Option<Vec<LogRecord>> {
    if !body.len().is_multiple_of(LEGACY_RECORD_BYTES) {
        return None;
    }
    Some(
        body.chunks_exact(LEGACY_RECORD_BYTES)
            .map(|c| {
                let word = |r: std::ops::Range<usize>| -> [u8; 8] {
                    let mut w = [0u8; 8];
                    w[..r.len()].copy_from_slice(&c[r]);
                    w
                };
                LogRecord {
                    key: LogKey::Legacy(u64::from_le_bytes(word(0..8))),
                    content: u64::from_le_bytes(word(8..12)) as u32,
                    record: (u64::from_le_bytes(word(12..16)) as u32) & RECORD_MASK,
                    arrival_ms: arrival_unit(base_ms + u64::from_le_bytes(word(16..20)) as i64),
                }
            })
            .collect(),
    )
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
    fn seen(&self, keys: EventKeys) -> Option<Seen>;
}

/// No log: only the product item's own bookkeeping deduplicates.
pub struct NoLog;

impl SeenIndex for NoLog {
    fn seen(&self, _keys: EventKeys) -> Option<Seen> {
        None
    }
}

impl SeenIndex for HashMap<DedupKey, Seen> {
    fn seen(&self, keys: EventKeys) -> Option<Seen> {
        self.get(&keys.key).copied()
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
    entries: HashMap<DedupKey, Seen>,
    /// Entries of format-1 items (written before keys were widened), by their 64-bit key.
    legacy: HashMap<u64, Seen>,
    /// (arrival, key), oldest first, to prune by time.
    by_arrival: VecDeque<(i64, LogKey)>,
    /// The highest log item number read or written (items are numbered 1, 2, … per shard).
    pub high_water: u64,
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
        let newer = |old: Option<&Seen>| old.is_none_or(|old| old.arrival_ms < r.arrival_ms);
        let inserted = match r.key {
            LogKey::Wide(k) => {
                newer(self.entries.get(&k)) && {
                    self.entries.insert(k, seen);
                    true
                }
            }
            LogKey::Legacy(k) => {
                newer(self.legacy.get(&k)) && {
                    self.legacy.insert(k, seen);
                    true
                }
            }
        };
        if inserted {
            self.by_arrival.push_back((r.arrival_ms, r.key));
        }
    }

    pub fn get(&self, keys: EventKeys) -> Option<Seen> {
        let wide = self.entries.get(&keys.key);
        if self.legacy.is_empty() {
            return wide.copied();
        }
        wide.into_iter()
            .chain(self.legacy.get(&keys.legacy))
            .max_by_key(|s| s.arrival_ms)
            .copied()
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
            match key {
                LogKey::Wide(k) => {
                    if self
                        .entries
                        .get(&k)
                        .is_some_and(|s| s.arrival_ms == arrival)
                    {
                        self.entries.remove(&k);
                    }
                }
                LogKey::Legacy(k) => {
                    if self.legacy.get(&k).is_some_and(|s| s.arrival_ms == arrival) {
                        self.legacy.remove(&k);
                    }
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len() + self.legacy.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl SeenIndex for ShardLog {
    fn seen(&self, keys: EventKeys) -> Option<Seen> {
        self.get(keys)
    }
}

/// The logs of a shard and its ancestors, as one index for a fold.
pub struct LineageLogs<'a> {
    pub logs: Vec<&'a ShardLog>,
}

impl SeenIndex for LineageLogs<'_> {
    fn seen(&self, keys: EventKeys) -> Option<Seen> {
        // A key lives in one product's lineage; its latest logged record decides (see
        // `ShardLog::insert`).
        self.logs
            .iter()
            .filter_map(|l| l.get(keys))
            .max_by_key(|s| s.arrival_ms)
    }
}

/// The number in a Kinesis shard id (`shardId-000000000004` → 4): the shard's name in the
/// product item and in [`crate::lineage`], never its place in the lineage.
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

    /// The content hash is stored in shard logs: what it hashes of an event's time must stay
    /// the normalised text it always hashed, or a retry published across an upgrade would
    /// read as a reused id. Pinned values, computed before timestamps were typed.
    #[test]
    fn content_hashes_of_stored_logs_are_unchanged() {
        for (timestamp, want) in [
            ("2023-09-11T12:00:00Z", [3_833_082_316u32, 164_880_907]),
            ("2023-09-11T14:00:00.5+02:00", [2_745_944_330, 992_617_511]),
            (
                "2023-09-11T12:00:00.123456Z",
                [2_575_858_277, 3_176_291_178],
            ),
            (
                "2023-09-11T12:00:00.123456789Z",
                [1_223_169_716, 3_901_614_131],
            ),
            ("2016-12-31T23:59:60Z", [180_094_197, 4_091_366_261]),
        ] {
            let added = format!(
                r#"{{"event_type":"product_added","product":{{"product_id":"A","product_name":"Lamp","quantity":3,"timestamp":"{timestamp}"}}}}"#
            );
            let removed = format!(
                r#"{{"event_type":"product_removed","product":{{"product_id":"B","timestamp":"{timestamp}"}}}}"#
            );
            let hashes = [added, removed]
                .map(|text| content_hash(&crate::parse_event(text.as_bytes()).unwrap()));
            assert_eq!(hashes, want, "{timestamp}");
        }
    }

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
        // (what the log holds, content, record, arrival ms) in a 60 s window.
        #[rustfmt::skip]
        let cases = [
            (seen, 7, 3, 1_000, Verdict::SameRecord, "the same record again"),
            (seen, 7, 4, 1_000, Verdict::Duplicate, "another record in the same millisecond"),
            (seen, 7, 4, 5_000, Verdict::Duplicate, "another record within the window"),
            (seen, 8, 4, 5_000, Verdict::IdReused, "the id with other content"),
            (seen, 7, 4, 61_000, Verdict::Duplicate, "at the window's edge"),
            (seen, 7, 4, 61_001, Verdict::New, "past the window"),
            (None, 7, 4, 5_000, Verdict::New, "an id the log does not hold"),
        ];
        for (seen, content, record, arrival_ms, verdict, why) in cases {
            assert_eq!(
                classify(seen, content, record, arrival_ms, 60_000),
                verdict,
                "{why}"
            );
        }
    }

    fn key(n: u128) -> DedupKey {
        DedupKey(n & DedupKey::MASK)
    }

    fn keys(n: u128) -> EventKeys {
        EventKeys {
            key: key(n),
            legacy: n as u64,
        }
    }

    #[test]
    fn a_corrupt_log_item_is_an_error_not_a_panic() {
        assert_eq!(decode_log(&[]), Err(LogDecodeError::Length(0)));
        assert_eq!(decode_log(&[9, 0, 0]), Err(LogDecodeError::Format(9)));
        assert_eq!(decode_log(&[2, 0, 0]), Err(LogDecodeError::Length(3)));
        let mut ok = encode_log(&[LogRecord {
            key: LogKey::Wide(key(1)),
            content: 2,
            record: 4,
            arrival_ms: 30,
        }]);
        ok.push(0);
        assert!(decode_log(&ok).is_err());
        // A varint that never ends.
        let mut endless = encode_log(&[]);
        endless.extend([0u8; 19]);
        endless.extend([0x80; 12]);
        assert!(decode_log(&endless).is_err());
    }

    #[test]
    fn a_batch_spanning_under_a_second_costs_twenty_bytes_a_record() {
        let records: Vec<LogRecord> = (0..1000)
            .map(|i| LogRecord {
                key: LogKey::Wide(key(i * 7919)),
                content: 1,
                record: i as u32,
                arrival_ms: 1_700_000_000_000 + i as i64,
            })
            .collect();
        assert_eq!(
            encode_log(&records).len(),
            LOG_HEADER_BYTES + 1000 * LOG_RECORD_BYTES
        );
    }

    #[test]
    fn the_key_is_96_bits_of_product_and_id_and_the_hook_collides_the_low_64() {
        let a = DedupKey::of("P1", "e1");
        assert_ne!(a, DedupKey::of("P2", "e1"), "scoped by product");
        assert_ne!(a, DedupKey::of("P1", "e2"));
        assert_eq!(a.0 >> 96, 0);
        assert_eq!(DedupKey::from_bytes(a.to_bytes()), a);
        let (x, y) = (a.collided(), DedupKey::of("P2", "e1").collided());
        assert_eq!(x.0 as u64, y.0 as u64, "the hook forces a 64-bit collision");
        assert_ne!(x, y, "the upper 32 bits still tell them apart");
    }

    #[test]
    fn format_one_items_are_still_read_and_found_by_their_64_bit_key() {
        // Format 1: header (format, base ms), then 8-byte key, content, record, offset.
        let mut bytes = vec![LEGACY_FORMAT];
        bytes.extend(1_000i64.to_le_bytes());
        bytes.extend(0xdead_beef_u64.to_le_bytes());
        bytes.extend(7u32.to_le_bytes());
        bytes.extend(0x0102_0304u32.to_le_bytes());
        bytes.extend(25u32.to_le_bytes());
        let records = decode_log(&bytes).unwrap();
        assert_eq!(
            records,
            vec![LogRecord {
                key: LogKey::Legacy(0xdead_beef),
                content: 7,
                record: 0x02_0304,
                arrival_ms: 1_020,
            }]
        );
        let mut log = ShardLog::default();
        log.insert(records[0]);
        let found = log.get(EventKeys {
            key: key(5),
            legacy: 0xdead_beef,
        });
        assert_eq!(found.map(|s| s.content), Some(7));
        assert_eq!(log.get(keys(6)), None);
    }

    #[test]
    fn prune_forgets_only_what_no_later_record_can_match() {
        let mut log = ShardLog::default();
        for (i, t) in [100i64, 200, 300].into_iter().enumerate() {
            log.insert(LogRecord {
                key: LogKey::Wide(key(i as u128)),
                content: 0,
                record: i as u32,
                arrival_ms: t,
            });
        }
        log.prune(350, 100);
        assert_eq!(log.get(keys(0)), None);
        assert!(log.get(keys(1)).is_none() && log.get(keys(2)).is_some());
        assert_eq!(log.len(), 1);
    }

    proptest! {
        #[test]
        fn log_records_survive_the_codec(
            records in prop::collection::vec((any::<u128>(), any::<u32>(), any::<u32>(), 0i64..86_400_000), 0..300),
            base in 1_600_000_000_000i64..1_900_000_000_000,
        ) {
            let records: Vec<LogRecord> = records
                .into_iter()
                .map(|(k, content, record, off)| LogRecord {
                    key: LogKey::Wide(key(k)),
                    content,
                    record: record & RECORD_MASK,
                    arrival_ms: arrival_unit(base + off),
                })
                .collect();
            let bytes = encode_log(&records);
            prop_assert!(bytes.len() <= LOG_HEADER_BYTES + records.len() * (LOG_RECORD_BYTES + 3));
            prop_assert_eq!(decode_log(&bytes).unwrap(), records);
        }

        #[test]
        fn decode_log_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_log(&bytes);
        }
    }
}
