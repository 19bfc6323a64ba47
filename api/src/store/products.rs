//! Products: a page of the inventory, from the warm instance's copy of the whole catalog
//! ([`super::catalog`]), so any order, filter and search is exact over every product; and
//! one product, read from its item (which also refreshes the copy).

use aws_sdk_dynamodb::Client;
use inventory_domain::api::{InventoryPage, ProductView};
use inventory_domain::catalog::{CatalogQuery, Position, SortKey, SortOrder};
use inventory_domain::ProductStatus;
use inventory_store::Tables;
use serde::{Deserialize, Serialize};

use super::catalog::{view, CatalogCache};
use super::cursors;
use crate::error::ApiError;

/// The longest search accepted: a few words of a name.
pub const MAX_SEARCH_CHARS: usize = 100;

pub struct InventoryQuery {
    /// One status, or every product when `None`.
    pub status: Option<ProductStatus>,
    /// Only active products at or under this stock.
    pub low_stock: Option<u64>,
    /// Words, each the start of a word of the name or of the id.
    pub search: Option<String>,
    pub sort: SortKey,
    pub order: SortOrder,
    pub limit: usize,
    pub cursor: Option<String>,
}

/// Where the next page starts, and the order it belongs to: a cursor of another order is
/// refused rather than read as a position in this one.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct ListCursor {
    sort: SortKey,
    order: SortOrder,
    after: Position,
}

/// A page of products, and how many match in all.
pub async fn inventory_page(
    db: &Client,
    tables: &Tables,
    cache: &CatalogCache,
    q: &InventoryQuery,
) -> Result<InventoryPage, ApiError> {
    let search = q.search.as_deref().map(str::trim).filter(|s| !s.is_empty());
    if search.is_some_and(|s| s.chars().count() > MAX_SEARCH_CHARS) {
        return Err(ApiError::BadRequest(format!(
            "q is at most {MAX_SEARCH_CHARS} characters: words of a product's name or the start of its id"
        )));
    }
    let after = match &q.cursor {
        None => None,
        Some(c) => {
            let c: ListCursor = cursors::decode(c)?;
            if (c.sort, c.order) != (q.sort, q.order) {
                return Err(ApiError::InvalidCursor(
                    "the cursor belongs to another sort or order; start again without it".into(),
                ));
            }
            Some(c.after)
        }
    };
    let query = CatalogQuery {
        status: q.status,
        low_stock: q.low_stock,
        search: search.map(str::to_owned),
        sort: q.sort,
        order: q.order,
        limit: q.limit,
        after,
    };
    let state = cache.current(db, tables).await?;
    let page = state.catalog.query(&query);
    Ok(InventoryPage {
        items: page.items,
        next_cursor: page.next.map(|after| {
            cursors::encode(&ListCursor {
                sort: q.sort,
                order: q.order,
                after,
            })
        }),
        matching: page.matching as u64,
    })
}

/// One product; an item that is not a valid product item is an error, not a 404.
pub async fn product(
    db: &Client,
    tables: &Tables,
    cache: &CatalogCache,
    id: &str,
) -> Result<Option<ProductView>, ApiError> {
    match inventory_store::catalog::product(db, tables, id).await? {
        None => Ok(None),
        Some(item) => {
            let product = view(item);
            cache.repair(&product).await;
            Ok(Some(product))
        }
    }
}
