use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::{
    api::{ChangePassword, SignInMethods, UnlinkIdentity, my_identities},
    components::{FieldError, FormError, SignedIn, failure},
    pages::{
        keys::{Keys, KeysState},
        tokens::{Tokens, TokensState},
    },
};

/// The signed-in user's account: sign-in methods, SSH keys, API tokens, change password.
#[component]
pub fn AccountPage() -> impl IntoView {
    // Made before the frame waits for the user (see docs/ARCHITECTURE.md).
    let keys = KeysState::new(None);
    let tokens = TokensState::new(false);
    let unlink = ServerAction::<UnlinkIdentity>::new();
    let methods = Resource::new(move || unlink.version().get(), |_| my_identities());
    view! {
        <Title text="Account"/>
        <SignedIn page=move |me| {
            let change = ServerAction::<ChangePassword>::new();
            let error = failure(change.value());
            let done = move || matches!(change.value().get(), Some(Ok(())));
            view! {
                <div class="page-head"><h1>"Account"</h1></div>
                <dl class="facts">
                    <dt>"Username"</dt><dd>{me.username}</dd>
                    <dt>"Name"</dt><dd>{me.display_name}</dd>
                    <dt>"Role"</dt><dd>{me.role.label()}</dd>
                </dl>
                <SignInMethodsCard methods unlink/>
                <Keys state=keys/>
                <Tokens state=tokens/>
                <ActionForm action=change attr:class="card form" attr:aria-labelledby="pw-title">
                    <h2 id="pw-title">"Change password"</h2>
                    <Show when=done>
                        <p class="alert ok" role="status">"Password changed. Your other sessions have been signed out."</p>
                    </Show>
                    <FormError error/>
                    <label for="current">"Current password"</label>
                    <input id="current" name="current" type="password" autocomplete="current-password" required/>
                    <FieldError error field="current"/>
                    <label for="new">"New password"</label>
                    <input id="new" name="new" type="password" autocomplete="new-password" required minlength="10"/>
                    <FieldError error field="new"/>
                    <label for="confirm">"New password again"</label>
                    <input id="confirm" name="confirm" type="password" autocomplete="new-password" required/>
                    <FieldError error field="confirm"/>
                    <button type="submit" class="primary">"Change password"</button>
                </ActionForm>
            }
        }/>
    }
}

/// The identity providers linked to the account (each may be unlinked, unless it is the last
/// way in), and a button to link each other one: the provider asks who the person is, and
/// comes back here.
#[component]
fn SignInMethodsCard(
    methods: Resource<Result<SignInMethods, crate::AppError>>,
    unlink: ServerAction<UnlinkIdentity>,
) -> impl IntoView {
    let query = use_query_map();
    let error = failure(unlink.value());
    // A link's outcome comes back in the address: a provider's id, or a refusal's name (the
    // words are the page's own).
    let outcome = move || {
        let query = query.read();
        if let Some(why) = query
            .get("failed")
            .and_then(|why| why.parse::<model::account::SignInRefusal>().ok())
        {
            return Some(Err(why.message()));
        }
        query.get("linked").map(|_| Ok(()))
    };
    view! {
        <section class="card" aria-labelledby="methods-title">
            <h2 id="methods-title">"Sign-in methods"</h2>
            {move || outcome().map(|outcome| match outcome {
                Ok(()) => view! { <p class="alert ok" role="status">"Linked. You may now sign in with it."</p> }.into_any(),
                Err(message) => view! { <p class="alert error" role="alert">{format!("Linking failed: {message}")}</p> }.into_any(),
            })}
            <FormError error/>
            <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    let Ok(SignInMethods { linked, linkable }) = methods.await else {
                        return view! { <p class="hint">"Your sign-in methods could not be read."</p> }.into_any();
                    };
                    if linked.is_empty() && linkable.is_empty() {
                        return view! { <p class="hint">"You sign in with your password."</p> }.into_any();
                    }
                    view! {
                        <ul class="plain">
                            {linked.into_iter().map(|l| view! {
                                <li data-provider=l.provider.clone()>
                                    <strong>{l.provider.clone()}</strong>
                                    <span class="hint">{format!(" linked since {}", l.since)}</span>
                                    <ActionForm action=unlink attr:class="inline">
                                        <input type="hidden" name="issuer" value=l.issuer/>
                                        <input type="hidden" name="subject" value=l.subject/>
                                        <button type="submit" class="secondary">"Unlink"</button>
                                    </ActionForm>
                                </li>
                            }).collect_view()}
                        </ul>
                        {linkable.into_iter().map(|(id, name)| view! {
                            // A door of the server's: the browser goes to the provider itself.
                            <form class="inline" method="post" action=format!("/auth/oidc/{id}/link")>
                                <button type="submit" class="secondary">{format!("Link {name}")}</button>
                            </form>
                        }).collect_view()}
                    }
                    .into_any()
                })}
            </Suspense>
        </section>
    }
}
