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
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    os::unix::fs::{PermissionsExt as _, chown, symlink},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use bollard::models::{
    ContainerCreateBody, HostConfig, Mount, MountBindOptions, MountBindOptionsPropagationEnum,
    MountTmpfsOptions, MountType, PortBinding, RestartPolicy, RestartPolicyNameEnum,
};
use serde_json::json;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::UnixStream,
    sync::Mutex,
};

use super::{
    AcmeConfig, Availability, BODY_LIMIT_TIERS, SITE_PORT, SiteRoutes, Target, body_limit_tier, pages,
    validate_host,
};
use crate::{
    Error, Orchestrator, Result, SiteId,
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

    async fn create_container(&self, body: ContainerCreateBody) -> Result<()> {
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
    fn view_id(&self) -> String {
        std::fs::read_to_string(self.config.sites_view().join(VIEW_ID)).unwrap_or_default()
    }

    fn container_spec(&self) -> ContainerCreateBody {
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

    /// Puts a site's routes: its hosts now lead to `routes.target`; hosts it had before and
    /// no longer lists stop leading anywhere. A host another site owns is refused. The work is
    /// proportional to the site's own hosts, whatever the number of sites.
    pub async fn put(&self, routes: &SiteRoutes) -> Result<()> {
        let hosts = routes
            .hosts
            .iter()
            .map(|h| validate_host(h, true).map(|host| route_name(&host)))
            .collect::<Result<Vec<_>>>()?;
        let static_root = match &routes.target {
            Target::Static { public_dir } => Some(self.static_root(public_dir)?),
            Target::Service => None,
        };
        if let Some(root) = &static_root
            && let Some(std::path::Component::Normal(directory)) = root
                .strip_prefix(SITES_IN)
                .ok()
                .and_then(|r| r.components().next())
        {
            self.show(&directory.to_string_lossy()).await?;
        }
        let _lock = self.lock_routes().await?;
        for host in &hosts {
            if let Some(owner) = self.owner(host)?
                && owner != routes.site
            {
                return Err(Error::invalid(
                    "host",
                    format!("{} belongs to another site", host_of(host)),
                ));
            }
        }
        let index = self.config.index().join(routes.site.0.to_string());
        std::fs::create_dir_all(&index).map_err(io("writing a site's route index"))?;
        // Each step leaves something invisible or repairable, wherever a crash stops it: the
        // entry is made whole aside and renamed in (unrouted until linked); the index lists
        // the host before its link exists (an index line without a link is dropped by
        // `repair`, while a link without its line could never be removed); the link is
        // swapped atomically; the replaced entry goes last (an unlinked one is dropped too).
        for host in &hosts {
            let entry = self.write_entry(host, routes, static_root.as_deref())?;
            let link = self.config.hosts().join(host);
            let previous = std::fs::read_link(&link).ok();
            std::fs::write(index.join(host), b"").map_err(io("writing a site's route index"))?;
            self.swap_symlink(&link, &Path::new("../entries").join(&entry))?;
            if let Some(previous) = previous {
                self.remove_entry(&previous)?;
            }
        }
        for old in self.site_hosts(routes.site)? {
            if !hosts.contains(&old) {
                self.remove_host(routes.site, &old)?;
            }
        }
        tracing::debug!(site = %routes.site, hosts = ?hosts, "routes put");
        Ok(())
    }

    /// The site the edge routes `host` for, if any.
    pub async fn owner_of(&self, host: &str) -> Result<Option<SiteId>> {
        let host = validate_host(host, true)?;
        self.owner(&route_name(&host))
    }

    /// Takes `host` away from `site`, if the edge still routes it for that site: its link,
    /// entry and index line go; the site's other hosts stay as they are.
    pub async fn release(&self, site: SiteId, host: &str) -> Result<()> {
        let host = route_name(&validate_host(host, true)?);
        let _lock = self.lock_routes().await?;
        if self.owner(&host)? == Some(site) {
            self.remove_host(site, &host)?;
        }
        Ok(())
    }

    /// Removes every route of a site.
    pub async fn remove(&self, site: SiteId) -> Result<()> {
        let _lock = self.lock_routes().await?;
        for host in self.site_hosts(site)? {
            self.remove_host(site, &host)?;
        }
        match std::fs::remove_dir(self.config.index().join(site.0.to_string())) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("removing a site's route index")(e)),
            _ => Ok(()),
        }
    }

    /// Every site's routes, as put.
    pub async fn list(&self) -> Result<Vec<SiteRoutes>> {
        let mut sites: BTreeMap<SiteId, SiteRoutes> = BTreeMap::new();
        for (host, site) in self.all_hosts()? {
            let entry = self.config.hosts().join(&host);
            let mut target = Target::Service;
            let mut body_limit = BODY_LIMIT_TIERS[0];
            let mut availability = Availability::Served;
            // A host removed since the listing is simply gone: the listing never fails for it.
            let items = match std::fs::read_dir(&entry) {
                Ok(items) => items,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io("reading a route")(e)),
            };
            for item in items {
                let item = item.map_err(io("reading a route"))?;
                let name = item.file_name().to_string_lossy().into_owned();
                if name == "static" {
                    let inside = match std::fs::read_link(item.path()) {
                        Ok(inside) => inside,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(io("reading a static root")(e)),
                    };
                    let relative = inside.strip_prefix(SITES_IN).unwrap_or(&inside).to_owned();
                    target = Target::Static {
                        public_dir: self.config.sites_root.join(relative),
                    };
                } else if let Some(bytes) = name.strip_prefix("body-") {
                    body_limit = bytes.parse().unwrap_or(body_limit);
                } else if name == "disabled" {
                    availability = Availability::Disabled;
                } else if name == "not-served" {
                    availability = Availability::NotServed;
                }
            }
            let routes = sites.entry(site).or_insert_with(|| SiteRoutes {
                site,
                hosts: Vec::new(),
                target: target.clone(),
                body_limit,
                availability,
            });
            routes.hosts.push(host_of(&host));
        }
        Ok(sites.into_values().collect())
    }

    /// Makes the site directory `directory` (under the sites root) visible to Caddy, read-only
    /// and with `nosymfollow` (no link a tenant makes is followed, to another site or to Caddy's
    /// own files), unless it already is. A bind left from before the directory's disk was
    /// mounted again (it shows another file system) is replaced.
    ///
    /// The bind is made in a private staging mount, its flags set there, and then moved into
    /// the shared view: a mount propagates with the flags it has when it arrives, and a
    /// remount's flags never propagate.
    pub async fn show(&self, directory: &str) -> Result<()> {
        check_directory(directory)?;
        let source = self.config.sites_root.join(directory);
        let shown = self.config.sites_view().join(directory);
        let device = |path: PathBuf| async move {
            tokio::fs::symlink_metadata(path)
                .await
                .map(|m| std::os::unix::fs::MetadataExt::dev(&m))
        };
        let want = device(source.clone())
            .await
            .map_err(io(format!("finding site directory {directory}")))?;
        if let Some(mounted) = mounts::at(&shown).await? {
            if guarded(&mounted) && device(shown.clone()).await.ok() == Some(want) {
                return Ok(());
            }
            mounts::detach(&shown).await?;
        }
        // A staging place of this call's own: another call's bind is never the one moved.
        let staged = self.config.stage().join(format!(
            "{directory}.{}",
            STAGINGS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        tokio::fs::create_dir_all(&staged)
            .await
            .map_err(io("making a staging mount point"))?;
        tokio::fs::create_dir_all(&shown)
            .await
            .map_err(io("making a mount point in the sites view"))?;
        let moved = async {
            mounts::run(
                "mount",
                &["--bind".as_ref(), source.as_os_str(), staged.as_os_str()],
                "binding a site's directory for Caddy",
            )
            .await?;
            mounts::run(
                "mount",
                &[
                    "-o".as_ref(),
                    "remount,bind,ro,nosymfollow,nosuid,nodev,noexec".as_ref(),
                    staged.as_os_str(),
                ],
                "making a site's directory read-only for Caddy (needs Linux 5.10+)",
            )
            .await?;
            // An option the tools did not know would have been dropped without a word:
            // nothing is shown to Caddy without both.
            if !mounts::at(&staged).await?.is_some_and(|m| guarded(&m)) {
                return Err(Error::Disk(
                    "the site's directory could not be made read-only and nosymfollow for Caddy".to_owned(),
                ));
            }
            mounts::run(
                "mount",
                &["--move".as_ref(), staged.as_os_str(), shown.as_os_str()],
                "showing a site's directory to Caddy",
            )
            .await
        }
        .await;
        if moved.is_err() {
            mounts::detach(&staged).await?;
        }
        let _ = tokio::fs::remove_dir(&staged).await;
        moved
    }

    /// Takes the site directory `directory` out of Caddy's view (when the site goes).
    pub async fn hide(&self, directory: &str) -> Result<()> {
        check_directory(directory)?;
        let shown = self.config.sites_view().join(directory);
        mounts::detach(&shown).await?;
        match tokio::fs::remove_dir(&shown).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io("removing a site from the sites view")(e))
            }
            _ => Ok(()),
        }
    }

    /// Stops and removes Caddy's container and the sites view (tests and uninstalls).
    pub async fn shutdown(&self) -> Result<()> {
        self.orch.remove_container(&self.container).await?;
        mounts::detach(&self.config.sites_view()).await?;
        mounts::detach(&self.config.stage()).await
    }

    fn static_root(&self, public_dir: &Path) -> Result<PathBuf> {
        let relative = public_dir.strip_prefix(&self.config.sites_root).map_err(|_| {
            Error::invalid(
                "static root",
                format!("{} is not under the sites root", public_dir.display()),
            )
        })?;
        if relative
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(Error::invalid(
                "static root",
                format!("{} is not a plain path", public_dir.display()),
            ));
        }
        Ok(Path::new(SITES_IN).join(relative))
    }

    fn write_entry(&self, host: &str, routes: &SiteRoutes, static_root: Option<&Path>) -> Result<String> {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let name = format!("{host}~{stamp}");
        let dir = self.config.temporaries().join(&name);
        let fail = io(format!("writing the route of {host}"));
        let result = (|| {
            std::fs::create_dir(&dir)?;
            std::fs::write(dir.join(".site"), routes.site.0.to_string())?;
            match static_root {
                Some(root) => symlink(root, dir.join("static"))?,
                None => std::fs::write(dir.join(self.orch.namespace().service(routes.site)), b"")?,
            }
            std::fs::write(
                dir.join(format!("body-{}", body_limit_tier(routes.body_limit))),
                b"",
            )?;
            match routes.availability {
                Availability::Served => {}
                Availability::NotServed => std::fs::write(dir.join("not-served"), b"")?,
                Availability::Disabled => std::fs::write(dir.join("disabled"), b"")?,
            }
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
            std::fs::rename(&dir, self.config.entries().join(&name))
        })();
        if let Err(err) = result {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(fail(err));
        }
        Ok(name)
    }

    fn owner(&self, host: &str) -> Result<Option<SiteId>> {
        match std::fs::read_to_string(self.config.hosts().join(host).join(".site")) {
            Ok(id) => Ok(id.trim().parse().ok().map(SiteId)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("reading a route's owner")(e)),
        }
    }

    /// Every host with a route, and its owner (for listing; changes never scan them all).
    fn all_hosts(&self) -> Result<Vec<(String, SiteId)>> {
        let mut hosts = Vec::new();
        for item in std::fs::read_dir(self.config.hosts()).map_err(io("listing routes"))? {
            let host = item
                .map_err(io("listing routes"))?
                .file_name()
                .to_string_lossy()
                .into_owned();
            if let Some(site) = self.owner(&host)? {
                hosts.push((host, site));
            }
        }
        hosts.sort();
        Ok(hosts)
    }

    /// The hosts a site has, from its index.
    fn site_hosts(&self, site: SiteId) -> Result<Vec<String>> {
        match std::fs::read_dir(self.config.index().join(site.0.to_string())) {
            Ok(items) => items
                .map(|item| {
                    Ok(item
                        .map_err(io("reading a site's route index"))?
                        .file_name()
                        .to_string_lossy()
                        .into_owned())
                })
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io("reading a site's route index")(e)),
        }
    }

    /// Removes one host of `site`: its link (only if the site still owns it), its entry, and
    /// its line in the index.
    fn remove_host(&self, site: SiteId, host: &str) -> Result<()> {
        let link = self.config.hosts().join(host);
        if self.owner(host)? == Some(site) {
            let entry = std::fs::read_link(&link).ok();
            std::fs::remove_file(&link).map_err(io(format!("removing the route of {host}")))?;
            if let Some(entry) = entry {
                self.remove_entry(&entry)?;
            }
        }
        match std::fs::remove_file(self.config.index().join(site.0.to_string()).join(host)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("updating a site's route index")(e)),
            _ => Ok(()),
        }
    }

    /// Points `link` at `target` atomically: a new symlink, made among the temporaries (never
    /// routable, whatever its name), renamed over the old one.
    fn swap_symlink(&self, link: &Path, target: &Path) -> Result<()> {
        let name = link.file_name().unwrap_or_default().to_string_lossy();
        let tmp = self
            .config
            .temporaries()
            .join(format!("{name}~{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        symlink(target, &tmp).map_err(io("writing a route link"))?;
        std::fs::rename(&tmp, link).map_err(io("swapping a route link"))
    }

    /// Brings the route directories back to a state every write leaves when it is not
    /// interrupted: removes what interrupted writes left (temporaries, entries no link leads
    /// to, links to nothing), lists in its site's index every host a site's link routes (so
    /// that removing the site takes it away), and drops index lines whose host is not the
    /// site's. Returns what it repaired, in words. Each item is repaired on its own: one that
    /// cannot be is logged and left for the next pass, never stopping the others. The
    /// reconciler runs it on every pass.
    pub async fn repair(&self) -> Result<Vec<String>> {
        let _lock = self.lock_routes().await?;
        let mut repaired = Vec::new();
        let mut tried = |what: String, done: std::io::Result<()>| match done {
            Ok(()) => repaired.push(what),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(what, error = %e, "a route could not be repaired; next pass"),
        };
        let list = |dir: PathBuf| -> Result<Vec<std::fs::DirEntry>> {
            std::fs::read_dir(dir)
                .and_then(Iterator::collect)
                .map_err(io("repairing the routes"))
        };
        for item in list(self.config.temporaries())? {
            let path = item.path();
            let removed = match std::fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&path),
                Ok(_) => std::fs::remove_file(&path),
                Err(e) => Err(e),
            };
            let what = format!("removed {}, left by an interrupted route write", path.display());
            tried(what, removed);
        }
        let mut linked = BTreeSet::new();
        for item in list(self.config.hosts())? {
            let host = item.file_name().to_string_lossy().into_owned();
            let link = item.path();
            let Ok(target) = std::fs::read_link(&link) else {
                continue;
            };
            // Its entry is in use unless the link goes below.
            let entry = target.file_name().map(ToOwned::to_owned);
            linked.extend(entry.clone());
            // A route whose owner cannot be read now (out of descriptors, a disk error) is
            // left as it is: only one known to lead nowhere is removed.
            let owner = match self.owner(&host) {
                Ok(owner) => owner,
                Err(err) => {
                    tracing::warn!(host, error = %err, "a route's owner could not be read; next pass");
                    continue;
                }
            };
            let listed = |site: SiteId| self.config.index().join(site.0.to_string()).join(&host);
            // Its entry is named after the host it was written for: a legacy temporary's is
            // its real host's, a real host's (even one ending in `.tmp1`) its own.
            let legacy_temporary = host
                .rsplit_once(".tmp")
                .is_some_and(|(_, pid)| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
                && !target
                    .file_name()
                    .is_some_and(|entry| entry.to_string_lossy().starts_with(&format!("{host}~")));
            match owner {
                // Before temporaries had a folder of their own, a crash could leave
                // `<host>.tmp<pid>` among the routes; no site lists such a name.
                // (Its entry is the real host's: it stays.)
                Some(site) if legacy_temporary && !listed(site).exists() => tried(
                    format!("removed the stale temporary route {host}"),
                    std::fs::remove_file(&link),
                ),
                Some(site) => {
                    if !listed(site).exists() {
                        let index = self.config.index().join(site.0.to_string());
                        tried(
                            format!("{host} was routed for site {site} without its index; listed it"),
                            std::fs::create_dir_all(index).and_then(|()| std::fs::write(listed(site), b"")),
                        );
                    }
                }
                None => {
                    if let Some(entry) = &entry {
                        linked.remove(entry);
                    }
                    tried(
                        format!("removed the route of {host}, which led to nothing"),
                        std::fs::remove_file(&link),
                    );
                }
            }
        }
        for item in list(self.config.index())? {
            let Some(site) = item.file_name().to_str().and_then(|s| s.parse().ok()).map(SiteId) else {
                continue;
            };
            for host in self.site_hosts(site).unwrap_or_default() {
                if self.owner(&host).is_ok_and(|owner| owner != Some(site)) {
                    tried(
                        format!(
                            "site {site}'s index listed {host}, which is not routed for it; dropped the line"
                        ),
                        std::fs::remove_file(item.path().join(&host)),
                    );
                }
            }
        }
        for item in list(self.config.entries())? {
            if !linked.contains(&item.file_name()) {
                tried(
                    format!(
                        "removed the route entry {}, which no host led to",
                        item.file_name().to_string_lossy()
                    ),
                    std::fs::remove_dir_all(item.path()),
                );
            }
        }
        for what in &repaired {
            tracing::info!(repaired = %what, "edge routes repaired");
        }
        Ok(repaired)
    }

    /// Held while the route directories change: one writer at a time in this process, and in
    /// every Director process sharing the directory (an `flock` on `routes/.lock`, a file of
    /// Director's own), so that a repair never sees another's write half made.
    async fn lock_routes(&self) -> Result<RoutesLock<'_>> {
        let process = self.writes.lock().await;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.config.routes().join(".lock"))
            .map_err(io("locking the routes"))?;
        // Tried without blocking (a blocked thread would hold the async runtime), and again a
        // moment later: another process holds it for a few file operations at most; one that
        // holds it far longer is stuck, and its holder's changes wait no longer than this.
        let started = std::time::Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => {
                    return Ok(RoutesLock {
                        _process: process,
                        _file: file,
                    });
                }
                Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < ROUTES_LOCK_WAIT => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(Error::Transient(
                        "another Director process holds the edge's routes".to_owned(),
                    ));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(io("locking the routes")(e)),
            }
        }
    }

    /// Removes an entry a link pointed at (`../entries/<name>`).
    fn remove_entry(&self, link_target: &Path) -> Result<()> {
        let Some(name) = link_target.file_name() else {
            return Ok(());
        };
        match std::fs::remove_dir_all(self.config.entries().join(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("removing an old route entry")(e)),
            _ => Ok(()),
        }
    }
}

/// What a wildcard's route is called in the route directories: `*.example.org` is
/// `_wildcard.example.org` (a `*` would be a glob to Caddy's file matcher; `_` is never in a
/// host). Other hosts are their own names.
const WILDCARD_ROUTE: &str = "_wildcard.";

fn route_name(host: &str) -> String {
    host.strip_prefix("*.")
        .map_or_else(|| host.to_owned(), |domain| format!("{WILDCARD_ROUTE}{domain}"))
}

fn host_of(route: &str) -> String {
    route
        .strip_prefix(WILDCARD_ROUTE)
        .map_or_else(|| route.to_owned(), |domain| format!("*.{domain}"))
}

/// Makes staging places unique within the process.
static STAGINGS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Whether a bind in the sites view has what keeps Caddy to the site's files as they are.
fn guarded(mounted: &mounts::Mounted) -> bool {
    let options: Vec<&str> = mounted.options.split(',').collect();
    options.contains(&"ro") && options.contains(&"nosymfollow")
}

/// A site's directory is one plain name under the sites root.
fn check_directory(directory: &str) -> Result<()> {
    if directory.is_empty()
        || !directory
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(Error::invalid(
            "site directory",
            format!("{directory:?} is not a site's directory"),
        ));
    }
    Ok(())
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

/// A host as Caddy must see it before using it in a path: DNS labels, lower case, no `..`.
const HOST_PATTERN: &str = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$";
/// A host as routed once lowercased and without its trailing dot.
fn normalisable_host() -> String {
    // Letters spelled out: `(?i)` would match Unicode's long s and Kelvin sign too.
    HOST_PATTERN
        .replace("a-z0-9", "A-Za-z0-9")
        .replace("+$", "+\\.?$")
}
/// What a dynamic route's marker file must be called to be dialled.
const UPSTREAM_PATTERN: &str = r"^/[^/]+/((?:[a-z0-9]+_)?site_[0-9]+)$";

/// Caddy's whole configuration: constant, whatever the sites (it changes only with the ACME
/// settings).
fn caddy_json(acme: Option<&AcmeConfig>) -> serde_json::Value {
    let html = |status: u16, body: String| {
        json!({
            "handler": "static_response",
            "status_code": status,
            "headers": {"Content-Type": ["text/html; charset=utf-8"], "Cache-Control": ["no-store"]},
            "body": body,
        })
    };
    let hosts = format!("{ROUTES_IN}/hosts");
    // The route a request takes: its host's own, or else the wildcard over its parent domain
    // (`a.example.org` → `_wildcard.example.org`; one label deep, as in certificates).
    let has =
        |file: &str| json!({"file": {"root": hosts, "try_files": [format!("/{{http.vars.route}}/{file}")]}});
    let exact = json!({"file": {"root": hosts, "try_files": ["/{http.request.host}/.site"]}});
    let mut routes = vec![
        // A path no file can have (a NUL, a part past the kernel's 255 bytes) is the visitor's
        // mistake, answered as such before any site's files are looked at.
        json!({
            "match": [{"path_regexp": {"pattern": r"\x00|[^/]{256,}"}}],
            "handle": [html(400, pages::bad_path())],
            "terminal": true,
        }),
        // A host in capitals or with a trailing dot is the same host as routed: Director
        // redirects it there (Caddy cannot lowercase). Only what would then be a host at all.
        json!({
            "match": [{
                "vars_regexp": {"{http.request.host}": {"pattern": normalisable_host()}},
                "not": [{"vars_regexp": {"{http.request.host}": {"pattern": HOST_PATTERN}}}],
            }],
            // To one fixed path (a rewrite would decode the visitor's path), with the request's
            // own URI, undecoded, in a header.
            "handle": [
                {"handler": "rewrite", "uri": HOST_REDIRECTS},
                {
                    "handler": "reverse_proxy",
                    "upstreams": [{"dial": format!("unix/{ASK_SOCKET_IN}")}],
                    "headers": {"request": {"set": {"X-Director-Uri": ["{http.request.orig_uri}"]}}},
                },
            ],
            "terminal": true,
        }),
        json!({
            "match": [{"not": [{"vars_regexp": {"{http.request.host}": {"pattern": HOST_PATTERN}}}]}],
            "handle": [html(404, pages::no_such_site())],
            "terminal": true,
        }),
        json!({"match": [exact], "handle": [{"handler": "vars", "route": "{http.request.host}"}]}),
        json!({
            "match": [{
                "not": [exact],
                "vars_regexp": {"{http.request.host}": {"name": "parent", "pattern": r"^[^.]+\.(.+)$"}},
            }],
            "handle": [{"handler": "vars", "route": format!("{WILDCARD_ROUTE}{{http.regexp.parent.1}}")}],
        }),
        json!({"match": [has("disabled")], "handle": [html(503, pages::disabled())], "terminal": true}),
        json!({"match": [has("not-served")], "handle": [html(503, pages::not_served())], "terminal": true}),
    ];
    for tier in BODY_LIMIT_TIERS {
        let marker = format!("body-{tier}");
        // One matcher set (an object) ANDs its matchers; several sets in the list would OR them.
        let mut too_large = has(&marker);
        too_large["expression"] = json!(format!(
            "{{http.request.header.Content-Length}} != \"\" && int({{http.request.header.Content-Length}}) > {tier}"
        ));
        routes
            .push(json!({"match": [too_large], "handle": [html(413, pages::too_large())], "terminal": true}));
        routes.push(
            json!({"match": [has(&marker)], "handle": [{"handler": "request_body", "max_size": tier}]}),
        );
    }
    routes.push(json!({
        "match": [has("static/")],
        "handle": [{"handler": "file_server", "root": format!("{ROUTES_IN}/hosts/{{http.vars.route}}/static")}],
        "terminal": true,
    }));
    routes.push(json!({
        "match": [has("*site_*")],
        "handle": [{"handler": "subroute", "routes": [{
            "match": [{"vars_regexp": {"{http.matchers.file.relative}": {"name": "up", "pattern": UPSTREAM_PATTERN}}}],
            "handle": [{
                "handler": "reverse_proxy",
                "upstreams": [{"dial": format!("{{http.regexp.up.1}}:{SITE_PORT}")}],
                // A task that is restarting or being replaced refuses connections for a moment:
                // retry for a while rather than fail the visitor's request.
                "load_balancing": {"try_duration": "5s", "try_interval": "250ms"},
            }],
        }]}],
        "terminal": true,
    }));
    routes.push(json!({"handle": [html(404, pages::no_such_site())]}));

    let error = |pattern: &str, status: u16, body: String| json!({"match": [{"vars_regexp": {"{http.error.message}": {"pattern": pattern}}}], "handle": [html(status, body)], "terminal": true});
    let errors = vec![
        error("(?i)request body too large", 413, pages::too_large()),
        error("(?i)too many levels of symbolic links", 404, pages::not_found()),
        json!({
            "match": [{"vars_regexp": {"{http.error.status_code}": {"pattern": "^50[234]$"}}}],
            "handle": [html(502, pages::starting_or_failing())],
            "terminal": true,
        }),
        json!({"handle": [{"handler": "static_response", "status_code": "{http.error.status_code}", "body": "{http.error.status_code} {http.error.status_text}"}]}),
    ];
    let Some(acme) = acme else {
        return json!({
            "admin": {"listen": format!("unix/{ADMIN_SOCKET_IN}")},
            "logging": {"logs": {"default": {"level": "WARN"}}},
            "apps": {"http": {"servers": {"edge": {
                "listen": [format!(":{HTTP_IN}")],
                "automatic_https": {"disable": true},
                "routes": routes,
                "errors": {"routes": errors},
            }}}},
        });
    };

    // Plain HTTP moves to HTTPS once the host has its certificate: the file is Caddy's own,
    // so the redirect starts the moment the certificate lands, with no change to this
    // configuration. Hosts without one (pending, failed, never asked for) stay on HTTP.
    // ACME's HTTP challenges are answered by Caddy before any route.
    let port = match acme.listen.port() {
        443 => String::new(),
        port => format!(":{port}"),
    };
    let mut http_routes = routes.clone();
    // After the refusals of bad paths, the hosts to normalise, and unknown hosts.
    http_routes.insert(
        3,
        json!({
            "match": [{"file": {
                "root": format!("{STORAGE_IN}/certificates/{}", acme.issuer_key()),
                "try_files": ["/{http.request.host}/{http.request.host}.crt"],
            }}],
            "handle": [{
                "handler": "static_response",
                "status_code": 308,
                "headers": {"Location": [format!("https://{{http.request.host}}{port}{{http.request.uri}}")]},
            }],
            "terminal": true,
        }),
    );
    let mut issuer = json!({"module": "acme", "ca": acme.ca});
    if let Some(email) = &acme.email {
        issuer["email"] = json!(email);
    }
    if acme.ca_root.is_some() {
        issuer["trusted_roots_pem_files"] = json!([CA_ROOT_IN]);
    }
    // What Director reads of Caddy's certificate work (see `certificates`): tls.obtain and
    // tls.renew at INFO, as JSON; everything else at WARN.
    let certificate_loggers = ["tls.obtain", "tls.renew"];
    json!({
        "admin": {"listen": format!("unix/{ADMIN_SOCKET_IN}")},
        "logging": {"logs": {
            "default": {"level": "WARN", "exclude": certificate_loggers},
            "certificates": {"level": "INFO", "include": certificate_loggers, "encoder": {"format": "json"}},
        }},
        "apps": {
            "http": {
                "http_port": HTTP_IN,
                "https_port": HTTPS_IN,
                "servers": {
                    "edge": {
                        "listen": [format!(":{HTTP_IN}")],
                        "automatic_https": {"disable": true},
                        "routes": http_routes,
                        "errors": {"routes": errors},
                    },
                    "edge_tls": {
                        "listen": [format!(":{HTTPS_IN}")],
                        "automatic_https": {"disable": true},
                        "tls_connection_policies": [{}],
                        "routes": routes,
                        "errors": {"routes": errors},
                    },
                    "ask": {
                        "listen": [ASK_IN],
                        "automatic_https": {"disable": true},
                        "routes": [{"handle": [{
                            "handler": "reverse_proxy",
                            "upstreams": [{"dial": format!("unix/{ASK_SOCKET_IN}")}],
                        }]}],
                    },
                },
            },
            "tls": {"automation": {
                "policies": [{"issuers": [issuer], "on_demand": true}],
                "on_demand": {"ask": format!("http://{ASK_IN}/edge/ask")},
            }},
        },
    })
}

/// The build context of Director's Caddy image: Debian's `caddy` binary with the shared
/// libraries it links (it is not static), on `scratch`.
pub fn caddy_context(dir: &Path) -> Result<PathBuf> {
    let caddy = std::env::var_os("CADDY").map_or_else(|| PathBuf::from("/usr/bin/caddy"), PathBuf::from);
    let root = dir.join("root");
    let copy = |from: &Path| -> Result<()> {
        let to = root.join(from.strip_prefix("/").unwrap_or(from));
        std::fs::create_dir_all(to.parent().expect("absolute paths have parents"))
            .map_err(io("creating the Caddy context"))?;
        std::fs::copy(from, &to)
            .map_err(io(format!("copying {} (install Debian's caddy)", from.display())))?;
        Ok(())
    };
    copy(&caddy)?;
    if caddy != Path::new("/usr/bin/caddy") {
        std::fs::rename(
            root.join(caddy.strip_prefix("/").unwrap_or(&caddy)),
            root.join("usr/bin/caddy"),
        )
        .map_err(io("placing the caddy binary"))?;
    }
    let ldd = std::process::Command::new("ldd")
        .arg(&caddy)
        .output()
        .map_err(io("running ldd"))?;
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let path = line
            .split("=>")
            .last()
            .and_then(|rest| rest.split_whitespace().next())
            .filter(|p| p.starts_with('/'));
        if let Some(path) = path {
            copy(Path::new(path))?;
        }
    }
    let certs = Path::new("/etc/ssl/certs/ca-certificates.crt");
    if certs.exists() {
        copy(certs)?;
    }
    std::fs::write(
        dir.join("Dockerfile"),
        "# Director's edge: Debian's caddy and the libraries it links, nothing else.\n\
         FROM scratch\nCOPY root/ /\nENTRYPOINT [\"/usr/bin/caddy\"]\n",
    )
    .map_err(io("writing the Dockerfile"))?;
    Ok(dir.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_keeps_the_admin_api_off_the_network_and_https_off_without_acme() {
        // (It takes no sites: that it is the same whatever the sites is its signature's.)
        let a = serde_json::to_string(&caddy_json(None)).unwrap();
        assert!(
            a.contains("unix//run/caddy/admin.sock"),
            "the admin API is on a socket, not the network"
        );
        assert!(!a.contains("edge_tls"), "no HTTPS without ACME");
    }

    #[test]
    fn with_acme_https_asks_director_and_http_redirects_hosts_with_a_certificate() {
        let acme = AcmeConfig {
            listen: "0.0.0.0:443".parse().unwrap(),
            ca: crate::edge::LETS_ENCRYPT.to_owned(),
            email: Some("admin@example.org".to_owned()),
            ca_root: None,
        };
        let config = caddy_json(Some(&acme));
        let servers = &config["apps"]["http"]["servers"];
        assert_eq!(servers["edge_tls"]["listen"][0], ":8443");
        assert_eq!(
            config["apps"]["tls"]["automation"]["on_demand"]["ask"],
            "http://127.0.0.1:2020/edge/ask"
        );
        assert_eq!(
            servers["ask"]["listen"][0], "127.0.0.1:2020",
            "the ask is on loopback only"
        );
        let issuer = &config["apps"]["tls"]["automation"]["policies"][0]["issuers"][0];
        assert_eq!(issuer["ca"], crate::edge::LETS_ENCRYPT);
        assert_eq!(issuer["email"], "admin@example.org");
        assert!(issuer.get("trusted_roots_pem_files").is_none());
        // The refusals of bad paths, the hosts to normalise and unknown hosts stay first; the
        // redirect comes right after them, on HTTP only.
        let redirect = &servers["edge"]["routes"][3];
        assert_eq!(redirect["handle"][0]["status_code"], 308);
        assert_eq!(
            redirect["handle"][0]["headers"]["Location"][0],
            "https://{http.request.host}{http.request.uri}"
        );
        assert_eq!(
            redirect["match"][0]["file"]["root"],
            "/data/caddy/certificates/acme-v02.api.letsencrypt.org-directory"
        );
        assert_eq!(servers["edge"]["routes"][0], servers["edge_tls"]["routes"][0]);
        assert_eq!(
            servers["edge"]["routes"].as_array().unwrap().len(),
            servers["edge_tls"]["routes"].as_array().unwrap().len() + 1
        );
    }

    #[test]
    fn only_what_is_a_host_once_lowercased_and_undotted_is_sent_to_be_normalised() {
        let (normalisable, routed) = (
            regex_lite::Regex::new(&normalisable_host()).unwrap(),
            regex_lite::Regex::new(HOST_PATTERN).unwrap(),
        );
        for host in ["Docs.LocalHost", "docs.localhost.", "DOCS.EXAMPLE.ORG."] {
            assert!(normalisable.is_match(host) && !routed.is_match(host), "{host}");
        }
        for host in [
            "..",
            "docs..localhost",
            "Bad_Host.localhost",
            "docs.localhost..",
            "-a.localhost",
        ] {
            assert!(!normalisable.is_match(host), "{host}");
        }
    }

    #[test]
    fn the_host_pattern_admits_only_dns_names() {
        let re = regex_lite::Regex::new(HOST_PATTERN).unwrap();
        for good in ["blog.localhost", "a-b.c9.example.org"] {
            assert!(re.is_match(good), "{good}");
        }
        for bad in [
            "..",
            "a..b",
            "localhost",
            "evil.org/x",
            "a.b:2019",
            "Blog.localhost",
            "-a.b",
            "a_b.c",
            "",
        ] {
            assert!(!re.is_match(bad), "{bad}");
        }
        let up = regex_lite::Regex::new(UPSTREAM_PATTERN).unwrap();
        assert!(up.is_match("/blog.localhost/site_0042"));
        assert!(up.is_match("/blog.localhost/t1a2_site_0042"));
        for bad in [
            "/blog.localhost/postgres",
            "/blog.localhost/site_42.evil",
            "/a/b/site_1",
            "/blog.localhost/x_y_site_1",
        ] {
            assert!(!up.is_match(bad), "{bad}");
        }
    }
}
