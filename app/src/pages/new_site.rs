use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::Redirect;

use crate::{
    AppError,
    api::{CreateSite, check_site_name, site_images},
    components::{ErrorPage, FieldError, FormError, SignedIn, failure},
};

/// The form that creates a site (where members request sites instead, it sends them to the
/// request form; admins still create them here).
#[component]
pub fn NewSitePage() -> impl IntoView {
    view! {
        <Title text="New site"/>
        <SignedIn page=|me| {
            if me.site_creation == model::request::SiteCreation::Request && !me.is_admin {
                return view! { <Redirect path="/requests/new"/> }.into_any();
            }
            let create = ServerAction::<CreateSite>::new();
            let error = failure(create.value());
            view! {
                <div class="page-head"><h1>"New site"</h1></div>
                <ActionForm action=create attr:class="card form" attr:aria-labelledby="new-site-title">
                    <h2 id="new-site-title" class="visually-hidden">"New site"</h2>
                    <FormError error/>
                    <SiteFields error/>
                    <label for="site-packages">"Extra Debian packages " <span class="hint">"(optional, dynamic sites: installed for its run.sh, for example jq curl)"</span></label>
                    <input id="site-packages" name="packages" type="text" spellcheck="false" autocomplete="off"/>
                    <FieldError error field="apt"/>
                    <button type="submit" class="primary">"Create site"</button>
                </ActionForm>
            }
            .into_any()
        }/>
    }
}

/// What a new site is: its name (checked as it is typed, once hydrated), type, image, purpose
/// and description; the fields of both the create form and the request form.
#[component]
pub(crate) fn SiteFields(error: Signal<Option<AppError>>) -> impl IntoView {
    let images = Resource::new(|| (), |()| site_images());
    // Once hydrated, the name is checked as it is typed (after a short pause).
    let debounced = RwSignal::new(String::new());
    let typing = StoredValue::new(0u64);
    let on_name = move |ev: leptos::ev::Event| {
        let name = event_target_value(&ev);
        let turn = typing.try_get_value().unwrap_or_default() + 1;
        typing.try_set_value(turn);
        // The page may be gone when the pause ends (the form was sent): then nothing.
        set_timeout(
            move || {
                if typing.try_get_value() == Some(turn) {
                    debounced.try_set(name.trim().to_owned());
                }
            },
            std::time::Duration::from_millis(250),
        );
    };
    let verdict = Resource::new(
        move || debounced.get(),
        |name| async move {
            if name.is_empty() {
                Ok(None)
            } else {
                check_site_name(name).await
            }
        },
    );
    view! {
        <label for="site-name">"Name"</label>
        <input id="site-name" name="name" type="text" required maxlength="32" pattern="[a-z0-9]([a-z0-9\\-]*[a-z0-9])?" autocomplete="off" aria-describedby="site-name-hint site-name-check"
            on:input=on_name/>
        <p class="hint" id="site-name-hint">"Lower-case letters, digits and hyphens; it becomes the site's address."</p>
        <Transition>
            <p id="site-name-check" class="name-check" aria-live="polite">
                {move || match (debounced.get().is_empty(), verdict.get()) {
                    (true, _) | (_, None) | (_, Some(Err(_))) => None,
                    (false, Some(Ok(Some(problem)))) => Some(view! { <span class="field-error">{problem}</span> }.into_any()),
                    (false, Some(Ok(None))) => Some(view! { <span class="ok">"✓ Available"</span> }.into_any()),
                }}
            </p>
        </Transition>
        <FieldError error field="name"/>
        <fieldset>
            <legend>"Type"</legend>
            <label class="check"><input type="radio" name="kind" value="static" checked/>" Static — files from public/, served directly"</label>
            <label class="check"><input type="radio" name="kind" value="dynamic"/>" Dynamic — your run.sh serves it (Python, Node, …)"</label>
        </fieldset>
        <FieldError error field="kind"/>
        <label for="site-image">"Image"</label>
        <Suspense fallback=|| view! { <p class="loading">"Loading images…"</p> }>
            {move || Suspend::new(async move {
                match images.await {
                    Ok(list) => view! {
                        <select id="site-image" name="image">
                            {list.into_iter().map(|image| {
                                let kinds = match (image.serves_static, image.serves_dynamic) {
                                    (true, true) => "static or dynamic",
                                    (true, false) => "static",
                                    _ => "dynamic",
                                };
                                view! {
                                    <option value=image.name.clone()>{format!("{} — {} ({kinds})", image.name, image.description)}</option>
                                }
                            }).collect_view()}
                        </select>
                    }.into_any(),
                    Err(error) => view! { <ErrorPage error/> }.into_any(),
                }
            })}
        </Suspense>
        <FieldError error field="image"/>
        <label for="site-purpose">"Purpose"</label>
        <select id="site-purpose" name="purpose">
            <option value="user">"Personal"</option>
            <option value="project">"Project"</option>
            <option value="activity">"Club or activity"</option>
            <option value="other">"Other"</option>
        </select>
        <FieldError error field="purpose"/>
        <label for="site-description">"Description " <span class="hint">"(optional)"</span></label>
        <textarea id="site-description" name="description" maxlength="500" rows="3"></textarea>
        <FieldError error field="description"/>
    }
}
