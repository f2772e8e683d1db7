//! The orchestrator: the only code in Director that speaks to the Docker engine and to the
//! edge router.
//!
//! It takes specifications (a site's service, its terminal container, its routes) and returns
//! observed state. It knows nothing of users, permissions or the database: the platform decides
//! *what* should run, the orchestrator makes it so and reports back.
//!
//! The Docker driver (services, images, terminal containers, exec, logs, events) and the edge
//! drivers (`edge::caddy`, `edge::traefik`) are built in their own issues; until then this crate
//! only defines its error type so that the crates above it can name it.

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
}

/// The orchestrator's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
