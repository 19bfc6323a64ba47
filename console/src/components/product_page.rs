//! One product's page (`#/product/<id>`): its stock and its history, newest first, a page at
//! a time ("Older" follows the API's cursor, "Newer" goes back). What the API refuses or
//! does not have is said in words, not a blank page.

use inventory_domain::api::{HistoryEntry, HistoryOutcome, HistoryPage, ProductView};
use inventory_domain::rfc3339;
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::table::{Loading, ScrollTable};
use crate::live::Live;
use crate::time::LocalTime;

fn outcome(e: &HistoryEntry) -> String {
    match e.outcome {
        HistoryOutcome::Applied => "applied".to_owned(),
        HistoryOutcome::Duplicate => "duplicate ignored".to_owned(),
        HistoryOutcome::Rejected => match &e.reason {
            Some(r) => format!("rejected: {r}"),
            None => "rejected".to_owned(),
        },
    }
}

/// The product as the API reads it; `None` until the first answer.
type ProductRead = RwSignal<Option<Result<ProductView, String>>>;
/// The history page shown; `None` until the first answer.
type HistoryRead = RwSignal<Option<Result<HistoryPage, String>>>;

#[component]
pub(super) fn ProductPage(live: Live, product_id: String) -> impl IntoView {
    let id = StoredValue::new(product_id.clone());
    let product = RwSignal::new(None);
    let history = RwSignal::new(None);
    // The cursor of the page shown (`None`: the newest), and those of the newer pages.
    let cursor = RwSignal::new(None::<String>);
    let newer = RwSignal::new(Vec::<Option<String>>::new());
    // Bumped by "Refresh".
    let reloads = RwSignal::new(0u32);
    read_product(live, id, product, reloads);
    read_history(live, id, history, cursor, reloads);

    view! {
        <section class="card" id="product">
            <p class="crumbs"><a href="#/" id="back-to-inventory">"← Inventory"</a></p>
            <h2>"Product " <code>{product_id.clone()}</code></h2>
            <ProductFigures product />
        </section>
        <section class="card" id="history-card">
            <div class="table-head">
                <h2>"History"</h2>
                <span class="muted small">"Every event that touched the product, newest first"</span>
                <button type="button" id="history-refresh" on:click=move |_| {
                    newer.set(Vec::new());
                    cursor.set(None);
                    reloads.update(|r| *r += 1);
                }>"Refresh"</button>
            </div>
            <HistoryTable history />
            <HistoryPager history cursor newer />
        </section>
    }
}

/// Reads the product once the API client is there, and again on each reload.
fn read_product(live: Live, id: StoredValue<String>, product: ProductRead, reloads: RwSignal<u32>) {
    Effect::new(move |_| {
        reloads.track();
        let Some(api) = live.api.get() else {
            return;
        };
        let id = id.get_value();
        spawn_local(async move {
            let got = api.product(&id).await.map_err(|e| e.message());
            product.set(Some(got));
        });
    });
}

/// Reads the history page at `cursor` once the API client is there, again when the cursor
/// moves and on each reload.
fn read_history(
    live: Live,
    id: StoredValue<String>,
    history: HistoryRead,
    cursor: RwSignal<Option<String>>,
    reloads: RwSignal<u32>,
) {
    Effect::new(move |_| {
        reloads.track();
        let Some(api) = live.api.get() else {
            return;
        };
        let at = cursor.get();
        let id = id.get_value();
        spawn_local(async move {
            let got = api
                .history(&id, at.as_deref())
                .await
                .map_err(|e| format!("The history could not be read: {}", e.message()));
            // Another page was asked for meanwhile: not this one.
            if cursor.get_untracked() == at {
                history.set(Some(got));
            }
        });
    });
}

/// The product's stock, status and times, or why they cannot be shown.
#[component]
fn ProductFigures(product: ProductRead) -> impl IntoView {
    move || {
        match product.get() {
            None => view! { <Loading /> }.into_any(),
            Some(Err(e)) => view! { <p class="error" id="product-error">{e}</p> }.into_any(),
            Some(Ok(p)) => view! {
                <dl class="figures" id="product-figures">
                    <div><dt>"Name"</dt><dd>{p.product_name}</dd></div>
                    <div><dt>"Stock"</dt><dd id="product-stock">{p.quantity}</dd></div>
                    <div><dt>"Status"</dt><dd>{p.status.as_str()}</dd></div>
                    <div><dt>"Events applied"</dt><dd>{p.version}</dd></div>
                    <div><dt>"Last event"</dt><dd class="small"><LocalTime at=rfc3339::to_auto(&p.last_event_at) /></dd></div>
                    <div><dt>"Last update"</dt><dd class="small"><LocalTime at=rfc3339::to_millis(&p.updated_at) /></dd></div>
                </dl>
            }.into_any(),
        }
    }
}

/// The history page shown, or why there is none.
#[component]
fn HistoryTable(history: HistoryRead) -> impl IntoView {
    move || match history.get() {
        None => view! { <Loading /> }.into_any(),
        Some(Err(e)) => view! { <p class="error" id="history-error">{e}</p> }.into_any(),
        Some(Ok(h)) if h.items.is_empty() => view! {
            <p class="muted" id="history-empty">"No events recorded for this product."</p>
        }
        .into_any(),
        Some(Ok(h)) => view! {
            <ScrollTable id="history" head=view! {
                <th>"Time"</th><th>"Type"</th><th>"Quantity"</th><th>"Event id"</th>
                <th>"Outcome"</th><th>"Stock after"</th>
            }>
                {h.items.into_iter().map(history_row).collect_view()}
            </ScrollTable>
        }
        .into_any(),
    }
}

fn history_row(e: HistoryEntry) -> impl IntoView {
    let outcome_text = outcome(&e);
    let class = match e.outcome {
        HistoryOutcome::Applied => "outcome applied",
        HistoryOutcome::Duplicate => "outcome duplicate",
        HistoryOutcome::Rejected => "outcome rejected",
    };
    view! {
        <tr>
            <td class="muted"><LocalTime at=rfc3339::to_auto(&e.at) precise=true /></td>
            <td>{e.event_type}</td>
            <td class="num">{e.quantity.map(|q| q.to_string()).unwrap_or_default()}</td>
            <td class="small"><code>{e.event_id}</code></td>
            <td><span class=class>{outcome_text}</span></td>
            <td class="num">{e.stock_after}</td>
        </tr>
    }
}

/// "Newer" goes back to the page before; "Older" follows the API's cursor.
#[component]
fn HistoryPager(
    history: HistoryRead,
    cursor: RwSignal<Option<String>>,
    newer: RwSignal<Vec<Option<String>>>,
) -> impl IntoView {
    let older = move |_| {
        let next = history.with_untracked(|h| {
            h.as_ref()
                .and_then(|h| h.as_ref().ok())
                .and_then(|h| h.next_cursor.clone())
        });
        if let Some(next) = next {
            newer.update(|n| n.push(cursor.get_untracked()));
            cursor.set(Some(next));
        }
    };
    let back = move |_| {
        let mut stack = newer.get_untracked();
        if let Some(c) = stack.pop() {
            newer.set(stack);
            cursor.set(c);
        }
    };
    view! {
        <nav class="pager" aria-label="history pages">
            <button type="button" id="history-newer" on:click=back
                prop:disabled=move || newer.with(Vec::is_empty)>"Newer"</button>
            <button type="button" id="history-older" on:click=older
                prop:disabled=move || history.with(|h| !h.as_ref().is_some_and(|h| h.as_ref().is_ok_and(|h| h.next_cursor.is_some())))>"Older"</button>
        </nav>
    }
}
