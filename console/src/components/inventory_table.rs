//! The inventory, a page at a time: sorted, filtered and searched by the API over the whole
//! catalog. Column headers sort (`aria-sort` says how); the search box sends words; rows at
//! or under the user's low-stock threshold are highlighted, and "only low stock" asks the
//! API for those alone. A row opens its product's page.

use inventory_domain::api::ProductView;
use inventory_domain::catalog::{SortKey, SortOrder};
use inventory_domain::rfc3339;
use inventory_domain::ProductStatus;
use leptos::prelude::*;

use super::app::product_href;
use super::table::{Loading, ScrollTable};
use crate::api::PAGE_SIZE;
use crate::live::Live;
use crate::time::LocalTime;

/// How long typing must pause before the search is sent.
const SEARCH_PAUSE: std::time::Duration = std::time::Duration::from_millis(300);

/// What the table area shows.
#[derive(Clone, Copy, PartialEq)]
enum Shown {
    Loading,
    /// No product at all.
    Empty,
    /// Products exist, none matches.
    NoMatch,
    Rows,
}

/// `12345` as `12,345`.
pub(super) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The order a column sorts in first: lowest stock and latest update first, the rest A→Z.
fn first_order(key: SortKey) -> SortOrder {
    match key {
        SortKey::UpdatedAt => SortOrder::Desc,
        _ => SortOrder::Asc,
    }
}

fn is_low(p: &ProductView, threshold: u64) -> bool {
    p.status == ProductStatus::Active && p.quantity <= threshold
}

#[component]
pub(super) fn InventoryTable(live: Live) -> impl IntoView {
    let filtered = move || {
        live.query
            .with(|q| !q.search.trim().is_empty() || q.status != "all" || q.low_stock.is_some())
    };
    let shown = Memo::new(move |_| {
        let has_rows = live
            .inventory
            .with(|p| p.as_ref().map(|p| !p.items.is_empty()));
        match has_rows {
            None => Shown::Loading,
            Some(true) => Shown::Rows,
            Some(false) if filtered() => Shown::NoMatch,
            Some(false) => Shown::Empty,
        }
    });

    view! {
        <section class="card" id="inventory-card">
            <div class="table-head">
                <h2>"Inventory"</h2>
                <InventoryControls live />
            </div>
            {move || match shown.get() {
                Shown::Loading => view! { <Loading /> }.into_any(),
                Shown::Empty => view! {
                    <p class="muted" id="empty-inventory">"No products yet. Start a simulation to publish events."</p>
                }.into_any(),
                Shown::NoMatch => view! {
                    <p class="muted" id="no-match">"No product matches this search and these filters."</p>
                }.into_any(),
                Shown::Rows => view! { <InventoryRows live /> }.into_any(),
            }}
            <InventoryPager live />
        </section>
    }
}

/// The search box (sent once typing pauses, or at once on Enter), the status filter and the
/// low-stock threshold and filter.
#[component]
fn InventoryControls(live: Live) -> impl IntoView {
    let typing = StoredValue::new(0u64);
    let search = move |text: String| {
        let generation = typing.with_value(|g| g + 1);
        typing.set_value(generation);
        set_timeout(
            move || {
                if typing.get_value() == generation {
                    live.change_query(|q| q.search = text);
                }
            },
            SEARCH_PAUSE,
        );
    };
    view! {
        <form class="controls" role="search" on:submit=move |ev| {
            ev.prevent_default();
            // Enter sends the search at once.
            typing.update_value(|g| *g += 1);
        }>
            <label for="search">"Search"</label>
            <input type="search" id="search" name="q" placeholder="name words or id"
                value=live.query.with_untracked(|q| q.search.clone())
                on:input=move |ev| search(event_target_value(&ev))
                on:change=move |ev| {
                    typing.update_value(|g| *g += 1);
                    let text = event_target_value(&ev);
                    live.change_query(|q| q.search = text);
                } />
            <label for="status-filter">"Status"</label>
            <select id="status-filter" prop:value=move || live.query.with(|q| q.status.clone())
                on:change=move |ev| {
                    let status = event_target_value(&ev);
                    live.change_query(|q| q.status = status);
                }>
                <option value="all">"All"</option>
                <option value="active">"Active"</option>
                <option value="removed">"Removed"</option>
            </select>
            <label for="low-stock">"Low stock at or under"</label>
            <input type="number" id="low-stock" min="0" step="1" class="narrow"
                value=live.threshold.get_untracked()
                on:input=move |ev| {
                    if let Ok(t) = event_target_value(&ev).trim().parse::<u64>() {
                        live.set_threshold(t);
                    }
                } />
            <span class="check">
                <input type="checkbox" id="low-stock-only"
                    prop:checked=move || live.query.with(|q| q.low_stock.is_some())
                    on:change=move |ev| {
                        let only = event_target_checked(&ev);
                        let t = live.threshold.get_untracked();
                        live.change_query(|q| q.low_stock = only.then_some(t));
                    } />
                <label for="low-stock-only">"Only low stock"</label>
            </span>
        </form>
    }
}

/// A column header that sorts by `key`: first in the column's own first order, then the
/// other way on each press.
#[component]
fn SortHeader(live: Live, label: &'static str, key: SortKey) -> impl IntoView {
    let sorted = move || live.query.with(|q| (q.sort == key).then_some(q.order));
    view! {
        <th aria-sort=move || match sorted() {
            Some(SortOrder::Asc) => "ascending",
            Some(SortOrder::Desc) => "descending",
            None => "none",
        }>
            <button type="button" class="sort" data-sort=crate::api::sort_param(key)
                on:click=move |_| live.change_query(|q| {
                    if q.sort == key {
                        q.order = match q.order { SortOrder::Asc => SortOrder::Desc, SortOrder::Desc => SortOrder::Asc };
                    } else {
                        q.sort = key;
                        q.order = first_order(key);
                    }
                })>
                {label}
                <span aria-hidden="true">{move || match sorted() {
                    Some(SortOrder::Asc) => " ▲",
                    Some(SortOrder::Desc) => " ▼",
                    None => "",
                }}</span>
            </button>
        </th>
    }
}

/// The current page's products.
#[component]
fn InventoryRows(live: Live) -> impl IntoView {
    let rows = move || live.inventory.get().map(|p| p.items).unwrap_or_default();
    view! {
        <ScrollTable id="inventory" head=view! {
            <SortHeader live label="Product" key=SortKey::ProductId />
            <SortHeader live label="Name" key=SortKey::Name />
            <SortHeader live label="Stock" key=SortKey::Quantity />
            <th>"Status"</th>
            <th>"Version"</th>
            <SortHeader live label="Last update" key=SortKey::UpdatedAt />
        }>
            <For each=rows key=|p| (p.product_id.clone(), p.version, p.updated_at, p.quantity)
                children=move |p| view! { <InventoryRow live p /> } />
        </ScrollTable>
    }
}

/// One product; the row opens its page.
#[component]
fn InventoryRow(live: Live, p: ProductView) -> impl IntoView {
    let removed = p.status == ProductStatus::Removed;
    let low = {
        let p = p.clone();
        move || is_low(&p, live.threshold.get())
    };
    let href = product_href(&p.product_id);
    let open = href.clone();
    let id = p.product_id.clone();
    view! {
        <tr class:removed=removed class:low=low data-product=id
            on:click=move |_| {
                if let Some(w) = web_sys::window() {
                    let _ = w.location().set_hash(&open);
                }
            }>
            <td><a href=href><code>{p.product_id}</code></a></td>
            <td>{p.product_name}</td>
            <td class="num stock">{p.quantity}</td>
            <td>{p.status.as_str()}</td>
            <td class="num">{p.version}</td>
            <td class="muted"><LocalTime at=rfc3339::to_millis(&p.updated_at) /></td>
        </tr>
    }
}

/// Previous and Next, with how many products match and which page this is.
#[component]
fn InventoryPager(live: Live) -> impl IntoView {
    let matching = move || {
        live.inventory.with(|p| {
            p.as_ref().map(|p| {
                let page = live.previous.with(Vec::len) + 1;
                let pages = p.matching.div_ceil(PAGE_SIZE as u64).max(1);
                (
                    format!("{} matching", thousands(p.matching)),
                    format!("page {page} of {}", thousands(pages)),
                )
            })
        })
    };
    view! {
        <nav class="pager" aria-label="inventory pages">
            <button type="button" id="prev-page" on:click=move |_| live.previous_page()
                prop:disabled=move || live.previous.with(Vec::is_empty)>"Previous"</button>
            <span id="matching" class="muted">{move || matching().map(|(m, _)| m)}</span>
            <span class="muted">{move || matching().map(|(_, p)| p)}</span>
            <button type="button" id="next-page" on:click=move |_| live.next_page()
                prop:disabled=move || live.inventory.with(|p| p.as_ref().is_none_or(|p| p.next_cursor.is_none()))>"Next"</button>
        </nav>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(100_000), "100,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
