//! Sign-in through the organisation's identity providers, the two doors of the authorization
//! code flow (the protocol and the accounts are `platform::oidc`'s):
//!
//! - `GET /auth/oidc/{provider}/start?next=<path>` sends the browser to the provider;
//! - `GET /auth/oidc/{provider}/callback?state=…&code=…` is where the provider sends it back:
//!   the session cookie is set and the browser goes to `next`.
//!
//! Whatever goes wrong is shown on the sign-in page in the manager's words (a provider that is
//! down, a sign-in refused and why), with the details in the log: never a bare error.

use axum::{
    extract::{Path, Query, State},
    http::{HeaderValue, header},
    response::{IntoResponse as _, Redirect, Response},
};
use serde::Deserialize;

use crate::http::AppState;

#[derive(Debug, Deserialize)]
pub struct Start {
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Callback {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// This manager's callback for provider `id`.
fn redirect_uri(state: &AppState, id: &str) -> String {
    format!(
        "{}/auth/oidc/{id}/callback",
        state.public_url.trim_end_matches('/')
    )
}

/// Back to the sign-in page, which shows `message`.
fn to_login(message: &str) -> Response {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("failed", message)
        .finish();
    Redirect::to(&format!("/login?{query}")).into_response()
}

/// The message of a refusal, in the manager's words.
fn said(err: platform::Error) -> String {
    app::ssr::to_app_error(err).to_string()
}

pub async fn start(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(start): Query<Start>,
) -> Response {
    let next = app::api::safe_next(start.next);
    match state
        .platform()
        .oidc_begin(&id, &redirect_uri(&state, &id), &next)
        .await
    {
        Ok(url) => Redirect::to(&url).into_response(),
        Err(platform::Error::NotFound(what)) => crate::access::refusal(platform::Error::NotFound(what)),
        Err(err) => to_login(&said(err)),
    }
}

pub async fn callback(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(back): Query<Callback>,
    client: Option<axum::Extension<platform::ClientInfo>>,
) -> Response {
    let platform = state.platform();
    let provider = match platform.oidc_provider(&id) {
        Ok(provider) => provider.name.clone(),
        Err(err) => return crate::access::refusal(err),
    };
    if let Some(error) = back.error {
        // The person cancelled, or the provider refused them.
        tracing::info!(provider = %id, %error, description = ?back.error_description, "the provider sent an error back");
        let why = back.error_description.unwrap_or(error);
        let why: String = why.chars().filter(|c| !c.is_control()).take(200).collect();
        return to_login(&format!("{provider} did not sign you in: {why}"));
    }
    let (Some(oidc_state), Some(code)) = (back.state, back.code) else {
        return to_login(&format!(
            "{provider} sent you back without a sign-in. Start again."
        ));
    };
    let client = client.map(|c| c.0).unwrap_or_default();
    match platform
        .oidc_finish(&id, &redirect_uri(&state, &id), &oidc_state, &code, &client)
        .await
    {
        Ok((_, session, next)) => {
            let cookie = app::ssr::session_cookie(
                state.app.secure_cookies,
                &session.token,
                platform.settings().session_ttl.as_secs() as i64,
            );
            let mut response = Redirect::to(&next).into_response();
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            response
        }
        Err(err) => to_login(&said(err)),
    }
}
