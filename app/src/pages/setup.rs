use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::{
    api::{CompleteSetup, setup_link_valid},
    components::{ErrorPage, FieldError, FormError, failure},
};

/// First run: the link printed by `director serve` when no admin exists leads here, to create
/// the first admin. Used once; afterwards it says so and points to sign-in.
#[component]
pub fn SetupPage() -> impl IntoView {
    let query = use_query_map();
    let token = move || query.read().get("token").unwrap_or_default();
    let valid = Resource::new(token, setup_link_valid);
    let setup = ServerAction::<CompleteSetup>::new();
    let error = failure(setup.value());
    view! {
        <Title text="Set up Director"/>
        <main id="main" class="auth">
            <h1 class="brand-big">"Director"</h1>
            <Suspense fallback=|| view! { <p class="loading">"Checking the link…"</p> }>
                {move || Suspend::new(async move {
                    match valid.await {
                        Ok(true) => view! {
                            <ActionForm action=setup attr:class="card form" attr:aria-labelledby="setup-title">
                                <h2 id="setup-title">"Create the first admin"</h2>
                                <p>"This account manages Director: its users, and later its sites and images."</p>
                                <FormError error/>
                                <input type="hidden" name="token" value=token/>
                                <label for="username">"Username"</label>
                                <input id="username" name="username" type="text" required maxlength="32" autocomplete="username"/>
                                <FieldError error field="username"/>
                                <label for="display_name">"Display name " <span class="hint">"(optional)"</span></label>
                                <input id="display_name" name="display_name" type="text" maxlength="100"/>
                                <FieldError error field="display_name"/>
                                <label for="password">"Password"</label>
                                <input id="password" name="password" type="password" required minlength="10" autocomplete="new-password"/>
                                <FieldError error field="password"/>
                                <label for="confirm">"Password again"</label>
                                <input id="confirm" name="confirm" type="password" required autocomplete="new-password"/>
                                <FieldError error field="confirm"/>
                                <button type="submit" class="primary">"Create admin and sign in"</button>
                            </ActionForm>
                        }.into_any(),
                        Ok(false) => view! {
                            <section class="card">
                                <h2>"This setup link is no longer valid"</h2>
                                <p>"Director already has an admin, or the link has expired. "<a href="/login">"Sign in"</a>" instead."</p>
                            </section>
                        }.into_any(),
                        Err(error) => view! { <ErrorPage error/> }.into_any(),
                    }
                })}
            </Suspense>
        </main>
    }
}
