//! `[ssh]` and `[terminal]`: where SSH listens, and how long shells and their containers wait.

use std::{net::SocketAddr, time::Duration};

use clap::Args;
use serde::Deserialize;

/// SSH listens on every address by default: unlike the manager, it has no proxy in front.
pub const DEFAULT_SSH_LISTEN: &str = "0.0.0.0:2222";

/// Flags of these sections.
#[derive(Debug, Args, Default)]
pub struct ShellFlags {
    /// Where SSH and SFTP listen (`ssh -p <port> <site>@host`), or `off`.
    #[arg(long, env = "DIRECTOR_SSH_LISTEN")]
    pub ssh_listen: Option<String>,
    /// Minutes after which a site's terminal container with no shell in it is removed.
    #[arg(long, env = "DIRECTOR_TERMINAL_IDLE_MINUTES")]
    pub terminal_idle_minutes: Option<u64>,
    /// Seconds a browser terminal's shell waits for its browser to reconnect.
    #[arg(long, env = "DIRECTOR_TERMINAL_GRACE_SECONDS")]
    pub terminal_grace_seconds: Option<u64>,
}

/// `[ssh]` in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SshFile {
    listen: Option<String>,
}

/// `[terminal]` in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TerminalFile {
    idle_minutes: Option<u64>,
    grace_seconds: Option<u64>,
}

/// Shells, in the browser and over SSH.
#[derive(Debug, Clone)]
pub struct Shells {
    /// Where SSH listens; None when it is off.
    pub ssh_listen: Option<SocketAddr>,
    /// Terminal containers with no shell for this long are removed.
    pub terminal_idle: Duration,
    /// A dropped browser terminal's shell waits this long for the browser.
    pub terminal_grace: Duration,
}

impl Shells {
    pub(super) fn resolve(flags: &ShellFlags, ssh: SshFile, terminal: TerminalFile) -> anyhow::Result<Self> {
        let ssh_listen =
            match flags
                .ssh_listen
                .clone()
                .or(ssh.listen)
                .unwrap_or_else(|| DEFAULT_SSH_LISTEN.to_owned())
                .trim()
            {
                "off" | "" => None,
                address => Some(address.parse().map_err(|_| {
                    anyhow::anyhow!("the SSH address {address:?} is neither host:port nor off")
                })?),
            };
        let idle_minutes = flags
            .terminal_idle_minutes
            .or(terminal.idle_minutes)
            .unwrap_or(15)
            .max(1);
        Ok(Self {
            ssh_listen,
            terminal_idle: Duration::from_secs(60 * idle_minutes),
            terminal_grace: Duration::from_secs(
                flags
                    .terminal_grace_seconds
                    .or(terminal.grace_seconds)
                    .unwrap_or(60),
            ),
        })
    }
}
