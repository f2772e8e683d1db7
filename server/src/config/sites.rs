//! `[sites]`, `[files]` and `[domains]`: what members get — sites, disk, uploads — and where
//! their domains are verified.

use std::net::SocketAddr;

use clap::Args;
use platform::sites::{DatabaseKind, ExternalServer};
use serde::Deserialize;

/// Sites a member may belong to unless an admin gives them another quota.
pub const DEFAULT_SITES_PER_USER: i64 = 10;
/// MiB a site's files may take.
pub const DEFAULT_SITE_DISK_MB: u64 = 2048;

/// Flags of these sections.
#[derive(Debug, Args, Default)]
pub struct SiteFlags {
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
    /// The most connections a site's database role may hold at once (1-400).
    #[arg(long, env = "DIRECTOR_DATABASE_CONNECTIONS")]
    pub database_connections: Option<u32>,
    /// The memory each database server (PostgreSQL, MariaDB) may use, in MiB (at least 128).
    #[arg(long, env = "DIRECTOR_DATABASE_SERVER_MEMORY_MB")]
    pub database_server_memory_mb: Option<u64>,
    /// A site's database past this size, in MiB, is marked on the administrators' page.
    #[arg(long, env = "DIRECTOR_DATABASE_SIZE_WARNING_MB")]
    pub database_size_warning_mb: Option<u64>,
    /// An existing PostgreSQL server for sites' databases, instead of Director's own:
    /// `postgresql://admin:password@host:5432/postgres`, reachable from this machine and the
    /// sites' containers (prefer the variable or the file: a flag shows in `ps`).
    #[arg(long, env = "DIRECTOR_SITE_POSTGRES_URL", hide_env_values = true)]
    pub site_postgres_url: Option<SecretUrl>,
    /// An existing MySQL or MariaDB server for sites' databases, instead of Director's own:
    /// `mysql://admin:password@host:3306`.
    #[arg(long, env = "DIRECTOR_SITE_MYSQL_URL", hide_env_values = true)]
    pub site_mysql_url: Option<SecretUrl>,
}

/// A URL with a password in it, which `Debug` (the configuration printed, a panic) never shows.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct SecretUrl(String);

impl std::str::FromStr for SecretUrl {
    type Err = std::convert::Infallible;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        Ok(Self(url.to_owned()))
    }
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretUrl(…)")
    }
}

/// `[databases]` in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DatabasesFile {
    connections: Option<u32>,
    server_memory_mb: Option<u64>,
    size_warning_mb: Option<u64>,
    postgres_url: Option<SecretUrl>,
    mysql_url: Option<SecretUrl>,
}

/// `[sites]` in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SitesFile {
    per_user: Option<i64>,
    disk_mb: Option<u64>,
}

/// `[files]` in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FilesFile {
    upload_file_mb: Option<u64>,
    upload_total_mb: Option<u64>,
}

/// `[domains]` in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DomainsFile {
    dns_server: Option<SocketAddr>,
}

/// What members get.
#[derive(Debug, Clone)]
pub struct Sites {
    /// The most sites a member may belong to, unless an admin set theirs.
    pub per_user: i64,
    /// The disk a site's files may take, in bytes.
    pub disk_bytes: u64,
    /// What the file manager's uploads may carry.
    pub uploads: app::api::UploadLimits,
    /// Where domain verification looks TXT records up; None: the system's resolver.
    pub dns_server: Option<SocketAddr>,
    /// The most connections a site's database role may hold.
    pub database_connections: u32,
    /// Each database server's memory, in bytes.
    pub database_server_memory_bytes: u64,
    /// A site's database past this size, in bytes, is marked for the administrators.
    pub database_size_warning_bytes: u64,
    /// The operator's PostgreSQL server for sites' databases, if given.
    pub site_postgres: Option<ExternalServer>,
    /// The operator's MySQL server for sites' databases, if given.
    pub site_mysql: Option<ExternalServer>,
}

impl Sites {
    pub(super) fn resolve(
        flags: &SiteFlags,
        sites: SitesFile,
        files: FilesFile,
        domains: DomainsFile,
        databases: DatabasesFile,
    ) -> anyhow::Result<Self> {
        let mib = |n: u64| n.max(1).saturating_mul(1 << 20);
        let file_bytes = mib(flags.upload_file_mb.or(files.upload_file_mb).unwrap_or(256));
        let total_bytes = mib(flags.upload_total_mb.or(files.upload_total_mb).unwrap_or(1024));
        let external = |kind: DatabaseKind, url: Option<&SecretUrl>, name: &str| {
            url.map(|url| {
                ExternalServer::parse(kind, &url.0)
                    .map_err(|why| anyhow::anyhow!("{name} is not a {} server's URL: {why}", kind.label()))
            })
            .transpose()
        };
        Ok(Self {
            site_postgres: external(
                DatabaseKind::Postgresql,
                flags
                    .site_postgres_url
                    .as_ref()
                    .or(databases.postgres_url.as_ref()),
                "the site PostgreSQL URL",
            )?,
            site_mysql: external(
                DatabaseKind::Mysql,
                flags.site_mysql_url.as_ref().or(databases.mysql_url.as_ref()),
                "the site MySQL URL",
            )?,
            per_user: flags
                .sites_per_user
                .or(sites.per_user)
                .unwrap_or(DEFAULT_SITES_PER_USER)
                .max(0),
            disk_bytes: flags
                .site_disk_mb
                .or(sites.disk_mb)
                .unwrap_or(DEFAULT_SITE_DISK_MB)
                .saturating_mul(1 << 20),
            uploads: app::api::UploadLimits {
                file_bytes: file_bytes.min(total_bytes),
                total_bytes,
            },
            dns_server: flags.dns_server.or(domains.dns_server),
            // The servers take 500 connections: a role never gets them all.
            database_connections: flags
                .database_connections
                .or(databases.connections)
                .unwrap_or(20)
                .clamp(1, 400),
            database_server_memory_bytes: flags
                .database_server_memory_mb
                .or(databases.server_memory_mb)
                .unwrap_or(512)
                .max(128)
                .saturating_mul(1 << 20),
            database_size_warning_bytes: mib(flags
                .database_size_warning_mb
                .or(databases.size_warning_mb)
                .unwrap_or(1024)),
        })
    }
}
