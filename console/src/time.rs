//! Times as the viewer reads them: the API's RFC 3339 UTC strings shown in the browser's
//! own time zone (`Date`'s local getters), with the UTC original as a tooltip.

use leptos::prelude::*;

/// Milliseconds since the epoch of an RFC 3339 string, if the browser can read it.
pub fn epoch_ms(rfc3339: &str) -> Option<f64> {
    let ms = js_sys::Date::parse(rfc3339);
    ms.is_finite().then_some(ms)
}

fn local_date(ms: f64) -> js_sys::Date {
    js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms))
}

/// `YYYY-MM-DD HH:MM:SS` in the viewer's zone (`.mmm` too when `precise`); the input
/// itself when it is not a time.
pub fn local_time(rfc3339: &str, precise: bool) -> String {
    let Some(ms) = epoch_ms(rfc3339) else {
        return rfc3339.to_owned();
    };
    let d = local_date(ms);
    let mut out = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        d.get_full_year(),
        d.get_month() + 1,
        d.get_date(),
        d.get_hours(),
        d.get_minutes(),
        d.get_seconds()
    );
    if precise {
        out.push_str(&format!(".{:03}", d.get_milliseconds()));
    }
    out
}

/// `HH:MM` in the viewer's zone (chart axes).
pub fn local_clock(ms: f64) -> String {
    let d = local_date(ms);
    format!("{:02}:{:02}", d.get_hours(), d.get_minutes())
}

/// The viewer's offset from UTC now, as `UTC+02:00`.
pub fn zone_label() -> String {
    let offset = -js_sys::Date::new_0().get_timezone_offset();
    utc_offset(offset as i64)
}

/// `UTC±HH:MM` of an offset east of UTC in minutes.
pub fn utc_offset(minutes: i64) -> String {
    let sign = if minutes < 0 { '-' } else { '+' };
    let m = minutes.abs();
    format!("UTC{sign}{:02}:{:02}", m / 60, m % 60)
}

/// A `<time>` showing `rfc3339` in the viewer's zone (to the millisecond when `precise`).
#[component]
pub fn LocalTime(#[prop(into)] at: String, #[prop(optional)] precise: bool) -> impl IntoView {
    let shown = local_time(&at, precise);
    view! { <time datetime=at.clone() title=format!("{at} (UTC)")>{shown}</time> }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_read_as_utc_plus_or_minus() {
        assert_eq!(utc_offset(0), "UTC+00:00");
        assert_eq!(utc_offset(120), "UTC+02:00");
        assert_eq!(utc_offset(-210), "UTC-03:30");
    }
}
