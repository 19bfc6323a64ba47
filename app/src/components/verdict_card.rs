//! The latest simulation: its progress and, once verified, the consistency verdict.

use inventory_domain::api::{SimulationState, SimulationStatus};
use leptos::prelude::*;

use crate::live::Live;

#[component]
pub(super) fn VerdictCard(live: Live) -> impl IntoView {
    let latest = move || {
        live.simulations
            .get()
            .and_then(|l| l.items.into_iter().next())
    };
    view! {
        <section class="card verdict" id="verdict">
            {move || match latest() {
                None if live.simulations.get().is_none() => view! { <p class="muted">"Loading…"</p> }.into_any(),
                None => view! {
                    <h2>"Consistency"</h2>
                    <p class="muted">"No simulation yet. Start one below: the verdict compares DynamoDB with the generator's model."</p>
                }.into_any(),
                Some(sim) => simulation_view(sim).into_any(),
            }}
        </section>
    }
}

fn simulation_view(sim: SimulationStatus) -> impl IntoView {
    let pct = if sim.events_target == 0 {
        0.0
    } else {
        sim.events_sent as f64 * 100.0 / sim.events_target as f64
    };
    let state = match sim.state {
        SimulationState::Queued => "queued",
        SimulationState::Publishing => "publishing",
        SimulationState::Verifying => "waiting for the pipeline to catch up",
        SimulationState::Completed => "completed",
        SimulationState::Failed => "failed",
    };
    let r = &sim.request;
    let producers = (r.producers > 1 || r.retry_share > 0.0).then(|| {
        format!(
            " · {} producers, {:.1}% late retries {}–{} events later",
            r.producers,
            r.retry_share * 100.0,
            r.retry_distance.min,
            r.retry_distance.max
        )
    });
    let verdict = sim.verdict.clone().map(|v| {
        let ok = v.mismatches == 0 && v.caught_up;
        let headline = format!(
            "{} mismatches",
            v.mismatches
        );
        let summary = format!(
            "{} products checked · {} units expected, {} stored · {} duplicates ignored",
            v.products_checked, v.expected_units, v.stored_units, v.duplicates_ignored
        );
        let reasons: Vec<String> = v
            .rejections_stored
            .iter()
            .map(|(r, n)| {
                let expected = v.rejections_expected.get(r).copied().unwrap_or(0);
                if expected == *n {
                    format!("{r} {n}")
                } else {
                    format!("{r} {n} (expected {expected})")
                }
            })
            .collect();
        view! {
            <div class=if ok { "verdict-line ok" } else { "verdict-line bad" } data-testid="verdict">
                <strong>{headline}</strong>
                <span>{if ok { " — DynamoDB matches the model exactly" } else { " — DynamoDB differs from the model" }}</span>
            </div>
            <p class="muted">{summary}</p>
            <p class="muted">"Rejections: " {if reasons.is_empty() { "none".to_owned() } else { reasons.join(", ") }}</p>
            <ul class="details">
                {v.details.into_iter().map(|d| view! { <li>{d}</li> }).collect_view()}
            </ul>
        }
    });
    view! {
        <h2>"Latest simulation " <code>{sim.id.clone()}</code></h2>
        <p>
            <span class="state">{state}</span>
            " · " {format!("{} / {} events sent", sim.events_sent, sim.events_target)}
            " · products " <code>{format!("{}-*", sim.run_id)}</code>
            {producers}
        </p>
        <div class="progress" aria-label="progress"><div style=format!("width:{pct:.1}%")></div></div>
        {sim.error.map(|e| view! { <p class="error" role="alert">{e}</p> })}
        {verdict}
    }
}
