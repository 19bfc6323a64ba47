//! Reads of the tables the processor writes, shaped as the API's types, one module per
//! resource, and the simulation lock. Items are decoded with the store crate's codecs
//! ([`inventory_store`]). The inventory is listed from the warm instance's copy of the
//! catalog ([`catalog`]): the only Scan, once per instance.

pub mod catalog;
pub mod cursors;
pub mod history;
pub mod products;
pub mod rejections;
pub mod simulations;
pub mod statistics;

pub use catalog::CatalogCache;
pub use products::{inventory_page, product, InventoryQuery};
pub use rejections::{rejections_page, RejectionsCache};
pub use statistics::{stats, StatsCache};
