//! The lock items of the events table, `pk = LOCKS`, `sk = <what is locked>`: one redrive
//! at a time ([`redrive_lock`](crate::redrive_lock)), one simulation at a time
//! ([`simulation_lock`](crate::simulation_lock)). Each is taken with a conditional write
//! that succeeds when there is no item or it has expired, so a holder that crashed frees it
//! by expiring. The two write differently because their functions may: the dead-letter
//! function's role allows `UpdateItem` on the table, the API's `PutItem` and `DeleteItem`
//! in this partition.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::items::Item;

pub const LOCK_PK: &str = "LOCKS";

/// The key of the lock item `sk`.
pub(crate) fn key(sk: &str) -> Item {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(LOCK_PK.to_owned())),
        ("sk".to_owned(), AttributeValue::S(sk.to_owned())),
    ])
}

/// A number attribute (times, in the lock items).
pub(crate) fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}
