//! The inventory console: live inventory, pipeline figures, the consistency verdict of the
//! latest simulation, rejected events, and a form to start a simulation. Client-side
//! rendering only, so the build is static files for S3.

mod api;
mod auth;
mod components;
mod live;

pub use components::App;
use wasm_bindgen::prelude::wasm_bindgen;

#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(App);
}
