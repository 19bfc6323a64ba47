//! Kinesis stream ARNs (`arn:<partition>:kinesis:<region>:<account>:stream/<name>`), parsed
//! by `scratchstack-arn` and read by part name, so no caller splits an ARN by hand.

use std::fmt;
use std::str::FromStr;

use scratchstack_arn::Arn;

/// A Kinesis data stream's ARN, checked: a valid ARN of the `kinesis` service with a
/// region, an account and a `stream/<name>` resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamArn {
    parts: Arn,
    /// Kept beside the parts: the crate gives its text back only through `Display`.
    text: String,
}

/// Why a text is not a Kinesis stream ARN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArnError {
    #[error("`{arn}` is not an ARN ({reason}); a stream ARN reads arn:aws:kinesis:<region>:<12-digit account>:stream/<name>")]
    Malformed { arn: String, reason: String },
    #[error(
        "`{arn}` is an ARN of service `{service}`, not of a Kinesis stream (arn:aws:kinesis:…)"
    )]
    NotKinesis { arn: String, service: String },
    #[error("`{arn}` names no region; a stream ARN reads arn:aws:kinesis:<region>:<account>:stream/<name>")]
    NoRegion { arn: String },
    #[error("`{arn}` names no account; a stream ARN reads arn:aws:kinesis:<region>:<account>:stream/<name>")]
    NoAccount { arn: String },
    #[error("`{arn}` is not a stream's ARN: its resource must be stream/<name>")]
    NotAStream { arn: String },
}

const STREAM_PREFIX: &str = "stream/";

impl StreamArn {
    pub fn parse(arn: &str) -> Result<Self, ArnError> {
        let parsed: Arn =
            arn.parse()
                .map_err(|e: scratchstack_arn::ArnError| ArnError::Malformed {
                    arn: arn.to_owned(),
                    reason: e.to_string(),
                })?;
        // The parts' own rules (a region's shape, a 12-digit account) are the crate's; these
        // checks add what makes an ARN a stream's.
        let owned = || arn.to_owned();
        if parsed.service() != "kinesis" {
            return Err(ArnError::NotKinesis {
                arn: owned(),
                service: parsed.service().to_owned(),
            });
        }
        if parsed.region().is_empty() {
            return Err(ArnError::NoRegion { arn: owned() });
        }
        if parsed.account_id().is_empty() {
            return Err(ArnError::NoAccount { arn: owned() });
        }
        match parsed.resource().strip_prefix(STREAM_PREFIX) {
            Some(name) if !name.is_empty() && !name.contains('/') => Ok(Self {
                parts: parsed,
                text: arn.to_owned(),
            }),
            _ => Err(ArnError::NotAStream { arn: owned() }),
        }
    }

    /// The stream's name in `arn` when it is a stream ARN: a slice of `arn` itself, for the
    /// callers that key by name and keep the whole text when it is not an ARN.
    pub fn name_in(arn: &str) -> Option<&str> {
        let parsed = Self::parse(arn).ok()?;
        arn.get(arn.len() - parsed.stream_name().len()..)
    }

    /// The ARN as text, as it was parsed.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn partition(&self) -> &str {
        self.parts.partition()
    }

    pub fn region(&self) -> &str {
        self.parts.region()
    }

    pub fn account(&self) -> &str {
        self.parts.account_id()
    }

    pub fn stream_name(&self) -> &str {
        self.parts
            .resource()
            .strip_prefix(STREAM_PREFIX)
            .unwrap_or_default()
    }
}

impl FromStr for StreamArn {
    type Err = ArnError;

    fn from_str(arn: &str) -> Result<Self, ArnError> {
        Self::parse(arn)
    }
}

/// The ARN as text, as it was parsed.
impl fmt::Display for StreamArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:kinesis:us-east-1:123456789012:stream/inventory-events";

    #[test]
    fn a_stream_arn_reads_by_part() {
        let arn = StreamArn::parse(ARN).unwrap();
        assert_eq!(arn.partition(), "aws");
        assert_eq!(arn.region(), "us-east-1");
        assert_eq!(arn.account(), "123456789012");
        assert_eq!(arn.stream_name(), "inventory-events");
        assert_eq!(arn.to_string(), ARN);
        assert_eq!(arn.as_str(), ARN);
        assert_eq!(ARN.parse::<StreamArn>(), Ok(arn));
        let local =
            StreamArn::parse("arn:aws-cn:kinesis:cn-north-1:000000000000:stream/s").unwrap();
        assert_eq!((local.partition(), local.stream_name()), ("aws-cn", "s"));
    }

    #[test]
    fn the_name_in_an_arn_is_a_slice_of_it() {
        assert_eq!(StreamArn::name_in(ARN), Some("inventory-events"));
        assert_eq!(StreamArn::name_in("inventory-events"), None);
    }

    #[test]
    fn what_is_not_a_stream_arn_says_why() {
        let err = |arn: &str| StreamArn::parse(arn).unwrap_err();
        assert!(matches!(err(""), ArnError::Malformed { .. }));
        assert!(matches!(
            err("inventory-events"),
            ArnError::Malformed { .. }
        ));
        assert!(matches!(
            err("arx:aws:kinesis:us-east-1:123456789012:stream/s"),
            ArnError::Malformed { .. }
        ));
        // The account is 12 digits.
        assert!(matches!(
            err("arn:aws:kinesis:us-east-1:1:stream/s"),
            ArnError::Malformed { .. }
        ));
        assert!(matches!(
            err("arn:aws:kinesis:US-EAST-1:123456789012:stream/s"),
            ArnError::Malformed { .. }
        ));
        assert_eq!(
            err("arn:aws:sqs:us-east-1:123456789012:queue"),
            ArnError::NotKinesis {
                arn: "arn:aws:sqs:us-east-1:123456789012:queue".into(),
                service: "sqs".into()
            }
        );
        assert!(matches!(
            err("arn:aws:kinesis::123456789012:stream/s"),
            ArnError::NoRegion { .. }
        ));
        assert!(matches!(
            err("arn:aws:kinesis:us-east-1::stream/s"),
            ArnError::NoAccount { .. }
        ));
        for resource in ["stream/", "table/s", "stream/s/consumer/c:1"] {
            let arn = format!("arn:aws:kinesis:us-east-1:123456789012:{resource}");
            assert!(matches!(err(&arn), ArnError::NotAStream { .. }), "{arn}");
        }
        let message = err("arn:aws:kinesis:us-east-1:1:stream/s").to_string();
        assert!(message.contains("12-digit account"), "{message}");
    }
}
