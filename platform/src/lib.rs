//! Director's domain.
//!
//! Users, sessions and SSH keys, the one place permissions are checked
//! ([`authz::authorize`]), sites with their members, operations queue and reconciler.
//! State lives in PostgreSQL (diesel + diesel-async); the orchestrator is the only way out to
//! Docker.
//!
//! Invariants:
//! - Every public method that acts for someone takes the acting [`Actor`] (or `None` for an
//!   anonymous caller) and calls [`authz::authorize`] before touching anything.
//! - Secrets are never stored or logged in the clear: passwords as argon2 hashes, session and
//!   setup tokens as SHA-256 digests.

pub mod accounts;
pub mod api_tokens;
pub mod authz;
pub mod db;
pub mod dns;
mod error;
pub mod files;
pub mod grants;
pub mod keys;
pub mod notify;
pub mod oidc;
mod passwords;
pub mod requests;
pub mod schema;
pub mod sites;
#[cfg(feature = "test-support")]
pub mod testing;
mod tokens;
pub mod validation;
pub mod webhooks;

use std::{sync::Arc, time::Duration};

pub use accounts::{Actor, ClientInfo, NewUser, Role, SessionToken, UserSummary};
pub use authz::{Access, Grant, Permission, TokenGrant, authorize};
pub use error::{Error, Result};

use crate::db::{DbConn, DbPool};

/// Tunables of the platform, with defaults fit for a real deployment.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a session lasts without being used.
    pub session_ttl: Duration,
    /// The window over which failed sign-ins are counted.
    pub login_window: Duration,
    /// Failed sign-ins for one username within the window before it is locked.
    pub max_failures_per_account: i64,
    /// Failed sign-ins from one address within the window before it is locked.
    pub max_failures_per_ip: i64,
    /// How long the first-run setup link stays valid.
    pub setup_token_ttl: Duration,
    /// Sites are `<name>.<sites domain>`.
    pub sites_domain: String,
    /// The port visitors reach the sites on (80 is left out of URLs).
    pub sites_port: u16,
    /// The HTTPS port, when the edge serves HTTPS (443 is left out of URLs).
    pub sites_https_port: Option<u16>,
    /// The host the manager is reached at: no site may be named so that its host is this one
    /// or a parent of it (its pages could then set cookies for the manager, or get its
    /// certificate). Empty: not known (tests).
    pub manager_host: String,
    /// The most sites a member may belong to unless an admin set their own quota (admins
    /// have none).
    pub sites_per_user: i64,
    /// The disk a site's files may take, in bytes: past it, the file manager and SFTP write
    /// nothing more to it.
    pub site_disk_bytes: u64,
    /// How long a site's new task may take to start answering HTTP before it counts as failed
    /// (a deploy then rolls back to the task that served before).
    pub site_start_period: Duration,
    /// How long a worker running an operation may stay silent (its heartbeat not renewed)
    /// before another takes the operation over. It renews three times per period.
    pub operation_heartbeat_timeout: Duration,
    /// The name server domain verification asks (None: the system's resolver).
    pub dns_server: Option<std::net::SocketAddr>,
    /// The most connections a site's database role may hold at once.
    pub database_connections: u32,
    /// A site's database past this size, in bytes, is marked on the administrators' page.
    pub database_size_warning_bytes: u64,
    /// The operator's PostgreSQL server for sites' databases, instead of Director's own.
    pub site_postgres: Option<sites::ExternalServer>,
    /// The operator's MySQL (MariaDB) server for sites' databases, instead of Director's own.
    pub site_mysql: Option<sites::ExternalServer>,
    /// The identity providers people may sign in with.
    pub oidc: Vec<oidc::OidcProvider>,
    /// Whether people may sign in with Director's own passwords.
    pub local_login: oidc::LocalLogin,
    /// The manager's address as people reach it (links in emails lead there).
    pub public_url: String,
    /// The mail server notifications are emailed through (None: no emails).
    pub smtp: Option<notify::SmtpSettings>,
    /// The wait after a delivery's first failed attempt, doubled at each one after.
    pub delivery_retry: Duration,
    /// How long a delivery is retried before it is given up.
    pub delivery_give_up: Duration,
    /// Address ranges webhooks may reach although they are loopback, link-local, the host's or
    /// the engine's (an operator's own service on the host).
    pub webhook_allowed_networks: Vec<ipnet::IpNet>,
}

impl Settings {
    /// The operator's server for databases of `kind`, if one was given.
    pub fn external_database(&self, kind: sites::DatabaseKind) -> Option<&sites::ExternalServer> {
        match kind {
            sites::DatabaseKind::Postgresql => self.site_postgres.as_ref(),
            sites::DatabaseKind::Mysql => self.site_mysql.as_ref(),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            session_ttl: Duration::from_secs(14 * 24 * 3600),
            login_window: Duration::from_secs(15 * 60),
            max_failures_per_account: 10,
            max_failures_per_ip: 50,
            setup_token_ttl: Duration::from_secs(24 * 3600),
            sites_domain: "localhost".to_owned(),
            sites_port: 80,
            sites_https_port: None,
            manager_host: String::new(),
            sites_per_user: 10,
            site_disk_bytes: 2 << 30,
            site_start_period: Duration::from_secs(60),
            operation_heartbeat_timeout: Duration::from_secs(30),
            dns_server: None,
            database_connections: 20,
            database_size_warning_bytes: 1 << 30,
            site_postgres: None,
            site_mysql: None,
            oidc: Vec::new(),
            local_login: oidc::LocalLogin::On,
            public_url: "http://localhost:8080".to_owned(),
            smtp: None,
            delivery_retry: Duration::from_secs(30),
            delivery_give_up: Duration::from_secs(24 * 3600),
            webhook_allowed_networks: Vec::new(),
        }
    }
}

/// Runs of the SQL console that may be under way at once, across every member and site.
const CONSOLE_RUNS: usize = 4;

/// A handle on the platform; cheap to clone, shared by every request.
#[derive(Clone)]
pub struct Platform {
    inner: Arc<Inner>,
}

struct Inner {
    pool: DbPool,
    settings: Settings,
    /// Woken whenever an operation is queued, so that an idle worker starts on it at once.
    queued: tokio::sync::Notify,
    /// Woken when a delivery (an email, a webhook's POST) is queued in this process.
    deliveries_queued: tokio::sync::Notify,
    /// Bumped whenever access may have been taken away (see `grants`).
    access: tokio::sync::watch::Sender<u64>,
    /// Each site's disk use and quota, shared by its writers (see `sites::disk`).
    disks: std::sync::Mutex<std::collections::HashMap<i32, Arc<files::Disk>>>,
    /// The engine and edge, once they are up (None before, while Docker is away, and with the
    /// edge off).
    runtime: tokio::sync::watch::Sender<Option<sites::Runtime>>,
    /// Where domain verification looks TXT records up: made at its first use, so that nothing
    /// else (a `director user create`) needs a working resolver.
    dns: std::sync::OnceLock<dns::Dns>,
    /// Runs of the SQL console under way at once: each may hold a result's worth of memory.
    console_runs: tokio::sync::Semaphore,
    /// Each member's last run of the console, until a page shows it.
    last_runs: sites::databases::LastRuns,
    /// Held while a database server's password is read and the server brought to it, one per
    /// kind: a new password is never undone by someone who read the old one.
    database_server_locks: [tokio::sync::Mutex<()>; 2],
    /// This installation's id (see migration 000013), read once.
    installation: tokio::sync::OnceCell<String>,
    /// The HTTP client of each identity provider, made at its first use (see `oidc`).
    oidc_http: std::sync::Mutex<std::collections::HashMap<String, reqwest::Client>>,
    /// When each person last sent a test (an email, a webhook's ping), per kind (see `notify`).
    tests_sent: std::sync::Mutex<notify::TestsSent>,
    /// The mail server's transport and its pool of connections, made at its first use (see
    /// `notify`).
    smtp_transport: std::sync::OnceLock<lettre::AsyncSmtpTransport<lettre::Tokio1Executor>>,
    /// The Docker engine's networks as it last listed them (see `webhooks`).
    engine_networks: std::sync::Mutex<Option<Vec<ipnet::IpNet>>>,
}

impl std::fmt::Debug for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platform")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl Platform {
    /// A platform on `pool`, whose schema must be migrated already.
    pub fn new(pool: DbPool, settings: Settings) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool,
                settings,
                queued: tokio::sync::Notify::new(),
                deliveries_queued: tokio::sync::Notify::new(),
                access: tokio::sync::watch::Sender::new(0),
                disks: std::sync::Mutex::default(),
                runtime: tokio::sync::watch::Sender::new(None),
                dns: std::sync::OnceLock::new(),
                console_runs: tokio::sync::Semaphore::new(CONSOLE_RUNS),
                last_runs: sites::databases::LastRuns::default(),
                database_server_locks: Default::default(),
                installation: tokio::sync::OnceCell::new(),
                oidc_http: Default::default(),
                tests_sent: Default::default(),
                engine_networks: Default::default(),
                smtp_transport: std::sync::OnceLock::new(),
            }),
        }
    }

    /// The platform's settings.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Makes `runtime` the one every request and worker uses from now on (None: Docker is
    /// not connected).
    pub fn set_runtime(&self, runtime: Option<sites::Runtime>) {
        self.inner.runtime.send_replace(runtime);
    }

    /// The runtime as it changes: for the workers that wait for it.
    pub fn runtime_changes(&self) -> tokio::sync::watch::Receiver<Option<sites::Runtime>> {
        self.inner.runtime.subscribe()
    }

    /// The engine and edge, or why `what` cannot be had without them (503).
    pub(crate) fn runtime(&self, what: &str) -> Result<sites::Runtime> {
        self.runtime_if_up().ok_or_else(|| {
            Error::EngineUnavailable(format!(
                "{what} unavailable while Director is not connected to Docker."
            ))
        })
    }

    /// The engine and edge, if they are up.
    pub(crate) fn runtime_if_up(&self) -> Option<sites::Runtime> {
        self.inner.runtime.borrow().clone()
    }

    /// The resolver domain verification asks, made now if it was not yet.
    pub(crate) fn dns(&self) -> Result<&dns::Dns> {
        if let Some(dns) = self.inner.dns.get() {
            return Ok(dns);
        }
        let made = dns::Dns::new(self.inner.settings.dns_server)?;
        Ok(self.inner.dns.get_or_init(|| made))
    }

    /// This installation's id: what it makes on an operator's database server is marked with it.
    pub(crate) async fn installation_id(&self) -> Result<&str> {
        self.inner
            .installation
            .get_or_try_init(|| async {
                use diesel::QueryDsl as _;
                use diesel_async::RunQueryDsl as _;
                let mut conn = self.conn().await?;
                Ok::<_, Error>(
                    schema::installation::table
                        .select(schema::installation::id)
                        .first::<String>(&mut conn)
                        .await?,
                )
            })
            .await
            .map(String::as_str)
    }

    /// The lock over the database server of `kind` (see `Inner::database_server_locks`).
    pub(crate) fn database_server_lock(&self, kind: sites::DatabaseKind) -> &tokio::sync::Mutex<()> {
        &self.inner.database_server_locks[match kind {
            sites::DatabaseKind::Postgresql => 0,
            sites::DatabaseKind::Mysql => 1,
        }]
    }

    /// A turn to run the SQL console, waiting for one at most as long as a run may take.
    pub(crate) async fn console_turn(&self) -> Result<tokio::sync::SemaphorePermit<'_>> {
        let wait = Duration::from_secs(model::database::CONSOLE_TIMEOUT_SECS + 5);
        match tokio::time::timeout(wait, self.inner.console_runs.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Error::EngineUnavailable(
                "The SQL console is busy with other runs: try again in a moment.".to_owned(),
            )),
        }
    }

    /// Waits until an operation is queued by this process, or `timeout` passes (operations
    /// queued by other processes, and abandoned ones, are found by polling).
    pub async fn operation_queued(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.inner.queued.notified()).await;
    }

    pub(crate) fn wake_workers(&self) {
        self.inner.queued.notify_one();
    }

    pub(crate) async fn conn(&self) -> Result<DbConn> {
        Ok(self.inner.pool.get().await?)
    }

    /// A connection of its own, never returned to the pool: for session-level advisory locks,
    /// which a task that is dropped midway must not leave held on a pooled connection (closing
    /// this one releases them).
    ///
    /// It is made by the pool's manager but never counted by the pool: a task holding a pooled
    /// connection while it waits for this one cannot starve the pool (every worker holding one
    /// and waiting for a second would wait for ever).
    pub(crate) async fn own_conn(&self) -> Result<diesel_async::AsyncPgConnection> {
        use deadpool::managed::Manager as _;
        self.inner
            .pool
            .manager()
            .create()
            .await
            .map_err(|err| Error::Unavailable(Box::new(err)))
    }

    /// Whether the database answers a trivial query; what `/readyz` reports.
    pub async fn database_ready(&self) -> Result<()> {
        use diesel_async::RunQueryDsl as _;
        let mut conn = self.conn().await?;
        diesel::sql_query("SELECT 1").execute(&mut conn).await?;
        Ok(())
    }
}
