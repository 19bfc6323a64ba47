//! `GET /api/inventory/{id}/history`: a product's history, newest first, read from the
//! product item back through its writes' entries (store/src/history.rs), a page of entries
//! at a time. A page may end inside a write: the cursor names the write and how many of its
//! entries were shown.

use aws_sdk_dynamodb::Client;
use inventory_domain::api::HistoryPage;
use inventory_domain::history::HistoryKey;
use inventory_store::{catalog, history, Tables};
use serde::{Deserialize, Serialize};

use super::cursors;
use crate::error::ApiError;

/// Where the next page starts: in the write `key`, after its `skip` newest entries.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct HistoryCursor {
    key: HistoryKey,
    skip: usize,
}

/// A page of `limit` entries of `product_id`'s history; `None` when there is no product.
pub async fn history_page(
    db: &Client,
    tables: &Tables,
    product_id: &str,
    limit: usize,
    cursor: Option<&str>,
) -> Result<Option<HistoryPage>, ApiError> {
    let Some(product) = catalog::product(db, tables, product_id).await? else {
        return Ok(None);
    };
    let (from, mut skip) = match cursor {
        Some(c) => {
            let c: HistoryCursor = cursors::decode(c)?;
            (Some(c.key), c.skip)
        }
        None => (product.history.map(HistoryKey), 0),
    };
    let mut page = HistoryPage {
        product_id: product_id.to_owned(),
        items: Vec::new(),
        next_cursor: None,
    };
    let Some(from) = from else {
        return Ok(Some(page));
    };
    // A write holds at least one entry, so `limit` writes fill the page.
    let (writes, rest) = history::chain(db, tables, product_id, &from, limit).await?;
    for write in writes {
        let newest_first: Vec<_> = write.entries.into_iter().rev().collect();
        let room = limit - page.items.len();
        if newest_first.len().saturating_sub(skip) > room {
            page.items
                .extend(newest_first.into_iter().skip(skip).take(room));
            page.next_cursor = Some(cursors::encode(&HistoryCursor {
                key: write.key,
                skip: skip + room,
            }));
            return Ok(Some(page));
        }
        page.items.extend(newest_first.into_iter().skip(skip));
        skip = 0;
        if page.items.len() == limit {
            page.next_cursor = rest.map(|key| cursors::encode(&HistoryCursor { key, skip: 0 }));
            return Ok(Some(page));
        }
    }
    page.next_cursor = rest.map(|key| cursors::encode(&HistoryCursor { key, skip: 0 }));
    Ok(Some(page))
}
