//! The mock event source: a simulated catalogue and the model of the state it must produce
//! ([`simulation`]), its publisher ([`publish`]), the check of DynamoDB against that model
//! ([`verify`]), and a whole run started from the API that records its status as it goes
//! ([`run`]). The `generator` CLI, the generator Lambda and the local stack call these;
//! [`progress`] shows a long wait's progress to people.

pub mod aws;
pub mod cli;
pub mod progress;
pub mod publish;
pub mod run;
pub mod simulation;
pub mod verify;

pub use publish::{publish, PublishError, PublishOptions, PublishReport, RecordSink, SinkError};
pub use run::{run_simulation, SimulationContext};
pub use simulation::{
    new_run_id, Expected, FaultRatios, ProducerConfig, RetryDistance, SimConfig, Simulation, Skew,
};
pub use verify::{verify, VerifyOptions, VerifyReport};
