//! The inventory console: the inventory a page at a time (sorted, filtered and searched by
//! the API), each product's history, pipeline figures and charts, the consistency verdict of
//! the latest simulation and the past ones, rejected events, dead letters, and a form to
//! start a simulation. Client-side rendering only, so the build is static files for S3.

mod api;
mod auth;
mod components;
mod live;
mod time;

pub use components::App;
use wasm_bindgen::prelude::wasm_bindgen;

#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(App);
}
