//! Server-side glue for server functions: the request's platform, actor, client and cookies.
//! Only built with the `ssr` feature.

use std::sync::Arc;

use http::{HeaderValue, Method, header, request::Parts};
use leptos::prelude::*;
use leptos_axum::ResponseOptions;
use platform::{Actor, ClientInfo, Platform};

/// A session: its actor and the token that proved it.
type Session = Option<(Actor, String)>;
use tokio::sync::OnceCell;

use crate::AppError;

/// What the server provides to every request's reactive context.
#[derive(Clone, Debug)]
pub struct AppContext {
    /// The domain.
    pub platform: Platform,
    /// Whether cookies get the `Secure` attribute (the manager is served over TLS).
    pub secure_cookies: bool,
    /// The SSH server, when it runs.
    pub ssh: Option<SshInfo>,
    /// What the file manager's uploads may carry.
    pub uploads: crate::api::UploadLimits,
}

/// What users need to know about the SSH server.
#[derive(Clone, Debug)]
pub struct SshInfo {
    /// The port it listens on.
    pub port: u16,
    /// Its host keys' fingerprints.
    pub fingerprints: Vec<String>,
}

/// The request's session, looked up once per request however many server functions ask.
#[derive(Clone, Debug, Default)]
pub struct RequestActor(Arc<OnceCell<Session>>);

/// The session cookie's name over plain HTTP, read by every door (pages, server functions, the
/// terminal's websocket, file transfers) through [`session_tokens`].
const SESSION_COOKIE: &str = "director_session";

/// The session cookie's name. Over HTTPS it is `__Host-` prefixed: browsers take such a cookie
/// only from this very host (Secure, `Path=/`, no `Domain`), so a member's site on a sibling
/// subdomain cannot plant one for the manager (cookie tossing).
pub fn session_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-director_session"
    } else {
        SESSION_COOKIE
    }
}

/// Cookies of the session's name tried at most, per request.
const MAX_SESSION_COOKIES: usize = 4;

/// The session tokens the request's cookies carry. A browser may send two cookies of the same
/// name (one planted for a parent domain by a site, one of ours): none is taken blindly, each
/// is tried by [`session_of`].
pub fn session_tokens(headers: &http::HeaderMap, secure: bool) -> Vec<String> {
    cookie_values(headers, session_cookie_name(secure))
        // One more than are tried: more than that many is itself a sign of planting.
        .take(MAX_SESSION_COOKIES + 1)
        .collect()
}

/// The values of the cookies called `name` that the request carries, in order.
pub fn cookie_values<'a>(headers: &'a http::HeaderMap, name: &'a str) -> impl Iterator<Item = String> + 'a {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .filter(move |c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// The session among `tokens`: its actor and the token. Of several cookies, the live ones are
/// taken only when they are all one user's; live sessions of different users side by side
/// mean one was planted (a site on a sibling subdomain can set a cookie for the parent
/// domain over plain HTTP), and none is taken.
pub async fn session_of(platform: &Platform, tokens: &[String]) -> platform::Result<Session> {
    // Cookies of that name past the few a browser may hold: planted to push ours out of reach.
    if tokens.len() > MAX_SESSION_COOKIES {
        tracing::warn!(
            cookies = tokens.len(),
            "more session cookies than are tried: none is taken"
        );
        return Ok(None);
    }
    let mut found: Session = None;
    for token in tokens {
        if let Some(actor) = platform.session_actor(token).await? {
            match &found {
                None => found = Some((actor, token.clone())),
                Some((first, _)) if first.user_id == actor.user_id => {}
                Some(_) => {
                    tracing::warn!("two users' session cookies on one request: neither is taken");
                    return Ok(None);
                }
            }
        }
    }
    Ok(found)
}

fn context() -> AppContext {
    expect_context::<AppContext>()
}

/// The platform of this server. Like every context lookup here, call it before a server
/// function's first await: a resource rendering on the server may resume outside the request's
/// reactive context.
pub fn platform() -> Platform {
    context().platform
}

/// What the file manager's uploads may carry.
pub fn upload_limits() -> crate::api::UploadLimits {
    context().uploads
}

/// The SSH server's port and host key fingerprints, when it runs.
pub fn ssh_info() -> Option<SshInfo> {
    context().ssh
}

fn parts() -> Option<Parts> {
    use_context::<Parts>()
}

/// The request's session: the signed-in actor and the token that proved it, or None.
async fn session() -> Result<Session, AppError> {
    let cache = use_context::<RequestActor>().unwrap_or_default();
    let (platform, secure) = (platform(), context().secure_cookies);
    let tokens = parts()
        .map(|parts| session_tokens(&parts.headers, secure))
        .unwrap_or_default();
    let found = cache
        .0
        .get_or_try_init(|| async { session_of(&platform, &tokens).await.map_err(to_app_error) })
        .await?;
    Ok(found.clone())
}

/// The token of the request's live session, if any.
pub async fn session_token() -> Result<Option<String>, AppError> {
    Ok(session().await?.map(|(_, token)| token))
}

/// The signed-in actor behind this request, or None.
pub async fn actor() -> Result<Option<Actor>, AppError> {
    Ok(session().await?.map(|(actor, _)| actor))
}

/// The client's address (set by the server's middleware) and User-Agent.
pub fn client_info() -> ClientInfo {
    let Some(parts) = parts() else {
        return ClientInfo::default();
    };
    let mut info = parts.extensions.get::<ClientInfo>().cloned().unwrap_or_default();
    info.user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    info
}

/// Sets the session cookie on the response; an empty token with `max_age` 0 clears it.
pub fn set_session_cookie(token: &str, max_age_secs: i64) {
    let cookie = session_cookie(context().secure_cookies, token, max_age_secs);
    if let (Some(options), Ok(value)) = (use_context::<ResponseOptions>(), HeaderValue::from_str(&cookie)) {
        options.append_header(header::SET_COOKIE, value);
    }
}

/// The `Set-Cookie` value of a session cookie (for doors outside Leptos, too).
pub fn session_cookie(secure: bool, token: &str, max_age_secs: i64) -> String {
    manager_cookie(session_cookie_name(secure), secure, token, max_age_secs)
}

/// The `Set-Cookie` value of one of the manager's own cookies: the whole site's (`Path=/`),
/// out of scripts' reach, sent on top-level navigations from other sites but not on their
/// requests (`SameSite=Lax`), HTTPS-only over HTTPS.
pub fn manager_cookie(name: &str, secure: bool, value: &str, max_age_secs: i64) -> String {
    cookie::Cookie::build((name.to_owned(), value.to_owned()))
        .path("/")
        .http_only(true)
        .same_site(cookie::SameSite::Lax)
        .secure(secure)
        .max_age(cookie::time::Duration::seconds(max_age_secs))
        .build()
        .to_string()
}

/// Maps a platform error to what the user sees, logging what they must not see, and sets the
/// response status — except on a plain form post, whose answer must stay the redirect back to
/// the form that carries the error.
pub fn to_app_error(err: platform::Error) -> AppError {
    let app = app_error(err);
    set_status(&app);
    app
}

/// Maps a platform error to what the caller sees, logging what they must not see (for doors
/// outside Leptos, which set their status themselves).
pub fn app_error(err: platform::Error) -> AppError {
    use platform::Error as P;
    match err {
        P::Unauthenticated => AppError::Unauthenticated,
        P::Forbidden => AppError::Forbidden,
        P::TokenRefused(why) => AppError::TokenRefused(why.to_owned()),
        P::NotFound(_) => AppError::NotFound,
        P::Invalid { field, message } => AppError::Invalid {
            field: field.to_owned(),
            message,
        },
        P::Conflict(message) => AppError::Conflict(message),
        P::TooLarge(message) => AppError::TooLarge(message),
        P::DiskFull(message) => AppError::DiskFull(message),
        P::BadCredentials => AppError::BadCredentials,
        P::RateLimited { retry_after_secs } => AppError::RateLimited {
            minutes: retry_after_secs.div_ceil(60),
        },
        // An identity provider that does not answer is a dependency unavailable, as Docker is.
        P::EngineUnavailable(message) | P::ProviderUnavailable(message) => {
            AppError::EngineUnavailable(message)
        }
        P::SignInRefused(why) => AppError::SignInRefused(why.message().to_owned()),
        P::Unavailable(cause) => {
            tracing::error!(error = %cause, "dependency unavailable");
            AppError::Unavailable
        }
        P::Internal(cause) => {
            let reference = format!("E-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
            tracing::error!(%reference, error = %cause, "internal error");
            AppError::Internal { reference }
        }
    }
}

/// Sets the response status for `err` unless this is a plain (JavaScript-less) form post.
pub fn set_status(err: &AppError) {
    let plain_form_post = parts().is_some_and(|p| {
        p.method == Method::POST
            && p.headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("text/html"))
    });
    if plain_form_post {
        return;
    }
    if let (Some(options), Ok(status)) = (
        use_context::<ResponseOptions>(),
        http::StatusCode::from_u16(err.status()),
    ) {
        options.set_status(status);
    }
}
