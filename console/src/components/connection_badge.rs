//! Whether the API answers: connecting, live, or the first failing poll's error and where it
//! was sent. One live region whose text changes only when the state does (a poll that
//! fails the same way again redraws nothing).

use leptos::prelude::*;

use crate::live::{Live, POLL};

#[component]
pub(super) fn ConnectionBadge(live: Live) -> impl IntoView {
    let class = move || match live.reachable.get() {
        _ if live.sign_in_needed.get() => "badge muted",
        None => "badge muted",
        Some(Ok(())) => "badge ok",
        Some(Err(_)) => "badge bad",
    };
    let text = move || match live.reachable.get() {
        _ if live.sign_in_needed.get() => "Signed out".to_owned(),
        None => "Connecting…".to_owned(),
        Some(Ok(())) => "Live".to_owned(),
        Some(Err(e)) => {
            let base = live
                .api
                .with_untracked(|a| a.as_ref().map(|a| a.base().to_owned()))
                .unwrap_or_default();
            format!("{e} ({base}); retrying every {} s", POLL.as_secs_f32())
        }
    };
    view! { <span class=class id="connection" role="status" aria-live="polite">{text}</span> }
}
