//! A line chart over the last 10 minutes, in SVG, with axes: time on x (the viewer's clock,
//! every 2 minutes), the value on y (0, half and the top of a rounded scale, with units).
//! A missing value (a bucket without a batch, for lag) breaks the line.

use leptos::prelude::*;

use crate::time::local_clock;

/// The window shown, in ms.
pub(super) const WINDOW_MS: f64 = 600_000.0;
/// x ticks this far apart, at whole multiples of it.
const TICK_MS: f64 = 120_000.0;

// About the size it is drawn at, so that the labels read at their font size.
const W: f64 = 360.0;
const H: f64 = 160.0;
/// The plot area inside the axes' labels.
const LEFT: f64 = 46.0;
const RIGHT: f64 = 344.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 132.0;

/// The smallest 1, 2 or 5 × 10ⁿ at or over `v` (the top of a scale); 1 for nothing.
pub(super) fn nice_top(v: f64) -> f64 {
    if !(v.is_finite() && v > 0.0) {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|&top| top >= v * (1.0 - 1e-9))
        .unwrap_or(10.0 * magnitude)
}

/// Times of the x ticks in `[start, end]`: whole multiples of [`TICK_MS`].
pub(super) fn ticks(start: f64, end: f64) -> Vec<f64> {
    let mut t = (start / TICK_MS).ceil() * TICK_MS;
    let mut out = Vec::new();
    while t <= end {
        out.push(t);
        t += TICK_MS;
    }
    out
}

/// The line's runs in the plot's coordinates: `points` are `(time ms, value)`, a `None`
/// value ends a run.
pub(super) fn runs(points: &[(f64, Option<f64>)], end: f64, top: f64) -> Vec<Vec<(f64, f64)>> {
    let start = end - WINDOW_MS;
    let x = |t: f64| LEFT + (t - start).clamp(0.0, WINDOW_MS) / WINDOW_MS * (RIGHT - LEFT);
    let y = |v: f64| BOTTOM - (v / top).clamp(0.0, 1.0) * (BOTTOM - TOP);
    let mut out = Vec::new();
    let mut run = Vec::new();
    for &(t, v) in points {
        match v {
            Some(v) if t >= start && t <= end => run.push((x(t), y(v))),
            _ => {
                if !run.is_empty() {
                    out.push(std::mem::take(&mut run));
                }
            }
        }
    }
    if !run.is_empty() {
        out.push(run);
    }
    out
}

#[component]
pub(super) fn Chart(
    /// The element's id.
    id: &'static str,
    title: &'static str,
    /// `(time ms, value)`, oldest first.
    points: Vec<(f64, Option<f64>)>,
    /// The right end of the window (ms).
    end: f64,
    /// A value as the y axis labels it (with its unit).
    label: fn(f64) -> String,
) -> impl IntoView {
    let peak = points.iter().filter_map(|(_, v)| *v).fold(0.0, f64::max);
    let top = nice_top(peak);
    let start = end - WINDOW_MS;
    let lines = runs(&points, end, top);
    let y_axis = [0.0, 0.5, 1.0]
        .into_iter()
        .map(|f| {
            let y = BOTTOM - f * (BOTTOM - TOP);
            view! {
                <line class="grid" x1=LEFT x2=RIGHT y1=y y2=y />
                <text class="y" x=LEFT - 6.0 y=y + 4.0 text-anchor="end">{label(top * f)}</text>
            }
        })
        .collect_view();
    let x_axis = ticks(start, end)
        .into_iter()
        .map(|t| {
            let x = LEFT + (t - start) / WINDOW_MS * (RIGHT - LEFT);
            view! {
                <line class="tick" x1=x x2=x y1=BOTTOM y2=BOTTOM + 4.0 />
                <text class="x" x=x y=BOTTOM + 17.0 text-anchor="middle">{local_clock(t)}</text>
            }
        })
        .collect_view();
    let summary = format!("{title}, last 10 minutes: peak {}", label(peak));
    view! {
        <figure class="chart" id=id>
            <figcaption>{title}<span class="muted">{format!(" · peak {}", label(peak))}</span></figcaption>
            <svg viewBox=format!("0 0 {W} {H}") role="img" aria-label=summary>
                {y_axis}
                <line class="axis" x1=LEFT x2=RIGHT y1=BOTTOM y2=BOTTOM />
                <line class="axis" x1=LEFT x2=LEFT y1=TOP y2=BOTTOM />
                {x_axis}
                {lines.into_iter().map(|run| match run.as_slice() {
                    // A lone value (between two gaps) is a dot.
                    [(x, y)] => view! { <circle cx=*x cy=*y r="2.5" fill="currentColor" /> }.into_any(),
                    _ => {
                        let points = run.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect::<Vec<_>>().join(" ");
                        view! {
                            <polyline points=points fill="none" stroke="currentColor" stroke-width="2" stroke-linejoin="round" />
                        }.into_any()
                    }
                }).collect_view()}
            </svg>
        </figure>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_round_up_to_1_2_or_5() {
        assert_eq!(nice_top(0.0), 1.0);
        assert_eq!(nice_top(0.3), 0.5);
        assert_eq!(nice_top(1.0), 1.0);
        assert_eq!(nice_top(1.2), 2.0);
        assert_eq!(nice_top(3.0), 5.0);
        assert_eq!(nice_top(730.0), 1000.0);
        assert_eq!(nice_top(1999.0), 2000.0);
    }

    #[test]
    fn ticks_fall_on_whole_two_minutes() {
        let end = 1_000_000_000.0 * 1000.0 + 30_000.0;
        let t = ticks(end - WINDOW_MS, end);
        assert_eq!(t.len(), 5);
        assert!(t.iter().all(|t| t % TICK_MS == 0.0));
        assert!(t[0] >= end - WINDOW_MS && *t.last().unwrap() <= end);
    }

    #[test]
    fn a_missing_value_breaks_the_line() {
        let end = 600_000.0;
        let pts = [
            (0.0, Some(1.0)),
            (10_000.0, Some(2.0)),
            (20_000.0, None),
            (30_000.0, Some(1.0)),
        ];
        let r = runs(&pts, end, 2.0);
        assert_eq!(r.len(), 2);
        let second_x = LEFT + 10_000.0 / WINDOW_MS * (RIGHT - LEFT);
        assert_eq!(r[0], [(LEFT, (BOTTOM + TOP) / 2.0), (second_x, TOP)]);
        assert_eq!(r[1].len(), 1);
    }
}
