//! Each product's history in the events table: one item per product write, written just
//! before the write it describes, kept 8 days (the stream keeps records 7).
//!
//! `pk = HIST#<product_id>`, `sk = <HistoryKey>` (version, time, writer), `prev` = the key
//! of the write before it (the stored item's `history`), `events` = the write's entries
//! (JSON), `ttl`. The product item then names its write's key (`history`). A writer that
//! loses its race (or fails between the two writes) leaves an entry no product item or
//! `prev` names; a reader follows the keys back from the product item, so it never shows
//! one. A product write never lands without its entries: they are written first, and a
//! failed history write fails the product's records, which the Pipe retries.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use inventory_domain::api::HistoryEntry;
use inventory_domain::history::HistoryKey;

use crate::config::Tables;
use crate::error::StoreError;
use crate::items::{self, Item};

/// History is kept this long: past the stream's 7 days of retention.
pub const TTL_SECS: i64 = 8 * 86_400;

pub fn partition(product_id: &str) -> String {
    format!("HIST#{product_id}")
}

/// One write's entries as stored.
pub fn item(
    product_id: &str,
    key: &HistoryKey,
    prev: Option<&HistoryKey>,
    entries: &[HistoryEntry],
    now_secs: i64,
) -> Result<Item, StoreError> {
    let events = serde_json::to_string(entries).map_err(|e| StoreError::Encode {
        what: "a product's history",
        message: e.to_string(),
    })?;
    let mut item: Item = HashMap::from([
        ("pk".to_owned(), items::s(partition(product_id))),
        ("sk".to_owned(), items::s(key.0.as_str())),
        ("events".to_owned(), items::s(events)),
        ("ttl".to_owned(), items::n(now_secs + TTL_SECS)),
    ]);
    if let Some(prev) = prev {
        item.insert("prev".to_owned(), items::s(prev.0.as_str()));
    }
    Ok(item)
}

/// Writes one write's entries (before the product write they describe).
pub async fn put(db: &Client, tables: &Tables, item: Item) -> Result<(), StoreError> {
    db.put_item()
        .table_name(&tables.events)
        .set_item(Some(item))
        .send()
        .await
        .map_err(|e| StoreError::dynamo("PutItem (history)", e))?;
    Ok(())
}

/// One stored write: its entries (in stream order) and the key of the write before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredWrite {
    pub key: HistoryKey,
    pub prev: Option<HistoryKey>,
    pub entries: Vec<HistoryEntry>,
}

fn decode(item: &Item) -> Result<StoredWrite, StoreError> {
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok());
    let key = text("sk").cloned().unwrap_or_default();
    let corrupt = |field: &str| StoreError::CorruptItem {
        key: format!("{}/{key}", text("pk").map_or("", String::as_str)),
        field: field.to_owned(),
    };
    let entries = text("events")
        .ok_or_else(|| corrupt("events"))
        .and_then(|e| {
            serde_json::from_str(e).map_err(|_| corrupt("events (not a list of entries)"))
        })?;
    Ok(StoredWrite {
        key: HistoryKey(key.clone()),
        prev: text("prev").cloned().map(HistoryKey),
        entries,
    })
}

/// Up to `writes` of a product's writes, newest first, starting at `from` (the product
/// item's `history`, or a page's continuation) and following each write's `prev`. Entries
/// no chain names (a lost race's) are skipped. Returns them and the key to go on from
/// (`None` at the oldest kept).
pub async fn chain(
    db: &Client,
    tables: &Tables,
    product_id: &str,
    from: &HistoryKey,
    writes: usize,
) -> Result<(Vec<StoredWrite>, Option<HistoryKey>), StoreError> {
    let mut out: Vec<StoredWrite> = Vec::new();
    let mut want = Some(from.clone());
    let mut fetched: HashMap<HistoryKey, StoredWrite> = HashMap::new();
    while let Some(key) = want.clone() {
        if out.len() >= writes {
            break;
        }
        if let Some(w) = fetched.remove(&key) {
            want = w.prev.clone();
            out.push(w);
            continue;
        }
        // Keys sort in write order, so the chain below `key` is mostly the next items down;
        // a page reads them, and the link wanted is its first item if it is kept at all.
        let resp = db
            .query()
            .table_name(&tables.events)
            .key_condition_expression("pk = :pk AND sk <= :sk")
            .expression_attribute_values(":pk", AttributeValue::S(partition(product_id)))
            .expression_attribute_values(":sk", AttributeValue::S(key.0.clone()))
            .scan_index_forward(false)
            .consistent_read(true)
            .limit(i32::try_from(writes - out.len() + 2).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("Query (history)", e))?;
        for item in resp.items() {
            let w = decode(item)?;
            fetched.insert(w.key.clone(), w);
        }
        if !fetched.contains_key(&key) {
            // Expired (past the TTL): the history kept ends here.
            return Ok((out, None));
        }
    }
    Ok((out, want))
}
