//! Events applied per second over the last 10 minutes, as an SVG polyline.

use leptos::prelude::*;

use inventory_domain::api::Stats;

#[component]
pub(super) fn Chart(stats: Stats) -> impl IntoView {
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
