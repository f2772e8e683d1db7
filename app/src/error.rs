//! `AppError`: the one error every server function returns. It is what the browser sees, so its
//! messages are written for people and never carry internal details; the server maps it to an
//! HTTP status with [`AppError::status`].

use leptos::server_fn::{
    codec::JsonEncoding,
    error::{FromServerFnError, ServerFnErrorErr},
};
use serde::{Deserialize, Serialize};

/// What went wrong, as the user should hear it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    /// Not signed in.
    #[error("Sign in to continue.")]
    Unauthenticated,
    /// Signed in, but not allowed.
    #[error("You do not have permission to do that.")]
    Forbidden,
    /// The role would allow it, but the token the request came with does not; why.
    #[error("{0}")]
    TokenRefused(String),
    /// Too many requests in a short time (the REST API's limit per token).
    #[error("Too many requests: wait {seconds} s before the next.")]
    Throttled {
        /// Seconds until a request may pass again.
        seconds: u64,
    },
    /// No such thing (or not one the caller may know of).
    #[error("That page or object does not exist.")]
    NotFound,
    /// A form field is wrong; `field` names it so the form can show the message beside it.
    #[error("{message}")]
    Invalid {
        /// The form field's name.
        field: String,
        /// What to fix.
        message: String,
    },
    /// The request clashes with the current state.
    #[error("{0}")]
    Conflict(String),
    /// Larger than a limit allows (an upload); the message names the limit.
    #[error("{0}")]
    TooLarge(String),
    /// The site's files take all the disk they may.
    #[error("{0}")]
    DiskFull(String),
    /// Unknown user, wrong password or deactivated account.
    #[error("Wrong username or password.")]
    BadCredentials,
    /// Too many failed sign-ins.
    #[error("Too many failed sign-in attempts. Try again in {minutes} minute(s).")]
    RateLimited {
        /// Minutes until the next attempt may succeed.
        minutes: u64,
    },
    /// The request could not be decoded (bad encoding, missing field, malformed body).
    #[error("The request could not be read. Reload the page and try again.")]
    BadRequest,
    /// The browser could not reach the server.
    #[error("Director could not be reached. Check your connection and try again.")]
    Offline,
    /// Docker is not connected; the message says what waits for it.
    #[error("{0}")]
    EngineUnavailable(String),
    /// A sign-in through an identity provider was refused; the message says why.
    #[error("{0}")]
    SignInRefused(String),
    /// The database (or another dependency) is down; try again later.
    #[error("Director is temporarily unavailable. Try again in a moment.")]
    Unavailable,
    /// A bug; the details are in the server's log under `reference`.
    #[error("Something went wrong on our side. It has been logged as {reference}.")]
    Internal {
        /// An id to find the log line by.
        reference: String,
    },
}

impl AppError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            Self::Unauthenticated => 401,
            Self::Forbidden | Self::SignInRefused(_) | Self::TokenRefused(_) => 403,
            Self::NotFound => 404,
            Self::Invalid { .. } | Self::BadRequest => 400,
            Self::Conflict(_) => 409,
            Self::TooLarge(_) => 413,
            Self::DiskFull(_) => 507,
            Self::BadCredentials => 401,
            Self::RateLimited { .. } | Self::Throttled { .. } => 429,
            Self::Offline => 502,
            Self::Unavailable | Self::EngineUnavailable(_) => 503,
            Self::Internal { .. } => 500,
        }
    }

    /// A stable name for the kind of error: the REST API's problem `type` ends with it, so that
    /// scripts can tell errors apart without reading their words.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::TokenRefused(_) => "token-refused",
            Self::Throttled { .. } => "throttled",
            Self::NotFound => "not-found",
            Self::Invalid { .. } => "invalid",
            Self::Conflict(_) => "conflict",
            Self::TooLarge(_) => "too-large",
            Self::DiskFull(_) => "disk-full",
            Self::BadCredentials => "bad-credentials",
            Self::RateLimited { .. } => "rate-limited",
            Self::BadRequest => "bad-request",
            Self::Offline => "offline",
            Self::EngineUnavailable(_) => "engine-unavailable",
            Self::SignInRefused(_) => "sign-in-refused",
            Self::Unavailable => "unavailable",
            Self::Internal { .. } => "internal",
        }
    }

    /// The message for `field`, when this error is about that form field.
    pub fn for_field(&self, name: &str) -> Option<String> {
        match self {
            Self::Invalid { field, message } if field == name => Some(message.clone()),
            _ => None,
        }
    }

    /// Whether the error concerns one form field (shown beside it rather than above the form).
    pub fn is_field_error(&self) -> bool {
        matches!(self, Self::Invalid { .. })
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        let err = match value {
            ServerFnErrorErr::Request(_) => Self::Offline,
            ServerFnErrorErr::Args(_)
            | ServerFnErrorErr::MissingArg(_)
            | ServerFnErrorErr::Deserialization(_)
            | ServerFnErrorErr::UnsupportedRequestMethod(_) => Self::BadRequest,
            other => Self::Internal {
                reference: short_reference(&other.to_string()),
            },
        };
        #[cfg(feature = "ssr")]
        crate::ssr::set_status(&err);
        err
    }
}

/// A short, non-revealing tag for an unexpected client-side error.
fn short_reference(text: &str) -> String {
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    format!("C-{:08x}", hash as u32)
}
