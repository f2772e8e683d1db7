//! `[server]`: where the manager listens and how it is reached.

use std::{net::SocketAddr, path::PathBuf};

use clap::Args;
use serde::Deserialize;

/// The default manager address: loopback, so a fresh install is not exposed by accident.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Flags of this section.
#[derive(Debug, Args, Default)]
pub struct ServerFlags {
    /// The address the manager listens on.
    #[arg(long, env = "DIRECTOR_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// The URL people reach the manager at (printed links use it; https turns on Secure cookies).
    #[arg(long, env = "DIRECTOR_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// The built site (wasm client, CSS, assets). Default: `site` beside the target directory
    /// of the binary, as scripts/build lays it out.
    #[arg(long, env = "DIRECTOR_SITE_ROOT")]
    pub site_root: Option<PathBuf>,
    /// Trust `X-Forwarded-For` for the client's address (only behind your own reverse proxy).
    #[arg(long, env = "DIRECTOR_TRUST_PROXY")]
    pub trust_proxy: Option<bool>,
    /// Requests a second each REST API token may make on average (bursts of three times as
    /// many); more are answered 429 with Retry-After. Default 20.
    #[arg(long, env = "DIRECTOR_API_RATE")]
    pub api_rate: Option<u32>,
}

/// Keys of this section in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct File {
    listen: Option<SocketAddr>,
    public_url: Option<String>,
    site_root: Option<PathBuf>,
    trust_proxy: Option<bool>,
    api_rate: Option<u32>,
}

/// The manager's own address.
#[derive(Debug, Clone)]
pub struct Server {
    /// Where it listens.
    pub listen: SocketAddr,
    /// The URL people reach it at, without a trailing slash.
    pub public_url: String,
    /// The built client and assets.
    pub site_root: PathBuf,
    /// Whether `X-Forwarded-For` gives the client's address.
    pub trust_proxy: bool,
    /// How many REST API requests each token may make.
    pub api_rate: crate::api::RateLimit,
}

impl Server {
    pub(super) fn resolve(flags: &ServerFlags, file: File) -> anyhow::Result<Self> {
        let listen = flags
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("the default address parses"));
        let public_url = flags
            .public_url
            .clone()
            .or(file.public_url)
            .unwrap_or_else(|| format!("http://{listen}"))
            .trim_end_matches('/')
            .to_owned();
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            anyhow::bail!("the public URL must start with http:// or https://, not {public_url:?}");
        }
        Ok(Self {
            listen,
            public_url,
            site_root: flags
                .site_root
                .clone()
                .or(file.site_root)
                .unwrap_or_else(default_site_root),
            trust_proxy: flags.trust_proxy.or(file.trust_proxy).unwrap_or(false),
            api_rate: {
                let per_second = flags.api_rate.or(file.api_rate).unwrap_or(20);
                let per_second = std::num::NonZeroU32::new(per_second)
                    .ok_or_else(|| anyhow::anyhow!("the API rate must be at least 1 request a second"))?;
                crate::api::RateLimit {
                    per_second,
                    burst: per_second.saturating_mul(std::num::NonZeroU32::MIN.saturating_add(2)),
                    failures_per_minute: crate::api::WRONG_TOKENS_PER_MINUTE,
                }
            },
        })
    }

    /// Whether the manager is served over TLS, and so its cookies must be `Secure`.
    pub fn secure_cookies(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    /// The host the manager is reached at, from its public URL (lowercased, without a port).
    pub fn manager_host(&self) -> String {
        let authority = self
            .public_url
            .split_once("://")
            .map_or(self.public_url.as_str(), |(_, rest)| rest);
        let authority = authority.split(['/', '?', '#']).next().unwrap_or_default();
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => authority.rsplit_once(':').map_or(authority, |(host, _)| host),
        };
        host.to_ascii_lowercase()
    }
}

/// scripts/build puts the site in `<target dir>/site`, and the binary in `<target dir>/<profile>/`.
fn default_site_root() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(|target| target.join("site")))
        .filter(|site| site.is_dir())
        .unwrap_or_else(|| PathBuf::from("target/site"))
}
