//! A site's databases and its SQL console. The platform checks who may; a password is sent
//! only to a member who asked to see it (and that is an audit line).

use leptos::prelude::*;
pub use model::database::{
    CONSOLE_ROWS, CONSOLE_TIMEOUT_SECS, ConsoleRun, DatabaseKind, DatabaseState, SqlError, StatementResult,
    Value,
};
use serde::{Deserialize, Serialize};

use super::{OperationView, SiteCard};
use crate::AppError;
#[cfg(feature = "ssr")]
use crate::ssr::{actor, platform, to_app_error};

/// One of a site's databases, as its page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseRow {
    /// Which server.
    pub kind: DatabaseKind,
    /// Where it is in its life.
    pub state: DatabaseState,
    /// The database's and its role's name.
    pub name: String,
    /// Its URL without the password.
    pub url: String,
    /// Its size, in words; None when its server did not answer.
    pub size: Option<String>,
    /// Its connections now; None when its server did not answer.
    pub connections: Option<u32>,
}

/// The site's database page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabasePageData {
    /// The site.
    pub card: SiteCard,
    /// Its databases.
    pub databases: Vec<DatabaseRow>,
    /// Its operations on databases, newest first.
    pub operations: Vec<OperationView>,
    /// The member's last statements in the console, newest first.
    pub history: Vec<(DatabaseKind, String)>,
}

impl DatabasePageData {
    /// Whether something is under way (the page then refreshes itself).
    pub fn busy(&self) -> bool {
        self.databases.iter().any(|d| d.state != DatabaseState::Ready)
            || self.operations.iter().any(|o| o.state.under_way())
    }
}

/// The site's databases, its operations on them and the member's console history.
#[server(prefix = "/fn", endpoint = "site_databases")]
pub async fn site_databases(site: i32) -> Result<DatabasePageData, AppError> {
    // Context is read before the first await: it is not there after one.
    let platform = platform();
    let actor = actor().await?;
    let detail = platform.site(actor.as_ref(), site).await.map_err(to_app_error)?;
    let databases = platform
        .databases(actor.as_ref(), site)
        .await
        .map_err(to_app_error)?
        .into_iter()
        .map(|d| DatabaseRow {
            kind: d.kind,
            state: d.state,
            name: d.name,
            url: d.url,
            size: d.size_bytes.map(model::human_bytes),
            connections: d.connections,
        })
        .collect();
    let operations = platform
        .site_operations(actor.as_ref(), site)
        .await
        .map_err(to_app_error)?
        .into_iter()
        .filter(|op| op.kind.is_database())
        .take(5)
        .map(super::operation_view)
        .collect();
    let history = platform
        .sql_history(actor.as_ref(), site)
        .await
        .map_err(to_app_error)?;
    Ok(DatabasePageData {
        card: super::card(&platform, &detail),
        databases,
        operations,
        history,
    })
}

/// Adds a database of `kind` to the site.
#[server(prefix = "/fn", endpoint = "add_database")]
pub async fn add_database(site: i32, kind: DatabaseKind) -> Result<(), AppError> {
    let platform = platform();
    let actor = actor().await?;
    platform
        .add_database(actor.as_ref(), site, kind)
        .await
        .map(|_| ())
        .map_err(to_app_error)
}

/// The database's URL with its password (an audit line each time).
#[server(prefix = "/fn", endpoint = "reveal_database")]
pub async fn reveal_database(site: i32, kind: DatabaseKind) -> Result<String, AppError> {
    let platform = platform();
    let actor = actor().await?;
    platform
        .reveal_database(actor.as_ref(), site, kind)
        .await
        .map(|c| c.url(true))
        .map_err(to_app_error)
}

/// Gives the database's role a new password.
#[server(prefix = "/fn", endpoint = "rotate_database_password")]
pub async fn rotate_database_password(site: i32, kind: DatabaseKind) -> Result<(), AppError> {
    let platform = platform();
    let actor = actor().await?;
    platform
        .rotate_database_password(actor.as_ref(), site, kind)
        .await
        .map(|_| ())
        .map_err(to_app_error)
}

/// Deletes the database; `confirm` must be its name.
#[server(prefix = "/fn", endpoint = "delete_database")]
pub async fn delete_database(site: i32, kind: DatabaseKind, confirm: String) -> Result<(), AppError> {
    let platform = platform();
    let actor = actor().await?;
    platform
        .delete_database(actor.as_ref(), site, kind, &confirm)
        .await
        .map(|_| ())
        .map_err(to_app_error)
}

/// Runs statements in the site's database as the site's own role.
#[server(prefix = "/fn", endpoint = "run_sql")]
pub async fn run_sql(site: i32, kind: DatabaseKind, sql: String) -> Result<ConsoleRun, AppError> {
    let platform = platform();
    let actor = actor().await?;
    platform
        .run_sql(actor.as_ref(), site, kind, &sql)
        .await
        .map_err(to_app_error)
}
