//! The inventory: filtered by status on the server, searched and sorted in the browser.

use inventory_domain::api::ProductView;
use inventory_domain::ProductStatus;
use leptos::prelude::*;

use crate::live::Live;

#[derive(Clone, Copy, PartialEq)]
enum Sort {
    Id,
    Name,
    Quantity,
    Status,
    Version,
    Updated,
}

#[component]
pub(super) fn InventoryTable(live: Live) -> impl IntoView {
    let search = RwSignal::new(String::new());
    let sort = RwSignal::new((Sort::Quantity, true));
    let rows = move || {
        let needle = search.get().to_lowercase();
        let mut items: Vec<ProductView> = live
            .inventory
            .get()
            .map(|p| p.items)
            .unwrap_or_default()
            .into_iter()
            .filter(|p| {
                needle.is_empty()
                    || p.product_id.to_lowercase().contains(&needle)
                    || p.product_name.to_lowercase().contains(&needle)
            })
            .collect();
        let (key, desc) = sort.get();
        items.sort_by(|a, b| {
            let o = match key {
                Sort::Id => a.product_id.cmp(&b.product_id),
                Sort::Name => a.product_name.cmp(&b.product_name),
                Sort::Quantity => a.quantity.cmp(&b.quantity),
                Sort::Status => a.status.as_str().cmp(b.status.as_str()),
                Sort::Version => a.version.cmp(&b.version),
                Sort::Updated => a.updated_at.cmp(&b.updated_at),
            }
            .then_with(|| a.product_id.cmp(&b.product_id));
            if desc {
                o.reverse()
            } else {
                o
            }
        });
        items
    };
    let header = move |label: &'static str, key: Sort| {
        view! {
            <th>
                <button class="sort" on:click=move |_| sort.update(|(k, d)| {
                    if *k == key { *d = !*d } else { *k = key; *d = matches!(key, Sort::Quantity | Sort::Version | Sort::Updated) }
                })>
                    {label}
                    {move || { let (k, d) = sort.get(); if k == key { if d { " ▼" } else { " ▲" } } else { "" } }}
                </button>
            </th>
        }
    };
    view! {
        <section class="card">
            <div class="table-head">
                <h2>"Inventory"</h2>
                <input type="search" id="search" placeholder="Search id or name"
                    on:input=move |ev| search.set(event_target_value(&ev)) />
                <select id="status-filter" on:change=move |ev| live.status_filter.set(event_target_value(&ev))>
                    <option value="all">"All"</option>
                    <option value="active">"Active"</option>
                    <option value="removed">"Removed"</option>
                </select>
                <span class="muted">{move || live.inventory.get().map(|p| {
                    let more = if p.next_cursor.is_some() { " (first 1,000)" } else { "" };
                    format!("{} products{more}", p.items.len())
                })}</span>
            </div>
            {move || match live.inventory.get() {
                None => view! { <p class="muted">"Loading…"</p> }.into_any(),
                Some(p) if p.items.is_empty() => view! {
                    <p class="muted" id="empty-inventory">"No products yet. Start a simulation to publish events."</p>
                }.into_any(),
                Some(_) => view! {
                    <div class="scroll">
                    <table id="inventory">
                        <thead><tr>
                            {header("Product", Sort::Id)}
                            {header("Name", Sort::Name)}
                            {header("Quantity", Sort::Quantity)}
                            {header("Status", Sort::Status)}
                            {header("Version", Sort::Version)}
                            {header("Last update", Sort::Updated)}
                        </tr></thead>
                        <tbody>
                            <For each=rows key=|p| (p.product_id.clone(), p.version, p.updated_at.clone()) children=move |p| {
                                let removed = p.status == ProductStatus::Removed;
                                view! {
                                    <tr class:removed=removed>
                                        <td><code>{p.product_id}</code></td>
                                        <td>{p.product_name}</td>
                                        <td class="num">{p.quantity}</td>
                                        <td>{p.status.as_str()}</td>
                                        <td class="num">{p.version}</td>
                                        <td class="muted">{p.updated_at}</td>
                                    </tr>
                                }
                            } />
                        </tbody>
                    </table>
                    </div>
                }.into_any(),
            }}
        </section>
    }
}
