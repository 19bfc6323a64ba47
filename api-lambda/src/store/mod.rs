//! Reads of the tables the processor writes, shaped as the API's types, one module per
//! resource, and the simulation lock. Items are decoded with the store crate's codecs
//! ([`inventory_store`]), so the API never reads an attribute by hand. Nothing here Scans:
//! the API's role may not (infra/template.yaml).

pub mod cursors;
pub mod products;
pub mod rejections;
pub mod simulation_lock;
pub mod simulations;
pub mod statistics;
pub mod totals;

pub use products::{inventory_page, product, sort_products, InventoryQuery, SortKey, SortOrder};
pub use rejections::rejections_page;
pub use statistics::stats;
pub use totals::{Totals, TotalsCache, TotalsSource};
