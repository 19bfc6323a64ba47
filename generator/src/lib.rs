//! The mock event source: a simulated catalogue ([`sim`]), its publisher ([`publish`]) and
//! the check of DynamoDB against the simulation's model ([`verify`]). The `generator` CLI
//! and the local stack's demo both call these.

pub mod cli;
pub mod publish;
pub mod sim;
pub mod simulation;
pub mod verify;

pub use publish::{publish, PublishOptions, PublishReport};
pub use sim::{Expected, FaultRatios, SimConfig, Simulation, Skew};
pub use verify::{verify, VerifyOptions, VerifyReport};
