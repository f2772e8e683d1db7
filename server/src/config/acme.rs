//! `[acme]` (and `[edge] https_listen`): HTTPS for the sites, with certificates from ACME.

use std::{net::SocketAddr, path::PathBuf};

use clap::Args;
use orchestrator::edge::AcmeConfig;
use serde::Deserialize;

use super::edge::{Edge, EdgeDriver};

/// Flags of this section.
#[derive(Debug, Args, Default)]
pub struct AcmeFlags {
    /// Serve the sites over HTTPS at this address (e.g. `0.0.0.0:443`), with certificates from
    /// ACME; needs a real sites domain. Plain HTTP then redirects hosts that have one.
    #[arg(long, env = "DIRECTOR_HTTPS_LISTEN")]
    pub https_listen: Option<SocketAddr>,
    /// The ACME directory certificates come from (default: Let's Encrypt).
    #[arg(long, env = "DIRECTOR_ACME_CA")]
    pub acme_ca: Option<String>,
    /// The ACME account's email: the CA writes to it about certificates that expire.
    #[arg(long, env = "DIRECTOR_ACME_EMAIL")]
    pub acme_email: Option<String>,
    /// A PEM file of roots to trust the ACME CA's own HTTPS with (a private CA).
    #[arg(long, env = "DIRECTOR_ACME_CA_ROOT")]
    pub acme_ca_root: Option<PathBuf>,
}

/// Keys of this section in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct File {
    ca: Option<String>,
    email: Option<String>,
    ca_root: Option<PathBuf>,
}

/// HTTPS for the sites (Caddy's on-demand ACME), or None for plain HTTP. `https_listen` is the
/// file's `[edge] https_listen`.
pub(super) fn resolve(
    flags: &AcmeFlags,
    file: File,
    https_listen: Option<SocketAddr>,
    edge: &Edge,
) -> anyhow::Result<Option<AcmeConfig>> {
    let Some(listen) = flags.https_listen.or(https_listen) else {
        return Ok(None);
    };
    if edge.driver == EdgeDriver::Traefik {
        anyhow::bail!(
            "with Traefik as the edge, HTTPS is Traefik's: set --traefik-cert-resolver instead of --https-listen"
        );
    }
    if edge.sites_domain == "localhost" {
        anyhow::bail!(
            "HTTPS needs a real sites domain (--sites-domain): no CA issues certificates for names under localhost"
        );
    }
    let ca = flags
        .acme_ca
        .clone()
        .or(file.ca)
        .unwrap_or_else(|| orchestrator::edge::LETS_ENCRYPT.to_owned());
    if !ca.starts_with("https://") {
        anyhow::bail!("the ACME directory must be an https:// URL, not {ca:?}");
    }
    let email = flags.acme_email.clone().or(file.email).filter(|e| !e.is_empty());
    if let Some(email) = &email
        && (!email.contains('@') || email.chars().any(char::is_whitespace))
    {
        anyhow::bail!("the ACME email {email:?} is not an email address");
    }
    let ca_root = flags.acme_ca_root.clone().or(file.ca_root);
    if let Some(root) = &ca_root
        && !root.is_file()
    {
        anyhow::bail!("the ACME CA roots {} are not a file", root.display());
    }
    Ok(Some(AcmeConfig {
        listen,
        ca,
        email,
        ca_root,
    }))
}
