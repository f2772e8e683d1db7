//! A site's lifecycle: the states it can be in and the only transitions allowed between them.
//!
//! ```text
//! provisioning ──provisioned──▶ running ◀──recovered── failing
//!      │                        │   ▲                    ▲
//!      └───────failed───────────┼───┼──────failed────────┘
//!                               stopped ◀──stopped── (running | failing)
//! any but deleting ──deletion requested──▶ deleting ──(operation done)──▶ gone (row deleted)
//! ```

use std::fmt;

/// Where a site is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiteState {
    /// Being created: its create operation has not finished.
    Provisioning,
    /// Created and, for a served site, up.
    Running,
    /// Its last operation failed, or its service keeps failing.
    Failing,
    /// Not served (by its owners or an admin).
    Stopped,
    /// Being deleted.
    Deleting,
}

/// What happens to a site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Its create (or fix) operation finished.
    Provisioned,
    /// An operation failed or its service failed.
    Failed,
    /// It runs again after failing.
    Recovered,
    /// It was taken off the air.
    Stopped,
    /// It was put back on the air.
    Started,
    /// Someone asked for it to be deleted.
    DeletionRequested,
}

/// A transition the lifecycle does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a site that is {from} cannot go through {event:?}")]
pub struct IllegalTransition {
    /// The state it was in.
    pub from: SiteState,
    /// What was asked.
    pub event: Event,
}

impl SiteState {
    /// The state after `event`, if the lifecycle allows it.
    pub fn apply(self, event: Event) -> Result<Self, IllegalTransition> {
        use Event as E;
        use SiteState as S;
        let next = match (self, event) {
            (S::Provisioning | S::Failing, E::Provisioned) => S::Running,
            (S::Provisioning | S::Running | S::Failing | S::Stopped, E::Failed) => S::Failing,
            (S::Failing, E::Recovered) => S::Running,
            (S::Running | S::Failing, E::Stopped) => S::Stopped,
            (S::Stopped, E::Started) => S::Running,
            (S::Provisioning | S::Running | S::Failing | S::Stopped, E::DeletionRequested) => S::Deleting,
            // A failed deletion stays a deletion: it is retried, never undone.
            (S::Deleting, E::Failed) => S::Deleting,
            (from, event) => return Err(IllegalTransition { from, event }),
        };
        Ok(next)
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Provisioning => "provisioning",
            Self::Running => "running",
            Self::Failing => "failing",
            Self::Stopped => "stopped",
            Self::Deleting => "deleting",
        }
    }

    /// The state stored as `name`.
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::Provisioning,
            Self::Running,
            Self::Failing,
            Self::Stopped,
            Self::Deleting,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

impl fmt::Display for SiteState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::{Event as E, SiteState as S};

    #[test]
    fn a_site_is_provisioned_then_can_fail_recover_stop_and_be_deleted() {
        let mut state = S::Provisioning;
        for (event, expected) in [
            (E::Provisioned, S::Running),
            (E::Failed, S::Failing),
            (E::Recovered, S::Running),
            (E::Stopped, S::Stopped),
            (E::Started, S::Running),
            (E::DeletionRequested, S::Deleting),
            (E::Failed, S::Deleting),
        ] {
            state = state.apply(event).unwrap();
            assert_eq!(state, expected, "after {event:?}");
        }
    }

    #[test]
    fn forbidden_transitions_are_refused() {
        for (from, event) in [
            (S::Deleting, E::Provisioned),
            (S::Deleting, E::Started),
            (S::Deleting, E::DeletionRequested),
            (S::Running, E::Provisioned),
            (S::Running, E::Started),
            (S::Stopped, E::Recovered),
            (S::Provisioning, E::Stopped),
        ] {
            let err = from.apply(event).unwrap_err();
            assert_eq!((err.from, err.event), (from, event));
        }
    }

    #[test]
    fn states_round_trip_through_their_names() {
        for state in [S::Provisioning, S::Running, S::Failing, S::Stopped, S::Deleting] {
            assert_eq!(S::parse(state.as_str()), Some(state));
        }
        assert_eq!(S::parse("gone"), None);
    }
}
