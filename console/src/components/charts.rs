//! The last 10 minutes from `/api/stats`' 10-second buckets: events applied per second, the
//! processing lag, and rejections per second, each with axes.

use leptos::prelude::*;

use super::chart::Chart;
use crate::live::Live;

fn per_second(v: f64) -> String {
    if v == 0.0 || v >= 10.0 {
        format!("{v:.0}/s")
    } else {
        format!("{v:.1}/s")
    }
}

fn lag(ms: f64) -> String {
    if ms >= 2_000.0 {
        format!("{:.0} s", ms / 1000.0)
    } else if ms >= 1_000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else {
        format!("{ms:.0} ms")
    }
}

#[component]
pub(super) fn Charts(live: Live) -> impl IntoView {
    view! {
        <section class="card" id="charts">
            <h2>"Last 10 minutes"</h2>
            {move || live.stats.get().map_or_else(|| view! { <p class="muted">"Loading…"</p> }.into_any(), |s| {
                let at = |p: &inventory_domain::api::ThroughputPoint| p.at.timestamp_millis() as f64;
                let end = s.generated_at.timestamp_millis() as f64;
                let series = |f: fn(&inventory_domain::api::ThroughputPoint) -> Option<f64>| {
                    s.throughput.iter().map(|p| (at(p), f(p))).collect::<Vec<_>>()
                };
                let applied = series(|p| Some(p.applied_per_sec));
                let lag_ms = series(|p| p.lag_ms.map(|l| l.max(0) as f64));
                let rejected = series(|p| Some(p.rejected_per_sec));
                view! {
                    <div class="charts">
                        <Chart id="chart-throughput" title="Events applied per second" points=applied end=end label=per_second />
                        <Chart id="chart-lag" title="Processing lag" points=lag_ms end=end label=lag />
                        <Chart id="chart-rejections" title="Rejections per second" points=rejected end=end label=per_second />
                    </div>
                }.into_any()
            })}
        </section>
    }
}
