//! What the API's routes take from a request — the caller, and the JSON body, query and path —
//! each refusing what it cannot read with a problem that says why (never axum's plain text).

use app::AppError;
use axum::{
    extract::{FromRequest, FromRequestParts, Path, Query, Request},
    http::{header, request::Parts},
};
use platform::{Actor, ClientInfo, Grant};
use serde::de::DeserializeOwned;

use super::Problem;
use crate::http::AppState;

/// The actor behind the request's personal access token, within its token's allowance of
/// requests.
#[derive(Debug, Clone)]
pub struct Caller(pub Actor);

fn invalid(field: &str, message: impl Into<String>) -> Problem {
    Problem(AppError::Invalid {
        field: field.to_owned(),
        message: message.into(),
    })
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        // A token in the address ends up in logs, browser histories and Referer headers.
        let in_query = parts.uri.query().is_some_and(|query| {
            query.split('&').any(|pair| {
                let key = pair.split('=').next().unwrap_or_default();
                ["token", "access_token", "api_key"].contains(&key)
            })
        });
        if in_query {
            return Err(invalid(
                "token",
                "Send the token in the Authorization header (Bearer), never in the address.",
            ));
        }
        // Cookies are not read here: a browser's session never reaches the API.
        let secret = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| {
                let (scheme, secret) = value.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| secret.trim())
            })
            .ok_or(Problem(AppError::Unauthenticated))?;
        let ip = parts
            .extensions
            .get::<ClientInfo>()
            .map(|client| client.ip.clone())
            .unwrap_or_default();
        let throttled = |wait: std::time::Duration| {
            Problem(AppError::Throttled {
                seconds: wait.as_secs_f64().ceil().max(1.0) as u64,
            })
        };
        if let Some(wait) = state.api.shut_out(&ip, secret) {
            return Err(throttled(wait));
        }
        let Some(actor) = state.platform().token_actor(secret, &ip).await? else {
            state.api.failed(&ip);
            return Err(Problem(AppError::Unauthenticated));
        };
        state.api.valid(secret);
        if let Grant::Token(token) = &actor.grant {
            state.api.take(token.id).map_err(throttled)?;
        }
        Ok(Self(actor))
    }
}

/// A JSON body of type `T`: `Content-Type: application/json`, within the route's size limit,
/// with no field `T` does not name.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, _: &S) -> Result<Self, Problem> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .is_some_and(|kind| kind.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Err(invalid(
                "body",
                "Send the body as JSON (Content-Type: application/json).",
            ));
        }
        // Read up to the limit and no further, whatever the route's other limits.
        let bytes = axum::body::to_bytes(req.into_body(), BODY_LIMIT)
            .await
            .map_err(|err| {
                let too_large = std::error::Error::source(&err)
                    .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
                if too_large {
                    Problem(AppError::TooLarge(format!(
                        "The body is larger than this request takes ({} KiB at most).",
                        BODY_LIMIT / 1024
                    )))
                } else {
                    invalid("body", "The body could not be read.")
                }
            })?;
        // PostgreSQL stores no NUL in text: refused here with a reason, not there as a failure.
        if escapes_nul(&bytes) {
            return Err(no_nul("body"));
        }
        serde_json::from_slice(&bytes)
            .map(Self)
            .map_err(|err| invalid("body", format!("The body is not what this request takes: {err}.")))
    }
}

/// The most a JSON body may weigh.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Whether JSON text has a NUL character in a string (`\u0000`; a raw one is not JSON), each
/// escape read as a pair so that an escaped backslash before `u0000` is not taken for one.
fn escapes_nul(json: &[u8]) -> bool {
    let mut rest = json;
    while let Some(at) = rest.iter().position(|&b| b == b'\\') {
        let escape = &rest[at + 1..];
        if escape.starts_with(b"u0000") {
            return true;
        }
        rest = escape.get(1..).unwrap_or_default();
    }
    false
}

/// Whether a (percent-encoded) part of an address has a NUL character in it.
fn has_nul(encoded: &str) -> bool {
    encoded.as_bytes().windows(3).any(|w| w == b"%00")
}

fn no_nul(field: &str) -> Problem {
    invalid(field, "NUL characters are not accepted.")
}

/// The query parameters, as `T`.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        if parts.uri.query().is_some_and(has_nul) {
            return Err(no_nul("query"));
        }
        Query::try_from_uri(&parts.uri)
            .map(|Query(query)| Self(query))
            .map_err(|rejection| invalid("query", rejection.body_text()))
    }
}

/// The path's parameters, as `T`.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        if has_nul(parts.uri.path()) {
            return Err(no_nul("path"));
        }
        Path::from_request_parts(parts, state)
            .await
            .map(|Path(path)| Self(path))
            .map_err(|rejection| invalid("path", rejection.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_found_in_json_strings_and_addresses_and_nowhere_else() {
        assert!(escapes_nul(br#"{"sql": "a\u0000b"}"#));
        assert!(escapes_nul(br#"{"sql": "\\\u0000"}"#));
        assert!(!escapes_nul(br#"{"sql": "\\u0000"}"#));
        assert!(!escapes_nul(br#"{"sql": "\u0001 \n"}"#));
        assert!(has_nul("name=a%00"));
        assert!(!has_nul("name=a%200"));
    }
}
