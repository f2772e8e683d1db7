//! The orchestrator: the only code in Director that speaks to the Docker engine (and, with the
//! edge issue, to the edge router).
//!
//! It takes specifications ([`SiteSpec`]) and returns observed state. It knows nothing of users,
//! permissions or the database: the platform decides *what* should run, the orchestrator makes
//! it so and reports back.
//!
//! Invariants:
//! - Every call is idempotent: it inspects first, then creates on 404 or updates only when the
//!   spec's digest differs. A retry after a failure (engine restart, timeout) converges.
//! - Every object carries `director.namespace`, `director.site` and `director.role` labels, and
//!   its name comes from [`Namespace`]: tests use a random namespace and remove only their own.
//! - Names and values are validated before they reach the engine.

pub mod base_images;
pub mod databases;
pub mod disks;
pub mod edge;
mod error;
mod events;
mod image;
mod mounts;
mod names;
mod service;
mod site_image;
mod spec;
mod terminal;

use bollard::Docker;

pub use error::{Error, Result};
pub use events::{SiteEvent, SiteEventKind};
pub use image::{BuildLine, busybox_context};
pub use mounts::detach_blocking;
pub use names::{
    LABEL_NAMESPACE, LABEL_ROLE, LABEL_SITE, LABEL_SPEC, Namespace, SiteId, validate_env_name,
    validate_site_name,
};
pub use service::{Ensured, LogLine, LogOptions, LogStream, Rollout, ServiceStatus};
pub use site_image::{
    BuildContext, BuildLimits, ImageBuild, ImageOwner, LABEL_CATALOGUE, LABEL_RECIPE, dockerfile_context,
};
pub use spec::{EndpointMode, Limits, RUN_SCRIPT, SITE_MOUNT, SiteSpec};
pub use terminal::{ExecControl, ExecInput, ExecOutput, ExecRequest, ExecSession, ExitCode};

/// A connection to one Docker engine (a Swarm manager) for one namespace.
#[derive(Debug, Clone)]
pub struct Orchestrator {
    docker: Docker,
    address: String,
    ns: Namespace,
    terminals: terminal::Activity,
    /// Director's base images: made when a service or terminal needs one the engine lacks.
    base_images: base_images::BaseImages,
}

/// Requests that stream (logs, exec) last as long as they need; this bounds only the wait for
/// an answer to a plain request.
const REQUEST_TIMEOUT_SECS: u64 = 120;
/// The engine's usual socket.
const DEFAULT_SOCKET: &str = "unix:///var/run/docker.sock";
/// The socket of the engine `scripts/docker-engine` starts when the system has none.
const OWN_SOCKET: &str = "unix:///run/director-docker/docker.sock";

impl Orchestrator {
    /// Connects to `DOCKER_HOST` (a `unix://` socket), or else the default socket or the one
    /// `scripts/docker-engine` starts, negotiates the API version, and checks that the engine is
    /// a Swarm manager.
    pub async fn connect(ns: Namespace) -> Result<Self> {
        let address = std::env::var("DOCKER_HOST").unwrap_or_else(|_| {
            // Without DOCKER_HOST: the system's engine, else the one scripts/docker-engine starts.
            [DEFAULT_SOCKET, OWN_SOCKET]
                .into_iter()
                .find(|socket| std::path::Path::new(socket.trim_start_matches("unix://")).exists())
                .unwrap_or(DEFAULT_SOCKET)
                .to_owned()
        });
        Self::connect_to(&address, ns).await
    }

    /// Connects to the engine at `address` (`unix:///path/to/docker.sock`).
    pub async fn connect_to(address: &str, ns: Namespace) -> Result<Self> {
        let address = address.to_owned();
        let unreachable = |hint: String| Error::EngineUnreachable {
            address: address.clone(),
            hint,
        };
        if !address.starts_with("unix://") {
            return Err(unreachable(
                "only unix:// sockets are supported; set DOCKER_HOST=unix:///path/to/docker.sock".to_owned(),
            ));
        }
        let not_running = |e: bollard::errors::Error| {
            unreachable(format!(
                "{e}; is dockerd running? (scripts/docker-engine starts one; or set DOCKER_HOST to its socket)"
            ))
        };
        let docker = Docker::connect_with_unix(&address, REQUEST_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
            .map_err(not_running)?;
        let docker = docker.negotiate_version().await.map_err(not_running)?;
        let info = docker.info().await.map_err(|e| unreachable(e.to_string()))?;
        let manager = info
            .swarm
            .as_ref()
            .and_then(|s| s.control_available)
            .unwrap_or(false);
        if !manager {
            return Err(Error::NotSwarmManager { address });
        }
        tracing::debug!(%address, version = ?docker.client_version(), "connected to the Docker engine");
        Ok(Self {
            docker,
            address,
            ns,
            terminals: terminal::Activity::default(),
            base_images: base_images::BaseImages::new(base_images::REPOSITORY)?,
        })
    }

    /// The same connection, making `base_images` when a service or terminal needs one.
    pub fn with_base_images(mut self, base_images: base_images::BaseImages) -> Self {
        self.base_images = base_images;
        self
    }

    /// Director's base images on this engine.
    pub fn base_images(&self) -> &base_images::BaseImages {
        &self.base_images
    }

    /// The namespace this orchestrator works in.
    pub fn namespace(&self) -> &Namespace {
        &self.ns
    }

    /// Makes sure the attachable overlay network `name` (namespaced) exists; returns its name.
    /// Sites' services and terminals join it; the manager and its database never do.
    pub async fn ensure_network(&self, name: &str) -> Result<String> {
        let name = self.ns.network(name);
        match self.docker.inspect_network(&name, None).await {
            Ok(_) => return Ok(name),
            Err(e) if error::is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
        let labels = [(LABEL_NAMESPACE.to_owned(), self.ns.label().to_owned())].into();
        let request = bollard::models::NetworkCreateRequest {
            name: name.clone(),
            driver: Some("overlay".to_owned()),
            attachable: Some(true),
            labels: Some(labels),
            ..Default::default()
        };
        match self.docker.create_network(request).await {
            Ok(_) => {
                tracing::info!(network = %name, "network created");
                Ok(name)
            }
            // Created by a concurrent caller between our inspect and create: fine.
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => Ok(name),
            Err(e) => Err(e.into()),
        }
    }

    /// The address ranges of every network the engine has (`172.17.0.0/16`, the overlays'
    /// `10.0.1.0/24`, …), whoever made them: where containers, sites among them, have
    /// addresses. Webhooks may not be sent into them.
    pub async fn network_subnets(&self) -> Result<Vec<String>> {
        Ok(self
            .docker
            .list_networks(None::<bollard::query_parameters::ListNetworksOptions>)
            .await?
            .into_iter()
            .filter_map(|n| n.ipam?.config)
            .flatten()
            .filter_map(|c| c.subnet)
            .collect())
    }

    /// The names of every service, container and network this namespace holds.
    pub async fn leftovers(&self) -> Result<Vec<String>> {
        let objects = self.namespace_objects().await?;
        Ok([
            objects.services,
            objects.containers,
            objects.networks,
            objects.secrets,
        ]
        .into_iter()
        .flatten()
        .map(|(_, name)| name)
        .collect())
    }

    /// The sites that have a service, and those that have a terminal container, in this
    /// namespace — what the reconciler compares with the sites that should exist.
    pub async fn site_objects(&self) -> Result<SiteObjects> {
        use bollard::query_parameters::{ListContainersOptions, ListServicesOptions};
        let filters = std::collections::HashMap::from([(
            "label".to_owned(),
            vec![format!("{LABEL_NAMESPACE}={}", self.ns.label())],
        )]);
        let site_of = |labels: Option<&std::collections::HashMap<String, String>>, role: &str| {
            let labels = labels?;
            (labels.get(LABEL_ROLE).map(String::as_str) == Some(role))
                .then(|| labels.get(LABEL_SITE)?.parse().ok().map(SiteId))
                .flatten()
        };
        let services = self
            .docker
            .list_services(Some(ListServicesOptions {
                filters: Some(filters.clone()),
                ..Default::default()
            }))
            .await?
            .into_iter()
            .filter_map(|s| site_of(s.spec.as_ref()?.labels.as_ref(), "service"))
            .collect();
        let terminals = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await?
            .into_iter()
            .filter_map(|c| site_of(c.labels.as_ref(), "terminal"))
            .collect();
        Ok(SiteObjects { services, terminals })
    }

    /// Removes the site's service and terminal and waits until no container of the site is
    /// left (a task's container is otherwise given seconds to stop, and may ignore SIGTERM):
    /// once this returns, nothing of the site runs. At most 30 s; then it is an error.
    pub async fn stop_site(&self, site: SiteId) -> Result<()> {
        use bollard::query_parameters::{ListContainersOptions, RemoveContainerOptions};
        self.remove_terminal(site).await?;
        self.remove_service(site).await?;
        let filters = std::collections::HashMap::from([(
            "label".to_owned(),
            vec![
                format!("{LABEL_NAMESPACE}={}", self.ns.label()),
                format!("{LABEL_SITE}={}", site.0),
            ],
        )]);
        for _ in 0..60 {
            let left = self
                .docker
                .list_containers(Some(ListContainersOptions {
                    all: true,
                    filters: Some(filters.clone()),
                    ..Default::default()
                }))
                .await?;
            if left.is_empty() {
                return Ok(());
            }
            for container in left.iter().filter_map(|c| c.id.as_deref()) {
                let force = RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                };
                match self.docker.remove_container(container, Some(force)).await {
                    Ok(()) => {}
                    Err(e) if error::is_not_found(&e) => {}
                    Err(e) => tracing::debug!(%site, error = %e, "removing a site's container"),
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        Err(Error::Engine(format!("site {site}'s containers did not stop")))
    }

    /// Every object of this namespace, as (id, name) pairs.
    async fn namespace_objects(&self) -> Result<NamespaceObjects> {
        use bollard::query_parameters::{
            ListContainersOptions, ListNetworksOptions, ListSecretsOptions, ListServicesOptions,
        };
        let filters = std::collections::HashMap::from([(
            "label".to_owned(),
            vec![format!("{LABEL_NAMESPACE}={}", self.ns.label())],
        )]);
        let services = self
            .docker
            .list_services(Some(ListServicesOptions {
                filters: Some(filters.clone()),
                ..Default::default()
            }))
            .await?
            .into_iter()
            .filter_map(|s| Some((s.id?, s.spec?.name?)))
            .collect();
        let containers = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters.clone()),
                ..Default::default()
            }))
            .await?
            .into_iter()
            .filter_map(|c| Some((c.id?, c.names?.into_iter().next()?)))
            .collect();
        let secrets = self
            .docker
            .list_secrets(Some(ListSecretsOptions {
                filters: Some(filters.clone()),
            }))
            .await?
            .into_iter()
            .filter_map(|s| Some((s.id?, s.spec?.name?)))
            .collect();
        let networks = self
            .docker
            .list_networks(Some(ListNetworksOptions {
                filters: Some(filters),
            }))
            .await?
            .into_iter()
            .filter_map(|n| Some((n.id?, n.name?)))
            .collect();
        Ok(NamespaceObjects {
            services,
            containers,
            networks,
            secrets,
        })
    }

    /// Removes everything this orchestrator's namespace made: services, containers, networks,
    /// sites' images, secrets.
    /// For tests and uninstalls; a production namespace is never removed wholesale by Director.
    pub async fn remove_namespace(&self) -> Result<()> {
        let objects = self.namespace_objects().await?;
        for (id, _) in objects.services {
            ignore_missing(self.docker.delete_service(&id).await)?;
        }
        for (id, _) in objects.containers {
            self.remove_container(&id).await?;
        }
        for (id, _) in objects.networks {
            self.remove_network(&id).await?;
        }
        // The images built for its sites, once no container uses them.
        let filters = std::collections::HashMap::from([(
            "label".to_owned(),
            vec![format!("{LABEL_NAMESPACE}={}", self.ns.label())],
        )]);
        let images = self
            .docker
            .list_images(Some(bollard::query_parameters::ListImagesOptions {
                filters: Some(filters),
                ..Default::default()
            }))
            .await?;
        for image in images {
            let options = bollard::query_parameters::RemoveImageOptions {
                force: true,
                ..Default::default()
            };
            ignore_missing(
                self.docker
                    .remove_image(&image.id, Some(options), None)
                    .await
                    .map(|_| ()),
            )?;
        }
        // Secrets go once the services that used them have.
        for (id, _) in objects.secrets {
            for attempt in 0..20 {
                match ignore_missing(self.docker.delete_secret(&id).await) {
                    Ok(()) => break,
                    Err(_) if attempt < 19 => tokio::time::sleep(std::time::Duration::from_millis(250)).await,
                    Err(err) => return Err(err),
                }
            }
        }
        Ok(())
    }

    /// [`Orchestrator::remove_namespace`] for `Drop` implementations, which cannot await: runs
    /// it on a thread and runtime of its own, so it works inside or outside a runtime.
    pub fn remove_namespace_blocking(&self) -> Result<()> {
        let orch = self.clone();
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|source| Error::Io {
                    context: "starting a runtime".to_owned(),
                    source,
                })?
                .block_on(orch.remove_namespace())
        })
        .join()
        .map_err(|_| Error::Engine("removing the namespace panicked".to_owned()))?
    }

    /// Removes a network once its last container has gone (task containers of removed services
    /// go away asynchronously), and waits until the swarm has forgotten it.
    async fn remove_network(&self, id: &str) -> Result<()> {
        let pause = std::time::Duration::from_millis(100);
        for attempt in 0..100 {
            match self.docker.remove_network(id).await {
                Ok(()) => break,
                Err(e) if error::is_not_found(&e) => return Ok(()),
                Err(_) if attempt < 99 => tokio::time::sleep(pause).await,
                Err(e) => return Err(e.into()),
            }
        }
        for _ in 0..100 {
            match self.docker.inspect_network(id, None).await {
                Err(e) if error::is_not_found(&e) => return Ok(()),
                _ => tokio::time::sleep(pause).await,
            }
        }
        Err(Error::Transient(format!("network {id} is still being removed")))
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        let options = bollard::query_parameters::RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        ignore_missing(self.docker.remove_container(id, Some(options)).await)
    }

    /// The host PID of a running container's first process, if it runs.
    pub async fn container_pid(&self, name: &str) -> Result<Option<u32>> {
        match self.docker.inspect_container(name, None).await {
            Ok(c) => Ok(c
                .state
                .and_then(|s| s.pid)
                .and_then(|p| u32::try_from(p).ok())
                .filter(|p| *p > 0)),
            Err(e) if error::is_not_found(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The engine's address, for messages.
    pub fn address(&self) -> &str {
        &self.address
    }
}

/// The sites a namespace holds objects for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SiteObjects {
    /// Sites with a service.
    pub services: std::collections::BTreeSet<SiteId>,
    /// Sites with a terminal container.
    pub terminals: std::collections::BTreeSet<SiteId>,
}

/// A namespace's objects, as (id, name) pairs.
struct NamespaceObjects {
    services: Vec<(String, String)>,
    containers: Vec<(String, String)>,
    networks: Vec<(String, String)>,
    secrets: Vec<(String, String)>,
}

/// Treats "no such object" as done: removing what is already gone succeeds.
fn ignore_missing(result: Result<(), bollard::errors::Error>) -> Result<()> {
    match result {
        Err(e) if error::is_not_found(&e) => Ok(()),
        other => other.map_err(Into::into),
    }
}
