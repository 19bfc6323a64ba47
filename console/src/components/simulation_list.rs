//! Past simulations, newest first, each with its verdict once verified.

use inventory_domain::api::{SimulationState, SimulationStatus};
use inventory_domain::rfc3339;
use leptos::prelude::*;

use super::table::{Loading, ScrollTable};
use super::verdict_card::state_label;
use crate::live::Live;
use crate::time::LocalTime;

/// The verdict in a few words, and whether it is a pass.
fn verdict(sim: &SimulationStatus) -> (String, &'static str) {
    match (&sim.verdict, sim.state) {
        (Some(v), _) if v.mismatches == 0 && v.caught_up => (
            format!("0 mismatches · {} products", v.products_checked),
            "ok",
        ),
        (Some(v), _) if !v.caught_up => (
            format!("{} mismatches · not caught up", v.mismatches),
            "bad",
        ),
        (Some(v), _) => (format!("{} mismatches", v.mismatches), "bad"),
        (None, SimulationState::Failed) => {
            (sim.error.clone().unwrap_or_else(|| "failed".into()), "bad")
        }
        (None, state) => (state_label(state).to_owned(), "muted"),
    }
}

#[component]
pub(super) fn SimulationList(live: Live) -> impl IntoView {
    view! {
        <section class="card" id="simulations-card">
            <h2>"Past simulations"</h2>
            {move || match live.simulations.get() {
                None => view! { <Loading /> }.into_any(),
                Some(l) if l.items.is_empty() => view! { <p class="muted">"None yet."</p> }.into_any(),
                Some(l) => view! {
                    <ScrollTable id="simulations" head=view! {
                        <th>"Started"</th><th>"Simulation"</th><th>"Events"</th><th>"Products"</th>
                        <th>"Rate"</th><th>"Faults"</th><th>"Verdict"</th>
                    }>
                        {l.items.into_iter().map(simulation_row).collect_view()}
                    </ScrollTable>
                }.into_any(),
            }}
        </section>
    }
}

fn simulation_row(sim: SimulationStatus) -> impl IntoView {
    let (text, class) = verdict(&sim);
    let r = &sim.request;
    let faults = format!(
        "{:.0}% dup · {:.0}% malformed · {:.0}% invalid",
        r.duplicates * 100.0,
        r.malformed * 100.0,
        r.invalid * 100.0
    );
    view! {
        <tr>
            <td class="muted"><LocalTime at=rfc3339::to_millis(&sim.created_at) /></td>
            <td><code>{sim.id.clone()}</code></td>
            <td class="num">{format!("{} / {}", sim.events_sent, sim.events_target)}</td>
            <td class="num">{r.products}</td>
            <td class="num">{format!("{}/s", r.rate)}</td>
            <td class="small">{faults}</td>
            <td><span class=format!("verdict-chip {class}") data-testid="past-verdict">{text}</span></td>
        </tr>
    }
}
