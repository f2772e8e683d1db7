//! The orchestrator's error type.

/// Everything that can go wrong while talking to the engine or the edge router.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Docker engine did not answer at the configured address.
    #[error("no Docker engine answers at {address}: {hint}")]
    EngineUnreachable {
        /// The address that was tried (`DOCKER_HOST` or the default socket).
        address: String,
        /// What the operator can do about it.
        hint: String,
    },
    /// The engine answers but is not a Swarm manager, so it cannot run services.
    #[error(
        "the Docker engine at {address} is not a Swarm manager; run `docker swarm init --advertise-addr 127.0.0.1` on it"
    )]
    NotSwarmManager {
        /// The engine's address.
        address: String,
    },
    /// A name, label or value was refused before it reached Docker.
    #[error("invalid {what}: {message}")]
    Invalid {
        /// What was being checked (e.g. "site name").
        what: &'static str,
        /// Why it is refused.
        message: String,
    },
    /// The image is not on the engine and could not be obtained.
    #[error("image {0} is not available on the engine")]
    ImageMissing(String),
    /// Building an image failed; the message is the builder's.
    #[error("building image {tag} failed: {message}")]
    Build {
        /// The tag that was being built.
        tag: String,
        /// The builder's error.
        message: String,
    },
    /// The engine went away or timed out mid-call: retrying converges (every call is idempotent).
    #[error("the Docker engine did not complete the request (retry): {0}")]
    Transient(String),
    /// The engine refused the request.
    #[error("the Docker engine refused: {0}")]
    Engine(String),
    /// The edge router's admin API did not answer as it should (it may be restarting).
    #[error("the edge router's admin API {0}")]
    EdgeAdmin(String),
    /// A site's disk could not be made, mounted, grown or removed; the message is the tool's.
    #[error("{0}")]
    Disk(String),
    /// The engine has no such object (a service, container or image of that name).
    #[error("{0}")]
    NotFound(String),
    /// Reading a build context or another local file failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Whether retrying the same call may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Transient(_) | Self::EngineUnreachable { .. } | Self::EdgeAdmin(_)
        )
    }

    pub(crate) fn invalid(what: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            what,
            message: message.into(),
        }
    }
}

impl From<bollard::errors::Error> for Error {
    fn from(err: bollard::errors::Error) -> Self {
        use bollard::errors::Error as B;
        match err {
            B::DockerResponseServerError { status_code, message } if status_code >= 500 => {
                Self::Transient(format!("{status_code}: {message}"))
            }
            B::DockerResponseServerError {
                status_code: 404,
                message,
            } => Self::NotFound(message),
            B::DockerResponseServerError { message, .. } => Self::Engine(message),
            B::RequestTimeoutError
            | B::HyperResponseError { .. }
            | B::IOError { .. }
            | B::HyperLegacyError { .. } => Self::Transient(err.to_string()),
            other => Self::Engine(other.to_string()),
        }
    }
}

/// The orchestrator's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether a bollard error is the engine's "no such object".
pub(crate) fn is_not_found(err: &bollard::errors::Error) -> bool {
    matches!(
        err,
        bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }
    )
}
