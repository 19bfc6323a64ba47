//! The form that starts a simulation. In AWS (config.json names a user pool) the user signs
//! in through the hosted UI first; locally the API token is typed in and kept in local
//! storage.

use inventory_domain::api::SimulationRequest;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{Api, ApiError};
use crate::auth;
use crate::live::{storage, Live, TOKEN_KEY};

/// The form's number fields, as typed.
#[derive(Clone, Copy)]
struct Fields {
    products: RwSignal<String>,
    events: RwSignal<String>,
    rate: RwSignal<String>,
    skew: RwSignal<String>,
    duplicates: RwSignal<String>,
    malformed: RwSignal<String>,
    invalid: RwSignal<String>,
    producers: RwSignal<String>,
    retry_share: RwSignal<String>,
}

impl Fields {
    /// Each field holding the default request's value.
    fn new() -> Self {
        let defaults = SimulationRequest::default();
        Self {
            products: RwSignal::new(defaults.products.to_string()),
            events: RwSignal::new(defaults.events.to_string()),
            rate: RwSignal::new(defaults.rate.to_string()),
            skew: RwSignal::new(defaults.skew.to_string()),
            duplicates: RwSignal::new(defaults.duplicates.to_string()),
            malformed: RwSignal::new(defaults.malformed.to_string()),
            invalid: RwSignal::new(defaults.invalid.to_string()),
            producers: RwSignal::new(defaults.producers.to_string()),
            retry_share: RwSignal::new(defaults.retry_share.to_string()),
        }
    }

    /// The request the fields describe, or what is wrong with it.
    fn request(self) -> Result<SimulationRequest, String> {
        let parse = |s: RwSignal<String>, name: &str| -> Result<f64, String> {
            s.get_untracked()
                .trim()
                .parse::<f64>()
                .map_err(|_| format!("{name} must be a number"))
        };
        let whole = |s: RwSignal<String>, name: &str| -> Result<u32, String> {
            s.get_untracked()
                .trim()
                .parse::<u32>()
                .map_err(|_| format!("{name} must be a whole number"))
        };
        let request = SimulationRequest {
            products: parse(self.products, "Products")? as u32,
            events: parse(self.events, "Events")? as u64,
            rate: parse(self.rate, "Rate")?,
            skew: self
                .skew
                .get_untracked()
                .parse()
                .map_err(|e: inventory_domain::workload::SkewError| e.to_string())?,
            duplicates: parse(self.duplicates, "Duplicates")?,
            malformed: parse(self.malformed, "Malformed")?,
            invalid: parse(self.invalid, "Invalid")?,
            seed: None,
            producers: whole(self.producers, "Producers")?,
            retry_share: parse(self.retry_share, "Late retries")?,
            // The default range (1 to 2,000 records later) is what the form offers.
            ..SimulationRequest::default()
        };
        request.validate().map(|_| request)
    }
}

/// The token a start sends: `Some(None)` when signed in through the user pool (the API
/// client carries the user's token), `Some(token)` locally (the typed token, kept in local
/// storage), `None` with `message` set when sign-in is needed first.
fn start_token(
    live: Live,
    api: &Api,
    token: RwSignal<String>,
    message: RwSignal<Option<Result<String, String>>>,
) -> Option<Option<String>> {
    if live.cognito.get_untracked().is_some() {
        if !api.signed_in() {
            message.set(Some(Err(
                "Sign in first: starting a simulation needs a signed-in user".into(),
            )));
            return None;
        }
        Some(None)
    } else {
        let t = token.get_untracked();
        if let Some(s) = storage() {
            let _ = s.set_item(TOKEN_KEY, &t);
        }
        Some(Some(t))
    }
}

#[component]
pub(super) fn SimulationForm(live: Live) -> impl IntoView {
    let token = RwSignal::new(
        storage()
            .and_then(|s| s.get_item(TOKEN_KEY).ok().flatten())
            .unwrap_or_default(),
    );
    let fields = Fields::new();
    let message: RwSignal<Option<Result<String, String>>> = RwSignal::new(None);
    let sending = RwSignal::new(false);

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Some(api) = live.api.get_untracked() else {
            return;
        };
        let request = match fields.request() {
            Ok(r) => r,
            Err(e) => {
                message.set(Some(Err(e)));
                return;
            }
        };
        let Some(local_token) = start_token(live, &api, token, message) else {
            return;
        };
        sending.set(true);
        spawn_local(async move {
            let result = api.start_simulation(local_token.as_deref(), &request).await;
            sending.set(false);
            message.set(Some(match result {
                Ok(accepted) => Ok(format!("Started simulation {}", accepted.id)),
                Err(ApiError::Unauthorized(m)) => Err(format!("Unauthorised: {m}")),
                Err(e) => Err(e.message()),
            }));
            live.refresh();
        });
    };

    view! {
        <form class="card form" on:submit=submit id="simulation-form">
            <h2>"Start a simulation"</h2>
            <Credentials live token message />
            <SimulationFields fields />
            <button type="submit" id="start" prop:disabled=move || sending.get()>
                {move || if sending.get() { "Starting…" } else { "Start simulation" }}
            </button>
            {move || message.get().map(|m| match m {
                Ok(t) => view! { <p class="ok" role="status">{t}</p> }.into_any(),
                Err(t) => view! { <p class="error" role="alert">{t}</p> }.into_any(),
            })}
        </form>
    }
}

/// Locally, the API token's box; with a user pool, whether the user is signed in and the
/// button that signs in or out.
#[component]
fn Credentials(
    live: Live,
    token: RwSignal<String>,
    message: RwSignal<Option<Result<String, String>>>,
) -> impl IntoView {
    move || {
        match live.cognito.get() {
            None => view! {
                <label for="token">"API token"</label>
                <input id="token" name="token" type="password" autocomplete="off" placeholder="printed by make dev"
                    value=token.get_untracked() on:input=move |ev| token.set(event_target_value(&ev)) />
            }.into_any(),
            Some(cognito) => {
                let signed_in = live.api.get().is_some_and(|a| a.signed_in());
                let (c_in, c_out) = (cognito.clone(), cognito);
                view! {
                    <p class="signin" id="signin">
                        {if signed_in { "Signed in." } else { "Starting a simulation needs a signed-in user." }}
                        " "
                        {if signed_in {
                            view! { <button type="button" id="sign-out" on:click=move |_| auth::sign_out(&c_out)>"Sign out"</button> }.into_any()
                        } else {
                            view! { <button type="button" id="sign-in" on:click=move |_| {
                                if let Err(e) = auth::sign_in(&c_in) { message.set(Some(Err(e))); }
                            }>"Sign in"</button> }.into_any()
                        }}
                    </p>
                    {move || live.sign_in_error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
                }.into_any()
            }
        }
    }
}

/// A labelled number box, `step` "1" for whole numbers and "any" for the rest.
fn number_field(
    label: &'static str,
    id: &'static str,
    value: RwSignal<String>,
    step: &'static str,
) -> impl IntoView {
    view! {
        <label for=id>{label}</label>
        // Uncontrolled: writing the value back while typing would eat a "0." in progress.
        <input id=id name=id type="number" step=step value=value.get_untracked()
            on:input=move |ev| value.set(event_target_value(&ev)) />
    }
}

/// The simulation's size, popularity and faults.
#[component]
fn SimulationFields(fields: Fields) -> impl IntoView {
    let skew = fields.skew;
    view! {
        <div class="fields">
            {number_field("Products", "products", fields.products, "1")}
            {number_field("Events", "events", fields.events, "1")}
            {number_field("Events per second", "rate", fields.rate, "any")}
            <label for="skew">"Popularity"</label>
            <select id="skew" name="skew" on:change=move |ev| skew.set(event_target_value(&ev))>
                <option value="zipf:1.1" selected=true>"Zipf 1.1 (a few hot products)"</option>
                <option value="zipf:1.5">"Zipf 1.5 (very hot)"</option>
                <option value="uniform">"Uniform"</option>
            </select>
            {number_field("Duplicates (ratio)", "duplicates", fields.duplicates, "any")}
            {number_field("Malformed (ratio)", "malformed", fields.malformed, "any")}
            {number_field("Invalid transitions (ratio)", "invalid", fields.invalid, "any")}
            {number_field("Producers", "producers", fields.producers, "1")}
            {number_field("Late retries (ratio, 1–2,000 events later)", "retry_share", fields.retry_share, "any")}
        </div>
    }
}
