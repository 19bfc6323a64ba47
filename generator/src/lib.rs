//! The mock event source: a simulated catalogue ([`sim`]), its publisher ([`publish`]) and
//! the check of DynamoDB against the simulation's model ([`verify`]). The `generator` CLI
//! and the local stack's demo both call these.

pub mod aws;
pub mod cli;
pub mod publish;
pub mod sim;
pub mod simulation;
pub mod verify;

pub use publish::{publish, publish_to, PublishOptions, PublishReport, RecordSink};
pub use sim::{Expected, FaultRatios, ProducerConfig, RetryDistance, SimConfig, Simulation, Skew};
pub use verify::{verify, VerifyOptions, VerifyReport};
