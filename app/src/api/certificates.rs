//! Certificates as the manager shows them: each host of a site on its page, and the ones that
//! need an admin (failing, or expiring within [`EXPIRY_WARNING_DAYS`]) on their own page.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use super::CertificateState;
use crate::AppError;
#[cfg(feature = "ssr")]
use crate::ssr::{actor, platform, to_app_error};

/// Certificates that expire within this many days are listed for admins.
pub const EXPIRY_WARNING_DAYS: i64 = 14;

/// One host's certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateView {
    /// The host.
    pub host: String,
    /// Where it is.
    pub state: CertificateState,
    /// When the certificate the edge holds expires (`YYYY-MM-DD HH:MM` UTC); empty if none.
    pub expires: String,
    /// Whole days until then (negative once expired); 0 without a certificate.
    pub days_left: i64,
    /// Why the last attempt failed, in the CA's words.
    pub error: String,
    /// When it failed (`YYYY-MM-DD HH:MM:SS` UTC).
    pub failed_at: String,
    /// When the next attempt starts (`YYYY-MM-DD HH:MM:SS` UTC).
    pub retry_at: String,
    /// Failures since the last certificate.
    pub attempts: i32,
}

/// A certificate an admin should look at, with its site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateProblemRow {
    /// The site's id.
    pub site_id: i32,
    /// The site's name.
    pub site_name: String,
    /// The certificate.
    pub certificate: CertificateView,
}

/// The admin page's data: whether Director's edge gets certificates at all, and the ones to see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificatesPage {
    /// False: the sites are served over plain HTTP (or Traefik keeps the certificates).
    pub https: bool,
    /// Failing or expiring soon, soonest first.
    pub rows: Vec<CertificateProblemRow>,
}

#[cfg(feature = "ssr")]
pub(crate) fn certificate_view(
    host: &str,
    record: Option<&platform::sites::CertificateRecord>,
) -> CertificateView {
    let time = |t: Option<chrono::DateTime<chrono::Utc>>, format: &str| {
        t.map(|t| t.format(format).to_string()).unwrap_or_default()
    };
    // A host nobody asked for yet is as good as pending: the worker asks within seconds.
    let state = record.map_or(CertificateState::Pending, |r| r.state);
    CertificateView {
        host: host.to_owned(),
        state,
        expires: time(record.and_then(|r| r.not_after), "%Y-%m-%d %H:%M"),
        days_left: record
            .and_then(|r| r.not_after)
            .map_or(0, |t| (t - chrono::Utc::now()).num_days()),
        error: record.map(|r| r.error.clone()).unwrap_or_default(),
        failed_at: time(record.and_then(|r| r.failed_at), "%Y-%m-%d %H:%M:%S"),
        retry_at: time(record.and_then(|r| r.retry_at), "%Y-%m-%d %H:%M:%S"),
        attempts: record.map_or(0, |r| r.attempts),
    }
}

/// The certificates of every host of a site (see [`platform::Platform::site_certificates`]);
/// none when the sites are served over plain HTTP.
#[cfg(feature = "ssr")]
pub(crate) async fn site_certificates(
    platform: &platform::Platform,
    actor: Option<&platform::Actor>,
    site: &platform::sites::Site,
) -> Result<Vec<CertificateView>, AppError> {
    if !platform.tracks_certificates() {
        return Ok(Vec::new());
    }
    Ok(platform
        .site_certificates(actor, site.id)
        .await
        .map_err(to_app_error)?
        .iter()
        .map(|c| certificate_view(&c.host, c.record.as_ref()))
        .collect())
}

/// Admin: the certificates that failed or expire within [`EXPIRY_WARNING_DAYS`] days.
#[server(prefix = "/fn", endpoint = "certificate_problems")]
pub async fn certificate_problems() -> Result<CertificatesPage, AppError> {
    // Context is read before the first await: it is not there after one.
    let platform = platform();
    let actor = actor().await?;
    let problems = platform
        .certificate_problems(actor.as_ref(), chrono::Duration::days(EXPIRY_WARNING_DAYS))
        .await
        .map_err(to_app_error)?;
    Ok(CertificatesPage {
        https: platform.tracks_certificates(),
        rows: problems
            .into_iter()
            .map(|p| CertificateProblemRow {
                site_id: p.site_id,
                site_name: p.site_name,
                certificate: certificate_view(&p.record.host, Some(&p.record)),
            })
            .collect(),
    })
}
