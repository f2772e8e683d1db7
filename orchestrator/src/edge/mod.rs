//! The edge router: what visitors hit. One interface — put a site's routes, remove them, list
//! them, check the router — and two drivers: Caddy (default, run and configured by Director)
//! and Traefik (labels and file-provider configuration for operators who run Traefik).

mod caddy;
mod certificates;
mod hosts;
mod pages;
mod traefik;

use std::path::PathBuf;

pub use caddy::{Caddy, CaddyConfig, caddy_context};
pub use certificates::{AcmeConfig, Certificate, CertificateEvent, Handshake, LETS_ENCRYPT};
pub use hosts::validate_host;
pub use traefik::{TraefikConfig, traefik_file_config, traefik_labels};

use crate::SiteId;

/// The port every dynamic site listens on (`PORT`): the edge dials `<service>:8080`.
pub const SITE_PORT: u16 = 8080;

/// Request body limits the edge enforces, in bytes. A site's limit is applied as the largest
/// of these at or below what was asked (the smallest when asked for less), so that the router's
/// configuration stays the same size however many sites and limits there are.
pub const BODY_LIMIT_TIERS: [u64; 6] = [1 << 20, 8 << 20, 32 << 20, 128 << 20, 512 << 20, 2 << 30];

/// The tier applied for a requested limit.
pub fn body_limit_tier(requested: u64) -> u64 {
    BODY_LIMIT_TIERS
        .iter()
        .copied()
        .filter(|tier| *tier <= requested)
        .max()
        .unwrap_or(BODY_LIMIT_TIERS[0])
}

/// Where a site's requests go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Files straight from this directory (the site's `public/`), by the router itself.
    Static {
        /// The directory on the host; it must lie under the sites root.
        public_dir: PathBuf,
    },
    /// The site's Swarm service, by its name on the sites network, port [`SITE_PORT`].
    Service,
}

/// Whether a site is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// Served normally.
    Served,
    /// Its owners took it down: visitors get a 503 page saying so.
    NotServed,
    /// An admin disabled it: visitors get a 503 page saying so.
    Disabled,
}

/// Everything the edge knows about one site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteRoutes {
    /// The site.
    pub site: SiteId,
    /// Its hosts (validated, lower-case).
    pub hosts: Vec<String>,
    /// Where requests go.
    pub target: Target,
    /// Largest request body accepted (applied by tier, see [`body_limit_tier`]).
    pub body_limit: u64,
    /// Served or not.
    pub availability: Availability,
}
