//! Creates the tables where no template does (the local stack and tests); in AWS,
//! infra/template.yaml defines the same keys.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;

use crate::config::Tables;
use crate::error::StoreError;

/// Creates both tables unless they exist. Safe to call on every start.
pub async fn ensure_tables(db: &Client, tables: &Tables) -> Result<(), StoreError> {
    create_if_missing(db, &tables.inventory, &[("product_id", KeyType::Hash)]).await?;
    if create_if_missing(
        db,
        &tables.events,
        &[("pk", KeyType::Hash), ("sk", KeyType::Range)],
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

/// Returns whether the table was created now.
async fn create_if_missing(
    db: &Client,
    name: &str,
    keys: &[(&str, KeyType)],
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
