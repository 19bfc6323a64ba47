//! A product's history: what each event a product write settled did to it, with the stock
//! after it. Pure: the processor builds the entries of a write from the fold it writes
//! ([`entries`]), the store keeps them beside the product, and the API reads them back.
//!
//! Redeliveries are not entries: the delivery that processed them first recorded them.

use serde::{Deserialize, Serialize};

use crate::api::{HistoryEntry, HistoryOutcome};
use crate::event::Change;
use crate::state::{DuplicateKind, Outcome, ProductRecord, ProductStatus, SequencedEvent};

/// The stock a product has: none when it has no item or was removed.
pub fn stock_of(record: Option<&ProductRecord>) -> u64 {
    record
        .filter(|r| r.status == ProductStatus::Active)
        .map_or(0, |r| r.quantity)
}

/// The stock after `change` was applied to `stock`.
pub fn stock_after(stock: u64, change: &Change) -> u64 {
    match change {
        Change::Added { quantity, .. } => *quantity,
        Change::Removed => 0,
        Change::Increased(n) => stock.saturating_add(*n),
        Change::Decreased(n) => stock.saturating_sub(*n),
    }
}

/// One write's entries, in stream order: each event of `events` that `outcomes` (the fold's,
/// one per event) applied, found published twice or rejected, with the stock after it,
/// counted from `before` (the item the write replaces).
pub fn entries(
    before: Option<&ProductRecord>,
    events: &[SequencedEvent],
    outcomes: &[Outcome],
) -> Vec<HistoryEntry> {
    let mut stock = stock_of(before);
    events
        .iter()
        .zip(outcomes)
        .filter_map(|(ev, outcome)| {
            let (outcome, reason) = match outcome {
                Outcome::Applied => {
                    stock = stock_after(stock, &ev.event.change);
                    (HistoryOutcome::Applied, None)
                }
                Outcome::Duplicate(DuplicateKind::ProducerDuplicate) => {
                    (HistoryOutcome::Duplicate, None)
                }
                Outcome::Duplicate(DuplicateKind::Redelivery) => return None,
                Outcome::Rejected(r) => {
                    (HistoryOutcome::Rejected, Some(r.reason.as_str().to_owned()))
                }
            };
            let quantity = match &ev.event.change {
                Change::Added { quantity, .. } => Some(*quantity),
                Change::Removed => None,
                Change::Increased(n) | Change::Decreased(n) => Some(*n),
            };
            Some(HistoryEntry {
                at: ev.event.timestamp,
                event_type: ev.event.change.event_type().as_str().to_owned(),
                quantity,
                event_id: ev.event.dedup_key(&ev.record_id).to_owned(),
                outcome,
                reason,
                stock_after: stock,
            })
        })
        .collect()
}

/// Where a product write's entries are kept, and the write before it: what a reader
/// follows from the product item back through its history, skipping any entries written
/// by a writer that then lost its race (their key is never pointed to).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct HistoryKey(pub String);

impl HistoryKey {
    /// The key of a write of `version`, made at `at_ms` by the writer `nonce`: in the order
    /// of the writes of one product (the version never goes back; writes of one version are
    /// rejections, ordered by time).
    pub fn new(version: u64, at_ms: i64, nonce: u64) -> Self {
        Self(format!("{version:020}#{:013}#{nonce:016x}", at_ms.max(0)))
    }
}

/// Checks that `entries` (newest first, the whole history) add up to `stock`: each applied
/// entry's stock follows from the one before it, and the newest is `stock`.
pub fn adds_up(entries_newest_first: &[HistoryEntry], stock: u64) -> Result<(), String> {
    let mut expected = 0u64;
    for e in entries_newest_first.iter().rev() {
        if e.outcome == HistoryOutcome::Applied {
            let change = match (e.event_type.as_str(), e.quantity) {
                ("product_added", Some(q)) => Change::Added {
                    name: String::new(),
                    quantity: q,
                },
                ("product_removed", _) => Change::Removed,
                ("quantity_increased", Some(q)) => Change::Increased(q),
                ("quantity_decreased", Some(q)) => Change::Decreased(q),
                (t, q) => {
                    return Err(format!(
                        "entry {} has type {t} and quantity {q:?}",
                        e.event_id
                    ))
                }
            };
            expected = stock_after(expected, &change);
        }
        if e.stock_after != expected {
            return Err(format!(
                "after {} the stock is {}, but the events before it add up to {expected}",
                e.event_id, e.stock_after
            ));
        }
    }
    if expected != stock {
        return Err(format!(
            "the history adds up to {expected}, the product holds {stock}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::event::InventoryEvent;
    use crate::state::fold_product;
    use crate::SequenceNumber;

    fn ev(seq: u64, id: &str, change: Change) -> SequencedEvent {
        SequencedEvent::new(
            SequenceNumber::parse(&seq.to_string()).unwrap(),
            format!("{}:{seq}", crate::dedup::shard_id(0)),
            seq as i64,
            InventoryEvent {
                event_id: Some(id.to_owned()),
                product_id: "P".to_owned(),
                change,
                timestamp: "2023-09-11T12:00:00Z".parse().unwrap(),
            },
        )
    }

    #[test]
    fn a_write_records_applied_duplicate_and_rejected_events_with_the_stock_after_each() {
        let events = [
            ev(
                1,
                "a",
                Change::Added {
                    name: "Desk".into(),
                    quantity: 5,
                },
            ),
            ev(2, "b", Change::Decreased(2)),
            ev(3, "b", Change::Decreased(2)),
            ev(4, "c", Change::Decreased(9)),
            ev(5, "d", Change::Increased(4)),
        ];
        let fold = fold_product(None, &events);
        let got = entries(None, &events, &fold.outcomes);
        let summary: Vec<(&str, HistoryOutcome, Option<&str>, u64)> = got
            .iter()
            .map(|e| {
                (
                    e.event_id.as_str(),
                    e.outcome,
                    e.reason.as_deref(),
                    e.stock_after,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("a", HistoryOutcome::Applied, None, 5),
                ("b", HistoryOutcome::Applied, None, 3),
                ("b", HistoryOutcome::Duplicate, None, 3),
                ("c", HistoryOutcome::Rejected, Some("insufficient_stock"), 3),
                ("d", HistoryOutcome::Applied, None, 7),
            ]
        );
        assert_eq!(got[1].quantity, Some(2));
        assert_eq!(got[1].event_type, "quantity_decreased");
        let newest_first: Vec<HistoryEntry> = got.into_iter().rev().collect();
        assert_eq!(adds_up(&newest_first, 7), Ok(()));
        assert!(adds_up(&newest_first, 8).is_err());
    }

    #[test]
    fn a_redelivery_is_not_an_entry() {
        let events = [ev(
            1,
            "a",
            Change::Added {
                name: "Desk".into(),
                quantity: 5,
            },
        )];
        let first = fold_product(None, &events);
        let again = fold_product(first.record.clone(), &events);
        assert!(entries(first.record.as_ref(), &events, &again.outcomes).is_empty());
    }

    #[test]
    fn keys_order_writes_by_version_then_time() {
        let a = HistoryKey::new(9, 1_700_000_000_000, 7);
        let b = HistoryKey::new(10, 1_600_000_000_000, 1);
        let c = HistoryKey::new(10, 1_600_000_000_001, 0);
        assert!(a < b && b < c);
    }

    fn change() -> impl Strategy<Value = Change> {
        prop_oneof![
            (0u64..50).prop_map(|q| Change::Added {
                name: "N".into(),
                quantity: q
            }),
            Just(Change::Removed),
            (1u64..20).prop_map(Change::Increased),
            (1u64..20).prop_map(Change::Decreased),
        ]
    }

    proptest! {
        /// Whatever the events and however they are split into writes, the entries of all the
        /// writes add up to the stock the last write stores.
        #[test]
        fn the_history_of_any_writes_adds_up_to_the_stored_stock(
            changes in prop::collection::vec((change(), 0u8..4), 1..60),
            cuts in prop::collection::vec(1usize..8, 1..20),
        ) {
            let events: Vec<SequencedEvent> = changes
                .iter()
                .enumerate()
                // Every fourth draw repeats the previous event id: a producer duplicate.
                .map(|(i, (c, dup))| {
                    let id = if *dup == 0 && i > 0 { format!("e{}", i - 1) } else { format!("e{i}") };
                    ev(i as u64 + 1, &id, c.clone())
                })
                .collect();
            let mut record: Option<ProductRecord> = None;
            let mut all = Vec::new();
            let mut rest = &events[..];
            let mut cut = cuts.iter().cycle();
            while !rest.is_empty() {
                let n = (*cut.next().unwrap()).min(rest.len());
                let (batch, tail) = rest.split_at(n);
                let fold = fold_product(record.clone(), batch);
                all.extend(entries(record.as_ref(), batch, &fold.outcomes));
                if fold.changed {
                    record = fold.record;
                }
                rest = tail;
            }
            all.reverse();
            prop_assert_eq!(adds_up(&all, stock_of(record.as_ref())), Ok(()));
        }
    }
}
