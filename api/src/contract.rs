//! The OpenAPI document `/api/openapi.json` serves: [`crate::ApiDoc`] as the handlers'
//! annotations describe it, completed with what the annotations cannot say: the limits of a
//! redrive's ids ([`crate::limits`]) and who may call each read on this deployment
//! ([`Reads`]), so a client generated from it sends what the API accepts.

use serde_json::{json, Value};
use utoipa::OpenApi as _;

use crate::auth::Reads;
use crate::limits;

/// The document this deployment serves.
pub fn document(reads: Reads) -> Value {
    // Serialising utoipa's document cannot fail: it is plain data.
    let mut doc = serde_json::to_value(crate::ApiDoc::openapi()).unwrap_or_default();
    declare_redrive_ids(&mut doc);
    declare_security(&mut doc, reads);
    declare_unsigned(&mut doc);
    doc
}

/// utoipa writes a `u64` as `int64` with minimum 0, which says it stops at 2^63 - 1; the
/// API reads up to 2^64 - 1, so that is what the document says.
fn declare_unsigned(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let unsigned = map.get("format") == Some(&json!("int64"))
                && map.get("minimum").and_then(Value::as_f64) == Some(0.0);
            if unsigned {
                map.insert("format".into(), json!("uint64"));
                map.entry("maximum").or_insert(json!(u64::MAX));
            }
            map.values_mut().for_each(declare_unsigned);
        }
        Value::Array(items) => items.iter_mut().for_each(declare_unsigned),
        _ => {}
    }
}

/// `RedriveRequest.ids`: at most one redrive's worth, each of the archive's form.
fn declare_redrive_ids(doc: &mut Value) {
    if let Some(ids) = doc.pointer_mut("/components/schemas/RedriveRequest/properties/ids") {
        ids["maxItems"] = json!(limits::MAX_REDRIVE_IDS);
        ids["items"] = json!({
            "type": "string",
            "pattern": limits::DEAD_LETTER_ID_PATTERN,
            "maxLength": limits::MAX_DEAD_LETTER_ID_CHARS,
        });
    }
}

/// Who may call each operation here. The annotations describe [`Reads::PublicInventory`]
/// (the inventory reads and stats open, the rest signed in); the other settings open every
/// read ([`Reads::Open`], the local stack) or close every operation
/// ([`Reads::SignedIn`]). The document itself is always public.
fn declare_security(doc: &mut Value, reads: Reads) {
    let bearer = json!([{ "bearer": [] }]);
    let optional = json!([{}, { "bearer": [] }]);
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, operations) in paths.iter_mut() {
        if path == "/api/openapi.json" {
            continue;
        }
        let Some(operations) = operations.as_object_mut() else {
            continue;
        };
        for (method, operation) in operations.iter_mut() {
            match reads {
                Reads::PublicInventory => {}
                Reads::Open if method == "get" => operation["security"] = optional.clone(),
                Reads::Open => {}
                Reads::SignedIn => operation["security"] = bearer.clone(),
            }
        }
    }
}
