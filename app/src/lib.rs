//! Director's manager: the Leptos application rendered by the server and hydrated in the
//! browser.
//!
//! Invariants:
//! - Every page renders completely on the server (`SsrMode::Async`) and every form is an
//!   `ActionForm` posting to a server function, so the manager works with JavaScript off;
//!   hydration only adds conveniences.
//! - Server functions (`api`) are thin: they name the actor and call one `platform` method,
//!   which checks permissions. Nothing here decides who may do what.
//! - The `ssr` and `hydrate` features are never enabled together.

pub mod api;
mod components;
mod error;
mod pages;
#[cfg(feature = "ssr")]
pub mod ssr;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::{
    ParamSegment, SsrMode, StaticSegment,
    components::{Route, Router, Routes},
};

pub use error::AppError;

/// The HTML document around the app, rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light dark"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <HydrationScripts options/>
                <script src="/terminal.js" defer></script>
                <script src="/editor.js" defer></script>
                <script src="/files.js" defer></script>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The application: its routes and their pages.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="director" href="/pkg/director.css"/>
        <Title formatter=|page: String| if page.is_empty() { "Director".to_owned() } else { format!("{page} · Director") }/>
        <Router>
            <Routes fallback=pages::NotFoundPage>
                <Route path=StaticSegment("") view=pages::DashboardPage ssr=SsrMode::Async/>
                <Route path=StaticSegment("login") view=pages::LoginPage ssr=SsrMode::Async/>
                <Route path=StaticSegment("setup") view=pages::SetupPage ssr=SsrMode::Async/>
                <Route path=StaticSegment("account") view=pages::AccountPage ssr=SsrMode::Async/>
                <Route path=(StaticSegment("admin"), StaticSegment("users")) view=pages::AdminUsersPage ssr=SsrMode::Async/>
                <Route path=(StaticSegment("admin"), StaticSegment("tokens")) view=pages::AdminTokensPage ssr=SsrMode::Async/>
                <Route path=(StaticSegment("admin"), StaticSegment("users"), ParamSegment("id"), StaticSegment("keys")) view=pages::UserKeysPage ssr=SsrMode::Async/>
                <Route path=(StaticSegment("admin"), StaticSegment("sites")) view=pages::AdminSitesPage ssr=SsrMode::Async/>
                <Route path=(StaticSegment("admin"), StaticSegment("images")) view=pages::AdminImagesPage ssr=SsrMode::Async/>
                <Route path=(StaticSegment("admin"), StaticSegment("audit")) view=pages::AdminAuditPage ssr=SsrMode::Async/>
                <Route path=(StaticSegment("admin"), StaticSegment("certificates")) view=pages::AdminCertificatesPage ssr=SsrMode::Async/>
                <Route path=(StaticSegment("admin"), StaticSegment("databases")) view=pages::AdminDatabasesPage ssr=SsrMode::Async/>
                <Route path=(StaticSegment("sites"), StaticSegment("new")) view=pages::NewSitePage ssr=SsrMode::Async/>
                <Route path=StaticSegment("requests") view=pages::MyRequestsPage ssr=SsrMode::Async/>
                <Route path=StaticSegment("notifications") view=pages::NotificationsPage ssr=SsrMode::Async/>
                <Route path=(StaticSegment("admin"), StaticSegment("deliveries")) view=pages::AdminDeliveriesPage ssr=SsrMode::Async/>
                <Route path=(StaticSegment("requests"), StaticSegment("new")) view=pages::RequestSitePage ssr=SsrMode::Async/>
                <Route path=(StaticSegment("requests"), StaticSegment("review")) view=pages::ReviewRequestsPage ssr=SsrMode::Async/>
                <Route path=(StaticSegment("requests"), ParamSegment("id")) view=pages::RequestPage ssr=SsrMode::Async/>
                <Route path=(StaticSegment("sites"), ParamSegment("id")) view=pages::SitePage ssr=SsrMode::Async/>
                <Route path=(StaticSegment("sites"), ParamSegment("id"), StaticSegment("files")) view=pages::FilesPage ssr=SsrMode::Async/>
                <Route path=(StaticSegment("sites"), ParamSegment("id"), StaticSegment("terminal")) view=pages::TerminalPage ssr=SsrMode::Async/>
                <Route path=(StaticSegment("sites"), ParamSegment("id"), StaticSegment("database")) view=pages::DatabasePage ssr=SsrMode::Async/>
                <Route path=(StaticSegment("sites"), ParamSegment("id"), StaticSegment("image")) view=pages::ImagePage ssr=SsrMode::Async/>
            </Routes>
        </Router>
    }
}
