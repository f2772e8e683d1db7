//! Sign-in methods: the providers' people linked to one's account (the account page), and
//! those waiting for an admin to link them to the account that has their email address.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::AppError;
#[cfg(feature = "ssr")]
use crate::ssr::{actor, platform, to_app_error};

/// A provider's person linked to the signed-in account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkedRow {
    /// The provider's name (its issuer when no longer configured).
    pub provider: String,
    /// The provider's issuer.
    pub issuer: String,
    /// The person's id there.
    pub subject: String,
    /// Linked since, `YYYY-MM-DD`.
    pub since: String,
}

/// How the signed-in person may sign in, and which providers they could link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInMethods {
    /// The providers' people linked to their account.
    pub linked: Vec<LinkedRow>,
    /// The configured providers (id, name) none of their links is from.
    pub linkable: Vec<(String, String)>,
}

/// The signed-in person's sign-in methods.
#[server(prefix = "/fn", endpoint = "my_identities")]
pub async fn my_identities() -> Result<SignInMethods, AppError> {
    let platform = platform();
    let actor = actor().await?;
    let linked = platform
        .my_identities(actor.as_ref())
        .await
        .map_err(to_app_error)?;
    let providers = &platform.settings().oidc;
    let name_of = |id: &Option<String>| {
        id.as_ref()
            .and_then(|id| providers.iter().find(|p| &p.id == id))
            .map(|p| p.name.clone())
    };
    let linkable = providers
        .iter()
        .filter(|p| !linked.iter().any(|l| l.provider.as_deref() == Some(&p.id)))
        .map(|p| (p.id.clone(), p.name.clone()))
        .collect();
    Ok(SignInMethods {
        linked: linked
            .into_iter()
            .map(|l| LinkedRow {
                provider: name_of(&l.provider).unwrap_or_else(|| l.issuer.clone()),
                issuer: l.issuer,
                subject: l.subject,
                since: l.since.format("%Y-%m-%d").to_string(),
            })
            .collect(),
        linkable,
    })
}

/// Unlinks a provider's person from the signed-in account (refused when it is the last way in).
#[server(prefix = "/fn", endpoint = "unlink_identity")]
pub async fn unlink_identity(issuer: String, subject: String) -> Result<(), AppError> {
    let platform = platform();
    let actor = actor().await?;
    platform
        .unlink_identity(actor.as_ref(), &issuer, &subject)
        .await
        .map_err(to_app_error)
}

/// A provider's person waiting to be linked, as the admin users page lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRow {
    /// The provider's issuer.
    pub issuer: String,
    /// The person's id there.
    pub subject: String,
    /// The provider's name.
    pub provider: String,
    /// The account with their email address: its id and username.
    pub user_id: i64,
    /// Its username.
    pub username: String,
    /// Their name and the username they would like, as the provider says them.
    pub name: String,
    /// Their email address, as the provider says it.
    pub email: String,
    /// When they last tried, `YYYY-MM-DD HH:MM` UTC.
    pub seen: String,
}

/// The providers' people waiting to be linked (admins only).
#[server(prefix = "/fn", endpoint = "pending_identities")]
pub async fn pending_identities() -> Result<Vec<PendingRow>, AppError> {
    let platform = platform();
    let actor = actor().await?;
    let pending = platform
        .pending_identities(actor.as_ref())
        .await
        .map_err(to_app_error)?;
    let users = platform.list_users(actor.as_ref()).await.map_err(to_app_error)?;
    Ok(pending
        .into_iter()
        .map(|p| PendingRow {
            provider: platform
                .oidc_provider(&p.provider)
                .map_or_else(|_| p.provider.clone(), |provider| provider.name.clone()),
            username: users
                .iter()
                .find(|u| u.id == p.user_id)
                .map(|u| u.username.clone())
                .unwrap_or_default(),
            name: match (p.name.is_empty(), p.preferred_username.is_empty()) {
                (false, false) => format!("{} ({})", p.name, p.preferred_username),
                (false, true) => p.name,
                _ => p.preferred_username,
            },
            user_id: p.user_id,
            email: p.email,
            seen: p.seen_at.format("%Y-%m-%d %H:%M").to_string(),
            issuer: p.issuer,
            subject: p.subject,
        })
        .collect())
}

/// Links a waiting person to the account `user_id` (admins only): the one with their email
/// address when the admin looked.
#[server(prefix = "/fn", endpoint = "link_pending")]
pub async fn link_pending(issuer: String, subject: String, user_id: i64) -> Result<(), AppError> {
    let platform = platform();
    let actor = actor().await?;
    platform
        .link_pending(actor.as_ref(), &issuer, &subject, user_id)
        .await
        .map_err(to_app_error)
}

/// Forgets a waiting person (admins only).
#[server(prefix = "/fn", endpoint = "dismiss_pending")]
pub async fn dismiss_pending(issuer: String, subject: String) -> Result<(), AppError> {
    let platform = platform();
    let actor = actor().await?;
    platform
        .dismiss_pending(actor.as_ref(), &issuer, &subject)
        .await
        .map_err(to_app_error)
}
