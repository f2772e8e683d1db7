//! What an administrator sees of the database servers and does to them: each server's state,
//! version, data size and connections; every site's database on it with its size, those past
//! the warning threshold marked; restarting a server; giving its superuser a new password.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use model::database::ServerState;

use super::{DatabaseKind, DatabaseState, servers::ServerFacts};
use crate::{
    Access, Actor, Error, Platform, Result,
    authz::{Permission, authorize},
    schema::{site_databases, sites},
    sites::{Runtime, audit},
};

/// One server as the administrator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOverview {
    /// Which server.
    pub kind: DatabaseKind,
    /// How it is.
    pub state: ServerState,
    /// The operator's server's host and port, when it is not Director's own.
    pub external: Option<String>,
    /// What it says of itself, when it answers.
    pub facts: Option<ServerFacts>,
    /// The sites' databases on it.
    pub databases: Vec<SiteDatabaseSize>,
}

/// One site's database on a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteDatabaseSize {
    /// The site.
    pub site_id: i32,
    /// Its name.
    pub site: String,
    /// Where the database is in its life.
    pub state: DatabaseState,
    /// Its size in bytes, when the server answers.
    pub size_bytes: Option<u64>,
}

impl Platform {
    /// Every database server with its sites' databases, for an administrator.
    pub async fn database_servers(&self, actor: Option<&Actor>) -> Result<Vec<ServerOverview>> {
        authorize(actor, Permission::Administer, Access::Read)?;
        let rows: Vec<(i32, String, DatabaseKind, DatabaseState)> = {
            let mut conn = self.conn().await?;
            site_databases::table
                .inner_join(sites::table)
                .order((site_databases::kind, sites::name))
                .select((
                    sites::id,
                    sites::name,
                    site_databases::kind,
                    site_databases::state,
                ))
                .load(&mut conn)
                .await?
        };
        let runtime = self.runtime_if_up();
        let mut servers = Vec::new();
        for kind in DatabaseKind::ALL {
            let (state, facts, sizes) = match &runtime {
                Some(runtime) => runtime.server_overview(*kind).await,
                None => (ServerState::Unknown, None, None),
            };
            let databases = rows
                .iter()
                .filter(|(_, _, k, _)| k == kind)
                .map(|(site_id, site, _, state)| SiteDatabaseSize {
                    site_id: *site_id,
                    site: site.clone(),
                    state: *state,
                    size_bytes: sizes.as_ref().map(|sizes: &Vec<(String, u64)>| {
                        let name = format!("site_{site}");
                        sizes
                            .iter()
                            .find(|(n, _)| *n == name)
                            .map_or(0, |(_, size)| *size)
                    }),
                })
                .collect();
            servers.push(ServerOverview {
                kind: *kind,
                state,
                external: self
                    .settings()
                    .external_database(*kind)
                    .map(|server| format!("{}:{}", server.host, server.port)),
                facts,
                databases,
            });
        }
        Ok(servers)
    }

    /// Replaces the server's task, for an administrator: its clients reconnect.
    pub async fn restart_database_server(&self, actor: Option<&Actor>, kind: DatabaseKind) -> Result<()> {
        let actor = authorize(actor, Permission::Administer, Access::Write)?;
        self.own_server(kind, "restarts")?;
        let runtime = self.runtime("Database servers are")?;
        let engine = super::engine(kind);
        let status = runtime.orchestrator.database_server_status(engine).await?;
        if !status.exists {
            return Err(Error::Conflict(format!(
                "The {} server has not been started: it starts with the first database on it.",
                kind.label()
            )));
        }
        runtime.orchestrator.restart_database_server(engine).await?;
        let mut conn = self.conn().await?;
        audit(&mut conn, actor, "database-server.restart", kind.as_str(), "").await?;
        tracing::info!(user = %actor.username, server = %kind, "database server restarted");
        Ok(())
    }

    /// Gives the server's superuser a new password, for an administrator: written to its file,
    /// then the server restarted with it (a server not started yet takes it when it starts).
    /// Sites' roles keep theirs.
    pub async fn rotate_database_superuser(&self, actor: Option<&Actor>, kind: DatabaseKind) -> Result<()> {
        let actor = authorize(actor, Permission::Administer, Access::Write)?;
        self.own_server(kind, "gives a new password to")?;
        let runtime = self.runtime("Database servers are")?;
        let servers = runtime
            .databases
            .as_ref()
            .ok_or_else(|| Error::Conflict("This Director has no database servers of its own.".to_owned()))?;
        let engine = super::engine(kind);
        {
            let mut conn = self.conn().await?;
            audit(&mut conn, actor, "database-server.rotate", kind.as_str(), "").await?;
        }
        // Under the kind's lock, from the new password to the server updated with it: nothing
        // that read the old one puts it back meanwhile. Should the update fail, the reconciler's
        // next pass brings the server to the new password.
        let _one_at_a_time = self.database_server_lock(kind).lock().await;
        servers
            .replace_superuser_password(engine)
            .await
            .map_err(|e| Error::EngineUnavailable(format!("The password cannot be replaced: {e}")))?;
        if runtime.orchestrator.database_server_status(engine).await?.exists {
            let server = runtime
                .database_server(kind)
                .await
                .map_err(Error::EngineUnavailable)?;
            if let Some(spec) = server.own() {
                runtime.orchestrator.ensure_database_server(spec).await?;
            }
        }
        tracing::info!(user = %actor.username, server = %kind, "database superuser password replaced");
        Ok(())
    }
}

impl Platform {
    /// Refuses what Director does only to a server of its own (`what`, as in "Director
    /// restarts…") when the operator gave one of theirs.
    fn own_server(&self, kind: DatabaseKind, what: &str) -> Result<()> {
        match self.settings().external_database(kind) {
            Some(server) => Err(Error::Conflict(format!(
                "The {} server at {}:{} is the operator's own: Director only {what} a server it runs.",
                kind.label(),
                server.host,
                server.port
            ))),
            None => Ok(()),
        }
    }
}

impl Runtime {
    /// The server's state, what it says of itself and its site databases' sizes (those it
    /// could tell).
    async fn server_overview(
        &self,
        kind: DatabaseKind,
    ) -> (ServerState, Option<ServerFacts>, Option<Vec<(String, u64)>>) {
        if self.platform.settings().external_database(kind).is_some() {
            return match self.server_answers(kind).await {
                Ok((facts, sizes)) => (ServerState::Up, Some(facts), Some(sizes)),
                Err(err) => (ServerState::Down(Some(err)), None, None),
            };
        }
        let status = match self
            .orchestrator
            .database_server_status(super::engine(kind))
            .await
        {
            Ok(status) => status,
            Err(err) => {
                tracing::warn!(server = %kind, error = %err, "reading a database server's state");
                return (ServerState::Unknown, None, None);
            }
        };
        if !status.exists {
            return (ServerState::NotStarted, None, None);
        }
        if !status.running {
            return (ServerState::Down(status.last_error), None, None);
        }
        match self.server_answers(kind).await {
            Ok((facts, sizes)) => (ServerState::Up, Some(facts), Some(sizes)),
            Err(err) => {
                tracing::info!(server = %kind, error = %err, "a database server does not answer yet");
                (ServerState::Starting, None, None)
            }
        }
    }

    /// What the server says of itself and of its site databases' sizes, or why it does not.
    async fn server_answers(
        &self,
        kind: DatabaseKind,
    ) -> std::result::Result<(ServerFacts, Vec<(String, u64)>), String> {
        let server = self.database_server(kind).await?;
        if !server.may_answer(&self.orchestrator).await {
            return Err("not answering on its socket".to_owned());
        }
        let mut admin = super::Admin::connect(&server).await?;
        Ok((admin.facts().await?, admin.sizes().await?))
    }
}
