//! The dead-letter inbox: records the Pipe gave up on, archived by the dead-letter consumer,
//! and a button that redrives every pending one (oldest first, with their event ids, so
//! each applies once).

use inventory_domain::api::DeadLetterStatus;
use inventory_domain::rfc3339;
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::table::{Loading, ScrollTable};
use crate::api::Api;
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
    view! {
        <section class="card" id="dead-letters">
            <h2>"Dead letters"</h2>
            <p class="muted small">"Records the Pipe gave up on after its retries, read back from the stream. Fix the cause, then redrive: each is published again with its event id and applied once. "
                <strong>"A redriven event applies as of its redrive"</strong>
                ", after its product's later events, not in its original place: a decrease may then be rejected for insufficient stock."</p>
            <RedriveActions live />
            <DeadLetterTable live />
        </section>
    }
}

/// The token a redrive sends: `Some(None)` when signed in through the user pool (the
/// client carries the user's token), `Some(token)` locally (the API token typed into the
/// simulation form), `None` with `message` set when there is neither.
fn redrive_token(
    live: Live,
    api: &Api,
    message: RwSignal<Option<Result<String, String>>>,
) -> Option<Option<String>> {
    if live.cognito.get_untracked().is_some() {
        if !api.signed_in() {
            message.set(Some(Err(
                "Sign in first: a redrive needs a signed-in user".into()
            )));
            return None;
        }
        Some(None)
    } else {
        let typed = typed_token();
        if typed.is_none() {
            message.set(Some(Err(
                "Type the API token (printed by make dev) in the simulation form first".into(),
            )));
            return None;
        }
        Some(typed)
    }
}

/// Redrives until the API says nothing more is pending or a request makes no progress (each
/// works up to 500 records or 10 s); sets `held` to what it held back past the dedup window.
async fn redrive_all(
    api: Api,
    token: Option<String>,
    include_past_window: bool,
    held: RwSignal<Option<(u64, u64)>>,
) -> Result<String, String> {
    let mut republished = 0;
    loop {
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
    }
}

/// The redrive buttons and what the last redrive said.
#[component]
fn RedriveActions(live: Live) -> impl IntoView {
    let message = RwSignal::new(None::<Result<String, String>>);
    let sending = RwSignal::new(false);
    // Pending dead letters older than the dedup window the last redrive held back, and the
    // window it judged by (seconds).
    let held = RwSignal::new(None::<(u64, u64)>);
    let redrive = move |include_past_window: bool| {
        let Some(api) = live.api.get_untracked() else {
            return;
        };
        let Some(token) = redrive_token(live, &api, message) else {
            return;
        };
        sending.set(true);
        held.set(None);
        spawn_local(async move {
            let outcome = redrive_all(api, token, include_past_window, held).await;
            sending.set(false);
            message.set(Some(outcome));
            live.refresh();
        });
    };

    view! {
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
    }
}

/// The dead letters, as the last poll read them.
#[component]
fn DeadLetterTable(live: Live) -> impl IntoView {
    move || {
        match live.dead_letters.get() {
            None => view! { <Loading /> }.into_any(),
            Some(p) if p.items.is_empty() => view! { <p class="muted">"None: the Pipe has dead-lettered nothing."</p> }.into_any(),
            Some(p) => view! {
                <ScrollTable id="dead-letter-table" head=view! {
                    <th>"Arrived"</th><th>"Status"</th><th>"Product"</th><th>"Reason"</th><th>"Record"</th>
                }>
                    {p.items.into_iter().map(|d| view! {
                        <tr>
                            <td class="muted"><LocalTime at=rfc3339::to_millis(&d.arrived_at) /></td>
                            <td><span class="reason">{status_label(d.status)}</span></td>
                            <td><code>{d.product_id.unwrap_or(d.partition_key)}</code></td>
                            <td>{d.reason}</td>
                            <td class="muted small">{d.record_id}</td>
                        </tr>
                    }).collect_view()}
                </ScrollTable>
            }.into_any(),
        }
    }
}
