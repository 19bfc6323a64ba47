//! The payload an EventBridge Pipe with a Kinesis source sends a Lambda target: a top-level
//! JSON array of flat records (no `Records` wrapper, no nested `kinesis` object), and the
//! partial-batch-failure response it understands.

use serde::de::DeserializeSeed as _;
use serde::{Deserialize, Serialize};

use crate::arn::StreamArn;

/// One Kinesis record as a Pipe delivers it. Read by the same visitor as [`PipeBatch`], so
/// every reading of a record accepts and refuses alike.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PipeRecord {
    pub kinesis_schema_version: String,
    pub partition_key: String,
    pub sequence_number: String,
    /// The record's bytes, base64.
    pub data: String,
    /// Seconds since the epoch, with a fraction (parsed as f64: `aws_lambda_events`'
    /// `SecondTimestamp` misreads fractions).
    pub approximate_arrival_timestamp: f64,
    pub event_source: String,
    pub event_version: String,
    /// `shardId-…:sequenceNumber`; what a partial batch failure names.
    #[serde(rename = "eventID")]
    pub event_id: String,
    pub event_name: String,
    pub invoke_identity_arn: String,
    pub aws_region: String,
    #[serde(rename = "eventSourceARN")]
    pub event_source_arn: String,
}

fn schema_version() -> String {
    "1.0".into()
}
fn event_source() -> String {
    "aws:kinesis".into()
}
fn event_name() -> String {
    "aws:kinesis:record".into()
}

impl PipeRecord {
    /// A record of `stream` as a Pipe delivers it: the fields every record has the same
    /// (schema and event versions, event source and name) filled in, the region taken from
    /// the stream's ARN, no invoking identity (set `invoke_identity_arn` where one is
    /// wanted). `data` is the record's bytes in base64; `arrival` is seconds since the epoch.
    pub fn new(
        stream: &StreamArn,
        shard_id: &str,
        sequence_number: &str,
        partition_key: &str,
        data: String,
        arrival: f64,
    ) -> Self {
        PipeRecord {
            kinesis_schema_version: schema_version(),
            partition_key: partition_key.to_owned(),
            sequence_number: sequence_number.to_owned(),
            data,
            approximate_arrival_timestamp: arrival,
            event_source: event_source(),
            event_version: schema_version(),
            event_id: format!("{shard_id}:{sequence_number}"),
            event_name: event_name(),
            invoke_identity_arn: String::new(),
            aws_region: stream.region().to_owned(),
            event_source_arn: stream.to_string(),
        }
    }

    /// The shard the record came from, taken from its `eventID`.
    pub fn shard_id(&self) -> &str {
        self.event_id
            .split_once(':')
            .map_or(self.event_id.as_str(), |(shard, _)| shard)
    }

    /// Arrival time in whole milliseconds since the epoch.
    pub fn arrival_millis(&self) -> i64 {
        (self.approximate_arrival_timestamp * 1000.0).round() as i64
    }
}

/// A Pipes batch read in one pass into one shared text buffer: the same records as
/// `Vec<PipeRecord>`, without eleven string allocations per record. What the processor's
/// Lambda deserialises; [`PipeBatch::get`] views a record, [`PipeRecordRef::to_record`]
/// copies one out where an owned record is needed (rejections).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PipeBatch {
    text: String,
    records: Vec<Spans>,
}

/// Byte ranges into [`PipeBatch::text`], in [`FIELDS`] order (the timestamp aside).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Spans {
    text: [(usize, usize); 11],
    approximate_arrival_timestamp: f64,
}

/// One record of a [`PipeBatch`], borrowed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PipeRecordRef<'a> {
    pub kinesis_schema_version: &'a str,
    pub partition_key: &'a str,
    pub sequence_number: &'a str,
    pub data: &'a str,
    pub approximate_arrival_timestamp: f64,
    pub event_source: &'a str,
    pub event_version: &'a str,
    pub event_id: &'a str,
    pub event_name: &'a str,
    pub invoke_identity_arn: &'a str,
    pub aws_region: &'a str,
    pub event_source_arn: &'a str,
}

impl PipeBatch {
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn get(&self, index: usize) -> Option<PipeRecordRef<'_>> {
        self.records.get(index).map(|r| self.view(r))
    }

    /// The record at `index`, which must be in range (as slice indexing).
    pub fn at(&self, index: usize) -> PipeRecordRef<'_> {
        self.view(&self.records[index])
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = PipeRecordRef<'_>> + '_ {
        self.records.iter().map(|r| self.view(r))
    }

    fn view(&self, r: &Spans) -> PipeRecordRef<'_> {
        let t = |k: usize| {
            let (from, to) = r.text[k];
            self.text.get(from..to).unwrap_or_default()
        };
        PipeRecordRef {
            kinesis_schema_version: t(0),
            partition_key: t(1),
            sequence_number: t(2),
            data: t(3),
            approximate_arrival_timestamp: r.approximate_arrival_timestamp,
            event_source: t(4),
            event_version: t(5),
            event_id: t(6),
            event_name: t(7),
            invoke_identity_arn: t(8),
            aws_region: t(9),
            event_source_arn: t(10),
        }
    }

    /// Every record, owned.
    pub fn to_records(&self) -> Vec<PipeRecord> {
        self.iter().map(|r| r.to_record()).collect()
    }
}

impl From<&[PipeRecord]> for PipeBatch {
    fn from(records: &[PipeRecord]) -> Self {
        let mut batch = PipeBatch::default();
        for r in records {
            let mut text = [(0, 0); 11];
            for (k, v) in [
                &r.kinesis_schema_version,
                &r.partition_key,
                &r.sequence_number,
                &r.data,
                &r.event_source,
                &r.event_version,
                &r.event_id,
                &r.event_name,
                &r.invoke_identity_arn,
                &r.aws_region,
                &r.event_source_arn,
            ]
            .into_iter()
            .enumerate()
            {
                text[k] = push(&mut batch.text, v);
            }
            batch.records.push(Spans {
                text,
                approximate_arrival_timestamp: r.approximate_arrival_timestamp,
            });
        }
        batch
    }
}

impl PipeRecordRef<'_> {
    pub fn to_record(&self) -> PipeRecord {
        PipeRecord {
            kinesis_schema_version: self.kinesis_schema_version.to_owned(),
            partition_key: self.partition_key.to_owned(),
            sequence_number: self.sequence_number.to_owned(),
            data: self.data.to_owned(),
            approximate_arrival_timestamp: self.approximate_arrival_timestamp,
            event_source: self.event_source.to_owned(),
            event_version: self.event_version.to_owned(),
            event_id: self.event_id.to_owned(),
            event_name: self.event_name.to_owned(),
            invoke_identity_arn: self.invoke_identity_arn.to_owned(),
            aws_region: self.aws_region.to_owned(),
            event_source_arn: self.event_source_arn.to_owned(),
        }
    }

    /// As [`PipeRecord::arrival_millis`].
    pub fn arrival_millis(&self) -> i64 {
        (self.approximate_arrival_timestamp * 1000.0).round() as i64
    }
}

fn push(text: &mut String, value: &str) -> (usize, usize) {
    let from = text.len();
    text.push_str(value);
    (from, text.len())
}

/// The wire names, in [`Spans::text`] order; index 11 is the timestamp.
const FIELDS: [&str; 12] = [
    "kinesisSchemaVersion",
    "partitionKey",
    "sequenceNumber",
    "data",
    "eventSource",
    "eventVersion",
    "eventID",
    "eventName",
    "invokeIdentityArn",
    "awsRegion",
    "eventSourceARN",
    "approximateArrivalTimestamp",
];
/// What a missing field holds, as `PipeRecord`'s serde defaults; `None`: required.
const DEFAULTS: [Option<&str>; 11] = [
    Some("1.0"),
    None,
    None,
    None,
    Some("aws:kinesis"),
    Some("1.0"),
    None,
    Some("aws:kinesis:record"),
    Some(""),
    Some(""),
    Some(""),
];

impl<'de> Deserialize<'de> for PipeRecord {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut sink = Sink {
            base: 0,
            len: 0,
            extra: String::new(),
        };
        let spans = RecordSeed(&mut sink).deserialize(deserializer)?;
        let one = PipeBatch {
            text: sink.extra,
            records: vec![spans],
        };
        Ok(one.at(0).to_record())
    }
}

impl<'de> Deserialize<'de> for PipeBatch {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let parts = BatchSeed::copying().deserialize(deserializer)?;
        Ok(PipeBatch::assemble(String::new(), parts))
    }
}

impl PipeBatch {
    /// Reads a batch from the JSON text of an invocation and keeps that text: a string
    /// value without escapes becomes a span of it, not a copy. What the Lambda does.
    pub fn from_json(body: String) -> Result<Self, serde_json::Error> {
        Self::from_json_with(body, |text, seed| {
            let mut de = serde_json::Deserializer::from_str(text);
            let parts = seed.deserialize(&mut de)?;
            de.end()?;
            Ok(parts)
        })
    }

    /// [`PipeBatch::from_json`] read with sonic-rs (SIMD), about 1.5x faster. For the Pipes
    /// envelope (AWS's own JSON); a fuzz target checks it reads every batch serde_json does,
    /// the same.
    #[cfg(feature = "sonic")]
    pub fn from_json_sonic(body: String) -> Result<Self, sonic_rs::Error> {
        Self::from_json_with(body, |text, seed| {
            let mut de = sonic_rs::Deserializer::from_str(text);
            let parts = seed.deserialize(&mut de)?;
            de.end()?;
            Ok(parts)
        })
    }

    /// [`PipeBatch::from_json`] with the caller's deserializer, which must read `text`
    /// (the body) through the seed it is given.
    pub fn from_json_with<E>(
        body: String,
        parse: impl FnOnce(&str, BatchSeed) -> Result<BatchParts, E>,
    ) -> Result<Self, E> {
        let parts = parse(&body, BatchSeed::over(&body))?;
        Ok(Self::assemble(body, parts))
    }

    fn assemble(body: String, parts: BatchParts) -> Self {
        // Strings that are not slices of the body were numbered from its end; read without
        // a body (copying), `extra` is the whole text already.
        let text = if body.is_empty() {
            parts.extra
        } else {
            body + &parts.extra
        };
        PipeBatch {
            text,
            records: parts.records,
        }
    }
}

/// Reads a batch's records as spans of the body it was made [`over`](BatchSeed::over) (a
/// string outside it, escaped or a default, is copied after the body).
pub struct BatchSeed {
    base: usize,
    len: usize,
}

/// What a [`BatchSeed`] read, to give back to [`PipeBatch::from_json_with`].
pub struct BatchParts {
    extra: String,
    records: Vec<Spans>,
}

impl BatchSeed {
    fn over(body: &str) -> Self {
        BatchSeed {
            base: body.as_ptr() as usize,
            len: body.len(),
        }
    }

    fn copying() -> Self {
        BatchSeed { base: 0, len: 0 }
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for BatchSeed {
    type Value = BatchParts;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<BatchParts, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for BatchSeed {
    type Value = BatchParts;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON array of Pipes Kinesis records")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<BatchParts, A::Error> {
        let mut sink = Sink {
            base: self.base,
            len: self.len,
            // Over a body, only escaped strings and defaults land here; copying, all of a
            // batch's text (records are ~0.7 KB).
            extra: String::with_capacity(if self.len == 0 { 64 * 1024 } else { 0 }),
        };
        let mut records = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(10_000));
        while let Some(spans) = seq.next_element_seed(RecordSeed(&mut sink))? {
            records.push(spans);
        }
        Ok(BatchParts {
            extra: sink.extra,
            records,
        })
    }
}

/// Places a record's strings: a span of the body when the string is a slice of it, else a
/// copy in `extra`, numbered from the body's end.
struct Sink {
    base: usize,
    len: usize,
    extra: String,
}

impl Sink {
    fn place(&mut self, v: &str) -> (usize, usize) {
        let at = v.as_ptr() as usize;
        // A slice of the body is the body's own bytes: it cannot change while borrowed.
        if self.len > 0 && at >= self.base && at + v.len() <= self.base + self.len {
            let from = at - self.base;
            return (from, from + v.len());
        }
        let from = self.len + self.extra.len();
        self.extra.push_str(v);
        (from, from + v.len())
    }
}

/// Reads one record, placing its strings in the sink.
struct RecordSeed<'t>(&'t mut Sink);

impl<'de> serde::de::DeserializeSeed<'de> for RecordSeed<'_> {
    type Value = Spans;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Spans, D::Error> {
        d.deserialize_struct("PipeRecord", &FIELDS, self)
    }
}

impl<'de> serde::de::Visitor<'de> for RecordSeed<'_> {
    type Value = Spans;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("struct PipeRecord")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Spans, A::Error> {
        use serde::de::Error as _;
        let sink = self.0;
        let mut spans: [Option<(usize, usize)>; 11] = [None; 11];
        let mut arrival: Option<f64> = None;
        while let Some(key) = map.next_key::<FieldName>()? {
            match key.0 {
                Some(11) => {
                    if arrival.is_some() {
                        return Err(A::Error::duplicate_field(FIELDS[11]));
                    }
                    arrival = Some(map.next_value()?);
                }
                Some(k) => {
                    if spans[k].is_some() {
                        return Err(A::Error::duplicate_field(FIELDS[k]));
                    }
                    spans[k] = Some(map.next_value_seed(TextSeed(&mut *sink))?);
                }
                None => {
                    map.next_value_seed(ReadAndDropped { depth: 0 })?;
                }
            }
        }
        let approximate_arrival_timestamp =
            arrival.ok_or_else(|| A::Error::missing_field(FIELDS[11]))?;
        let mut out = [(0, 0); 11];
        for (k, span) in spans.into_iter().enumerate() {
            out[k] = match (span, DEFAULTS[k]) {
                (Some(s), _) => s,
                (None, Some(default)) => sink.place(default),
                (None, None) => return Err(A::Error::missing_field(FIELDS[k])),
            };
        }
        Ok(Spans {
            text: out,
            approximate_arrival_timestamp,
        })
    }
}

/// How deep a value of a field the record does not know may nest. Within serde_json's
/// own limit (128, the batch and the record included), so both readers refuse alike.
const MAX_UNKNOWN_DEPTH: usize = 32;

/// A value of a field the record does not know, read whole and dropped. Not `IgnoredAny`:
/// sonic-rs skips such a value without checking its escapes (`"\u12G4"` passes), so it
/// would read a batch serde_json refuses; reading every string keeps the two in step (the
/// fuzz target checks it). AWS sends no unknown field, so the hot path never comes here.
/// Recursive, so bounded: sonic-rs itself has no depth limit.
struct ReadAndDropped {
    depth: usize,
}

impl ReadAndDropped {
    fn inner<E: serde::de::Error>(&self) -> Result<Self, E> {
        if self.depth >= MAX_UNKNOWN_DEPTH {
            return Err(E::custom(format_args!(
                "a field the record does not know nests deeper than {MAX_UNKNOWN_DEPTH} levels"
            )));
        }
        Ok(ReadAndDropped {
            depth: self.depth + 1,
        })
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for ReadAndDropped {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for ReadAndDropped {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(self.inner()?)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry_seed(self.inner()?, self.inner()?)?.is_some() {}
        Ok(())
    }
}

/// A record's key: the index of a known field, `None` for one to ignore.
struct FieldName(Option<usize>);

impl<'de> Deserialize<'de> for FieldName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = FieldName;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<FieldName, E> {
                Ok(FieldName(FIELDS.iter().position(|f| *f == v)))
            }
        }
        d.deserialize_identifier(V)
    }
}

/// A string value, placed by the sink without an allocation of its own.
struct TextSeed<'t>(&'t mut Sink);

impl<'de> serde::de::DeserializeSeed<'de> for TextSeed<'_> {
    type Value = (usize, usize);

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(usize, usize), D::Error> {
        d.deserialize_str(self)
    }
}

impl serde::de::Visitor<'_> for TextSeed<'_> {
    type Value = (usize, usize);

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(usize, usize), E> {
        Ok(self.0.place(v))
    }
}

/// `{"batchItemFailures":[{"itemIdentifier":…}]}`. For a Kinesis source the identifier is
/// the record's `eventID` (EventBridge user guide, "Amazon EventBridge Pipes batching and
/// concurrency", partial batch failure). An empty list means the whole batch succeeded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchResponse {
    pub batch_item_failures: Vec<BatchItemFailure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchItemFailure {
    pub item_identifier: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../../processor/tests/fixtures/pipes-kinesis-batch.json");

    #[test]
    fn reads_the_pipes_fixture() {
        let records: Vec<PipeRecord> = serde_json::from_str(FIXTURE).unwrap();
        assert_eq!(records.len(), 1);
        let r = &records[0];
        assert_eq!(r.partition_key, "P98765");
        assert_eq!(r.shard_id(), "shardId-000000000000");
        assert_eq!(r.arrival_millis(), 1_694_433_600_123);
        assert_eq!(
            r.event_source_arn,
            "arn:aws:kinesis:us-east-1:123456789012:stream/inventory-events"
        );
    }

    #[test]
    fn a_built_record_is_the_one_a_pipe_delivers() {
        let records: Vec<PipeRecord> = serde_json::from_str(FIXTURE).unwrap();
        let r = &records[0];
        let stream = StreamArn::parse(&r.event_source_arn).unwrap();
        let built = PipeRecord::new(
            &stream,
            "shardId-000000000000",
            &r.sequence_number,
            "P98765",
            r.data.clone(),
            1_694_433_600.123,
        );
        assert_eq!(
            PipeRecord {
                invoke_identity_arn: "arn:aws:iam::123456789012:role/pipe-role".into(),
                ..built
            },
            *r
        );
    }

    #[test]
    fn round_trips_with_the_wire_names() {
        let records: Vec<PipeRecord> = serde_json::from_str(FIXTURE).unwrap();
        let back: serde_json::Value = serde_json::to_value(&records).unwrap();
        let orig: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
        assert_eq!(back, orig);
    }

    #[test]
    fn a_batch_reads_the_same_records_as_a_vec() {
        let records: Vec<PipeRecord> = serde_json::from_str(FIXTURE).unwrap();
        let batch: PipeBatch = serde_json::from_str(FIXTURE).unwrap();
        assert_eq!(batch.to_records(), records);
        assert_eq!(
            batch.get(0).unwrap().arrival_millis(),
            records[0].arrival_millis()
        );
        assert_eq!(PipeBatch::from(records.as_slice()).to_records(), records);

        // Defaults, escapes, unknown fields and integer timestamps as the derive reads them.
        let odd = r#"[{"partitionKey":"P\u0031","sequenceNumber":"1","data":"e30=",
            "approximateArrivalTimestamp":1694433600,"eventID":"shardId-0:1","extra":[1,{"a":2}]},
            {"partitionKey":"B","sequenceNumber":"2","data":"","approximateArrivalTimestamp":0.5,
            "eventID":"s:2","awsRegion":"eu-west-1","eventSource":"x"}]"#;
        let records: Vec<PipeRecord> = serde_json::from_str(odd).unwrap();
        let batch: PipeBatch = serde_json::from_str(odd).unwrap();
        assert_eq!(batch.to_records(), records);
        // Read over the body: escaped strings and defaults are copied after it, the rest
        // are spans of it.
        let over_body = PipeBatch::from_json(odd.to_owned()).unwrap();
        assert_eq!(over_body.to_records(), records);
        assert!(over_body.text.starts_with(odd));
        assert_eq!(
            &over_body.text[odd.len()..],
            "P11.0aws:kinesis1.0aws:kinesis:record1.01.0aws:kinesis:record"
        );
        assert_eq!(batch.len(), 2);
        assert_eq!(batch.get(0).unwrap().partition_key, "P1");
        assert!(batch.get(2).is_none());
    }

    #[test]
    fn a_batch_refuses_what_the_vec_refuses() {
        for bad in [
            r#"{}"#,
            r#"[{"sequenceNumber":"1","data":"","approximateArrivalTimestamp":1,"eventID":"e"}]"#,
            r#"[{"partitionKey":"P","sequenceNumber":"1","data":"","eventID":"e"}]"#,
            r#"[{"partitionKey":"P","partitionKey":"Q","sequenceNumber":"1","data":"","approximateArrivalTimestamp":1,"eventID":"e"}]"#,
            r#"[{"partitionKey":null,"sequenceNumber":"1","data":"","approximateArrivalTimestamp":1,"eventID":"e"}]"#,
            r#"[{"partitionKey":"P","sequenceNumber":"1","data":"","approximateArrivalTimestamp":"1","eventID":"e"}]"#,
            r#"[1]"#,
            r#"[{"partitionKey":"P""#,
        ] {
            assert!(
                serde_json::from_str::<Vec<PipeRecord>>(bad).is_err(),
                "{bad}"
            );
            assert!(serde_json::from_str::<PipeBatch>(bad).is_err(), "{bad}");
            assert!(PipeBatch::from_json(bad.to_owned()).is_err(), "{bad}");
        }
        assert!(
            PipeBatch::from_json("[] []".to_owned()).is_err(),
            "trailing text"
        );
        let empty: PipeBatch = serde_json::from_str("[]").unwrap();
        assert!(empty.is_empty());
        assert!(PipeBatch::from_json(" [ ] ".to_owned()).unwrap().is_empty());
    }

    /// A record with `extra` as the value of a field it does not know.
    fn with_unknown(extra: &str) -> String {
        format!(
            r#"[{{"partitionKey":"P","sequenceNumber":"1","data":"","eventID":"e","approximateArrivalTimestamp":1,"newField":{extra}}}]"#
        )
    }

    /// Every reading: serde_json into records, into a batch, in place, and sonic-rs.
    fn readings(text: &str) -> Vec<bool> {
        let serde = [
            serde_json::from_str::<Vec<PipeRecord>>(text).is_ok(),
            serde_json::from_str::<PipeBatch>(text).is_ok(),
            PipeBatch::from_json(text.to_owned()).is_ok(),
        ];
        #[cfg(feature = "sonic")]
        let sonic = Some(PipeBatch::from_json_sonic(text.to_owned()).is_ok());
        #[cfg(not(feature = "sonic"))]
        let sonic = None;
        serde.into_iter().chain(sonic).collect()
    }

    #[test]
    fn a_field_it_does_not_know_is_read_and_dropped() {
        for good in [
            "null",
            "true",
            "-1.5e3",
            r#""\u00e9\ud83d\ude00""#,
            r#"{"a":[1,{"b":"c"}],"d":{}}"#,
            &format!(
                "{}{}",
                "[".repeat(MAX_UNKNOWN_DEPTH),
                "]".repeat(MAX_UNKNOWN_DEPTH)
            ),
        ] {
            let text = with_unknown(good);
            assert!(readings(&text).iter().all(|ok| *ok), "{good}");
            let batch = PipeBatch::from_json(text).unwrap();
            assert_eq!(batch.at(0).partition_key, "P");
        }
    }

    /// Found by the fuzz target: sonic-rs skipped an unknown field's value without checking
    /// its escapes, so it read batches serde_json refuses. A value nested past the bound is
    /// refused by every reading, and thousands of levels do not overflow the stack.
    #[test]
    fn every_reading_refuses_a_bad_value_of_a_field_it_does_not_know() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        for bad in [
            r#""\u12G4""#.to_owned(),
            r#"["\x"]"#.to_owned(),
            r#"{"\uZZZZ":1}"#.to_owned(),
            "\"\u{1}\"".to_owned(),
            "[1,]".to_owned(),
            "01".to_owned(),
            deep(MAX_UNKNOWN_DEPTH + 1),
            deep(100_000),
        ] {
            let text = with_unknown(&bad);
            assert!(readings(&text).iter().all(|ok| !ok), "{bad:.40}");
        }
    }

    #[test]
    fn failure_response_has_the_wire_shape() {
        let resp = BatchResponse {
            batch_item_failures: vec![BatchItemFailure {
                item_identifier: "shardId-0:1".into(),
            }],
        };
        assert_eq!(
            serde_json::to_string(&resp).unwrap(),
            r#"{"batchItemFailures":[{"itemIdentifier":"shardId-0:1"}]}"#
        );
    }
}
