//! `[smtp]`: the mail server notifications are emailed through (none: no emails; the inbox
//! still works).

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Args;
use platform::notify::SmtpSettings;
use serde::Deserialize;

/// The environment variable that may hold the mail server's password instead of a file (never
/// a flag: a command line is visible to every user of the machine).
const PASSWORD_ENV: &str = "DIRECTOR_SMTP_PASSWORD";

/// Flags of the mail server.
#[derive(Debug, Args, Default)]
pub struct SmtpFlags {
    /// The mail server: smtp://host:587 (STARTTLS required; ?tls=opportunistic uses it only
    /// when offered, refused with an account unless the server is on this machine) or
    /// smtps://host:465 (TLS from the start).
    #[arg(long, env = "DIRECTOR_SMTP_URL")]
    pub smtp_url: Option<String>,
    /// The account to sign in to it with.
    #[arg(long, env = "DIRECTOR_SMTP_USERNAME")]
    pub smtp_username: Option<String>,
    /// A file holding that account's password (or DIRECTOR_SMTP_PASSWORD).
    #[arg(long, env = "DIRECTOR_SMTP_PASSWORD_FILE")]
    pub smtp_password_file: Option<PathBuf>,
    /// The sender of Director's emails, `Name <address>`.
    #[arg(long, env = "DIRECTOR_SMTP_FROM")]
    pub smtp_from: Option<String>,
}

/// The `[smtp]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SmtpFile {
    url: Option<String>,
    username: Option<String>,
    password_file: Option<PathBuf>,
    from: Option<String>,
}

/// The mail server, when one is given; `manager_host` names the default sender.
pub(super) fn resolve(
    flags: &SmtpFlags,
    file: SmtpFile,
    manager_host: &str,
) -> anyhow::Result<Option<SmtpSettings>> {
    let Some(url) = flags.smtp_url.clone().or(file.url).filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    let mut parsed = url::Url::parse(&url).context("--smtp-url is not a URL")?;
    if !matches!(parsed.scheme(), "smtp" | "smtps") {
        bail!("--smtp-url starts with smtp:// or smtps://");
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        bail!("--smtp-url holds no account: give it with --smtp-username and --smtp-password-file");
    }
    let username = flags.smtp_username.clone().or(file.username);
    let password = match flags.smtp_password_file.clone().or(file.password_file) {
        Some(path) => Some(
            std::fs::read_to_string(&path)
                .with_context(|| format!("reading the mail server's password from {}", path.display()))?
                .trim()
                .to_owned(),
        ),
        None => std::env::var(PASSWORD_ENV).ok(),
    };
    if username.is_some() != password.is_some() {
        bail!("the mail server's account needs both a username and a password");
    }
    // Plain SMTP is encrypted with STARTTLS, required: otherwise anyone on the way could strip
    // it and read the account's password. Only a server on this machine is reached without it.
    let loopback = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        // smtp:// is no scheme the URL standard knows: its addresses stay names.
        Some(url::Host::Domain(name)) => {
            name == "localhost"
                || name
                    .trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        None => false,
    };
    if parsed.scheme() == "smtp" {
        let tls = parsed
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        match tls.as_deref() {
            None => {
                let mode = if loopback { "opportunistic" } else { "required" };
                parsed.query_pairs_mut().append_pair("tls", mode);
            }
            Some("required") => {}
            Some("opportunistic") if username.is_none() || loopback => {}
            Some("opportunistic") => {
                bail!(
                    "--smtp-url with ?tls=opportunistic would send the account's password unencrypted to a server that does not offer STARTTLS: leave tls out (required)"
                )
            }
            Some(other) => bail!("--smtp-url: tls is required or opportunistic, not {other:?}"),
        }
    }
    let url = parsed.to_string();
    platform::notify::check_smtp_url(&url).context("--smtp-url")?;
    let host = if manager_host.is_empty() {
        "localhost"
    } else {
        manager_host
    };
    let from = flags
        .smtp_from
        .clone()
        .or(file.from)
        .unwrap_or_else(|| format!("Director <director@{host}>"));
    platform::notify::check_sender(&from).with_context(|| format!("--smtp-from {from:?}"))?;
    Ok(Some(SmtpSettings {
        url,
        username,
        password,
        from,
    }))
}
