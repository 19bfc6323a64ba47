//! The text of a timestamp at the edges (JSON, DynamoDB attributes): RFC 3339 in UTC with
//! `Z`. Inside the code a timestamp is a `DateTime<Utc>`.
//!
//! Two forms are in use, and stored data holds both, so each field keeps its own:
//! - an event's own time (`product.timestamp`, a product's `last_event_at`, a history
//!   entry's `at`): the shortest of 0, 3, 6 or 9 fraction digits
//!   ([`SecondsFormat::AutoSi`]), which is chrono's own serde form, so those fields need no
//!   adapter;
//! - a time the system stamps (`updated_at`, `arrived_at`, `generated_at`, ...): always 3
//!   fraction digits ([`SecondsFormat::Millis`]): [`millis`] and [`option_millis`].

use chrono::{DateTime, SecondsFormat, Utc};

/// `at` to the millisecond: `2026-12-06T10:00:00.000Z`.
pub fn to_millis(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `at` as an event's time is written: `2026-12-06T10:00:00Z`, `...00.5` as `...00.500Z`.
pub fn to_auto(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Reads any RFC 3339 date-time, converted to UTC; `None` if `text` is not one.
pub fn parse(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn read<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    let text = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(deserializer)?;
    parse(&text).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "{text:?} is not an RFC 3339 date-time (like 2026-12-06T10:00:00.000Z)"
        ))
    })
}

/// `#[serde(with = "rfc3339::millis")]`: a `DateTime<Utc>` as [`to_millis`] text.
pub mod millis {
    use chrono::{DateTime, Utc};

    pub fn serialize<S: serde::Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::to_millis(at))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        super::read(d)
    }
}

/// `#[serde(with = "rfc3339::option_millis")]`: an `Option<DateTime<Utc>>` as [`to_millis`]
/// text or null.
pub mod option_millis {
    use chrono::{DateTime, Utc};
    use serde::Deserialize as _;

    pub fn serialize<S: serde::Serializer>(
        at: &Option<DateTime<Utc>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => s.serialize_some(&super::to_millis(at)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        #[derive(serde::Deserialize)]
        struct Millis(#[serde(with = "super::millis")] DateTime<Utc>);
        Ok(Option::<Millis>::deserialize(d)?.map(|Millis(at)| at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Stamped {
        #[serde(with = "millis")]
        at: DateTime<Utc>,
        #[serde(with = "option_millis")]
        maybe: Option<DateTime<Utc>>,
        auto: DateTime<Utc>,
    }

    #[test]
    fn millis_text_round_trips_byte_for_byte() {
        let text = r#"{"at":"2026-12-06T10:00:00.000Z","maybe":"2026-12-06T10:00:01.250Z","auto":"2026-12-06T10:00:02.5Z"}"#;
        let read: Stamped = serde_json::from_str(text).unwrap();
        assert_eq!(read.maybe.map(|t| t.timestamp_millis() % 1000), Some(250));
        let written = serde_json::to_string(&read).unwrap();
        // The event's form writes the fraction in 3 digits, as event normalisation always did.
        assert_eq!(written, text.replace("02.5Z", "02.500Z"));
        let none =
            r#"{"at":"2026-12-06T10:00:00.000Z","maybe":null,"auto":"2026-12-06T10:00:02Z"}"#;
        let read: Stamped = serde_json::from_str(none).unwrap();
        assert_eq!(read.maybe, None);
        assert_eq!(serde_json::to_string(&read).unwrap(), none);
    }

    #[test]
    fn unreadable_text_is_an_error_naming_it() {
        let text = r#"{"at":"yesterday","maybe":null,"auto":"2026-12-06T10:00:02Z"}"#;
        let err = serde_json::from_str::<Stamped>(text).unwrap_err();
        assert!(err
            .to_string()
            .contains("\"yesterday\" is not an RFC 3339 date-time"));
        let text = r#"{"at":"2026-12-06T10:00:00.000Z","maybe":"","auto":"2026-12-06T10:00:02Z"}"#;
        assert!(serde_json::from_str::<Stamped>(text).is_err());
    }

    proptest! {
        /// Text written to the millisecond reads back as the same instant and writes again
        /// as the same text (what the tables hold stays what they held).
        #[test]
        fn millis_and_auto_round_trip(secs in 0i64..253_402_300_799, nanos in 0u32..1_000_000_000) {
            let at = DateTime::from_timestamp(secs, nanos).expect("in range");
            let text = to_millis(&at);
            let read = parse(&text).expect("reads its own text");
            prop_assert_eq!(to_millis(&read), text);
            prop_assert_eq!(read.timestamp_millis(), at.timestamp_millis());
            let auto = to_auto(&at);
            prop_assert_eq!(parse(&auto), Some(at));
            prop_assert_eq!(serde_json::to_string(&at).unwrap(), format!("\"{auto}\""));
        }
    }
}
