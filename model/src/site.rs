//! Sites: what they are, where they are in their life, whether they are served, and the
//! limits an admin may give them.
//!
//! ```text
//! provisioning ──provisioned──▶ running ◀──recovered── failing
//!      │                        │   ▲                    ▲
//!      └───────failed───────────┼───┼──────failed────────┘
//!                               stopped ◀──stopped── (running | failing)
//! any but deleting ──deletion requested──▶ deleting ──(operation done)──▶ gone (row deleted)
//! ```

use std::ops::RangeInclusive;

stored_enum! {
    /// Static sites are files served by the edge; dynamic ones run `run.sh` as a service.
    pub enum SiteKind ("site kind") {
        /// Files from `public/`, served by the edge router.
        Static = "static",
        /// A Swarm service running the site's `run.sh`.
        Dynamic = "dynamic",
    }
}

stored_enum! {
    /// Where a site is in its life.
    pub enum SiteState ("site state") {
        /// Being created: its create operation has not finished.
        Provisioning = "provisioning",
        /// Created and, for a served site, up.
        Running = "running",
        /// Its last operation failed, or its service keeps failing.
        Failing = "failing",
        /// Not served (by its owners or an admin).
        Stopped = "stopped",
        /// Being deleted.
        Deleting = "deleting",
    }
}

stored_enum! {
    /// Whether a site is on the air, and who decided.
    pub enum Availability ("availability") {
        /// Served.
        Enabled = "enabled",
        /// Taken off the air by its members.
        NotServed = "not-served",
        /// Taken off the air by an admin: its members cannot put it back.
        Disabled = "disabled",
    }
}

stored_enum! {
    /// What a site is for.
    pub enum Purpose ("site purpose") {
        /// One person's own site.
        User = "user",
        /// A project's.
        Project = "project",
        /// A club's or activity's.
        Activity = "activity",
        /// Anything else.
        Other = "other",
    }
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
}

/// Allowed CPU limits, in thousandths of a core.
pub const CPU_MILLIS: RangeInclusive<i32> = 100..=8000;
/// Allowed memory limits, in MiB.
pub const MEMORY_MB: RangeInclusive<i32> = 32..=16384;
/// Allowed request body limits, in MiB.
pub const BODY_LIMIT_MB: RangeInclusive<i32> = 1..=2048;

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
}
