//! Sites' databases: at most one PostgreSQL and one MySQL (MariaDB) database per site, on the
//! servers Director runs, each with a role of its own whose variables the site's service and
//! terminal get.
//!
//! A site's `site_databases` rows say what should be: a database being made (`creating`), made
//! (`ready`, its variables in the site's environment) or being dropped (`deleting`). The
//! operations' actions make the servers so, idempotently: `ensure-databases` makes every
//! database not being dropped, with the password its row holds (so a new password is a row
//! changed, then the action run); `drop-databases` drops the ones being dropped (all of them
//! when the site is being deleted) and then forgets their rows.

mod console;
mod mysql;
mod overview;
mod postgres;
mod servers;

use std::collections::BTreeMap;

pub(crate) use console::LastRuns;
use diesel::prelude::*;
use diesel_async::{AsyncConnection as _, RunQueryDsl};
pub use model::database::{DatabaseKind, DatabaseState};
pub use overview::{ServerOverview, SiteDatabaseSize};
use servers::{Admin, Server, engine, new_password};
pub use servers::{DatabaseServers, ExternalServer, ServerFacts};

use super::{Change, OperationKind, Runtime, Site, SiteState, record_change};
use crate::{
    Access, Actor, Error, Platform, Result,
    schema::{site_databases, sql_history},
};

/// The longest text the SQL console takes at once, in bytes.
pub const MAX_CONSOLE_SQL: usize = 100 * 1024;

/// The subquery that reads a site's databases with it: `kind:state:password:pending` each.
pub(super) const SITE_DATABASES_COLUMN: &str = "array(SELECT b.kind || ':' || b.state || ':' || b.password || ':' \
     || coalesce(b.pending_password, '') FROM site_databases b WHERE b.site_id = sites.id ORDER BY b.kind)";

/// One of a site's databases, as its record has it.
#[derive(Clone, PartialEq, Eq)]
pub struct SiteDatabase {
    /// Which server it is on.
    pub kind: DatabaseKind,
    /// Where it is in its life.
    pub state: DatabaseState,
    /// Its role's password.
    password: String,
    /// A new password its role is to get (a rotation under way).
    pending: Option<String>,
}

impl std::fmt::Debug for SiteDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiteDatabase")
            .field("kind", &self.kind)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// The databases in a row of [`SITE_DATABASES_COLUMN`].
pub(super) fn parse_column(values: &[String]) -> Vec<SiteDatabase> {
    values
        .iter()
        .filter_map(|value| {
            let mut parts = value.splitn(4, ':');
            let kind = parts.next()?.parse().ok()?;
            let state = parts.next()?.parse().ok()?;
            let password = parts.next()?.to_owned();
            let pending = parts.next().filter(|p| !p.is_empty()).map(ToOwned::to_owned);
            Some(SiteDatabase {
                kind,
                state,
                password,
                pending,
            })
        })
        .collect()
}

/// The name of a site's database and of its role: `site_<name>`. The site's name is a DNS
/// label (letters, digits, inner hyphens): never a name the servers hold for themselves
/// (`postgres`, `root`, `mysql`), at most 37 characters, and quoted wherever it is used.
pub fn database_name(site: &Site) -> String {
    format!("site_{}", site.name)
}

/// Connection details of one database, as its site's service sees them.
#[derive(Clone, PartialEq, Eq)]
pub struct Connection {
    /// Which server.
    pub kind: DatabaseKind,
    /// The host sites reach it at.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The database's and its role's name.
    pub name: String,
    password: String,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Connection {
    fn of(settings: &crate::Settings, site: &Site, database: &SiteDatabase) -> Self {
        let (host, port) = Server::site_address(settings, database.kind);
        Self {
            kind: database.kind,
            host,
            port,
            name: database_name(site),
            password: database.password.clone(),
        }
    }

    /// Its URL, the password percent-encoded (`None`: left out, for showing).
    pub fn url(&self, with_password: bool) -> String {
        let host = match self.host.parse::<std::net::Ipv6Addr>() {
            Ok(_) => format!("[{}]", self.host),
            Err(_) => self.host.clone(),
        };
        let mut url = url::Url::parse(&format!("{}://{host}:{}/", self.kind.scheme(), self.port))
            .expect("a scheme, a host and a port make a URL");
        let _ = url.set_username(&self.name);
        if with_password {
            let _ = url.set_password(Some(&self.password));
        }
        url.set_path(&self.name);
        url.to_string()
    }

    /// The role's password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// Its variables: `POSTGRES_URL` and `PG*`, or `MYSQL_URL` and `MYSQL_*`.
    fn variables(&self) -> Vec<(String, String)> {
        let values = [
            self.url(true),
            self.host.clone(),
            self.port.to_string(),
            self.name.clone(),
            self.password.clone(),
            self.name.clone(),
        ];
        self.kind
            .variables()
            .iter()
            .map(|name| (*name).to_owned())
            .zip(values)
            .collect()
    }
}

/// The variables a site's service and terminal get from its made databases. `DATABASE_URL`
/// is its PostgreSQL database's URL, or its MySQL one's when it has no PostgreSQL database.
pub(crate) fn environment(settings: &crate::Settings, site: &Site) -> BTreeMap<String, String> {
    let ready: Vec<Connection> = site
        .databases
        .iter()
        .filter(|d| d.state == DatabaseState::Ready)
        .map(|d| Connection::of(settings, site, d))
        .collect();
    let mut env: BTreeMap<String, String> = ready.iter().flat_map(Connection::variables).collect();
    let primary = ready
        .iter()
        .find(|c| c.kind == DatabaseKind::Postgresql)
        .or_else(|| ready.as_slice().first());
    if let Some(primary) = primary {
        env.insert("DATABASE_URL".to_owned(), primary.url(true));
    }
    env
}

/// One of a site's databases as its page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseInfo {
    /// Which server.
    pub kind: DatabaseKind,
    /// Where it is in its life.
    pub state: DatabaseState,
    /// The database's (and its role's) name.
    pub name: String,
    /// Its URL without the password.
    pub url: String,
    /// Its size on disk in bytes (None: the server did not answer).
    pub size_bytes: Option<u64>,
    /// Its connections now (None: the server did not answer).
    pub connections: Option<u32>,
}

impl Runtime {
    /// `ensure-databases`: makes every database of the site not being dropped, with its
    /// password; a new one is then `ready`.
    pub(crate) async fn ensure_databases(&self, site: &Site) -> Result<String, String> {
        let wanted: Vec<&SiteDatabase> = site
            .databases
            .iter()
            .filter(|d| d.state != DatabaseState::Deleting)
            .collect();
        if wanted.is_empty() {
            return Ok("no database to make".to_owned());
        }
        let name = database_name(site);
        let limit = self.platform.settings().database_connections;
        let mut done = Vec::new();
        for database in wanted {
            // A rotation's new password is given to the role first; only then is it the one
            // the site gets (and shown, and used by the console).
            let password = database.pending.as_ref().unwrap_or(&database.password);
            self.database_admin(database.kind)
                .await?
                .ensure(&name, password, limit)
                .await
                .map_err(|e| format!("making the {} database failed: {e}", database.kind.label()))?;
            let mut conn = self.platform.conn().await.map_err(|e| e.to_string())?;
            // Only the pending password this action gave: one set by a later rotation waits
            // for that rotation's own action.
            let row = site_databases::table
                .find((site.id, database.kind))
                .filter(site_databases::state.ne(DatabaseState::Deleting));
            diesel::update(
                row.filter(site_databases::pending_password.is_not_distinct_from(&database.pending)),
            )
            .set((
                site_databases::state.eq(DatabaseState::Ready),
                site_databases::password.eq(password),
                site_databases::pending_password.eq(None::<String>),
            ))
            .execute(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
            done.push(format!("{} database {name} ready", database.kind.label()));
        }
        Ok(done.join("; "))
    }

    /// `drop-databases`: drops the site's databases being dropped (every one when the site is
    /// being deleted) with their roles, then forgets them.
    pub(crate) async fn drop_databases(&self, site: &Site) -> Result<String, String> {
        let deleting_site = site.state == SiteState::Deleting;
        let going: Vec<&SiteDatabase> = site
            .databases
            .iter()
            .filter(|d| deleting_site || d.state == DatabaseState::Deleting)
            .collect();
        if going.is_empty() {
            return Ok("no database to drop".to_owned());
        }
        let name = database_name(site);
        let mut done = Vec::new();
        for database in going {
            self.database_admin(database.kind)
                .await?
                .remove(&name)
                .await
                .map_err(|e| format!("dropping the {} database failed: {e}", database.kind.label()))?;
            let mut conn = self.platform.conn().await.map_err(|e| e.to_string())?;
            diesel::delete(site_databases::table.find((site.id, database.kind)))
                .execute(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            done.push(format!("{} database {name} dropped", database.kind.label()));
        }
        Ok(done.join("; "))
    }

    /// Revokes every membership between sites' PostgreSQL roles (see `postgres::Admin`), when
    /// the server answers now; returns how many there were.
    pub(crate) async fn sweep_database_roles(&self, server: &Server) -> Result<usize, String> {
        if !server.may_answer(&self.orchestrator).await {
            return Ok(0);
        }
        postgres::Admin::connect(server)
            .await?
            .revoke_memberships(None)
            .await
    }

    /// The database's size and connections, when its server answers.
    async fn database_usage(&self, site: &Site, kind: DatabaseKind) -> Option<(u64, u32)> {
        let server = self.database_server(kind).await.ok()?;
        if !server.may_answer(&self.orchestrator).await {
            return None;
        }
        let usage = match Admin::connect(&server).await {
            Ok(mut admin) => admin.usage(&database_name(site)).await,
            Err(err) => Err(err),
        };
        usage
            .inspect_err(
                |err| tracing::warn!(site = site.id, %kind, error = %err, "reading a database's size"),
            )
            .ok()
    }
}

impl Platform {
    /// The site's databases, with their size and connections when their server answers.
    pub async fn databases(&self, actor: Option<&Actor>, site_id: i32) -> Result<Vec<DatabaseInfo>> {
        let (_, site) = self.managed_site(actor, site_id, Access::Read).await?;
        let runtime = self.runtime_if_up();
        let mut infos = Vec::new();
        for database in &site.databases {
            let connection = Connection::of(self.settings(), &site, database);
            let usage = match (&runtime, database.state) {
                (Some(runtime), DatabaseState::Ready) => runtime.database_usage(&site, database.kind).await,
                _ => None,
            };
            infos.push(DatabaseInfo {
                kind: database.kind,
                state: database.state,
                name: connection.name.clone(),
                url: connection.url(false),
                size_bytes: usage.map(|u| u.0),
                connections: usage.map(|u| u.1),
            });
        }
        Ok(infos)
    }

    /// Adds a database of `kind` to the site: its record, then the operation that makes it and
    /// gives the site its variables. A site has at most one of each kind.
    pub async fn add_database(&self, actor: Option<&Actor>, site_id: i32, kind: DatabaseKind) -> Result<i64> {
        let (actor, site) = self.managed_site(actor, site_id, Access::Write).await?;
        if site.state == SiteState::Deleting {
            return Err(Error::Conflict("The site is being deleted.".to_owned()));
        }
        if let Some(existing) = site.databases.iter().find(|d| d.kind == kind) {
            return Err(Error::Conflict(match existing.state {
                DatabaseState::Deleting => format!(
                    "The site's {} database is still being deleted: add it again once it is gone.",
                    kind.label()
                ),
                _ => format!(
                    "The site has a {} database already (one of each kind per site).",
                    kind.label()
                ),
            }));
        }
        self.runtime("Databases")?
            .databases
            .as_ref()
            .ok_or_else(|| Error::EngineUnavailable("This Director runs no database servers.".to_owned()))?;
        let mut conn = self.conn().await?;
        let operation = conn
            .transaction::<_, Error, _>(async |conn| {
                let inserted = diesel::insert_into(site_databases::table)
                    .values((
                        site_databases::site_id.eq(site.id),
                        site_databases::kind.eq(kind),
                        site_databases::password.eq(new_password()),
                    ))
                    .on_conflict_do_nothing()
                    .execute(conn)
                    .await?;
                if inserted == 0 {
                    return Err(Error::Conflict(format!(
                        "The site has a {} database already (one of each kind per site).",
                        kind.label()
                    )));
                }
                record_change(
                    conn,
                    actor,
                    &site,
                    &database_change(OperationKind::AddDatabase, kind),
                )
                .await
            })
            .await?;
        self.wake_workers();
        Ok(operation)
    }

    /// Gives the database's role a new password: the old one stops working, and the site's
    /// service is updated (start-first) with the new one.
    pub async fn rotate_database_password(
        &self,
        actor: Option<&Actor>,
        site_id: i32,
        kind: DatabaseKind,
    ) -> Result<i64> {
        let (actor, site) = self.managed_site(actor, site_id, Access::Write).await?;
        self.change_database(actor, &site, kind, OperationKind::RotateDatabasePassword)
            .await
    }

    /// Deletes the database: its variables are taken from the site, then it is dropped with its
    /// role. `confirm` must be the database's name.
    pub async fn delete_database(
        &self,
        actor: Option<&Actor>,
        site_id: i32,
        kind: DatabaseKind,
        confirm: &str,
    ) -> Result<i64> {
        let (actor, site) = self.managed_site(actor, site_id, Access::Write).await?;
        if !site.databases.iter().any(|d| d.kind == kind) {
            return Err(Error::NotFound("database"));
        }
        let name = database_name(&site);
        if confirm.trim() != name {
            return Err(Error::invalid(
                "confirm",
                format!("Type the database's name, {name}, to delete it."),
            ));
        }
        self.change_database(actor, &site, kind, OperationKind::DeleteDatabase)
            .await
    }

    async fn change_database(
        &self,
        actor: &Actor,
        site: &Site,
        kind: DatabaseKind,
        change: OperationKind,
    ) -> Result<i64> {
        let Some(database) = site.databases.iter().find(|d| d.kind == kind) else {
            return Err(Error::NotFound("database"));
        };
        if database.state == DatabaseState::Deleting || site.state == SiteState::Deleting {
            return Err(Error::Conflict(format!(
                "The site's {} database is being deleted.",
                kind.label()
            )));
        }
        let mut conn = self.conn().await?;
        let operation = conn
            .transaction::<_, Error, _>(async |conn| {
                let row = site_databases::table
                    .find((site.id, kind))
                    .filter(site_databases::state.ne(DatabaseState::Deleting));
                let written = if change == OperationKind::DeleteDatabase {
                    diesel::update(row)
                        .set(site_databases::state.eq(DatabaseState::Deleting))
                        .execute(conn)
                        .await?
                } else {
                    diesel::update(row)
                        .set(site_databases::pending_password.eq(Some(new_password())))
                        .execute(conn)
                        .await?
                };
                if written == 0 {
                    return Err(Error::Conflict(
                        "The database changed meanwhile: look at it again, then retry.".to_owned(),
                    ));
                }
                record_change(conn, actor, site, &database_change(change, kind)).await
            })
            .await?;
        self.wake_workers();
        Ok(operation)
    }

    /// The database's connection details with its password, for a member who asked to see
    /// them: each time is an audit line.
    pub async fn reveal_database(
        &self,
        actor: Option<&Actor>,
        site_id: i32,
        kind: DatabaseKind,
    ) -> Result<Connection> {
        let (actor, site) = self.managed_site(actor, site_id, Access::Write).await?;
        let database = site
            .databases
            .iter()
            .find(|d| d.kind == kind && d.state != DatabaseState::Deleting)
            .ok_or(Error::NotFound("database"))?;
        let mut conn = self.conn().await?;
        super::audit(&mut conn, actor, "database.reveal", &site.name, kind.as_str()).await?;
        Ok(Connection::of(self.settings(), &site, database))
    }
}

impl Platform {
    /// Runs `sql` in the site's database of `kind` as the site's own role, and keeps it in the
    /// member's history. What the server refuses is in the run's error, as it said it.
    pub async fn run_sql(
        &self,
        actor: Option<&Actor>,
        site_id: i32,
        kind: DatabaseKind,
        sql: &str,
    ) -> Result<model::database::ConsoleRun> {
        let (actor, site) = self.managed_site(actor, site_id, Access::Write).await?;
        if sql.trim().is_empty() {
            return Err(Error::invalid("sql", "Type a statement to run."));
        }
        if sql.len() > MAX_CONSOLE_SQL {
            return Err(Error::invalid(
                "sql",
                format!("The console runs at most {} KiB at once.", MAX_CONSOLE_SQL / 1024),
            ));
        }
        let database = site
            .databases
            .iter()
            .find(|d| d.kind == kind)
            .ok_or(Error::NotFound("database"))?;
        if database.state != DatabaseState::Ready {
            return Err(Error::Conflict(format!(
                "The site's {} database is {}: it takes statements once it is ready.",
                kind.label(),
                database.state
            )));
        }
        let runtime = self.runtime("The SQL console is")?;
        let server = runtime
            .database_server(kind)
            .await
            .map_err(|e| Error::EngineUnavailable(format!("The database server is unavailable: {e}")))?;
        let name = database_name(&site);
        {
            let mut conn = self.conn().await?;
            let user = actor.user_id;
            conn.transaction::<_, Error, _>(async |conn| {
                diesel::insert_into(sql_history::table)
                    .values((
                        sql_history::site_id.eq(site.id),
                        sql_history::user_id.eq(user),
                        sql_history::kind.eq(kind),
                        sql_history::statement.eq(sql),
                    ))
                    .execute(conn)
                    .await?;
                let keep: Vec<i64> = sql_history::table
                    .filter(sql_history::site_id.eq(site.id))
                    .filter(sql_history::user_id.eq(user))
                    .order(sql_history::id.desc())
                    .limit(model::database::CONSOLE_HISTORY as i64)
                    .select(sql_history::id)
                    .load(conn)
                    .await?;
                diesel::delete(
                    sql_history::table
                        .filter(sql_history::site_id.eq(site.id))
                        .filter(sql_history::user_id.eq(user))
                        .filter(sql_history::id.ne_all(keep)),
                )
                .execute(conn)
                .await?;
                Ok(())
            })
            .await?;
        }
        let _turn = self.console_turn().await?;
        tracing::info!(user = %actor.username, site = %site.name, %kind, bytes = sql.len(), "SQL console run");
        let mut run = match kind {
            DatabaseKind::Postgresql => console::postgres(&server, &name, &database.password, sql).await,
            DatabaseKind::Mysql => console::mysql(&server, &name, &database.password, sql).await,
        };
        run.error = run.error.map(|e| e.placed(sql));
        self.inner.last_runs.put(actor.user_id, site.id, run.clone());
        Ok(run)
    }

    /// The member's last run of the site's console, the first time it is asked for within a
    /// minute of the run (for the page a form without JavaScript comes back to).
    pub async fn last_console_run(
        &self,
        actor: Option<&Actor>,
        site_id: i32,
    ) -> Result<Option<model::database::ConsoleRun>> {
        let (actor, site) = self.managed_site(actor, site_id, Access::Write).await?;
        Ok(self.inner.last_runs.take(actor.user_id, site.id))
    }

    /// The member's last statements in the site's console, newest first.
    pub async fn sql_history(
        &self,
        actor: Option<&Actor>,
        site_id: i32,
    ) -> Result<Vec<(DatabaseKind, String)>> {
        let (actor, site) = self.managed_site(actor, site_id, Access::Read).await?;
        let mut conn = self.conn().await?;
        Ok(sql_history::table
            .filter(sql_history::site_id.eq(site.id))
            .filter(sql_history::user_id.eq(actor.user_id))
            .order(sql_history::id.desc())
            .limit(model::database::CONSOLE_HISTORY as i64)
            .select((sql_history::kind, sql_history::statement))
            .load(&mut conn)
            .await?)
    }
}

fn database_change(kind: OperationKind, database: DatabaseKind) -> Change<'static> {
    Change {
        kind,
        state: None,
        availability: None,
        audit_action: match kind {
            OperationKind::AddDatabase => "database.add",
            OperationKind::RotateDatabasePassword => "database.rotate",
            _ => "database.delete",
        },
        details: database.as_str(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show_in_debug_output_and_a_pending_one_is_read_apart() {
        let database = SiteDatabase {
            kind: DatabaseKind::Postgresql,
            state: DatabaseState::Ready,
            password: "Secret123".to_owned(),
            pending: None,
        };
        assert!(!format!("{database:?}").contains("Secret123"));
        let parsed = parse_column(&[
            "postgresql:ready:Secret123:".to_owned(),
            "bogus:ready:x:".to_owned(),
        ]);
        assert_eq!(parsed, vec![database]);
        let rotating = parse_column(&["mysql:ready:Secret123:New456".to_owned()]);
        assert_eq!(
            (rotating[0].password.as_str(), rotating[0].pending.as_deref()),
            ("Secret123", Some("New456"))
        );
        let url = Connection {
            kind: DatabaseKind::Mysql,
            host: "mysql.director".to_owned(),
            port: 3306,
            name: "site_a-b".to_owned(),
            password: "Secret123".to_owned(),
        };
        assert_eq!(url.url(false), "mysql://site_a-b@mysql.director:3306/site_a-b");
        assert!(!format!("{url:?}").contains("Secret123"));
    }

    #[test]
    fn an_operators_server_is_read_from_its_url_and_named_in_sites_urls_as_given() {
        let postgres = ExternalServer::parse(
            DatabaseKind::Postgresql,
            "postgresql://admin:p%40ss%2Fword@db.example.org/",
        )
        .unwrap();
        assert_eq!(
            (
                postgres.host.as_str(),
                postgres.port,
                postgres.user.as_str(),
                postgres.database.as_str()
            ),
            ("db.example.org", 5432, "admin", "postgres")
        );
        assert!(!format!("{postgres:?}").contains("p@ss"), "{postgres:?}");
        let mysql = ExternalServer::parse(DatabaseKind::Mysql, "mariadb://root:pw@[fd00::1]:3307").unwrap();
        assert_eq!((mysql.host.as_str(), mysql.port), ("fd00::1", 3307));
        for (kind, url, why) in [
            (
                DatabaseKind::Postgresql,
                "mysql://a:b@host",
                "starts with postgresql://",
            ),
            (
                DatabaseKind::Mysql,
                "mysql://root@host",
                "no admin role and password",
            ),
            (
                DatabaseKind::Mysql,
                "mysql://:pw@host",
                "no admin role and password",
            ),
            (DatabaseKind::Postgresql, "postgresql://a:b@/db", "host"),
            (DatabaseKind::Postgresql, "db.example.org", "not a URL"),
            (
                DatabaseKind::Postgresql,
                "postgresql://a:b@h/db?sslmode=require",
                "options",
            ),
            (DatabaseKind::Mysql, "mysql://a:b@h#x", "options"),
        ] {
            let refused = ExternalServer::parse(kind, url).unwrap_err();
            assert!(refused.contains(why), "{url}: {refused}");
        }
        let url = Connection {
            kind: DatabaseKind::Postgresql,
            host: "fd00::1".to_owned(),
            port: 5432,
            name: "site_a".to_owned(),
            password: "Secret123".to_owned(),
        };
        assert_eq!(url.url(false), "postgresql://site_a@[fd00::1]:5432/site_a");
    }
}
