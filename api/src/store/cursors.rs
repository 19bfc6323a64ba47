//! The opaque `cursor` of paged endpoints: the position to continue from, as URL-safe
//! base64 of JSON, so a client passes it back unchanged and cannot mistake it for an id.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::ApiError;

pub fn encode<T: Serialize>(position: &T) -> String {
    // Serialising a String or a struct of Strings cannot fail.
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(position).unwrap_or_default())
}

/// Reads a cursor this API gave; anything else is the client's error.
pub fn decode<T: DeserializeOwned>(cursor: &str) -> Result<T, ApiError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(invalid)
}

pub fn invalid() -> ApiError {
    ApiError::InvalidCursor("the cursor is not one this API gave; start again without it".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_and_a_forged_one_is_refused() {
        let c = encode(&"run1-P00042".to_owned());
        assert_eq!(decode::<String>(&c).unwrap(), "run1-P00042");
        for forged in ["", "not base64!", "bm90IGpzb24"] {
            assert!(
                matches!(decode::<String>(forged), Err(ApiError::InvalidCursor(_))),
                "{forged}"
            );
        }
    }
}
