//! The edge router for the sites: Director starts Caddy (through the orchestrator), then watches
//! it for as long as the manager runs — a Caddy that stops answering is restarted, and since its
//! configuration is constant and its routes are files, it comes back with every route.
//! Stopping the manager leaves Caddy running: the sites stay up while Director restarts.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use orchestrator::{
    EndpointMode, Namespace, Orchestrator,
    edge::{Caddy, CaddyConfig, TraefikConfig, caddy_context},
};
use platform::{
    Platform,
    sites::{Runtime, TraefikMode},
};
use tokio::sync::watch;

/// The image Director builds for Caddy, from the host's Debian `caddy`.
pub const CADDY_IMAGE: &str = "director/caddy:2.6";
/// The overlay network every site and the edge join.
pub const SITES_NETWORK: &str = "director_sites";
/// How often Caddy is checked.
const CHECK_EVERY: Duration = Duration::from_secs(5);
/// How long to wait before trying again when the edge cannot start (no engine yet, say).
const RETRY_EVERY: Duration = Duration::from_secs(10);

/// Where and how the edge runs.
#[derive(Debug, Clone)]
pub struct EdgePlan {
    /// The namespace of Director's Docker objects (production: none).
    pub namespace: Namespace,
    /// Director's edge directory (routes, Caddy's data and admin socket).
    pub dir: PathBuf,
    /// The directory holding the sites' directories.
    pub sites_root: PathBuf,
    /// Where visitors reach the sites (Caddy's published port); None behind Traefik.
    pub listen: Option<SocketAddr>,
    /// The port in the sites' addresses.
    pub public_port: u16,
    /// Sites are `<name>.<sites domain>`.
    pub sites_domain: String,
    /// Behind the operator's Traefik: its entrypoints and certificate resolver.
    pub traefik: Option<(Vec<String>, Option<String>)>,
}

/// Starts the edge and keeps it up until `shutdown` turns true. Once it is up, the runtime the
/// workers need (engine, edge, where sites live) is published on `runtime`.
pub async fn supervise(
    plan: EdgePlan,
    platform: Platform,
    runtime: watch::Sender<Option<Runtime>>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        match start(&plan).await {
            Ok((orch, caddy, network)) => {
                tracing::info!(listen = ?plan.listen, "the edge router is up");
                let mut ready = Runtime::new(
                    platform.clone(),
                    orch,
                    caddy.clone(),
                    plan.sites_root.clone(),
                    plan.sites_domain.clone(),
                    plan.public_port,
                    network.clone(),
                    // Swarm's virtual IPs need IPVS, which not every kernel has; DNS round-robin
                    // works everywhere.
                    EndpointMode::Dnsrr,
                );
                if let Some((entrypoints, cert_resolver)) = &plan.traefik {
                    ready = ready.with_traefik(TraefikMode {
                        config: TraefikConfig {
                            entrypoints: entrypoints.clone(),
                            cert_resolver: cert_resolver.clone(),
                            network,
                            static_server: format!("http://{}:8080", caddy.container()),
                        },
                        file: plan.dir.join("traefik").join("director.toml"),
                    });
                }
                runtime.send_replace(Some(ready));
                loop {
                    tokio::select! {
                        () = tokio::time::sleep(CHECK_EVERY) => {}
                        _ = shutdown.changed() => return,
                    }
                    if let Err(err) = caddy.health().await {
                        tracing::warn!(error = %err, "the edge router does not answer; restarting it");
                        match caddy.ensure_container().await {
                            // The reconciler starts over with every new runtime: it re-puts
                            // any route that did not survive.
                            Ok(()) => runtime.send_modify(|_| {}),
                            Err(err) => tracing::error!(error = %err, "restarting the edge router failed"),
                        }
                    }
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, retry_in = ?RETRY_EVERY, "the edge router could not start; sites are not served");
                tokio::select! {
                    () = tokio::time::sleep(RETRY_EVERY) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    }
}

async fn start(plan: &EdgePlan) -> orchestrator::Result<(Orchestrator, Caddy, String)> {
    let orch = Orchestrator::connect(plan.namespace.clone()).await?;
    let network = orch.ensure_network(SITES_NETWORK).await?;
    if !orch.image_exists(CADDY_IMAGE).await? {
        let context = tempfile::tempdir().map_err(|source| orchestrator::Error::Io {
            context: "making a build context for Caddy".to_owned(),
            source,
        })?;
        let path = caddy_context(context.path())?;
        orch.build_image(
            CADDY_IMAGE,
            &path,
            |line| tracing::debug!(line = %line.0, "building Caddy's image"),
        )
        .await?;
    }
    let config = CaddyConfig {
        dir: plan.dir.clone(),
        sites_root: plan.sites_root.clone(),
        listen: plan.listen,
        network: network.clone(),
        image: CADDY_IMAGE.to_owned(),
    };
    let caddy = Caddy::start(&orch, config).await?;
    Ok((orch, caddy, network))
}
