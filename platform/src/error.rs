//! The platform's error type. Every door (server functions, REST, websocket, SSH) maps it to its
//! own vocabulary; `Unavailable` and `Internal` carry their cause for the log, never for the user.

use std::error::Error as StdError;

type Cause = Box<dyn StdError + Send + Sync>;

/// Everything a platform call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller is not signed in.
    #[error("sign in to continue")]
    Unauthenticated,
    /// The caller is signed in but may not do this.
    #[error("you do not have permission to do that")]
    Forbidden,
    /// The caller's role would allow this, but the token they came with does not: why, in
    /// words (its scope, the sites it is limited to).
    #[error("{0}")]
    TokenRefused(&'static str),
    /// The thing asked for does not exist (or the caller may not know that it does).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A field of the request is not acceptable; `message` is meant for the user.
    #[error("{message}")]
    Invalid {
        /// The name of the offending field, as the form calls it.
        field: &'static str,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The request clashes with the current state (a taken username, the last admin…).
    #[error("{0}")]
    Conflict(String),
    /// Something is larger than allowed (an upload over its limit, a disk without room for it);
    /// the message says which limit.
    #[error("{0}")]
    TooLarge(String),
    /// The site's files take all the disk they may; the message says how much.
    #[error("{0}")]
    DiskFull(String),
    /// Unknown user, wrong password or deactivated account: one message for all three.
    #[error("wrong username or password")]
    BadCredentials,
    /// Too many failed sign-ins for this account or address.
    #[error("too many failed sign-in attempts; try again in {} minute(s)", retry_after_secs.div_ceil(60))]
    RateLimited {
        /// How long until an attempt may succeed again.
        retry_after_secs: u64,
    },
    /// Docker (the engine sites run on) is not connected; the message says what waits for it.
    /// The request may succeed later.
    #[error("{0}")]
    EngineUnavailable(String),
    /// A sign-in through an identity provider was refused (a forged or used `state`, a token
    /// that fails its checks, a person without an account): why.
    #[error("{}", .0.message())]
    SignInRefused(model::account::SignInRefusal),
    /// An identity provider did not answer; the request may succeed later.
    #[error("{0}")]
    ProviderUnavailable(String),
    /// The database cannot be reached; the request may succeed later.
    #[error("the database is unavailable")]
    Unavailable(#[source] Cause),
    /// A bug or an unexpected failure; details go to the log only.
    #[error("internal error")]
    Internal(#[source] Cause),
}

/// The platform's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }

    pub(crate) fn internal(cause: impl Into<Cause>) -> Self {
        Self::Internal(cause.into())
    }
}

/// The engine or the edge failing: a failure that may pass (Docker or Caddy not answering) is
/// 503 with what to do; anything else is a fault whose details go to the log.
impl From<orchestrator::Error> for Error {
    fn from(err: orchestrator::Error) -> Self {
        if err.is_retryable() {
            tracing::warn!(error = %err, "the engine or the edge did not answer");
            Self::EngineUnavailable("Docker or the edge router did not answer in time; try again.".to_owned())
        } else {
            Self::internal(err)
        }
    }
}

impl From<diesel::result::Error> for Error {
    fn from(err: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error as D};
        match err {
            D::NotFound => Self::NotFound("record"),
            // A connection that died under a query looks like this; it is the database going
            // away, not a bug, so the caller gets a retryable answer.
            D::DatabaseError(DatabaseErrorKind::ClosedConnection, _) | D::BrokenTransactionManager => {
                Self::Unavailable(Box::new(err))
            }
            D::DatabaseError(DatabaseErrorKind::Unknown, ref info)
                if info.message().contains("connection") =>
            {
                Self::Unavailable(Box::new(err))
            }
            other => Self::Internal(Box::new(other)),
        }
    }
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for Error {
    fn from(err: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        Self::Unavailable(Box::new(err))
    }
}
