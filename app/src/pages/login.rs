use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::{
    api::{Login, SignInChoices, sign_in_options},
    components::{FieldError, FormError, failure},
};

/// The sign-in page: the password form (unless an admin turned passwords off) and a button for
/// each identity provider. The form works as a plain form post; once hydrated it also offers to
/// show the password as typed.
#[component]
pub fn LoginPage() -> impl IntoView {
    let query = use_query_map();
    let next = move || query.read().get("next").unwrap_or_default();
    // A sign-in through a provider that failed comes back here with the reason's name (the
    // words are this page's own).
    let failed = move || {
        let query = query.read();
        let why = query
            .get("failed")?
            .parse::<model::account::SignInRefusal>()
            .ok()?;
        Some((query.get("provider").unwrap_or_default(), why))
    };
    // Signed out of a session a provider's sign-in made: the provider's own session lives on,
    // so the page offers to end it too.
    let signed_out = move || query.read().get("signed_out");
    let options = Resource::new(|| (), |()| sign_in_options());
    view! {
        <Title text="Sign in"/>
        <main id="main" class="auth">
            <h1 class="brand-big">"Director"</h1>
            <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    let SignInChoices { providers, passwords } = options.await.unwrap_or(SignInChoices {
                        providers: Vec::new(),
                        passwords: true,
                    });
                    let failure = failed().map(|(id, why)| {
                        let name = providers
                            .iter()
                            .find(|p| p.id == id)
                            .map_or_else(|| "the identity provider".to_owned(), |p| p.name.clone());
                        view! {
                            <p class="alert error card" role="alert">
                                {format!("Signing in with {name} failed: {}", why.message())}
                            </p>
                        }
                    });
                    let farewell = signed_out().and_then(|id| {
                        let provider = providers.iter().find(|p| p.id == id)?;
                        Some(view! {
                            <p class="alert ok card" role="status">
                                "You are signed out of Director. You are still signed in at " {provider.name.clone()} ". "
                                <a rel="external" href=format!("/auth/oidc/{}/logout", provider.id)>
                                    {format!("Sign out of {} too", provider.name)}
                                </a>
                            </p>
                        })
                    });
                    let offered = (!providers.is_empty()).then(|| view! {
                        <nav class="card providers" aria-label="Ways to sign in">
                            {providers.into_iter().map(|p| {
                                let query = url_query(&next());
                                view! {
                                    // A door of the server's, not a page: the browser goes there itself.
                                    <a class="button secondary" rel="external" href=format!("/auth/oidc/{}/start{query}", p.id)>
                                        {format!("Sign in with {}", p.name)}
                                    </a>
                                }
                            }).collect_view()}
                        </nav>
                    });
                    view! {
                        {failure}
                        {farewell}
                        {passwords.then(|| view! { <PasswordForm next=next()/> })}
                        {offered}
                    }
                })}
            </Suspense>
        </main>
    }
}

/// Director's own username and password.
#[component]
fn PasswordForm(next: String) -> impl IntoView {
    let login = ServerAction::<Login>::new();
    let error = failure(login.value());
    let reveal = RwSignal::new(false);
    // The show/hide button needs the client: it appears once the page has hydrated.
    let hydrated = RwSignal::new(false);
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| hydrated.set(true));
    view! {
        <ActionForm action=login attr:class="card form" attr:aria-labelledby="signin-title">
            <h2 id="signin-title">"Sign in"</h2>
            <FormError error/>
            <label for="username">"Username"</label>
            <input id="username" name="username" type="text" autocomplete="username" required maxlength="128" autofocus/>
            <FieldError error field="username"/>
            <label for="password">"Password"</label>
            <div class="with-button">
                <input
                    id="password"
                    name="password"
                    type=move || if reveal.get() { "text" } else { "password" }
                    autocomplete="current-password"
                    required
                />
                <button
                    type="button"
                    class="secondary"
                    hidden=move || !hydrated.get()
                    aria-pressed=move || reveal.get().to_string()
                    on:click=move |_| reveal.update(|r| *r = !*r)
                >
                    {move || if reveal.get() { "Hide" } else { "Show" }}
                </button>
            </div>
            <FieldError error field="password"/>
            <input type="hidden" name="next" value=next/>
            <button type="submit" class="primary">"Sign in"</button>
        </ActionForm>
    }
}

/// `?next=<path>` for a provider's sign-in link, or nothing.
fn url_query(next: &str) -> String {
    if next.is_empty() {
        String::new()
    } else {
        format!("?next={}", crate::api::url_encode(next))
    }
}
