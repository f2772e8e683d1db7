//! The REST API, `/api/v1`: JSON for scripts and the `director` command line, authenticated by
//! personal access tokens (`Authorization: Bearer`), never by cookies — so it offers nothing to
//! a cross-site request.
//!
//! Every route goes through the platform and its `authorize`, as the server functions do; each
//! is registered together with its OpenAPI description (utoipa), so that the document served at
//! `/api/v1/openapi.json` lists every route there is, and the permission matrix reads its rows
//! from it. Errors are RFC 9457 problem details with a stable `type` per kind of error.

mod admin;
mod builds;
mod certificates;
mod databases;
mod extract;
mod files;
mod follow;
mod members;
mod requests;
mod sites;
mod terminal;
mod tokens;

use std::{
    collections::HashMap,
    hash::BuildHasher as _,
    net::IpAddr,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use governor::clock::{Clock as _, DefaultClock};

use app::AppError;
use axum::{
    Json, Router,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::{
    OpenApi, ToSchema,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};
use utoipa_axum::router::OpenApiRouter;

use crate::http::AppState;

pub use extract::Caller;

/// Where the API lives.
pub const BASE: &str = "/api/v1";

/// The API's description, completed by each route's own.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Director",
        description = "Sites, their operations, files and domains, and the accounts behind them. \
            Authenticate with a personal access token (account page → Tokens): \
            `Authorization: Bearer dpat_…`. Errors are RFC 9457 problem details.",
    ),
    modifiers(&BearerToken),
    tags(
        (name = "sites", description = "Sites and what happens to them"),
        (name = "files", description = "A site's files"),
        (name = "databases", description = "A site's databases"),
        (name = "builds", description = "A dynamic site's image builds and environment"),
        (name = "requests", description = "Requests for sites, and their review"),
        (name = "tokens", description = "The caller's personal access tokens"),
        (name = "account", description = "The caller's account"),
        (name = "admin", description = "Users, limits and records: tokens with the admin scope"),
    ),
)]
struct ApiDoc;

struct BearerToken;

impl utoipa::Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("dpat_…")
                    .build(),
            ),
        );
    }
}

/// The API's routes, each with its description.
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(sites::routes())
        .merge(follow::routes())
        .merge(members::routes())
        .merge(files::routes())
        .merge(tokens::routes())
        .merge(terminal::routes())
        .merge(certificates::routes())
        .merge(admin::routes())
        .merge(databases::routes())
        .merge(builds::routes())
        .merge(requests::routes())
}

/// The API's router (with its document at `/api/v1/openapi.json`).
pub fn router() -> Router<AppState> {
    let (router, document) = routes().split_for_parts();
    let document = Arc::new(document);
    router
        .route(
            &format!("{BASE}/openapi.json"),
            axum::routing::get(move || {
                let document = document.clone();
                async move { Json(document.as_ref().clone()) }
            }),
        )
        .route("/api/docs", axum::routing::get(reference))
        // Not the pages' fallback: an address under the API that names nothing is the API's.
        .route(
            &format!("{BASE}/{{*rest}}"),
            axum::routing::any(|| async { Problem(AppError::NotFound) }),
        )
        .layer(axum::middleware::map_response(as_problem))
}

/// The API's reference page: Swagger UI (bundled by scripts/build, no CDN) over the document.
async fn reference() -> axum::response::Html<&'static str> {
    axum::response::Html(concat!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        "<title>Director REST API</title>",
        "<link rel=\"stylesheet\" href=\"/swagger-ui/swagger-ui.css\"></head>",
        "<body><div id=\"reference\"></div>",
        "<script src=\"/swagger-ui/swagger-ui-bundle.js\"></script>",
        "<script src=\"/swagger-ui/api-docs.js\"></script></body></html>",
    ))
}

/// Whatever error an API route answers without problem details (axum's own refusals, a wrong
/// method, the file doors' plain words) is answered as a problem with the same status and words.
async fn as_problem(response: Response) -> Response {
    let status = response.status();
    let kind = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if !(status.is_client_error() || status.is_server_error()) || kind.starts_with("application/") {
        return response;
    }
    let (parts, body) = response.into_parts();
    let detail = match axum::body::to_bytes(body, 16 * 1024).await {
        Ok(bytes) if status.is_client_error() => String::from_utf8_lossy(&bytes).trim().to_owned(),
        // A server's own failure says nothing of itself.
        _ => "Something went wrong on our side; try again.".to_owned(),
    };
    let code = match status.as_u16() {
        400 => "bad-request",
        401 => "unauthenticated",
        403 => "forbidden",
        404 => "not-found",
        405 => "method-not-allowed",
        409 => "conflict",
        413 => "too-large",
        429 => "throttled",
        503 => "unavailable",
        507 => "disk-full",
        _ => "error",
    };
    let body = ProblemBody {
        kind: format!("urn:director:problem:{code}"),
        title: status.canonical_reason().unwrap_or("Error"),
        status: status.as_u16(),
        detail,
        field: None,
    };
    let mut response = (status, Json(body)).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            response.headers_mut().insert(name.clone(), value.clone());
        }
    }
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

/// The API's OpenAPI document, as served.
pub fn document() -> utoipa::openapi::OpenApi {
    routes().split_for_parts().1
}

/// Wrong tokens an address may send a minute (in one burst, or spread out) before its token
/// checks wait: plenty for a script with a stale token, nothing for a guesser.
pub const WRONG_TOKENS_PER_MINUTE: NonZeroU32 = NonZeroU32::new(30).expect("not zero");

/// How many requests a token may make: `per_second` on average, in bursts of `burst`; and how
/// many wrong tokens an address may send before its token checks wait.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    /// Requests a second, on average.
    pub per_second: NonZeroU32,
    /// The most at once.
    pub burst: NonZeroU32,
    /// Wrong (unknown, expired, revoked) tokens an address may send a minute.
    pub failures_per_minute: NonZeroU32,
}

/// The requests each token may still make (a keyed GCRA limiter), and the addresses that sent
/// too many wrong tokens: those are answered 429 before any lookup, so that a flood of made-up
/// tokens costs the database nothing — except for tokens seen valid lately, so that a guesser
/// sharing an address with others (a proxy, a NAT) cannot shut them out.
#[derive(Debug, Clone)]
pub struct Limiter {
    tokens: Arc<governor::DefaultKeyedRateLimiter<i64>>,
    failures: Arc<governor::DefaultKeyedRateLimiter<String>>,
    /// Addresses out of failures, and until when.
    shut_out: Arc<Mutex<HashMap<String, Instant>>>,
    /// Keyed hashes of the tokens seen valid, and when last.
    known: Arc<Mutex<HashMap<u64, Instant>>>,
    hasher: std::hash::RandomState,
}

/// How long a token seen valid passes an address's shut-out.
const KNOWN_FOR: Duration = Duration::from_secs(600);

impl Limiter {
    pub fn new(limit: RateLimit) -> Self {
        let quota = governor::Quota::per_second(limit.per_second).allow_burst(limit.burst);
        let failures = governor::Quota::per_minute(limit.failures_per_minute);
        Self {
            tokens: Arc::new(governor::RateLimiter::keyed(quota)),
            failures: Arc::new(governor::RateLimiter::keyed(failures)),
            shut_out: Arc::default(),
            known: Arc::default(),
            hasher: std::hash::RandomState::new(),
        }
    }

    /// Takes one request of token `id`'s allowance, or says how long until one is left.
    fn take(&self, id: i64) -> Result<(), Duration> {
        self.tokens
            .check_key(&id)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// How long a request from `address` with token `secret` must wait before the token is
    /// looked at, if it must.
    fn shut_out(&self, address: &str, secret: &str) -> Option<Duration> {
        let until = *self
            .shut_out
            .lock()
            .expect("limiter lock")
            .get(&bucket(address))?;
        let known = self
            .known
            .lock()
            .expect("limiter lock")
            .get(&self.hasher.hash_one(secret))
            .is_some_and(|seen| seen.elapsed() < KNOWN_FOR);
        if known {
            return None;
        }
        until.checked_duration_since(Instant::now())
    }

    /// Counts a wrong token from `address`; past its allowance, the address is shut out until
    /// it has one again.
    fn failed(&self, address: &str) {
        let key = bucket(address);
        if let Err(not_until) = self.failures.check_key(&key) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            self.shut_out
                .lock()
                .expect("limiter lock")
                .insert(key, Instant::now() + wait);
        }
    }

    /// Remembers that `secret` is a valid token (for [`Limiter::shut_out`]).
    fn valid(&self, secret: &str) {
        self.known
            .lock()
            .expect("limiter lock")
            .insert(self.hasher.hash_one(secret), Instant::now());
    }

    /// Forgets the tokens and addresses that have their whole allowance back (run now and
    /// then), so that the limiter holds only those in use.
    pub fn forget_idle(&self) {
        self.tokens.retain_recent();
        self.failures.retain_recent();
        let now = Instant::now();
        self.shut_out
            .lock()
            .expect("limiter lock")
            .retain(|_, until| *until > now);
        self.known
            .lock()
            .expect("limiter lock")
            .retain(|_, seen| seen.elapsed() < KNOWN_FOR);
    }
}

/// The key an address's failures are counted under: the address itself for IPv4, its /64 for
/// IPv6 (where one client has that many addresses), one key for whatever is not an address —
/// so that neither the keys nor their number grow with what a client makes up.
fn bucket(address: &str) -> String {
    match address.parse::<IpAddr>().map(|ip| ip.to_canonical()) {
        Ok(IpAddr::V6(ip)) => {
            let net = u128::from(ip) & !(u128::MAX >> 64);
            format!("{}/64", std::net::Ipv6Addr::from(net))
        }
        Ok(ip) => ip.to_string(),
        Err(_) => "unknown".to_owned(),
    }
}

/// Forgets, once a minute, the tokens whose allowance is whole again, so that the limiter holds
/// only the tokens in use (until `stop`).
pub async fn forget_idle_tokens(limiter: Limiter, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut every = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = every.tick() => limiter.forget_idle(),
            _ = stop.changed() => return,
        }
    }
}

/// An error, answered as problem details (RFC 9457).
#[derive(Debug)]
pub struct Problem(pub AppError);

/// Problem details, as sent.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemBody {
    /// The kind of error, stable: `urn:director:problem:<code>`.
    #[serde(rename = "type")]
    kind: String,
    /// The kind of error in words.
    title: &'static str,
    /// The HTTP status.
    status: u16,
    /// What happened, for people.
    detail: String,
    /// The request field at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
}

impl From<platform::Error> for Problem {
    fn from(err: platform::Error) -> Self {
        Self(app::ssr::app_error(err))
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ProblemBody {
            kind: format!("urn:director:problem:{}", self.0.code()),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: self.0.to_string(),
            field: match &self.0 {
                AppError::Invalid { field, .. } => Some(field.clone()),
                _ => None,
            },
        };
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        match &self.0 {
            AppError::Throttled { seconds } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*seconds));
            }
            AppError::Unauthenticated => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

/// What any route may answer besides its success: problem details.
#[derive(utoipa::IntoResponses)]
pub enum Refusals {
    /// A path or query that cannot be read.
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(ProblemBody),
    /// No token, or a wrong, expired or revoked one.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthenticated(ProblemBody),
    /// The role allows it not, or the token does not reach this far (`token-refused`).
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(ProblemBody),
    /// No such thing, or one the caller may not know of.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(ProblemBody),
    /// Past the token's allowance, or too many streams open: see `Retry-After`.
    #[response(status = 429, content_type = "application/problem+json")]
    Throttled(ProblemBody),
    /// The database or the engine is not answering just now.
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(ProblemBody),
}

/// What a change may answer besides its success: [`Refusals`], and what the change itself
/// may run into.
#[derive(utoipa::IntoResponses)]
pub enum ChangeRefusals {
    /// A path, query or body that is not acceptable; `field` names what to fix.
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(ProblemBody),
    /// No token, or a wrong, expired or revoked one.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthenticated(ProblemBody),
    /// The role allows it not, or the token does not reach this far (`token-refused`).
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(ProblemBody),
    /// No such thing, or one the caller may not know of.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(ProblemBody),
    /// It clashes with the state of things (a name taken, a site being deleted…).
    #[response(status = 409, content_type = "application/problem+json")]
    Conflict(ProblemBody),
    /// The body is larger than the request takes.
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(ProblemBody),
    /// Past the token's allowance: see `Retry-After`.
    #[response(status = 429, content_type = "application/problem+json")]
    Throttled(ProblemBody),
    /// The database or the engine is not answering just now.
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(ProblemBody),
    /// The site's disk is full.
    #[response(status = 507, content_type = "application/problem+json")]
    DiskFull(ProblemBody),
}

/// What a route answers: its JSON, or a problem.
pub type Answer<T> = Result<T, Problem>;
