//! The database servers as the platform uses them: started on first use, their superuser's
//! password kept in Director's data directory, reached on their socket.

use std::{path::PathBuf, time::Duration};

use model::database::DatabaseKind;
use orchestrator::databases::{Engine, ServerSpec};

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
}

impl Admin {
    /// A superuser's connection to `spec`'s server, if it answers now.
    pub(crate) async fn connect(spec: &ServerSpec) -> Result<Self, String> {
        match spec.engine {
            Engine::Postgres => postgres::Admin::connect(spec)
                .await
                .map(|admin| Self::Postgres(Box::new(admin))),
            Engine::Mariadb => mysql::Admin::connect(spec).await.map(Self::Mysql),
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

impl Runtime {
    /// The spec of the server for `kind`, or why there is none.
    pub(crate) async fn database_server(&self, kind: DatabaseKind) -> Result<ServerSpec, String> {
        let servers = self
            .databases
            .as_ref()
            .ok_or_else(|| "this Director has no database servers configured".to_owned())?;
        let engine = engine(kind);
        Ok(ServerSpec {
            engine,
            directory: servers.dir.join(engine.name()),
            superuser_password: servers.superuser_password(engine).await?,
            network: self.network.clone(),
            endpoint_mode: self.endpoint_mode,
            memory_bytes: servers.memory_bytes,
        })
    }

    /// Makes sure the server for `kind` runs, and returns a superuser's connection to it: the
    /// server is started (its image made first on a new machine) and waited for.
    pub(crate) async fn database_admin(&self, kind: DatabaseKind) -> Result<Admin, String> {
        let spec = self.database_server(kind).await?;
        self.orchestrator
            .ensure_database_server(&spec)
            .await
            .map_err(|e| format!("starting the {} server failed: {e}", kind.label()))?;
        let started = tokio::time::Instant::now();
        loop {
            match Admin::connect(&spec).await {
                Ok(admin) => return Ok(admin),
                Err(err) if started.elapsed() > START_TIMEOUT => {
                    tracing::warn!(server = %spec.engine, error = %err, "a database server does not answer");
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
