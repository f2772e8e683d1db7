//! The database servers as the platform uses them: Director's own, started on first use,
//! their superuser's password kept in Director's data directory, reached on their socket; or an
//! operator's, given by URL, reached over TCP as the admin role the URL names.

use std::{path::PathBuf, time::Duration};

use model::database::DatabaseKind;
use orchestrator::{
    Ensured,
    databases::{Engine, ServerSpec},
};

use super::{mysql, postgres};
use crate::sites::Runtime;

/// Where the servers keep their data, and what they may use.
#[derive(Debug, Clone)]
pub struct DatabaseServers {
    /// `<data dir>/databases`: each server's directory (data, socket, superuser password) is
    /// beneath it.
    pub dir: PathBuf,
    /// Each server's memory limit, in bytes.
    pub memory_bytes: u64,
}

/// How long a server that was just started (or restarted) is given to answer on its socket.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// The engine that serves databases of `kind`.
pub(crate) fn engine(kind: DatabaseKind) -> Engine {
    match kind {
        DatabaseKind::Postgresql => Engine::Postgres,
        DatabaseKind::Mysql => Engine::Mariadb,
    }
}

/// A new random password of 48 letters and digits (285 bits).
pub(crate) fn new_password() -> String {
    use rand::Rng as _;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(48)
        .map(char::from)
        .collect()
}

/// A superuser's connection to one server.
pub(crate) enum Admin {
    Postgres(Box<postgres::Admin>),
    Mysql(mysql::Admin),
}

/// What a server says of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFacts {
    /// Its version, as it gives it.
    pub version: String,
    /// The size of all its databases, in bytes.
    pub data_bytes: u64,
    /// Its clients' connections now.
    pub connections: u32,
    /// On an operator's PostgreSQL server, the databases besides the sites' that every role may
    /// connect to (PUBLIC has CONNECT on them): each site's role could log into them.
    pub open_databases: Vec<String>,
}

impl Admin {
    /// An admin's connection to the server, if it answers now.
    pub(crate) async fn connect(server: &Server) -> Result<Self, String> {
        match server.kind() {
            DatabaseKind::Postgresql => postgres::Admin::connect(server)
                .await
                .map(|admin| Self::Postgres(Box::new(admin))),
            DatabaseKind::Mysql => mysql::Admin::connect(server).await.map(Self::Mysql),
        }
    }

    /// Makes (or brings back to what it should be) the database and role `name`.
    pub(crate) async fn ensure(
        &mut self,
        name: &str,
        password: &str,
        connections: u32,
    ) -> Result<(), String> {
        match self {
            Self::Postgres(admin) => admin.ensure(name, password, connections).await,
            Self::Mysql(admin) => admin.ensure(name, password, connections).await,
        }
    }

    /// Drops the database and role `name`.
    pub(crate) async fn remove(&mut self, name: &str) -> Result<(), String> {
        match self {
            Self::Postgres(admin) => admin.remove(name).await,
            Self::Mysql(admin) => admin.remove(name).await,
        }
    }

    /// The database's size in bytes and its connections now.
    pub(crate) async fn usage(&mut self, name: &str) -> Result<(u64, u32), String> {
        match self {
            Self::Postgres(admin) => admin.usage(name).await,
            Self::Mysql(admin) => admin.usage(name).await,
        }
    }

    /// What the server says of itself.
    pub(crate) async fn facts(&mut self) -> Result<ServerFacts, String> {
        match self {
            Self::Postgres(admin) => admin.facts().await,
            Self::Mysql(admin) => admin.facts().await,
        }
    }

    /// Every site database's size in bytes, by name.
    pub(crate) async fn sizes(&mut self) -> Result<Vec<(String, u64)>, String> {
        match self {
            Self::Postgres(admin) => admin.sizes().await,
            Self::Mysql(admin) => admin.sizes().await,
        }
    }
}

impl DatabaseServers {
    /// The file holding the superuser's password of `engine`: made (0600, root's) with a new
    /// password when missing.
    async fn superuser_password(&self, engine: Engine) -> Result<String, String> {
        let dir = self.dir.join(engine.name());
        crate::files::blocking(move || -> Result<String, String> {
            let fail = |e: std::io::Error| {
                tracing::error!(dir = %dir.display(), error = %e, "the database superuser's password file");
                format!(
                    "the database server's password file cannot be read or made ({})",
                    e.kind()
                )
            };
            std::fs::DirBuilder::new()
                .recursive(true)
                .create(&dir)
                .map_err(fail)?;
            let file = dir.join("superuser");
            match std::fs::read_to_string(&file) {
                Ok(password) if !password.trim().is_empty() => return Ok(password.trim().to_owned()),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(fail(e)),
            }
            // Written whole under a name of its own, then linked into place, which fails when the
            // file exists: of two processes (or tasks) making it at once, one wins and both use
            // its password — never a half-written one, never two.
            let password = new_password();
            match write_password(&dir, &password, |written| std::fs::hard_link(written, &file)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    return std::fs::read_to_string(&file)
                        .map(|p| p.trim().to_owned())
                        .map_err(fail);
                }
                Err(e) => return Err(fail(e)),
            }
            Ok(password)
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// Gives the superuser of `engine` a new password in its file (the server takes it at its
    /// next start: see `orchestrator::databases`).
    pub(crate) async fn replace_superuser_password(&self, engine: Engine) -> Result<(), String> {
        let dir = self.dir.join(engine.name());
        crate::files::blocking(move || {
            // Renamed over the old one: a reader finds the old password or the new, whole.
            write_password(&dir, &new_password(), |written| {
                std::fs::rename(written, dir.join("superuser"))
            })
            .map_err(|e| {
                tracing::error!(dir = %dir.display(), error = %e, "replacing the database superuser's password");
                format!("the database server's password file cannot be written ({})", e.kind())
            })
        })
        .await
        .map_err(|e| e.to_string())?
    }
}

/// Writes `password` whole (0600) to a new file of its own in `dir`, then gives it to `place`
/// (which links or renames it into place); the new file is gone after.
fn write_password(
    dir: &std::path::Path,
    password: &str,
    place: impl FnOnce(&std::path::Path) -> std::io::Result<()>,
) -> std::io::Result<()> {
    use std::{io::Write as _, os::unix::fs::OpenOptionsExt as _};
    let temporary = dir.join(format!("superuser.{}.{}", std::process::id(), new_password()));
    let written = (|| {
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)?;
        out.write_all(password.as_bytes())?;
        out.sync_all()?;
        place(&temporary)
    })();
    let _ = std::fs::remove_file(&temporary);
    written
}

/// A database server of the operator's that Director is given by URL instead of running one
/// (`--site-postgres-url`, `--site-mysql-url`): Director makes the sites' databases and roles
/// on it as the admin role the URL names, and the sites reach it at the URL's host and port
/// (which the sites' containers must reach too).
#[derive(Clone, PartialEq, Eq)]
pub struct ExternalServer {
    /// Its host name or address.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The admin role: it makes roles and databases (PostgreSQL: a superuser, since the sites'
    /// roles get settings only a superuser may give; MySQL: one with every privilege and GRANT
    /// OPTION).
    pub user: String,
    password: String,
    /// The database the admin connects to (PostgreSQL's `postgres` unless the URL names one).
    pub database: String,
}

impl std::fmt::Debug for ExternalServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalServer")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

impl ExternalServer {
    /// The server `url` names for databases of `kind`: `postgresql://admin:password@host:5432/postgres`
    /// or `mysql://admin:password@host:3306`. The reason when it is not one.
    pub fn parse(kind: DatabaseKind, url: &str) -> Result<Self, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("not a URL ({e})"))?;
        let (schemes, port): (&[&str], u16) = match kind {
            DatabaseKind::Postgresql => (&["postgresql", "postgres"], 5432),
            DatabaseKind::Mysql => (&["mysql", "mariadb"], 3306),
        };
        if !schemes.contains(&parsed.scheme()) {
            return Err(format!(
                "a {} server's URL starts with {}://",
                kind.label(),
                schemes[0]
            ));
        }
        // Options such as `?sslmode=require` would be promises Director does not keep: its
        // connections are plain TCP.
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(
                "the URL has options (after ? or #), which Director does not take: its connections \
                 to the server are unencrypted, for a server on a private network"
                    .to_owned(),
            );
        }
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("the URL names no host")?;
        let decode = |text: &str| {
            percent_encoding::percent_decode_str(text)
                .decode_utf8()
                .map(|t| t.into_owned())
                .map_err(|_| "the URL's user or password is not UTF-8".to_owned())
        };
        let user = decode(parsed.username())?;
        let password = decode(parsed.password().unwrap_or_default())?;
        if user.is_empty() || password.is_empty() {
            return Err("the URL names no admin role and password (admin:password@host)".to_owned());
        }
        let database = decode(parsed.path().trim_start_matches('/'))?;
        Ok(Self {
            // An IPv6 address is written in brackets in a URL, and without them in a host name.
            host: host.trim_start_matches('[').trim_end_matches(']').to_owned(),
            port: parsed.port().unwrap_or(port),
            user,
            password,
            database: match (kind, database.is_empty()) {
                (DatabaseKind::Postgresql, true) => "postgres".to_owned(),
                _ => database,
            },
        })
    }
}

/// A server as Director reaches it: its own, on its socket as the superuser; or an
/// operator's, over TCP as the admin role of its URL, with the mark (`director:<installation
/// id>`) of what this installation makes there.
#[derive(Clone)]
pub(crate) enum Server {
    Own(ServerSpec),
    External(DatabaseKind, ExternalServer, String),
}

impl Server {
    /// The admin's name and password.
    fn admin(&self) -> (&str, &str) {
        match self {
            Self::Own(spec) => (
                match spec.engine {
                    Engine::Postgres => "postgres",
                    Engine::Mariadb => "root",
                },
                &spec.superuser_password,
            ),
            Self::External(_, server, _) => (&server.user, &server.password),
        }
    }

    /// Where sites reach it: host and port.
    pub(crate) fn site_address(settings: &crate::Settings, kind: DatabaseKind) -> (String, u16) {
        match settings.external_database(kind) {
            Some(server) => (server.host.clone(), server.port),
            None => (engine(kind).alias().to_owned(), engine(kind).port()),
        }
    }

    /// Which kind of databases it holds.
    fn kind(&self) -> DatabaseKind {
        match self {
            Self::Own(spec) => match spec.engine {
                Engine::Postgres => DatabaseKind::Postgresql,
                Engine::Mariadb => DatabaseKind::Mysql,
            },
            Self::External(kind, ..) => *kind,
        }
    }

    /// The mark of what this installation makes on an operator's server (None: on Director's
    /// own, where everything is its own).
    pub(crate) fn mark(&self) -> Option<&str> {
        match self {
            Self::Own(_) => None,
            Self::External(.., mark) => Some(mark),
        }
    }

    /// Director's own server's spec (None: the operator's).
    pub(crate) fn own(&self) -> Option<&ServerSpec> {
        match self {
            Self::Own(spec) => Some(spec),
            Self::External(..) => None,
        }
    }

    /// How to connect to its PostgreSQL as `user` to `database` (`None`: as the admin, to the
    /// admin's database).
    pub(crate) fn postgres(
        &self,
        login: Option<(&str, &str)>,
        database: Option<&str>,
    ) -> tokio_postgres::Config {
        let (user, password) = login.unwrap_or_else(|| self.admin());
        let mut config = tokio_postgres::Config::new();
        match self {
            Self::Own(spec) => config.host_path(spec.socket_dir()).port(spec.engine.port()),
            Self::External(_, server, _) => config.host(&server.host).port(server.port),
        };
        let admin_database = match self {
            Self::Own(_) => "postgres",
            Self::External(_, server, _) => &server.database,
        };
        config
            .user(user)
            .password(password)
            .dbname(database.unwrap_or(admin_database))
            .connect_timeout(Duration::from_secs(5));
        config
    }

    /// How to connect to its MySQL as `user` (`None`: as the admin), in `database`.
    pub(crate) fn mysql(
        &self,
        login: Option<(&str, &str)>,
        database: Option<&str>,
    ) -> mysql_async::OptsBuilder {
        let (user, password) = login.unwrap_or_else(|| self.admin());
        let opts = match self {
            Self::Own(spec) => mysql_async::OptsBuilder::default()
                .socket(Some(spec.socket().to_string_lossy().into_owned()))
                .prefer_socket(true),
            Self::External(_, server, _) => mysql_async::OptsBuilder::default()
                .ip_or_hostname(server.host.clone())
                .tcp_port(server.port)
                .prefer_socket(false),
        };
        opts.user(Some(user)).pass(Some(password)).db_name(database)
    }

    /// Whether it may answer now: Director's own when its socket takes connections; the
    /// operator's is asked (a connection that fails says why).
    pub(crate) async fn may_answer(&self, orchestrator: &orchestrator::Orchestrator) -> bool {
        match self {
            Self::Own(spec) => orchestrator.database_socket_ready(spec).await,
            Self::External(..) => true,
        }
    }
}

/// How long an operator's server is given to answer before an operation needing it fails (and
/// is retried).
const EXTERNAL_TIMEOUT: Duration = Duration::from_secs(15);

impl Runtime {
    /// The server for `kind` as Director reaches it, or why there is none.
    pub(crate) async fn database_server(&self, kind: DatabaseKind) -> Result<Server, String> {
        if let Some(server) = self.platform.settings().external_database(kind) {
            let installation = self.platform.installation_id().await.map_err(|e| e.to_string())?;
            return Ok(Server::External(
                kind,
                server.clone(),
                format!("director:{installation}"),
            ));
        }
        let servers = self
            .databases
            .as_ref()
            .ok_or_else(|| "this Director has no database servers configured".to_owned())?;
        let engine = engine(kind);
        Ok(Server::Own(ServerSpec {
            engine,
            directory: servers.dir.join(engine.name()),
            superuser_password: servers.superuser_password(engine).await?,
            network: self.network.clone(),
            endpoint_mode: self.endpoint_mode,
            memory_bytes: servers.memory_bytes,
        }))
    }

    /// The server for `kind`, Director's own brought to its spec (started, its image made
    /// first on a new machine; an operator's is left as it is). Read and ensured under the
    /// kind's lock (see `rotate_database_superuser`).
    pub(crate) async fn ensure_database_server(
        &self,
        kind: DatabaseKind,
    ) -> Result<(Server, Ensured), String> {
        let _one_at_a_time = self.platform.database_server_lock(kind).lock().await;
        let server = self.database_server(kind).await?;
        let ensured = match server.own() {
            Some(spec) => self
                .orchestrator
                .ensure_database_server(spec)
                .await
                .map_err(|e| format!("starting the {} server failed: {e}", kind.label()))?,
            None => Ensured::Unchanged,
        };
        Ok((server, ensured))
    }

    /// Makes sure the server for `kind` runs, and returns an admin's connection to it once it
    /// answers.
    pub(crate) async fn database_admin(&self, kind: DatabaseKind) -> Result<Admin, String> {
        let (server, _) = self.ensure_database_server(kind).await?;
        let timeout = match server.own() {
            Some(_) => START_TIMEOUT,
            None => EXTERNAL_TIMEOUT,
        };
        let started = tokio::time::Instant::now();
        loop {
            match Admin::connect(&server).await {
                Ok(admin) => return Ok(admin),
                Err(err) if started.elapsed() > timeout => {
                    tracing::warn!(server = %kind, error = %err, "a database server does not answer");
                    return Err(format!(
                        "the {} server does not answer (retry in a moment): {err}",
                        kind.label()
                    ));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }
}
