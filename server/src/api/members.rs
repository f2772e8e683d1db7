//! `/api/v1/sites/{id}/members` and `/api/v1/sites/{id}/domains`: who manages a site, and the
//! names it is served at besides its own.

// utoipa's `path` macro names the `params` types by qualified paths in what it generates.
#![allow(unused_qualifications)]

use axum::{Json, extract::State, http::StatusCode};
use chrono::{DateTime, Utc};
use platform::sites::{Domain, txt_name, txt_value};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    Answer, Caller, ChangeRefusals, Refusals,
    extract::{ApiJson, ApiPath},
    sites::SiteId,
};
use crate::http::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_members, add_member))
        .routes(routes!(remove_member))
        .routes(routes!(list_domains, add_domain))
        .routes(routes!(remove_domain))
        .routes(routes!(verify_domain))
}

/// A member of a site.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberJson {
    id: i64,
    username: String,
}

/// A site's members.
#[utoipa::path(
    get, path = "/api/v1/sites/{id}/members", tag = "sites", params(SiteId),
    security(("token" = [])),
    responses(
        (status = 200, body = Vec<MemberJson>),
        Refusals,
    ),
)]
async fn list_members(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(SiteId { id }): ApiPath<SiteId>,
) -> Answer<Json<Vec<MemberJson>>> {
    let members = state.platform().site_members(Some(&actor), id).await?;
    Ok(Json(
        members
            .into_iter()
            .map(|(id, username)| MemberJson { id, username })
            .collect(),
    ))
}

/// Someone to add to a site.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMember {
    username: String,
}

/// Adds someone to a site's members.
#[utoipa::path(
    post, path = "/api/v1/sites/{id}/members", tag = "sites", params(SiteId), request_body = NewMember,
    security(("token" = [])),
    responses(
        (status = 204),
        ChangeRefusals,
    ),
)]
async fn add_member(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(SiteId { id }): ApiPath<SiteId>,
    ApiJson(NewMember { username }): ApiJson<NewMember>,
) -> Answer<StatusCode> {
    state.platform().add_member(Some(&actor), id, &username).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A site and one of its members.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SiteMember {
    /// The site's id.
    id: i32,
    /// The member's user id.
    user: i64,
}

/// Removes someone from a site's members (never its last one).
#[utoipa::path(
    delete, path = "/api/v1/sites/{id}/members/{user}", tag = "sites", params(SiteMember),
    security(("token" = [])),
    responses(
        (status = 204),
        ChangeRefusals,
    ),
)]
async fn remove_member(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(SiteMember { id, user }): ApiPath<SiteMember>,
) -> Answer<StatusCode> {
    state.platform().remove_member(Some(&actor), id, user).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A domain of a site's own, and how to prove it is the site's.
#[derive(Debug, Serialize, ToSchema)]
pub struct DomainJson {
    id: i64,
    host: String,
    /// Whether it is verified (and so served).
    verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    verified_at: Option<DateTime<Utc>>,
    /// The TXT record that proves it: its name…
    #[schema(example = "_director.www.example.org")]
    txt_name: String,
    /// …and its value.
    txt_value: String,
    /// Why the last check failed, if it did.
    #[serde(skip_serializing_if = "String::is_empty")]
    last_check_error: String,
}

impl From<Domain> for DomainJson {
    fn from(domain: Domain) -> Self {
        Self {
            verified: domain.verified_at.is_some(),
            verified_at: domain.verified_at,
            txt_name: txt_name(&domain.host),
            txt_value: txt_value(&domain.token),
            id: domain.id,
            host: domain.host,
            last_check_error: domain.last_check_error,
        }
    }
}

/// A site's own domains.
#[utoipa::path(
    get, path = "/api/v1/sites/{id}/domains", tag = "sites", params(SiteId),
    security(("token" = [])),
    responses(
        (status = 200, body = Vec<DomainJson>),
        Refusals,
    ),
)]
async fn list_domains(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(SiteId { id }): ApiPath<SiteId>,
) -> Answer<Json<Vec<DomainJson>>> {
    let domains = state.platform().site_domains(Some(&actor), id).await?;
    Ok(Json(domains.into_iter().map(DomainJson::from).collect()))
}

/// A domain to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDomain {
    /// The host name (`www.example.org`).
    host: String,
}

/// Adds a domain to a site: it is served once its TXT record proves it (an admin's at once).
#[utoipa::path(
    post, path = "/api/v1/sites/{id}/domains", tag = "sites", params(SiteId), request_body = NewDomain,
    security(("token" = [])),
    responses(
        (status = 201, body = DomainJson),
        ChangeRefusals,
    ),
)]
async fn add_domain(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(SiteId { id }): ApiPath<SiteId>,
    ApiJson(NewDomain { host }): ApiJson<NewDomain>,
) -> Answer<(StatusCode, Json<DomainJson>)> {
    let domain = state.platform().add_domain(Some(&actor), id, &host).await?;
    Ok((StatusCode::CREATED, Json(domain.into())))
}

/// A site and one of its domains.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SiteDomain {
    /// The site's id.
    id: i32,
    /// The domain's id.
    domain: i64,
}

/// Removes a domain from a site: it is no longer served.
#[utoipa::path(
    delete, path = "/api/v1/sites/{id}/domains/{domain}", tag = "sites", params(SiteDomain),
    security(("token" = [])),
    responses(
        (status = 204),
        ChangeRefusals,
    ),
)]
async fn remove_domain(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(SiteDomain { id, domain }): ApiPath<SiteDomain>,
) -> Answer<StatusCode> {
    state.platform().remove_domain(Some(&actor), id, domain).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Checks a domain's TXT record now; verified, it is served.
#[utoipa::path(
    post, path = "/api/v1/sites/{id}/domains/{domain}/verify", tag = "sites", params(SiteDomain),
    security(("token" = [])),
    responses(
        (status = 200, body = DomainJson),
        ChangeRefusals,
    ),
)]
async fn verify_domain(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(SiteDomain { id, domain }): ApiPath<SiteDomain>,
) -> Answer<Json<DomainJson>> {
    let domain = state.platform().verify_domain(Some(&actor), id, domain).await?;
    Ok(Json(domain.into()))
}
