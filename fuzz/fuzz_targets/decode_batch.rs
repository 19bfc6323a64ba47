//! Whatever bytes arrive, decoding and validation never panic, and what they accept obeys
//! the contract. The bytes are tried as a whole Pipes batch (every reading the processor
//! has, which must agree), as one record's base64 data and as one event payload; every
//! accepted event is then folded through the state machine, whose stock must stay within
//! its bounds.
#![no_main]

use base64::Engine as _;
use inventory_domain::batch::{decode_batch, decode_pipe_batch, DecodedBatch};
use inventory_domain::event::{MAX_EVENT_QUANTITY, MAX_PRODUCT_ID_LEN, MAX_STOCK};
use inventory_domain::pipes::PipeBatch;
use inventory_domain::{
    decode_record_data, fold_product, parse_event, Change, PipeRecord, SequenceNumber,
    SequencedEvent,
};
use libfuzzer_sys::fuzz_target;

fn check_batch(decoded: &DecodedBatch, len: usize) {
    let grouped: usize = decoded.products.iter().map(|p| p.events.len()).sum();
    assert_eq!(
        grouped + decoded.malformed.len(),
        len,
        "every record accounted for"
    );
    for p in &decoded.products {
        assert!(p.events.iter().all(|e| e.event.product_id == p.product_id));
        assert!(p.events.windows(2).all(|w| w[0].sequence <= w[1].sequence));
        let fold = fold_product(None, &p.events);
        assert_eq!(fold.outcomes.len(), p.events.len());
        if let Some(rec) = fold.record {
            assert!(rec.quantity <= MAX_STOCK);
        }
    }
}

/// The same records, the arrival timestamps to within the last bit of an f64: a number of
/// more than 17 significant digits (no real `approximateArrivalTimestamp` has over 13) may
/// round one ulp apart in sonic-rs and serde_json.
fn assert_same_reading(mut a: Vec<PipeRecord>, mut b: Vec<PipeRecord>, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (x, y) in a.iter_mut().zip(b.iter_mut()) {
        let (p, q) = (x.approximate_arrival_timestamp, y.approximate_arrival_timestamp);
        assert!(
            p == q || (p - q).abs() <= p.abs().max(q.abs()) * 4.0 * f64::EPSILON,
            "{what}: arrival {p} vs {q}"
        );
        x.approximate_arrival_timestamp = 0.0;
        y.approximate_arrival_timestamp = 0.0;
    }
    assert_eq!(a, b, "{what}");
}

fuzz_target!(|data: &[u8]| {
    let records = serde_json::from_slice::<Vec<PipeRecord>>(data);
    let batch = serde_json::from_slice::<PipeBatch>(data);
    assert_eq!(
        records.is_ok(),
        batch.is_ok(),
        "both readings accept the same batches"
    );
    // The processor's own reading (in place, sonic-rs) and the serde_json one in place
    // accept exactly the batches serde_json does, with the same records.
    if let Ok(text) = std::str::from_utf8(data) {
        let sonic = PipeBatch::from_json_sonic(text.to_owned());
        let in_place = PipeBatch::from_json(text.to_owned());
        assert_eq!(sonic.is_ok(), batch.is_ok(), "sonic-rs accepts what serde_json does");
        assert_eq!(in_place.is_ok(), batch.is_ok(), "in place accepts what a copy does");
        if let (Ok(sonic), Ok(in_place), Ok(batch)) = (sonic, in_place, batch.as_ref()) {
            assert_same_reading(sonic.to_records(), batch.to_records(), "sonic-rs reads the same");
            assert_eq!(in_place.to_records(), batch.to_records(), "in place reads the same");
        }
    }
    if let (Ok(records), Ok(batch)) = (records, batch) {
        let decoded = decode_batch(&records);
        assert_eq!(
            decoded,
            decode_pipe_batch(&batch),
            "both readings decode alike"
        );
        check_batch(&decoded, records.len());
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = decode_record_data(text);
    }
    match parse_event(data) {
        Ok(event) => {
            // The same bytes through the base64 path give the same event.
            let b64 = base64::engine::general_purpose::STANDARD.encode(data);
            assert_eq!(decode_record_data(&b64).ok().as_ref(), Some(&event));
            assert!(!event.product_id.is_empty() && event.product_id.len() <= MAX_PRODUCT_ID_LEN);
            match &event.change {
                Change::Added { quantity, name } => {
                    assert!(*quantity <= MAX_EVENT_QUANTITY && !name.is_empty())
                }
                Change::Increased(q) | Change::Decreased(q) => {
                    assert!(*q > 0 && *q <= MAX_EVENT_QUANTITY)
                }
                Change::Removed => {}
            }
            let one = SequencedEvent::new(
                SequenceNumber::parse("1").expect("a sequence number"),
                "shardId-000000000000:1".into(),
                0,
                event,
            );
            let fold = fold_product(None, std::slice::from_ref(&one));
            assert_eq!(fold.outcomes.len(), 1);
        }
        Err(rejection) => assert!(!rejection.detail.is_empty()),
    }
});
