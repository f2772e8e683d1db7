use leptos::prelude::*;
use leptos_meta::Title;

use crate::{
    api::ChangePassword,
    components::{FieldError, FormError, SignedIn, failure},
    pages::keys::{Keys, KeysState},
};

/// The signed-in user's account: SSH keys, change password.
#[component]
pub fn AccountPage() -> impl IntoView {
    // Made before the frame waits for the user (see docs/ARCHITECTURE.md).
    let keys = KeysState::new(None);
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
                    <dt>"Role"</dt><dd>{if me.is_admin { "Admin" } else { "Member" }}</dd>
                </dl>
                <Keys state=keys/>
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
