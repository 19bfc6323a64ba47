//! The pipeline's figures from `/api/stats` (the charts are beside, in `charts`). Before the
//! processor's first batch the totals are unknown and show as "—".

use leptos::prelude::*;

use crate::live::Live;

#[component]
pub(super) fn Figures(live: Live) -> impl IntoView {
    view! {
        <div class="card">
            <h2>"Pipeline"</h2>
            {move || match live.stats.get() {
                None => view! { <p class="muted">"Loading…"</p> }.into_any(),
                Some(s) => {
                    let lag = s.lag_ms.map_or("—".to_owned(), |l| format!("{:.2} s", l as f64 / 1000.0));
                    let reasons = s.rejections.iter().map(|(r, n)| view! { <li><span>{r.clone()}</span><b>{*n}</b></li> }).collect_view();
                    let shown = |v: Option<u64>| v.map_or("—".to_owned(), |n| n.to_string());
                    let products = match (s.products, s.active_products) {
                        (Some(p), Some(a)) => format!("{p} ({a} active)"),
                        (p, a) => format!("{} ({} active)", shown(p), shown(a)),
                    };
                    let why = s.products.is_none().then_some("Counted from the processor's first batch on");
                    view! {
                        <dl class="figures">
                            <div><dt>"Events/s (last minute)"</dt><dd>{format!("{:.1}", s.throughput_last_minute)}</dd></div>
                            <div><dt>"Processing lag"</dt><dd>{lag}</dd></div>
                            <div><dt>"Products"</dt><dd title=why>{products}</dd></div>
                            <div><dt>"Units in stock"</dt><dd title=why>{shown(s.units)}</dd></div>
                            <div><dt>"Events applied"</dt><dd title=why>{shown(s.events_applied)}</dd></div>
                            <div><dt>"Duplicates ignored"</dt><dd>{s.duplicates_ignored}</dd></div>
                            <div><dt>"Rejections"</dt><dd>{s.rejections_total}</dd></div>
                        </dl>
                        <ul class="reasons">{reasons}</ul>
                    }.into_any()
                }
            }}
        </div>
    }
}
