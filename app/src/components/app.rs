//! The page: creates the shared state, starts polling, and lays the components out.

use leptos::prelude::*;
use leptos::task::spawn_local;

use super::connection_badge::ConnectionBadge;
use super::dead_letter_inbox::DeadLetterInbox;
use super::figures::Figures;
use super::inventory_table::InventoryTable;
use super::rejection_list::RejectionList;
use super::simulation_form::SimulationForm;
use super::verdict_card::VerdictCard;
use crate::api::{self, Api};
use crate::auth;
use crate::live::{Live, POLL};

#[component]
pub fn App() -> impl IntoView {
    let live = Live {
        api: RwSignal::new(None),
        reachable: RwSignal::new(None),
        inventory: RwSignal::new(None),
        stats: RwSignal::new(None),
        rejections: RwSignal::new(None),
        simulations: RwSignal::new(None),
        dead_letters: RwSignal::new(None),
        status_filter: RwSignal::new("all".to_owned()),
        cognito: RwSignal::new(None),
        sign_in_error: RwSignal::new(None),
    };
    let busy = StoredValue::new(false);
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
        live.refresh(busy);
    });
    set_interval(move || live.refresh(busy), POLL);
    Effect::new(move |_| {
        live.status_filter.track();
        live.refresh(busy);
    });

    view! {
        <header class="top">
            <h1>"Inventory pipeline"</h1>
            <ConnectionBadge live=live />
        </header>
        <main>
            <VerdictCard live=live />
            <section class="grid two">
                <Figures live=live />
                <SimulationForm live=live busy=busy />
            </section>
            <InventoryTable live=live />
            <RejectionList live=live />
            <DeadLetterInbox live=live busy=busy />
        </main>
    }
}
