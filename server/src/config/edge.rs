//! `[edge]`: the router that serves the sites, and the domain they are named under.

use std::net::SocketAddr;

use clap::{Args, ValueEnum};
use serde::Deserialize;

/// The default address of the sites: loopback, next to the manager.
pub const DEFAULT_EDGE_LISTEN: &str = "127.0.0.1:8081";

/// Which edge router Director runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EdgeDriver {
    /// Caddy in a container on the sites network, configured by Director.
    #[default]
    Caddy,
    /// The operator's Traefik: dynamic sites' services carry its labels, static sites are in a
    /// file-provider configuration routing them to Director's (unpublished) Caddy.
    Traefik,
    /// None: the manager runs without serving sites.
    Off,
}

/// Flags of this section.
#[derive(Debug, Args, Default)]
pub struct EdgeFlags {
    /// The edge router: `caddy` (Director runs it), `traefik` (the operator's Traefik routes the
    /// sites from service labels and a file Director writes), or `off` (no sites are served).
    #[arg(long, env = "DIRECTOR_EDGE", value_enum)]
    pub edge: Option<EdgeDriver>,
    /// The address visitors reach the sites at (the edge's published port).
    #[arg(long, env = "DIRECTOR_EDGE_LISTEN")]
    pub edge_listen: Option<SocketAddr>,
    /// The domain under which sites get their names (`<site>.<domain>`).
    #[arg(long, env = "DIRECTOR_SITES_DOMAIN")]
    pub sites_domain: Option<String>,
    /// Traefik's entrypoints for the sites' routers (comma-separated).
    #[arg(long, env = "DIRECTOR_TRAEFIK_ENTRYPOINTS", value_delimiter = ',')]
    pub traefik_entrypoints: Option<Vec<String>>,
    /// Traefik's certificate resolver for the sites' routers (none: plain HTTP).
    #[arg(long, env = "DIRECTOR_TRAEFIK_CERT_RESOLVER")]
    pub traefik_cert_resolver: Option<String>,
    /// A prefix for every Docker object Director makes (tests run beside a real deployment).
    #[arg(long, env = "DIRECTOR_NAMESPACE", hide = true)]
    pub namespace: Option<String>,
}

/// Keys of this section in the file (`https_listen` is read by the `acme` section).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct File {
    driver: Option<EdgeDriver>,
    listen: Option<SocketAddr>,
    pub(super) https_listen: Option<SocketAddr>,
    sites_domain: Option<String>,
    traefik_entrypoints: Option<Vec<String>>,
    traefik_cert_resolver: Option<String>,
}

/// The edge as configured.
#[derive(Debug, Clone)]
pub struct Edge {
    /// Which router.
    pub driver: EdgeDriver,
    /// Where visitors reach the sites over plain HTTP.
    pub listen: SocketAddr,
    /// Sites are `<name>.<sites domain>`.
    pub sites_domain: String,
    /// Traefik's entrypoints for the sites' routers.
    pub traefik_entrypoints: Vec<String>,
    /// Traefik's certificate resolver, if it gets the certificates.
    pub traefik_cert_resolver: Option<String>,
    /// A prefix for Director's Docker objects; None in production.
    pub namespace: Option<String>,
}

impl Edge {
    pub(super) fn resolve(flags: &EdgeFlags, file: File) -> anyhow::Result<Self> {
        Ok(Self {
            driver: flags.edge.or(file.driver).unwrap_or_default(),
            listen: flags.edge_listen.or(file.listen).unwrap_or_else(|| {
                DEFAULT_EDGE_LISTEN
                    .parse()
                    .expect("the default edge address parses")
            }),
            sites_domain: validate_domain(
                &flags
                    .sites_domain
                    .clone()
                    .or(file.sites_domain)
                    .unwrap_or_else(|| "localhost".to_owned()),
            )?,
            traefik_entrypoints: flags
                .traefik_entrypoints
                .clone()
                .or(file.traefik_entrypoints)
                .unwrap_or_else(|| vec!["web".to_owned()]),
            traefik_cert_resolver: flags.traefik_cert_resolver.clone().or(file.traefik_cert_resolver),
            namespace: flags.namespace.clone().filter(|n| !n.is_empty()),
        })
    }

    /// The namespace of Director's Docker objects: none in production.
    pub fn namespace(&self) -> anyhow::Result<orchestrator::Namespace> {
        match &self.namespace {
            Some(prefix) => Ok(orchestrator::Namespace::prefixed(prefix)?),
            None => Ok(orchestrator::Namespace::production()),
        }
    }
}

/// A sites domain: `localhost`, or a DNS name whose sites' hosts (`name.<domain>`) are valid.
fn validate_domain(domain: &str) -> anyhow::Result<String> {
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    if domain == "localhost" {
        return Ok(domain);
    }
    orchestrator::edge::validate_host(&format!("site.{domain}"), false)
        .map(|_| domain.clone())
        .map_err(|e| anyhow::anyhow!("the sites domain {domain:?} is not usable: {e}"))
}
