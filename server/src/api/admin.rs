//! What admins do through the API (tokens with the `admin` scope): users, a site's limits and
//! availability, repairs, the audit log, and the certificates that need looking at. The
//! platform checks each; a token without the scope is refused (`token-refused`).

// utoipa's `path` macro names the `params` types by qualified paths in what it generates.
#![allow(unused_qualifications)]

use axum::{Json, extract::State, http::StatusCode};
use chrono::{DateTime, Utc};
use platform::{
    UserSummary,
    accounts::UserQuery,
    sites::{Availability, Limits},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    Answer, Caller, ChangeRefusals, Refusals,
    certificates::CertificateJson,
    extract::{ApiJson, ApiPath, ApiQuery},
    sites::{Queued, SiteId},
};
use crate::http::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users))
        .routes(routes!(set_user_active))
        .routes(routes!(set_user_quota))
        .routes(routes!(audit_log))
        .routes(routes!(set_limits))
        .routes(routes!(set_availability))
        .routes(routes!(fix_site))
        .routes(routes!(certificate_problems))
}

/// An account.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserJson {
    id: i64,
    username: String,
    display_name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    email: String,
    /// `user`, `approver` or `admin`.
    #[schema(example = "user")]
    role: &'static str,
    /// Whether they may sign in.
    active: bool,
    /// The most sites they may belong to, when an admin set it (else the server's default).
    #[serde(skip_serializing_if = "Option::is_none")]
    site_quota: Option<i32>,
    created_at: DateTime<Utc>,
}

impl From<UserSummary> for UserJson {
    fn from(user: UserSummary) -> Self {
        Self {
            id: user.id,
            username: user.username,
            display_name: user.display_name,
            email: user.email,
            role: user.role.as_str(),
            active: user.active,
            site_quota: user.site_quota,
            created_at: user.created_at,
        }
    }
}

/// A page of users.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserPage {
    users: Vec<UserJson>,
    /// Pass as `after` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

/// Which users to list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListUsers {
    /// Only users with this in their username or shown name.
    name: Option<String>,
    /// The `next` of the page before.
    after: Option<String>,
    /// Users per page (1–200, default 50).
    limit: Option<i64>,
}

/// Lists the accounts, by username, a page at a time.
#[utoipa::path(
    get, path = "/api/v1/users", tag = "admin", params(ListUsers),
    security(("token" = [])),
    responses(
        (status = 200, body = UserPage),
        Refusals,
    ),
)]
async fn list_users(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiQuery(query): ApiQuery<ListUsers>,
) -> Answer<Json<UserPage>> {
    let page = state
        .platform()
        .users_page(
            Some(&actor),
            UserQuery {
                name: query.name,
                after: query.after,
                limit: query.limit.unwrap_or(50),
            },
        )
        .await?;
    Ok(Json(UserPage {
        users: page.users.into_iter().map(UserJson::from).collect(),
        next: page.next,
    }))
}

/// A user's id in the path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct UserId {
    /// The user's id.
    id: i64,
}

/// Whether an account may sign in.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Active {
    /// `false` deactivates it: its sessions, tokens and shells end at once.
    active: bool,
}

/// Activates or deactivates an account (never one's own, never the last admin).
#[utoipa::path(
    put, path = "/api/v1/users/{id}/active", tag = "admin", params(UserId), request_body = Active,
    security(("token" = [])),
    responses(
        (status = 200, body = UserJson),
        ChangeRefusals,
    ),
)]
async fn set_user_active(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(UserId { id }): ApiPath<UserId>,
    ApiJson(Active { active }): ApiJson<Active>,
) -> Answer<Json<UserJson>> {
    let user = state.platform().set_user_active(Some(&actor), id, active).await?;
    Ok(Json(user.into()))
}

/// How many sites an account may belong to.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// 0–10,000 sites; `null` for the server's default.
    quota: Option<i32>,
}

/// Sets how many sites an account may belong to.
#[utoipa::path(
    put, path = "/api/v1/users/{id}/quota", tag = "admin", params(UserId), request_body = Quota,
    security(("token" = [])),
    responses(
        (status = 200, body = UserJson),
        ChangeRefusals,
    ),
)]
async fn set_user_quota(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(UserId { id }): ApiPath<UserId>,
    ApiJson(Quota { quota }): ApiJson<Quota>,
) -> Answer<Json<UserJson>> {
    let user = state.platform().set_site_quota(Some(&actor), id, quota).await?;
    Ok(Json(user.into()))
}

/// One entry of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditJson {
    /// Its number: later entries have larger ones.
    id: i64,
    at: DateTime<Utc>,
    /// Who (a username, or `operator` for the command line).
    actor: String,
    /// What (`site.create`, `site.limits`, `token.revoke`…).
    #[schema(example = "site.create")]
    action: String,
    /// On what (a site's or user's name).
    target: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    details: String,
}

/// A page of the audit log, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    entries: Vec<AuditJson>,
    /// Pass as `before` for the next (older) page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<i64>,
}

/// Which entries of the audit log.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListAudit {
    /// The `next` of the page before: entries older than that one.
    before: Option<i64>,
    /// Entries per page (1–200, default 50).
    limit: Option<i64>,
}

/// The audit log, newest first, a page at a time.
#[utoipa::path(
    get, path = "/api/v1/audit", tag = "admin", params(ListAudit),
    security(("token" = [])),
    responses(
        (status = 200, body = AuditPage),
        Refusals,
    ),
)]
async fn audit_log(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiQuery(query): ApiQuery<ListAudit>,
) -> Answer<Json<AuditPage>> {
    let limit = query.limit.unwrap_or(50).clamp(1, platform::sites::MAX_PAGE);
    // One more than asked says whether there is a next page.
    let mut entries = state
        .platform()
        .audit_entries(Some(&actor), query.before, limit + 1)
        .await?;
    let next = platform::sites::cut_page(&mut entries, limit, |e| e.id);
    Ok(Json(AuditPage {
        entries: entries
            .into_iter()
            .map(|e| AuditJson {
                id: e.id,
                at: e.at,
                actor: e.actor,
                action: e.action,
                target: e.target,
                details: e.details,
            })
            .collect(),
        next,
    }))
}

/// A site's resource limits.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsJson {
    /// CPU, in thousandths of a core.
    cpu_millis: i32,
    /// Memory, in MiB.
    memory_mb: i32,
    /// The largest request body, in MiB.
    body_limit_mb: i32,
}

/// Sets a site's resource limits; an operation applies them.
#[utoipa::path(
    put, path = "/api/v1/sites/{id}/limits", tag = "admin", params(SiteId), request_body = LimitsJson,
    security(("token" = [])),
    responses(
        (status = 202, body = Queued),
        ChangeRefusals,
    ),
)]
async fn set_limits(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(SiteId { id }): ApiPath<SiteId>,
    ApiJson(limits): ApiJson<LimitsJson>,
) -> Answer<(StatusCode, Json<Queued>)> {
    let limits = Limits {
        cpu_millis: limits.cpu_millis,
        memory_mb: limits.memory_mb,
        body_limit_mb: limits.body_limit_mb,
    };
    let operation = state.platform().set_limits(Some(&actor), id, limits).await?;
    Ok((StatusCode::ACCEPTED, Json(Queued { operation })))
}

/// Whether an admin lets a site be served.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AdminAvailability {
    /// Its members may serve it.
    Enabled,
    /// Visitors get a page saying so, and its members cannot serve it again.
    Disabled,
}

/// A site disabled or enabled, and why.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetAvailability {
    availability: AdminAvailability,
    /// What its members are told (required to disable it).
    #[serde(default)]
    reason: String,
}

/// Disables a site, or enables it again.
#[utoipa::path(
    put, path = "/api/v1/sites/{id}/availability", tag = "admin", params(SiteId),
    request_body = SetAvailability,
    security(("token" = [])),
    responses(
        (status = 202, body = Queued),
        ChangeRefusals,
    ),
)]
async fn set_availability(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(SiteId { id }): ApiPath<SiteId>,
    ApiJson(set): ApiJson<SetAvailability>,
) -> Answer<(StatusCode, Json<Queued>)> {
    let availability = match set.availability {
        AdminAvailability::Enabled => Availability::Enabled,
        AdminAvailability::Disabled => Availability::Disabled,
    };
    let operation = state
        .platform()
        .set_availability(Some(&actor), id, availability, &set.reason)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(Queued { operation })))
}

/// Re-runs everything that makes a site (files, service, routes) with its current settings.
#[utoipa::path(
    post, path = "/api/v1/sites/{id}/fix", tag = "admin", params(SiteId),
    security(("token" = [])),
    responses(
        (status = 202, body = Queued),
        ChangeRefusals,
    ),
)]
async fn fix_site(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(SiteId { id }): ApiPath<SiteId>,
) -> Answer<(StatusCode, Json<Queued>)> {
    let operation = state.platform().fix_site(Some(&actor), id).await?;
    Ok((StatusCode::ACCEPTED, Json(Queued { operation })))
}

/// A certificate that needs an admin, with its site.
#[derive(Debug, Serialize, ToSchema)]
pub struct CertificateProblemJson {
    site: i32,
    site_name: String,
    certificate: CertificateJson,
}

/// The certificates that failed or expire within 14 days, soonest first.
#[utoipa::path(
    get, path = "/api/v1/certificates/problems", tag = "admin",
    security(("token" = [])),
    responses(
        (status = 200, body = Vec<CertificateProblemJson>),
        Refusals,
    ),
)]
async fn certificate_problems(
    State(state): State<AppState>,
    Caller(actor): Caller,
) -> Answer<Json<Vec<CertificateProblemJson>>> {
    let within = chrono::Duration::days(app::api::EXPIRY_WARNING_DAYS);
    let problems = state
        .platform()
        .certificate_problems(Some(&actor), within)
        .await?;
    Ok(Json(
        problems
            .into_iter()
            .map(|p| CertificateProblemJson {
                site: p.site_id,
                site_name: p.site_name,
                certificate: CertificateJson::new(p.record.host.clone(), Some(p.record)),
            })
            .collect(),
    ))
}
