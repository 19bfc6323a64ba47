//! Products: a page of the inventory (Queries of the status index, never a Scan) and one
//! product. Every item is decoded with [`ProductItem`], the store's one codec of the
//! product item.
//!
//! The API's role may not Scan (infra/template.yaml; a request from the internet must not
//! cost a read of the whole table), so a listing is always a Query of the keys-only status
//! index (`status`, `product_id`) followed by a BatchGetItem of the page's keys: one status
//! alone, or every product as the active ones then the removed ones, with one cursor that
//! says which status and which product id to continue after. A search (`q`) is a product id
//! *prefix*, a key condition of the same Query (`begins_with(product_id, :q)`); a search of
//! product names would need a Scan or another index and is not offered.

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use inventory_domain::api::{InventoryPage, ProductView};
use inventory_domain::ProductStatus;
use inventory_store::batch::{batch_get, UNPROCESSED_RETRY};
use inventory_store::items::{product_key, Item, ProductItem, PRODUCT_ID};
use inventory_store::tables::STATUS_INDEX;
use inventory_store::{StoreError, Tables};
use serde::{Deserialize, Serialize};

use super::cursors;
use crate::error::ApiError;

/// The stored `status` attribute (the status index's partition key).
const STATUS: &str = "status";
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SortKey {
    ProductId,
    Name,
    Quantity,
    UpdatedAt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SortOrder {
    Asc,
    Desc,
}

pub struct InventoryQuery {
    /// One status, or every product (active first, then removed) when `None`.
    pub status: Option<ProductStatus>,
    /// A product id prefix.
    pub search: Option<String>,
    pub sort: SortKey,
    pub order: SortOrder,
    pub limit: usize,
    pub cursor: Option<String>,
}

/// Where the next page starts: the status being listed and the product id after which to
/// go on in it (none: from its first product).
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct ListCursor {
    status: ProductStatus,
    after: Option<String>,
}

fn view(item: ProductItem) -> ProductView {
    ProductView {
        product_id: item.product_id,
        product_name: item.product_name,
        quantity: item.quantity,
        status: item.status,
        version: item.version,
        last_event_at: item.last_event_at,
        updated_at: item.updated_at,
    }
}

/// Decodes the items of a listing; one that is not a product item is logged and left out
/// rather than failing the whole page.
fn decode_listed(items: impl IntoIterator<Item = Item>) -> Vec<ProductItem> {
    items
        .into_iter()
        .filter_map(|item| {
            ProductItem::from_item(item)
                .inspect_err(|e| tracing::warn!(error = %e, "product item left out of a listing"))
                .ok()
        })
        .collect()
}

/// The statuses a listing goes through, in order.
fn statuses(only: Option<ProductStatus>) -> &'static [ProductStatus] {
    match only {
        Some(ProductStatus::Active) => &[ProductStatus::Active],
        Some(ProductStatus::Removed) => &[ProductStatus::Removed],
        None => &[ProductStatus::Active, ProductStatus::Removed],
    }
}

/// Checks a search: a product id prefix, written as product ids are.
pub fn check_search(q: &str) -> Result<(), ApiError> {
    if !inventory_domain::event::is_valid_product_id(q) {
        return Err(ApiError::BadRequest(
            "q is a product id prefix (letters, digits, - and _); product names cannot be searched, since that would read the whole table".into(),
        ));
    }
    Ok(())
}

/// A page of products, sorted as asked within the page: Queries of the status index (one
/// per status visited, each for at most the room left on the page) and a BatchGetItem of
/// the keys found. A request reads a page, never the whole table.
pub async fn inventory_page(
    db: &Client,
    tables: &Tables,
    q: &InventoryQuery,
) -> Result<InventoryPage, ApiError> {
    let search = q.search.as_deref().filter(|s| !s.is_empty());
    if let Some(search) = search {
        check_search(search)?;
    }
    let order = statuses(q.status);
    let (mut index, mut after) = match &q.cursor {
        None => (0, None),
        Some(c) => {
            let c: ListCursor = cursors::decode(c)?;
            let index = order
                .iter()
                .position(|s| *s == c.status)
                .ok_or_else(cursors::invalid)?;
            (index, c.after)
        }
    };
    let mut keys: Vec<(ProductStatus, String)> = Vec::new();
    let mut next = None;
    while index < order.len() && keys.len() < q.limit {
        let status = order[index];
        let (found, last) = query_keys(
            db,
            tables,
            status,
            search,
            after.take(),
            q.limit - keys.len(),
        )
        .await?;
        keys.extend(found.into_iter().map(|id| (status, id)));
        match last {
            Some(last) => {
                after = Some(last.clone());
                next = Some(ListCursor {
                    status,
                    after: Some(last),
                });
            }
            None => {
                index += 1;
                next = order.get(index).map(|&status| ListCursor {
                    status,
                    after: None,
                });
            }
        }
    }
    let wanted: std::collections::HashMap<String, ProductStatus> =
        keys.iter().map(|(s, id)| (id.clone(), *s)).collect();
    // Keys DynamoDB leaves unprocessed (throttling) are retried with backoff and jitter.
    let got = batch_get(
        db,
        &tables.inventory,
        keys.iter().map(|(_, id)| product_key(id)).collect(),
        false,
        UNPROCESSED_RETRY,
    )
    .await;
    if let Some((_, e)) = got.failed.into_iter().next() {
        return Err(e.into());
    }
    let mut out: Vec<ProductView> = decode_listed(got.items)
        .into_iter()
        // The index is eventually consistent: a product that changed status since is left
        // out rather than shown under the wrong one (or twice in an all-status listing).
        .filter(|p| wanted.get(&p.product_id) == Some(&p.status))
        .map(view)
        .collect();
    sort_products(&mut out, q.sort, q.order);
    Ok(InventoryPage {
        items: out,
        next_cursor: next.map(|c| cursors::encode(&c)),
    })
}

/// Up to `limit` product ids of one status (with the prefix, after `after`), and the last
/// one when the index has more.
async fn query_keys(
    db: &Client,
    tables: &Tables,
    status: ProductStatus,
    prefix: Option<&str>,
    after: Option<String>,
    limit: usize,
) -> Result<(Vec<String>, Option<String>), ApiError> {
    let status_value = AttributeValue::S(status.as_str().into());
    let start = after.map(|id| {
        let mut key = product_key(&id);
        key.insert(STATUS.into(), status_value.clone());
        key
    });
    let mut req = db
        .query()
        .table_name(&tables.inventory)
        .index_name(STATUS_INDEX)
        .expression_attribute_names("#st", STATUS)
        .expression_attribute_values(":st", status_value)
        .limit(i32::try_from(limit).unwrap_or(i32::MAX))
        .set_exclusive_start_key(start);
    req = match prefix {
        Some(prefix) => req
            .key_condition_expression("#st = :st AND begins_with(#id, :q)")
            .expression_attribute_names("#id", PRODUCT_ID)
            .expression_attribute_values(":q", AttributeValue::S(prefix.to_owned())),
        None => req.key_condition_expression("#st = :st"),
    };
    // Keys only and `limit` of them, so one call: no pagination beyond it.
    let resp = req
        .send()
        .await
        .map_err(|e| StoreError::dynamo("Query (status index)", e))?;
    let ids = resp
        .items()
        .iter()
        .filter_map(|k| k.get(PRODUCT_ID)?.as_s().ok().cloned())
        .collect();
    let last = resp
        .last_evaluated_key()
        .and_then(|k| k.get(PRODUCT_ID)?.as_s().ok().cloned());
    Ok((ids, last))
}

pub fn sort_products(items: &mut [ProductView], key: SortKey, order: SortOrder) {
    items.sort_by(|a, b| {
        let o = match key {
            SortKey::ProductId => a.product_id.cmp(&b.product_id),
            SortKey::Name => a.product_name.cmp(&b.product_name),
            SortKey::Quantity => a.quantity.cmp(&b.quantity),
            SortKey::UpdatedAt => a.updated_at.cmp(&b.updated_at),
        }
        .then_with(|| a.product_id.cmp(&b.product_id));
        if order == SortOrder::Desc {
            o.reverse()
        } else {
            o
        }
    });
}

/// One product; an item that is not a valid product item is an error, not a 404.
pub async fn product(
    db: &Client,
    tables: &Tables,
    id: &str,
) -> Result<Option<ProductView>, ApiError> {
    let out = db
        .get_item()
        .table_name(&tables.inventory)
        .set_key(Some(product_key(id)))
        .send()
        .await
        .map_err(|e| StoreError::dynamo("GetItem (inventory)", e))?;
    match out.item {
        None => Ok(None),
        Some(item) => Ok(Some(view(ProductItem::from_item(item)?))),
    }
}
