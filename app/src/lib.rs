//! The inventory console: live inventory, pipeline figures, the consistency verdict of the
//! latest simulation, rejected events, and a form to start a simulation. Client-side
//! rendering only, so the build is static files for S3.

mod api;

use std::time::Duration;

use api::{Api, ApiError};
use inventory_domain::api::{
    InventoryPage, ProductView, RejectionPage, SimulationList, SimulationRequest, SimulationState,
    SimulationStatus, Stats,
};
use inventory_domain::ProductStatus;
use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::prelude::wasm_bindgen;

const POLL: Duration = Duration::from_millis(1500);
const TOKEN_KEY: &str = "inventory-console-token";

#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(App);
}

/// Everything the console shows, refreshed together.
#[derive(Clone, Copy)]
struct Live {
    api: RwSignal<Option<Api>>,
    /// `None` while the first answer is awaited.
    reachable: RwSignal<Option<Result<(), String>>>,
    inventory: RwSignal<Option<InventoryPage>>,
    stats: RwSignal<Option<Stats>>,
    rejections: RwSignal<Option<RejectionPage>>,
    simulations: RwSignal<Option<SimulationList>>,
    status_filter: RwSignal<String>,
}

impl Live {
    fn refresh(self, busy: StoredValue<bool>) {
        let Some(api) = self.api.get_untracked() else {
            return;
        };
        if busy.get_value() {
            return;
        }
        busy.set_value(true);
        let status = self.status_filter.get_untracked();
        spawn_local(async move {
            let (inventory, stats, rejections, simulations) = futures::join!(
                api.inventory(&status),
                api.stats(),
                api.rejections(),
                api.simulations(),
            );
            let mut error = None;
            // Keep the last good data on a failed poll, so nothing flickers away.
            match inventory {
                Ok(v) => self.inventory.set(Some(v)),
                Err(e) => error = Some(e),
            }
            match stats {
                Ok(v) => self.stats.set(Some(v)),
                Err(e) => error = Some(e),
            }
            match rejections {
                Ok(v) => self.rejections.set(Some(v)),
                Err(e) => error = Some(e),
            }
            match simulations {
                Ok(v) => self.simulations.set(Some(v)),
                Err(e) => error = Some(e),
            }
            self.reachable
                .set(Some(error.map_or(Ok(()), |e| Err(e.message()))));
            busy.set_value(false);
        });
    }
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window().and_then(|w| w.local_storage().ok().flatten())
}

#[component]
pub fn App() -> impl IntoView {
    let live = Live {
        api: RwSignal::new(None),
        reachable: RwSignal::new(None),
        inventory: RwSignal::new(None),
        stats: RwSignal::new(None),
        rejections: RwSignal::new(None),
        simulations: RwSignal::new(None),
        status_filter: RwSignal::new("all".to_owned()),
    };
    let busy = StoredValue::new(false);
    spawn_local(async move {
        let config = api::load_config().await;
        live.api.set(Some(Api::new(&config.api_base_url)));
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
        </main>
    }
}

#[component]
fn ConnectionBadge(live: Live) -> impl IntoView {
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

#[component]
fn VerdictCard(live: Live) -> impl IntoView {
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

#[component]
fn Figures(live: Live) -> impl IntoView {
    view! {
        <div class="card">
            <h2>"Pipeline"</h2>
            {move || match live.stats.get() {
                None => view! { <p class="muted">"Loading…"</p> }.into_any(),
                Some(s) => {
                    let lag = s.lag_ms.map_or("—".to_owned(), |l| format!("{:.2} s", l as f64 / 1000.0));
                    let reasons = s.rejections.iter().map(|(r, n)| view! { <li><span>{r.clone()}</span><b>{*n}</b></li> }).collect_view();
                    view! {
                        <dl class="figures">
                            <div><dt>"Events/s (last minute)"</dt><dd>{format!("{:.1}", s.throughput_last_minute)}</dd></div>
                            <div><dt>"Processing lag"</dt><dd>{lag}</dd></div>
                            <div><dt>"Products"</dt><dd>{format!("{} ({} active)", s.products, s.active_products)}</dd></div>
                            <div><dt>"Units in stock"</dt><dd>{s.units}</dd></div>
                            <div><dt>"Events applied"</dt><dd>{s.events_applied}</dd></div>
                            <div><dt>"Duplicates ignored"</dt><dd>{s.duplicates_ignored}</dd></div>
                            <div><dt>"Rejections"</dt><dd>{s.rejections_total}</dd></div>
                        </dl>
                        <ul class="reasons">{reasons}</ul>
                        <Chart stats=s />
                    }.into_any()
                }
            }}
        </div>
    }
}

#[component]
fn Chart(stats: Stats) -> impl IntoView {
    let (w, h) = (600.0, 110.0);
    let max = stats
        .throughput
        .iter()
        .map(|p| p.applied_per_sec)
        .fold(1.0, f64::max);
    let n = stats.throughput.len().max(2) as f64 - 1.0;
    let points: String = stats
        .throughput
        .iter()
        .enumerate()
        .map(|(i, p)| {
            format!(
                "{:.1},{:.1}",
                i as f64 * w / n,
                h - p.applied_per_sec / max * (h - 10.0)
            )
        })
        .collect::<Vec<_>>()
        .join(" ");
    view! {
        <figure class="chart">
            <svg viewBox=format!("0 0 {w} {h}") preserveAspectRatio="none" role="img" aria-label="events applied per second, last 10 minutes">
                <polyline points=points fill="none" stroke="currentColor" stroke-width="2" vector-effect="non-scaling-stroke" />
            </svg>
            <figcaption>{format!("Events applied per second, last 10 minutes (peak {max:.0}/s)")}</figcaption>
        </figure>
    }
}

#[component]
fn SimulationForm(live: Live, busy: StoredValue<bool>) -> impl IntoView {
    let token = RwSignal::new(
        storage()
            .and_then(|s| s.get_item(TOKEN_KEY).ok().flatten())
            .unwrap_or_default(),
    );
    let defaults = SimulationRequest::default();
    let products = RwSignal::new(defaults.products.to_string());
    let events = RwSignal::new(defaults.events.to_string());
    let rate = RwSignal::new(defaults.rate.to_string());
    let skew = RwSignal::new(defaults.skew.clone());
    let duplicates = RwSignal::new(defaults.duplicates.to_string());
    let malformed = RwSignal::new(defaults.malformed.to_string());
    let invalid = RwSignal::new(defaults.invalid.to_string());
    let producers = RwSignal::new(defaults.producers.to_string());
    let retry_share = RwSignal::new(defaults.retry_share.to_string());
    let message: RwSignal<Option<Result<String, String>>> = RwSignal::new(None);
    let sending = RwSignal::new(false);

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Some(api) = live.api.get_untracked() else {
            return;
        };
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
        let request = (|| -> Result<SimulationRequest, String> {
            Ok(SimulationRequest {
                products: parse(products, "Products")? as u32,
                events: parse(events, "Events")? as u64,
                rate: parse(rate, "Rate")?,
                skew: skew.get_untracked(),
                duplicates: parse(duplicates, "Duplicates")?,
                malformed: parse(malformed, "Malformed")?,
                invalid: parse(invalid, "Invalid")?,
                seed: None,
                producers: whole(producers, "Producers")?,
                retry_share: parse(retry_share, "Late retries")?,
                // The default range (1 to 2,000 records later) is what the form offers.
                ..SimulationRequest::default()
            })
        })()
        .and_then(|r| r.validate().map(|_| r));
        let request = match request {
            Ok(r) => r,
            Err(e) => {
                message.set(Some(Err(e)));
                return;
            }
        };
        let t = token.get_untracked();
        if let Some(s) = storage() {
            let _ = s.set_item(TOKEN_KEY, &t);
        }
        sending.set(true);
        spawn_local(async move {
            let result = api.start_simulation(&t, &request).await;
            sending.set(false);
            message.set(Some(match result {
                Ok(accepted) => Ok(format!("Started simulation {}", accepted.id)),
                Err(ApiError::Unauthorized(m)) => Err(format!("Unauthorised: {m}")),
                Err(e) => Err(e.message()),
            }));
            live.refresh(busy);
        });
    };

    let field = move |label: &'static str,
                      id: &'static str,
                      value: RwSignal<String>,
                      step: &'static str| {
        view! {
            <label for=id>{label}</label>
            // Uncontrolled: writing the value back while typing would eat a "0." in progress.
            <input id=id name=id type="number" step=step value=value.get_untracked()
                on:input=move |ev| value.set(event_target_value(&ev)) />
        }
    };

    view! {
        <form class="card form" on:submit=submit id="simulation-form">
            <h2>"Start a simulation"</h2>
            <label for="token">"API token"</label>
            <input id="token" name="token" type="password" autocomplete="off" placeholder="printed by make dev"
                value=token.get_untracked() on:input=move |ev| token.set(event_target_value(&ev)) />
            <div class="fields">
                {field("Products", "products", products, "1")}
                {field("Events", "events", events, "1")}
                {field("Events per second", "rate", rate, "any")}
                <label for="skew">"Popularity"</label>
                <select id="skew" name="skew" on:change=move |ev| skew.set(event_target_value(&ev))>
                    <option value="zipf:1.1" selected=true>"Zipf 1.1 (a few hot products)"</option>
                    <option value="zipf:1.5">"Zipf 1.5 (very hot)"</option>
                    <option value="uniform">"Uniform"</option>
                </select>
                {field("Duplicates (ratio)", "duplicates", duplicates, "any")}
                {field("Malformed (ratio)", "malformed", malformed, "any")}
                {field("Invalid transitions (ratio)", "invalid", invalid, "any")}
                {field("Producers", "producers", producers, "1")}
                {field("Late retries (ratio, 1–2,000 events later)", "retry_share", retry_share, "any")}
            </div>
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

#[derive(Clone, Copy, PartialEq)]
enum Sort {
    Id,
    Name,
    Quantity,
    Status,
    Version,
    Updated,
}

#[component]
fn InventoryTable(live: Live) -> impl IntoView {
    let search = RwSignal::new(String::new());
    let sort = RwSignal::new((Sort::Quantity, true));
    let rows = move || {
        let needle = search.get().to_lowercase();
        let mut items: Vec<ProductView> = live
            .inventory
            .get()
            .map(|p| p.items)
            .unwrap_or_default()
            .into_iter()
            .filter(|p| {
                needle.is_empty()
                    || p.product_id.to_lowercase().contains(&needle)
                    || p.product_name.to_lowercase().contains(&needle)
            })
            .collect();
        let (key, desc) = sort.get();
        items.sort_by(|a, b| {
            let o = match key {
                Sort::Id => a.product_id.cmp(&b.product_id),
                Sort::Name => a.product_name.cmp(&b.product_name),
                Sort::Quantity => a.quantity.cmp(&b.quantity),
                Sort::Status => a.status.as_str().cmp(b.status.as_str()),
                Sort::Version => a.version.cmp(&b.version),
                Sort::Updated => a.updated_at.cmp(&b.updated_at),
            }
            .then_with(|| a.product_id.cmp(&b.product_id));
            if desc {
                o.reverse()
            } else {
                o
            }
        });
        items
    };
    let header = move |label: &'static str, key: Sort| {
        view! {
            <th>
                <button class="sort" on:click=move |_| sort.update(|(k, d)| {
                    if *k == key { *d = !*d } else { *k = key; *d = matches!(key, Sort::Quantity | Sort::Version | Sort::Updated) }
                })>
                    {label}
                    {move || { let (k, d) = sort.get(); if k == key { if d { " ▼" } else { " ▲" } } else { "" } }}
                </button>
            </th>
        }
    };
    view! {
        <section class="card">
            <div class="table-head">
                <h2>"Inventory"</h2>
                <input type="search" id="search" placeholder="Search id or name"
                    on:input=move |ev| search.set(event_target_value(&ev)) />
                <select id="status-filter" on:change=move |ev| live.status_filter.set(event_target_value(&ev))>
                    <option value="all">"All"</option>
                    <option value="active">"Active"</option>
                    <option value="removed">"Removed"</option>
                </select>
                <span class="muted">{move || live.inventory.get().map(|p| {
                    let more = if p.next_cursor.is_some() { " (first 1,000)" } else { "" };
                    format!("{} products{more}", p.items.len())
                })}</span>
            </div>
            {move || match live.inventory.get() {
                None => view! { <p class="muted">"Loading…"</p> }.into_any(),
                Some(p) if p.items.is_empty() => view! {
                    <p class="muted" id="empty-inventory">"No products yet. Start a simulation to publish events."</p>
                }.into_any(),
                Some(_) => view! {
                    <div class="scroll">
                    <table id="inventory">
                        <thead><tr>
                            {header("Product", Sort::Id)}
                            {header("Name", Sort::Name)}
                            {header("Quantity", Sort::Quantity)}
                            {header("Status", Sort::Status)}
                            {header("Version", Sort::Version)}
                            {header("Last update", Sort::Updated)}
                        </tr></thead>
                        <tbody>
                            <For each=rows key=|p| (p.product_id.clone(), p.version, p.updated_at.clone()) children=move |p| {
                                let removed = p.status == ProductStatus::Removed;
                                view! {
                                    <tr class:removed=removed>
                                        <td><code>{p.product_id}</code></td>
                                        <td>{p.product_name}</td>
                                        <td class="num">{p.quantity}</td>
                                        <td>{p.status.as_str()}</td>
                                        <td class="num">{p.version}</td>
                                        <td class="muted">{p.updated_at}</td>
                                    </tr>
                                }
                            } />
                        </tbody>
                    </table>
                    </div>
                }.into_any(),
            }}
        </section>
    }
}

#[component]
fn RejectionList(live: Live) -> impl IntoView {
    view! {
        <section class="card">
            <h2>"Rejected events"</h2>
            {move || match live.rejections.get() {
                None => view! { <p class="muted">"Loading…"</p> }.into_any(),
                Some(p) if p.items.is_empty() => view! { <p class="muted">"None: every record so far was valid."</p> }.into_any(),
                Some(p) => view! {
                    <div class="scroll">
                    <table id="rejections">
                        <thead><tr><th>"Arrived"</th><th>"Reason"</th><th>"Product"</th><th>"Detail"</th><th>"Record"</th></tr></thead>
                        <tbody>
                            {p.items.into_iter().map(|r| view! {
                                <tr>
                                    <td class="muted">{r.arrived_at}</td>
                                    <td><span class="reason">{r.reason.as_str()}</span></td>
                                    <td><code>{r.product_id.unwrap_or(r.partition_key)}</code></td>
                                    <td>{r.detail}</td>
                                    <td class="muted small">{r.record_id}</td>
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
