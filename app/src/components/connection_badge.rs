//! Whether the API answers: connecting, live, or the last error and where it was sent.

use leptos::prelude::*;

use crate::live::{Live, POLL};

#[component]
pub(super) fn ConnectionBadge(live: Live) -> impl IntoView {
    move || match live.reachable.get() {
        None => view! { <span class="badge muted">"Connecting…"</span> }.into_any(),
        Some(Ok(())) => view! { <span class="badge ok">"Live"</span> }.into_any(),
        Some(Err(e)) => {
            let base = live
                .api
                .get()
                .map(|a| a.base().to_owned())
                .unwrap_or_default();
            view! {
                <span class="badge bad" role="alert">
                    {format!("{e} ({base}); retrying every {} s", POLL.as_secs_f32())}
                </span>
            }
            .into_any()
        }
    }
}
