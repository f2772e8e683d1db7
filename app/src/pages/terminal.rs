use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use crate::{
    AppError,
    api::{Availability, SiteState, site_detail},
    components::{ErrorPage, SignedIn, SiteTabs},
};

/// A site's terminal: a shell in the site's own image with its files, in the browser.
/// `/terminal.js` (on every page) builds xterm.js into the panel and connects it.
#[component]
pub fn TerminalPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").and_then(|id| id.parse::<i32>().ok());
    // The page's own check: a non-member gets the 404 page, not an empty terminal. Made before
    // the frame waits for the user (a resource made inside its Suspense can hydrate against a
    // fallback).
    let detail = Resource::new(id, |id| async move {
        match id {
            Some(id) => site_detail(id).await,
            None => Err(AppError::NotFound),
        }
    });
    view! {
        <Title text="Terminal"/>
        <SignedIn page=move |_| view! { <TerminalView detail/> }/>
    }
}

#[component]
fn TerminalView(detail: Resource<Result<crate::api::SitePageData, AppError>>) -> impl IntoView {
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match detail.await {
                    Ok(site) => {
                        let id = site.card.id;
                        let closed = match (site.availability, site.card.state) {
                            (Availability::Disabled, _) => Some("An administrator disabled this site: its terminal is closed."),
                            (_, SiteState::Provisioning) => Some("The site is being created: its terminal opens when that is done."),
                            (_, SiteState::Deleting) => Some("The site is being deleted."),
                            _ => None,
                        };
                        view! {
                            <div class="page-head"><h1>{site.card.name.clone()}</h1></div>
                            <SiteTabs id current="terminal"/>
                            {match closed {
                                Some(reason) => view! { <p class="alert error">{reason}</p> }.into_any(),
                                None => view! {
                                    <section class="terminal" data-terminal-site=id.to_string() aria-label="Terminal"></section>
                                    <p class="hint">"A shell in the site's own image, in its directory /site, as the site's user. Files you make in public/ are on the site at once."</p>
                                }.into_any(),
                            }}
                        }
                        .into_any()
                    }
                    Err(error) => view! { <ErrorPage error/> }.into_any(),
                }
            })}
        </Suspense>
    }
}
