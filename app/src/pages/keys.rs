use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

use crate::{
    AppError,
    api::{AddSshKey, KeysPage, RemoveSshKey, ssh_keys},
    components::{ErrorPage, FieldError, FormError, SignedIn, failure},
};

/// A keys list's actions and the resource they refresh, made by the page before its frame
/// waits for the user (see docs/ARCHITECTURE.md).
#[derive(Clone, Copy)]
pub struct KeysState {
    user: Option<i64>,
    add: ServerAction<AddSshKey>,
    remove: ServerAction<RemoveSshKey>,
    keys: Resource<Result<KeysPage, AppError>>,
}

impl KeysState {
    /// `user`'s keys (an admin's view), or one's own (None).
    pub fn new(user: Option<i64>) -> Self {
        let add = ServerAction::<AddSshKey>::new();
        let remove = ServerAction::<RemoveSshKey>::new();
        let keys = Resource::new(
            move || (add.version().get(), remove.version().get()),
            move |_| ssh_keys(user),
        );
        Self {
            user,
            add,
            remove,
            keys,
        }
    }
}

/// Admin: another user's keys, to see and revoke.
#[component]
pub fn UserKeysPage() -> impl IntoView {
    let params = use_params_map();
    let user = params
        .read_untracked()
        .get("id")
        .and_then(|id| id.parse::<i64>().ok());
    let state = KeysState::new(user);
    view! {
        <leptos_meta::Title text="SSH keys"/>
        <SignedIn admin=true page=move |_| view! { <Keys state/> }/>
    }
}

/// One's SSH keys (on the account page), or a user's for an admin: the list, a form to add
/// one, how to connect.
#[component]
pub fn Keys(state: KeysState) -> impl IntoView {
    let KeysState {
        user,
        add,
        remove,
        keys,
    } = state;
    let add_error = failure(add.value());
    let remove_error = failure(remove.value());
    view! {
        <section class="card" aria-labelledby="keys-title">
            <Suspense fallback=|| view! { <p class="loading">"Loading keys…"</p> }>
                {move || Suspend::new(async move {
                    match keys.await {
                        Ok(page) => view! { <KeyList page own=user.is_none() remove/> }.into_any(),
                        Err(error) => view! { <ErrorPage error/> }.into_any(),
                    }
                })}
            </Suspense>
            <FormError error=remove_error/>
            {user.is_none().then(|| view! {
                <ActionForm action=add attr:class="form" attr:aria-labelledby="add-key-title">
                    <h3 id="add-key-title">"Add a key"</h3>
                    <FormError error=add_error/>
                    <label for="key-name">"Name " <span class="hint">"(optional: the key's comment)"</span></label>
                    <input id="key-name" name="name" type="text" maxlength="100" autocomplete="off"/>
                    <FieldError error=add_error field="name"/>
                    <label for="public-key">"Public key"</label>
                    <textarea id="public-key" name="public_key" rows="3" required spellcheck="false"
                        placeholder="ssh-ed25519 AAAA… you@laptop"></textarea>
                    <p class="hint">"The contents of ~/.ssh/id_ed25519.pub (make one with ssh-keygen -t ed25519)."</p>
                    <FieldError error=add_error field="public_key"/>
                    <button type="submit" class="primary">"Add key"</button>
                </ActionForm>
            })}
        </section>
    }
}

#[component]
fn KeyList(page: KeysPage, own: bool, remove: ServerAction<RemoveSshKey>) -> impl IntoView {
    let title = if own {
        "SSH keys".to_owned()
    } else {
        format!("SSH keys of {}", page.owner)
    };
    view! {
        <h2 id="keys-title">{title}</h2>
        {match page.ssh_port {
            Some(port) => view! {
                <p class="hint">
                    "Connect with " <code>{format!("ssh -p {port} <site>@<this host>")}</code>
                    " — or " <code>{format!("ssh -p {port} {}@<this host>", page.owner)}</code> " to list your sites. "
                    "The server's key: " {page.host_fingerprints.iter().map(|f| view! { <code class="fingerprint">{f.clone()}</code> " " }).collect_view()}
                </p>
            }.into_any(),
            None => view! { <p class="hint">"SSH is turned off on this server."</p> }.into_any(),
        }}
        {if page.keys.is_empty() {
            view! { <p>"No keys yet."</p> }.into_any()
        } else {
            view! {
                <table class="list keys">
                    <thead><tr><th>"Name"</th><th>"Type"</th><th>"Fingerprint"</th><th>"Added"</th><th>"Last used"</th><th></th></tr></thead>
                    <tbody>
                        {page.keys.into_iter().map(|key| {
                            let (marker, label) = (key.name.clone(), format!("Remove key {}", key.name));
                            view! {
                            <tr data-key=marker>
                                <td>{key.name.clone()}</td>
                                <td>{key.algorithm}</td>
                                <td><code class="fingerprint">{key.fingerprint}</code></td>
                                <td>{key.added}</td>
                                <td>{key.last_used.unwrap_or_else(|| "never".to_owned())}</td>
                                <td>
                                    <ActionForm action=remove attr:class="inline">
                                        <input type="hidden" name="id" value=key.id.to_string()/>
                                        <button type="submit" class="link" aria-label=label>"Remove"</button>
                                    </ActionForm>
                                </td>
                            </tr>
                            }
                        }).collect_view()}
                    </tbody>
                </table>
            }.into_any()
        }}
    }
}
