//! The manager's HTTP surface: pages and server functions (Leptos), health probes, and the
//! middleware every request passes (client address, CSRF, security headers, tracing).

use std::net::SocketAddr;

use app::{
    App, AppError, shell,
    ssr::{AppContext, RequestActor},
};
use axum::{
    Router,
    body::Body,
    extract::{ConnectInfo, DefaultBodyLimit, FromRef, Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{MethodRouter, get, post},
};
use leptos::{config::LeptosOptions, prelude::provide_context};
use leptos_axum::{LeptosRoutes as _, generate_route_list};
use platform::{ClientInfo, Platform};

/// Everything a request handler may need.
#[derive(Clone, Debug)]
pub struct AppState {
    pub leptos: LeptosOptions,
    pub app: AppContext,
    pub trust_proxy: bool,
    /// The browser terminals' shells.
    pub terminals: crate::terminal::Terminals,
    /// The manager's public URL (identity providers send people back to it).
    pub public_url: String,
    /// The REST API's requests left to each token.
    pub api: crate::api::Limiter,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos.clone()
    }
}

/// For the handlers that need no more than the platform (the edge's certificate asks).
impl FromRef<AppState> for Platform {
    fn from_ref(state: &AppState) -> Self {
        state.app.platform.clone()
    }
}

impl AppState {
    pub fn platform(&self) -> &Platform {
        &self.app.platform
    }
}

/// The manager's router.
pub fn router(state: AppState) -> Router {
    let context = {
        let app = state.app.clone();
        move || {
            provide_context(app.clone());
            provide_context(RequestActor::default());
        }
    };
    let routes = generate_route_list(App);
    // The client and the browser libraries are large (the wasm 2 MB, the code editor 850 KB)
    // and compress to a third: scripts/build writes a `.gz` beside each, served to browsers
    // that accept it.
    let site_root = std::path::PathBuf::from(state.leptos.site_root.as_ref());
    let assets =
        ["pkg", "xterm", "codemirror", "swagger-ui"]
            .into_iter()
            .fold(Router::new(), |router, dir| {
                router.nest_service(
                    &format!("/{dir}"),
                    tower_http::services::ServeDir::new(site_root.join(dir)).precompressed_gzip(),
                )
            });
    let doors = doors()
        .into_iter()
        .fold(Router::new(), |router, (path, door)| router.route(path, door));
    Router::new()
        .merge(assets)
        .merge(doors)
        .merge(crate::api::router())
        .leptos_routes_with_context(&state, routes, context.clone(), {
            let options = state.leptos.clone();
            move || shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler_with_context::<AppState, _>(
            context, shell,
        ))
        .layer(middleware::from_fn(refuse_cross_site))
        .layer(middleware::from_fn_with_state(state.clone(), client_info))
        .layer(middleware::from_fn(security_headers))
        .layer(
            tower_http::trace::TraceLayer::new_for_http().make_span_with(|req: &Request| {
                // Method and path only: headers carry cookies.
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path())
            }),
        )
        .with_state(state)
}

/// The manager's doors beside its pages, server functions and static files, by path. The
/// permission matrix (tests/permissions.rs) has a row for each, read from here: a door added
/// without one fails it.
pub fn doors() -> Vec<(&'static str, MethodRouter<AppState>)> {
    vec![
        ("/healthz", get(healthz)),
        ("/readyz", get(readyz)),
        ("/edge/ask", get(crate::edge::ask)),
        ("/sites/{id}/terminal/ws", get(crate::terminal::websocket)),
        // The upload enforces its own limits while it streams (see files.rs).
        (
            "/sites/{id}/files/upload",
            post(crate::files::upload).layer(DefaultBodyLimit::disable()),
        ),
        ("/sites/{id}/files/download", get(crate::files::download)),
        ("/sites/{id}/databases/{kind}/dump", get(crate::databases::dump)),
        ("/auth/oidc/{provider}/start", get(crate::oidc::start)),
        ("/auth/oidc/{provider}/callback", get(crate::oidc::callback)),
        ("/auth/oidc/{provider}/link", post(crate::oidc::link)),
        ("/auth/oidc/{provider}/logout", get(crate::oidc::logout)),
    ]
}

/// The process is up.
async fn healthz() -> &'static str {
    "ok"
}

/// The process can serve: its database answers.
async fn readyz(State(state): State<AppState>) -> Response {
    match state.platform().database_ready().await {
        Ok(()) => "ready".into_response(),
        Err(err) => {
            tracing::warn!(error = %err, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
    }
}

/// Records the client's address for rate limiting and sessions. `X-Forwarded-For` is believed
/// only when the operator says a proxy of theirs sits in front.
async fn client_info(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let forwarded = state
        .trust_proxy
        .then(|| {
            req.headers()
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next_back())
                .map(|ip| ip.trim().to_owned())
        })
        .flatten();
    let ip = forwarded.or(peer).unwrap_or_default();
    req.extensions_mut().insert(ClientInfo {
        ip,
        user_agent: String::new(),
    });
    next.run(req).await
}

/// CSRF protection for every state-changing request: the browser must say, through `Origin`
/// (or `Referer` when Origin is absent) and `Sec-Fetch-Site`, that the request comes from a
/// page of this same host. "Same-site" is refused too: members' sites live on subdomains of the
/// manager's domain, and `SameSite=Lax` cookies would ride along with their requests.
async fn refuse_cross_site(req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) || same_origin(req.headers()) {
        return next.run(req).await;
    }
    tracing::warn!(method = %req.method(), path = %req.uri().path(), "cross-site request refused");
    let error = AppError::Forbidden;
    (
        StatusCode::FORBIDDEN,
        format!("Cross-site request refused. {error}"),
    )
        .into_response()
}

fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if text(header::HeaderName::from_static("sec-fetch-site"))
        .is_some_and(|site| site == "cross-site" || site == "same-site")
    {
        return false;
    }
    let Some(host) = text(header::HOST) else {
        return false;
    };
    let claimed = text(header::ORIGIN)
        .filter(|o| *o != "null")
        .or_else(|| text(header::REFERER));
    match claimed {
        Some(url) => authority(url).is_some_and(|a| a.eq_ignore_ascii_case(host)),
        // Neither header: not a browser (browsers send Origin on every POST). Such a client can
        // only ride a session by holding the cookie itself, so it is let through only without one.
        None => headers.get(header::COOKIE).is_none(),
    }
}

/// `host[:port]` of an absolute http(s) URL.
fn authority(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(&rest[..end]).filter(|a| !a.is_empty() && !a.contains('@'))
}

async fn security_headers(req: Request, next: Next) -> Response<Body> {
    let mut res = next.run(req).await;
    let headers = res.headers_mut();
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "same-origin"),
        ("cross-origin-opener-policy", "same-origin"),
    ] {
        headers.entry(name).or_insert(HeaderValue::from_static(value));
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn same_origin_posts_pass_and_cross_site_posts_do_not() {
        assert!(same_origin(&headers(&[
            ("host", "d.example:8080"),
            ("origin", "http://d.example:8080")
        ])));
        assert!(same_origin(&headers(&[
            ("host", "d.example"),
            ("referer", "https://d.example/login?x=1")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "d.example"),
            ("origin", "https://evil.example")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "d.example"),
            ("origin", "https://d.example.evil.example")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "d.example"),
            ("origin", "null"),
            ("cookie", "a=b")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "d.example"),
            ("origin", "https://d.example"),
            ("sec-fetch-site", "cross-site")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "d.example"),
            ("cookie", "director_session=x")
        ])));
        assert!(same_origin(&headers(&[("host", "d.example")])));
        assert!(!same_origin(&headers(&[
            ("host", "d.example"),
            ("origin", "http://user@d.example")
        ])));
    }
}
