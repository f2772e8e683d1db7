//! A site's members and output, for the people who manage it.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::AppError;
#[cfg(feature = "ssr")]
use crate::ssr::{actor, platform, to_app_error};

/// One line of a site's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLineView {
    /// When, `HH:MM:SS` UTC.
    pub at: String,
    /// Written to standard error.
    pub stderr: bool,
    /// The line.
    pub text: String,
}

/// Adds a member to a site by username.
#[server(prefix = "/fn", endpoint = "add_member")]
pub async fn add_member(site: i32, username: String) -> Result<(), AppError> {
    let platform = platform();
    let actor = actor().await?;
    platform
        .add_member(actor.as_ref(), site, &username)
        .await
        .map_err(to_app_error)
}

/// Removes a member from a site.
#[server(prefix = "/fn", endpoint = "remove_member")]
pub async fn remove_member(site: i32, user: i64) -> Result<(), AppError> {
    let platform = platform();
    let actor = actor().await?;
    platform
        .remove_member(actor.as_ref(), site, user)
        .await
        .map_err(to_app_error)
}

/// The newest lines of a dynamic site's output, oldest first.
#[server(prefix = "/fn", endpoint = "site_logs")]
pub async fn site_logs(id: i32) -> Result<Vec<LogLineView>, AppError> {
    let platform = platform();
    let actor = actor().await?;
    read_logs(&platform, actor.as_ref(), id).await
}

/// Reads the lines with what the caller took from the request's context before its first
/// await (a resource rendering on the server may resume outside that context).
#[cfg(feature = "ssr")]
pub(crate) async fn read_logs(
    platform: &platform::Platform,
    actor: Option<&platform::Actor>,
    id: i32,
) -> Result<Vec<LogLineView>, AppError> {
    let lines = platform.site_logs(actor, id, 200).await.map_err(to_app_error)?;
    Ok(lines
        .into_iter()
        .map(|l| LogLineView {
            at: l.at.format("%H:%M:%S").to_string(),
            stderr: l.stderr,
            text: l.text,
        })
        .collect())
}
