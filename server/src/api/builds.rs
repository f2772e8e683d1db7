//! `/api/v1/sites/{id}/builds` and `/api/v1/sites/{id}/variables`: a dynamic site's image
//! builds (and a new one on demand), and the environment its service runs with.

// utoipa's `path` macro names the `params` types by qualified paths in what it generates.
#![allow(unused_qualifications)]

use axum::{Json, extract::State, http::StatusCode};
use chrono::{DateTime, Utc};
use model::Stored as _;
use platform::sites::{BuildSummary, VariableInput};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    Answer, Caller, ChangeRefusals, ProblemBody, Refusals,
    extract::{ApiJson, ApiPath},
    sites::{Queued, SiteId},
};
use crate::http::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_builds, rebuild))
        .routes(routes!(get_build))
        .routes(routes!(list_variables))
        .routes(routes!(set_variable, remove_variable))
}

/// One build of a site's image.
#[derive(Debug, Serialize, ToSchema)]
pub struct BuildJson {
    id: i64,
    /// Its number within the site.
    number: i32,
    /// `queued`, `running`, `succeeded` or `failed`.
    #[schema(example = "succeeded")]
    state: &'static str,
    /// Why it failed.
    #[serde(skip_serializing_if = "String::is_empty")]
    error: String,
    created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at: Option<DateTime<Utc>>,
    /// Its output as kept so far (only when one build is asked for).
    #[serde(skip_serializing_if = "Option::is_none")]
    log: Option<String>,
}

impl BuildJson {
    fn of(summary: BuildSummary, log: Option<String>) -> Self {
        Self {
            id: summary.id,
            number: summary.number,
            state: summary.state.stored_name(),
            error: summary.error,
            created_at: summary.created_at,
            finished_at: summary.finished_at,
            log,
        }
    }
}

/// A site's image: what it starts from, what it runs, and its latest builds.
#[derive(Debug, Serialize, ToSchema)]
pub struct SiteImageJson {
    /// The catalogue image it starts from.
    base: String,
    /// The image it runs: a build's, or its catalogue image.
    running: String,
    /// Its latest builds, newest first.
    builds: Vec<BuildJson>,
}

/// A site's image and its latest builds, newest first.
#[utoipa::path(
    get, path = "/api/v1/sites/{id}/builds", tag = "builds", params(SiteId),
    security(("token" = [])),
    responses(
        (status = 200, body = SiteImageJson),
        (status = 409, description = "A static site has no image of its own",
            body = ProblemBody, content_type = "application/problem+json"),
        Refusals,
    ),
)]
async fn list_builds(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(SiteId { id }): ApiPath<SiteId>,
) -> Answer<Json<SiteImageJson>> {
    let image = state.platform().site_image(Some(&actor), id).await?;
    Ok(Json(SiteImageJson {
        base: image.base,
        running: image.running,
        builds: image.builds.into_iter().map(|b| BuildJson::of(b, None)).collect(),
    }))
}

/// A build queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct BuildQueued {
    /// Follow it at `/api/v1/sites/{id}/builds/{build}`.
    build: i64,
}

/// Builds the site's image again from its recipe (and deploys it when it succeeds).
#[utoipa::path(
    post, path = "/api/v1/sites/{id}/builds", tag = "builds", params(SiteId),
    security(("token" = [])),
    responses(
        (status = 202, body = BuildQueued),
        ChangeRefusals,
    ),
)]
async fn rebuild(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(SiteId { id }): ApiPath<SiteId>,
) -> Answer<(StatusCode, Json<BuildQueued>)> {
    let build = state.platform().rebuild_site(Some(&actor), id).await?;
    Ok((StatusCode::ACCEPTED, Json(BuildQueued { build })))
}

/// A site and one of its builds.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SiteBuild {
    /// The site's id.
    id: i32,
    /// The build's id.
    build: i64,
}

/// One build, with its output as kept so far.
#[utoipa::path(
    get, path = "/api/v1/sites/{id}/builds/{build}", tag = "builds", params(SiteBuild),
    security(("token" = [])),
    responses(
        (status = 200, body = BuildJson),
        Refusals,
    ),
)]
async fn get_build(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(SiteBuild { id, build }): ApiPath<SiteBuild>,
) -> Answer<Json<BuildJson>> {
    let record = state.platform().site_build(Some(&actor), id, build).await?;
    Ok(Json(BuildJson::of(record.summary, Some(record.log))))
}

/// A variable of a site's environment.
#[derive(Debug, Serialize, ToSchema)]
pub struct VariableJson {
    name: String,
    /// Its value; absent for a secret, whose value is never shown again.
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    secret: bool,
    updated_at: DateTime<Utc>,
}

/// A site's environment variables.
#[utoipa::path(
    get, path = "/api/v1/sites/{id}/variables", tag = "builds", params(SiteId),
    security(("token" = [])),
    responses(
        (status = 200, body = Vec<VariableJson>),
        Refusals,
    ),
)]
async fn list_variables(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(SiteId { id }): ApiPath<SiteId>,
) -> Answer<Json<Vec<VariableJson>>> {
    let variables = state.platform().site_variables(Some(&actor), id).await?;
    Ok(Json(
        variables
            .into_iter()
            .map(|v| VariableJson {
                name: v.name,
                value: v.value,
                secret: v.secret,
                updated_at: v.updated_at,
            })
            .collect(),
    ))
}

/// A site and one of its variables.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SiteVariable {
    /// The site's id.
    id: i32,
    /// The variable's name.
    name: String,
}

/// A variable's value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VariableValue {
    /// Its value; absent keeps the value it has (to change only whether it is secret).
    value: Option<String>,
    /// Whether its value is hidden from then on.
    #[serde(default)]
    secret: bool,
}

/// Sets a variable; the site is redeployed with it.
#[utoipa::path(
    put, path = "/api/v1/sites/{id}/variables/{name}", tag = "builds", params(SiteVariable),
    request_body = VariableValue,
    security(("token" = [])),
    responses(
        (status = 202, body = Queued),
        ChangeRefusals,
    ),
)]
async fn set_variable(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(SiteVariable { id, name }): ApiPath<SiteVariable>,
    ApiJson(VariableValue { value, secret }): ApiJson<VariableValue>,
) -> Answer<(StatusCode, Json<Queued>)> {
    let input = VariableInput { name, value, secret };
    let operation = state
        .platform()
        .set_site_variable(Some(&actor), id, input)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(Queued { operation })))
}

/// Removes a variable; the site is redeployed without it.
#[utoipa::path(
    delete, path = "/api/v1/sites/{id}/variables/{name}", tag = "builds", params(SiteVariable),
    security(("token" = [])),
    responses(
        (status = 202, body = Queued),
        ChangeRefusals,
    ),
)]
async fn remove_variable(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(SiteVariable { id, name }): ApiPath<SiteVariable>,
) -> Answer<(StatusCode, Json<Queued>)> {
    let operation = state
        .platform()
        .remove_site_variable(Some(&actor), id, &name)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(Queued { operation })))
}
