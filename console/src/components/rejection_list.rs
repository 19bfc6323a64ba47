//! The latest rejected events, newest first, filtered by reason (those present) and by
//! product. A signed-in caller (locally: the API token typed in the simulation form) gets
//! each record's data too, and can open it under its row.

use std::collections::{BTreeMap, BTreeSet};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use inventory_domain::api::RejectionView;
use inventory_domain::rfc3339;
use leptos::prelude::*;

use super::table::{Loading, ScrollTable};
use crate::api::REJECTIONS_READ;
use crate::live::Live;
use crate::time::LocalTime;

/// The record's data as text, from the API's base64 excerpt (which may stop mid-record).
pub(super) fn decode_excerpt(excerpt: &str) -> String {
    let whole = excerpt.len() - excerpt.len() % 4;
    match STANDARD.decode(&excerpt[..whole]) {
        Ok(bytes) => {
            let mut text = String::from_utf8_lossy(&bytes).into_owned();
            if whole < excerpt.len() {
                text.push('…');
            }
            text
        }
        Err(_) => format!("(not base64) {excerpt}"),
    }
}

fn product_of(r: &RejectionView) -> &str {
    r.product_id.as_deref().unwrap_or(&r.partition_key)
}

#[component]
pub(super) fn RejectionList(live: Live) -> impl IntoView {
    let reason = RwSignal::new(String::new());
    let product = RwSignal::new(String::new());
    // Which records' data rows are open; kept here so a poll's redraw keeps them open.
    let open = RwSignal::new(BTreeSet::<String>::new());
    let withheld = move || {
        live.rejections
            .with(|l| l.as_ref().is_some_and(|l| l.excerpts_withheld))
    };

    view! {
        <section class="card" id="rejections-card">
            <div class="table-head">
                <h2>"Rejected events"</h2>
                <span class="muted small">{format!("the latest {REJECTIONS_READ}")}</span>
                <RejectionFilters live reason product />
            </div>
            <p class="muted small" hidden=move || !withheld()>
                {move || if live.cognito.get().is_some() {
                    "Sign in to see each record's data."
                } else {
                    "Type the API token in the simulation form to see each record's data."
                }}
            </p>
            {move || match live.rejections.with(|l| l.as_ref().map(|l| l.items.is_empty())) {
                None => view! { <Loading /> }.into_any(),
                Some(true) => view! { <p class="muted">"None: every record so far was valid."</p> }.into_any(),
                Some(false) => view! { <RejectionTable live reason product open /> }.into_any(),
            }}
        </section>
    }
}

/// The reason (those present, with their counts) and product filters.
#[component]
fn RejectionFilters(
    live: Live,
    reason: RwSignal<String>,
    product: RwSignal<String>,
) -> impl IntoView {
    let reasons = Memo::new(move |_| {
        let mut counts = BTreeMap::<String, usize>::new();
        live.rejections.with(|l| {
            for r in l.iter().flat_map(|l| &l.items) {
                *counts.entry(r.reason.as_str().to_owned()).or_default() += 1;
            }
        });
        counts
    });
    view! {
        <div class="controls">
            <label for="rejection-reason">"Reason"</label>
            <select id="rejection-reason" prop:value=move || reason.get()
                on:change=move |ev| reason.set(event_target_value(&ev))>
                <option value="">"All reasons"</option>
                {move || reasons.get().into_iter().map(|(r, n)| {
                    let label = format!("{r} ({n})");
                    view! { <option value=r>{label}</option> }
                }).collect_view()}
            </select>
            <label for="rejection-product">"Product"</label>
            <input type="search" id="rejection-product" placeholder="product id"
                on:input=move |ev| product.set(event_target_value(&ev)) />
        </div>
    }
}

/// The rejections the filters let through, each with its data row under it.
#[component]
fn RejectionTable(
    live: Live,
    reason: RwSignal<String>,
    product: RwSignal<String>,
    open: RwSignal<BTreeSet<String>>,
) -> impl IntoView {
    let rows = move || {
        let (want_reason, want_product) = (reason.get(), product.get().trim().to_lowercase());
        live.rejections
            .get()
            .map(|l| l.items)
            .unwrap_or_default()
            .into_iter()
            .filter(|r| want_reason.is_empty() || r.reason.as_str() == want_reason)
            .filter(|r| {
                want_product.is_empty() || product_of(r).to_lowercase().contains(&want_product)
            })
            .collect::<Vec<_>>()
    };
    view! {
        <ScrollTable id="rejections" head=view! {
            <th>"Arrived"</th><th>"Reason"</th><th>"Product"</th><th>"Detail"</th><th>"Record"</th><th>"Data"</th>
        }>
            <For each=rows key=|r| (r.record_id.clone(), r.data_base64_excerpt.is_empty())
                children=move |r| view! { <RejectionRow r open /> } />
        </ScrollTable>
    }
}

/// One rejection, and under it its data (hidden until its "Show" is pressed).
#[component]
fn RejectionRow(r: RejectionView, open: RwSignal<BTreeSet<String>>) -> impl IntoView {
    let id = r.record_id.clone();
    let toggle_id = id.clone();
    let is_open = {
        let id = id.clone();
        move || open.with(|o| o.contains(&id))
    };
    let is_open_row = is_open.clone();
    let is_open_label = is_open.clone();
    let data = (!r.data_base64_excerpt.is_empty()).then(|| decode_excerpt(&r.data_base64_excerpt));
    let has_data = data.is_some();
    view! {
        <tr>
            <td class="muted"><LocalTime at=r.arrived_at.as_ref().map(rfc3339::to_millis).unwrap_or_default() /></td>
            <td><span class="reason">{r.reason.as_str()}</span></td>
            <td><code>{product_of(&r).to_owned()}</code></td>
            <td>{r.detail.clone()}</td>
            <td class="muted small">{r.record_id.clone()}</td>
            <td>{has_data.then(|| view! {
                <button type="button" class="payload-toggle" aria-expanded=move || is_open().to_string()
                    on:click=move |_| open.update(|o| {
                        if !o.remove(&toggle_id) { o.insert(toggle_id.clone()); }
                    })>
                    {move || if is_open_label() { "Hide" } else { "Show" }}
                </button>
            })}</td>
        </tr>
        <tr class="payload" hidden=move || !is_open_row()>
            <td colspan="6"><pre>{data}</pre></td>
        </tr>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_excerpt_reads_as_text_even_cut_short() {
        let full = STANDARD.encode(br#"{"event_id":"e1"}"#);
        assert_eq!(decode_excerpt(&full), r#"{"event_id":"e1"}"#);
        let cut = &full[..full.len() - 3];
        assert!(decode_excerpt(cut).ends_with('…'));
        assert!(decode_excerpt("!!!!").starts_with("(not base64)"));
    }
}
