//! `/api/v1/sites/{id}/databases`: a site's databases — made, their password revealed or
//! changed, deleted, and statements run in them as the site's own role.

// utoipa's `path` macro names the `params` types by qualified paths in what it generates.
#![allow(unused_qualifications)]

use axum::{Json, extract::State, http::StatusCode};
use model::{Stored as _, database::ConsoleRun};
use platform::sites::DatabaseKind;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    Answer, Caller, ChangeRefusals, Refusals,
    extract::{ApiJson, ApiPath},
    sites::{Queued, SiteId},
};
use crate::http::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_databases, add_database))
        .routes(routes!(delete_database))
        .routes(routes!(reveal_database))
        .routes(routes!(rotate_password))
        .routes(routes!(run_sql))
}

/// Which database server: how the document names [`DatabaseKind`]'s values.
#[derive(ToSchema)]
#[schema(as = DatabaseKind)]
#[allow(dead_code, reason = "a description for the document only")]
enum KindSchema {
    #[schema(rename = "postgresql")]
    Postgresql,
    #[schema(rename = "mysql")]
    Mysql,
}

/// One of a site's databases.
#[derive(Debug, Serialize, ToSchema)]
pub struct DatabaseJson {
    /// `postgresql` or `mysql`.
    #[schema(example = "postgresql")]
    kind: &'static str,
    /// `creating`, `ready` or `deleting`.
    #[schema(example = "ready")]
    state: &'static str,
    /// The database's (and its role's) name.
    name: String,
    /// Its URL without the password.
    url: String,
    /// Its size on disk, in bytes, when its server answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    size_bytes: Option<u64>,
    /// Its connections now, when its server answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    connections: Option<u32>,
}

/// A site's databases.
#[utoipa::path(
    get, path = "/api/v1/sites/{id}/databases", tag = "databases", params(SiteId),
    security(("token" = [])),
    responses(
        (status = 200, body = Vec<DatabaseJson>),
        Refusals,
    ),
)]
async fn list_databases(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(SiteId { id }): ApiPath<SiteId>,
) -> Answer<Json<Vec<DatabaseJson>>> {
    let databases = state.platform().databases(Some(&actor), id).await?;
    Ok(Json(
        databases
            .into_iter()
            .map(|d| DatabaseJson {
                kind: d.kind.stored_name(),
                state: d.state.stored_name(),
                name: d.name,
                url: d.url,
                size_bytes: d.size_bytes,
                connections: d.connections,
            })
            .collect(),
    ))
}

/// A database to make.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDatabase {
    #[schema(value_type = KindSchema)]
    kind: DatabaseKind,
}

/// Gives a site a database of a kind (one of each at most); an operation makes it.
#[utoipa::path(
    post, path = "/api/v1/sites/{id}/databases", tag = "databases", params(SiteId),
    request_body = NewDatabase,
    security(("token" = [])),
    responses(
        (status = 202, body = Queued),
        ChangeRefusals,
    ),
)]
async fn add_database(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(SiteId { id }): ApiPath<SiteId>,
    ApiJson(NewDatabase { kind }): ApiJson<NewDatabase>,
) -> Answer<(StatusCode, Json<Queued>)> {
    let operation = state.platform().add_database(Some(&actor), id, kind).await?;
    Ok((StatusCode::ACCEPTED, Json(Queued { operation })))
}

/// A site and one of its databases.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SiteDatabase {
    /// The site's id.
    id: i32,
    /// `postgresql` or `mysql`.
    #[param(value_type = KindSchema)]
    kind: DatabaseKind,
}

/// Deletes a site's database and everything in it; an operation drops it.
#[utoipa::path(
    delete, path = "/api/v1/sites/{id}/databases/{kind}", tag = "databases", params(SiteDatabase),
    security(("token" = [])),
    responses(
        (status = 202, body = Queued),
        ChangeRefusals,
    ),
)]
async fn delete_database(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(SiteDatabase { id, kind }): ApiPath<SiteDatabase>,
) -> Answer<(StatusCode, Json<Queued>)> {
    let platform = state.platform();
    // The manager asks people to type the database's name; a request that names it by its
    // site and kind has said which one it means.
    let name = platform::sites::database_name(&platform.site(Some(&actor), id).await?);
    let operation = platform.delete_database(Some(&actor), id, kind, &name).await?;
    Ok((StatusCode::ACCEPTED, Json(Queued { operation })))
}

/// How to reach a database, its password included.
#[derive(Debug, Serialize, ToSchema)]
pub struct Revealed {
    /// The URL with the password (`postgresql://site_12:…@host:5432/site_12`).
    url: String,
}

/// The database's URL with its password (each time an audit entry).
#[utoipa::path(
    post, path = "/api/v1/sites/{id}/databases/{kind}/reveal", tag = "databases", params(SiteDatabase),
    security(("token" = [])),
    responses(
        (status = 200, body = Revealed),
        ChangeRefusals,
    ),
)]
async fn reveal_database(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(SiteDatabase { id, kind }): ApiPath<SiteDatabase>,
) -> Answer<Json<Revealed>> {
    let connection = state.platform().reveal_database(Some(&actor), id, kind).await?;
    Ok(Json(Revealed {
        url: connection.url(true),
    }))
}

/// Gives the database's role a new password (the site is redeployed with it).
#[utoipa::path(
    post, path = "/api/v1/sites/{id}/databases/{kind}/rotate", tag = "databases", params(SiteDatabase),
    security(("token" = [])),
    responses(
        (status = 202, body = Queued),
        ChangeRefusals,
    ),
)]
async fn rotate_password(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(SiteDatabase { id, kind }): ApiPath<SiteDatabase>,
) -> Answer<(StatusCode, Json<Queued>)> {
    let operation = state
        .platform()
        .rotate_database_password(Some(&actor), id, kind)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(Queued { operation })))
}

/// Statements to run.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Sql {
    /// One or more statements, `;`-separated.
    #[schema(example = "SELECT 1;")]
    sql: String,
}

/// Runs statements in the database as the site's own role, within the console's bounds of
/// time and rows; an error stops the run and is in its answer (placed in the text when the
/// server says where).
#[utoipa::path(
    post, path = "/api/v1/sites/{id}/databases/{kind}/sql", tag = "databases", params(SiteDatabase),
    request_body = Sql,
    security(("token" = [])),
    responses(
        (status = 200, description = "What each statement gave, and the error that stopped the run, if one did", body = Object),
        ChangeRefusals,
    ),
)]
async fn run_sql(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(SiteDatabase { id, kind }): ApiPath<SiteDatabase>,
    ApiJson(Sql { sql }): ApiJson<Sql>,
) -> Answer<Json<ConsoleRun>> {
    let run = state.platform().run_sql(Some(&actor), id, kind, &sql).await?;
    Ok(Json(run))
}
