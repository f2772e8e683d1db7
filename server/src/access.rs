//! Who is asking, for the routes outside Leptos (the terminal's websocket, file transfers):
//! the session cookie read into an actor, and refusals in the manager's own words.

use axum::{
    http::{HeaderMap, StatusCode},
    response::{IntoResponse as _, Response},
};
use platform::Actor;

use crate::http::AppState;

/// The signed-in actor, or the response refusing the request (401). Every session cookie the
/// request carries is tried (see `app::ssr::session_tokens`).
pub async fn signed_in(state: &AppState, headers: &HeaderMap) -> Result<Actor, Response> {
    signed_in_session(state, headers).await.map(|(actor, _)| actor)
}

/// [`signed_in`], with the token of the session that proved it (for what must end with it).
pub async fn signed_in_session(state: &AppState, headers: &HeaderMap) -> Result<(Actor, String), Response> {
    let tokens = app::ssr::session_tokens(headers, state.app.secure_cookies);
    match app::ssr::session_of(state.platform(), &tokens).await {
        Ok(Some(found)) => Ok(found),
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
