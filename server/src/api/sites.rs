//! `/api/v1/sites` and `/api/v1/operations`: sites, and the operations that change them.

// utoipa's `path` macro names the `params` types by qualified paths in what it generates.
#![allow(unused_qualifications)]

use axum::{extract::State, http::StatusCode};
use chrono::{DateTime, Utc};
use model::Stored as _;
use platform::sites::{NewSite, OperationRecord, Site, SiteQuery, Whose};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    Answer, Caller, ChangeRefusals, Refusals,
    extract::{ApiJson, ApiPath, ApiQuery},
};
use crate::http::AppState;
use axum::Json;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_sites, create_site))
        .routes(routes!(get_site, delete_site))
        .routes(routes!(restart_site))
        .routes(routes!(set_served))
        .routes(routes!(site_operations))
        .routes(routes!(get_operation))
}

/// A site.
#[derive(Debug, Serialize, ToSchema)]
pub struct SiteJson {
    id: i32,
    name: String,
    description: String,
    /// `static` or `dynamic`.
    #[schema(example = "static")]
    kind: &'static str,
    /// Where it is in its life: `provisioning`, `running`, `stopped`, `failing`, `deleting`.
    #[schema(example = "running")]
    state: &'static str,
    /// `enabled` (served), `not-served` (taken off the air by a member) or `disabled` (by an admin).
    #[schema(example = "enabled")]
    availability: &'static str,
    /// Its image's catalogue name.
    image: String,
    /// Where it is served.
    url: String,
    /// Its own verified domains.
    domains: Vec<String>,
    cpu_millis: i32,
    memory_mb: i32,
    body_limit_mb: i32,
    created_at: DateTime<Utc>,
}

impl SiteJson {
    fn of(state: &AppState, site: Site) -> Self {
        Self {
            url: state.platform().url_of(&site),
            id: site.id,
            name: site.name,
            description: site.description,
            kind: site.kind.stored_name(),
            state: site.state.stored_name(),
            availability: site.availability.stored_name(),
            image: site.image,
            domains: site.domains,
            cpu_millis: site.cpu_millis,
            memory_mb: site.memory_mb,
            body_limit_mb: site.body_limit_mb,
            created_at: site.created_at,
        }
    }
}

/// A page of sites.
#[derive(Debug, Serialize, ToSchema)]
pub struct SitePage {
    sites: Vec<SiteJson>,
    /// Pass as `after` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

/// Which sites to list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListSites {
    /// Only sites with this in their name.
    name: Option<String>,
    /// The `next` of the page before.
    after: Option<String>,
    /// Sites per page (1–200, default 50).
    limit: Option<i64>,
    /// Every site, not only the caller's (admin tokens with the admin scope).
    #[serde(default)]
    all: bool,
}

/// Lists the caller's sites (or every site), by name, a page at a time.
#[utoipa::path(
    get, path = "/api/v1/sites", tag = "sites", params(ListSites),
    security(("token" = [])),
    responses(
        (status = 200, body = SitePage),
        Refusals,
    ),
)]
async fn list_sites(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiQuery(query): ApiQuery<ListSites>,
) -> Answer<Json<SitePage>> {
    let page = state
        .platform()
        .list_sites(
            Some(&actor),
            &SiteQuery {
                whose: if query.all { Whose::Everyone } else { Whose::Mine },
                name: query.name,
                after: query.after,
                limit: query.limit.unwrap_or(50),
            },
        )
        .await?;
    Ok(Json(SitePage {
        sites: page
            .sites
            .into_iter()
            .map(|site| SiteJson::of(&state, site))
            .collect(),
        next: page.next,
    }))
}

/// A new site.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSiteJson {
    /// Its name: its address is `<name>.<sites domain>`.
    #[schema(pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", example = "blog")]
    name: String,
    /// `static` or `dynamic`.
    #[schema(pattern = "^(static|dynamic)$", example = "static")]
    kind: String,
    /// A catalogue image's name (dynamic sites; static sites may leave it out).
    #[serde(default)]
    image: String,
    #[serde(default)]
    description: String,
    /// `user`, `project`, `activity` or `other` (default `user`).
    #[serde(default)]
    purpose: String,
}

/// A change queued: the operation that carries it out.
#[derive(Debug, Serialize, ToSchema)]
pub struct Queued {
    /// Follow it at `/api/v1/operations/{operation}`.
    pub(super) operation: i64,
}

/// What a new site is for, as asked: `user` when it was not said.
pub(super) fn purpose_or_user(purpose: String) -> String {
    if purpose.is_empty() {
        "user".to_owned()
    } else {
        purpose
    }
}

/// A site made: the site, and the operation that makes it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Created {
    site: SiteJson,
    operation: i64,
}

/// Creates a site; the operation that makes it runs in the background.
#[utoipa::path(
    post, path = "/api/v1/sites", tag = "sites", request_body = NewSiteJson,
    security(("token" = [])),
    responses(
        (status = 202, body = Created),
        ChangeRefusals,
    ),
)]
async fn create_site(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiJson(new): ApiJson<NewSiteJson>,
) -> Answer<(StatusCode, Json<Created>)> {
    let platform = state.platform();
    let image = if new.image.is_empty() {
        let dynamic = new.kind == "dynamic";
        platform
            .site_images(Some(&actor))
            .await?
            .into_iter()
            .find(
                |(_, _, serves_static, serves_dynamic)| {
                    if dynamic { *serves_dynamic } else { *serves_static }
                },
            )
            .map(|(name, ..)| name)
            .unwrap_or_default()
    } else {
        new.image
    };
    let (site, operation) = platform
        .create_site(
            Some(&actor),
            NewSite {
                name: new.name,
                description: new.description,
                purpose: purpose_or_user(new.purpose),
                kind: new.kind,
                image,
            },
        )
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Created {
            site: SiteJson::of(&state, site),
            operation,
        }),
    ))
}

/// A site's id in the path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SiteId {
    /// The site's id.
    pub(super) id: i32,
}

/// One site.
#[utoipa::path(
    get, path = "/api/v1/sites/{id}", tag = "sites", params(SiteId),
    security(("token" = [])),
    responses(
        (status = 200, body = SiteJson),
        Refusals,
    ),
)]
async fn get_site(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(SiteId { id }): ApiPath<SiteId>,
) -> Answer<Json<SiteJson>> {
    let site = state.platform().site(Some(&actor), id).await?;
    Ok(Json(SiteJson::of(&state, site)))
}

/// Deletes a site: its files, service, routes, databases and record. The operation runs in the
/// background.
#[utoipa::path(
    delete, path = "/api/v1/sites/{id}", tag = "sites", params(SiteId),
    security(("token" = [])),
    responses(
        (status = 202, body = Queued),
        ChangeRefusals,
    ),
)]
async fn delete_site(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(SiteId { id }): ApiPath<SiteId>,
) -> Answer<(StatusCode, Json<Queued>)> {
    let platform = state.platform();
    // The manager asks people to type the name; a request that names the site by its id has
    // said which one it means.
    let site = platform.site(Some(&actor), id).await?;
    let operation = platform.delete_site(Some(&actor), id, &site.name).await?;
    Ok((StatusCode::ACCEPTED, Json(Queued { operation })))
}

/// Restarts a dynamic site: a new task replaces the old one (start-first).
#[utoipa::path(
    post, path = "/api/v1/sites/{id}/restart", tag = "sites", params(SiteId),
    security(("token" = [])),
    responses(
        (status = 202, body = Queued),
        ChangeRefusals,
    ),
)]
async fn restart_site(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(SiteId { id }): ApiPath<SiteId>,
) -> Answer<(StatusCode, Json<Queued>)> {
    let operation = state.platform().restart_site(Some(&actor), id).await?;
    Ok((StatusCode::ACCEPTED, Json(Queued { operation })))
}

/// Whether a site is served.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Served {
    /// `true` to put it on the air, `false` to take it off.
    served: bool,
}

/// Puts a site on the air or takes it off.
#[utoipa::path(
    put, path = "/api/v1/sites/{id}/served", tag = "sites", params(SiteId), request_body = Served,
    security(("token" = [])),
    responses(
        (status = 202, body = Queued),
        ChangeRefusals,
    ),
)]
async fn set_served(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(SiteId { id }): ApiPath<SiteId>,
    ApiJson(Served { served }): ApiJson<Served>,
) -> Answer<(StatusCode, Json<Queued>)> {
    let operation = state.platform().set_served(Some(&actor), id, served).await?;
    Ok((StatusCode::ACCEPTED, Json(Queued { operation })))
}

/// An operation: a change to a site, carried out as actions in order.
#[derive(Debug, Serialize, ToSchema)]
pub struct OperationJson {
    id: i64,
    site: i32,
    /// What it does (`create-site`, `restart-site`, …).
    #[schema(example = "create-site")]
    kind: &'static str,
    /// `queued`, `running`, `done` or `failed`.
    #[schema(example = "done")]
    state: &'static str,
    created_at: DateTime<Utc>,
    actions: Vec<ActionJson>,
}

/// One action of an operation.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActionJson {
    #[schema(example = "put-routes")]
    action: &'static str,
    /// `pending`, `running`, `done` or `failed`.
    #[schema(example = "done")]
    state: &'static str,
    /// What it said (why, when it failed).
    output: String,
}

impl From<OperationRecord> for OperationJson {
    fn from(record: OperationRecord) -> Self {
        Self {
            id: record.id,
            site: record.site_id,
            kind: record.kind.stored_name(),
            state: record.state.stored_name(),
            created_at: record.created_at,
            actions: record
                .actions
                .into_iter()
                .map(|action| ActionJson {
                    action: action.action.stored_name(),
                    state: action.state.stored_name(),
                    output: action.output,
                })
                .collect(),
        }
    }
}

/// A site's operations, newest first.
#[utoipa::path(
    get, path = "/api/v1/sites/{id}/operations", tag = "sites", params(SiteId),
    security(("token" = [])),
    responses(
        (status = 200, body = Vec<OperationJson>),
        Refusals,
    ),
)]
async fn site_operations(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(SiteId { id }): ApiPath<SiteId>,
) -> Answer<Json<Vec<OperationJson>>> {
    let records = state.platform().site_operations(Some(&actor), id).await?;
    Ok(Json(records.into_iter().map(OperationJson::from).collect()))
}

/// An operation's id in the path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct OperationId {
    /// The operation's id.
    pub(super) id: i64,
}

/// One operation, with its actions.
#[utoipa::path(
    get, path = "/api/v1/operations/{id}", tag = "sites", params(OperationId),
    security(("token" = [])),
    responses(
        (status = 200, body = OperationJson),
        Refusals,
    ),
)]
async fn get_operation(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(OperationId { id }): ApiPath<OperationId>,
) -> Answer<Json<OperationJson>> {
    let record = state.platform().operation(Some(&actor), id).await?;
    Ok(Json(record.into()))
}
