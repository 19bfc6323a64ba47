//! The dead-letter archive in the events table: one [`DeadLetterItem`] per record of a range
//! the Pipe dead-lettered, written by the dead-letter consumer (which read the record back
//! from the stream), listed and redriven by the API.
//!
//! Key scheme: `pk = DEADLETTERS`, `sk = <arrival ms, 13 digits>#<eventID>`. The key is a
//! function of the record alone, so archiving a queue message twice (SQS delivers at least
//! once) writes nothing new. One partition: dead letters are rare, and a burst is written
//! with `BatchWriteItem`'s retries. Pending items never expire; a redriven one is kept
//! [`TTL_DAYS_AFTER_REDRIVE`] days.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, SubsecRound as _, Utc};
use inventory_domain::api::{DeadLetterStatus, DeadLetterView};
use inventory_domain::rfc3339;
use inventory_domain::PipeRecord;
use serde::{Deserialize, Serialize};

use crate::batch::{batch_get, batch_write, UNPROCESSED_RETRY};
use crate::config::Tables;
use crate::error::StoreError;
use crate::items::{decode, Item};
use crate::rejections::PAYLOAD_EXCERPT_CHARS;

pub const PARTITION: &str = "DEADLETTERS";
pub const TTL_DAYS_AFTER_REDRIVE: i64 = 30;
/// Past this much base64 the record's data is not kept (DynamoDB items stop at 400 KB);
/// such a record is listed without it (a redrive reads every record from the stream).
pub const MAX_DATA_CHARS: usize = 300_000;

/// An archived dead-lettered record, field for field; the one codec its writer and readers
/// use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterItem {
    pub pk: String,
    pub sk: String,
    pub status: DeadLetterStatus,
    pub reason: String,
    #[serde(default)]
    pub attempts: Option<u64>,
    /// The Kinesis record's eventID (`shardId-…:sequenceNumber`).
    pub record_id: String,
    pub shard_id: String,
    pub sequence_number: String,
    pub partition_key: String,
    pub event_source_arn: String,
    /// When the record reached the stream, to the millisecond.
    #[serde(with = "rfc3339::millis")]
    pub arrived_at: DateTime<Utc>,
    /// When the consumer archived it, to the millisecond.
    #[serde(with = "rfc3339::millis")]
    pub dead_lettered_at: DateTime<Utc>,
    /// The record's bytes, base64, for display: a redrive publishes the stream's. Absent
    /// past [`MAX_DATA_CHARS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_base64: Option<String>,
    pub data_base64_length: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// When a redrive last republished it, to the millisecond; absent until one has.
    #[serde(
        default,
        with = "rfc3339::option_millis",
        skip_serializing_if = "Option::is_none"
    )]
    pub redriven_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub redrive_count: u64,
    /// The redrive that claimed it (`redriving`), and when, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_at_ms: Option<i64>,
    /// Why a redrive found no record of this item's on the stream (trimmed, or a forged
    /// item): a redrive of everything pending passes it by; one naming its id looks again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_on_stream: Option<String>,
    /// Epoch seconds when DynamoDB's TTL deletes the item (only once redriven).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<i64>,
}

/// What the consumer knows of a record besides the record itself.
#[derive(Debug, Clone)]
pub struct DeadLetterFacts<'a> {
    pub reason: &'a str,
    pub attempts: Option<u64>,
    pub product_id: Option<&'a str>,
    pub event_id: Option<&'a str>,
    pub status: DeadLetterStatus,
}

/// The sort key of a record's archive item (also its id in the API).
pub fn sort_key(record: &PipeRecord) -> String {
    format!("{:013}#{}", record.arrival_millis().max(0), record.event_id)
}

impl DeadLetterItem {
    pub fn new(record: &PipeRecord, facts: &DeadLetterFacts<'_>, now: DateTime<Utc>) -> Self {
        let arrival =
            DateTime::<Utc>::from_timestamp_millis(record.arrival_millis()).unwrap_or(now);
        Self {
            pk: PARTITION.to_owned(),
            sk: sort_key(record),
            status: facts.status,
            reason: facts.reason.to_owned(),
            attempts: facts.attempts,
            record_id: record.event_id.clone(),
            shard_id: record.shard_id().to_owned(),
            sequence_number: record.sequence_number.clone(),
            partition_key: record.partition_key.clone(),
            event_source_arn: record.event_source_arn.clone(),
            // To the millisecond, as stored, so an item read back equals the one written.
            arrived_at: arrival.trunc_subsecs(3),
            dead_lettered_at: now.trunc_subsecs(3),
            data_base64: (record.data.len() <= MAX_DATA_CHARS).then(|| record.data.clone()),
            data_base64_length: record.data.len() as u64,
            product_id: facts.product_id.map(str::to_owned),
            event_id: facts.event_id.map(str::to_owned),
            redriven_at: None,
            redrive_count: 0,
            claim: None,
            claimed_at_ms: None,
            not_on_stream: None,
            ttl: None,
        }
    }

    pub fn to_item(&self) -> Result<Item, StoreError> {
        serde_dynamo::to_item(self).map_err(|e| StoreError::Encode {
            what: "a dead letter",
            message: e.to_string(),
        })
    }

    /// Decodes a stored item; a missing or mistyped attribute is named in the error.
    pub fn from_item(item: Item) -> Result<Self, StoreError> {
        let key = match item.get("sk") {
            Some(AttributeValue::S(sk)) => format!("dead letter {PARTITION}/{sk}"),
            _ => "a dead-letter item without its key".to_owned(),
        };
        decode(item, key)
    }

    /// What the API shows; the data only to a signed-in user.
    pub fn into_view(self, with_data: bool) -> DeadLetterView {
        let excerpt = self
            .data_base64
            .as_deref()
            .filter(|_| with_data)
            .map(|d| d.chars().take(PAYLOAD_EXCERPT_CHARS).collect());
        DeadLetterView {
            id: self.sk,
            record_id: self.record_id,
            status: self.status,
            reason: self.reason,
            product_id: self.product_id,
            event_id: self.event_id,
            partition_key: self.partition_key,
            arrived_at: self.arrived_at,
            dead_lettered_at: self.dead_lettered_at,
            redriven_at: self.redriven_at,
            redrive_count: self.redrive_count,
            data_base64_excerpt: excerpt,
            data_base64_length: self.data_base64_length,
        }
    }
}

fn key(id: &str) -> Item {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(PARTITION.to_owned())),
        ("sk".to_owned(), AttributeValue::S(id.to_owned())),
    ])
}

/// Archives `items`, keeping what is already archived as it is (a queue message delivered
/// twice must not turn a redriven record back to pending). Returns how many were new.
pub async fn archive(
    db: &Client,
    tables: &Tables,
    items: &[DeadLetterItem],
) -> Result<u64, StoreError> {
    // Which are archived already: one consistent BatchGetItem per 100.
    let read = batch_get(
        db,
        &tables.events,
        items.iter().map(|i| key(&i.sk)).collect(),
        true,
        UNPROCESSED_RETRY,
    )
    .await;
    if let Some((_, e)) = read.failed.into_iter().next() {
        return Err(e);
    }
    let known: std::collections::HashSet<String> = read
        .items
        .iter()
        .filter_map(|i| i.get("sk").and_then(|v| v.as_s().ok()).cloned())
        .collect();
    let mut writes = Vec::new();
    for item in items.iter().filter(|i| !known.contains(&i.sk)) {
        let put = PutRequest::builder()
            .set_item(Some(item.to_item()?))
            .build()
            .map_err(|e| StoreError::Encode {
                what: "a dead letter",
                message: e.to_string(),
            })?;
        writes.push(((), WriteRequest::builder().put_request(put).build()));
    }
    let new = writes.len() as u64;
    let written = batch_write(db, &tables.events, writes, UNPROCESSED_RETRY).await;
    if let Some((_, e)) = written.failed.into_iter().next() {
        return Err(e);
    }
    Ok(new)
}

/// Which end of the archive a listing starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// What a user reads first.
    NewestFirst,
    /// What a redrive sends first, so each product's events go back in their order.
    OldestFirst,
}

/// A page of the archive, optionally of one status, after the id `after`.
pub async fn list(
    db: &Client,
    tables: &Tables,
    status: Option<DeadLetterStatus>,
    order: Order,
    limit: usize,
    after: Option<&str>,
) -> Result<(Vec<DeadLetterItem>, Option<String>), StoreError> {
    let mut items = Vec::new();
    let mut start = after.map(key);
    // A status filter may leave a page short: read on until the page is full or the end.
    loop {
        let mut query = db
            .query()
            .table_name(&tables.events)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(PARTITION.to_owned()))
            .scan_index_forward(order == Order::OldestFirst)
            .consistent_read(true)
            .limit(i32::try_from(limit.clamp(1, 1000)).unwrap_or(100))
            .set_exclusive_start_key(start.take());
        if let Some(status) = status {
            query = query
                .filter_expression("#status = :status")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":status", status_value(status)?);
        }
        let page = query
            .send()
            .await
            .map_err(|e| StoreError::dynamo("Query (dead letters)", e))?;
        for item in page.items.unwrap_or_default() {
            items.push(DeadLetterItem::from_item(item)?);
            if items.len() == limit {
                let next = items.last().map(|i| i.sk.clone());
                return Ok((items, next));
            }
        }
        match page.last_evaluated_key {
            Some(k) => start = Some(k),
            None => return Ok((items, None)),
        }
    }
}

fn status_value(status: DeadLetterStatus) -> Result<AttributeValue, StoreError> {
    serde_dynamo::to_attribute_value(status).map_err(|e| StoreError::Encode {
        what: "a dead letter's status",
        message: e.to_string(),
    })
}

/// The archived items with these ids (those that exist).
pub async fn get_many(
    db: &Client,
    tables: &Tables,
    ids: &[String],
) -> Result<Vec<DeadLetterItem>, StoreError> {
    let read = batch_get(
        db,
        &tables.events,
        ids.iter().map(|id| key(id)).collect(),
        true,
        UNPROCESSED_RETRY,
    )
    .await;
    if let Some((_, e)) = read.failed.into_iter().next() {
        return Err(e);
    }
    read.items
        .into_iter()
        .map(DeadLetterItem::from_item)
        .collect()
}

/// How long a redrive's claim holds: a claim older than this belongs to a redrive that was
/// interrupted (a redrive works within seconds), and a later redrive may take it up.
pub const CLAIM_LEASE_MS: i64 = 30_000;

/// Claims `id` for the redrive `token`: pending, or claimed by a redrive interrupted more
/// than [`CLAIM_LEASE_MS`] ago whose claim is younger than `reclaim_after_ms` (a copy it may
/// have published is then still inside the dedup window of the one this one publishes).
/// Returns whether this redrive has it: two redrives never both do.
pub async fn claim(
    db: &Client,
    tables: &Tables,
    id: &str,
    token: &str,
    now_ms: i64,
    reclaim_after_ms: i64,
) -> Result<bool, StoreError> {
    let result = db
        .update_item()
        .table_name(&tables.events)
        .set_key(Some(key(id)))
        .update_expression("SET #status = :redriving, claim = :token, claimed_at_ms = :now")
        .condition_expression(
            "attribute_exists(pk) AND (#status = :pending OR (#status = :redriving AND claimed_at_ms < :expired AND claimed_at_ms > :reclaimable))",
        )
        .expression_attribute_names("#status", "status")
        .expression_attribute_values(":redriving", status_value(DeadLetterStatus::Redriving)?)
        .expression_attribute_values(":pending", status_value(DeadLetterStatus::Pending)?)
        .expression_attribute_values(":token", AttributeValue::S(token.to_owned()))
        .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
        .expression_attribute_values(
            ":expired",
            AttributeValue::N((now_ms - CLAIM_LEASE_MS).to_string()),
        )
        .expression_attribute_values(":reclaimable", AttributeValue::N(reclaim_after_ms.to_string()))
        .send()
        .await;
    match result {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
        {
            Ok(false)
        }
        Err(e) => Err(StoreError::dynamo("UpdateItem (dead letter claim)", e)),
    }
}

/// Updates `id` as `update` says (its expression and values), only while the redrive
/// `token` still holds its claim.
async fn update_own_claim(
    db: &Client,
    tables: &Tables,
    (id, token): (&str, &str),
    operation: &'static str,
    update: impl FnOnce(UpdateItemFluentBuilder) -> Result<UpdateItemFluentBuilder, StoreError>,
) -> Result<(), StoreError> {
    let request = db
        .update_item()
        .table_name(&tables.events)
        .set_key(Some(key(id)))
        .condition_expression("#status = :redriving AND claim = :token")
        .expression_attribute_names("#status", "status")
        .expression_attribute_values(":redriving", status_value(DeadLetterStatus::Redriving)?)
        .expression_attribute_values(":token", AttributeValue::S(token.to_owned()));
    update(request)?
        .send()
        .await
        .map_err(|e| StoreError::dynamo(operation, e))?;
    Ok(())
}

/// Keeps the dead letters a redrive of everything pending takes: pending, or claimed by a
/// redrive, and not found missing from the stream by an earlier redrive.
fn not_yet_redriven(query: QueryFluentBuilder) -> Result<QueryFluentBuilder, StoreError> {
    Ok(query
        .filter_expression(
            "#status IN (:pending, :redriving) AND attribute_not_exists(not_on_stream)",
        )
        .expression_attribute_names("#status", "status")
        .expression_attribute_values(":pending", status_value(DeadLetterStatus::Pending)?)
        .expression_attribute_values(":redriving", status_value(DeadLetterStatus::Redriving)?))
}

/// Records that `id`, claimed by `token`, was republished now. Fails when the claim is no
/// longer this redrive's.
pub async fn mark_redriven(
    db: &Client,
    tables: &Tables,
    id: &str,
    token: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let operation = "UpdateItem (dead letter)";
    update_own_claim(db, tables, (id, token), operation, |request| {
        Ok(request
            .update_expression(
                "SET #status = :redriven, redriven_at = :at, #ttl = :ttl ADD redrive_count :one REMOVE claim, claimed_at_ms, not_on_stream",
            )
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":redriven", status_value(DeadLetterStatus::Redriven)?)
            .expression_attribute_values(":at", AttributeValue::S(rfc3339::to_millis(&now)))
            .expression_attribute_values(
                ":ttl",
                AttributeValue::N((now.timestamp() + TTL_DAYS_AFTER_REDRIVE * 86_400).to_string()),
            )
            .expression_attribute_values(":one", AttributeValue::N("1".into())))
    })
    .await
}

/// Gives a claim back (its records were not published): pending again.
pub async fn release(
    db: &Client,
    tables: &Tables,
    id: &str,
    token: &str,
) -> Result<(), StoreError> {
    let operation = "UpdateItem (dead letter release)";
    update_own_claim(db, tables, (id, token), operation, |request| {
        Ok(request
            .update_expression("SET #status = :pending REMOVE claim, claimed_at_ms")
            .expression_attribute_values(":pending", status_value(DeadLetterStatus::Pending)?))
    })
    .await
}

/// Gives a claim back, noting `why` its record is not on the stream: pending, and passed by
/// from then on by a redrive of everything pending (it would find the same), so it never
/// holds back the ones after it.
pub async fn release_not_on_stream(
    db: &Client,
    tables: &Tables,
    id: &str,
    token: &str,
    why: &str,
) -> Result<(), StoreError> {
    let operation = "UpdateItem (dead letter not on the stream)";
    update_own_claim(db, tables, (id, token), operation, |request| {
        Ok(request
            .update_expression(
                "SET #status = :pending, not_on_stream = :why REMOVE claim, claimed_at_ms",
            )
            .expression_attribute_values(":pending", status_value(DeadLetterStatus::Pending)?)
            .expression_attribute_values(":why", AttributeValue::S(why.to_owned())))
    })
    .await
}

/// Oldest first, up to `limit`: the dead letters a redrive may send (pending, or claimed by
/// a redrive; none an earlier redrive found missing from the stream), whose record arrived at or after `since_ms` (all with `None`).
pub async fn redrivable(
    db: &Client,
    tables: &Tables,
    since_ms: Option<i64>,
    limit: usize,
) -> Result<Vec<DeadLetterItem>, StoreError> {
    let mut items = Vec::new();
    let mut start: Option<Item> = None;
    loop {
        let mut query = not_yet_redriven(
            db.query()
                .table_name(&tables.events)
                .expression_attribute_values(":pk", AttributeValue::S(PARTITION.to_owned()))
                .scan_index_forward(true)
                .consistent_read(true),
        )?
        .set_exclusive_start_key(start.take());
        query = match since_ms {
            Some(ms) => query
                .key_condition_expression("pk = :pk AND sk >= :since")
                .expression_attribute_values(
                    ":since",
                    AttributeValue::S(format!("{:013}", ms.max(0))),
                ),
            None => query.key_condition_expression("pk = :pk"),
        };
        let page = query
            .send()
            .await
            .map_err(|e| StoreError::dynamo("Query (dead letters)", e))?;
        for item in page.items.unwrap_or_default() {
            items.push(DeadLetterItem::from_item(item)?);
            if items.len() == limit {
                return Ok(items);
            }
        }
        match page.last_evaluated_key {
            Some(k) => start = Some(k),
            None => return Ok(items),
        }
    }
}

/// How many pending dead letters arrived before `before_ms` (what a redrive without
/// `include_past_window` holds back).
pub async fn pending_before(
    db: &Client,
    tables: &Tables,
    before_ms: i64,
) -> Result<u64, StoreError> {
    let mut count = 0;
    let mut start: Option<Item> = None;
    loop {
        let query = db
            .query()
            .table_name(&tables.events)
            .key_condition_expression("pk = :pk AND sk < :before")
            .expression_attribute_values(":pk", AttributeValue::S(PARTITION.to_owned()))
            .expression_attribute_values(
                ":before",
                AttributeValue::S(format!("{:013}", before_ms.max(0))),
            );
        let page = not_yet_redriven(query)?
            .select(aws_sdk_dynamodb::types::Select::Count)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| StoreError::dynamo("Query (dead letters)", e))?;
        count += u64::try_from(page.count()).unwrap_or(0);
        match page.last_evaluated_key {
            Some(k) => start = Some(k),
            None => return Ok(count),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(data: &str) -> PipeRecord {
        let stream = inventory_domain::arn::StreamArn::parse(
            "arn:aws:kinesis:us-east-1:123456789012:stream/s",
        )
        .unwrap();
        PipeRecord::new(
            &stream,
            "shardId-000000000002",
            "4959",
            "P1",
            data.into(),
            1_694_433_600.5,
        )
    }

    fn facts() -> DeadLetterFacts<'static> {
        DeadLetterFacts {
            reason: "target failed",
            attempts: Some(3),
            product_id: Some("P1"),
            event_id: Some("e1"),
            status: DeadLetterStatus::Pending,
        }
    }

    #[test]
    fn an_archived_record_round_trips_and_its_id_is_the_records() {
        let item = DeadLetterItem::new(&record("e30="), &facts(), Utc::now());
        assert_eq!(item.sk, "1694433600500#shardId-000000000002:4959");
        assert_eq!(item.shard_id, "shardId-000000000002");
        let stored = item.to_item().unwrap();
        assert_eq!(
            stored
                .get("status")
                .and_then(|v| v.as_s().ok())
                .map(String::as_str),
            Some("pending")
        );
        assert!(
            !stored.contains_key("ttl"),
            "a pending dead letter never expires"
        );
        assert_eq!(DeadLetterItem::from_item(stored).unwrap(), item);
    }

    fn stored_text(item: &DeadLetterItem, name: &str) -> Option<String> {
        let stored = item.to_item().unwrap();
        stored.get(name).and_then(|v| v.as_s().ok()).cloned()
    }

    /// The table holds the text it always held (3 fraction digits, `Z`), and the view
    /// carries the same instants.
    #[test]
    fn times_are_stored_and_shown_as_millisecond_text() {
        let now: DateTime<Utc> = "2026-12-06T10:00:01.234567Z".parse().unwrap();
        let mut item = DeadLetterItem::new(&record("e30="), &facts(), now);
        assert_eq!(
            stored_text(&item, "arrived_at").as_deref(),
            Some("2023-09-11T12:00:00.500Z")
        );
        assert_eq!(
            stored_text(&item, "dead_lettered_at").as_deref(),
            Some("2026-12-06T10:00:01.234Z")
        );
        assert_eq!(stored_text(&item, "redriven_at"), None, "absent, not null");
        item.redriven_at = Some("2026-12-06T11:00:00Z".parse().unwrap());
        assert_eq!(
            stored_text(&item, "redriven_at").as_deref(),
            Some("2026-12-06T11:00:00.000Z")
        );
        let json = serde_json::to_value(item.into_view(false)).unwrap();
        assert_eq!(json["arrived_at"], "2023-09-11T12:00:00.500Z");
        assert_eq!(json["dead_lettered_at"], "2026-12-06T10:00:01.234Z");
        assert_eq!(json["redriven_at"], "2026-12-06T11:00:00.000Z");
    }

    /// An unreadable stored time fails the read, naming the attribute and its text.
    #[test]
    fn an_unreadable_time_is_named_in_the_error() {
        let item = DeadLetterItem::new(&record("e30="), &facts(), Utc::now());
        for name in ["arrived_at", "dead_lettered_at", "redriven_at"] {
            let mut stored = item.to_item().unwrap();
            stored.insert(name.into(), AttributeValue::S("yesterday".into()));
            let err = DeadLetterItem::from_item(stored).unwrap_err().to_string();
            assert!(err.contains(name) && err.contains("yesterday"), "{err}");
        }
    }

    #[test]
    fn the_data_is_shown_only_to_a_signed_in_user_and_kept_only_when_it_fits() {
        let item = DeadLetterItem::new(&record("e30="), &facts(), Utc::now());
        assert_eq!(item.clone().into_view(false).data_base64_excerpt, None);
        assert_eq!(
            item.into_view(true).data_base64_excerpt.as_deref(),
            Some("e30=")
        );
        let huge = DeadLetterItem::new(
            &record(&"A".repeat(MAX_DATA_CHARS + 1)),
            &facts(),
            Utc::now(),
        );
        assert_eq!(huge.data_base64, None);
        assert_eq!(huge.data_base64_length, MAX_DATA_CHARS as u64 + 1);
    }
}
