use leptos::prelude::*;
use leptos_meta::Title;

use model::account::Role;

use crate::{
    AppError,
    api::{
        CreateUser, DismissPending, LinkPending, PendingRow, SetSiteQuota, SetUserActive, SetUserRole,
        UserRow, default_site_quota, list_users, pending_identities,
    },
    components::{ErrorPage, FieldError, FormError, SignedIn, failure},
};

/// Admin: every account, and a form to create one.
#[component]
pub fn AdminUsersPage() -> impl IntoView {
    // Made before the frame waits for the user (see docs/ARCHITECTURE.md).
    let create = ServerAction::<CreateUser>::new();
    let set_active = ServerAction::<SetUserActive>::new();
    let set_role = ServerAction::<SetUserRole>::new();
    let set_quota = ServerAction::<SetSiteQuota>::new();
    let users = Resource::new(
        move || {
            (
                create.version().get(),
                set_active.version().get(),
                set_role.version().get(),
                set_quota.version().get(),
            )
        },
        |_| list_users(),
    );
    let default_quota = Resource::new(|| (), |()| default_site_quota());
    let link = ServerAction::<LinkPending>::new();
    let dismiss = ServerAction::<DismissPending>::new();
    let pending = Resource::new(
        move || (link.version().get(), dismiss.version().get()),
        |_| pending_identities(),
    );
    let actions = RowActions {
        set_active,
        set_role,
        set_quota,
    };
    view! {
        <Title text="Users"/>
        <SignedIn admin=true page=move |_| view! {
            <Waiting pending link dismiss/>
            <UsersAdmin create actions users default_quota/>
        }/>
    }
}

/// What each user's row can do.
#[derive(Clone, Copy)]
struct RowActions {
    set_active: ServerAction<SetUserActive>,
    set_role: ServerAction<SetUserRole>,
    set_quota: ServerAction<SetSiteQuota>,
}

#[component]
fn UsersAdmin(
    create: ServerAction<CreateUser>,
    actions: RowActions,
    users: Resource<Result<Vec<UserRow>, AppError>>,
    default_quota: Resource<Result<i64, AppError>>,
) -> impl IntoView {
    let create_error = failure(create.value());
    let row_error = Signal::derive(move || {
        failure(actions.set_active.value())
            .get()
            .or_else(|| failure(actions.set_role.value()).get())
            .or_else(|| failure(actions.set_quota.value()).get())
    });
    let created = move || create.value().get().and_then(Result::ok);
    view! {
        <div class="page-head"><h1>"Users"</h1></div>
        <FormError error=row_error/>
        <Suspense fallback=|| view! { <p class="loading">"Loading users…"</p> }>
            {move || Suspend::new(async move {
                let default_quota = default_quota.await.unwrap_or_default();
                match users.await {
                    Ok(rows) => view! { <UserTable rows actions default_quota/> }.into_any(),
                    Err(error) => view! { <ErrorPage error/> }.into_any(),
                }
            })}
        </Suspense>
        <ActionForm action=create attr:class="card form" attr:aria-labelledby="new-user">
            <h2 id="new-user">"Create a user"</h2>
            {move || created().map(|name| view! { <p class="alert ok" role="status">"Created " {name} "."</p> })}
            <FormError error=create_error/>
            <label for="new-username">"Username"</label>
            <input id="new-username" name="username" type="text" required maxlength="32" autocomplete="off"/>
            <FieldError error=create_error field="username"/>
            <label for="new-display-name">"Display name " <span class="hint">"(optional)"</span></label>
            <input id="new-display-name" name="display_name" type="text" maxlength="100"/>
            <FieldError error=create_error field="display_name"/>
            <label for="new-email">"E-mail " <span class="hint">"(optional)"</span></label>
            <input id="new-email" name="email" type="email" maxlength="254"/>
            <FieldError error=create_error field="email"/>
            <label for="new-password">"Initial password"</label>
            <input id="new-password" name="password" type="password" required minlength="10" autocomplete="new-password"/>
            <FieldError error=create_error field="password"/>
            <label for="new-role">"Role"</label>
            <select id="new-role" name="role">
                {Role::ALL.iter().map(|role| view! { <option value=role.as_str()>{role.label()}</option> }).collect_view()}
            </select>
            <button type="submit" class="primary">"Create user"</button>
        </ActionForm>
    }
}

#[component]
fn UserTable(rows: Vec<UserRow>, actions: RowActions, default_quota: i64) -> impl IntoView {
    let RowActions {
        set_active,
        set_role,
        set_quota,
    } = actions;
    view! {
        <table class="list">
            <caption class="visually-hidden">"All users"</caption>
            <thead>
                <tr>
                    <th scope="col">"User"</th>
                    <th scope="col">"E-mail"</th>
                    <th scope="col">"Role"</th>
                    <th scope="col">"Status"</th>
                    <th scope="col">"Sites at most"</th>
                    <th scope="col">"Created"</th>
                    <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                </tr>
            </thead>
            <tbody>
                {rows
                    .into_iter()
                    .map(|u| {
                        let id = u.id;
                        let quota_label = format!("Most sites for {}", u.username);
                        let role_label = format!("Role of {}", u.username);
                        let quota = u.site_quota.map(|q| q.to_string()).unwrap_or_default();
                        view! {
                            <tr data-username=u.username.clone()>
                                <td><strong>{u.display_name.clone()}</strong><br/><span class="hint">{u.username.clone()}</span></td>
                                <td>{u.email.clone()}</td>
                                <td>
                                    <ActionForm action=set_role attr:class="inline">
                                        <input type="hidden" name="id" value=id.to_string()/>
                                        <select name="role" aria-label=role_label>
                                            {Role::ALL.iter().map(|role| view! {
                                                <option value=role.as_str() selected=*role == u.role>{role.label()}</option>
                                            }).collect_view()}
                                        </select>
                                        <button type="submit" class="secondary">"Set"</button>
                                    </ActionForm>
                                </td>
                                <td>
                                    <span class=if u.active { "badge ok" } else { "badge off" }>
                                        {if u.active { "Active" } else { "Deactivated" }}
                                    </span>
                                </td>
                                <td>
                                    {if u.role == Role::Admin {
                                        view! { <span class="hint">"no limit"</span> }.into_any()
                                    } else {
                                        view! {
                                            <ActionForm action=set_quota attr:class="inline quota">
                                                <input type="hidden" name="id" value=id.to_string()/>
                                                <input
                                                    name="quota"
                                                    type="number"
                                                    min="0"
                                                    max="10000"
                                                    aria-label=quota_label
                                                    placeholder=format!("{default_quota} (default)")
                                                    value=quota
                                                />
                                                <button type="submit" class="secondary">"Set"</button>
                                            </ActionForm>
                                        }
                                            .into_any()
                                    }}
                                </td>
                                <td>{u.created.clone()}</td>
                                <td class="actions">
                                    <a class="button" href=format!("/admin/users/{id}/keys")>"SSH keys"</a>
                                    <a class="button" href=format!("/admin/sites?member={}", u.username)>"Sites"</a>
                                    <ActionForm action=set_active attr:class="inline">
                                        <input type="hidden" name="id" value=id.to_string()/>
                                        <input type="hidden" name="active" value=(!u.active).to_string()/>
                                        <button type="submit" class=if u.active { "danger" } else { "secondary" }>
                                            {if u.active { "Deactivate" } else { "Activate" }}
                                        </button>
                                    </ActionForm>
                                </td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
}

/// People who signed in through a provider with the email address of an existing account:
/// never linked to it silently, they wait here for an admin (or for the account's owner, who
/// may link them from their account page).
#[component]
fn Waiting(
    pending: Resource<Result<Vec<PendingRow>, AppError>>,
    link: ServerAction<LinkPending>,
    dismiss: ServerAction<DismissPending>,
) -> impl IntoView {
    let error = Signal::derive(move || {
        failure(link.value())
            .get()
            .or_else(|| failure(dismiss.value()).get())
    });
    view! {
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                let rows = pending.await.unwrap_or_default();
                (!rows.is_empty()).then(|| view! {
                    <section class="card" aria-labelledby="waiting-title">
                        <h2 id="waiting-title">"Waiting to be linked"</h2>
                        <p class="hint">
                            "They signed in through an identity provider with the email address of an existing account. "
                            "Link them only if they are that account's owner: the provider's word on an address is all Director has."
                        </p>
                        <FormError error/>
                        <table class="list">
                            <thead>
                                <tr>
                                    <th scope="col">"Person at the provider"</th>
                                    <th scope="col">"E-mail"</th>
                                    <th scope="col">"Account"</th>
                                    <th scope="col">"Last try (UTC)"</th>
                                    <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                                </tr>
                            </thead>
                            <tbody>
                                {rows.into_iter().map(|p| {
                                    let (issuer, subject) = (p.issuer.clone(), p.subject.clone());
                                    view! {
                                    <tr data-email=p.email.clone()>
                                        <td>{p.name.clone()}<br/><span class="hint">{p.provider.clone()}</span></td>
                                        <td>{p.email.clone()}</td>
                                        <td>{p.username.clone()}</td>
                                        <td>{p.seen.clone()}</td>
                                        <td class="actions">
                                            <ActionForm action=link attr:class="inline">
                                                <input type="hidden" name="issuer" value=p.issuer.clone()/>
                                                <input type="hidden" name="subject" value=p.subject.clone()/>
                                                <input type="hidden" name="user_id" value=p.user_id.to_string()/>
                                                <button type="submit" class="primary">{format!("Link to {}", p.username)}</button>
                                            </ActionForm>
                                            <ActionForm action=dismiss attr:class="inline">
                                                <input type="hidden" name="issuer" value=issuer/>
                                                <input type="hidden" name="subject" value=subject/>
                                                <button type="submit" class="secondary">"Dismiss"</button>
                                            </ActionForm>
                                        </td>
                                    </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    </section>
                })
            })}
        </Suspense>
    }
}
