//! Where a record stands against its product's position in the stream. Pure: the processor
//! lists the stream (Kinesis `DescribeStreamSummary` and `ListShards`), this decides.
//!
//! A product's position is the stream, shard and sequence number of the last record it
//! processed. Kinesis puts a record on the shard whose hash-key range holds the MD5 of its
//! partition key (the product id), so a product's records live in a chain of shards, each a
//! child of the one before (a split or a merge), and the listing says which shard is whose
//! parent. The rules ([`place`]):
//!
//! - a record whose shard's hash-key range does not hold its product's hash was put with
//!   `ExplicitHashKey`: it is outside the product's lineage ([`Stray::WrongShard`]);
//! - within one stream, a record on the position's shard is behind it at or before its
//!   sequence number; a record on an ancestor of the position's shard is behind it; a record
//!   on a descendant is ahead. Sequence numbers are never compared across shards;
//! - a stream is its ARN and its creation time: a stream deleted and created again has the
//!   same ARN and new shards numbered from 0 again. A record from a stream created after the
//!   one the product follows moves the product onto it (a re-created stream, or a move to a
//!   new stream); a record from a stream created before it is outside the product's lineage
//!   ([`Stray::OlderStream`]).
//!
//! A record outside the lineage never moves the position; the processor rejects it with its
//! reason, so no later record of the product is taken for a redelivery.
//!
//! Shards are named by the number in their id (`shardId-000000000004` is 4, as
//! [`crate::dedup::shard_ordinal`] reads it): a name, never an order.

use std::collections::{HashMap, HashSet};

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::sequence::SequenceNumber;

/// A stream: its ARN (hashed, to keep the product item small) and its creation time. Two
/// streams with one ARN are one deleted and created again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StreamId {
    /// xxh3 of the stream's ARN.
    pub arn: u64,
    /// `StreamCreationTimestamp`, in ms since the epoch.
    pub created_ms: i64,
}

impl StreamId {
    pub fn new(arn: &str, created_ms: i64) -> Self {
        Self {
            arn: xxh3_64(arn.as_bytes()),
            created_ms,
        }
    }
}

/// The 128-bit hash key Kinesis maps a partition key to (MD5, big-endian), which decides its
/// shard.
pub fn hash_key(partition_key: &str) -> u128 {
    u128::from_be_bytes(Md5::digest(partition_key.as_bytes()).into())
}

/// A shard as `ListShards` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub id: u64,
    /// `ParentShardId` and `AdjacentParentShardId`, when set.
    pub parents: Vec<u64>,
    /// `HashKeyRange`, inclusive.
    pub hash_keys: (u128, u128),
    pub starting_sequence: SequenceNumber,
    /// Set once the shard is closed by a split or a merge.
    pub ending_sequence: Option<SequenceNumber>,
}

impl Shard {
    /// Whether a record with sequence number `seq` can be this shard's.
    pub fn holds_sequence(&self, seq: &SequenceNumber) -> bool {
        *seq >= self.starting_sequence && self.ending_sequence.as_ref().is_none_or(|e| seq <= e)
    }

    pub fn holds_hash(&self, hash: u128) -> bool {
        self.hash_keys.0 <= hash && hash <= self.hash_keys.1
    }
}

/// One stream's shards, as listed at one time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamLineage {
    pub stream: StreamId,
    shards: HashMap<u64, Shard>,
}

/// What a listing says of a record's shard and sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listed {
    Holds,
    /// The listing does not have the shard: newer than the listing, or of another stream.
    UnknownShard,
    /// The shard's sequence-number range does not hold the record's: another incarnation of
    /// the stream, or a listing older than the shard's closing.
    OutOfRange,
}

impl StreamLineage {
    pub fn new(stream: StreamId, shards: impl IntoIterator<Item = Shard>) -> Self {
        Self {
            stream,
            shards: shards.into_iter().map(|s| (s.id, s)).collect(),
        }
    }

    /// A stream of one open shard holding every hash key (tests, a stream never resharded).
    pub fn single(stream: StreamId, shard: u64) -> Self {
        Self::new(
            stream,
            [Shard {
                id: shard,
                parents: Vec::new(),
                hash_keys: (0, u128::MAX),
                starting_sequence: SequenceNumber::zero(),
                ending_sequence: None,
            }],
        )
    }

    pub fn shard(&self, id: u64) -> Option<&Shard> {
        self.shards.get(&id)
    }

    pub fn shards(&self) -> impl Iterator<Item = &Shard> {
        self.shards.values()
    }

    /// Whether the listing holds a record of `shard` with sequence number `seq`.
    pub fn lists(&self, shard: u64, seq: &SequenceNumber) -> Listed {
        match self.shards.get(&shard) {
            None => Listed::UnknownShard,
            Some(s) if s.holds_sequence(seq) => Listed::Holds,
            Some(_) => Listed::OutOfRange,
        }
    }

    /// Every ancestor of `shard` the listing has, nearest first (parents before
    /// grandparents), each once. Closed shards stay listed until their records expire.
    pub fn ancestors(&self, shard: u64) -> Vec<u64> {
        let mut out: Vec<u64> = Vec::new();
        let mut seen: HashSet<u64> = HashSet::from([shard]);
        let mut frontier: Vec<u64> = vec![shard];
        while !frontier.is_empty() {
            let mut next = Vec::new();
            for id in frontier {
                for &parent in self.shards.get(&id).map(|s| &s.parents[..]).unwrap_or(&[]) {
                    if seen.insert(parent) {
                        out.push(parent);
                        next.push(parent);
                    }
                }
            }
            frontier = next;
        }
        out
    }

    /// Whether `ancestor` is an ancestor of `shard` (not the shard itself).
    pub fn is_ancestor(&self, ancestor: u64, shard: u64) -> bool {
        self.ancestors(shard).contains(&ancestor)
    }
}

/// A product's position: the last record it processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position<'a> {
    /// `None` in items written before streams were recorded: taken as the record's stream.
    pub stream: Option<StreamId>,
    /// `None` in items written before shards were recorded: sequence numbers compare as they
    /// did then.
    pub shard: Option<u64>,
    pub sequence: &'a SequenceNumber,
}

/// A record, as [`place`] needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordAt<'a> {
    pub shard: u64,
    pub sequence: &'a SequenceNumber,
    /// [`hash_key`] of its partition key (the product id).
    pub hash: u128,
}

/// Why a record is outside its product's lineage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stray {
    /// Its shard's hash-key range does not hold the product's hash key: it was put with
    /// `ExplicitHashKey`, so nothing orders it with the product's other records.
    WrongShard,
    /// It comes from a stream created before the one the product follows (a stream
    /// re-created, or a second stream feeding the same tables), or from shards the stream
    /// it names does not list.
    OlderStream,
}

/// Where a record stands against its product's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Past the position: process it (and move the position to it).
    Ahead,
    /// At or before the position: the product processed it before (a redelivery).
    Behind,
    /// Outside the product's lineage: it never moves the position.
    Stray(Stray),
}

/// Where `record` (of the stream `lineage` lists, which must list its shard) stands against
/// `position` (`None`: the product has none yet).
pub fn place(
    lineage: &StreamLineage,
    record: RecordAt<'_>,
    position: Option<&Position<'_>>,
) -> Place {
    let Some(shard) = lineage.shard(record.shard) else {
        return Place::Stray(Stray::OlderStream);
    };
    if !shard.holds_sequence(record.sequence) {
        return Place::Stray(Stray::OlderStream);
    }
    if !shard.holds_hash(record.hash) {
        return Place::Stray(Stray::WrongShard);
    }
    let Some(position) = position else {
        return Place::Ahead;
    };
    let here = lineage.stream;
    match position.stream {
        Some(theirs) if theirs != here && !same_incarnation(lineage, theirs, position) => {
            return if theirs.created_ms < here.created_ms {
                Place::Ahead
            } else {
                Place::Stray(Stray::OlderStream)
            };
        }
        _ => {}
    }
    let Some(at) = position.shard else {
        return behind_if(record.sequence <= position.sequence);
    };
    if at == record.shard {
        return behind_if(record.sequence <= position.sequence);
    }
    if lineage.is_ancestor(record.shard, at) {
        return Place::Behind;
    }
    // A descendant of the position's shard, or a shard after one that has left the
    // listing (its records expired: it is older than every listed shard holding the key).
    Place::Ahead
}

fn behind_if(behind: bool) -> Place {
    if behind {
        Place::Behind
    } else {
        Place::Ahead
    }
}

/// A position recorded under an older listing of the same ARN whose shard and sequence
/// number belong to this listing's stream: it was written from this stream's records while
/// the writer's listing still named the stream before it was re-created.
fn same_incarnation(lineage: &StreamLineage, theirs: StreamId, position: &Position<'_>) -> bool {
    theirs.arn == lineage.stream.arn
        && theirs.created_ms < lineage.stream.created_ms
        && position
            .shard
            .and_then(|s| lineage.shard(s))
            .is_some_and(|s| s.holds_sequence(position.sequence))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(n: u64) -> SequenceNumber {
        SequenceNumber::parse(&n.to_string()).unwrap()
    }

    fn shard(id: u64, parents: &[u64], keys: (u128, u128), seqs: (u64, Option<u64>)) -> Shard {
        Shard {
            id,
            parents: parents.to_vec(),
            hash_keys: keys,
            starting_sequence: seq(seqs.0),
            ending_sequence: seqs.1.map(seq),
        }
    }

    const HALF: u128 = u128::MAX / 2;
    const S: StreamId = StreamId {
        arn: 7,
        created_ms: 1_000,
    };

    /// 0 split into 1 (lower half) and 2 (upper half); 1 and 2 merged into 3. Children
    /// number their records from 1 again, below their parent's.
    fn resharded() -> StreamLineage {
        StreamLineage::new(
            S,
            [
                shard(0, &[], (0, u128::MAX), (500, Some(900))),
                shard(1, &[0], (0, HALF), (1, Some(90))),
                shard(2, &[0], (HALF + 1, u128::MAX), (1, Some(90))),
                shard(3, &[1, 2], (0, u128::MAX), (1, None)),
            ],
        )
    }

    fn at<'a>(shard: u64, sequence: &'a SequenceNumber, hash: u128) -> RecordAt<'a> {
        RecordAt {
            shard,
            sequence,
            hash,
        }
    }

    fn pos(shard: u64, sequence: &SequenceNumber) -> Position<'_> {
        Position {
            stream: Some(S),
            shard: Some(shard),
            sequence,
        }
    }

    #[test]
    fn the_hash_key_is_kinesis_md5() {
        // MD5("") = d41d8cd98f00b204e9800998ecf8427e.
        assert_eq!(hash_key(""), 0xd41d8cd98f00b204e9800998ecf8427e);
    }

    #[test]
    fn ancestors_come_from_the_listing_nearest_first() {
        let l = resharded();
        assert_eq!(l.ancestors(3), vec![1, 2, 0]);
        assert!(l.is_ancestor(0, 3) && !l.is_ancestor(3, 0));
        assert!(!l.is_ancestor(1, 2));
        assert!(l.ancestors(42).is_empty());
    }

    #[test]
    fn a_child_is_ahead_of_its_parent_whatever_its_sequence_numbers() {
        let l = resharded();
        let (low, high) = (seq(3), seq(800));
        assert_eq!(
            place(&l, at(1, &low, 5), Some(&pos(0, &high))),
            Place::Ahead
        );
        // The parent's late record is behind a position in the child.
        assert_eq!(
            place(&l, at(0, &high, 5), Some(&pos(1, &low))),
            Place::Behind
        );
        assert_eq!(
            place(&l, at(0, &high, 5), Some(&pos(3, &low))),
            Place::Behind
        );
        // Within one shard, by sequence number.
        assert_eq!(
            place(&l, at(3, &low, 5), Some(&pos(3, &low))),
            Place::Behind
        );
        assert_eq!(
            place(&l, at(3, &seq(4), 5), Some(&pos(3, &low))),
            Place::Ahead
        );
    }

    #[test]
    fn a_record_on_a_shard_that_does_not_hold_its_hash_key_is_stray() {
        let l = resharded();
        let s = seq(10);
        // Hash in the upper half, record on the lower-half child.
        assert_eq!(
            place(&l, at(1, &s, HALF + 9), None),
            Place::Stray(Stray::WrongShard)
        );
        assert_eq!(
            place(&l, at(1, &s, HALF + 9), Some(&pos(2, &seq(80)))),
            Place::Stray(Stray::WrongShard)
        );
        assert_eq!(
            place(&l, at(2, &s, HALF + 9), Some(&pos(2, &seq(8)))),
            Place::Ahead
        );
    }

    #[test]
    fn a_newer_stream_moves_the_product_and_an_older_one_is_stray() {
        let s = seq(10);
        let recreated = StreamLineage::single(
            StreamId {
                arn: 7,
                created_ms: 5_000,
            },
            0,
        );
        let old = pos(3, &s);
        assert_eq!(place(&recreated, at(0, &s, 1), Some(&old)), Place::Ahead);
        let newer = Position {
            stream: Some(StreamId {
                arn: 7,
                created_ms: 9_000,
            }),
            shard: Some(0),
            sequence: &s,
        };
        assert_eq!(
            place(&recreated, at(0, &seq(99), 1), Some(&newer)),
            Place::Stray(Stray::OlderStream)
        );
        // A second stream (another ARN) created later takes the product over too.
        let second = StreamLineage::single(
            StreamId {
                arn: 8,
                created_ms: 2_000,
            },
            0,
        );
        assert_eq!(place(&second, at(0, &s, 1), Some(&old)), Place::Ahead);
    }

    #[test]
    fn records_the_listing_cannot_hold_are_from_another_stream() {
        let l = resharded();
        assert_eq!(
            place(&l, at(9, &seq(1), 1), None),
            Place::Stray(Stray::OlderStream)
        );
        // s1 closed at 90.
        assert_eq!(
            place(&l, at(1, &seq(91), 1), None),
            Place::Stray(Stray::OlderStream)
        );
        assert_eq!(l.lists(1, &seq(91)), Listed::OutOfRange);
        assert_eq!(l.lists(9, &seq(1)), Listed::UnknownShard);
        assert_eq!(l.lists(1, &seq(90)), Listed::Holds);
    }

    #[test]
    fn a_position_written_under_a_stale_listing_of_the_same_arn_counts_as_this_streams() {
        // The writer still listed the stream as created at 1_000; the record (and the
        // position's sequence number) are of the stream created again at 5_000.
        let l = StreamLineage::new(
            StreamId {
                arn: 7,
                created_ms: 5_000,
            },
            [shard(0, &[], (0, u128::MAX), (7_000, None))],
        );
        let s = seq(7_500);
        let stale = Position {
            stream: Some(S),
            shard: Some(0),
            sequence: &s,
        };
        assert_eq!(
            place(&l, at(0, &seq(7_400), 1), Some(&stale)),
            Place::Behind
        );
        assert_eq!(place(&l, at(0, &seq(7_600), 1), Some(&stale)), Place::Ahead);
    }

    #[test]
    fn legacy_positions_compare_as_before() {
        let l = resharded();
        let s = seq(50);
        let no_stream = Position {
            stream: None,
            shard: Some(3),
            sequence: &s,
        };
        assert_eq!(
            place(&l, at(3, &seq(49), 1), Some(&no_stream)),
            Place::Behind
        );
        let no_shard = Position {
            stream: None,
            shard: None,
            sequence: &s,
        };
        assert_eq!(place(&l, at(3, &seq(51), 1), Some(&no_shard)), Place::Ahead);
    }

    #[test]
    fn a_position_on_a_shard_the_listing_no_longer_has_is_behind_any_listed_shard() {
        let l = resharded();
        let s = seq(1);
        assert_eq!(
            place(&l, at(3, &s, 1), Some(&pos(99, &seq(99)))),
            Place::Ahead
        );
    }
}
