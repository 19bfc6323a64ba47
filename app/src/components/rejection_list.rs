//! The latest rejected events, newest first.

use leptos::prelude::*;

use crate::live::Live;

#[component]
pub(super) fn RejectionList(live: Live) -> impl IntoView {
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
