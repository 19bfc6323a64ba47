//! The pure first half of a batch (steps 1-2 of the processor): every record of a Pipes
//! batch decoded and validated, and the valid events grouped by product in stream order.
//! No I/O: the processor runs it, a benchmark times it, a fuzz target hammers it.

use std::collections::HashMap;

use crate::event::{decode_record_data_with, Rejection, RejectionReason};
use crate::pipes::{PipeBatch, PipeRecord};
use crate::sequence::SequenceNumber;
use crate::state::SequencedEvent;

/// Per-product work of one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductWork {
    pub product_id: String,
    /// Indices into the batch, in stream order.
    pub indices: Vec<usize>,
    pub events: Vec<SequencedEvent>,
}

/// The pure first half of a batch (steps 1-2): every record decoded and validated, the
/// valid events grouped by product in stream order. No I/O, so a benchmark can run it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodedBatch {
    /// Records that are not valid events, with their index in the batch.
    pub malformed: Vec<(usize, Rejection)>,
    /// One entry per distinct product, in order of first appearance.
    pub products: Vec<ProductWork>,
}

/// Decodes one record into a sequenced event, or says why it is rejected.
pub fn decode(record: &PipeRecord) -> Result<SequencedEvent, Rejection> {
    decode_with(record, &mut Vec::new())
}

/// [`decode`] with a reusable buffer for the base64-decoded payload, so a batch decodes
/// without one allocation per record for it.
fn decode_with(record: &PipeRecord, scratch: &mut Vec<u8>) -> Result<SequencedEvent, Rejection> {
    decode_parts(
        &record.sequence_number,
        &record.data,
        &record.partition_key,
        &record.event_id,
        record.arrival_millis(),
        scratch,
    )
}

fn decode_parts(
    sequence_number: &str,
    data: &str,
    partition_key: &str,
    event_id: &str,
    arrival_ms: i64,
    scratch: &mut Vec<u8>,
) -> Result<SequencedEvent, Rejection> {
    let sequence = SequenceNumber::parse(sequence_number).map_err(|e| {
        Rejection::new(
            RejectionReason::SchemaViolation,
            format!("sequenceNumber: {e}"),
        )
    })?;
    let event = decode_record_data_with(data, scratch)?;
    if partition_key != event.product_id {
        // A product's events are only ordered if they all share one shard.
        return Err(Rejection::new(
            RejectionReason::SchemaViolation,
            "partitionKey: must equal product.product_id, so a product's events stay in one shard and in order",
        ));
    }
    Ok(SequencedEvent::new(
        sequence,
        event_id.to_owned(),
        arrival_ms,
        event,
    ))
}

/// Steps 1-2 of a batch: decode and validate every record, then group the valid events by
/// product (in order of first appearance), each product's events in stream order.
pub fn decode_batch(records: &[PipeRecord]) -> DecodedBatch {
    let mut scratch = Vec::new();
    collect(
        records.len(),
        records.iter().map(|r| decode_with(r, &mut scratch)),
    )
}

/// [`decode_batch`] of a [`PipeBatch`].
pub fn decode_pipe_batch(batch: &PipeBatch) -> DecodedBatch {
    let mut scratch = Vec::new();
    collect(
        batch.len(),
        batch.iter().map(|r| {
            decode_parts(
                r.sequence_number,
                r.data,
                r.partition_key,
                r.event_id,
                r.arrival_millis(),
                &mut scratch,
            )
        }),
    )
}

fn collect(
    len: usize,
    decoded: impl Iterator<Item = Result<SequencedEvent, Rejection>>,
) -> DecodedBatch {
    let mut malformed = Vec::new();
    let mut valid: Vec<(usize, SequencedEvent)> = Vec::with_capacity(len);
    for (index, result) in decoded.enumerate() {
        match result {
            Ok(event) => valid.push((index, event)),
            Err(rejection) => malformed.push((index, rejection)),
        }
    }
    DecodedBatch {
        malformed,
        products: group_by_product(valid),
    }
}

fn group_by_product(valid: Vec<(usize, SequencedEvent)>) -> Vec<ProductWork> {
    // Slots are assigned with borrowed keys first, so a product id is copied once per
    // product rather than once per event.
    let mut slots: Vec<usize> = Vec::with_capacity(valid.len());
    let mut sizes: Vec<usize> = Vec::new();
    {
        let mut slot: HashMap<&str, usize> = HashMap::with_capacity(valid.len().min(1024));
        for (_, e) in &valid {
            let next = sizes.len();
            let k = *slot.entry(e.event.product_id.as_str()).or_insert(next);
            if k == next {
                sizes.push(0);
            }
            sizes[k] += 1;
            slots.push(k);
        }
    }
    let mut order: Vec<ProductWork> = sizes
        .iter()
        .map(|n| ProductWork {
            product_id: String::new(),
            indices: Vec::with_capacity(*n),
            events: Vec::with_capacity(*n),
        })
        .collect();
    for ((index, event), k) in valid.into_iter().zip(slots) {
        let w = &mut order[k];
        if w.events.is_empty() {
            w.product_id.clone_from(&event.event.product_id);
        }
        w.indices.push(index);
        w.events.push(event);
    }
    // A batch is one shard's records in order already; sorting guards the invariant the
    // fold relies on without trusting the caller. Only an out-of-order product pays for it.
    for w in &mut order {
        if w.events.is_sorted_by(|a, b| a.sequence <= b.sequence) {
            continue;
        }
        let mut pairs: Vec<(usize, SequencedEvent)> =
            w.indices.drain(..).zip(w.events.drain(..)).collect();
        pairs.sort_by(|a, b| a.1.sequence.cmp(&b.1.sequence));
        for (i, e) in pairs {
            w.indices.push(i);
            w.events.push(e);
        }
    }
    order
}
