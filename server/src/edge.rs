//! The edge router for the sites: Director starts Caddy (through the orchestrator), then watches
//! it for as long as the manager runs — a Caddy that stops answering is restarted, and since its
//! configuration is constant and its routes are files, it comes back with every route.
//! Stopping the manager leaves Caddy running: the sites stay up while Director restarts.
//!
//! With HTTPS, the manager also answers Caddy's certificate asks on a Unix socket in the edge
//! directory (only Caddy's container sees it), for as long as it runs.

use std::{net::SocketAddr, os::unix::fs::PermissionsExt as _, path::PathBuf, time::Duration};

use axum::{
    Router,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse as _, Response},
    routing::{any, get},
};
use orchestrator::{
    EndpointMode, Namespace, Orchestrator,
    disks::Disks,
    edge::{AcmeConfig, Caddy, CaddyConfig, TraefikConfig, caddy_context},
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
    /// Where the sites' disk images are kept.
    pub disks: PathBuf,
    /// Where visitors reach the sites (Caddy's published port); None behind Traefik.
    pub listen: Option<SocketAddr>,
    /// Sites are `<name>.<sites domain>`.
    pub sites_domain: String,
    /// Behind the operator's Traefik: its entrypoints and certificate resolver.
    pub traefik: Option<(Vec<String>, Option<String>)>,
    /// HTTPS through ACME (Caddy only).
    pub acme: Option<AcmeConfig>,
    /// The sites' database servers.
    pub databases: platform::sites::DatabaseServers,
}

/// `?domain=` of a certificate ask.
#[derive(Debug, serde::Deserialize)]
pub struct Ask {
    #[serde(default)]
    domain: String,
}

/// `GET /edge/ask?domain=`, asked by the edge before it gets a certificate for a host (Caddy's
/// on-demand TLS `ask`): yes (200) only for a host Director serves — a site's own name or a
/// verified domain — so nobody can make the edge ask a CA for names of their choosing.
///
/// `/edge/host`: the edge sends here a request whose Host is not as sites are routed (capitals,
/// a trailing dot), with its URI in `X-Director-Uri`; it is redirected to the same address with
/// the host as routed, since host names are case-insensitive and `example.org.` is
/// `example.org`.
pub fn ask_router(platform: Platform) -> Router {
    Router::new()
        .route("/edge/ask", get(ask))
        .route(HOST_PREFIX, any(normalise_host))
        .with_state(platform)
}

/// Where the edge sends requests whose Host it does not route as it is (see `caddy_json`).
const HOST_PREFIX: &str = "/edge/host";

async fn normalise_host(headers: HeaderMap) -> Response {
    let no_site = || (StatusCode::NOT_FOUND, "No site here.\n").into_response();
    let Some(raw) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return no_site();
    };
    // A port is whatever follows the last colon, when it is one (no IPv6 literal is a site's
    // host).
    let (host, port) = match raw.rsplit_once(':') {
        Some((host, port)) => match port.parse::<u16>() {
            Ok(port) => (host, Some(port)),
            Err(_) => return no_site(),
        },
        None => (raw, None),
    };
    let Ok(routed) = orchestrator::edge::validate_host(host, false) else {
        return no_site();
    };
    if routed == host {
        return no_site();
    }
    // The request's own URI, as the edge received it; anything else is the root.
    let uri = headers
        .get("x-director-uri")
        .and_then(|h| h.to_str().ok())
        .filter(|uri| uri.starts_with('/') && !uri.starts_with("//"))
        .unwrap_or("/");
    let port = port.map(|p| format!(":{p}")).unwrap_or_default();
    // Scheme-relative: the visitor stays on the scheme they came by, which only their browser
    // knows for sure (behind Traefik, the edge itself is reached over plain HTTP).
    let location = format!("//{routed}{port}{uri}");
    (
        StatusCode::PERMANENT_REDIRECT,
        [
            (header::LOCATION, location),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
    )
        .into_response()
}

/// Caddy's question before it asks for a certificate: is `domain` a host Director serves?
pub async fn ask(State(platform): State<Platform>, Query(ask): Query<Ask>) -> Response {
    let sites_domain = &platform.settings().sites_domain;
    match platform.serves_host(&ask.domain, sites_domain).await {
        Ok(true) => "yes".into_response(),
        Ok(false) => {
            tracing::info!(domain = %ask.domain, "certificate refused: not a host Director serves");
            (StatusCode::NOT_FOUND, "not a host Director serves").into_response()
        }
        Err(err) => {
            tracing::warn!(error = %err, domain = %ask.domain, "certificate ask failed");
            (StatusCode::SERVICE_UNAVAILABLE, "try again").into_response()
        }
    }
}

/// Answers Caddy's asks on its socket until `shutdown`. The socket is open to any local user
/// (Caddy runs as its own uid): it tells no more than whether a host is served.
async fn serve_asks(caddy: Caddy, platform: Platform, mut shutdown: watch::Receiver<bool>) {
    let socket = caddy.ask_socket();
    let _ = std::fs::remove_file(&socket);
    let listener = match tokio::net::UnixListener::bind(&socket) {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!(error = %err, socket = %socket.display(), "cannot listen for certificate asks; no certificate will be issued");
            return;
        }
    };
    if let Err(err) = std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)) {
        tracing::error!(error = %err, "cannot open the certificate ask socket to Caddy");
    }
    let served = axum::serve(listener, ask_router(platform)).with_graceful_shutdown(async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    });
    if let Err(err) = served.await {
        tracing::error!(error = %err, "the certificate ask socket stopped");
    }
}

/// Makes Director's base images the engine lacks, in the background at start (a site that
/// needs one meanwhile waits for it): on a new machine the first Python site then starts in
/// seconds rather than after its image.
async fn make_base_images(orch: Orchestrator) {
    let images = orch.base_images().clone();
    for image in orchestrator::base_images::BaseImage::SITES {
        let reference = images.reference(image);
        let mut log = |line: orchestrator::BuildLine| tracing::info!(image = %reference, line = %line.0, "making a base image");
        match images.ensure(&orch, image, &mut log).await {
            Ok(true) => tracing::info!(image = %reference, "base image made"),
            Ok(false) => {}
            Err(err) => {
                tracing::error!(image = %reference, error = %err, "making a base image failed; a site that needs it tries again")
            }
        }
    }
}

/// Starts the edge and keeps it up until `shutdown` turns true. Once it is up, the runtime the
/// workers need (engine, edge, where sites live) is given to the platform.
pub async fn supervise(plan: EdgePlan, platform: Platform, mut shutdown: watch::Receiver<bool>) {
    loop {
        match start(&plan).await {
            Ok((orch, caddy, network)) => {
                tracing::info!(listen = ?plan.listen, https = ?plan.acme.as_ref().map(|a| a.listen), "the edge router is up");
                tokio::spawn(serve_asks(caddy.clone(), platform.clone(), shutdown.clone()));
                let mut ready = Runtime::new(
                    platform.clone(),
                    orch,
                    caddy.clone(),
                    Disks::new(plan.disks.clone(), plan.sites_root.clone()),
                    plan.sites_domain.clone(),
                    network.clone(),
                    // Swarm's virtual IPs need IPVS, which not every kernel has; DNS round-robin
                    // works everywhere.
                    EndpointMode::Dnsrr,
                )
                .with_databases(plan.databases.clone());
                if let Some((entrypoints, cert_resolver)) = &plan.traefik {
                    ready = ready.with_traefik(TraefikMode {
                        config: TraefikConfig {
                            entrypoints: entrypoints.clone(),
                            cert_resolver: cert_resolver.clone(),
                            network,
                            static_server: format!("http://{}:8080", caddy.container()),
                        },
                        file: plan.dir.join("traefik").join("director.toml"),
                        writer: Default::default(),
                    });
                }
                // Before anything reaches a site's directory: after a reboot none is mounted.
                if let Err(err) = ready.mount_disks().await {
                    tracing::error!(error = %err, "mounting the sites' disks failed; the reconciler tries again");
                }
                tokio::spawn(make_base_images(ready.orchestrator.clone()));
                platform.set_runtime(Some(ready.clone()));
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
                            Ok(()) => platform.set_runtime(Some(ready.clone())),
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
        acme: plan.acme.clone(),
    };
    let caddy = Caddy::start(&orch, config).await?;
    Ok((orch, caddy, network))
}
