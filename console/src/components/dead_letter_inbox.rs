//! The dead-letter inbox: records the Pipe gave up on, archived by the dead-letter consumer,
//! and a button that redrives every pending one (oldest first, with their event ids, so
//! each applies once).

use inventory_domain::api::DeadLetterStatus;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::live::{typed_token, Live};
use crate::time::LocalTime;

fn status_label(status: DeadLetterStatus) -> &'static str {
    match status {
        DeadLetterStatus::Pending => "pending",
        DeadLetterStatus::Redriving => "redriving",
        DeadLetterStatus::Redriven => "redriven",
        DeadLetterStatus::ProcessedBefore => "processed before",
    }
}

#[component]
pub(super) fn DeadLetterInbox(live: Live) -> impl IntoView {
    let message = RwSignal::new(None::<Result<String, String>>);
    let sending = RwSignal::new(false);
    // Pending dead letters older than the dedup window the last redrive held back, and the
    // window it judged by (seconds).
    let held = RwSignal::new(None::<(u64, u64)>);
    let redrive = move |include_past_window: bool| {
        let Some(api) = live.api.get_untracked() else {
            return;
        };
        // Signed in through the user pool, the client carries the user's token; locally the
        // API token typed into the simulation form is sent.
        let token = if live.cognito.get_untracked().is_some() {
            if !api.signed_in() {
                message.set(Some(Err(
                    "Sign in first: a redrive needs a signed-in user".into()
                )));
                return;
            }
            None
        } else {
            let typed = typed_token();
            if typed.is_none() {
                message.set(Some(Err(
                    "Type the API token (printed by make dev) in the simulation form first".into(),
                )));
                return;
            }
            typed
        };
        sending.set(true);
        held.set(None);
        spawn_local(async move {
            let mut republished = 0;
            // Each request works up to 500 records or 10 s: go on while the API says more
            // are pending and it made progress.
            let outcome = loop {
                match api.redrive(token.as_deref(), include_past_window).await {
                    Ok(r) => {
                        republished += r.republished;
                        if !r.remaining || r.republished == 0 {
                            if r.held_past_window > 0 && !include_past_window {
                                held.set(Some((r.held_past_window, r.dedup_window_seconds)));
                            }
                            break Ok(format!("{republished} records republished"));
                        }
                    }
                    Err(e) => break Err(e.message()),
                }
            };
            sending.set(false);
            message.set(Some(outcome));
            live.refresh();
        });
    };

    view! {
        <section class="card" id="dead-letters">
            <h2>"Dead letters"</h2>
            <p class="muted small">"Records the Pipe gave up on after its retries, read back from the stream. Fix the cause, then redrive: each is published again with its event id and applied once. "
                <strong>"A redriven event applies as of its redrive"</strong>
                ", after its product's later events, not in its original place: a decrease may then be rejected for insufficient stock."</p>
            <div class="actions">
                <button id="redrive" on:click=move |_| redrive(false) disabled=move || sending.get()
                    || !live.dead_letters.get().is_some_and(|p| p.items.iter().any(|i| i.status == DeadLetterStatus::Pending))>
                    {move || if sending.get() { "Redriving…" } else { "Redrive all pending" }}
                </button>
                {move || held.get().map(|(count, window)| view! {
                    <p class="warning" id="redrive-held">
                        {format!("{count} pending records arrived more than the dedup window ({window} s) ago and were held back: a producer's retry of one of them, applied since, would no longer be recognised as its duplicate, so redriving could apply it twice. Check those products' history first. ")}
                        <button id="redrive-past-window" on:click=move |_| redrive(true) disabled=move || sending.get()>
                            "Redrive them too"
                        </button>
                    </p>
                })}
                {move || message.get().map(|m| match m {
                    Ok(text) => view! { <p class="ok" role="status" id="redrive-result">{text}</p> }.into_any(),
                    Err(text) => view! { <p class="error" role="alert" id="redrive-result">{text}</p> }.into_any(),
                })}
            </div>
            {move || match live.dead_letters.get() {
                None => view! { <p class="muted">"Loading…"</p> }.into_any(),
                Some(p) if p.items.is_empty() => view! { <p class="muted">"None: the Pipe has dead-lettered nothing."</p> }.into_any(),
                Some(p) => view! {
                    <div class="scroll">
                    <table id="dead-letter-table">
                        <thead><tr><th>"Arrived"</th><th>"Status"</th><th>"Product"</th><th>"Reason"</th><th>"Record"</th></tr></thead>
                        <tbody>
                            {p.items.into_iter().map(|d| view! {
                                <tr>
                                    <td class="muted"><LocalTime at=d.arrived_at /></td>
                                    <td><span class="reason">{status_label(d.status)}</span></td>
                                    <td><code>{d.product_id.unwrap_or(d.partition_key)}</code></td>
                                    <td>{d.reason}</td>
                                    <td class="muted small">{d.record_id}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                    </div>
                }.into_any(),
            }}
        </section>
    }
}
