//! Configuration: command-line flags, `DIRECTOR_*` environment variables and an optional TOML
//! file, in that order of precedence, over embedded defaults.
//!
//! Each section (its flags, its table in the file, what it resolves to and how) is a module of
//! its own; this one only gathers them. A new section is a new module and a field in each of
//! `ServeArgs`, `FileConfig` and `Config`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;

mod acme;
mod edge;
mod oidc;
mod server;
mod shells;
mod sites;
mod smtp;
mod webhooks;

pub use edge::{DEFAULT_EDGE_LISTEN, Edge, EdgeDriver};
pub use server::{DEFAULT_LISTEN, Server};
pub use shells::{DEFAULT_SSH_LISTEN, Shells};
pub use sites::{DEFAULT_SITE_DISK_MB, DEFAULT_SITES_PER_USER, Sites};

/// Director: self-hosted websites for an organisation's members.
#[derive(Debug, Parser)]
#[command(name = "director", version, about, long_about = None)]
pub struct Cli {
    /// A TOML configuration file (keys as in the README's Configuration table).
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
    /// Client commands: print the API's JSON rather than words for people.
    #[arg(long, global = true)]
    pub json: bool,
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
    /// Prints shell completions for `director` (bash, zsh, fish, …).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    #[command(flatten)]
    Client(crate::client::ClientCommand),
}

/// Flags of `director serve`, section by section.
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    #[command(flatten)]
    pub server: server::ServerFlags,
    #[command(flatten)]
    pub edge: edge::EdgeFlags,
    #[command(flatten)]
    pub acme: acme::AcmeFlags,
    #[command(flatten)]
    pub shells: shells::ShellFlags,
    #[command(flatten)]
    pub sites: sites::SiteFlags,
    #[command(flatten)]
    pub oidc: oidc::OidcFlags,
    #[command(flatten)]
    pub smtp: smtp::SmtpFlags,
    #[command(flatten)]
    pub webhooks: webhooks::WebhookFlags,
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

/// The TOML file: top-level keys, then a table per section; every key is optional, and a key
/// the file should not have is refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    log_format: Option<LogFormat>,
    #[serde(default)]
    server: server::File,
    #[serde(default)]
    edge: edge::File,
    #[serde(default)]
    acme: acme::File,
    #[serde(default)]
    ssh: shells::SshFile,
    #[serde(default)]
    terminal: shells::TerminalFile,
    #[serde(default)]
    sites: sites::SitesFile,
    #[serde(default)]
    files: sites::FilesFile,
    #[serde(default)]
    domains: sites::DomainsFile,
    #[serde(default)]
    databases: sites::DatabasesFile,
    #[serde(default)]
    oidc: Vec<oidc::OidcFile>,
    local_login: Option<oidc::LocalLoginFlag>,
    #[serde(default)]
    smtp: smtp::SmtpFile,
    #[serde(default)]
    webhooks: webhooks::WebhooksFile,
}

/// The resolved configuration, section by section.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub log_format: LogFormat,
    pub server: Server,
    pub edge: Edge,
    /// HTTPS for the sites (Caddy's on-demand ACME); None: plain HTTP.
    pub acme: Option<orchestrator::edge::AcmeConfig>,
    pub shells: Shells,
    pub sites: Sites,
    /// The identity providers people may sign in with.
    pub oidc: Vec<platform::oidc::OidcProvider>,
    /// Whether people may sign in with Director's own passwords.
    pub local_login: platform::oidc::LocalLogin,
    /// The mail server notifications are emailed through.
    pub smtp: Option<platform::notify::SmtpSettings>,
    /// Address ranges webhooks may reach although they are refused by default.
    pub webhook_allow: Vec<ipnet::IpNet>,
}

impl Config {
    /// Merges flags and environment (already in `cli`), the file, and the defaults; each
    /// section resolves its own keys.
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
        let flags = serve.unwrap_or(&default_serve);
        let https_listen = file.edge.https_listen;
        let edge = Edge::resolve(&flags.edge, file.edge)?;
        let providers = oidc::resolve(&flags.oidc, file.oidc)?;
        let server = Server::resolve(&flags.server, file.server)?;
        let smtp = smtp::resolve(&flags.smtp, file.smtp, &server.manager_host())?;
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
            server,
            acme: acme::resolve(&flags.acme, file.acme, https_listen, &edge)?,
            edge,
            shells: Shells::resolve(&flags.shells, file.ssh, file.terminal)?,
            sites: Sites::resolve(&flags.sites, file.sites, file.files, file.domains, file.databases)?,
            local_login: oidc::local_login(&flags.oidc, file.local_login, &providers)?,
            oidc: providers,
            smtp,
            webhook_allow: webhooks::resolve(&flags.webhooks, file.webhooks)?,
        })
    }
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
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:7000");
        assert_eq!(config.data_dir, PathBuf::from("/srv/director"));
        assert_eq!(config.server.public_url, "https://director.example.org");
        assert!(config.server.secure_cookies());
    }

    #[test]
    fn database_limits_come_from_flags_or_the_file_within_what_the_servers_take() {
        let defaults = serve(&[]).unwrap().sites;
        assert_eq!(
            (
                defaults.database_connections,
                defaults.database_server_memory_bytes
            ),
            (20, 512 << 20)
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("director.toml");
        std::fs::write(
            &file,
            "[databases]\nconnections = 5000\nserver_memory_mb = 1024\nsize_warning_mb = 300\n",
        )
        .unwrap();
        let parsed = cli(&[
            "--config",
            file.to_str().unwrap(),
            "serve",
            "--database-server-memory-mb",
            "64",
        ]);
        let Command::Serve(serve) = &parsed.command else {
            unreachable!()
        };
        let sites = Config::resolve(&parsed, Some(serve)).unwrap().sites;
        assert_eq!(
            sites.database_connections, 400,
            "never more than the servers keep for sites"
        );
        assert_eq!(
            sites.database_server_memory_bytes,
            128 << 20,
            "the flag, raised to the least a server needs"
        );
        assert_eq!(sites.database_size_warning_bytes, 300 << 20, "from the file");
        assert_eq!(defaults.database_size_warning_bytes, 1 << 30);
    }

    #[test]
    fn an_operators_database_servers_come_from_the_file_or_flags_and_a_bad_url_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("director.toml");
        std::fs::write(
            &file,
            "[databases]\npostgres_url = \"postgresql://admin:pw@db.example.org/\"\n",
        )
        .unwrap();
        let parsed = cli(&[
            "--config",
            file.to_str().unwrap(),
            "serve",
            "--site-mysql-url",
            "mysql://root:pw@10.0.0.5",
        ]);
        let Command::Serve(flags) = &parsed.command else {
            unreachable!()
        };
        let sites = Config::resolve(&parsed, Some(flags)).unwrap().sites;
        let postgres = sites.site_postgres.unwrap();
        assert_eq!((postgres.host.as_str(), postgres.port), ("db.example.org", 5432));
        let mysql = sites.site_mysql.unwrap();
        assert_eq!((mysql.host.as_str(), mysql.port), ("10.0.0.5", 3306));
        let err = serve(&["--site-postgres-url", "mysql://root:pw@host"]).unwrap_err();
        assert!(
            format!("{err:#}").contains("starts with postgresql://"),
            "{err:#}"
        );
        assert!(serve(&[]).unwrap().sites.site_postgres.is_none());
        // Passwords off with no provider would leave nobody a way in.
        let err = serve(&["--local-login", "off"]).unwrap_err();
        assert!(
            format!("{err:#}").contains("needs an identity provider"),
            "{err:#}"
        );
        // The password is in no printed configuration.
        assert!(!format!("{parsed:?}").contains("pw@"), "{parsed:?}");
    }

    #[test]
    fn identity_providers_come_from_tables_or_flags_with_their_secret_roles_and_authority() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "s3cret\n").unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate").unwrap();
        let file = dir.path().join("director.toml");
        std::fs::write(
            &file,
            format!(
                "[[oidc]]\nid = \"school\"\nname = \"School\"\nissuer = \"https://id.school.example\"\nclient_id = \"director\"\nclient_secret_file = {secret:?}\nadmin_groups = [\"it\"]\napprover_groups = [\"teachers\"]\n"
            ),
        )
        .unwrap();
        let parsed = cli(&["--config", file.to_str().unwrap(), "serve"]);
        let Command::Serve(flags) = &parsed.command else {
            unreachable!()
        };
        let config = Config::resolve(&parsed, Some(flags)).unwrap();
        let school = &config.oidc[0];
        assert_eq!(
            (school.id.as_str(), school.client_secret.as_str()),
            ("school", "s3cret")
        );
        assert_eq!(
            (school.admin_groups.clone(), school.approver_groups.clone()),
            (vec!["it".to_owned()], vec!["teachers".to_owned()])
        );
        // A private authority's file that holds no certificate is refused at start, not at a sign-in.
        let err = serve(&[
            "--oidc-issuer",
            "https://id.example",
            "--oidc-client-id",
            "d",
            "--oidc-client-secret-file",
            secret.to_str().unwrap(),
            "--oidc-ca-file",
            ca.to_str().unwrap(),
        ])
        .unwrap_err();
        assert!(format!("{err:#}").contains("PEM"), "{err:#}");
        // Plain HTTP only on this machine.
        let err = serve(&[
            "--oidc-issuer",
            "http://id.example",
            "--oidc-client-id",
            "d",
            "--oidc-client-secret-file",
            secret.to_str().unwrap(),
        ])
        .unwrap_err();
        assert!(format!("{err:#}").contains("https://"), "{err:#}");
    }

    #[test]
    fn webhook_exceptions_are_address_ranges() {
        assert!(serve(&[]).unwrap().webhook_allow.is_empty());
        let allowed = serve(&["--webhook-allow", "127.0.0.1,10.9.0.0/16"])
            .unwrap()
            .webhook_allow;
        assert_eq!(
            allowed,
            vec!["127.0.0.1/32".parse().unwrap(), "10.9.0.0/16".parse().unwrap()]
        );
        let err = serve(&["--webhook-allow", "localhost"]).unwrap_err();
        assert!(format!("{err:#}").contains("not an address range"), "{err:#}");
    }

    #[test]
    fn a_mail_server_is_a_smtp_url_without_an_account_in_it_and_a_sender() {
        assert!(serve(&[]).unwrap().smtp.is_none());
        let smtp = serve(&[
            "--smtp-url",
            "smtp://mail.example.org:587",
            "--public-url",
            "https://director.example.org",
        ])
        .unwrap()
        .smtp
        .unwrap();
        assert_eq!(smtp.from, "Director <director@director.example.org>");
        assert!(smtp.username.is_none());
        assert_eq!(
            smtp.url, "smtp://mail.example.org:587?tls=required",
            "STARTTLS is required"
        );
        let local = serve(&["--smtp-url", "smtp://127.0.0.1:2525"])
            .unwrap()
            .smtp
            .unwrap();
        assert_eq!(local.url, "smtp://127.0.0.1:2525?tls=opportunistic");
        for (url, says) in [
            ("http://mail.example.org", "smtp://"),
            ("smtp://me:secret@mail.example.org", "holds no account"),
            ("smtp://mail.example.org?tls=requried", "not \"requried\""),
        ] {
            let err = serve(&["--smtp-url", url]).unwrap_err();
            assert!(format!("{err:#}").contains(says), "{url}: {err:#}");
        }
        let dir = tempfile::tempdir().unwrap();
        let password = dir.path().join("password");
        std::fs::write(&password, "secret").unwrap();
        let err = serve(&[
            "--smtp-url",
            "smtp://mail.example.org?tls=opportunistic",
            "--smtp-username",
            "director",
            "--smtp-password-file",
            password.to_str().unwrap(),
        ])
        .unwrap_err();
        assert!(format!("{err:#}").contains("unencrypted"), "{err:#}");
        let err = serve(&[
            "--smtp-url",
            "smtp://mail.example.org",
            "--smtp-username",
            "director",
        ])
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("both a username and a password"),
            "{err:#}"
        );
        let err = serve(&[
            "--smtp-url",
            "smtp://mail.example.org",
            "--smtp-from",
            "not an address",
        ])
        .unwrap_err();
        assert!(format!("{err:#}").contains("smtp-from"), "{err:#}");
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
