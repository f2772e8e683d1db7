//! A real `director` HTTP server on a free port, over a platform of the test's choosing.

// Each test binary includes this module and uses only part of it.
#![allow(dead_code, unused_imports)]

pub mod acme;
pub mod edge;

use std::net::SocketAddr;

use app::ssr::AppContext;
pub use platform::testing::{create_user, password, signed_in_user};
use platform::{Actor, Platform};
use server::{
    config::{Cli, Config},
    http::{AppState, router},
    serve::leptos_options,
};

/// A server running in the test's runtime; dropped with it.
pub struct TestServer {
    pub base: String,
    pub addr: SocketAddr,
}

impl TestServer {
    pub async fn start(platform: Platform) -> Self {
        Self::start_with(platform, false).await
    }

    /// With these terminals (to watch their shells).
    pub async fn start_with_terminals(platform: Platform, terminals: server::terminal::Terminals) -> Self {
        Self::start_full(platform, false, None, Some(terminals), None).await
    }

    /// As if served over TLS (`https://` public URL): cookies must be `Secure`.
    pub async fn start_with(platform: Platform, secure_cookies: bool) -> Self {
        Self::start_full(platform, secure_cookies, None, None, None).await
    }

    /// With the given upload limits.
    pub async fn start_with_limits(platform: Platform, limits: app::api::UploadLimits) -> Self {
        Self::start_full(platform, false, Some(limits), None, None).await
    }

    /// With this allowance of REST API requests per token.
    pub async fn start_with_api_rate(platform: Platform, rate: server::api::RateLimit) -> Self {
        Self::start_full(platform, false, None, None, Some(rate)).await
    }

    async fn start_full(
        platform: Platform,
        secure_cookies: bool,
        limits: Option<app::api::UploadLimits>,
        terminals: Option<server::terminal::Terminals>,
        api_rate: Option<server::api::RateLimit>,
    ) -> Self {
        use clap::Parser as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cli = Cli::parse_from(["director", "migrate"]);
        let config = Config::resolve(&cli, None).unwrap();
        let state = AppState {
            leptos: leptos_options(&config, addr),
            app: AppContext {
                platform,
                secure_cookies,
                ssh: None,
                uploads: limits.unwrap_or(config.sites.uploads),
            },
            trust_proxy: false,
            terminals: terminals
                .unwrap_or_else(|| server::terminal::Terminals::new(std::time::Duration::from_secs(60))),
            public_url: format!("http://{addr}"),
            // The permission matrix sends a few hundred wrong tokens from this one address:
            // the shut-out that would follow has a test of its own.
            api: server::api::Limiter::new(api_rate.unwrap_or(server::api::RateLimit {
                failures_per_minute: std::num::NonZeroU32::MAX,
                ..config.server.api_rate
            })),
        };
        let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            base: format!("http://{addr}"),
            addr,
        }
    }

    /// A browser-like client: keeps cookies, sends this server's Origin, does not follow
    /// redirects (the tests look at them).
    pub fn client(&self) -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::ORIGIN, self.base.parse().unwrap());
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .default_headers(headers)
            .build()
            .unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Calls a server function as the browser's client code does (JSON answer expected).
    pub async fn call(
        &self,
        client: &reqwest::Client,
        name: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        client
            .post(self.url(&format!("/fn/{name}")))
            .header(reqwest::header::ACCEPT, "application/json")
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// Signs in through the login server function and returns the client holding the session.
    pub async fn signed_in(&self, username: &str, password: &str) -> reqwest::Client {
        let client = self.client();
        let res = self
            .call(
                &client,
                "login",
                &[("username", username), ("password", password)],
            )
            .await;
        assert!(
            res.status().is_success() || res.status().is_redirection(),
            "login failed: {}",
            res.status()
        );
        client
    }
}

/// A static busybox site of `owner`'s, once its create operation has run (workers must be
/// running); waits at most 30 s.
pub async fn running_site(platform: &Platform, owner: &Actor, name: &str) -> platform::sites::Site {
    let (site, _) = platform
        .create_site(Some(owner), platform::testing::static_site(name))
        .await
        .unwrap();
    for _ in 0..300 {
        if platform.site(Some(owner), site.id).await.unwrap().state == platform::sites::SiteState::Running {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    site
}

impl TestServer {
    /// Loads a page as a browser navigation does (`Accept: text/html`).
    pub async fn page(&self, client: &reqwest::Client, path: &str) -> reqwest::Response {
        client
            .get(self.url(path))
            .header(reqwest::header::ACCEPT, "text/html,application/xhtml+xml")
            .send()
            .await
            .unwrap()
    }
}

/// A personal access token of `who`'s with these scopes (and sites, when limited).
pub async fn api_token(
    platform: &Platform,
    who: &Actor,
    access: model::token::TokenAccess,
    admin: bool,
    sites: Option<Vec<i32>>,
) -> String {
    platform
        .create_token(
            Some(who),
            platform::api_tokens::NewToken {
                name: format!("{access} token"),
                days: None,
                access,
                admin,
                sites,
            },
        )
        .await
        .unwrap()
        .secret
}

/// GETs `/` of `host` through the edge at `edge`: the status and the body.
pub async fn visit(edge: SocketAddr, host: &str) -> (u16, String) {
    let res = reqwest::Client::new()
        .get(format!("http://{edge}/"))
        .header("host", host)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}
