//! Requests for sites: a member's "Request a site" and "My requests", the approvers' and
//! admins' "Requests to review", and the admins' policy.

use leptos::prelude::*;
pub use model::request::{ApprovalSteps, RequestAction, RequestState, SiteCreation};
use serde::{Deserialize, Serialize};

use crate::AppError;
#[cfg(feature = "ssr")]
use crate::ssr::{actor, platform, to_app_error};

/// A request as the pages list it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRow {
    /// Its id.
    pub id: i64,
    /// The site's name.
    pub name: String,
    /// Who asked (shown name and username).
    pub requester: String,
    /// The approver asked, or None for any.
    pub approver: Option<String>,
    /// Static or dynamic.
    pub kind: String,
    /// The image.
    pub image: String,
    /// What the site is for.
    pub purpose: String,
    /// Its description.
    pub description: String,
    /// Why they want it.
    pub reason: String,
    /// Where it stands.
    pub state: RequestState,
    /// The site made for it.
    pub site_id: Option<i32>,
    /// Submitted, `YYYY-MM-DD HH:MM` UTC.
    pub submitted: String,
}

/// One step of a request's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRow {
    /// Who.
    pub who: String,
    /// What they did.
    pub action: RequestAction,
    /// What they said.
    pub comment: String,
    /// When, `YYYY-MM-DD HH:MM` UTC.
    pub at: String,
}

/// A request with its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestPage {
    /// The request.
    pub request: RequestRow,
    /// Its steps, the first first.
    pub steps: Vec<StepRow>,
    /// Whether the viewer asked for it (and may withdraw it while it is open).
    pub mine: bool,
}

/// What the request form offers: the approvers one may ask, and whether sites are requested.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestChoices {
    /// (username, shown name) of each approver.
    pub approvers: Vec<(String, String)>,
    /// How members get sites.
    pub creation: SiteCreation,
    /// Who approves.
    pub steps: ApprovalSteps,
}

#[cfg(feature = "ssr")]
fn row(r: platform::requests::SiteRequest) -> RequestRow {
    RequestRow {
        id: r.id,
        name: r.name,
        requester: format!("{} ({})", r.requester.display_name, r.requester.username),
        approver: r.approver.map(|a| format!("{} ({})", a.display_name, a.username)),
        kind: r.kind.as_str().to_owned(),
        image: r.image,
        purpose: r.purpose.as_str().to_owned(),
        description: r.description,
        reason: r.reason,
        state: r.state,
        site_id: r.site_id,
        submitted: r.created_at.format("%Y-%m-%d %H:%M").to_string(),
    }
}

/// The request form's choices (and the policy, which the new-site page follows too).
#[server(prefix = "/fn", endpoint = "request_form")]
pub async fn request_form() -> Result<RequestChoices, AppError> {
    let platform = platform();
    let actor = actor().await?;
    let policy = platform.site_policy(actor.as_ref()).await.map_err(to_app_error)?;
    let approvers = platform.approvers(actor.as_ref()).await.map_err(to_app_error)?;
    Ok(RequestChoices {
        approvers: approvers
            .into_iter()
            .map(|p| (p.username, p.display_name))
            .collect(),
        creation: policy.creation,
        steps: policy.steps,
    })
}

/// Submits a request for a site; returns its id.
#[server(prefix = "/fn", endpoint = "submit_request")]
pub async fn submit_request(
    name: String,
    description: String,
    purpose: String,
    kind: String,
    image: String,
    reason: String,
    approver: String,
) -> Result<i64, AppError> {
    let platform = platform();
    let actor = actor().await?;
    let new = platform::requests::NewRequest {
        site: platform::sites::NewSite {
            name,
            description,
            purpose,
            kind,
            image,
        },
        reason,
        approver,
    };
    let id = platform
        .submit_request(actor.as_ref(), new)
        .await
        .map_err(to_app_error)?;
    leptos_axum::redirect(&format!("/requests/{id}"));
    Ok(id)
}

/// The signed-in member's requests (`scope` "mine"), or those they may review ("review").
#[server(prefix = "/fn", endpoint = "site_requests")]
pub async fn site_requests(scope: String) -> Result<Vec<RequestRow>, AppError> {
    let platform = platform();
    let actor = actor().await?;
    let scope = match scope.as_str() {
        "mine" => platform::requests::RequestScope::Mine,
        "review" => platform::requests::RequestScope::ToReview,
        _ => {
            return Err(AppError::Invalid {
                field: "scope".to_owned(),
                message: "Ask for mine or review.".to_owned(),
            });
        }
    };
    let rows = platform
        .site_requests(actor.as_ref(), scope)
        .await
        .map_err(to_app_error)?;
    Ok(rows.into_iter().map(row).collect())
}

/// A request with its history.
#[server(prefix = "/fn", endpoint = "site_request")]
pub async fn site_request(id: i64) -> Result<RequestPage, AppError> {
    let platform = platform();
    let actor = actor().await?;
    let (request, steps) = platform
        .site_request(actor.as_ref(), id)
        .await
        .map_err(to_app_error)?;
    let mine = actor.as_ref().map(|a| a.username.as_str()) == Some(request.requester.username.as_str());
    Ok(RequestPage {
        request: row(request),
        steps: steps
            .into_iter()
            .map(|s| StepRow {
                who: s.actor_name,
                action: s.action,
                comment: s.comment,
                at: s.at.format("%Y-%m-%d %H:%M").to_string(),
            })
            .collect(),
        mine,
    })
}

/// Approves a request (an approver's, or an admin's); returns the site made, if this was the
/// last approval.
#[server(prefix = "/fn", endpoint = "approve_request")]
pub async fn approve_request(id: i64, comment: String) -> Result<Option<i32>, AppError> {
    let platform = platform();
    let actor = actor().await?;
    platform
        .approve_request(actor.as_ref(), id, &comment)
        .await
        .map_err(to_app_error)
}

/// Denies a request, with the reason its requester reads.
#[server(prefix = "/fn", endpoint = "deny_request")]
pub async fn deny_request(id: i64, comment: String) -> Result<(), AppError> {
    let platform = platform();
    let actor = actor().await?;
    platform
        .deny_request(actor.as_ref(), id, &comment)
        .await
        .map_err(to_app_error)
}

/// Withdraws one's own open request.
#[server(prefix = "/fn", endpoint = "withdraw_request")]
pub async fn withdraw_request(id: i64) -> Result<(), AppError> {
    let platform = platform();
    let actor = actor().await?;
    platform
        .withdraw_request(actor.as_ref(), id)
        .await
        .map_err(to_app_error)
}

/// Sets how members get sites (admins only).
#[server(prefix = "/fn", endpoint = "set_site_policy")]
pub async fn set_site_policy(creation: SiteCreation, steps: ApprovalSteps) -> Result<(), AppError> {
    let platform = platform();
    let actor = actor().await?;
    platform
        .set_site_policy(actor.as_ref(), platform::requests::SitePolicy { creation, steps })
        .await
        .map_err(to_app_error)
}
