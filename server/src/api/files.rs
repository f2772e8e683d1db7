//! `/api/v1/sites/{id}/files`: a site's files, under the same rules as the file manager's
//! (every path resolved inside the site's directory by the kernel, never through a link).

// utoipa's `path` macro names the `params` types by qualified paths in what it generates.
#![allow(unused_qualifications)]

use std::sync::Arc;

use axum::{
    Json,
    extract::{Request, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use platform::{Access, files::SiteFiles};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    Answer, Caller, ChangeRefusals, ProblemBody,
    extract::{ApiJson, ApiPath, ApiQuery},
    sites::SiteId,
};
use crate::http::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_files, delete_path))
        .routes(routes!(download))
        .routes(routes!(upload))
        .routes(routes!(move_path))
        .routes(routes!(make_folder))
}

/// A path in the site's directory.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct At {
    /// Relative to the site's directory (`public/index.html`); empty for the directory itself.
    #[serde(default)]
    path: String,
}

/// An entry of a folder.
#[derive(Debug, Serialize, ToSchema)]
pub struct EntryJson {
    name: String,
    /// `file`, `folder` or `link` (links are never followed).
    #[schema(example = "file")]
    kind: &'static str,
    size: u64,
    /// Permission bits, in octal (`644`).
    #[schema(example = "644")]
    mode: String,
    /// Last change, seconds since 1970.
    modified: i64,
}

async fn files_of(
    state: &AppState,
    actor: &platform::Actor,
    site: i32,
    access: Access,
) -> Answer<Arc<SiteFiles>> {
    Ok(state.platform().site_files(Some(actor), site, access).await?)
}

/// A folder's entries (folders first).
#[utoipa::path(
    get, path = "/api/v1/sites/{id}/files", tag = "files", params(SiteId, At),
    security(("token" = [])),
    responses(
        (status = 200, body = Vec<EntryJson>),
        ChangeRefusals,
    ),
)]
async fn list_files(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(SiteId { id }): ApiPath<SiteId>,
    ApiQuery(At { path }): ApiQuery<At>,
) -> Answer<Json<Vec<EntryJson>>> {
    let files = files_of(&state, &actor, id, Access::Read).await?;
    let entries = files
        .run(move |files| files.list(&app::api::clean(&path)))
        .await?;
    Ok(Json(
        entries
            .into_iter()
            .map(|entry| EntryJson {
                kind: if entry.link {
                    "link"
                } else if entry.dir {
                    "folder"
                } else {
                    "file"
                },
                name: entry.name,
                size: entry.size,
                mode: format!("{:o}", entry.mode & 0o7777),
                modified: entry.modified,
            })
            .collect(),
    ))
}

/// Deletes a file, a link (never what it points to) or a folder with everything in it.
#[utoipa::path(
    delete, path = "/api/v1/sites/{id}/files", tag = "files", params(SiteId, At),
    security(("token" = [])),
    responses(
        (status = 204),
        ChangeRefusals,
    ),
)]
async fn delete_path(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(SiteId { id }): ApiPath<SiteId>,
    ApiQuery(At { path }): ApiQuery<At>,
) -> Answer<StatusCode> {
    let files = files_of(&state, &actor, id, Access::Write).await?;
    files
        .run(move |files| files.remove_all(&app::api::clean(&path)))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A file's bytes as they are, or a folder as a zip.
#[utoipa::path(
    get, path = "/api/v1/sites/{id}/files/download", tag = "files", params(SiteId, At),
    security(("token" = [])),
    responses(
        (status = 200, description = "The file, or the folder as a zip", content_type = "application/octet-stream", body = Vec<u8>),
        ChangeRefusals,
    ),
)]
async fn download(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(SiteId { id }): ApiPath<SiteId>,
    ApiQuery(At { path }): ApiQuery<At>,
) -> Answer<Response> {
    // Checked here first, so that a refusal is a problem like any other.
    files_of(&state, &actor, id, Access::Read).await?;
    Ok(crate::files::download_as(&state, actor, id, &path).await)
}

/// Uploads files (`multipart/form-data`, one `file` part each, named by their file names) into
/// a folder; `replace=1` as a first part (`1`) overwrites files of the same names. The answer
/// lists what was saved and what was refused, and why.
#[utoipa::path(
    post, path = "/api/v1/sites/{id}/files/upload", tag = "files", params(SiteId, At),
    request_body(content = String, content_type = "multipart/form-data"),
    security(("token" = [])),
    responses(
        (status = 200, description = "What was saved and refused", body = crate::files::Report),
        (status = 400, description = "A bad address (a problem), or nothing could be read (the report, why per part)",
            content((ProblemBody = "application/problem+json"), (crate::files::Report = "application/json"))),
        (status = 401, body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "A name was taken: what was saved and refused", body = crate::files::Report),
        (status = 413, description = "A file or the whole was too large", body = crate::files::Report),
        (status = 429, body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, body = ProblemBody, content_type = "application/problem+json"),
        (status = 507, description = "The site's disk is full", body = crate::files::Report),
    ),
)]
async fn upload(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(SiteId { id }): ApiPath<SiteId>,
    ApiQuery(At { path }): ApiQuery<At>,
    headers: HeaderMap,
    request: Request,
) -> Answer<Response> {
    files_of(&state, &actor, id, Access::Write).await?;
    Ok(crate::files::upload_as(&state, actor, id, &path, &headers, request).await)
}

/// A move.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Move {
    /// What to move.
    from: String,
    /// Where to: a name that is not taken (nothing is ever replaced).
    to: String,
}

/// Moves or renames a file or folder within the site.
#[utoipa::path(
    post, path = "/api/v1/sites/{id}/files/move", tag = "files", params(SiteId), request_body = Move,
    security(("token" = [])),
    responses(
        (status = 204),
        ChangeRefusals,
    ),
)]
async fn move_path(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(SiteId { id }): ApiPath<SiteId>,
    ApiJson(Move { from, to }): ApiJson<Move>,
) -> Answer<StatusCode> {
    let files = files_of(&state, &actor, id, Access::Write).await?;
    files
        .run(move |files| files.rename(&app::api::clean(&from), &app::api::clean(&to)))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A folder to make.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFolder {
    /// Its path (its parent must exist).
    path: String,
}

/// Makes a folder.
#[utoipa::path(
    post, path = "/api/v1/sites/{id}/files/folder", tag = "files", params(SiteId), request_body = NewFolder,
    security(("token" = [])),
    responses(
        (status = 201),
        ChangeRefusals,
    ),
)]
async fn make_folder(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(SiteId { id }): ApiPath<SiteId>,
    ApiJson(NewFolder { path }): ApiJson<NewFolder>,
) -> Answer<StatusCode> {
    let files = files_of(&state, &actor, id, Access::Write).await?;
    files
        .run(move |files| files.mkdir(&app::api::clean(&path)))
        .await?;
    Ok(StatusCode::CREATED)
}
