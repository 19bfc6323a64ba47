//! The inventory domain: the event contract, validation and the per-product state
//! transition. Pure functions, no I/O; shared by the Lambdas, the local stack and the console.

pub mod api;
pub mod arn;
pub mod batch;
pub mod catalog;
pub mod dead_letter;
pub mod dedup;
pub mod event;
pub mod history;
pub mod lineage;
pub mod pipes;
pub mod rfc3339;
pub mod sequence;
pub mod state;
pub mod workload;

pub use event::{
    decode_record_data, parse_event, Change, EventType, InventoryEvent, Rejection, RejectionReason,
};
pub use pipes::{BatchItemFailure, BatchResponse, PipeRecord};
pub use sequence::SequenceNumber;
pub use state::{
    apply, apply_in, fold_product, fold_product_in, DedupContext, DuplicateKind, Outcome,
    ProductFold, ProductRecord, ProductStatus, RecentIds, SequencedEvent, Source,
};
pub use workload::{FaultRatios, Skew};
