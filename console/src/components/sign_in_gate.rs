//! What a signed-out visitor sees where the API's reads need sign-in (in AWS unless the
//! deployment opens them): why nothing is shown, and the button that signs in. Shown once
//! the inventory read answered 401, in place of the dashboard, instead of an error that
//! repeats every second.

use leptos::prelude::*;

use crate::auth;
use crate::live::Live;

#[component]
pub(super) fn SignInGate(live: Live) -> impl IntoView {
    // A credential was sent and refused: the sign-in has expired.
    let expired = move || live.api.with(|a| a.as_ref().is_some_and(|a| a.signed_in()));
    view! {
        <section class="card gate" id="sign-in-gate">
            <h2>"Sign in to see the inventory"</h2>
            <p>
                {move || if expired() {
                    "Your sign-in has expired. Sign in again to see the inventory, the pipeline's figures and the simulations."
                } else {
                    "This deployment shows its inventory, the pipeline's figures and the simulations to signed-in users only."
                }}
            </p>
            {move || live.cognito.get().map(|cognito| view! {
                <button type="button" id="gate-sign-in" on:click=move |_| {
                    if let Err(e) = auth::sign_in(&cognito) {
                        live.sign_in_error.set(Some(e));
                    }
                }>"Sign in"</button>
            })}
            {move || live.sign_in_error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
        </section>
    }
}
