use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::SignedIn;

/// "My sites": the member's sites. Sites arrive with the sites issue; until then the page says
/// plainly that there are none.
#[component]
pub fn DashboardPage() -> impl IntoView {
    view! {
        <Title text="My sites"/>
        <SignedIn page=|me| view! {
            <div class="page-head">
                <h1>"My sites"</h1>
            </div>
            <section class="empty-state" aria-labelledby="no-sites">
                <h2 id="no-sites">"No sites yet"</h2>
                <p>
                    "Welcome, " {me.display_name} ". You are not a member of any site yet. "
                    "Sites you create or are added to will be listed here with their status and address."
                </p>
            </section>
        }/>
    }
}
