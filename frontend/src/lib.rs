//! The browser client: a wasm module that hydrates the pages the server rendered.

/// Called by the hydration script Leptos puts in every page.
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
