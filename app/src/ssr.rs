//! Server-side glue for server functions: the request's platform, actor, client and cookies.
//! Only built with the `ssr` feature.

use std::sync::Arc;

use http::{HeaderValue, Method, header, request::Parts};
use leptos::prelude::*;
use leptos_axum::ResponseOptions;
use platform::{Actor, ClientInfo, Platform, SESSION_COOKIE};
use tokio::sync::OnceCell;

use crate::AppError;

/// What the server provides to every request's reactive context.
#[derive(Clone, Debug)]
pub struct AppContext {
    /// The domain.
    pub platform: Platform,
    /// Whether cookies get the `Secure` attribute (the manager is served over TLS).
    pub secure_cookies: bool,
    /// The engine and edge, once they are up (None before, and with the edge off).
    pub runtime: tokio::sync::watch::Receiver<Option<platform::sites::Runtime>>,
    /// The SSH server, when it runs.
    pub ssh: Option<SshInfo>,
    /// What the file manager's uploads may carry.
    pub uploads: crate::api::UploadLimits,
    /// What domains of members' own must not be.
    pub domain_rules: platform::sites::DomainRules,
    /// Where verification looks TXT records up.
    pub dns: platform::dns::Dns,
}

/// What users need to know about the SSH server.
#[derive(Clone, Debug)]
pub struct SshInfo {
    /// The port it listens on.
    pub port: u16,
    /// Its host keys' fingerprints.
    pub fingerprints: Vec<String>,
}

/// The request's actor, looked up once per request however many server functions ask.
#[derive(Clone, Debug, Default)]
pub struct RequestActor(Arc<OnceCell<Option<Actor>>>);

fn context() -> AppContext {
    expect_context::<AppContext>()
}

/// The platform of this server. Like every context lookup here, call it before a server
/// function's first await: a resource rendering on the server may resume outside the request's
/// reactive context.
pub fn platform() -> Platform {
    context().platform
}

/// The engine and edge, if they are up.
pub fn runtime() -> Option<platform::sites::Runtime> {
    context().runtime.borrow().clone()
}

/// What domains of members' own must not be.
pub fn domain_rules() -> platform::sites::DomainRules {
    context().domain_rules
}

/// The resolver domain verification uses.
pub fn dns() -> platform::dns::Dns {
    context().dns
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

/// The session token from the request's cookie, if any.
pub fn session_token() -> Option<String> {
    let parts = parts()?;
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// The signed-in actor behind this request, or None.
pub async fn actor() -> Result<Option<Actor>, AppError> {
    let cache = use_context::<RequestActor>().unwrap_or_default();
    let found = cache
        .0
        .get_or_try_init(|| async {
            match session_token() {
                Some(token) => platform().session_actor(&token).await.map_err(to_app_error),
                None => Ok(None),
            }
        })
        .await?;
    Ok(found.clone())
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
    let secure = if context().secure_cookies { "; Secure" } else { "" };
    let cookie =
        format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}");
    if let (Some(options), Ok(value)) = (use_context::<ResponseOptions>(), HeaderValue::from_str(&cookie)) {
        options.append_header(header::SET_COOKIE, value);
    }
}

/// Maps a platform error to what the user sees, logging what they must not see, and sets the
/// response status — except on a plain form post, whose answer must stay the redirect back to
/// the form that carries the error.
pub fn to_app_error(err: platform::Error) -> AppError {
    use platform::Error as P;
    let app = match err {
        P::Unauthenticated => AppError::Unauthenticated,
        P::Forbidden => AppError::Forbidden,
        P::NotFound(_) => AppError::NotFound,
        P::Invalid { field, message } => AppError::Invalid {
            field: field.to_owned(),
            message,
        },
        P::Conflict(message) => AppError::Conflict(message),
        P::TooLarge(message) => AppError::TooLarge(message),
        P::BadCredentials => AppError::BadCredentials,
        P::RateLimited { retry_after_secs } => AppError::RateLimited {
            minutes: retry_after_secs.div_ceil(60),
        },
        P::Unavailable(cause) => {
            tracing::error!(error = %cause, "dependency unavailable");
            AppError::Unavailable
        }
        P::Internal(cause) => {
            let reference = format!("E-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
            tracing::error!(%reference, error = %cause, "internal error");
            AppError::Internal { reference }
        }
    };
    set_status(&app);
    app
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
