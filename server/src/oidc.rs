//! Sign-in through the organisation's identity providers, the two doors of the authorization
//! code flow (the protocol and the accounts are `platform::oidc`'s):
//!
//! - `GET /auth/oidc/{provider}/start?next=<path>` gives the browser a secret of its own (a
//!   short-lived cookie) and sends it to the provider;
//! - `POST /auth/oidc/{provider}/link` does the same for someone signed in, who links the
//!   provider's person to their account (a POST: the session cookie does not go with another
//!   site's form, so no page elsewhere can start a link for them);
//! - `GET /auth/oidc/{provider}/callback?state=…&code=…` is where the provider sends it back:
//!   only the browser holding the secret may finish the sign-in (else anyone could have
//!   someone else's browser signed in as them), then the session cookie is set and the browser
//!   goes to `next`;
//! - `GET /auth/oidc/{provider}/logout` sends the browser to the provider's end-session page,
//!   for someone who signed out of Director and wants to sign out there too.
//!
//! What goes wrong is shown on the sign-in page (a link: the account page), named by a fixed
//! code (`?failed=<code>`: the page says the words, never text from the address), with the
//! details in the log.

use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse as _, Redirect, Response},
};
use model::account::SignInRefusal;
use serde::Deserialize;

use crate::http::AppState;

/// How long the browser's secret lives: the provider's sign-in must be done within it.
const BROWSER_SECRET_SECS: i64 = 600;
/// The longest a door waits for the provider (each request has its own 10 s limit; a start
/// makes one, a callback three).
const PROVIDER_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Debug, Deserialize)]
pub struct Start {
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Callback {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
}

/// This manager's callback for provider `id`.
fn redirect_uri(state: &AppState, id: &str) -> String {
    format!(
        "{}/auth/oidc/{id}/callback",
        state.public_url.trim_end_matches('/')
    )
}

/// The cookie holding the browser's secret: `__Host-` over HTTPS, like the session's.
fn secret_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-director_oidc"
    } else {
        "director_oidc"
    }
}

/// The cookie holding the browser's secret (`SameSite=Lax`: sent on the provider's redirect
/// back, a top-level navigation).
fn secret_cookie(secure: bool, value: &str, max_age_secs: i64) -> Option<HeaderValue> {
    HeaderValue::from_str(&app::ssr::manager_cookie(
        secret_cookie_name(secure),
        secure,
        value,
        max_age_secs,
    ))
    .ok()
}

/// The browser's secret from its cookies, if it sent one.
fn browser_secret(headers: &HeaderMap, secure: bool) -> Option<String> {
    app::ssr::cookie_values(headers, secret_cookie_name(secure)).next()
}

/// Back to `page` (the sign-in page, or the account page for a link), which says why in its
/// own words.
fn refused_to(page: &str, provider: &str, why: SignInRefusal) -> Response {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("failed", why.as_str())
        .append_pair("provider", provider)
        .finish();
    Redirect::to(&format!("{page}?{query}")).into_response()
}

/// The refusal a platform error is, for the sign-in page.
fn refusal_of(err: &platform::Error) -> SignInRefusal {
    match err {
        platform::Error::SignInRefused(why) => *why,
        platform::Error::ProviderUnavailable(_) | platform::Error::Unavailable(_) => {
            SignInRefusal::Unavailable
        }
        _ => SignInRefusal::NotAccepted,
    }
}

pub async fn start(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(start): Query<Start>,
) -> Response {
    let next = app::api::safe_next(start.next);
    begin(&state, &id, &next, None).await
}

pub async fn link(State(state): State<AppState>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let actor = match crate::access::signed_in(&state, &headers).await {
        Ok(actor) => actor,
        Err(refusal) => return refusal,
    };
    begin(&state, &id, "/account", Some(&actor)).await
}

/// Sends the browser to provider `id` with a secret of its own (for `link`'s account, or to
/// sign in).
async fn begin(state: &AppState, id: &str, next: &str, link: Option<&platform::Actor>) -> Response {
    let begun = tokio::time::timeout(
        PROVIDER_WAIT,
        state
            .platform()
            .oidc_begin(id, &redirect_uri(state, id), next, link),
    )
    .await
    .unwrap_or_else(|_| {
        Err(platform::Error::ProviderUnavailable(
            "no answer in time".to_owned(),
        ))
    });
    match begun {
        Ok((url, secret)) => {
            let mut response = Redirect::to(&url).into_response();
            if let Some(cookie) = secret_cookie(state.app.secure_cookies, &secret, BROWSER_SECRET_SECS) {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
            response
        }
        Err(platform::Error::NotFound(what)) => crate::access::refusal(platform::Error::NotFound(what)),
        Err(err) => {
            tracing::warn!(provider = %id, error = %err, "starting a sign-in failed");
            let page = if link.is_some() { "/account" } else { "/login" };
            refused_to(page, id, refusal_of(&err))
        }
    }
}

pub async fn logout(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let ended = tokio::time::timeout(PROVIDER_WAIT, state.platform().oidc_end_session(&id))
        .await
        .unwrap_or_else(|_| {
            Err(platform::Error::ProviderUnavailable(
                "no answer in time".to_owned(),
            ))
        });
    match ended {
        Ok(Some(url)) => Redirect::to(&url).into_response(),
        // A provider without an end-session page: there is nowhere to send the browser.
        Ok(None) => Redirect::to("/login").into_response(),
        Err(platform::Error::NotFound(what)) => crate::access::refusal(platform::Error::NotFound(what)),
        Err(err) => refused_to("/login", &id, refusal_of(&err)),
    }
}

pub async fn callback(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(back): Query<Callback>,
    headers: HeaderMap,
    client: Option<axum::Extension<platform::ClientInfo>>,
) -> Response {
    let platform = state.platform();
    if let Err(err) = platform.oidc_provider(&id) {
        return crate::access::refusal(err);
    }
    let secure = state.app.secure_cookies;
    let browser = browser_secret(&headers, secure);
    // Who the browser is signed in as, for a sign-in begun to link (an ordinary sign-in does not
    // need it: it makes a new session either way).
    let signed_in = crate::access::signed_in(&state, &headers).await.ok();
    let finished = match (back.error, back.state, back.code) {
        (Some(error), _, _) => {
            // The person cancelled, or the provider refused them.
            tracing::info!(provider = %id, error = ?error, "the provider sent an error back");
            Err(SignInRefusal::Cancelled)
        }
        (None, Some(oidc_state), Some(code)) => {
            let callback = platform::oidc::Callback {
                redirect: &redirect_uri(&state, &id),
                state: &oidc_state,
                code: &code,
                browser: browser.as_deref(),
            };
            let client = client.map(|c| c.0).unwrap_or_default();
            let finishing = platform.oidc_finish(&id, callback, &client, signed_in.as_ref());
            match tokio::time::timeout(PROVIDER_WAIT, finishing).await {
                Ok(finished) => finished.map_err(|err| refusal_of(&err)),
                Err(_) => {
                    tracing::warn!(provider = %id, "the provider did not answer in time");
                    Err(SignInRefusal::Unavailable)
                }
            }
        }
        _ => Err(SignInRefusal::Unknown),
    };
    let mut response = match finished {
        Ok(platform::oidc::Finished::Linked { next }) => {
            let query = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("linked", &id)
                .finish();
            Redirect::to(&format!("{next}?{query}")).into_response()
        }
        Ok(platform::oidc::Finished::SignedIn { session, next, .. }) => {
            let cookie = app::ssr::session_cookie(
                secure,
                &session.token,
                platform.settings().session_ttl.as_secs() as i64,
            );
            let mut response = Redirect::to(&next).into_response();
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            response
        }
        // Someone already signed in was linking: their account page says why.
        Err(why) if signed_in.is_some() => refused_to("/account", &id, why),
        Err(why) => refused_to("/login", &id, why),
    };
    // The secret is spent either way.
    if browser.is_some()
        && let Some(cleared) = secret_cookie(secure, "", 0)
    {
        response.headers_mut().append(header::SET_COOKIE, cleared);
    }
    response
}
