//! `/api/v1/sites/{id}/certificates`, `/api/v1/keys` and `/api/v1/images`: what a member reads
//! about their sites' HTTPS, their SSH keys, and the images a new site may use.

// utoipa's `path` macro names the `params` types by qualified paths in what it generates.
#![allow(unused_qualifications)]

use axum::{Json, extract::State};
use chrono::{DateTime, Utc};
use model::Stored as _;
use platform::sites::CertificateRecord;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    Answer, Caller, Refusals,
    extract::{ApiPath, ApiQuery},
    sites::SiteId,
};
use crate::http::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(site_certificates))
        .routes(routes!(ssh_keys))
        .routes(routes!(images))
}

/// One host's certificate.
#[derive(Debug, Serialize, ToSchema)]
pub struct CertificateJson {
    host: String,
    /// `pending` (being asked for), `issued` or `failed`.
    #[schema(example = "issued")]
    state: &'static str,
    /// When the certificate the edge holds expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    not_after: Option<DateTime<Utc>>,
    /// Why the last attempt failed, in the certificate authority's words.
    #[serde(skip_serializing_if = "String::is_empty")]
    error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    failed_at: Option<DateTime<Utc>>,
    /// When the next attempt starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_at: Option<DateTime<Utc>>,
    /// Failures since the last certificate.
    attempts: i32,
}

impl CertificateJson {
    /// `host`'s certificate; a host never asked for yet is pending (the worker asks within
    /// seconds).
    pub(super) fn new(host: String, record: Option<CertificateRecord>) -> Self {
        match record {
            Some(r) => Self {
                host,
                state: r.state.stored_name(),
                not_after: r.not_after,
                error: r.error,
                failed_at: r.failed_at,
                retry_at: r.retry_at,
                attempts: r.attempts,
            },
            None => Self {
                host,
                state: platform::sites::CertificateState::Pending.stored_name(),
                not_after: None,
                error: String::new(),
                failed_at: None,
                retry_at: None,
                attempts: 0,
            },
        }
    }
}

/// A site's hosts and their certificates.
#[derive(Debug, Serialize, ToSchema)]
pub struct SiteCertificates {
    /// Whether Director's edge gets certificates (else the sites are served over plain HTTP,
    /// or Traefik keeps the certificates to itself, and the list is empty).
    https: bool,
    certificates: Vec<CertificateJson>,
}

/// The certificate of each of a site's hosts: its own name, then its verified domains.
#[utoipa::path(
    get, path = "/api/v1/sites/{id}/certificates", tag = "sites", params(SiteId),
    security(("token" = [])),
    responses(
        (status = 200, body = SiteCertificates),
        Refusals,
    ),
)]
async fn site_certificates(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(SiteId { id }): ApiPath<SiteId>,
) -> Answer<Json<SiteCertificates>> {
    let platform = state.platform();
    let hosts = platform.site_certificates(Some(&actor), id).await?;
    let https = platform.tracks_certificates();
    Ok(Json(SiteCertificates {
        https,
        certificates: if https {
            hosts
                .into_iter()
                .map(|h| CertificateJson::new(h.host, h.record))
                .collect()
        } else {
            Vec::new()
        },
    }))
}

/// An SSH key.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyJson {
    id: i64,
    name: String,
    #[schema(example = "ssh-ed25519")]
    algorithm: String,
    /// As `ssh-keygen -l` prints it.
    #[schema(example = "SHA256:…")]
    fingerprint: String,
    created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_used_at: Option<DateTime<Utc>>,
}

/// Whose keys.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WhoseKeys {
    /// Another user's id (admin tokens with the admin scope); the caller's own when absent.
    user: Option<i64>,
}

/// The SSH keys that open the caller's sites (`ssh`, `sftp`, `git`). Keys are added and
/// removed in the manager, signed in: a token never changes what signs in.
#[utoipa::path(
    get, path = "/api/v1/keys", tag = "account", params(WhoseKeys),
    security(("token" = [])),
    responses(
        (status = 200, body = Vec<KeyJson>),
        Refusals,
    ),
)]
async fn ssh_keys(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiQuery(WhoseKeys { user }): ApiQuery<WhoseKeys>,
) -> Answer<Json<Vec<KeyJson>>> {
    let keys = state.platform().ssh_keys(Some(&actor), user).await?;
    Ok(Json(
        keys.into_iter()
            .map(|k| KeyJson {
                id: k.id,
                name: k.name,
                algorithm: k.algorithm,
                fingerprint: k.fingerprint,
                created_at: k.created_at,
                last_used_at: k.last_used_at,
            })
            .collect(),
    ))
}

/// An image a new site may use.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImageJson {
    /// Its name (`image` when creating a site).
    #[schema(example = "python")]
    name: String,
    description: String,
    /// Whether it serves static sites.
    serves_static: bool,
    /// Whether it runs dynamic sites.
    serves_dynamic: bool,
}

/// The images a new site may use.
#[utoipa::path(
    get, path = "/api/v1/images", tag = "sites",
    security(("token" = [])),
    responses(
        (status = 200, body = Vec<ImageJson>),
        Refusals,
    ),
)]
async fn images(State(state): State<AppState>, Caller(actor): Caller) -> Answer<Json<Vec<ImageJson>>> {
    let images = state.platform().site_images(Some(&actor)).await?;
    Ok(Json(
        images
            .into_iter()
            .map(|(name, description, serves_static, serves_dynamic)| ImageJson {
                name,
                description,
                serves_static,
                serves_dynamic,
            })
            .collect(),
    ))
}
