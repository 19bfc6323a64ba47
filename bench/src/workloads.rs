//! What the benchmark publishes: the generator's simulation of a workload (uniform or
//! Zipf-skewed over the products), with no injected faults.

use inventory_generator::{FaultRatios, SimConfig, Simulation, Skew};

/// A fault-free simulation of `events` events over `products` products.
pub(crate) fn simulation(
    products: usize,
    events: u64,
    skew: Skew,
    seed: u64,
    run_id: &str,
) -> anyhow::Result<Simulation> {
    Ok(Simulation::new(SimConfig {
        products,
        events,
        skew,
        seed,
        run_id: run_id.into(),
        faults: FaultRatios::default(),
    })?)
}

/// The workload as the report names it.
pub(crate) fn skew_name(skew: Skew) -> String {
    match skew {
        Skew::Uniform => "uniform".into(),
        Skew::Zipf(s) => format!("zipf({s})"),
    }
}

/// The workload as `--workloads` and `--skew` take it.
pub(crate) fn skew_arg(skew: Skew) -> String {
    match skew {
        Skew::Uniform => "uniform".to_owned(),
        Skew::Zipf(s) => format!("zipf:{s}"),
    }
}
