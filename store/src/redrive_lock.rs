//! One redrive at a time: two redrives of the same pending records at once would each claim
//! a share of a product's records and publish them side by side, so the product's records
//! would reach the stream out of their order (and apply there). A redrive takes this item
//! (`pk = LOCKS`, `sk = REDRIVE`) with a conditional `UpdateItem` for at most its budget plus
//! a margin, and gives it back when it ends; one that crashed frees it by expiring.

use std::time::Duration;

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};

use crate::config::Tables;
use crate::error::StoreError;
use crate::locks::{self, n};

pub use crate::locks::LOCK_PK;
pub const LOCK_SK: &str = "REDRIVE";

/// Takes the lock for `holder` until `now + hold`; `false` when another redrive holds it.
pub async fn acquire(
    db: &Client,
    tables: &Tables,
    holder: &str,
    now: DateTime<Utc>,
    hold: Duration,
) -> Result<bool, StoreError> {
    let until = now.timestamp_millis() + i64::try_from(hold.as_millis()).unwrap_or(i64::MAX / 2);
    let result = db
        .update_item()
        .table_name(&tables.events)
        .set_key(Some(locks::key(LOCK_SK)))
        .update_expression("SET holder = :h, expires_at_ms = :e, #ttl = :t")
        .condition_expression("attribute_not_exists(pk) OR expires_at_ms < :now")
        .expression_attribute_names("#ttl", "ttl")
        .expression_attribute_values(":h", AttributeValue::S(holder.to_owned()))
        .expression_attribute_values(":e", n(until))
        .expression_attribute_values(":t", n(now.timestamp() + 86_400))
        .expression_attribute_values(":now", n(now.timestamp_millis()))
        .send()
        .await;
    match result {
        Ok(_) => Ok(true),
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(UpdateItemError::ConditionalCheckFailedException(_))
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(StoreError::dynamo("UpdateItem (redrive lock)", e)),
    }
}

/// Gives the lock back if `holder` still has it.
pub async fn release(db: &Client, tables: &Tables, holder: &str) -> Result<(), StoreError> {
    let result = db
        .update_item()
        .table_name(&tables.events)
        .set_key(Some(locks::key(LOCK_SK)))
        .update_expression("SET expires_at_ms = :zero")
        .condition_expression("holder = :h")
        .expression_attribute_values(":h", AttributeValue::S(holder.to_owned()))
        .expression_attribute_values(":zero", n(0))
        .send()
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(UpdateItemError::ConditionalCheckFailedException(_))
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(StoreError::dynamo("UpdateItem (redrive lock)", e)),
    }
}
