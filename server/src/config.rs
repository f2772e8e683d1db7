//! Configuration: command-line flags, `DIRECTOR_*` environment variables and an optional TOML
//! file, in that order of precedence, over embedded defaults.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;

/// Director: self-hosted websites for an organisation's members.
#[derive(Debug, Parser)]
#[command(name = "director", version, about, long_about = None)]
pub struct Cli {
    /// A TOML configuration file (see docs/configuration.md).
    #[arg(long, global = true, env = "DIRECTOR_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where Director keeps its state (the embedded database among it).
    /// Default: /var/lib/director as root, else $XDG_DATA_HOME/director.
    #[arg(long, global = true, env = "DIRECTOR_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL to use instead of the embedded cluster.
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Log format.
    #[arg(long, global = true, env = "DIRECTOR_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines look.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// For people at a terminal.
    #[default]
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the manager (web UI, API) until interrupted.
    Serve(Box<ServeArgs>),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Make Director's base images (busybox, Debian, Python) on the Docker engine, those it
    /// lacks, and exit. `serve` makes them too, in the background and when a site needs one.
    Images,
    /// Manage accounts from the command line.
    #[command(subcommand)]
    User(UserCommand),
}

/// Flags of `director serve`.
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
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
    /// Traefik's entrypoints for the sites' routers (comma-separated).
    #[arg(long, env = "DIRECTOR_TRAEFIK_ENTRYPOINTS", value_delimiter = ',')]
    pub traefik_entrypoints: Option<Vec<String>>,
    /// Traefik's certificate resolver for the sites' routers (none: plain HTTP).
    #[arg(long, env = "DIRECTOR_TRAEFIK_CERT_RESOLVER")]
    pub traefik_cert_resolver: Option<String>,
    /// Where SSH and SFTP listen (`ssh -p <port> <site>@host`), or `off`.
    #[arg(long, env = "DIRECTOR_SSH_LISTEN")]
    pub ssh_listen: Option<String>,
    /// Minutes after which a site's terminal container with no shell in it is removed.
    #[arg(long, env = "DIRECTOR_TERMINAL_IDLE_MINUTES")]
    pub terminal_idle_minutes: Option<u64>,
    /// Seconds a browser terminal's shell waits for its browser to reconnect.
    #[arg(long, env = "DIRECTOR_TERMINAL_GRACE_SECONDS")]
    pub terminal_grace_seconds: Option<u64>,
    /// The largest file an upload in the file manager may carry, in MiB.
    #[arg(long, env = "DIRECTOR_UPLOAD_FILE_MB")]
    pub upload_file_mb: Option<u64>,
    /// The most one upload (all its files together) may carry, in MiB.
    #[arg(long, env = "DIRECTOR_UPLOAD_TOTAL_MB")]
    pub upload_total_mb: Option<u64>,
    /// The most sites a member may belong to, unless an admin gives them another quota.
    #[arg(long, env = "DIRECTOR_SITES_PER_USER")]
    pub sites_per_user: Option<i64>,
    /// The disk a site's files may take, in MiB: the size of its disk (its own code writes no
    /// more), and what the file manager and SFTP write up to.
    #[arg(long, env = "DIRECTOR_SITE_DISK_MB")]
    pub site_disk_mb: Option<u64>,
    /// The DNS server (`ip:port`) domain verification asks for TXT records (default: the
    /// system's resolver).
    #[arg(long, env = "DIRECTOR_DNS_SERVER")]
    pub dns_server: Option<SocketAddr>,
    /// A prefix for every Docker object Director makes (tests run beside a real deployment).
    #[arg(long, env = "DIRECTOR_NAMESPACE", hide = true)]
    pub namespace: Option<String>,
}

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

/// `director user …`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account. The password is read from standard input (one line).
    Create {
        /// Login name.
        #[arg(long)]
        username: String,
        /// Shown name (default: the username).
        #[arg(long, default_value = "")]
        display_name: String,
        /// E-mail address.
        #[arg(long, default_value = "")]
        email: String,
        /// Make the account an admin.
        #[arg(long)]
        admin: bool,
    },
}

/// The `[server]` and top-level keys of the TOML file; every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    log_format: Option<LogFormat>,
    #[serde(default)]
    server: FileServer,
    #[serde(default)]
    edge: FileEdge,
    #[serde(default)]
    terminal: FileTerminal,
    #[serde(default)]
    ssh: FileSsh,
    #[serde(default)]
    files: FileFiles,
    #[serde(default)]
    domains: FileDomains,
    #[serde(default)]
    acme: FileAcme,
    #[serde(default)]
    sites: FileSites,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSites {
    per_user: Option<i64>,
    disk_mb: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAcme {
    ca: Option<String>,
    email: Option<String>,
    ca_root: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDomains {
    dns_server: Option<SocketAddr>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFiles {
    upload_file_mb: Option<u64>,
    upload_total_mb: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSsh {
    listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTerminal {
    idle_minutes: Option<u64>,
    grace_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEdge {
    driver: Option<EdgeDriver>,
    listen: Option<SocketAddr>,
    https_listen: Option<SocketAddr>,
    sites_domain: Option<String>,
    traefik_entrypoints: Option<Vec<String>>,
    traefik_cert_resolver: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileServer {
    listen: Option<SocketAddr>,
    public_url: Option<String>,
    site_root: Option<PathBuf>,
    trust_proxy: Option<bool>,
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub log_format: LogFormat,
    pub listen: SocketAddr,
    pub public_url: String,
    pub site_root: PathBuf,
    pub trust_proxy: bool,
    pub edge: EdgeDriver,
    pub edge_listen: SocketAddr,
    pub sites_domain: String,
    /// HTTPS for the sites (Caddy's on-demand ACME); None: plain HTTP.
    pub acme: Option<orchestrator::edge::AcmeConfig>,
    pub namespace: Option<String>,
    pub traefik_entrypoints: Vec<String>,
    pub traefik_cert_resolver: Option<String>,
    /// Terminal containers with no shell for this long are removed.
    pub terminal_idle: std::time::Duration,
    /// A dropped browser terminal's shell waits this long for the browser.
    pub terminal_grace: std::time::Duration,
    /// Where SSH listens; None when it is off.
    pub ssh_listen: Option<SocketAddr>,
    /// What the file manager's uploads may carry.
    pub uploads: app::api::UploadLimits,
    /// Where domain verification looks TXT records up; None: the system's resolver.
    pub dns_server: Option<SocketAddr>,
    /// The most sites a member may belong to, unless an admin set theirs.
    pub sites_per_user: i64,
    /// The disk a site's files may take, in bytes.
    pub site_disk_bytes: u64,
}

/// Sites a member may belong to unless an admin gives them another quota.
pub const DEFAULT_SITES_PER_USER: i64 = 10;
/// MiB a site's files may take.
pub const DEFAULT_SITE_DISK_MB: u64 = 2048;

/// SSH listens on every address by default: unlike the manager, it has no proxy in front.
pub const DEFAULT_SSH_LISTEN: &str = "0.0.0.0:2222";

/// The default manager address: loopback, so a fresh install is not exposed by accident.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The default address of the sites: loopback too, next to the manager.
pub const DEFAULT_EDGE_LISTEN: &str = "127.0.0.1:8081";

impl Config {
    /// Merges flags and environment (already in `cli`), the file, and the defaults.
    pub fn resolve(cli: &Cli, serve: Option<&ServeArgs>) -> anyhow::Result<Self> {
        let file = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading the configuration file {}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .with_context(|| format!("in the configuration file {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let default_serve = ServeArgs::default();
        let serve = serve.unwrap_or(&default_serve);
        let listen = serve
            .listen
            .or(file.server.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("the default address parses"));
        let public_url = serve
            .public_url
            .clone()
            .or(file.server.public_url)
            .unwrap_or_else(|| format!("http://{listen}"))
            .trim_end_matches('/')
            .to_owned();
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            anyhow::bail!("the public URL must start with http:// or https://, not {public_url:?}");
        }
        let edge = serve.edge.or(file.edge.driver).unwrap_or_default();
        let sites_domain = validate_domain(
            &serve
                .sites_domain
                .clone()
                .or(file.edge.sites_domain)
                .unwrap_or_else(|| "localhost".to_owned()),
        )?;
        let acme = match serve.https_listen.or(file.edge.https_listen) {
            None => None,
            Some(_) if edge == EdgeDriver::Traefik => anyhow::bail!(
                "with Traefik as the edge, HTTPS is Traefik's: set --traefik-cert-resolver instead of --https-listen"
            ),
            Some(_) if sites_domain == "localhost" => anyhow::bail!(
                "HTTPS needs a real sites domain (--sites-domain): no CA issues certificates for names under localhost"
            ),
            Some(listen) => {
                let ca = serve
                    .acme_ca
                    .clone()
                    .or(file.acme.ca)
                    .unwrap_or_else(|| orchestrator::edge::LETS_ENCRYPT.to_owned());
                if !ca.starts_with("https://") {
                    anyhow::bail!("the ACME directory must be an https:// URL, not {ca:?}");
                }
                let email = serve
                    .acme_email
                    .clone()
                    .or(file.acme.email)
                    .filter(|e| !e.is_empty());
                if let Some(email) = &email
                    && (!email.contains('@') || email.chars().any(char::is_whitespace))
                {
                    anyhow::bail!("the ACME email {email:?} is not an email address");
                }
                let ca_root = serve.acme_ca_root.clone().or(file.acme.ca_root);
                if let Some(root) = &ca_root
                    && !root.is_file()
                {
                    anyhow::bail!("the ACME CA roots {} are not a file", root.display());
                }
                Some(orchestrator::edge::AcmeConfig {
                    listen,
                    ca,
                    email,
                    ca_root,
                })
            }
        };
        Ok(Self {
            data_dir: cli
                .data_dir
                .clone()
                .or(file.data_dir)
                .unwrap_or_else(default_data_dir),
            database_url: cli
                .database_url
                .clone()
                .or(file.database_url)
                .filter(|u| !u.is_empty()),
            log_format: cli.log_format.or(file.log_format).unwrap_or_default(),
            listen,
            public_url,
            site_root: serve
                .site_root
                .clone()
                .or(file.server.site_root)
                .unwrap_or_else(default_site_root),
            trust_proxy: serve.trust_proxy.or(file.server.trust_proxy).unwrap_or(false),
            edge,
            edge_listen: serve.edge_listen.or(file.edge.listen).unwrap_or_else(|| {
                DEFAULT_EDGE_LISTEN
                    .parse()
                    .expect("the default edge address parses")
            }),
            sites_domain,
            acme,
            namespace: serve.namespace.clone().filter(|n| !n.is_empty()),
            traefik_entrypoints: serve
                .traefik_entrypoints
                .clone()
                .or(file.edge.traefik_entrypoints)
                .unwrap_or_else(|| vec!["web".to_owned()]),
            traefik_cert_resolver: serve
                .traefik_cert_resolver
                .clone()
                .or(file.edge.traefik_cert_resolver),
            terminal_idle: std::time::Duration::from_secs(
                60 * serve
                    .terminal_idle_minutes
                    .or(file.terminal.idle_minutes)
                    .unwrap_or(15)
                    .max(1),
            ),
            ssh_listen: match serve
                .ssh_listen
                .clone()
                .or(file.ssh.listen)
                .unwrap_or_else(|| DEFAULT_SSH_LISTEN.to_owned())
                .trim()
            {
                "off" | "" => None,
                address => Some(address.parse().map_err(|_| {
                    anyhow::anyhow!("the SSH address {address:?} is neither host:port nor off")
                })?),
            },
            dns_server: serve.dns_server.or(file.domains.dns_server),
            sites_per_user: serve
                .sites_per_user
                .or(file.sites.per_user)
                .unwrap_or(DEFAULT_SITES_PER_USER)
                .max(0),
            site_disk_bytes: serve
                .site_disk_mb
                .or(file.sites.disk_mb)
                .unwrap_or(DEFAULT_SITE_DISK_MB)
                .saturating_mul(1 << 20),
            uploads: {
                let mib = |n: u64| n.max(1).saturating_mul(1 << 20);
                let file_bytes = mib(serve.upload_file_mb.or(file.files.upload_file_mb).unwrap_or(256));
                let total_bytes = mib(serve
                    .upload_total_mb
                    .or(file.files.upload_total_mb)
                    .unwrap_or(1024));
                app::api::UploadLimits {
                    file_bytes: file_bytes.min(total_bytes),
                    total_bytes,
                }
            },
            terminal_grace: std::time::Duration::from_secs(
                serve
                    .terminal_grace_seconds
                    .or(file.terminal.grace_seconds)
                    .unwrap_or(60),
            ),
        })
    }

    /// The namespace of Director's Docker objects: none in production.
    pub fn namespace(&self) -> anyhow::Result<orchestrator::Namespace> {
        match &self.namespace {
            Some(prefix) => Ok(orchestrator::Namespace::prefixed(prefix)?),
            None => Ok(orchestrator::Namespace::production()),
        }
    }

    /// What domains of members' own must not be: the manager's host, names under the sites'
    /// domain.
    pub fn domain_rules(&self) -> platform::sites::DomainRules {
        let authority = self
            .public_url
            .split_once("://")
            .map_or(self.public_url.as_str(), |(_, rest)| rest);
        let authority = authority.split(['/', '?', '#']).next().unwrap_or_default();
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => authority.rsplit_once(':').map_or(authority, |(host, _)| host),
        };
        platform::sites::DomainRules {
            manager_host: host.to_ascii_lowercase(),
            sites_domain: self.sites_domain.clone(),
        }
    }

    /// Whether the manager is served over TLS, and so its cookies must be `Secure`.
    pub fn secure_cookies(&self) -> bool {
        self.public_url.starts_with("https://")
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

fn default_data_dir() -> PathBuf {
    if crate::embedded_pg::is_root() {
        return PathBuf::from("/var/lib/director");
    }
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("director")
}

/// scripts/build puts the site in `<target dir>/site`, and the binary in `<target dir>/<profile>/`.
fn default_site_root() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(|target| target.join("site")))
        .filter(|site| site.is_dir())
        .unwrap_or_else(|| PathBuf::from("target/site"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        Cli::parse_from(std::iter::once("director").chain(args.iter().copied()))
    }

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("director.toml");
        std::fs::write(
            &file,
            "data_dir = \"/srv/director\"\n[server]\nlisten = \"0.0.0.0:9000\"\npublic_url = \"https://director.example.org/\"\n",
        )
        .unwrap();
        let config_arg = file.to_str().unwrap();
        let parsed = cli(&["--config", config_arg, "serve", "--listen", "127.0.0.1:7000"]);
        let Command::Serve(serve) = &parsed.command else {
            unreachable!()
        };
        let config = Config::resolve(&parsed, Some(serve)).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:7000");
        assert_eq!(config.data_dir, PathBuf::from("/srv/director"));
        assert_eq!(config.public_url, "https://director.example.org");
        assert!(config.secure_cookies());
    }

    #[test]
    fn unknown_keys_and_bad_urls_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("director.toml");
        std::fs::write(&file, "[server]\nlisen = \"0.0.0.0:9000\"\n").unwrap();
        let parsed = cli(&["--config", file.to_str().unwrap(), "migrate"]);
        let err = Config::resolve(&parsed, None).unwrap_err();
        assert!(format!("{err:#}").contains("lisen"), "{err:#}");

        let parsed = cli(&["serve", "--public-url", "director.example.org"]);
        let Command::Serve(serve) = &parsed.command else {
            unreachable!()
        };
        assert!(Config::resolve(&parsed, Some(serve)).is_err());
    }

    fn serve(args: &[&str]) -> anyhow::Result<Config> {
        let parsed = cli(&[&["serve"], args].concat());
        let Command::Serve(serve) = &parsed.command else {
            unreachable!()
        };
        Config::resolve(&parsed, Some(serve))
    }

    #[test]
    fn https_takes_a_real_domain_and_defaults_to_lets_encrypt() {
        assert!(serve(&[]).unwrap().acme.is_none(), "plain HTTP by default");
        let config = serve(&[
            "--sites-domain",
            "sites.example.org",
            "--https-listen",
            "0.0.0.0:443",
            "--acme-email",
            "admin@example.org",
        ])
        .unwrap();
        let acme = config.acme.unwrap();
        assert_eq!(acme.ca, orchestrator::edge::LETS_ENCRYPT);
        assert_eq!(acme.listen.port(), 443);
        assert_eq!(acme.email.as_deref(), Some("admin@example.org"));

        for (args, why) in [
            (vec!["--https-listen", "0.0.0.0:443"], "real sites domain"),
            (
                vec![
                    "--sites-domain",
                    "s.example.org",
                    "--https-listen",
                    "0.0.0.0:443",
                    "--acme-ca",
                    "http://ca.test/dir",
                ],
                "https:// URL",
            ),
            (
                vec![
                    "--sites-domain",
                    "s.example.org",
                    "--https-listen",
                    "0.0.0.0:443",
                    "--acme-email",
                    "nobody",
                ],
                "not an email address",
            ),
            (
                vec![
                    "--sites-domain",
                    "s.example.org",
                    "--https-listen",
                    "0.0.0.0:443",
                    "--edge",
                    "traefik",
                ],
                "Traefik",
            ),
        ] {
            let err = serve(&args).unwrap_err();
            assert!(format!("{err:#}").contains(why), "{args:?}: {err:#}");
        }
    }
}
