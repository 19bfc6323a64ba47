//! Creates the tables where no template does (the local stack and tests); in AWS,
//! infra/template.yaml defines the same keys.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;

use crate::config::Tables;
use crate::error::StoreError;

/// The inventory table's index of products by status (keys only): the API lists one status
/// with a Query of it instead of a Scan. Keys-only, so only a status change (an add or a
/// removal) writes the index; stock changes do not.
pub const STATUS_INDEX: &str = "status-index";

/// Creates both tables unless they exist. Safe to call on every start.
pub async fn ensure_tables(db: &Client, tables: &Tables) -> Result<(), StoreError> {
    create_if_missing(
        db,
        &tables.inventory,
        &[("product_id", KeyType::Hash)],
        Some(status_index()?),
    )
    .await?;
    if create_if_missing(
        db,
        &tables.events,
        &[("pk", KeyType::Hash), ("sk", KeyType::Range)],
        None,
    )
    .await?
    {
        db.update_time_to_live()
            .table_name(&tables.events)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name("ttl")
                    .build()
                    .map_err(|e| StoreError::dynamo("UpdateTimeToLive", e))?,
            )
            .send()
            .await
            .map_err(|e| StoreError::dynamo("UpdateTimeToLive", e))?;
    }
    Ok(())
}

fn status_index() -> Result<GlobalSecondaryIndex, StoreError> {
    let build = |e| StoreError::dynamo("CreateTable", e);
    GlobalSecondaryIndex::builder()
        .index_name(STATUS_INDEX)
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("status")
                .key_type(KeyType::Hash)
                .build()
                .map_err(build)?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("product_id")
                .key_type(KeyType::Range)
                .build()
                .map_err(build)?,
        )
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::KeysOnly)
                .build(),
        )
        .build()
        .map_err(build)
}

/// Returns whether the table was created now.
async fn create_if_missing(
    db: &Client,
    name: &str,
    keys: &[(&str, KeyType)],
    index: Option<GlobalSecondaryIndex>,
) -> Result<bool, StoreError> {
    match db.describe_table().table_name(name).send().await {
        Ok(_) => return Ok(false),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) => {}
        Err(e) => return Err(StoreError::dynamo("DescribeTable", e)),
    }
    let mut req = db
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest);
    for (attr, kind) in keys {
        req = req
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(*attr)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(|e| StoreError::dynamo("CreateTable", e))?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(*attr)
                    .key_type(kind.clone())
                    .build()
                    .map_err(|e| StoreError::dynamo("CreateTable", e))?,
            );
    }
    if let Some(index) = index {
        req = req
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("status")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(|e| StoreError::dynamo("CreateTable", e))?,
            )
            .global_secondary_indexes(index);
    }
    match req.send().await {
        Ok(_) => Ok(true),
        // Another process created it between our describe and create.
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()) =>
        {
            Ok(false)
        }
        Err(e) => Err(StoreError::dynamo("CreateTable", e)),
    }
}
