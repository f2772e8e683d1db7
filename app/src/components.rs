//! Pieces shared by the pages: the signed-in frame, form messages, error pages.

use leptos::prelude::*;
use leptos_router::{components::Redirect, hooks::use_location};

use model::{Shown, Tone};

use crate::{
    AppError,
    api::{
        CertificateState, CertificateView, EXPIRY_WARNING_DAYS, Logout, Me, OperationState, OperationView,
        RetryOperation, current_user,
    },
};

/// A counter that goes up every `period` once the page is hydrated (never on the server): what
/// a resource depends on to be read again, for pages that follow something live. With `only_if`,
/// a tick is skipped while it says no.
pub fn ticker(period: std::time::Duration, only_if: impl Fn() -> bool + 'static) -> ReadSignal<u32> {
    let tick = RwSignal::new(0u32);
    #[cfg(feature = "hydrate")]
    {
        let handle = set_interval_with_handle(
            move || {
                if only_if() {
                    tick.try_update(|t| *t += 1);
                }
            },
            period,
        );
        on_cleanup(move || {
            if let Ok(handle) = handle {
                handle.clear();
            }
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (period, only_if);
    tick.read_only()
}

/// The error of a finished action, if it failed.
pub fn failure<T, S>(value: S) -> Signal<Option<AppError>>
where
    T: Clone + Send + Sync + 'static,
    S: Get<Value = Option<Result<T, AppError>>> + Send + Sync + 'static,
{
    Signal::derive(move || value.get().and_then(Result::err))
}

/// A form-wide message: an error that is not about one field.
#[component]
pub fn FormError(error: Signal<Option<AppError>>) -> impl IntoView {
    move || {
        error
            .get()
            .filter(|e| !e.is_field_error())
            .map(|e| view! { <p class="alert error" role="alert">{e.to_string()}</p> })
    }
}

/// The message under one field, when the error is about it.
#[component]
pub fn FieldError(error: Signal<Option<AppError>>, field: &'static str) -> impl IntoView {
    move || {
        error
            .get()
            .and_then(|e| e.for_field(field))
            .map(|m| view! { <p class="field-error" id=format!("{field}-error") role="alert">{m}</p> })
    }
}

/// A page for an error: what happened and where to go from here. It sets the response status
/// when rendered on the server.
#[component]
pub fn ErrorPage(error: AppError) -> impl IntoView {
    #[cfg(feature = "ssr")]
    crate::ssr::set_status(&error);
    let title = match error {
        AppError::Forbidden | AppError::TokenRefused(_) => "Not allowed",
        AppError::NotFound => "Not found",
        AppError::Unavailable | AppError::EngineUnavailable(_) => "Temporarily unavailable",
        _ => "Something went wrong",
    };
    view! {
        <section class="error-page">
            <h1>{title}</h1>
            <p>{error.to_string()}</p>
            <p><a href="/">"Back to your dashboard"</a></p>
        </section>
    }
}

/// The frame of every signed-in page: navigation and the page itself. Anonymous visitors are
/// sent to sign in (and brought back); non-admins asking for an admin page get a 403 page.
#[component]
pub fn SignedIn<F, V>(#[prop(optional)] admin: bool, page: F) -> impl IntoView
where
    F: Fn(Me) -> V + Clone + Send + Sync + 'static,
    V: IntoView + 'static,
{
    let me = Resource::new(|| (), |()| current_user());
    let location = use_location();
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || {
                let page = page.clone();
                Suspend::new(async move {
                    match me.await {
                        Ok(Some(me)) => {
                            let body = if admin && !me.is_admin {
                                view! { <ErrorPage error=AppError::Forbidden/> }.into_any()
                            } else {
                                page(me.clone()).into_any()
                            };
                            view! {
                                <Nav me/>
                                <main id="main">{body}</main>
                            }
                                .into_any()
                        }
                        Ok(None) => {
                            let here = location.pathname.get_untracked();
                            view! { <Redirect path=format!("/login?next={here}")/> }.into_any()
                        }
                        Err(error) => view! { <main id="main"><ErrorPage error/></main> }.into_any(),
                    }
                })
            }}
        </Suspense>
    }
}

#[component]
fn Nav(me: Me) -> impl IntoView {
    let logout = ServerAction::<Logout>::new();
    view! {
        <header class="topbar">
            <a class="skip" href="#main">"Skip to content"</a>
            <a class="brand" href="/">"Director"</a>
            <nav aria-label="Main">
                <a href="/">"My sites"</a>
                {(me.site_creation == model::request::SiteCreation::Request).then(|| view! {
                    <a href="/requests">"My requests"</a>
                })}
                {matches!(me.role, model::account::Role::Approver | model::account::Role::Admin).then(|| view! {
                    <a href="/requests/review">"Requests to review"</a>
                })}
                {me.is_admin.then(|| view! {
                    <a href="/admin/sites">"All sites"</a>
                    <a href="/admin/users">"Users"</a>
                    <a href="/admin/tokens">"Tokens"</a>
                    <a href="/admin/images">"Images"</a>
                    <a href="/admin/certificates">"Certificates"</a>
                    <a href="/admin/databases">"Databases"</a>
                    <a href="/admin/audit">"Audit"</a>
                })}
                <a href="/account">"Account"</a>
            </nav>
            <a class="bell" href="/notifications" aria-label=format!("Notifications, {} unread", me.unread)>
                // Drawn, not a character: no font on the machine is needed to show it.
                <svg class="icon" viewBox="0 0 24 24" width="20" height="20" aria-hidden="true">
                    <path fill="currentColor" d="M12 22a2.5 2.5 0 0 0 2.45-2h-4.9A2.5 2.5 0 0 0 12 22zm7-6V11a7 7 0 0 0-5.5-6.84V3.5a1.5 1.5 0 0 0-3 0v.66A7 7 0 0 0 5 11v5l-2 2v1h18v-1z"/>
                </svg>
                {(me.unread > 0).then(|| view! { <span class="count">{me.unread}</span> })}
            </a>
            <div class="who">
                <span class="user" title=me.username.clone()>{me.display_name.clone()}</span>
                <ActionForm action=logout attr:class="inline">
                    <button type="submit" class="link">"Sign out"</button>
                </ActionForm>
            </div>
        </header>
    }
}

/// A state as a coloured badge: good, under way, bad.
pub fn state_badge(state: impl Shown) -> impl IntoView {
    let class = match state.tone() {
        Tone::Good => "badge ok",
        Tone::Bad => "badge off",
        Tone::Busy => "badge busy",
    };
    view! { <span class=class>{state.stored_name()}</span> }
}

/// A host's certificate: valid until when (and a warning when that is soon), being issued, or
/// failed with the CA's reason and when the next attempt starts.
#[component]
pub fn CertificateStatus(certificate: CertificateView) -> impl IntoView {
    let c = certificate;
    let soon = (c.state == CertificateState::Issued && c.days_left <= EXPIRY_WARNING_DAYS).then(|| {
        let days = c.days_left;
        view! { <span class="badge off">{format!("expires in {days} day{}", if days == 1 { "" } else { "s" })}</span> }
    });
    match c.state {
        CertificateState::Issued => view! {
            <span class="badge ok">"valid"</span>
            " until " {c.expires} " UTC " {soon}
        }
        .into_any(),
        CertificateState::Failed => {
            let still_valid = (!c.expires.is_empty())
                .then(|| format!(" The current certificate stays valid until {} UTC.", c.expires));
            view! {
                <span class="badge off">"failed"</span>
                <p class="alert error certificate-error">
                    {format!("Attempt {} failed at {} UTC: {}", c.attempts.max(1), c.failed_at, c.error)}
                    <br/>
                    {format!("Next attempt at {} UTC.", c.retry_at)}
                    {still_valid}
                </p>
            }
            .into_any()
        }
        CertificateState::Pending => view! { <span class="badge busy">"being issued"</span> }.into_any(),
    }
}

/// The tabs of a site's pages.
#[component]
pub fn SiteTabs(id: i32, current: &'static str) -> impl IntoView {
    let tab = move |name: &'static str, label: &'static str, href: String| {
        let here = (name == current).then_some("page");
        view! { <a href=href aria-current=here>{label}</a> }
    };
    view! {
        <nav class="tabs" aria-label="Site">
            {tab("overview", "Overview", format!("/sites/{id}"))}
            {tab("files", "Files", format!("/sites/{id}/files"))}
            {tab("terminal", "Terminal", format!("/sites/{id}/terminal"))}
            {tab("database", "Database", format!("/sites/{id}/database"))}
            {tab("image", "Image & environment", format!("/sites/{id}/image"))}
        </nav>
    }
}

/// An operation with its actions' progress, and Retry when it failed.
#[component]
pub fn Operation(op: OperationView, site: i32, retry: ServerAction<RetryOperation>) -> impl IntoView {
    let failed = op.state == OperationState::Failed;
    let operation = op.id;
    view! {
        <li class="card operation" data-state=op.state.as_str()>
            <div class="page-head">
                <strong>{op.kind.label()}</strong>
                <span class="hint">{op.created.clone()}</span>
                {state_badge(op.state)}
            </div>
            <ol class="actions">
                {op.actions.into_iter().map(|a| view! {
                    <li data-state=a.state.as_str()>
                        <span class="action-name">{a.action.label()}</span> " " {state_badge(a.state)}
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
