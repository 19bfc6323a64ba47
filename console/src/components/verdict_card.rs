//! The latest simulation: its progress and, once verified, the consistency verdict.

use inventory_domain::api::{SimulationState, SimulationStatus};
use inventory_domain::rfc3339;
use leptos::prelude::*;

use crate::live::Live;
use crate::time::LocalTime;

#[component]
pub(super) fn VerdictCard(live: Live) -> impl IntoView {
    let latest = Memo::new(move |_| {
        live.simulations
            .with(|l| l.as_ref().map(|l| l.items.first().cloned()))
    });
    // Its own memo: the alert is drawn again only when its text changes, not on each
    // poll that moved the progress.
    let error = Memo::new(move |_| latest.with(|s| s.clone().flatten().and_then(|s| s.error)));
    view! {
        <section class="card verdict" id="verdict">
            {move || match latest.get() {
                None => view! { <p class="muted">"Loading…"</p> }.into_any(),
                Some(None) => view! {
                    <h2>"Consistency"</h2>
                    <p class="muted">"No simulation yet. Start one below: the verdict compares DynamoDB with the generator's model."</p>
                }.into_any(),
                Some(Some(sim)) => simulation_view(sim).into_any(),
            }}
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
        </section>
    }
}

pub(super) fn state_label(state: SimulationState) -> &'static str {
    match state {
        SimulationState::Queued => "queued",
        SimulationState::Publishing => "publishing",
        SimulationState::Verifying => "waiting for the pipeline to catch up",
        SimulationState::Completed => "completed",
        SimulationState::Failed => "failed",
    }
}

fn simulation_view(sim: SimulationStatus) -> impl IntoView {
    let pct = if sim.events_target == 0 {
        0.0
    } else {
        sim.events_sent as f64 * 100.0 / sim.events_target as f64
    };
    let state = state_label(sim.state);
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
            " · started " <LocalTime at=rfc3339::to_millis(&sim.created_at) />
            " · " {format!("{} / {} events sent", sim.events_sent, sim.events_target)}
            " · products " <code>{format!("{}-*", sim.run_id)}</code>
            {producers}
        </p>
        <div class="progress" role="progressbar" aria-label="events sent"
            aria-valuemin="0" aria-valuemax=sim.events_target.to_string()
            aria-valuenow=sim.events_sent.to_string()
            aria-valuetext=format!("{} of {} events sent", sim.events_sent, sim.events_target)>
            <div style:width=format!("{pct:.1}%")></div>
        </div>
        {verdict}
    }
}
