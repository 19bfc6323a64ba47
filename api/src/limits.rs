//! The limits the API enforces on a request, one constant each. The handlers check requests
//! against these, and the served OpenAPI document declares each (api/tests/openapi.rs
//! checks the document against these very constants, so the two cannot drift).

use inventory_domain::api::{
    SimulationRequest, MAX_SIMULATION_EVENTS, MAX_SIMULATION_PRODUCERS, MAX_SIMULATION_PRODUCTS,
    MAX_SIMULATION_RATE, MAX_SIMULATION_RETRY_DISTANCE,
};

use crate::error::ApiError;

/// A `limit` query parameter's range: 1 to `max`, `default` when absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimit {
    pub max: usize,
    pub default: usize,
}

impl PageLimit {
    /// The page size asked for, or why it is refused (400).
    pub fn check(self, given: Option<usize>) -> Result<usize, ApiError> {
        let limit = given.unwrap_or(self.default);
        if (1..=self.max).contains(&limit) {
            Ok(limit)
        } else {
            Err(ApiError::BadRequest(format!(
                "limit must be 1 to {}",
                self.max
            )))
        }
    }
}

/// `GET /api/inventory`: products a page.
pub const INVENTORY_PAGE: PageLimit = PageLimit {
    max: 1000,
    default: 100,
};

/// Every other paged read (history, rejections, dead letters): items a page.
pub const PAGE: PageLimit = PageLimit {
    max: 200,
    default: 50,
};

/// The most a request body may hold, in bytes (413 beyond): room for [`MAX_REDRIVE_IDS`]
/// ids of the longest form.
pub const MAX_BODY_BYTES: usize = 128 * 1024;

/// `q` of `GET /api/inventory`, in characters.
pub use crate::store::products::MAX_SEARCH_CHARS;

/// A cursor is URL-safe base64 without padding (of JSON the API wrote); only a
/// `next_cursor` this API gave is one, which no pattern can say (400 `invalid_cursor`).
pub const CURSOR_PATTERN: &str = "^[A-Za-z0-9_-]+$";

/// The ids one redrive may name: what one redrive handles
/// ([`inventory_domain::api::MAX_REDRIVE`]).
pub const MAX_REDRIVE_IDS: usize = inventory_domain::api::MAX_REDRIVE;

/// A dead letter's id, as the archive makes it (`inventory_store::dead_letters::sort_key`):
/// the record's arrival in milliseconds (13 digits), `#`, its Kinesis eventID
/// (`shardId-<12 digits>:<sequence number, up to 128 digits>`).
pub const DEAD_LETTER_ID_PATTERN: &str = "^[0-9]{13}#shardId-[0-9]{12}:[0-9]{1,128}$";
pub const MAX_DEAD_LETTER_ID_CHARS: usize = 13 + 1 + 8 + 12 + 1 + 128;

// The largest redrive request the document allows fits in a body.
const _: () = assert!(MAX_REDRIVE_IDS * (MAX_DEAD_LETTER_ID_CHARS + 3) + 64 <= MAX_BODY_BYTES);

/// Whether `id` has the form of a dead letter's id ([`DEAD_LETTER_ID_PATTERN`]).
pub fn is_dead_letter_id(id: &str) -> bool {
    let digits = |s: &str, min: usize, max: usize| {
        (min..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
    };
    let Some((arrival, event_id)) = id.split_once('#') else {
        return false;
    };
    let Some((shard, sequence)) = event_id
        .strip_prefix("shardId-")
        .and_then(|rest| rest.split_once(':'))
    else {
        return false;
    };
    digits(arrival, 13, 13) && digits(shard, 12, 12) && digits(sequence, 1, 128)
}

/// Whether each field of a simulation request is within the limits its schema declares
/// (products, events, rate, producers, each ratio, `retry_distance`'s ends); a request that
/// passes this and still fails [`SimulationRequest::validate`] breaks a rule between fields.
pub fn simulation_fields_in_range(r: &SimulationRequest) -> bool {
    let ratio = |x: f64| (0.0..=1.0).contains(&x);
    (1..=MAX_SIMULATION_PRODUCTS).contains(&r.products)
        && (1..=MAX_SIMULATION_EVENTS).contains(&r.events)
        && r.rate > 0.0
        && r.rate <= MAX_SIMULATION_RATE
        && (1..=MAX_SIMULATION_PRODUCERS).contains(&r.producers)
        && [r.duplicates, r.malformed, r.invalid, r.retry_share]
            .into_iter()
            .all(ratio)
        && r.retry_distance.min <= MAX_SIMULATION_RETRY_DISTANCE
        && r.retry_distance.max <= MAX_SIMULATION_RETRY_DISTANCE
}

/// A simulation's id: a ULID as the API writes it (upper-case Crockford base32).
pub const SIMULATION_ID_PATTERN: &str = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$";

/// A product id ([`inventory_domain::event::is_valid_product_id`]).
pub const PRODUCT_ID_PATTERN: &str = "^[A-Za-z0-9_-]+$";
pub use inventory_domain::event::MAX_PRODUCT_ID_LEN;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_archived_id_has_the_dead_letter_form_and_others_do_not() {
        assert!(is_dead_letter_id("1694433600500#shardId-000000000002:4959"));
        let long = format!("1694433600500#shardId-000000000002:{}", "9".repeat(128));
        assert!(is_dead_letter_id(&long));
        assert_eq!(long.len(), MAX_DEAD_LETTER_ID_CHARS);
        for bad in [
            "",
            "#",
            "169443360050#shardId-000000000002:4959",
            "1694433600500#shardId-00000000002:4959",
            "1694433600500#shardId-000000000002:",
            "1694433600500#shard-000000000002:4959",
            "1694433600500#shardId-000000000002:49x9",
            &format!("{long}9"),
        ] {
            assert!(!is_dead_letter_id(bad), "{bad}");
        }
    }

    #[test]
    fn a_page_limit_takes_its_default_and_refuses_outside_its_range() {
        assert_eq!(PAGE.check(None).ok(), Some(50));
        assert_eq!(INVENTORY_PAGE.check(Some(1000)).ok(), Some(1000));
        for over in [Some(0), Some(201)] {
            assert!(matches!(PAGE.check(over), Err(ApiError::BadRequest(_))));
        }
    }
}
