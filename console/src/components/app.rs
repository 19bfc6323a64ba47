//! The page: creates the shared state, starts polling, and lays the components out. The
//! address's hash routes: `#/product/<id>` is a product's page, anything else the dashboard.

use leptos::prelude::*;
use leptos::task::spawn_local;

use super::charts::Charts;
use super::connection_badge::ConnectionBadge;
use super::dead_letter_inbox::DeadLetterInbox;
use super::figures::Figures;
use super::inventory_table::InventoryTable;
use super::product_page::ProductPage;
use super::rejection_list::RejectionList;
use super::sign_in_gate::SignInGate;
use super::simulation_form::SimulationForm;
use super::simulation_list::SimulationList;
use super::verdict_card::VerdictCard;
use crate::api::{self, Api};
use crate::auth;
use crate::live::Live;
use crate::time::zone_label;

/// The product a hash names (`#/product/<id>`), if any.
pub(super) fn product_in_hash(hash: &str) -> Option<String> {
    let id = hash.strip_prefix("#/product/")?;
    let id = js_sys::decode_uri_component(id)
        .ok()
        .map(String::from)
        .unwrap_or_else(|| id.to_owned());
    (!id.is_empty()).then_some(id)
}

/// The hash of a product's page.
pub(super) fn product_href(product_id: &str) -> String {
    format!("#/product/{}", api::encode_component(product_id))
}

fn current_hash() -> String {
    web_sys::window()
        .and_then(|w| w.location().hash().ok())
        .unwrap_or_default()
}

#[component]
pub fn App() -> impl IntoView {
    let live = Live::new();
    spawn_local(async move {
        let config = api::load_config().await;
        let mut credential = None;
        if let Some(cognito) = &config.cognito {
            // Back from the hosted UI: exchange the code before the first request.
            if let Err(e) = auth::complete_sign_in(cognito).await {
                live.sign_in_error.set(Some(e));
            }
            credential = auth::access_token();
        }
        live.cognito.set(config.cognito.clone());
        live.api.set(Some(
            Api::new(&config.api_base_url).with_credential(credential),
        ));
        live.refresh();
    });
    live.start_polling();
    // A new question (sort, filter, search, page) is asked at once, not at the next tick.
    Effect::new(move |_| {
        live.query.track();
        live.poll_inventory();
    });

    let product = RwSignal::new(product_in_hash(&current_hash()));
    let _ = window_event_listener(leptos::ev::hashchange, move |_| {
        let now = product_in_hash(&current_hash());
        if product.get_untracked() != now {
            product.set(now);
            if let Some(w) = web_sys::window() {
                w.scroll_to_with_x_and_y(0.0, 0.0);
            }
        }
    });

    view! {
        <header class="top">
            <h1><a href="#/">"Inventory pipeline"</a></h1>
            <span class="zone small">{format!("Times in your time zone ({})", zone_label())}</span>
            <ConnectionBadge live=live />
        </header>
        <main>
            // Reads need sign-in here and the visitor has none: say so, nothing else.
            {move || live.sign_in_needed.get().then(|| view! { <SignInGate live=live /> })}
            {move || product.get().filter(|_| !live.sign_in_needed.get()).map(|id| view! { <ProductPage live=live product_id=id /> })}
            // Kept while a product's page is open, so its sort, search and filters stay.
            <div class="dashboard" hidden=move || product.get().is_some() || live.sign_in_needed.get()>
                <VerdictCard live=live />
                <section class="grid two">
                    <Figures live=live />
                    <SimulationForm live=live />
                </section>
                <Charts live=live />
                <InventoryTable live=live />
                <RejectionList live=live />
                <SimulationList live=live />
                <DeadLetterInbox live=live />
            </div>
        </main>
    }
}
