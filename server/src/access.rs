//! Who is asking, for the routes outside Leptos (the terminal's websocket, file transfers):
//! the session cookie read into an actor, and refusals in the manager's own words.

use axum::{
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse as _, Response},
};
use platform::{Actor, Platform};

/// The session token of the request's cookie.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == platform::SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// The signed-in actor, or the response refusing the request (401).
pub async fn signed_in(platform: &Platform, headers: &HeaderMap) -> Result<Actor, Response> {
    let Some(token) = session_cookie(headers) else {
        return Err((StatusCode::UNAUTHORIZED, "sign in to continue").into_response());
    };
    match platform.session_actor(&token).await {
        Ok(Some(actor)) => Ok(actor),
        Ok(None) => Err((StatusCode::UNAUTHORIZED, "sign in to continue").into_response()),
        Err(err) => Err(refusal(err)),
    }
}

/// A refusal with the status and message the manager's pages would give.
pub fn refusal(err: platform::Error) -> Response {
    let app = app::ssr::to_app_error(err);
    let status = StatusCode::from_u16(app.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, app.to_string()).into_response()
}
