//! The shell: SSH and SFTP on `russh`.
//!
//! A member connects with `ssh <site>@<director host>`; the shell authenticates the public key
//! through the platform (the one place permissions are checked) and execs a shell, or the SFTP
//! subsystem, in the site's terminal container through the orchestrator — the same container the
//! browser terminal uses. The server itself is built in its own issue; this crate fixes its place
//! in the workspace and its error type.

/// Everything that can go wrong while serving an SSH connection.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The platform refused or failed the request.
    #[error(transparent)]
    Platform(#[from] platform::Error),
    /// The orchestrator failed to reach the terminal container.
    #[error(transparent)]
    Orchestrator(#[from] orchestrator::Error),
}

/// The shell's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
