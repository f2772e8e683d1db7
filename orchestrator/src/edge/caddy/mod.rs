//! The Caddy driver: Director runs Caddy as a container on the sites network and keeps its
//! configuration constant; the routes live in files.
//!
//! Why a container: dynamic sites are reached by their service names on the sites overlay
//! network, which only a container on that network can resolve and route to. Its admin API
//! listens on a Unix socket in a host directory (never on the network), so sites cannot reach it.
//!
//! Why the routes are files (O(1) per change): every change through Caddy's admin API reloads
//! the whole configuration, so its cost grows with the number of sites. Here the configuration
//! never changes; one constant set of routes looks the request's host up in a directory:
//!
//! ```text
//! routes/hosts/<host>  ->  ../entries/<host>~<generation>/      (swapped atomically by rename;
//!                                                           `*.d` is `_wildcard.d`)
//!     .site            the owning site's id (read by Director only)
//!     static           -> /srv/sites/<site>/public   (static sites: file_server root)
//!     <service>        empty file named after the service (dynamic: dial <service>:8080)
//!     body-<bytes>     the body-size tier
//!     disabled | not-served   availability markers (503 pages)
//! ```
//!
//! A change is a few file operations and a rename: nothing in Caddy reloads, and the next
//! request sees it. Safety: the host is checked against a strict pattern before it is used in
//! any path; the upstream is taken from a marker file only if it matches `[prefix_]site_NNNN`,
//! so no `Host` header can make Caddy dial anything but a site's service; the sites are mounted
//! into Caddy through a read-only **nosymfollow** mount, so a symlink in a site's files is
//! never followed (Caddy answers 404), and Caddy sanitises `..` in paths.

use std::{
    net::SocketAddr,
    os::unix::fs::{PermissionsExt as _, chown},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use bollard::models::{
    ContainerCreateBody, HostConfig, Mount, MountBindOptions, MountBindOptionsPropagationEnum,
    MountTmpfsOptions, MountType, PortBinding, RestartPolicy, RestartPolicyNameEnum,
};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::UnixStream,
    sync::Mutex,
};

mod config;
mod routes;
mod view;

pub use config::caddy_context;
use config::caddy_json;

use super::AcmeConfig;
use crate::{
    Error, Orchestrator, Result,
    error::is_not_found,
    mounts,
    names::{LABEL_NAMESPACE, LABEL_ROLE, LABEL_SPEC},
};

/// The uid Caddy runs as in its container.
const CADDY_UID: u32 = 65532;
/// Where things are inside Caddy's container.
const ROUTES_IN: &str = "/srv/edge";
const SITES_IN: &str = "/srv/sites";
/// The tmpfs of the sites view, and of its staging place (their names in the mount table).
const VIEW_TMPFS: &str = "director-edge-view";
const STAGE_TMPFS: &str = "director-edge-stage";
/// The file in the sites view that names it (not a site: sites are numbered).
const VIEW_ID: &str = ".view";
const ADMIN_SOCKET_IN: &str = "/run/caddy/admin.sock";
/// Where Director answers a host to normalise, on its `ask` socket (see `server::edge`).
const HOST_REDIRECTS: &str = "/edge/host";
/// Director's certificate `ask` socket, inside Caddy's container.
const ASK_SOCKET_IN: &str = "/run/director/ask.sock";
/// Caddy's storage inside its container (`XDG_DATA_HOME/caddy`).
const STORAGE_IN: &str = "/data/caddy";
/// The roots the CA's own HTTPS is verified with, when configured.
const CA_ROOT_IN: &str = "/etc/director/ca-root.pem";
/// The ports Caddy listens on inside its container (unprivileged: no capabilities needed).
const HTTP_IN: u16 = 8080;
const HTTPS_IN: u16 = 8443;
/// Where Caddy's on-demand TLS asks: a server of Caddy's own on its loopback, proxying to
/// Director's socket (Caddy 2.6 asks over TCP only; loopback keeps it away from the sites).
const ASK_IN: &str = "127.0.0.1:2020";

/// How Director runs Caddy.
#[derive(Debug, Clone)]
pub struct CaddyConfig {
    /// Director's edge directory: routes, Caddy's config, data and admin socket.
    pub dir: PathBuf,
    /// The directory holding every site's directory; static roots must lie under it.
    pub sites_root: PathBuf,
    /// The host address visitors reach Caddy at (published to its container); None publishes
    /// nothing — with Traefik in front, Caddy only serves static sites on the sites network.
    pub listen: Option<SocketAddr>,
    /// The sites' overlay network (namespaced), which Caddy joins.
    pub network: String,
    /// Caddy's image.
    pub image: String,
    /// HTTPS with certificates through ACME; None serves HTTP only.
    pub acme: Option<AcmeConfig>,
}

/// A running Caddy edge.
#[derive(Debug, Clone)]
pub struct Caddy {
    pub(super) orch: Orchestrator,
    pub(super) config: CaddyConfig,
    pub(super) container: String,
    writes: Arc<Mutex<()>>,
}

/// The longest a change waits for another process's hold on the routes.
const ROUTES_LOCK_WAIT: Duration = Duration::from_secs(30);

/// See [`Caddy::lock_routes`]; released when dropped (closing the file releases its `flock`),
/// the file first, so that the next writer in this process finds it free.
struct RoutesLock<'a> {
    _file: std::fs::File,
    _process: tokio::sync::MutexGuard<'a, ()>,
}

impl CaddyConfig {
    fn routes(&self) -> PathBuf {
        self.dir.join("routes")
    }
    fn hosts(&self) -> PathBuf {
        self.routes().join("hosts")
    }
    fn entries(&self) -> PathBuf {
        self.routes().join("entries")
    }
    /// Where links and entries are made before they are renamed into place: nothing in it is
    /// ever routed, and whatever a crash leaves in it is removed by [`Caddy::repair`].
    fn temporaries(&self) -> PathBuf {
        self.routes().join("tmp")
    }
    /// `sites/<id>/<host>`: which hosts each site has, so that a change reads only its own.
    fn index(&self) -> PathBuf {
        self.routes().join("sites")
    }
    /// What Caddy's container sees at `/srv/sites`: a tmpfs holding one read-only,
    /// nosymfollow bind of each static site's directory (see [`Caddy::show`]).
    fn sites_view(&self) -> PathBuf {
        self.dir.join("sites")
    }
    /// Where a site's bind into the view is made read-only and nosymfollow before it is moved
    /// in: a private mount, since a mount moves only out of one.
    fn stage(&self) -> PathBuf {
        self.dir.join("stage")
    }
    fn admin_dir(&self) -> PathBuf {
        self.dir.join("admin")
    }
    fn admin_socket(&self) -> PathBuf {
        self.admin_dir().join("admin.sock")
    }
    fn config_dir(&self) -> PathBuf {
        self.dir.join("config")
    }
    pub(super) fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }
    fn ask_dir(&self) -> PathBuf {
        self.dir.join("ask")
    }
    /// See [`Caddy::ask_socket`].
    fn ask_socket(&self) -> PathBuf {
        self.ask_dir().join("ask.sock")
    }
    /// Where Caddy keeps the certificates this CA issued, one directory per host.
    pub(super) fn certificates_dir(&self, acme: &AcmeConfig) -> PathBuf {
        self.data_dir().join("caddy/certificates").join(acme.issuer_key())
    }
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}

impl Caddy {
    /// Sets up the edge directory and the nosymfollow view of the sites, writes the constant
    /// configuration, and makes sure Caddy's container runs it (creating, replacing or starting
    /// it as needed); returns once Caddy's admin API answers.
    pub async fn start(orch: &Orchestrator, config: CaddyConfig) -> Result<Self> {
        for dir in [
            config.hosts(),
            config.entries(),
            config.index(),
            config.temporaries(),
            config.sites_view(),
            config.admin_dir(),
            config.config_dir(),
            config.data_dir(),
            config.ask_dir(),
        ] {
            std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        }
        for dir in [config.admin_dir(), config.data_dir()] {
            chown(&dir, Some(CADDY_UID), Some(CADDY_UID))
                .map_err(io(format!("handing {} to Caddy", dir.display())))?;
        }
        for dir in [
            config.dir.clone(),
            config.routes(),
            config.hosts(),
            config.entries(),
            config.config_dir(),
            config.ask_dir(),
        ] {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
                .map_err(io("opening the edge directory"))?;
        }
        std::fs::create_dir_all(&config.sites_root).map_err(io("creating the sites root"))?;
        // The view starts empty and shows each static site's directory once it is put; shared,
        // so that what is mounted in it later appears in Caddy's container too.
        mounts::ensure_tmpfs(&config.sites_view(), VIEW_TMPFS, "0755", "--make-shared").await?;
        // Each view mounted gets a name of its own (see `view_id`).
        let id = config.sites_view().join(VIEW_ID);
        if !id.exists() {
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos();
            std::fs::write(&id, format!("{}-{stamp}", std::process::id()))
                .map_err(io("naming the sites view"))?;
        }
        mounts::ensure_tmpfs(&config.stage(), STAGE_TMPFS, "0700", "--make-private").await?;
        let ca_root = config.config_dir().join("ca-root.pem");
        match config.acme.as_ref().and_then(|acme| acme.ca_root.as_ref()) {
            Some(source) => {
                std::fs::copy(source, &ca_root)
                    .map_err(io(format!("copying the CA roots {}", source.display())))?;
            }
            None => match std::fs::remove_file(&ca_root) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io("removing old CA roots")(e));
                }
                _ => {}
            },
        }
        let json = serde_json::to_vec_pretty(&caddy_json(config.acme.as_ref()))
            .expect("the configuration serialises");
        let file = config.config_dir().join("caddy.json");
        if std::fs::read(&file).ok().as_deref() != Some(&json[..]) {
            std::fs::write(&file, &json).map_err(io("writing Caddy's configuration"))?;
        }
        let caddy = Self {
            orch: orch.clone(),
            container: orch.namespace().network("director_edge"),
            config,
            writes: Arc::default(),
        };
        caddy.ensure_container().await?;
        Ok(caddy)
    }

    /// Makes sure Caddy's container runs the current spec and answers; called at start and by
    /// the supervisor whenever [`Caddy::health`] fails.
    pub async fn ensure_container(&self) -> Result<()> {
        let body = self.container_spec();
        let want = body.labels.as_ref().and_then(|l| l.get(LABEL_SPEC)).cloned();
        let docker = &self.orch.docker;
        match docker.inspect_container(&self.container, None).await {
            Ok(current) => {
                let have = current
                    .config
                    .and_then(|c| c.labels)
                    .and_then(|l| l.get(LABEL_SPEC).cloned());
                if have != want {
                    tracing::info!(container = %self.container, "edge spec changed; replacing Caddy");
                    self.orch.remove_container(&self.container).await?;
                    self.create_container(body).await?;
                } else if !current.state.and_then(|s| s.running).unwrap_or(false) {
                    tracing::warn!(container = %self.container, "Caddy was not running; starting it");
                    docker.start_container(&self.container, None).await?;
                }
            }
            Err(e) if is_not_found(&e) => self.create_container(body).await?,
            Err(e) => return Err(e.into()),
        }
        for _ in 0..100 {
            if self.health().await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.health().await
    }

    pub(super) async fn create_container(&self, body: ContainerCreateBody) -> Result<()> {
        let docker = &self.orch.docker;
        self.orch.image_present(&self.config.image).await?;
        // A socket left by a previous Caddy would make the new one fail to listen.
        let _ = std::fs::remove_file(self.config.admin_socket());
        let options = bollard::query_parameters::CreateContainerOptions {
            name: Some(self.container.clone()),
            ..Default::default()
        };
        docker.create_container(Some(options), body).await?;
        docker.start_container(&self.container, None).await?;
        tracing::info!(container = %self.container, listen = ?self.config.listen, "Caddy started");
        Ok(())
    }

    /// The name the sites view was given when it was mounted (device numbers and mount ids
    /// come back after a reboot; this does not).
    pub(super) fn view_id(&self) -> String {
        std::fs::read_to_string(self.config.sites_view().join(VIEW_ID)).unwrap_or_default()
    }

    pub(super) fn container_spec(&self) -> ContainerCreateBody {
        let bind = |source: PathBuf, target: &str, read_only: bool| Mount {
            source: Some(source.to_string_lossy().into_owned()),
            target: Some(target.to_owned()),
            typ: Some(MountType::BIND),
            read_only: Some(read_only),
            ..Default::default()
        };
        // Each site's bind in the view keeps the flags it was made with (read-only,
        // nosymfollow), and the sites put after Caddy started reach it as they are mounted.
        let view = Mount {
            bind_options: Some(MountBindOptions {
                propagation: Some(MountBindOptionsPropagationEnum::RSLAVE),
                ..Default::default()
            }),
            ..bind(self.config.sites_view(), SITES_IN, false)
        };
        let port = format!("{HTTP_IN}/tcp");
        let tls_port = format!("{HTTPS_IN}/tcp");
        let published = |inside: &str, outside: SocketAddr| {
            (
                inside.to_owned(),
                Some(vec![PortBinding {
                    host_ip: Some(outside.ip().to_string()),
                    host_port: Some(outside.port().to_string()),
                }]),
            )
        };
        let mut port_bindings = std::collections::HashMap::new();
        if let Some(listen) = self.config.listen {
            port_bindings.extend([published(&port, listen)]);
            if let Some(acme) = &self.config.acme {
                port_bindings.extend([published(&tls_port, acme.listen)]);
            }
        }
        let host = HostConfig {
            mounts: Some(vec![
                bind(self.config.routes(), ROUTES_IN, true),
                view,
                bind(self.config.config_dir(), "/etc/director", true),
                bind(self.config.admin_dir(), "/run/caddy", false),
                bind(self.config.data_dir(), "/data", false),
                bind(self.config.ask_dir(), "/run/director", false),
                Mount {
                    target: Some("/tmp".to_owned()),
                    typ: Some(MountType::TMPFS),
                    tmpfs_options: Some(MountTmpfsOptions {
                        size_bytes: Some(64 << 20),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ]),
            port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
            network_mode: Some(self.config.network.clone()),
            readonly_rootfs: Some(true),
            cap_drop: Some(vec!["ALL".to_owned()]),
            security_opt: Some(vec!["no-new-privileges".to_owned()]),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            init: Some(true),
            ..Default::default()
        };
        let mut labels: std::collections::HashMap<String, String> = [
            (
                LABEL_NAMESPACE.to_owned(),
                self.orch.namespace().label().to_owned(),
            ),
            (LABEL_ROLE.to_owned(), "edge".to_owned()),
        ]
        .into();
        let mut body = ContainerCreateBody {
            image: Some(self.config.image.clone()),
            cmd: Some(vec![
                "run".to_owned(),
                "--config".to_owned(),
                "/etc/director/caddy.json".to_owned(),
            ]),
            user: Some(format!("{CADDY_UID}:{CADDY_UID}")),
            env: Some(vec![
                "HOME=/data".to_owned(),
                "XDG_DATA_HOME=/data".to_owned(),
                "XDG_CONFIG_HOME=/data/config".to_owned(),
                // Caddy reads its configuration once, at start: a container whose configuration
                // changed (ACME settings, a new Director) must be replaced, so its digest is part
                // of the spec.
                format!(
                    "DIRECTOR_CONFIG={}",
                    crate::spec::digest(&caddy_json(self.config.acme.as_ref()))
                ),
                // The view's own mount: a container made before it (started by the engine at
                // boot, or left by a start that failed midway) sees the directory beneath it,
                // so a view mounted anew makes the container anew.
                format!("DIRECTOR_VIEW={}", self.view_id()),
            ]),
            exposed_ports: Some(vec![port, tls_port]),
            host_config: Some(host),
            ..Default::default()
        };
        labels.insert(LABEL_SPEC.to_owned(), crate::spec::digest(&body));
        body.labels = Some(labels);
        body
    }

    /// Whether Caddy's admin API answers.
    pub async fn health(&self) -> Result<()> {
        match admin_get(&self.config.admin_socket(), "/config/admin").await {
            Ok(200) => Ok(()),
            Ok(status) => Err(Error::EdgeAdmin(format!("answered {status}"))),
            Err(e) => Err(Error::EdgeAdmin(format!("does not answer: {e}"))),
        }
    }

    /// The container Caddy runs in.
    pub fn container(&self) -> &str {
        &self.container
    }

    /// How Caddy gets certificates, if it serves HTTPS.
    pub fn acme(&self) -> Option<&AcmeConfig> {
        self.config.acme.as_ref()
    }

    /// The Unix socket Caddy's on-demand TLS asks through (`GET /edge/ask?domain=<host>`): the
    /// manager listens on it, answering 200 only for hosts it serves.
    pub fn ask_socket(&self) -> PathBuf {
        self.config.ask_socket()
    }

    /// Stops and removes Caddy's container and the sites view (tests and uninstalls).
    pub async fn shutdown(&self) -> Result<()> {
        self.orch.remove_container(&self.container).await?;
        mounts::detach(&self.config.sites_view()).await?;
        mounts::detach(&self.config.stage()).await
    }
}

/// GETs `path` from Caddy's admin API on its Unix socket; returns the status.
async fn admin_get(socket: &Path, path: &str) -> std::io::Result<u16> {
    let mut stream = tokio::time::timeout(Duration::from_secs(2), UnixStream::connect(socket)).await??;
    // Caddy accepts only an empty Host on its Unix-socket admin listener (its DNS-rebinding guard).
    let request = format!("GET {path} HTTP/1.1\r\nHost: \r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut head = vec![0; 64];
    let n = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut head)).await??;
    let line = String::from_utf8_lossy(&head[..n]);
    line.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {line:?}")))
}
