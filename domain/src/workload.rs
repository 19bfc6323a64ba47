//! What a simulation generates, as every front end states it: how products are picked
//! ([`Skew`]) and what share of records are faults ([`FaultRatios`]). The generator's command
//! line, the API's [`SimulationRequest`](crate::api::SimulationRequest) and the console all
//! read and check them here, so the three cannot accept different things.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The exponent `zipf` alone stands for.
pub const DEFAULT_ZIPF_EXPONENT: f64 = 1.1;
/// Most of a run's records that may be faults or repeats (duplicates, malformed, invalid
/// transitions and late retries together), so a run still applies events.
pub const MAX_FAULT_SHARE: f64 = 0.9;

/// How often each product is picked.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "exponent", rename_all = "snake_case")]
pub enum Skew {
    Uniform,
    /// Product k (1-based) is picked with probability ∝ 1 / k^exponent.
    Zipf(f64),
}

/// A skew that is not `uniform`, `zipf` or `zipf:<exponent>` with a positive exponent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a popularity skew: use `uniform`, `zipf` (exponent 1.1) or `zipf:<exponent>` with an exponent > 0")]
pub struct SkewError(pub String);

/// `uniform`, `zipf` (exponent [`DEFAULT_ZIPF_EXPONENT`]) or `zipf:<exponent>`.
impl FromStr for Skew {
    type Err = SkewError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            None if s == "uniform" => Ok(Skew::Uniform),
            None if s == "zipf" => Ok(Skew::Zipf(DEFAULT_ZIPF_EXPONENT)),
            Some(("zipf", e)) => e
                .parse::<f64>()
                .ok()
                .filter(|e| *e > 0.0 && e.is_finite())
                .map(Skew::Zipf)
                .ok_or_else(|| SkewError(s.to_owned())),
            _ => Err(SkewError(s.to_owned())),
        }
    }
}

/// The text [`Skew::from_str`] reads back.
impl fmt::Display for Skew {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skew::Uniform => f.write_str("uniform"),
            Skew::Zipf(e) => write!(f, "zipf:{e}"),
        }
    }
}

/// Fractions of generated records that are faults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultRatios {
    /// A valid event published a second time (same event_id, new record).
    pub duplicates: f64,
    /// Records that are not valid events (bad JSON, bad fields, unknown type, oversized).
    pub malformed: f64,
    /// Valid events the product's state must refuse (oversell, double add, unknown product).
    pub invalid_transitions: f64,
}

/// Fault ratios a run cannot have. The messages name the API's fields, which are also the
/// generator's options without their `--`.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum FaultRatioError {
    #[error("duplicates, malformed and invalid must each be between 0 and 1 and sum to at most {MAX_FAULT_SHARE} (got {}, {} and {})", .0.duplicates, .0.malformed, .0.invalid_transitions)]
    Faults(FaultRatios),
    #[error("retry_share must be between 0 and 1 and sum with duplicates, malformed and invalid to at most {MAX_FAULT_SHARE} (got {share}, the others {others})")]
    RetryShare { share: f64, others: f64 },
}

impl FaultRatios {
    /// The three fault ratios together.
    pub fn total(&self) -> f64 {
        self.duplicates + self.malformed + self.invalid_transitions
    }

    /// Each ratio, and `retry_share` (late retries), in [0, 1], and all of them together at
    /// most [`MAX_FAULT_SHARE`]. NaN is refused.
    pub fn check(&self, retry_share: f64) -> Result<(), FaultRatioError> {
        let ratios = [self.duplicates, self.malformed, self.invalid_transitions];
        let others = self.total();
        if ratios.iter().any(|r| !(0.0..=1.0).contains(r)) || others > MAX_FAULT_SHARE {
            return Err(FaultRatioError::Faults(*self));
        }
        if !(0.0..=1.0).contains(&retry_share) || others + retry_share > MAX_FAULT_SHARE {
            return Err(FaultRatioError::RetryShare {
                share: retry_share,
                others,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skews_read_and_write_the_same_text() {
        assert_eq!("uniform".parse(), Ok(Skew::Uniform));
        assert_eq!("zipf".parse(), Ok(Skew::Zipf(DEFAULT_ZIPF_EXPONENT)));
        assert_eq!("zipf:1.5".parse(), Ok(Skew::Zipf(1.5)));
        for skew in [Skew::Uniform, Skew::Zipf(1.1), Skew::Zipf(0.25)] {
            assert_eq!(skew.to_string().parse(), Ok(skew));
        }
        for bad in [
            "",
            "Zipf",
            "zipf:",
            "zipf:0",
            "zipf:-1",
            "zipf:inf",
            "zipf:NaN",
            "pareto:2",
            "uniform:1",
        ] {
            let e = bad.parse::<Skew>().unwrap_err();
            assert_eq!(e, SkewError(bad.to_owned()));
            assert!(e.to_string().contains("zipf:<exponent>"), "{e}");
        }
    }

    #[test]
    fn skews_keep_their_json_form() {
        let json = serde_json::to_string(&Skew::Zipf(1.1)).unwrap();
        assert_eq!(json, r#"{"kind":"zipf","exponent":1.1}"#);
        assert_eq!(
            serde_json::to_string(&Skew::Uniform).unwrap(),
            r#"{"kind":"uniform"}"#
        );
    }

    fn ratios(duplicates: f64, malformed: f64, invalid_transitions: f64) -> FaultRatios {
        FaultRatios {
            duplicates,
            malformed,
            invalid_transitions,
        }
    }

    #[test]
    fn fault_ratios_are_each_a_share_and_leave_room_for_events() {
        assert_eq!(ratios(0.05, 0.02, 0.02).check(0.05), Ok(()));
        assert_eq!(ratios(0.0, 0.0, 0.0).check(0.0), Ok(()));
        assert_eq!(ratios(0.3, 0.3, 0.3).check(0.0), Ok(()));
        for bad in [
            ratios(-0.1, 0.0, 0.0),
            ratios(0.0, 1.5, 0.0),
            ratios(0.0, 0.0, f64::NAN),
            ratios(0.5, 0.5, 0.0),
        ] {
            assert!(
                matches!(bad.check(0.0), Err(FaultRatioError::Faults(_))),
                "{bad:?}"
            );
        }
        for share in [-0.1, 1.1, f64::NAN, 0.8] {
            let e = ratios(0.1, 0.0, 0.1).check(share).unwrap_err();
            assert!(
                matches!(e, FaultRatioError::RetryShare { .. }),
                "{share}: {e}"
            );
            assert!(e.to_string().contains("retry_share"), "{e}");
        }
    }
}
