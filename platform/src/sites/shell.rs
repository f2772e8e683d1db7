//! Shells in a site's terminal container: the one path the browser's terminal and SSH share.
//! The container runs the site's image with its files, uid and limits; the shell starts in
//! `/site` with a prompt naming the site.

use orchestrator::{ExecRequest, ExecSession};

use super::{Runtime, Site, SiteState};
use crate::{Access, Actor, Error, Platform, Result};

/// The largest terminal accepted; bigger asks are clamped (a huge one costs the engine memory).
pub const MAX_COLS: u16 = 500;
/// See [`MAX_COLS`].
pub const MAX_ROWS: u16 = 200;

/// A terminal size within bounds.
pub fn clamp_size(cols: u16, rows: u16) -> (u16, u16) {
    (cols.clamp(1, MAX_COLS), rows.clamp(1, MAX_ROWS))
}

/// A site's files as SFTP works on them.
#[derive(Debug)]
pub struct OpenedFiles {
    /// The site.
    pub site: Site,
    /// Its directory on this host.
    pub directory: std::path::PathBuf,
    /// The uid its files belong to.
    pub uid: u32,
    /// Its disk's use and quota, shared with its other writers.
    pub disk: std::sync::Arc<crate::files::Disk>,
}

/// What to start.
#[derive(Debug, Clone, Default)]
pub struct ShellRequest {
    /// Columns and rows of the terminal (an interactive shell); None for a command.
    pub size: Option<(u16, u16)>,
    /// A command for `sh -c` instead of an interactive shell; run without a TTY, so its
    /// standard error stays apart.
    pub command: Option<String>,
    /// The site's database to open a client on (`psql`, `mariadb`) as the site's role, in the
    /// site's database shell container, instead of a shell in its terminal.
    pub database: Option<super::DatabaseKind>,
}

impl Platform {
    /// Removes terminal containers nobody has had a shell in for `idle` (none while Docker
    /// is not connected).
    pub async fn reap_idle_terminals(&self, idle: std::time::Duration) -> Result<()> {
        if let Some(runtime) = self.runtime_if_up() {
            let reaped = runtime.orchestrator.reap_idle_terminals(idle).await?;
            if !reaped.is_empty() {
                tracing::info!(count = reaped.len(), "idle terminals removed");
            }
        }
        Ok(())
    }

    /// The site's directory, uid and disk, for a member or an admin of a site that is not
    /// disabled (SFTP works on the files directly, with the same checks as a shell).
    pub async fn open_files(&self, actor: Option<&Actor>, site_id: i32) -> Result<OpenedFiles> {
        let (actor, site, runtime) = self.shell_checks(actor, site_id, "Files are").await?;
        let disk = self.disk_counter(&site, &runtime).await?;
        tracing::info!(user = %actor.username, site = %site.name, "files opened");
        Ok(OpenedFiles {
            directory: runtime.directory(&site),
            uid: Runtime::uid(&site),
            disk,
            site,
        })
    }

    /// The site's files, for a member or an admin (the file manager; a disabled site's members
    /// may still fix its files), to read only or to change as `access` says.
    pub async fn site_files(
        &self,
        actor: Option<&Actor>,
        site_id: i32,
        access: Access,
    ) -> Result<std::sync::Arc<crate::files::SiteFiles>> {
        let (_, site) = self.managed_site(actor, site_id, access).await?;
        if site.state == SiteState::Deleting {
            return Err(Error::Conflict("The site is being deleted.".to_owned()));
        }
        let runtime = self.runtime("Files are")?;
        let disk = self.disk_counter(&site, &runtime).await?;
        let files = crate::files::SiteFiles::open(&runtime.directory(&site), Runtime::uid(&site))?;
        Ok(std::sync::Arc::new(files.with_disk(disk)))
    }

    /// Who may have a shell in a site: its members and admins, when it is not disabled nor
    /// being made or deleted, with Docker connected (else `what` is unavailable).
    async fn shell_checks<'a>(
        &self,
        actor: Option<&'a Actor>,
        site_id: i32,
        what: &str,
    ) -> Result<(&'a Actor, Site, Runtime)> {
        let (actor, site) = self.shell_site(actor, site_id).await?;
        if matches!(site.state, SiteState::Provisioning | SiteState::Deleting) {
            return Err(Error::Conflict(format!(
                "The site is {}: try again when it is done.",
                site.state
            )));
        }
        let runtime = self.runtime(what)?;
        Ok((actor, site, runtime))
    }

    /// The site `site_id`, if `actor` may work in its shell: write access to it, and the site
    /// not disabled. Asked again when a terminal is reattached.
    pub async fn shell_site<'a>(&self, actor: Option<&'a Actor>, site_id: i32) -> Result<(&'a Actor, Site)> {
        let (actor, site) = self.managed_site(actor, site_id, Access::Write).await?;
        if site.availability == crate::sites::Availability::Disabled {
            return Err(Error::Conflict(
                "An administrator disabled this site: its terminal is closed.".to_owned(),
            ));
        }
        Ok((actor, site))
    }

    /// Opens a shell (or runs a command) in the site's terminal container, for a member or an
    /// admin of a site that is not disabled. The container is made if it is not there.
    pub async fn open_shell(
        &self,
        actor: Option<&Actor>,
        site_id: i32,
        request: ShellRequest,
    ) -> Result<(Site, ExecSession)> {
        let (actor, site, runtime) = self.shell_checks(actor, site_id, "Terminals are").await?;
        let refused = |err: orchestrator::Error| {
            tracing::warn!(site = %site.name, error = %err, "opening a shell failed");
            if err.is_retryable() {
                Error::EngineUnavailable("Docker did not answer in time; try again.".to_owned())
            } else {
                Error::Conflict("The site's terminal could not be started.".to_owned())
            }
        };
        let container = match request.database {
            Some(kind) => database_shell(&site, &runtime, kind).await?,
            None => runtime
                .orchestrator
                .ensure_terminal(&runtime.spec(&site))
                .await
                .map_err(refused)?,
        };
        let env = vec![
            "TERM=xterm-256color".to_owned(),
            "HOME=/site".to_owned(),
            "LANG=C.UTF-8".to_owned(),
            format!("SITE={}", site.name),
            // Expanded by the shell at each prompt (POSIX sh, busybox ash and dash alike).
            format!("PS1={}:$PWD$ ", site.name),
        ];
        let client = request
            .database
            .map(|kind| database_client(kind, "psql", "mariadb"));
        let exec = match (client, &request.command) {
            (Some(client), _) => ExecRequest {
                cmd: vec!["/bin/sh".to_owned(), "-c".to_owned(), client],
                tty: request.size.is_some(),
                env,
                size: request.size.map(|(c, r)| clamp_size(c, r)),
            },
            (None, Some(command)) => ExecRequest {
                cmd: vec!["/bin/sh".to_owned(), "-c".to_owned(), command.clone()],
                tty: false,
                env,
                size: None,
            },
            (None, None) => ExecRequest {
                // Interactive, not a login shell: a login shell's /etc/profile would reset PS1.
                cmd: vec!["/bin/sh".to_owned(), "-i".to_owned()],
                tty: true,
                env,
                size: request.size.map(|(c, r)| clamp_size(c, r)),
            },
        };
        let session = runtime
            .orchestrator
            .exec(&container, exec)
            .await
            .map_err(refused)?;
        tracing::info!(user = %actor.username, site = %site.name, command = request.command.is_some(), "shell opened");
        Ok((site, session))
    }
}

/// A dump of one of a site's databases being written: the name to save it as and the client
/// writing it (its standard output is the dump, its standard error the client's complaints).
#[derive(Debug)]
pub struct DatabaseDump {
    /// `<site>-<kind>-<UTC date and time>.sql`.
    pub file_name: String,
    /// `pg_dump` or `mariadb-dump`, running.
    pub session: ExecSession,
}

impl Platform {
    /// Starts a dump of the site's database of `kind` as plain SQL, made by the site's own
    /// role in its database shell container (so nothing of another site's is within its
    /// reach), for a member or an admin; each one is an audit line.
    pub async fn dump_database(
        &self,
        actor: Option<&Actor>,
        site_id: i32,
        kind: super::DatabaseKind,
    ) -> Result<DatabaseDump> {
        let (actor, site, runtime) = self.shell_checks(actor, site_id, "Dumps are").await?;
        let container = database_shell(&site, &runtime, kind).await?;
        // Written before the dump starts: none runs unrecorded.
        {
            let mut conn = self.conn().await?;
            super::audit(&mut conn, actor, "database.dump", &site.name, kind.as_str()).await?;
        }
        // Objects as they are, without the role's name or grants (the dump is for loading
        // anywhere); MariaDB's in one consistent snapshot with its routines, events and
        // triggers, without the tablespaces a site's user may not read. PostgreSQL waits at
        // most 30 s for a lock the site's own code holds.
        //
        // The site's files are the tenant's: the clients must read none of them (a `.my.cnf`
        // could load a library into the client or reshape the dump, a `.pgpass` or service file
        // redirect it). MariaDB's reads no option file at all, and both run outside the site's
        // directory with a home that does not exist.
        let command = format!(
            "cd / && {}",
            database_client(
                kind,
                "pg_dump --no-owner --no-privileges --lock-wait-timeout=30s",
                "mariadb-dump --no-defaults --single-transaction --no-tablespaces --routines --events --triggers",
            )
        );
        let session = runtime
            .orchestrator
            .exec(
                &container,
                ExecRequest {
                    cmd: vec!["/bin/sh".to_owned(), "-c".to_owned(), command],
                    tty: false,
                    env: [
                        "LANG=C.UTF-8",
                        "HOME=/nonexistent",
                        "PGPASSFILE=/dev/null",
                        "PGSERVICEFILE=/dev/null",
                        "PGSYSCONFDIR=/nonexistent",
                    ]
                    .map(ToOwned::to_owned)
                    .to_vec(),
                    size: None,
                },
            )
            .await
            .map_err(|err| {
                tracing::warn!(site = %site.name, error = %err, "starting a dump failed");
                Error::EngineUnavailable("The dump could not be started; try again.".to_owned())
            })?;
        tracing::info!(user = %actor.username, site = %site.name, %kind, "database dump started");
        Ok(DatabaseDump {
            file_name: format!(
                "{}-{}-{}.sql",
                site.name,
                kind.as_str(),
                chrono::Utc::now().format("%Y%m%d-%H%M%S")
            ),
            session,
        })
    }
}

/// The site's database shell container, made if it is not there, once its database of `kind`
/// is ready.
async fn database_shell(site: &Site, runtime: &Runtime, kind: super::DatabaseKind) -> Result<String> {
    let ready = site
        .databases
        .iter()
        .any(|d| d.kind == kind && d.state == super::DatabaseState::Ready);
    if !ready {
        return Err(Error::NotFound("database"));
    }
    runtime
        .orchestrator
        .ensure_database_shell(&runtime.spec(site))
        .await
        .map_err(|err| {
            tracing::warn!(site = %site.name, error = %err, "starting the database shell container failed");
            if err.is_retryable() {
                Error::EngineUnavailable("Docker did not answer in time; try again.".to_owned())
            } else {
                Error::Conflict("The site's database shell could not be started.".to_owned())
            }
        })
}

/// The `sh -c` line running a client of the site's database of `kind` as its role: `postgres`
/// for PostgreSQL (which reads the site's `PG*` variables), `mysql` for MySQL, given the
/// connection from the site's `MYSQL_*` variables and the password in `MYSQL_PWD` (never on a
/// command line, where `ps` would show it).
fn database_client(kind: super::DatabaseKind, postgres: &str, mysql: &str) -> String {
    match kind {
        super::DatabaseKind::Postgresql => format!("exec {postgres}"),
        super::DatabaseKind::Mysql => format!(
            "MYSQL_PWD=\"$MYSQL_PASSWORD\" exec {mysql} --host=\"$MYSQL_HOST\" --port=\"$MYSQL_PORT\" \
             --user=\"$MYSQL_USER\" \"$MYSQL_DATABASE\""
        ),
    }
}
