//! One module per component. `App` lays them out; each component reads the shared `Live` state.

mod app;
mod chart;
mod charts;
mod connection_badge;
mod dead_letter_inbox;
mod figures;
mod inventory_table;
mod product_page;
mod rejection_list;
mod sign_in_gate;
mod simulation_form;
mod simulation_list;
mod table;
mod verdict_card;

pub use app::App;
