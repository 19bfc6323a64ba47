//! Property: the stream as `ListShards` lists it (splits and merges whose children number
//! their records below their parents'), records put with `ExplicitHashKey` on a shard outside
//! their product's lineage, the stream deleted and created again, a second stream feeding
//! the same tables, producers' retries, and what the Pipe and operators do (crashes between
//! the product writes and the log write, redeliveries, batches dead-lettered then redriven,
//! a replaced Pipe reading the stream again from TRIM_HORIZON). Every product ends in the
//! state of applying each of its events once, in the order the Pipe delivered them, and
//! every record outside a product's lineage is rejected with its reason, never applied and
//! never moving the product: no later event of the product is lost.

use std::collections::{BTreeMap, HashMap};

use inventory_domain::dedup::{self, LineageLogs, ShardLog};
use inventory_domain::lineage::{hash_key, Shard, StreamId, StreamLineage};
use inventory_domain::{
    fold_product_in, Change, InventoryEvent, Outcome, ProductRecord, ProductStatus,
    RejectionReason, SequenceNumber, SequencedEvent, Source,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Chg {
    Add(u64),
    Remove,
    Inc(u64),
    Dec(u64),
}

#[derive(Debug, Clone)]
enum Op {
    /// A producer's put of product `.0`, routed by its partition key.
    Put(u8, Chg),
    /// A put with ExplicitHashKey on an open shard that does not hold the product's key.
    Stray(u8, Chg),
    /// A producer's retry of the record put `.0` puts earlier (same id and content).
    Retry(usize),
    /// A put on a second stream (created at its first put) feeding the same tables.
    OnSecond(u8, Chg),
    /// Split the open shard `.0` (modulo the open shards) at its middle hash key.
    Split(u8),
    /// Merge the open shard `.0` with its neighbour.
    Merge(u8),
    /// Delete the main stream and create it again: same ARN, shards numbered from 0.
    Recreate,
}

fn chg() -> impl Strategy<Value = Chg> {
    prop_oneof![
        (0u64..20).prop_map(Chg::Add),
        Just(Chg::Remove),
        (1u64..10).prop_map(Chg::Inc),
        (1u64..15).prop_map(Chg::Dec),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (0u8..4, chg()).prop_map(|(p, c)| Op::Put(p, c)),
        2 => (0u8..4, chg()).prop_map(|(p, c)| Op::Stray(p, c)),
        3 => (1usize..60).prop_map(Op::Retry),
        2 => (0u8..4, chg()).prop_map(|(p, c)| Op::OnSecond(p, c)),
        1 => any::<u8>().prop_map(Op::Split),
        1 => any::<u8>().prop_map(Op::Merge),
        1 => Just(Op::Recreate),
    ]
}

struct ShardSim {
    id: u64,
    parents: Vec<u64>,
    keys: (u128, u128),
    start: u64,
    next: u64,
    end: Option<u64>,
}

struct StreamSim {
    id: StreamId,
    /// Sequence numbers of this stream start here, so no two streams share one.
    base: u64,
    shards: Vec<ShardSim>,
}

impl StreamSim {
    fn new(arn: u64, created_ms: i64, base: u64) -> Self {
        let mut s = Self {
            id: StreamId { arn, created_ms },
            base,
            shards: Vec::new(),
        };
        s.open_shard(vec![], (0, u128::MAX));
        s
    }

    fn open_shard(&mut self, parents: Vec<u64>, keys: (u128, u128)) {
        let id = self.shards.len() as u64;
        // Children number their records from low numbers again, often below their parents'.
        let start = self.base + 1 + (id * 7_919) % 500 + if id == 0 { 500_000 } else { 0 };
        self.shards.push(ShardSim {
            id,
            parents,
            keys,
            start,
            next: start,
            end: None,
        });
    }

    /// Indices of the open shards, by hash keys.
    fn open(&self) -> Vec<usize> {
        let mut open: Vec<usize> = (0..self.shards.len())
            .filter(|i| self.shards[*i].end.is_none())
            .collect();
        open.sort_by_key(|i| self.shards[*i].keys.0);
        open
    }

    fn close(&mut self, i: usize) {
        let s = &mut self.shards[i];
        s.end = Some(s.next.max(s.start + 1) - 1);
    }

    fn put(&mut self, i: usize) -> (u64, u64) {
        let s = &mut self.shards[i];
        let seq = s.next;
        s.next += 1 + seq % 3;
        (s.id, seq)
    }

    fn holding(&self, hash: u128) -> usize {
        self.open()
            .into_iter()
            .find(|i| {
                let k = self.shards[*i].keys;
                k.0 <= hash && hash <= k.1
            })
            .expect("the open shards cover every hash key")
    }

    fn split(&mut self, which: u8) {
        let open = self.open();
        let i = open[which as usize % open.len()];
        let (lo, hi) = self.shards[i].keys;
        if hi - lo < 2 {
            return;
        }
        let mid = lo + (hi - lo) / 2;
        self.close(i);
        let parent = self.shards[i].id;
        self.open_shard(vec![parent], (lo, mid));
        self.open_shard(vec![parent], (mid + 1, hi));
    }

    fn merge(&mut self, which: u8) {
        let open = self.open();
        if open.len() < 2 {
            return;
        }
        let k = which as usize % (open.len() - 1);
        let (a, b) = (open[k], open[k + 1]);
        self.close(a);
        self.close(b);
        let keys = (self.shards[a].keys.0, self.shards[b].keys.1);
        let parents = vec![self.shards[a].id, self.shards[b].id];
        self.open_shard(parents, keys);
    }

    /// What ListShards returns once every put is done.
    fn listing(&self) -> StreamLineage {
        let seq = |n: u64| SequenceNumber::parse(&n.to_string()).unwrap();
        StreamLineage::new(
            self.id,
            self.shards.iter().map(|s| Shard {
                id: s.id,
                parents: s.parents.clone(),
                hash_keys: s.keys,
                starting_sequence: seq(s.start),
                ending_sequence: s.end.map(seq),
            }),
        )
    }
}

#[derive(Debug, Clone)]
struct Rec {
    stream: usize,
    shard: u64,
    event: SequencedEvent,
    /// When it was put, in puts.
    time: usize,
}

fn change(c: &Chg, product: &str) -> Change {
    match c {
        Chg::Add(q) => Change::Added {
            name: format!("Product {product}"),
            quantity: *q,
        },
        Chg::Remove => Change::Removed,
        Chg::Inc(q) => Change::Increased(*q),
        Chg::Dec(q) => Change::Decreased(*q),
    }
}

fn record(
    stream: usize,
    shard: u64,
    seq: u64,
    time: usize,
    id: &str,
    product: &str,
    change: Change,
) -> Rec {
    let event = SequencedEvent::new(
        SequenceNumber::parse(&seq.to_string()).unwrap(),
        format!("{}:{seq}", dedup::shard_id(shard)),
        1_700_000_000_000 + time as i64 * 10,
        InventoryEvent {
            event_id: Some(id.to_owned()),
            product_id: product.to_owned(),
            change,
            timestamp: "2026-12-06T10:00:00Z".parse().unwrap(),
        },
    );
    Rec {
        stream,
        shard,
        event,
        time,
    }
}

/// Puts `ops` on the streams. Returns the streams and the records in the order they were put.
fn put_all(ops: &[Op]) -> (Vec<StreamSim>, Vec<Rec>, usize) {
    let mut streams = vec![StreamSim::new(1, 0, 0)];
    let mut main = 0;
    let mut second: Option<usize> = None;
    let mut recs: Vec<Rec> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let base = |n: usize| n as u64 * 1_000_000_000;
        match op {
            Op::Put(p, c) | Op::Stray(p, c) => {
                let stray = matches!(op, Op::Stray(..));
                let put = put_on_main(&mut streams[main], main, i, *p, c, stray);
                recs.extend(put);
            }
            Op::Retry(back) => {
                let retried = retry_on_main(&mut streams[main], main, i, &recs, *back);
                recs.extend(retried);
            }
            Op::OnSecond(p, c) => {
                let s = *second.get_or_insert_with(|| {
                    streams.push(StreamSim::new(2, 1_000 + i as i64, base(streams.len())));
                    streams.len() - 1
                });
                let product = format!("P{p}");
                let (shard, seq) = streams[s].put(0);
                recs.push(record(
                    s,
                    shard,
                    seq,
                    i,
                    &format!("e{i}"),
                    &product,
                    change(c, &product),
                ));
            }
            Op::Split(w) => streams[main].split(*w),
            Op::Merge(w) => streams[main].merge(*w),
            Op::Recreate => {
                streams.push(StreamSim::new(1, 1_000 + i as i64, base(streams.len())));
                main = streams.len() - 1;
            }
        }
    }
    (streams, recs, main)
}

/// Op `i`, a put of product `p` on the main stream (number `main`): on the shard holding
/// its key, or (a `stray`) on another open shard; none when there is no other.
fn put_on_main(
    stream: &mut StreamSim,
    main: usize,
    i: usize,
    p: u8,
    c: &Chg,
    stray: bool,
) -> Option<Rec> {
    let product = format!("P{p}");
    let home = stream.holding(hash_key(&product));
    let on = if stray {
        stream.open().into_iter().find(|o| *o != home)?
    } else {
        home
    };
    let (shard, seq) = stream.put(on);
    Some(record(
        main,
        shard,
        seq,
        i,
        &format!("e{i}"),
        &product,
        change(c, &product),
    ))
}

/// Op `i`, a producer's retry of the record put `back` puts before (same id and content)
/// on the main stream (number `main`); none when there is no such record or it went to
/// another stream.
fn retry_on_main(
    stream: &mut StreamSim,
    main: usize,
    i: usize,
    recs: &[Rec],
    back: usize,
) -> Option<Rec> {
    let k = recs.len().checked_sub(back.min(recs.len()))?;
    let orig = recs.get(k)?;
    // A retry put on another stream than its original is recognised only among the
    // product's recent ids (docs/consistency.md); this property keeps to one.
    if orig.stream != main {
        return None;
    }
    let ev = &orig.event.event;
    let home = stream.holding(hash_key(&ev.product_id));
    let (shard, seq) = stream.put(home);
    let id = ev.event_id.clone().unwrap_or_default();
    Some(record(
        main,
        shard,
        seq,
        i,
        &id,
        &ev.product_id,
        ev.change.clone(),
    ))
}

/// The Pipe's batches: each shard's records cut into batches, the batches in the order their
/// first records were put (so a parent's before its children's, one shard's in order).
fn batches(recs: &[Rec], cuts: &[u8]) -> Vec<Vec<Rec>> {
    let mut by_shard: BTreeMap<(usize, u64), Vec<Rec>> = BTreeMap::new();
    for r in recs {
        by_shard
            .entry((r.stream, r.shard))
            .or_default()
            .push(r.clone());
    }
    let mut out = Vec::new();
    let mut c = 0;
    for (_, records) in by_shard {
        let mut rest = &records[..];
        while !rest.is_empty() {
            let size = 1 + cuts.get(c % cuts.len().max(1)).copied().unwrap_or(3) as usize % 6;
            c += 1;
            let (batch, more) = rest.split_at(size.min(rest.len()));
            out.push(batch.to_vec());
            rest = more;
        }
    }
    out.sort_by_key(|b| b[0].time);
    out
}

type Logs = HashMap<(u64, u64), ShardLog>;

struct Pipeline<'a> {
    streams: &'a [StreamSim],
    listings: Vec<StreamLineage>,
    store: BTreeMap<String, ProductRecord>,
    logs: Logs,
    rejections: BTreeMap<(usize, String), RejectionReason>,
}

impl Pipeline<'_> {
    /// One delivery of a batch through the processor's steps: each product's events folded
    /// against its shard's and ancestors' logs and the listing, the writes `commit` lets
    /// through, then (if `log_written`) the committed products' log records.
    fn deliver(&mut self, batch: &[Rec], commit: impl Fn(usize) -> bool, log_written: bool) {
        let (stream, shard) = (batch[0].stream, batch[0].shard);
        let listing = &self.listings[stream];
        // One log per (ARN, shard): a re-created stream's shards share their names'
        // partitions, as `DEDUP#<stream name>#<shard>` does.
        let arn = self.streams[stream].id.arn;
        let mut by_product: BTreeMap<&str, Vec<SequencedEvent>> = BTreeMap::new();
        for r in batch {
            by_product
                .entry(&r.event.event.product_id)
                .or_default()
                .push(r.event.clone());
        }
        let mut to_log = Vec::new();
        for (i, (product, events)) in by_product.into_iter().enumerate() {
            let keys: Vec<(u64, u64)> = std::iter::once(shard)
                .chain(listing.ancestors(shard))
                .map(|s| (arn, s))
                .collect();
            let index = LineageLogs {
                logs: keys.iter().filter_map(|k| self.logs.get(k)).collect(),
            };
            let fold = fold_product_in(
                self.store.get(product).cloned(),
                &events,
                &index,
                dedup::DEFAULT_WINDOW_MS,
                Source::Listed(listing),
            );
            if !commit(i) {
                continue;
            }
            for (e, o) in events.iter().zip(&fold.outcomes) {
                if let Outcome::Rejected(r) = o {
                    self.rejections
                        .insert((stream, e.record_id.clone()), r.reason);
                }
            }
            to_log.extend(fold.to_log.iter().copied());
            if let Some(rec) = fold.record.filter(|_| fold.changed) {
                self.store.insert(product.to_owned(), rec);
            }
        }
        if log_written {
            let log = self.logs.entry((arn, shard)).or_default();
            to_log.into_iter().for_each(|r| log.insert(r));
        }
    }
}

/// The state a product reaches by its own rules, without any bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Model {
    active: bool,
    quantity: u64,
}

fn transition(m: Option<Model>, c: &Change) -> Result<Model, RejectionReason> {
    let active = m.filter(|m| m.active);
    match (c, active) {
        (Change::Added { quantity, .. }, None) => Ok(Model {
            active: true,
            quantity: *quantity,
        }),
        (Change::Added { .. }, Some(_)) => Err(RejectionReason::AlreadyExists),
        (_, None) => Err(RejectionReason::ProductNotFound),
        (Change::Removed, Some(_)) => Ok(Model {
            active: false,
            quantity: 0,
        }),
        (Change::Increased(q), Some(m)) => Ok(Model {
            quantity: m.quantity + q,
            ..m
        }),
        (Change::Decreased(q), Some(m)) => m
            .quantity
            .checked_sub(*q)
            .map(|quantity| Model { quantity, ..m })
            .ok_or(RejectionReason::InsufficientStock),
    }
}

/// The rules the docs state, applied to each record once in delivery order: a record on a
/// shard that does not hold its product's key, or from a stream created before the one the
/// product (once it has an item) follows, is rejected unless its shard's lineage processed
/// the same event already; any other record is applied once per (product, event id), a
/// reused id with other content rejected.
struct Expected {
    products: BTreeMap<String, Model>,
    follows: HashMap<String, usize>,
    first: HashMap<(String, String), u32>,
    /// The events processed on each shard (by ARN and shard), as its log holds them.
    logged: HashMap<(u64, u64), HashMap<(String, String), u32>>,
    rejections: BTreeMap<(usize, String), RejectionReason>,
}

impl Expected {
    fn new() -> Self {
        Self {
            products: BTreeMap::new(),
            follows: HashMap::new(),
            first: HashMap::new(),
            logged: HashMap::new(),
            rejections: BTreeMap::new(),
        }
    }

    fn process(&mut self, streams: &[StreamSim], listings: &[StreamLineage], r: &Rec) {
        let ev = &r.event;
        let product = ev.event.product_id.clone();
        let id = (product.clone(), ev.dedup_key().to_owned());
        let key = (r.stream, ev.record_id.clone());
        let holds = listings[r.stream]
            .shard(r.shard)
            .is_some_and(|s| s.holds_hash(hash_key(&product)));
        let older = self
            .follows
            .get(&product)
            .is_some_and(|f| streams[r.stream].id.created_ms < streams[*f].id.created_ms);
        let arn = streams[r.stream].id.arn;
        if !holds || older {
            // Unless the shard's lineage processed the event already (a duplicate).
            let lineage: Vec<u64> = std::iter::once(r.shard)
                .chain(listings[r.stream].ancestors(r.shard))
                .collect();
            let known = lineage
                .iter()
                .any(|s| self.logged.get(&(arn, *s)).and_then(|l| l.get(&id)) == Some(&ev.content));
            if !known {
                let reason = if holds {
                    RejectionReason::OlderStream
                } else {
                    RejectionReason::WrongShard
                };
                self.rejections.insert(key, reason);
            }
            return;
        }
        match self.first.get(&id).copied() {
            Some(c) if c == ev.content => {}
            Some(_) => {
                self.rejections.insert(key, RejectionReason::EventIdReused);
            }
            None => {
                self.first.insert(id.clone(), ev.content);
                self.logged
                    .entry((arn, r.shard))
                    .or_default()
                    .insert(id, ev.content);
                match transition(self.products.get(&product).copied(), &ev.event.change) {
                    Ok(m) => {
                        self.products.insert(product.clone(), m);
                    }
                    Err(reason) => {
                        self.rejections.insert(key, reason);
                    }
                }
            }
        }
        if self.products.contains_key(&product) {
            self.follows.insert(product, r.stream);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(384))]
    #[test]
    fn operator_actions_and_stray_records_apply_every_event_once_and_reject_every_stray(
        ops in prop::collection::vec(op(), 1..220),
        cuts in prop::collection::vec(any::<u8>(), 1..40),
        fates in prop::collection::vec(any::<u8>(), 1..40),
        reread in any::<bool>(),
    ) {
        let (mut streams, recs, main) = put_all(&ops);
        let schedule = batches(&recs, &cuts);
        // 0-1: dead-lettered (never processed); 2-4: a crash after some product writes and
        // before the log write, then the Pipe's redelivery; 5: delivered twice; else once.
        let fate = |k: usize| fates[k % fates.len()] % 16;
        let lost: Vec<&Vec<Rec>> = schedule.iter().enumerate().filter(|(k, _)| fate(*k) < 2).map(|(_, b)| b).collect();

        let listings: Vec<StreamLineage> = streams.iter().map(StreamSim::listing).collect();
        let mut expected = Expected::new();
        for (k, batch) in schedule.iter().enumerate() {
            if fate(k) >= 2 {
                batch.iter().for_each(|r| expected.process(&streams, &listings, r));
            }
        }
        // Redrive: the current stream's dead letters put again on it, oldest first. (A
        // deleted stream's records cannot be read back; a copy put on another stream than
        // its duplicate is recognised only among its product's recent ids.)
        let mut redriven = Vec::new();
        for r in lost.iter().flat_map(|b| b.iter()).filter(|r| r.stream == main) {
            let ev = &r.event.event;
            let home = streams[main].holding(hash_key(&ev.product_id));
            let (shard, seq) = streams[main].put(home);
            let id = ev.event_id.clone().unwrap_or_default();
            redriven.push(record(main, shard, seq, 10_000 + redriven.len(), &id, &ev.product_id, ev.change.clone()));
        }
        let listings: Vec<StreamLineage> = streams.iter().map(StreamSim::listing).collect();
        redriven.iter().for_each(|r| expected.process(&streams, &listings, r));

        let mut pipe = Pipeline {
            streams: &streams,
            listings,
            store: BTreeMap::new(),
            logs: Logs::new(),
            rejections: BTreeMap::new(),
        };
        for (k, batch) in schedule.iter().enumerate() {
            match fate(k) {
                0 | 1 => {}
                f @ 2..=4 => {
                    let mask = fates[(k + 7) % fates.len()] as usize + usize::from(f);
                    pipe.deliver(batch, |i| mask & (1 << (i % 8)) != 0, false);
                    pipe.deliver(batch, |_| true, true);
                }
                5 => {
                    pipe.deliver(batch, |_| true, true);
                    pipe.deliver(batch, |_| true, true);
                }
                _ => pipe.deliver(batch, |_| true, true),
            }
        }
        for batch in batches(&redriven, &cuts) {
            pipe.deliver(&batch, |_| true, true);
        }
        // A Pipe replaced at TRIM_HORIZON reads the current stream again (only where nothing
        // was dead-lettered: a dead letter read again is the archive's to judge).
        if reread && lost.is_empty() {
            for batch in schedule.iter().filter(|b| b[0].stream == main) {
                pipe.deliver(batch, |_| true, true);
            }
        }

        let visible: BTreeMap<String, Model> = pipe
            .store
            .iter()
            .map(|(k, r)| (k.clone(), Model { active: r.status == ProductStatus::Active, quantity: r.quantity }))
            .collect();
        prop_assert_eq!(visible, expected.products);
        prop_assert_eq!(pipe.rejections, expected.rejections);
        streams.clear();
    }
}
