//! One module per component. `App` lays them out; each component reads the shared `Live` state.

mod app;
mod chart;
mod connection_badge;
mod dead_letter_inbox;
mod figures;
mod inventory_table;
mod rejection_list;
mod simulation_form;
mod verdict_card;

pub use app::App;
