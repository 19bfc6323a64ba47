//! The one test kit of the workspace's integration tests (dev-only), by role:
//!
//! - [`dynamodb`]: the real DynamoDB client against an embedded dynoxide or a stand-in;
//! - [`api_calls`]: the API's router called in process, signed in with [`TOKEN`];
//! - [`records`]: Pipes batches of one shard, numbered as Kinesis numbers them, and the
//!   product items a test reads or plants;
//! - [`wait`]: bounded waits that fail saying what they waited for;
//! - [`emulators`]: the embedded emulators alone (a stream and the tables), reached with the
//!   real SDK clients, for tests that drive the processor or a Pipe themselves;
//! - [`streams`]: Kinesis helpers (puts, reshards, waiting for ACTIVE);
//! - [`processor`]: the processor on its production path (the Lambda's body reader, then
//!   `process_batch`), the Pipes payload's shape, and the stored items;
//! - [`targets`]: Pipe targets: the processor in process, and one that crashes;
//! - [`pipeline`]: the whole local stack fed by the generator and checked by `verify`;
//! - [`proxy`]: HTTP proxies in front of the emulators that hold or rewrite calls.

pub mod api_calls;
pub mod docs;
pub mod dynamodb;
pub mod emulators;
pub mod pipeline;
pub mod processor;
pub mod proxy;
pub mod records;
pub mod streams;
pub mod targets;
pub mod wait;

pub use api_calls::*;
pub use dynamodb::*;
pub use emulators::*;
pub use pipeline::*;
pub use processor::*;
pub use proxy::*;
pub use records::*;
pub use streams::*;
pub use targets::*;
pub use wait::*;

/// Logs to the test's output when RUST_LOG asks for it
/// (RUST_LOG=inventory_processor=info,inventory_local=info shows what a failing case did).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
