//! Kinesis sequence numbers: decimal strings of up to 128 digits (56 today).
//! Plain string comparison is wrong across lengths ("9" > "10"), and they do not fit a
//! u128, so they compare by length first and then by digits.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SequenceNumber(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a Kinesis sequence number: expected 1 to 128 decimal digits")]
pub struct InvalidSequenceNumber(pub String);

impl SequenceNumber {
    pub fn parse(raw: &str) -> Result<Self, InvalidSequenceNumber> {
        if raw.is_empty() || raw.len() > 128 || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InvalidSequenceNumber(raw.chars().take(140).collect()));
        }
        // Leading zeros would make equal numbers compare unequal by length.
        let trimmed = raw.trim_start_matches('0');
        let canonical = if trimmed.is_empty() { "0" } else { trimmed };
        Ok(Self(canonical.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// 0, below every sequence number Kinesis gives.
    pub fn zero() -> Self {
        Self("0".to_owned())
    }
}

impl Ord for SequenceNumber {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.cmp(&other.0))
    }
}

impl PartialOrd for SequenceNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl TryFrom<String> for SequenceNumber {
    type Error = InvalidSequenceNumber;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<SequenceNumber> for String {
    fn from(value: SequenceNumber) -> Self {
        value.0
    }
}

impl fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn shorter_number_is_smaller_even_when_string_order_disagrees() {
        let nine = SequenceNumber::parse("9").unwrap();
        let ten = SequenceNumber::parse("10").unwrap();
        assert!(nine < ten);
        assert!("9" > "10", "the trap this type exists to avoid");
    }

    #[test]
    fn leading_zeros_do_not_change_the_value() {
        assert_eq!(
            SequenceNumber::parse("000123").unwrap(),
            SequenceNumber::parse("123").unwrap()
        );
    }

    #[test]
    fn rejects_non_digits_and_empty() {
        assert!(SequenceNumber::parse("").is_err());
        assert!(SequenceNumber::parse("12a").is_err());
        assert!(SequenceNumber::parse("-1").is_err());
    }

    proptest! {
        #[test]
        fn order_matches_integer_order(a in any::<u128>(), b in any::<u128>()) {
            let sa = SequenceNumber::parse(&a.to_string()).unwrap();
            let sb = SequenceNumber::parse(&b.to_string()).unwrap();
            prop_assert_eq!(sa.cmp(&sb), a.cmp(&b));
        }
    }
}
