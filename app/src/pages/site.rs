use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use crate::{
    AppError,
    api::{DeleteSite, OperationView, RestartSite, RetryOperation, SetServed, SitePageData, site_detail},
    components::{ErrorPage, FieldError, FormError, SignedIn, StateBadge, failure},
};

/// A site: its address, state, operations with their progress, and deletion.
#[component]
pub fn SitePage() -> impl IntoView {
    view! {
        <Title text="Site"/>
        <SignedIn page=|_| view! { <SiteView/> }/>
    }
}

#[component]
fn SiteView() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").and_then(|id| id.parse::<i32>().ok());
    let retry = ServerAction::<RetryOperation>::new();
    let served = ServerAction::<SetServed>::new();
    let restart = ServerAction::<RestartSite>::new();
    // While an operation is under way the page refreshes itself (once hydrated) every second.
    let tick = RwSignal::new(0u32);
    #[cfg(feature = "hydrate")]
    {
        let handle = set_interval_with_handle(
            move || tick.update(|t| *t += 1),
            std::time::Duration::from_secs(1),
        );
        on_cleanup(move || {
            if let Ok(handle) = handle {
                handle.clear();
            }
        });
    }
    let detail = Resource::new(
        move || {
            (
                id(),
                retry.version().get() + served.version().get() + restart.version().get(),
                tick.get(),
            )
        },
        |(id, _, _)| async move {
            match id {
                Some(id) => site_detail(id).await,
                None => Err(AppError::NotFound),
            }
        },
    );
    view! {
        <Transition fallback=|| view! { <p class="loading">"Loading the site…"</p> }>
            {move || Suspend::new(async move {
                match detail.await {
                    Ok(site) => view! { <SiteBody site retry served restart/> }.into_any(),
                    Err(error) => view! { <ErrorPage error/> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn SiteBody(
    site: SitePageData,
    retry: ServerAction<RetryOperation>,
    served: ServerAction<SetServed>,
    restart: ServerAction<RestartSite>,
) -> impl IntoView {
    let delete = ServerAction::<DeleteSite>::new();
    let delete_error = failure(delete.value());
    let control_error = Signal::derive(move || {
        failure(served.value())
            .get()
            .or_else(|| failure(restart.value()).get())
    });
    let on_air = site.availability == "enabled";
    let dynamic = site.card.kind == "dynamic";
    let id = site.card.id;
    let deleting = site.card.state == "deleting";
    view! {
        <div class="page-head">
            <h1>{site.card.name.clone()}</h1>
            <StateBadge state=site.card.state.clone()/>
        </div>
        <p><a class="site-url" href=site.card.url.clone() rel="noopener">{site.card.url.clone()}</a></p>
        <FormError error=control_error/>
        {(!deleting && site.availability != "disabled").then(|| view! {
            <div class="controls">
                <ActionForm action=served attr:class="inline">
                    <input type="hidden" name="id" value=id.to_string()/>
                    <input type="hidden" name="served" value=(!on_air).to_string()/>
                    <button type="submit" class="secondary">{if on_air { "Take off the air" } else { "Serve again" }}</button>
                </ActionForm>
                {(dynamic && on_air).then(|| view! {
                    <ActionForm action=restart attr:class="inline">
                        <input type="hidden" name="id" value=id.to_string()/>
                        <button type="submit" class="secondary">"Restart"</button>
                    </ActionForm>
                })}
            </div>
        })}
        <dl class="facts">
            <dt>"Type"</dt><dd>{site.card.kind.clone()}</dd>
            <dt>"Image"</dt><dd>{site.image.clone()}</dd>
            <dt>"Purpose"</dt><dd>{site.purpose.clone()}</dd>
            <dt>"Availability"</dt><dd>{site.availability.clone()}</dd>
            <dt>"Limits"</dt><dd>{format!("{} CPU, {} MiB memory, {} MiB uploads", f64::from(site.cpu_millis) / 1000.0, site.memory_mb, site.body_limit_mb)}</dd>
            <dt>"Created"</dt><dd>{site.created.clone()}</dd>
            <dt>"Description"</dt><dd>{site.card.description.clone()}</dd>
        </dl>
        <section aria-labelledby="ops-title">
            <h2 id="ops-title">"Operations"</h2>
            <ol class="operations">
                {site.operations.into_iter().map(|op| view! { <Operation op site=id retry/> }).collect_view()}
            </ol>
        </section>
        {(!deleting).then(|| view! {
            <ActionForm action=delete attr:class="card form danger-zone" attr:aria-labelledby="delete-title">
                <h2 id="delete-title">"Delete this site"</h2>
                <p>"Its files, service and address go away for good."</p>
                <FormError error=delete_error/>
                <input type="hidden" name="id" value=id.to_string()/>
                <label for="confirm">"Type " <strong>{site.card.name.clone()}</strong> " to confirm"</label>
                <input id="confirm" name="confirm" type="text" autocomplete="off" required/>
                <FieldError error=delete_error field="confirm"/>
                <button type="submit" class="danger">"Delete site"</button>
            </ActionForm>
        })}
    }
}

#[component]
fn Operation(op: OperationView, site: i32, retry: ServerAction<RetryOperation>) -> impl IntoView {
    let failed = op.state == "failed";
    let operation = op.id;
    view! {
        <li class="card operation" data-state=op.state.clone()>
            <div class="page-head">
                <strong>{op.kind.clone()}</strong>
                <span class="hint">{op.created.clone()}</span>
                <StateBadge state=op.state.clone()/>
            </div>
            <ol class="actions">
                {op.actions.into_iter().map(|a| view! {
                    <li data-state=a.state.clone()>
                        <span class="action-name">{a.action}</span> " " <StateBadge state=a.state.clone()/>
                        {(!a.output.is_empty()).then(|| view! { <pre class="output">{a.output}</pre> })}
                    </li>
                }).collect_view()}
            </ol>
            {failed.then(|| view! {
                <ActionForm action=retry attr:class="inline">
                    <input type="hidden" name="site" value=site.to_string()/>
                    <input type="hidden" name="operation" value=operation.to_string()/>
                    <button type="submit" class="secondary">"Retry"</button>
                </ActionForm>
            })}
        </li>
    }
}
