use leptos::prelude::*;
use leptos_meta::Title;

use crate::{
    api::{
        DatabaseServersPage, RestartDatabaseServer, RotateDatabaseSuperuser, ServerRow, ServerState,
        database_servers,
    },
    components::{ErrorPage, FormError, SignedIn, failure, state_badge},
};

/// Admin: the database servers — how each is, its version, data and connections — and every
/// site's database on it with its size (those past the warning threshold marked); restarting
/// a server, giving its superuser a new password.
#[component]
pub fn AdminDatabasesPage() -> impl IntoView {
    let restart = ServerAction::<RestartDatabaseServer>::new();
    let rotate = ServerAction::<RotateDatabaseSuperuser>::new();
    // Made before the frame waits for the user (see docs/ARCHITECTURE.md).
    let page = Resource::new(
        move || (restart.version().get(), rotate.version().get()),
        |_| database_servers(),
    );
    view! {
        <Title text="Databases"/>
        <SignedIn admin=true page=move |_| view! {
            <div class="page-head"><h1>"Database servers"</h1></div>
            <Transition fallback=|| view! { <p class="loading">"Loading the servers…"</p> }>
                {move || Suspend::new(async move {
                    match page.await {
                        Ok(page) => view! { <Servers page restart rotate/> }.into_any(),
                        Err(error) => view! { <ErrorPage error/> }.into_any(),
                    }
                })}
            </Transition>
        }/>
    }
}

#[component]
fn Servers(
    page: DatabaseServersPage,
    restart: ServerAction<RestartDatabaseServer>,
    rotate: ServerAction<RotateDatabaseSuperuser>,
) -> impl IntoView {
    let warning = page.warning;
    view! {
        <p class="hint">{format!(
            "One server of each kind holds every site's database of that kind. A site's database past {warning} is marked."
        )}</p>
        <FormError error=failure(restart.value())/>
        <FormError error=failure(rotate.value())/>
        {page.servers.into_iter().map(|server| view! { <Server server warning=warning.clone() restart rotate/> }).collect_view()}
    }
}

#[component]
fn Server(
    server: ServerRow,
    warning: String,
    restart: ServerAction<RestartDatabaseServer>,
    rotate: ServerAction<RotateDatabaseSuperuser>,
) -> impl IntoView {
    let kind = server.kind;
    let (labelled_by, heading) = (
        format!("server-{}", kind.as_str()),
        format!("server-{}", kind.as_str()),
    );
    let dash = || "—".to_owned();
    let reason = match &server.state {
        ServerState::Down(Some(reason)) => Some(reason.clone()),
        _ => None,
    };
    let badge = match server.state {
        ServerState::Up => "badge ok",
        ServerState::Down(_) => "badge off",
        _ => "badge busy",
    };
    // Director restarts and changes the password only of a server of its own.
    let started =
        server.external.is_none() && !matches!(server.state, ServerState::NotStarted | ServerState::Unknown);
    let whose = match &server.external {
        Some(address) => format!(
            "The operator's own server at {address}: Director makes the sites' databases and roles on it."
        ),
        None => "Director's own server, on the sites' network only.".to_owned(),
    };
    view! {
        <section class="card database-server" aria-labelledby=labelled_by data-kind=kind.as_str()>
            <div class="page-head">
                <h2 id=heading>{kind.label()}</h2>
                <span class=badge>{server.state.label()}</span>
            </div>
            {reason.map(|reason| view! { <p class="alert error" role="alert">{reason}</p> })}
            <p class="hint">{whose}</p>
            {(!server.open_databases.is_empty()).then(|| view! {
                <p class="alert error" role="alert">{format!(
                    "Every site's role may connect to {} on this server (PUBLIC has CONNECT on them): run REVOKE CONNECT ON DATABASE … FROM PUBLIC for each, or let only a role into its own database in its pg_hba.conf (host sameuser all all scram-sha-256).",
                    server.open_databases.join(", ")
                )}</p>
            })}
            <dl class="facts">
                <dt>"Version"</dt><dd>{server.version.unwrap_or_else(dash)}</dd>
                <dt>"Data"</dt><dd>{server.data_size.unwrap_or_else(dash)}</dd>
                <dt>"Connections"</dt><dd>{server.connections.map_or_else(dash, |n| n.to_string())}</dd>
            </dl>
            {started.then(|| view! {
                <div class="controls">
                    <ActionForm action=restart attr:class="inline">
                        <input type="hidden" name="kind" value=kind.as_str()/>
                        <button type="submit" class="secondary">"Restart"</button>
                    </ActionForm>
                    <ActionForm action=rotate attr:class="inline">
                        <input type="hidden" name="kind" value=kind.as_str()/>
                        <button type="submit" class="secondary">"New superuser password"</button>
                    </ActionForm>
                    <span class="hint">"Either restarts the server: its sites reconnect within seconds."</span>
                </div>
            })}
            {if server.databases.is_empty() {
                view! { <p class="empty-state">"No site has a database here."</p> }.into_any()
            } else {
                view! {
                    <table class="list">
                        <thead><tr><th>"Site"</th><th>"State"</th><th>"Size"</th></tr></thead>
                        <tbody>
                            {server.databases.into_iter().map(|d| {
                                let over = d.over.then(|| view! {
                                    <span class="badge warning" title=format!("past {warning}")>"large"</span>
                                });
                                let name = d.site.clone();
                                view! {
                                    <tr data-site=name class:over=d.over>
                                        <td><a href=format!("/sites/{}/database", d.site_id)>{d.site}</a></td>
                                        <td>{state_badge(d.state)}</td>
                                        <td>{d.size.unwrap_or_else(dash)}" "{over}</td>
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any()
            }}
        </section>
    }
}
