//! `director serve` and the other commands' database set-up.

use std::{io::IsTerminal as _, net::SocketAddr, time::Duration};

use anyhow::Context as _;
use app::ssr::AppContext;
use leptos::config::LeptosOptions;
use platform::{Platform, Settings};

use crate::{
    config::{Config, EdgeDriver},
    edge::{self, EdgePlan},
    embedded_pg::EmbeddedPostgres,
    http::{AppState, router},
    reconciler, workers,
};

/// The database Director runs on: the configured server, or the embedded cluster it owns.
#[derive(Debug)]
pub struct Database {
    pub url: String,
    embedded: Option<EmbeddedPostgres>,
}

impl Database {
    /// Connects to `DATABASE_URL` or starts the embedded cluster, then applies migrations.
    pub async fn open(config: &Config) -> anyhow::Result<Self> {
        let (url, embedded) = match &config.database_url {
            Some(url) => (url.clone(), None),
            None => {
                let pg = EmbeddedPostgres::start(&config.data_dir)
                    .await
                    .context("starting the embedded PostgreSQL")?;
                (pg.url().to_owned(), Some(pg))
            }
        };
        let db = Self { url, embedded };
        match platform::db::run_migrations(&db.url).await {
            Ok(applied) => {
                for version in applied {
                    tracing::info!(%version, "migration applied");
                }
                Ok(db)
            }
            Err(err) => {
                db.close().await;
                Err(err).context("applying database migrations")
            }
        }
    }

    /// A platform on this database.
    pub fn platform(&self, config: &Config) -> anyhow::Result<Platform> {
        let pool = platform::db::pool(&self.url, 16)?;
        let settings = Settings {
            sites_domain: config.edge.sites_domain.clone(),
            sites_port: config.edge.listen.port(),
            // Traefik with a certificate resolver serves the sites on its HTTPS entrypoint,
            // taken to be on the standard port.
            sites_https_port: match (
                &config.acme,
                config.edge.driver,
                &config.edge.traefik_cert_resolver,
            ) {
                (Some(acme), _, _) => Some(acme.listen.port()),
                (None, EdgeDriver::Traefik, Some(_)) => Some(443),
                _ => None,
            },
            manager_host: config.server.manager_host(),
            sites_per_user: config.sites.per_user,
            site_disk_bytes: config.sites.disk_bytes,
            dns_server: config.sites.dns_server,
            database_connections: config.sites.database_connections,
            database_size_warning_bytes: config.sites.database_size_warning_bytes,
            oidc: config.oidc.clone(),
            local_login: config.local_login,
            public_url: config.server.public_url.clone(),
            smtp: config.smtp.clone(),
            webhook_allowed_networks: config.webhook_allow.clone(),
            site_postgres: config.sites.site_postgres.clone(),
            site_mysql: config.sites.site_mysql.clone(),
            ..Settings::default()
        };
        Ok(Platform::new(pool, settings))
    }

    /// Stops the embedded cluster, if this process started one.
    pub async fn close(self) {
        if let Some(pg) = self.embedded
            && let Err(err) = pg.stop().await
        {
            tracing::error!(error = %err, "stopping the embedded PostgreSQL failed");
        }
    }
}

/// Runs the manager until SIGINT or SIGTERM.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    raise_open_files();
    let db = Database::open(&config).await?;
    let result = run(&config, &db).await;
    db.close().await;
    result
}

/// Lifts the soft limit of open descriptors to the hard one: every connection, terminal and
/// SFTP handle is a descriptor, and the usual soft limit (1024) would run out long before the
/// manager's own bounds do.
fn raise_open_files() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => tracing::debug!(open_files = ?limit.maximum, "raised the limit of open files"),
            Err(err) => tracing::warn!(error = %err, "could not raise the limit of open files"),
        }
    }
}

async fn run(config: &Config, db: &Database) -> anyhow::Result<()> {
    let platform = db.platform(config)?;
    // The embedded database is this process's alone (its data directory is locked): what an
    // earlier, killed Director left running resumes now rather than after its heartbeat.
    if db.embedded.is_some() {
        let resumed = platform.resume_orphaned_operations().await?;
        if resumed > 0 {
            tracing::info!(
                operations = resumed,
                "resuming what the previous run left unfinished"
            );
        }
    }
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("listening on {}", config.server.listen))?;
    let local = listener.local_addr()?;
    let public_url = if config.server.public_url == format!("http://{}", config.server.listen) {
        format!("http://{local}")
    } else {
        config.server.public_url.clone()
    };
    if !config.server.site_root.join("pkg").is_dir() {
        tracing::warn!(site_root = %config.server.site_root.display(), "no built client here: pages will render but not hydrate (run scripts/build)");
    }
    let ssh = bind_ssh(config).await?;
    let state = AppState {
        leptos: leptos_options(config, local),
        app: AppContext {
            platform: platform.clone(),
            secure_cookies: config.server.secure_cookies(),
            ssh: ssh.as_ref().map(|(listener, keys)| app::ssr::SshInfo {
                port: listener.local_addr().map_or(0, |a| a.port()),
                fingerprints: keys.fingerprints.clone(),
            }),
            uploads: config.sites.uploads,
        },
        trust_proxy: config.server.trust_proxy,
        api: crate::api::Limiter::new(config.server.api_rate),
        terminals: crate::terminal::Terminals::new(config.shells.terminal_grace),
        public_url: public_url.clone(),
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut background = start_background(config, &platform, ssh, &stopped)?;
    background.push(tokio::spawn(crate::api::forget_idle_tokens(
        state.api.clone(),
        stopped.clone(),
    )));

    tracing::info!(url = %public_url, "Director is listening");
    println!("Director is running at {public_url}");
    if config.edge.driver != EdgeDriver::Off {
        println!("Sites are served at {}", platform.site_address("<site>"));
    }
    if let Some(token) = platform.issue_setup_token().await? {
        // Printed, never logged: the link is a secret that makes its holder the first admin.
        println!("No admin exists yet. Create the first one at:\n  {public_url}/setup?token={token}");
    }
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving HTTP")?;
    // The edge itself keeps running: the sites stay up while the manager is down.
    let _ = stop.send(true);
    for task in background {
        let _ = task.await;
    }
    // The runtime refers to the platform that holds it: letting it go ends that cycle.
    platform.set_runtime(None);
    tracing::info!("Director stopped");
    Ok(())
}

/// The SSH server's listener and host keys, unless SSH is off.
async fn bind_ssh(config: &Config) -> anyhow::Result<Option<(tokio::net::TcpListener, shell::HostKeys)>> {
    let Some(address) = config.shells.ssh_listen else {
        return Ok(None);
    };
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("listening for SSH on {address} (turn it off with --ssh-listen off)"))?;
    let keys = shell::host_keys(&config.data_dir.join("ssh")).context("the SSH host key")?;
    Ok(Some((listener, keys)))
}

/// Starts what runs beside the manager until `stopped` turns true: the edge's supervisor (which
/// gives the platform its runtime), the reconciler, the certificate worker, the reapers, the
/// SSH server and the operation workers.
fn start_background(
    config: &Config,
    platform: &Platform,
    ssh: Option<(tokio::net::TcpListener, shell::HostKeys)>,
    stopped: &tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    tokio::spawn(purge_expired(platform.clone()));
    let mut background = Vec::new();
    if config.edge.driver != EdgeDriver::Off {
        let plan = edge_plan(config)?;
        background.push(tokio::spawn(edge::supervise(
            plan,
            platform.clone(),
            stopped.clone(),
        )));
    }
    background.push(tokio::spawn(reconciler::run(platform.clone(), stopped.clone())));
    // A few at once: an endpoint that takes its full time holds up one of them, not every
    // email and webhook behind it.
    for _ in 0..workers::DELIVERY_WORKERS {
        background.push(tokio::spawn(workers::deliver(platform.clone(), stopped.clone())));
    }
    background.push(tokio::spawn(crate::certificates::run(
        platform.clone(),
        stopped.clone(),
    )));
    background.push(tokio::spawn(reap_terminals(
        platform.clone(),
        config.shells.terminal_idle,
        stopped.clone(),
    )));
    if let Some((listener, keys)) = ssh {
        let port = listener.local_addr()?.port();
        println!(
            "SSH and SFTP: ssh -p {port} <site>@<this host> (host key {})",
            keys.fingerprints.join(", ")
        );
        let settings = shell::SshSettings {
            public_port: port,
            ..shell::SshSettings::default()
        };
        let (platform, stopped) = (platform.clone(), stopped.clone());
        background.push(tokio::spawn(async move {
            if let Err(err) = shell::serve(listener, keys, platform, settings, stopped).await {
                tracing::error!(error = %err, "the SSH server stopped");
            }
        }));
    }
    background.push(tokio::spawn(workers::measure_disks(
        platform.clone(),
        stopped.clone(),
    )));
    for _ in 0..workers::WORKERS {
        background.push(tokio::spawn(workers::work(platform.clone(), stopped.clone())));
    }
    Ok(background)
}

/// Where the edge lives and what it serves, from the configuration.
fn edge_plan(config: &Config) -> anyhow::Result<EdgePlan> {
    let traefik = (config.edge.driver == EdgeDriver::Traefik).then(|| {
        (
            config.edge.traefik_entrypoints.clone(),
            config.edge.traefik_cert_resolver.clone(),
        )
    });
    // Mounts are found by their paths as the kernel writes them: no link or `..` in them.
    std::fs::create_dir_all(&config.data_dir).context("making the data directory")?;
    let data_dir = std::fs::canonicalize(&config.data_dir)
        .with_context(|| format!("resolving the data directory {}", config.data_dir.display()))?;
    Ok(EdgePlan {
        namespace: config.edge.namespace()?,
        dir: data_dir.join("edge"),
        sites_root: data_dir.join("sites"),
        disks: data_dir.join("disks"),
        listen: traefik.is_none().then_some(config.edge.listen),
        sites_domain: config.edge.sites_domain.clone(),
        traefik,
        acme: config.acme.clone(),
        databases: platform::sites::DatabaseServers {
            dir: data_dir.join("databases"),
            memory_bytes: config.sites.database_server_memory_bytes,
        },
    })
}

/// Leptos' options, set here rather than from `LEPTOS_*` variables so the binary runs the same
/// under cargo-leptos, scripts/build or systemd.
pub fn leptos_options(config: &Config, addr: SocketAddr) -> LeptosOptions {
    LeptosOptions::builder()
        .output_name("director")
        .site_root(config.server.site_root.to_string_lossy().into_owned())
        .site_pkg_dir("pkg")
        .site_addr(addr)
        .env(leptos::config::Env::PROD)
        .build()
}

/// Removes terminal containers nobody has had a shell in for `idle`, checking every minute.
async fn reap_terminals(
    platform: Platform,
    idle: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        if let Err(err) = platform.reap_idle_terminals(idle).await {
            tracing::warn!(error = %err, "reaping idle terminals failed");
        }
    }
}

/// Every hour: forgets expired sessions, and notifications and deliveries kept long enough.
async fn purge_expired(platform: Platform) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        match platform.purge_expired_sessions().await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "expired sessions purged"),
            Err(err) => tracing::warn!(error = %err, "purging expired sessions failed"),
        }
        match platform.purge_old_notifications().await {
            Ok((0, 0)) => {}
            Ok((notifications, deliveries)) => {
                tracing::info!(
                    notifications,
                    deliveries,
                    "old notifications and deliveries purged"
                );
            }
            Err(err) => tracing::warn!(error = %err, "purging old notifications failed"),
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}

/// Sets up logging in the configured format.
pub fn init_tracing(format: crate::config::LogFormat) {
    use tracing_subscriber::{EnvFilter, fmt};
    let filter =
        EnvFilter::try_from_env("DIRECTOR_LOG").unwrap_or_else(|_| EnvFilter::new("info,tower_http=warn"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        crate::config::LogFormat::Json => builder.json().init(),
        crate::config::LogFormat::Human => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}
