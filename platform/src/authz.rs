//! The one place permissions are decided.

use crate::{Actor, Error, Result, Role};

/// Something an actor may want to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Use the manager at all: see one's dashboard, change one's password.
    UseManager,
    /// See every account and create, deactivate, promote or demote them.
    ManageUsers,
    /// Run the platform: every site, resource limits, disabling, fixing, the image catalogue,
    /// the audit log.
    Administer,
    /// Review members' requests for sites: approvers and admins.
    ReviewRequests,
    /// Manage one site: see it, change it, delete it. Members may; admins may manage any.
    ManageSite {
        /// Whether the actor is one of the site's members.
        is_member: bool,
    },
}

/// Decides whether `actor` (None: anonymous) has `permission`, returning the actor when it may.
pub fn authorize(actor: Option<&Actor>, permission: Permission) -> Result<&Actor> {
    let actor = actor.ok_or(Error::Unauthenticated)?;
    let allowed = match permission {
        Permission::UseManager => true,
        Permission::ManageUsers | Permission::Administer => actor.role == Role::Admin,
        Permission::ReviewRequests => matches!(actor.role, Role::Approver | Role::Admin),
        Permission::ManageSite { is_member } => is_member || actor.role == Role::Admin,
    };
    if allowed {
        Ok(actor)
    } else {
        tracing::info!(user = %actor.username, ?permission, "permission denied");
        Err(Error::Forbidden)
    }
}
