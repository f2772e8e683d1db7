//! The browser client: a wasm module that hydrates the pages the server rendered.

/// Called by the hydration script Leptos puts in every page.
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
    // Scripts that build their own DOM inside the page (the code editor) wait for this, so
    // hydration never meets what they built and the page's handlers see their events.
    if let Some(root) = leptos::prelude::document().document_element() {
        let _ = root.set_attribute("data-hydrated", "");
    }
}
