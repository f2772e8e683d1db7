use leptos::prelude::*;
use leptos_meta::Title;

use crate::{
    api::{SiteCard, my_sites},
    components::{ErrorPage, SignedIn, state_badge, ticker},
};

/// "My sites": the member's sites with their state and address.
#[component]
pub fn DashboardPage() -> impl IntoView {
    // Made before the frame waits for the user (see docs/ARCHITECTURE.md: resources made
    // inside a Suspense's children can hydrate against a fallback). Once hydrated, the states
    // follow the sites every five seconds.
    let tick = ticker(std::time::Duration::from_secs(5), || true);
    let sites = Resource::new(move || tick.get(), |_| my_sites());
    view! {
        <Title text="My sites"/>
        <SignedIn page=move |me| {
            view! {
                <div class="page-head">
                    <h1>"My sites"</h1>
                    <a class="button primary" href="/sites/new">"New site"</a>
                </div>
                <Transition fallback=|| view! { <p class="loading">"Loading sites…"</p> }>
                    {move || {
                        let welcome = me.display_name.clone();
                        Suspend::new(async move {
                            match sites.await {
                                Ok(list) if list.is_empty() => view! {
                                    <section class="empty-state" aria-labelledby="no-sites">
                                        <h2 id="no-sites">"No sites yet"</h2>
                                        <p>
                                            "Welcome, " {welcome} ". You are not a member of any site yet. "
                                            <a href="/sites/new">"Create one"</a>
                                            " — it is live within seconds."
                                        </p>
                                    </section>
                                }.into_any(),
                                Ok(list) => view! { <SiteList sites=list/> }.into_any(),
                                Err(error) => view! { <ErrorPage error/> }.into_any(),
                            }
                        })
                    }}
                </Transition>
            }
        }/>
    }
}

#[component]
fn SiteList(sites: Vec<SiteCard>) -> impl IntoView {
    view! {
        <ul class="site-list">
            {sites
                .into_iter()
                .map(|site| view! {
                    <li class="card site-card" data-site=site.name.clone()>
                        <div>
                            <a class="site-name" href=format!("/sites/{}", site.id)>{site.name.clone()}</a>
                            " " <span class="hint">{site.kind.as_str()}</span>
                            <p class="hint">{site.description.clone()}</p>
                        </div>
                        <div class="site-meta">
                            {state_badge(site.state)}
                            <a href=site.url.clone() rel="noopener">{site.url.clone()}</a>
                        </div>
                    </li>
                })
                .collect_view()}
        </ul>
    }
}
