//! SSH keys: one's own on the account page, anyone's for admins.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::AppError;
#[cfg(feature = "ssr")]
use crate::ssr::{actor, platform, ssh_info, to_app_error};

/// A key as the pages list it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRow {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Its algorithm.
    pub algorithm: String,
    /// `SHA256:…`.
    pub fingerprint: String,
    /// When it was added.
    pub added: String,
    /// When it last logged in, if ever.
    pub last_used: Option<String>,
}

/// Keys with what a user needs to connect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeysPage {
    /// Whose keys (a username).
    pub owner: String,
    /// The keys, oldest first.
    pub keys: Vec<KeyRow>,
    /// The SSH port, when SSH is on.
    pub ssh_port: Option<u16>,
    /// The server's host key fingerprints, to check on first connection.
    pub host_fingerprints: Vec<String>,
}

/// The keys of `user` (one's own when None).
#[server(prefix = "/fn", endpoint = "ssh_keys")]
pub async fn ssh_keys(user: Option<i64>) -> Result<KeysPage, AppError> {
    let (platform, ssh) = (platform(), ssh_info());
    let actor = actor().await?;
    let keys = platform
        .ssh_keys(actor.as_ref(), user)
        .await
        .map_err(to_app_error)?;
    let owner = match (user, &actor) {
        (Some(id), Some(me)) if id != me.user_id => platform
            .list_users(actor.as_ref())
            .await
            .map_err(to_app_error)?
            .into_iter()
            .find(|u| u.id == id)
            .map(|u| u.username)
            .ok_or(AppError::NotFound)?,
        (_, Some(me)) => me.username.clone(),
        (_, None) => return Err(AppError::Unauthenticated),
    };
    Ok(KeysPage {
        owner,
        keys: keys
            .into_iter()
            .map(|k| KeyRow {
                id: k.id,
                name: k.name,
                algorithm: k.algorithm,
                fingerprint: k.fingerprint,
                added: k.created_at.format("%Y-%m-%d").to_string(),
                last_used: k.last_used_at.map(|t| t.format("%Y-%m-%d %H:%M").to_string()),
            })
            .collect(),
        ssh_port: ssh.as_ref().map(|s| s.port),
        host_fingerprints: ssh.map(|s| s.fingerprints).unwrap_or_default(),
    })
}

/// Adds a public key to one's account.
#[server(prefix = "/fn", endpoint = "add_ssh_key")]
pub async fn add_ssh_key(name: String, public_key: String) -> Result<String, AppError> {
    let platform = platform();
    let actor = actor().await?;
    let key = platform
        .add_ssh_key(actor.as_ref(), &name, &public_key)
        .await
        .map_err(to_app_error)?;
    Ok(key.fingerprint)
}

/// Removes a key (one's own, or any for an admin).
#[server(prefix = "/fn", endpoint = "remove_ssh_key")]
pub async fn remove_ssh_key(id: i64) -> Result<(), AppError> {
    let platform = platform();
    let actor = actor().await?;
    platform
        .remove_ssh_key(actor.as_ref(), id)
        .await
        .map_err(to_app_error)
}
