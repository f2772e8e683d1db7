//! A site's databases and its SQL console. The platform checks who may; a password is sent
//! only to a member who asked to see it (and that is an audit line).

use leptos::prelude::*;
pub use model::database::{
    CONSOLE_ROWS, CONSOLE_TIMEOUT_SECS, ConsoleRun, DatabaseKind, DatabaseState, ServerState, SqlError,
    StatementResult, Value,
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
    /// The member's last run, not yet shown (a form sent without JavaScript came back).
    pub last_run: Option<ConsoleRun>,
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
    let last_run = platform
        .last_console_run(actor.as_ref(), site)
        .await
        .map_err(to_app_error)?;
    Ok(DatabasePageData {
        card: super::card(&platform, &detail),
        databases,
        operations,
        history,
        last_run,
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

/// A database server, as the administrators' page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerRow {
    /// Which server.
    pub kind: DatabaseKind,
    /// How it is.
    pub state: ServerState,
    /// The operator's server's host and port, when it is not Director's own.
    pub external: Option<String>,
    /// Its version, when it answers.
    pub version: Option<String>,
    /// The size of all its data, in words, when it answers.
    pub data_size: Option<String>,
    /// Its clients' connections now, when it answers.
    pub connections: Option<u32>,
    /// Databases besides the sites' that every site's role may connect to.
    pub open_databases: Vec<String>,
    /// The sites' databases on it, by site name.
    pub databases: Vec<ServerDatabaseRow>,
}

/// A site's database on a server, as the administrators' page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerDatabaseRow {
    /// The site.
    pub site_id: i32,
    /// Its name.
    pub site: String,
    /// Where the database is in its life.
    pub state: DatabaseState,
    /// Its size in words, when the server answers.
    pub size: Option<String>,
    /// Whether it is past the warning threshold.
    pub over: bool,
}

/// The administrators' page of database servers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseServersPage {
    /// Each server.
    pub servers: Vec<ServerRow>,
    /// The size past which a site's database is marked, in words.
    pub warning: String,
}

/// Every database server and the sites' databases on it (admins).
#[server(prefix = "/fn", endpoint = "database_servers")]
pub async fn database_servers() -> Result<DatabaseServersPage, AppError> {
    let platform = platform();
    let actor = actor().await?;
    let warning_bytes = platform.settings().database_size_warning_bytes;
    let servers = platform
        .database_servers(actor.as_ref())
        .await
        .map_err(to_app_error)?
        .into_iter()
        .map(|server| ServerRow {
            kind: server.kind,
            state: server.state,
            external: server.external,
            version: server.facts.as_ref().map(|f| f.version.clone()),
            data_size: server.facts.as_ref().map(|f| model::human_bytes(f.data_bytes)),
            connections: server.facts.as_ref().map(|f| f.connections),
            open_databases: server
                .facts
                .as_ref()
                .map(|f| f.open_databases.clone())
                .unwrap_or_default(),
            databases: server
                .databases
                .into_iter()
                .map(|d| ServerDatabaseRow {
                    site_id: d.site_id,
                    site: d.site,
                    state: d.state,
                    size: d.size_bytes.map(model::human_bytes),
                    over: d.size_bytes.is_some_and(|size| size > warning_bytes),
                })
                .collect(),
        })
        .collect();
    Ok(DatabaseServersPage {
        servers,
        warning: model::human_bytes(warning_bytes),
    })
}

/// Restarts a database server (admins).
#[server(prefix = "/fn", endpoint = "restart_database_server")]
pub async fn restart_database_server(kind: DatabaseKind) -> Result<(), AppError> {
    let platform = platform();
    let actor = actor().await?;
    platform
        .restart_database_server(actor.as_ref(), kind)
        .await
        .map_err(to_app_error)
}

/// Gives a database server's superuser a new password (admins).
#[server(prefix = "/fn", endpoint = "rotate_database_superuser")]
pub async fn rotate_database_superuser(kind: DatabaseKind) -> Result<(), AppError> {
    let platform = platform();
    let actor = actor().await?;
    platform
        .rotate_database_superuser(actor.as_ref(), kind)
        .await
        .map_err(to_app_error)
}
