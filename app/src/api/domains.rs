//! A site's domains of its own: add, verify, remove. The platform checks who may, and the
//! rules a domain must follow.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use super::Proof;
use crate::AppError;
#[cfg(feature = "ssr")]
use crate::ssr::{actor, platform, to_app_error};

/// A domain as the site's page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainRow {
    /// Its id.
    pub id: i64,
    /// The host name.
    pub host: String,
    /// Verified (and routed).
    pub verified: bool,
    /// How it was proved, if it was.
    pub verified_by: Proof,
    /// Where its TXT record goes.
    pub txt_name: String,
    /// What the TXT record must hold.
    pub txt_value: String,
    /// What the domain's DNS must point at: the site's own name.
    pub target: String,
    /// The last check, `YYYY-MM-DD HH:MM:SS` UTC; empty when never checked.
    pub last_check: String,
    /// Why the last check failed; empty when it did not.
    pub last_check_error: String,
}

#[cfg(feature = "ssr")]
pub(crate) fn domain_row(domain: platform::sites::Domain, target: &str) -> DomainRow {
    DomainRow {
        id: domain.id,
        txt_name: platform::sites::txt_name(&domain.host),
        txt_value: platform::sites::txt_value(&domain.token),
        host: domain.host,
        verified: domain.verified_at.is_some(),
        verified_by: domain.verified_by,
        target: target.to_owned(),
        last_check: domain
            .last_check_at
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default(),
        last_check_error: domain.last_check_error,
    }
}

/// Adds a domain to a site (an admin's is verified at once).
#[server(prefix = "/fn", endpoint = "add_domain")]
pub async fn add_domain(site: i32, host: String) -> Result<(), AppError> {
    // Context is read before the first await: it is not there after one.
    let platform = platform();
    let actor = actor().await?;
    platform
        .add_domain(actor.as_ref(), site, &host)
        .await
        .map(|_| ())
        .map_err(to_app_error)
}

/// Looks for the domain's TXT record now.
#[server(prefix = "/fn", endpoint = "verify_domain")]
pub async fn verify_domain(site: i32, domain: i64) -> Result<bool, AppError> {
    let platform = platform();
    let actor = actor().await?;
    platform
        .verify_domain(actor.as_ref(), site, domain)
        .await
        .map(|d| d.verified_at.is_some())
        .map_err(to_app_error)
}

/// Removes a domain from a site, with its routes.
#[server(prefix = "/fn", endpoint = "remove_domain")]
pub async fn remove_domain(site: i32, domain: i64) -> Result<(), AppError> {
    let platform = platform();
    let actor = actor().await?;
    platform
        .remove_domain(actor.as_ref(), site, domain)
        .await
        .map_err(to_app_error)
}
