//! The vocabulary Director stores and shows: the kinds and states of sites, operations,
//! certificates and accounts, with the pure rules between them (a site's lifecycle, the steps
//! of each operation) and the limits the manager offers.
//!
//! It is the one crate both the platform (on the server) and the manager's browser client
//! build, so that a page matches on the same enum the database holds rather than on a string.
//!
//! Invariants:
//! - Each stored enum has exactly one mapping to its stored name ([`stored_enum!`]), used for
//!   the database (with the `diesel` feature), for the wire and for display. A name it does not
//!   know is refused ([`UnknownName`]), never taken for some other value.
//! - Nothing here does I/O.

#[macro_use]
mod stored;

pub mod account;
pub mod build;
pub mod certificate;
pub mod database;
pub mod domain;
pub mod notification;
pub mod operation;
pub mod request;
pub mod site;
pub mod token;

pub use stored::{Stored, UnknownName};

use certificate::CertificateState;
use database::DatabaseState;
use operation::{ActionState, OperationState};
use site::{Availability, SiteState};

/// How a state reads at a glance: fine, under way, or wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// As it should be.
    Good,
    /// Something is under way, or waits.
    Busy,
    /// Something is wrong or off.
    Bad,
}

/// A state as pages show it: its stored name and how it reads.
pub trait Shown: Stored {
    /// How it reads at a glance.
    fn tone(self) -> Tone;
}

impl Shown for build::BuildState {
    fn tone(self) -> Tone {
        match self {
            Self::Queued | Self::Running => Tone::Busy,
            Self::Succeeded | Self::Reused => Tone::Good,
            Self::Failed => Tone::Bad,
        }
    }
}

impl Shown for notification::DeliveryState {
    fn tone(self) -> Tone {
        match self {
            Self::Pending | Self::Sending => Tone::Busy,
            Self::Delivered => Tone::Good,
            Self::Failed => Tone::Bad,
        }
    }
}

impl Shown for request::RequestState {
    fn tone(self) -> Tone {
        match self {
            Self::Submitted | Self::Approved => Tone::Busy,
            Self::Created => Tone::Good,
            Self::Denied | Self::Withdrawn => Tone::Bad,
        }
    }
}

impl Shown for SiteState {
    fn tone(self) -> Tone {
        match self {
            Self::Running => Tone::Good,
            Self::Failing => Tone::Bad,
            Self::Provisioning | Self::Deleting | Self::Stopped => Tone::Busy,
        }
    }
}

impl Shown for DatabaseState {
    fn tone(self) -> Tone {
        match self {
            Self::Ready => Tone::Good,
            Self::Creating | Self::Deleting => Tone::Busy,
        }
    }
}

impl Shown for OperationState {
    fn tone(self) -> Tone {
        match self {
            Self::Done => Tone::Good,
            Self::Failed => Tone::Bad,
            Self::Queued | Self::Running => Tone::Busy,
        }
    }
}

impl Shown for ActionState {
    fn tone(self) -> Tone {
        match self {
            Self::Done => Tone::Good,
            Self::Failed => Tone::Bad,
            Self::Pending | Self::Running => Tone::Busy,
        }
    }
}

impl Shown for Availability {
    fn tone(self) -> Tone {
        match self {
            Self::Enabled => Tone::Good,
            Self::NotServed => Tone::Busy,
            Self::Disabled => Tone::Bad,
        }
    }
}

impl Shown for CertificateState {
    fn tone(self) -> Tone {
        match self {
            Self::Issued => Tone::Good,
            Self::Pending => Tone::Busy,
            Self::Failed => Tone::Bad,
        }
    }
}

/// `bytes` for people, in binary units: `512 B`, `20 MiB`, `1.5 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    humansize::format_size(bytes, humansize::BINARY.decimal_places(1))
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(super::human_bytes(512), "512 B");
        assert_eq!(super::human_bytes(8 << 20), "8 MiB");
        assert_eq!(super::human_bytes(3 << 29), "1.5 GiB");
        // As the file manager's script writes them too (public/files.js).
        assert_eq!(super::human_bytes((1 << 20) + 1), "1.0 MiB");
    }
}
