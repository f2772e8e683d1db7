//! `[webhooks]`: the address ranges webhooks may reach although Director refuses them by
//! default (loopback, link-local, the host's own addresses, the Docker engine's networks).

use anyhow::Context as _;
use clap::Args;
use ipnet::IpNet;
use serde::Deserialize;

/// Flags of webhooks.
#[derive(Debug, Args, Default)]
pub struct WebhookFlags {
    /// Address ranges webhooks may reach although they are refused by default (loopback,
    /// link-local, this host's, the Docker engine's): `127.0.0.1/32,10.9.0.0/16`. For a
    /// service of the operator's own; every member's webhooks may then reach it.
    #[arg(long, env = "DIRECTOR_WEBHOOK_ALLOW", value_delimiter = ',')]
    pub webhook_allow: Vec<String>,
}

/// The `[webhooks]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WebhooksFile {
    #[serde(default)]
    allow: Vec<String>,
}

/// The ranges allowed: the flag's when given, else the file's. A bare address is its own range.
pub(super) fn resolve(flags: &WebhookFlags, file: WebhooksFile) -> anyhow::Result<Vec<IpNet>> {
    let given = if flags.webhook_allow.is_empty() {
        file.allow
    } else {
        flags.webhook_allow.clone()
    };
    given
        .iter()
        .map(|range| range.trim())
        .filter(|range| !range.is_empty())
        .map(|range| {
            range
                .parse::<IpNet>()
                .or_else(|_| range.parse::<std::net::IpAddr>().map(IpNet::from))
                .with_context(|| format!("--webhook-allow: {range:?} is not an address range (10.9.0.0/16)"))
        })
        .collect()
}
