//! Where simulation progress is kept (the events table, partition `SIMULATIONS`), so the
//! API can answer from any instance while the generator runs elsewhere.

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use inventory_domain::api::SimulationStatus;

use crate::config::Tables;
use crate::error::StoreError;
use crate::items::{n, s};

pub const SIMULATIONS_PK: &str = "SIMULATIONS";
/// Simulation records are kept a week.
const TTL_SECS: i64 = 7 * 86_400;

pub async fn save_status(
    db: &Client,
    tables: &Tables,
    status: &SimulationStatus,
) -> Result<(), StoreError> {
    let json = serde_json::to_string(status).map_err(|e| StoreError::Encode {
        what: "a simulation status",
        message: e.to_string(),
    })?;
    db.put_item()
        .table_name(&tables.events)
        .item("pk", s(SIMULATIONS_PK))
        // Ids are ULIDs, so the sort key orders simulations by creation time.
        .item("sk", s(&status.id))
        .item("status", s(json))
        .item("ttl", n(chrono::Utc::now().timestamp() + TTL_SECS))
        .send()
        .await
        .map_err(|e| StoreError::dynamo("PutItem", e))?;
    Ok(())
}

pub async fn load_status(
    db: &Client,
    tables: &Tables,
    id: &str,
) -> Result<Option<SimulationStatus>, StoreError> {
    let out = db
        .get_item()
        .table_name(&tables.events)
        .key("pk", s(SIMULATIONS_PK))
        .key("sk", s(id))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| StoreError::dynamo("GetItem", e))?;
    Ok(out.item().and_then(parse))
}

/// The newest simulations first.
pub async fn list_recent(
    db: &Client,
    tables: &Tables,
    limit: i32,
) -> Result<Vec<SimulationStatus>, StoreError> {
    let out = db
        .query()
        .table_name(&tables.events)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", s(SIMULATIONS_PK))
        .scan_index_forward(false)
        .limit(limit)
        .send()
        .await
        .map_err(|e| StoreError::dynamo("Query", e))?;
    Ok(out.items().iter().filter_map(parse).collect())
}

fn parse(item: &std::collections::HashMap<String, AttributeValue>) -> Option<SimulationStatus> {
    item.get("status")
        .and_then(|v| v.as_s().ok())
        .and_then(|j| serde_json::from_str(j).ok())
}
