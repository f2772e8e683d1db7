use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::{hooks::use_query_map, params::ParamsMap};

use crate::{
    AppError,
    api::{SitesPage, admin_sites},
    components::{ErrorPage, SignedIn, state_badge},
};

/// Admin: every site (or one user's, `?member=`), fifty to a page (`?page=`).
#[component]
pub fn AdminSitesPage() -> impl IntoView {
    // Made before the frame waits for the user (see docs/ARCHITECTURE.md).
    let query = use_query_map();
    let page = move || {
        query
            .read()
            .get("page")
            .and_then(|p| p.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let sites = Resource::new(
        move || (member(query), page()),
        |(member, page)| admin_sites(member, page),
    );
    view! {
        <Title text="All sites"/>
        <SignedIn admin=true page=move |_| view! { <SitesAdmin query sites/> }/>
    }
}

/// The `?member=` asked for, if any.
fn member(query: Memo<ParamsMap>) -> Option<String> {
    query.read().get("member").filter(|m| !m.trim().is_empty())
}

#[component]
fn SitesAdmin(query: Memo<ParamsMap>, sites: Resource<Result<SitesPage, AppError>>) -> impl IntoView {
    let member = move || member(query);
    view! {
        <div class="page-head"><h1>"All sites"</h1></div>
        <form method="get" action="/admin/sites" class="inline-form" role="search">
            <label for="member">"Sites of user"</label>
            <input id="member" name="member" type="search" value=member().unwrap_or_default() placeholder="username"/>
            <button type="submit" class="secondary">"Show"</button>
            {member().is_some().then(|| view! { <a href="/admin/sites">"Every site"</a> })}
        </form>
        <Suspense fallback=|| view! { <p class="loading">"Loading sites…"</p> }>
            {move || Suspend::new(async move {
                match sites.await {
                    Ok(list) => view! { <SiteTable list member=member()/> }.into_any(),
                    Err(error) => view! { <ErrorPage error/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn SiteTable(list: SitesPage, member: Option<String>) -> impl IntoView {
    let pages = (list.total + list.per_page - 1) / list.per_page;
    let link = move |page: i64| match &member {
        Some(m) => format!("/admin/sites?member={}&page={page}", urlencoding_light(m)),
        None => format!("/admin/sites?page={page}"),
    };
    let (previous, next) = (link(list.page - 1), link(list.page + 1));
    view! {
        <p class="hint">{format!("{} site(s)", list.total)}</p>
        <table class="list">
            <thead><tr><th>"Site"</th><th>"Type"</th><th>"State"</th><th>"Availability"</th><th>"Members"</th><th>"Address"</th></tr></thead>
            <tbody>
                {list.sites.into_iter().map(|row| view! {
                    <tr data-site=row.card.name.clone()>
                        <td><a href=format!("/sites/{}", row.card.id)>{row.card.name.clone()}</a></td>
                        <td>{row.card.kind.as_str()}</td>
                        <td>
                            {state_badge(row.card.state)}
                            {(!row.problem.is_empty()).then(|| view! {
                                <p class="hint problem">"Could not be corrected: " {row.problem.clone()}</p>
                            })}
                        </td>
                        <td>{row.availability.as_str()}</td>
                        <td>{row.members.iter().map(|m| view! {
                            <a class="member" href=format!("/admin/sites?member={m}")>{m.clone()}</a> " "
                        }).collect_view()}</td>
                        <td><a href=row.card.url.clone() rel="noopener">{row.card.url.clone()}</a></td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
        <nav class="pager" aria-label="Pages">
            {(list.page > 0).then(|| view! { <a href=previous rel="prev">"← Previous"</a> })}
            <span>{format!("Page {} of {}", list.page + 1, pages.max(1))}</span>
            {(list.page + 1 < pages).then(|| view! { <a href=next rel="next">"Next →"</a> })}
        </nav>
    }
}

/// Usernames are letters, digits and a few marks; anything else is escaped for the query.
fn urlencoding_light(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
