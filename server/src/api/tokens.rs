//! `/api/v1/tokens`: the caller's personal access tokens. Tokens are made on the account page
//! only — a token never makes another.

// utoipa's `path` macro names the `params` types by qualified paths in what it generates.
#![allow(unused_qualifications)]

use axum::{Json, extract::State, http::StatusCode};
use chrono::{DateTime, Utc};
use platform::api_tokens::TokenRecord;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{Answer, Caller, Refusals, extract::ApiPath};
use crate::http::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(list_tokens))
        .routes(routes!(revoke_token))
}

/// Who the token acts for, and how to reach the server's SSH.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeJson {
    username: String,
    display_name: String,
    /// `user`, `approver` or `admin`.
    #[schema(example = "user")]
    role: &'static str,
    /// The token's scopes.
    scopes: Vec<&'static str>,
    /// The SSH port, when SSH is on (`ssh -p <port> <site>@<this host>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    ssh_port: Option<u16>,
    /// The server's SSH host key fingerprints.
    ssh_host_keys: Vec<String>,
}

/// Who the token acts for.
#[utoipa::path(
    get, path = "/api/v1/me", tag = "tokens",
    security(("token" = [])),
    responses(
        (status = 200, body = MeJson),
        Refusals,
    ),
)]
async fn me(State(state): State<AppState>, Caller(actor): Caller) -> Answer<Json<MeJson>> {
    let scopes = match &actor.grant {
        platform::Grant::Token(token) => scopes(token.access, token.admin),
        platform::Grant::Full => scopes(model::token::TokenAccess::Write, actor.is_admin()),
    };
    let ssh = state.app.ssh.clone();
    Ok(Json(MeJson {
        username: actor.username,
        display_name: actor.display_name,
        role: actor.role.as_str(),
        scopes,
        ssh_port: ssh.as_ref().map(|ssh| ssh.port),
        ssh_host_keys: ssh.map(|ssh| ssh.fingerprints).unwrap_or_default(),
    }))
}

fn scopes(access: model::token::TokenAccess, admin: bool) -> Vec<&'static str> {
    let mut scopes = vec!["read"];
    if access == model::token::TokenAccess::Write {
        scopes.push("write");
    }
    if admin {
        scopes.push("admin");
    }
    scopes
}

/// A personal access token (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenJson {
    id: i64,
    name: String,
    /// Its first characters.
    #[schema(example = "dpat_a1B2")]
    hint: String,
    /// `read`, `write`, and `admin` when it carries an admin's powers.
    scopes: Vec<&'static str>,
    /// The sites it is limited to, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    sites: Option<Vec<String>>,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_used_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked_at: Option<DateTime<Utc>>,
}

impl From<TokenRecord> for TokenJson {
    fn from(token: TokenRecord) -> Self {
        let scopes = scopes(token.access, token.admin);
        Self {
            id: token.id,
            name: token.name,
            hint: token.hint,
            scopes,
            sites: token
                .sites
                .map(|sites| sites.into_iter().map(|(_, name)| name).collect()),
            created_at: token.created_at,
            expires_at: token.expires_at,
            last_used_at: token.last_used.map(|(at, _)| at),
            revoked_at: token.revoked_at,
        }
    }
}

/// The caller's tokens, newest first (those revoked or expired in the last 30 days too).
#[utoipa::path(
    get, path = "/api/v1/tokens", tag = "tokens",
    security(("token" = [])),
    responses(
        (status = 200, body = Vec<TokenJson>),
        Refusals,
    ),
)]
async fn list_tokens(State(state): State<AppState>, Caller(actor): Caller) -> Answer<Json<Vec<TokenJson>>> {
    let tokens = state.platform().my_tokens(Some(&actor)).await?;
    Ok(Json(tokens.into_iter().map(TokenJson::from).collect()))
}

/// A token's id in the path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TokenId {
    /// The token's id.
    id: i64,
}

/// Revokes a token (the caller's own; an admin's token with the admin scope, anyone's). It
/// stops working at once — the one the request came with too.
#[utoipa::path(
    delete, path = "/api/v1/tokens/{id}", tag = "tokens", params(TokenId),
    security(("token" = [])),
    responses(
        (status = 204),
        Refusals,
    ),
)]
async fn revoke_token(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(TokenId { id }): ApiPath<TokenId>,
) -> Answer<StatusCode> {
    state.platform().revoke_token(Some(&actor), id).await?;
    Ok(StatusCode::NO_CONTENT)
}
