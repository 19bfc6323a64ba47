use crate::error::StoreError;

/// Names of the tables the processor writes, from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    /// One item per product (partition key `product_id`).
    pub inventory: String,
    /// Rejections, statistics and other records (keys `pk`, `sk`).
    pub events: String,
}

pub const INVENTORY_TABLE_VAR: &str = "INVENTORY_TABLE";
pub const EVENTS_TABLE_VAR: &str = "EVENTS_TABLE";

impl Tables {
    pub fn from_env() -> Result<Self, StoreError> {
        let var = |name: &'static str, what: &'static str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .ok_or(StoreError::MissingTable { name, what })
        };
        Ok(Self {
            inventory: var(INVENTORY_TABLE_VAR, "inventory")?,
            events: var(EVENTS_TABLE_VAR, "events")?,
        })
    }

    /// Names with a common prefix, as the local stack and tests use.
    pub fn with_prefix(prefix: &str) -> Self {
        Self {
            inventory: format!("{prefix}inventory"),
            events: format!("{prefix}inventory-events"),
        }
    }
}
