//! At most one simulation at a time: a lock item in the events table, taken with a
//! conditional write when a simulation starts.
//!
//! The item (`pk = LOCKS`, `sk = SIMULATION`) holds the simulation's id (`holder`), when it
//! was taken (`acquired_at`) and until when it holds (`expires_at`, epoch seconds: the
//! simulation's maximum event age plus the time its verification may take), plus a `ttl` a
//! day later so DynamoDB removes stale items. A start succeeds when there is no item, the
//! item has expired (a crashed run cannot hold it longer), or its holder's status says the
//! run has ended (completed or failed): the generator need not release it, though
//! [`release`] lets it (and the API releases it when a launch fails). Taking it over from an
//! ended or expired holder is itself conditional on that holder, so two starts racing for a
//! free lock cannot both win.

use std::time::Duration;

use crate::config::Tables;
use crate::error::StoreError;
use crate::items::Item;
use crate::locks::{self, n};
use crate::simulations;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, SecondsFormat, Utc};
use inventory_domain::api::SimulationState;

pub use crate::locks::LOCK_PK;
pub const LOCK_SK: &str = "SIMULATION";
/// A holder whose status record is not there yet (it is saved right after the lock is
/// taken) is presumed running for this long.
const STATUS_GRACE_SECS: i64 = 60;

/// Who holds the lock when a start is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub holder: String,
    pub expires_at: DateTime<Utc>,
}

impl Held {
    pub fn message(&self) -> String {
        format!(
            "simulation {} is running; one runs at a time. Start another when it has finished (at the latest {})",
            self.holder,
            self.expires_at.to_rfc3339_opts(SecondsFormat::Secs, true)
        )
    }
}

fn key() -> Item {
    locks::key(LOCK_SK)
}

fn number(item: &Item, name: &str) -> Option<i64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

/// Takes the lock for simulation `holder` until `now + hold`. `Ok(Err(held))` when another
/// simulation holds it.
pub async fn acquire(
    db: &Client,
    tables: &Tables,
    holder: &str,
    now: DateTime<Utc>,
    hold: Duration,
) -> Result<Result<(), Held>, StoreError> {
    let expires_at = now.timestamp() + i64::try_from(hold.as_secs()).unwrap_or(i64::MAX / 2);
    let put = |condition: &str| {
        db.put_item()
            .table_name(&tables.events)
            .set_item(Some(key()))
            .item("holder", AttributeValue::S(holder.to_owned()))
            .item("acquired_at", n(now.timestamp()))
            .item("expires_at", n(expires_at))
            .item("ttl", n(expires_at + 86_400))
            .condition_expression(condition)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
    };
    let old = match put("attribute_not_exists(pk) OR expires_at < :now")
        .expression_attribute_values(":now", n(now.timestamp()))
        .send()
        .await
    {
        Ok(_) => return Ok(Ok(())),
        Err(e) => match e.into_service_error() {
            aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(
                failed,
            ) => failed.item.unwrap_or_default(),
            other => return Err(StoreError::dynamo("PutItem (simulation lock)", other)),
        },
    };
    let Some(old_holder) = old.get("holder").and_then(|v| v.as_s().ok()).cloned() else {
        return Err(StoreError::CorruptItem {
            key: format!("{LOCK_PK}/{LOCK_SK}"),
            field: "holder".into(),
        });
    };
    let held = Held {
        expires_at: number(&old, "expires_at")
            .and_then(|t| DateTime::from_timestamp(t, 0))
            .unwrap_or(now),
        holder: old_holder.clone(),
    };
    if !holder_has_ended(db, tables, &old, &old_holder, now).await? {
        return Ok(Err(held));
    }
    // The holder has ended: take the lock over, provided nobody else did meanwhile.
    match put("holder = :old")
        .expression_attribute_values(":old", AttributeValue::S(old_holder))
        .send()
        .await
    {
        Ok(_) => Ok(Ok(())),
        Err(e) => match e.into_service_error() {
            aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(
                failed,
            ) => Ok(Err(failed
                .item
                .as_ref()
                .and_then(|item| {
                    Some(Held {
                        holder: item.get("holder")?.as_s().ok()?.clone(),
                        expires_at: DateTime::from_timestamp(number(item, "expires_at")?, 0)?,
                    })
                })
                .unwrap_or(held))),
            other => Err(StoreError::dynamo("PutItem (simulation lock)", other)),
        },
    }
}

async fn holder_has_ended(
    db: &Client,
    tables: &Tables,
    lock: &Item,
    holder: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    Ok(match simulations::load_status(db, tables, holder).await? {
        Some(status) => matches!(
            status.state,
            SimulationState::Completed | SimulationState::Failed
        ),
        None => {
            number(lock, "acquired_at").is_none_or(|at| now.timestamp() - at > STATUS_GRACE_SECS)
        }
    })
}

/// Releases the lock if `holder` holds it; returns whether it did.
pub async fn release(db: &Client, tables: &Tables, holder: &str) -> Result<bool, StoreError> {
    match db
        .delete_item()
        .table_name(&tables.events)
        .set_key(Some(key()))
        .condition_expression("holder = :me")
        .expression_attribute_values(":me", AttributeValue::S(holder.to_owned()))
        .send()
        .await
    {
        Ok(_) => Ok(true),
        Err(e) => match e.into_service_error() {
            aws_sdk_dynamodb::operation::delete_item::DeleteItemError::ConditionalCheckFailedException(_) => {
                Ok(false)
            }
            other => Err(StoreError::dynamo("DeleteItem (simulation lock)", other)),
        },
    }
}

/// Who holds the lock now, if anyone (an expired item counts as free).
pub async fn holder(
    db: &Client,
    tables: &Tables,
    now: DateTime<Utc>,
) -> Result<Option<Held>, StoreError> {
    let out = db
        .get_item()
        .table_name(&tables.events)
        .set_key(Some(key()))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| StoreError::dynamo("GetItem (simulation lock)", e))?;
    Ok(out.item.and_then(|item| {
        let expires_at = number(&item, "expires_at")?;
        (expires_at >= now.timestamp()).then_some(())?;
        Some(Held {
            holder: item.get("holder")?.as_s().ok()?.clone(),
            expires_at: DateTime::from_timestamp(expires_at, 0)?,
        })
    }))
}
