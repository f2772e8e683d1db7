//! Personal access tokens: one's own on the account page (make, see once, revoke), everyone's
//! for admins.

use leptos::prelude::*;

use crate::{
    AppError,
    api::{CreateApiToken, RevokeApiToken, TokensPage, api_tokens},
    components::{ErrorPage, FieldError, FormError, SignedIn, failure},
};

/// A tokens list's actions and the resource they refresh, made by the page before its frame
/// waits for the user (see docs/ARCHITECTURE.md).
#[derive(Clone, Copy)]
pub struct TokensState {
    everyone: bool,
    create: ServerAction<CreateApiToken>,
    revoke: ServerAction<RevokeApiToken>,
    tokens: Resource<Result<TokensPage, AppError>>,
}

impl TokensState {
    /// Everyone's tokens (an admin's view), or one's own.
    pub fn new(everyone: bool) -> Self {
        let create = ServerAction::<CreateApiToken>::new();
        let revoke = ServerAction::<RevokeApiToken>::new();
        let tokens = Resource::new(
            move || (create.version().get(), revoke.version().get()),
            move |_| api_tokens(everyone),
        );
        Self {
            everyone,
            create,
            revoke,
            tokens,
        }
    }
}

/// Admin: every account's tokens, to see and revoke.
#[component]
pub fn AdminTokensPage() -> impl IntoView {
    let state = TokensState::new(true);
    view! {
        <leptos_meta::Title text="API tokens"/>
        <SignedIn admin=true page=move |_| view! {
            <div class="page-head"><h1>"API tokens"</h1></div>
            <Tokens state/>
        }/>
    }
}

/// Tokens (one's own on the account page, with the form to make one), each revocable.
#[component]
pub fn Tokens(state: TokensState) -> impl IntoView {
    let TokensState {
        everyone,
        create,
        revoke,
        tokens,
    } = state;
    let create_error = failure(create.value());
    let revoke_error = failure(revoke.value());
    let made = move || create.value().get().and_then(Result::ok);
    view! {
        <section class="card" aria-labelledby="tokens-title">
            <h2 id="tokens-title">{if everyone { "Everyone's tokens" } else { "API tokens" }}</h2>
            <p class="hint">
                "A token lets a script or the " <code>"director"</code> " command line act as you through "
                <a href="/api/docs" rel="external">"the REST API"</a> ", as far as its scopes say. Send it as "
                <code>"Authorization: Bearer …"</code> "."
            </p>
            {move || made().map(|made| view! {
                <div class="alert ok new-token" role="status">
                    <p>"Token “" {made.name} "” made. Copy it now: it is shown only this once."</p>
                    <code class="secret" data-secret="token">{made.secret}</code>
                </div>
            })}
            <Suspense fallback=|| view! { <p class="loading">"Loading tokens…"</p> }>
                {move || Suspend::new(async move {
                    match tokens.await {
                        Ok(page) => view! { <TokenList page everyone revoke/> }.into_any(),
                        Err(error) => view! { <ErrorPage error/> }.into_any(),
                    }
                })}
            </Suspense>
            <FormError error=revoke_error/>
            {(!everyone).then(|| view! {
                <ActionForm action=create attr:class="form" attr:aria-labelledby="new-token-title">
                    <h3 id="new-token-title">"Make a token"</h3>
                    <FormError error=create_error/>
                    <label for="token-name">"What it is for"</label>
                    <input id="token-name" name="name" type="text" maxlength="100" required autocomplete="off"
                        placeholder="deploy script"/>
                    <FieldError error=create_error field="name"/>
                    <label for="token-days">"Days it lives"</label>
                    <input id="token-days" name="days" type="number" min="1" max="365" value="90"/>
                    <FieldError error=create_error field="days"/>
                    <fieldset>
                        <legend>"Scopes"</legend>
                        <label><input type="radio" name="access" value="read" checked/>" read: look only"</label>
                        <label><input type="radio" name="access" value="write"/>" read and write: change sites too"</label>
                        <Suspense fallback=|| ()>
                            {move || Suspend::new(async move {
                                tokens.await.ok().filter(|page| page.admin).map(|_| view! {
                                    <label><input type="checkbox" name="admin" value="on"/>" admin: your admin powers too"</label>
                                })
                            })}
                        </Suspense>
                    </fieldset>
                    <FieldError error=create_error field="access"/>
                    <FieldError error=create_error field="admin"/>
                    <label for="token-sites">"Only these sites " <span class="hint">"(optional: names, separated by commas)"</span></label>
                    <input id="token-sites" name="sites" type="text" autocomplete="off" list="token-site-names"/>
                    <Suspense fallback=|| ()>
                        {move || Suspend::new(async move {
                            let names = tokens.await.map(|page| page.sites).unwrap_or_default();
                            view! {
                                <datalist id="token-site-names">
                                    {names.into_iter().map(|name| view! { <option value=name/> }).collect_view()}
                                </datalist>
                            }
                        })}
                    </Suspense>
                    <FieldError error=create_error field="sites"/>
                    <button type="submit" class="primary">"Make token"</button>
                </ActionForm>
            })}
        </section>
    }
}

#[component]
fn TokenList(page: TokensPage, everyone: bool, revoke: ServerAction<RevokeApiToken>) -> impl IntoView {
    if page.tokens.is_empty() {
        return view! { <p>"No tokens yet."</p> }.into_any();
    }
    view! {
        <table class="list tokens">
            <thead><tr>
                {everyone.then(|| view! { <th>"User"</th> })}
                <th>"Name"</th><th>"Token"</th><th>"Scopes"</th><th>"Sites"</th><th>"Expires"</th><th>"Last used"</th><th></th>
            </tr></thead>
            <tbody>
                {page.tokens.into_iter().map(|token| {
                    let label = format!("Revoke token {}", token.name);
                    let sites = if token.sites.is_empty() { "all".to_owned() } else { token.sites.join(", ") };
                    view! {
                        <tr data-token=token.name.clone()>
                            {everyone.then(|| view! { <td>{token.username.clone()}</td> })}
                            <td>{token.name.clone()}</td>
                            <td><code>{format!("{}…", token.hint)}</code></td>
                            <td>{token.scopes}</td>
                            <td>{sites}</td>
                            <td>{token.expires}</td>
                            <td>{token.last_used.unwrap_or_else(|| "never".to_owned())}</td>
                            <td>
                                {if token.live {
                                    view! {
                                        <ActionForm action=revoke attr:class="inline">
                                            <input type="hidden" name="id" value=token.id.to_string()/>
                                            <button type="submit" class="link danger" aria-label=label>"Revoke"</button>
                                        </ActionForm>
                                    }.into_any()
                                } else {
                                    view! { <span class="badge">{token.ended}</span> }.into_any()
                                }}
                            </td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}
