//! `/api/v1/requests` and `/api/v1/notifications`: requests for sites (asked, reviewed,
//! withdrawn) where sites are requested rather than made, and the caller's inbox.

// utoipa's `path` macro names the `params` types by qualified paths in what it generates.
#![allow(unused_qualifications)]

use axum::{Json, extract::State, http::StatusCode};
use chrono::{DateTime, Utc};
use model::Stored as _;
use platform::{
    requests::{NewRequest, Person, RequestScope, SiteRequest},
    sites::NewSite,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    Answer, Caller, ChangeRefusals, Refusals,
    extract::{ApiJson, ApiPath, ApiQuery},
    sites::purpose_or_user,
};
use crate::http::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_requests, submit_request))
        .routes(routes!(get_request))
        .routes(routes!(approve_request))
        .routes(routes!(deny_request))
        .routes(routes!(withdraw_request))
        .routes(routes!(inbox))
        .routes(routes!(mark_read))
}

/// Someone, by name.
#[derive(Debug, Serialize, ToSchema)]
pub struct PersonJson {
    username: String,
    display_name: String,
}

impl From<Person> for PersonJson {
    fn from(person: Person) -> Self {
        Self {
            username: person.username,
            display_name: person.display_name,
        }
    }
}

/// A request for a site.
#[derive(Debug, Serialize, ToSchema)]
pub struct RequestJson {
    id: i64,
    requester: PersonJson,
    /// The approver asked; absent: any approver.
    #[serde(skip_serializing_if = "Option::is_none")]
    approver: Option<PersonJson>,
    /// The site's name.
    name: String,
    description: String,
    /// `user`, `project`, `activity` or `other`.
    #[schema(example = "user")]
    purpose: &'static str,
    /// `static` or `dynamic`.
    #[schema(example = "static")]
    kind: &'static str,
    image: String,
    /// Why they want it.
    reason: String,
    /// `submitted`, `approved` (by one step of two), `created`, `denied` or `withdrawn`.
    #[schema(example = "submitted")]
    state: &'static str,
    /// The site made for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    site: Option<i32>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<SiteRequest> for RequestJson {
    fn from(r: SiteRequest) -> Self {
        Self {
            id: r.id,
            requester: r.requester.into(),
            approver: r.approver.map(PersonJson::from),
            name: r.name,
            description: r.description,
            purpose: r.purpose.stored_name(),
            kind: r.kind.stored_name(),
            image: r.image,
            reason: r.reason,
            state: r.state.stored_name(),
            site: r.site_id,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// Whose requests.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// The caller's own.
    Mine,
    /// The open ones the caller may review (approvers and admins).
    Review,
}

/// Which requests to list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListRequests {
    /// `mine` (the default) or `review`.
    #[param(inline)]
    scope: Option<Scope>,
}

/// The caller's requests, or those they may review.
#[utoipa::path(
    get, path = "/api/v1/requests", tag = "requests", params(ListRequests),
    security(("token" = [])),
    responses(
        (status = 200, body = Vec<RequestJson>),
        Refusals,
    ),
)]
async fn list_requests(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiQuery(query): ApiQuery<ListRequests>,
) -> Answer<Json<Vec<RequestJson>>> {
    let scope = match query.scope.unwrap_or(Scope::Mine) {
        Scope::Mine => RequestScope::Mine,
        Scope::Review => RequestScope::ToReview,
    };
    let requests = state.platform().site_requests(Some(&actor), scope).await?;
    Ok(Json(requests.into_iter().map(RequestJson::from).collect()))
}

/// A site asked for.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRequestJson {
    /// The site's name.
    name: String,
    /// `static` or `dynamic`.
    kind: String,
    /// The image's catalogue name (see `/api/v1/images`).
    image: String,
    #[serde(default)]
    description: String,
    /// `user`, `project`, `activity` or `other` (`user` when absent).
    #[serde(default)]
    purpose: String,
    /// Why they want it.
    reason: String,
    /// The username of the approver to ask; absent: any approver.
    #[serde(default)]
    approver: String,
}

/// A request made.
#[derive(Debug, Serialize, ToSchema)]
pub struct RequestMade {
    /// See it at `/api/v1/requests/{id}`.
    id: i64,
}

/// Asks for a site (where sites are requested rather than made).
#[utoipa::path(
    post, path = "/api/v1/requests", tag = "requests", request_body = NewRequestJson,
    security(("token" = [])),
    responses(
        (status = 201, body = RequestMade),
        ChangeRefusals,
    ),
)]
async fn submit_request(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiJson(new): ApiJson<NewRequestJson>,
) -> Answer<(StatusCode, Json<RequestMade>)> {
    let request = NewRequest {
        site: NewSite {
            name: new.name,
            description: new.description,
            purpose: purpose_or_user(new.purpose),
            kind: new.kind,
            image: new.image,
        },
        reason: new.reason,
        approver: new.approver,
    };
    let id = state.platform().submit_request(Some(&actor), request).await?;
    Ok((StatusCode::CREATED, Json(RequestMade { id })))
}

/// A request's id in the path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct RequestId {
    /// The request's id.
    id: i64,
}

/// One step of a request's history.
#[derive(Debug, Serialize, ToSchema)]
pub struct StepJson {
    /// Who (their username then).
    who: String,
    /// `submit`, `approve`, `deny` or `withdraw`.
    #[schema(example = "approve")]
    action: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    comment: String,
    at: DateTime<Utc>,
}

/// A request and its history.
#[derive(Debug, Serialize, ToSchema)]
pub struct RequestWithSteps {
    request: RequestJson,
    /// Its steps, the first first.
    steps: Vec<StepJson>,
}

/// A request with its history (its requester's, or a reviewer's).
#[utoipa::path(
    get, path = "/api/v1/requests/{id}", tag = "requests", params(RequestId),
    security(("token" = [])),
    responses(
        (status = 200, body = RequestWithSteps),
        Refusals,
    ),
)]
async fn get_request(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(RequestId { id }): ApiPath<RequestId>,
) -> Answer<Json<RequestWithSteps>> {
    let (request, steps) = state.platform().site_request(Some(&actor), id).await?;
    Ok(Json(RequestWithSteps {
        request: request.into(),
        steps: steps
            .into_iter()
            .map(|s| StepJson {
                who: s.actor_name,
                action: s.action.stored_name(),
                comment: s.comment,
                at: s.at,
            })
            .collect(),
    }))
}

/// What a reviewer says.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Review {
    /// Read by the requester (required to deny).
    #[serde(default)]
    comment: String,
}

/// What an approval did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Approved {
    /// The site made, when this was the last approval the request needed.
    #[serde(skip_serializing_if = "Option::is_none")]
    site: Option<i32>,
}

/// Approves a request (an approver's or an admin's); the last approval makes the site.
#[utoipa::path(
    post, path = "/api/v1/requests/{id}/approve", tag = "requests", params(RequestId),
    request_body = Review,
    security(("token" = [])),
    responses(
        (status = 200, body = Approved),
        ChangeRefusals,
    ),
)]
async fn approve_request(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(RequestId { id }): ApiPath<RequestId>,
    ApiJson(Review { comment }): ApiJson<Review>,
) -> Answer<Json<Approved>> {
    let site = state
        .platform()
        .approve_request(Some(&actor), id, &comment)
        .await?;
    Ok(Json(Approved { site }))
}

/// Denies a request, with the reason its requester reads.
#[utoipa::path(
    post, path = "/api/v1/requests/{id}/deny", tag = "requests", params(RequestId),
    request_body = Review,
    security(("token" = [])),
    responses(
        (status = 204),
        ChangeRefusals,
    ),
)]
async fn deny_request(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(RequestId { id }): ApiPath<RequestId>,
    ApiJson(Review { comment }): ApiJson<Review>,
) -> Answer<StatusCode> {
    state.platform().deny_request(Some(&actor), id, &comment).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Withdraws one's own open request.
#[utoipa::path(
    post, path = "/api/v1/requests/{id}/withdraw", tag = "requests", params(RequestId),
    security(("token" = [])),
    responses(
        (status = 204),
        ChangeRefusals,
    ),
)]
async fn withdraw_request(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(RequestId { id }): ApiPath<RequestId>,
) -> Answer<StatusCode> {
    state.platform().withdraw_request(Some(&actor), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A notification.
#[derive(Debug, Serialize, ToSchema)]
pub struct NoticeJson {
    id: i64,
    /// What happened (`request-approved`, `operation-failed`, `site-disabled`…).
    #[schema(example = "request-approved")]
    event: &'static str,
    /// One line.
    subject: String,
    /// A few sentences of plain text.
    body: String,
    /// The manager's page about it.
    link: String,
    created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    read_at: Option<DateTime<Utc>>,
}

/// The caller's newest notifications.
#[derive(Debug, Serialize, ToSchema)]
pub struct Inbox {
    /// The newest 100, newest first.
    notifications: Vec<NoticeJson>,
    /// How many are unread.
    unread: i64,
}

/// The caller's inbox.
#[utoipa::path(
    get, path = "/api/v1/notifications", tag = "account",
    security(("token" = [])),
    responses(
        (status = 200, body = Inbox),
        Refusals,
    ),
)]
async fn inbox(State(state): State<AppState>, Caller(actor): Caller) -> Answer<Json<Inbox>> {
    let (items, unread) = state.platform().inbox(Some(&actor), 100).await?;
    Ok(Json(Inbox {
        notifications: items
            .into_iter()
            .map(|n| NoticeJson {
                id: n.id,
                event: n.event.stored_name(),
                subject: n.subject,
                body: n.body,
                link: n.link,
                created_at: n.created_at,
                read_at: n.read_at,
            })
            .collect(),
        unread,
    }))
}

/// Which notifications were read.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Read {
    /// One notification; absent: all of them.
    id: Option<i64>,
}

/// Marks a notification read, or all of them.
#[utoipa::path(
    post, path = "/api/v1/notifications/read", tag = "account", request_body = Read,
    security(("token" = [])),
    responses(
        (status = 204),
        ChangeRefusals,
    ),
)]
async fn mark_read(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiJson(Read { id }): ApiJson<Read>,
) -> Answer<StatusCode> {
    state.platform().mark_read(Some(&actor), id).await?;
    Ok(StatusCode::NO_CONTENT)
}
