//! The shell: SSH and SFTP on `russh`.
//!
//! A member connects with `ssh -p 2222 <site>@<director host>`: the key picks the user (through
//! the platform), the login name picks the site; only members and admins of the site get past
//! authentication — to anyone else the site does not exist. The shell or command runs through
//! [`platform::Platform::open_shell`], the same path as the browser terminal, in the site's
//! terminal container. Logging in with one's own username (or `sites`) lists one's sites. The
//! `sftp` subsystem works on the site's directory itself (see `sftp.rs`), as the site's uid.
//!
//! Invariants:
//! - Public keys only; password authentication is never offered.
//! - Failed authentications are counted per client address; past the limit, an address is
//!   refused without a lookup for the rest of the window. Each failure is logged.
//! - The handler stays thin: it names the actor and the site, and calls the platform.

mod handler;
mod hostkeys;
mod limiter;
mod sftp;

use std::{net::SocketAddr, sync::Arc, time::Duration};

pub use hostkeys::{HostKeys, host_keys};
use platform::Platform;
use tokio::sync::watch;

/// Everything that can go wrong while serving an SSH connection.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The platform refused or failed the request.
    #[error(transparent)]
    Platform(#[from] platform::Error),
    /// The SSH protocol failed.
    #[error(transparent)]
    Ssh(#[from] russh::Error),
    /// Reading or writing the host keys failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A host key could not be read or made.
    #[error("host key: {0}")]
    HostKey(String),
}

/// The shell's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How the SSH server behaves.
#[derive(Debug, Clone)]
pub struct SshSettings {
    /// A connection with nothing happening for this long is closed.
    pub idle: Duration,
    /// Failed authentications from one address within [`SshSettings::failure_window`] before
    /// it is refused outright.
    pub max_failures: u32,
    /// The window failures are counted over.
    pub failure_window: Duration,
    /// The port users are told to connect to (in the site list).
    pub public_port: u16,
    /// A connection not authenticated this long after it opened is closed (sshd's
    /// LoginGraceTime): a client that stalls mid-handshake holds nothing for long.
    pub login_grace: Duration,
}

impl Default for SshSettings {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(30 * 60),
            max_failures: 20,
            failure_window: Duration::from_secs(10 * 60),
            public_port: 2222,
            login_grace: Duration::from_secs(30),
        }
    }
}

/// Serves SSH on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: tokio::net::TcpListener,
    keys: HostKeys,
    platform: Platform,
    settings: SshSettings,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let config = russh::server::Config {
        server_id: russh::SshId::Standard("SSH-2.0-Director".into()),
        methods: russh::MethodSet::from(&[russh::MethodKind::PublicKey][..]),
        auth_rejection_time: Duration::from_millis(500),
        // OpenSSH first asks with "none" to learn the methods: no need to wait on that.
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: keys.keys,
        inactivity_timeout: Some(settings.idle),
        keepalive_interval: Some(Duration::from_secs(30)),
        max_auth_attempts: 6,
        nodelay: true,
        ..Default::default()
    };
    let config = Arc::new(config);
    let mut server = handler::Server {
        platform,
        limiter: limiter::Limiter::new(settings.max_failures, settings.failure_window),
        public_port: settings.public_port,
    };
    loop {
        let (socket, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "accepting an SSH connection failed");
                    continue;
                }
            },
            _ = shutdown.changed() => return Ok(()),
        };
        let authenticated = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let handler = server.connection(peer, authenticated.clone());
        let (config, grace) = (config.clone(), settings.login_grace);
        // A second descriptor of the socket, to cut the connection from outside the session
        // (a disconnect message would wait behind a key exchange the client never finishes).
        let (socket, cut) = match socket.into_std().and_then(|s| {
            let cut = s.try_clone()?;
            Ok((tokio::net::TcpStream::from_std(s)?, cut))
        }) {
            Ok(pair) => pair,
            Err(err) => {
                tracing::warn!(%peer, error = %err, "preparing an SSH connection failed");
                continue;
            }
        };
        tokio::spawn(async move {
            let _ = socket.set_nodelay(true);
            let session =
                match tokio::time::timeout(grace, russh::server::run_stream(config, socket, handler)).await {
                    Ok(Ok(session)) => session,
                    Ok(Err(err)) => {
                        tracing::debug!(%peer, error = %err, "SSH connection setup failed");
                        return;
                    }
                    Err(_) => {
                        tracing::info!(%peer, "SSH client sent no identification in time; closed");
                        return;
                    }
                };
            let watchdog = tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                if !authenticated.load(std::sync::atomic::Ordering::Acquire) {
                    tracing::info!(%peer, "SSH login grace time over; closed");
                    let _ = cut.shutdown(std::net::Shutdown::Both);
                }
            });
            if let Err(err) = session.await {
                tracing::debug!(%peer, error = %err, "SSH session ended with an error");
            }
            watchdog.abort();
        });
    }
}

/// Where the server listens, for logs.
pub fn describe(listen: SocketAddr) -> String {
    format!("ssh -p {} <site>@{}", listen.port(), listen.ip())
}
