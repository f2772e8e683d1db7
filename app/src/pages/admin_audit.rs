use leptos::prelude::*;
use leptos_meta::Title;

use crate::{
    api::audit_log,
    components::{ErrorPage, SignedIn},
};

/// Admin: who changed what, newest first.
#[component]
pub fn AdminAuditPage() -> impl IntoView {
    // Made before the frame waits for the user (see docs/ARCHITECTURE.md).
    let entries = Resource::new(|| (), |()| audit_log());
    view! {
        <Title text="Audit log"/>
        <SignedIn admin=true page=move |_| {
            view! {
                <div class="page-head"><h1>"Audit log"</h1></div>
                <Suspense fallback=|| view! { <p class="loading">"Loading the log…"</p> }>
                    {move || Suspend::new(async move {
                        match entries.await {
                            Ok(rows) => view! {
                                <table class="list audit">
                                    <thead><tr><th>"When (UTC)"</th><th>"Who"</th><th>"What"</th><th>"On"</th><th>"Details"</th></tr></thead>
                                    <tbody>
                                        {rows.into_iter().map(|r| view! {
                                            <tr>
                                                <td>{r.at}</td><td>{r.actor}</td><td><code>{r.action}</code></td>
                                                <td>{r.target}</td><td>{r.details}</td>
                                            </tr>
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            }.into_any(),
                            Err(error) => view! { <ErrorPage error/> }.into_any(),
                        }
                    })}
                </Suspense>
            }
        }/>
    }
}
