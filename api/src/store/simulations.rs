//! Simulation statuses, as the generator saves them ([`inventory_store::simulations`]).

use aws_sdk_dynamodb::Client;
use inventory_domain::api::SimulationStatus;
use inventory_store::{simulations, Tables};

use crate::error::ApiError;

/// How many simulations `GET /api/simulations` lists.
pub const RECENT: i32 = 10;

pub async fn save(db: &Client, tables: &Tables, status: &SimulationStatus) -> Result<(), ApiError> {
    Ok(simulations::save_status(db, tables, status).await?)
}

pub async fn load(
    db: &Client,
    tables: &Tables,
    id: &str,
) -> Result<Option<SimulationStatus>, ApiError> {
    Ok(simulations::load_status(db, tables, id).await?)
}

/// The newest first.
pub async fn recent(db: &Client, tables: &Tables) -> Result<Vec<SimulationStatus>, ApiError> {
    Ok(simulations::list_recent(db, tables, RECENT).await?)
}
