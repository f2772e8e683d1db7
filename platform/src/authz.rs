//! The one place permissions are decided.
//!
//! A request is allowed when the user's role allows what it asks **and** the credentials it
//! came with do: a signed-in browser, an SSH key or the operator carry everything the role
//! allows ([`Grant::Full`]); a personal access token only its access (read, or read and write),
//! an admin's powers only when it has the admin scope, and only its sites when it is limited to
//! some. Nothing a token carries ever changes how anyone signs in ([`Access::Credentials`]):
//! a token cannot make tokens, change a password or add an SSH key.

use model::token::TokenAccess;

use crate::{Actor, Error, Result, Role};

/// Something an actor may want to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Use the manager at all: see one's dashboard, change one's own settings.
    UseManager,
    /// Read what is one's own beyond one's sites: the inbox, one's requests for sites, one's
    /// SSH keys. A token limited to some sites does not reach it; an admin's inbox (which
    /// holds the notices of every site) only a token with the admin scope does.
    OwnRecords,
    /// See every account and create, deactivate, promote or demote them.
    ManageUsers,
    /// Run the platform: every site, resource limits, disabling, fixing, the image catalogue,
    /// the audit log.
    Administer,
    /// Review members' requests for sites: approvers and admins.
    ReviewRequests,
    /// Manage one site: see it, change it, delete it. Members may; admins may manage any.
    ManageSite {
        /// The site.
        site: i32,
        /// Whether the actor is one of the site's members.
        is_member: bool,
    },
}

/// How far a request goes with what its permission covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// It only looks.
    Read,
    /// It changes something.
    Write,
    /// It changes how someone signs in (passwords, tokens, SSH keys, linked identities):
    /// only a person signed in themselves may.
    Credentials,
}

/// What the credentials behind a request allow, within what the user's role allows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Grant {
    /// A signed-in browser, an SSH key or the operator: everything the role allows.
    #[default]
    Full,
    /// A personal access token.
    Token(TokenGrant),
}

/// What one personal access token allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    /// The token's id.
    pub id: i64,
    /// Read, or read and write.
    pub access: TokenAccess,
    /// Whether it carries an admin's powers (only an admin's token may).
    pub admin: bool,
    /// The only sites it reaches, when it is limited to some.
    pub sites: Option<Vec<i32>>,
}

impl Grant {
    /// The sites these credentials are limited to, if they are.
    pub fn sites(&self) -> Option<&[i32]> {
        match self {
            Self::Full => None,
            Self::Token(token) => token.sites.as_deref(),
        }
    }

    /// Whether these credentials may use an admin's powers (the role decides the rest).
    pub fn admin_powers(&self) -> bool {
        match self {
            Self::Full => true,
            Self::Token(token) => token.admin && token.sites.is_none(),
        }
    }

    /// Why these credentials (of a user whose role is `role`) do not allow `access` to
    /// `permission`, if they do not.
    fn refuses(&self, role: Role, permission: Permission, access: Access) -> Option<&'static str> {
        let Self::Token(token) = self else {
            return None;
        };
        match access {
            Access::Credentials => {
                return Some("A token cannot change how anyone signs in: sign in to the manager.");
            }
            Access::Write if token.access == TokenAccess::Read => {
                return Some("This token may only read: make one with the write scope.");
            }
            Access::Read | Access::Write => {}
        }
        match (permission, &token.sites) {
            (Permission::ManageSite { site, .. }, Some(sites)) if !sites.contains(&site) => {
                Some("This token is limited to other sites.")
            }
            (Permission::ManageSite { .. }, _) => None,
            (Permission::OwnRecords, None) if role == Role::Admin && !token.admin => {
                Some("An admin's own records hold every site's notices: use a token with the admin scope.")
            }
            // A token limited to sites reaches nothing beyond them but the dashboard.
            (Permission::UseManager, Some(_)) if access == Access::Read => None,
            (_, Some(_)) => Some("This token is limited to some sites."),
            (_, None) => None,
        }
    }
}

/// Decides whether `actor` (None: anonymous) may take `access` to what `permission` covers,
/// returning the actor when it may.
pub fn authorize(actor: Option<&Actor>, permission: Permission, access: Access) -> Result<&Actor> {
    let actor = actor.ok_or(Error::Unauthenticated)?;
    let admin = actor.is_admin();
    let allowed = match permission {
        Permission::UseManager | Permission::OwnRecords => true,
        Permission::ManageUsers | Permission::Administer => admin,
        Permission::ReviewRequests => actor.role == Role::Approver || admin,
        Permission::ManageSite { is_member, .. } => is_member || admin,
    };
    if !allowed {
        tracing::info!(user = %actor.username, ?permission, ?access, "permission denied");
        return Err(Error::Forbidden);
    }
    if let Some(why) = actor.grant.refuses(actor.role, permission, access) {
        tracing::info!(user = %actor.username, ?permission, ?access, why, "the token does not allow it");
        return Err(Error::TokenRefused(why));
    }
    Ok(actor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(role: Role, grant: Grant) -> Actor {
        Actor {
            user_id: 7,
            username: "ann".to_owned(),
            display_name: "Ann".to_owned(),
            role,
            grant,
        }
    }

    fn token(access: TokenAccess, admin: bool, sites: Option<Vec<i32>>) -> Grant {
        Grant::Token(TokenGrant {
            id: 1,
            access,
            admin,
            sites,
        })
    }

    fn verdict(actor: &Actor, permission: Permission, access: Access) -> &'static str {
        match authorize(Some(actor), permission, access) {
            Ok(_) => "ok",
            Err(Error::Forbidden) => "forbidden",
            Err(Error::TokenRefused(_)) => "token",
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_token_reaches_what_its_user_may_only_as_far_as_it_says() {
        use Access::{Credentials, Read, Write};
        use TokenAccess as T;
        let own = Permission::ManageSite {
            site: 3,
            is_member: true,
        };
        let other = Permission::ManageSite {
            site: 4,
            is_member: false,
        };
        let cases = [
            // (role, grant, permission, access, verdict)
            (Role::User, Grant::Full, own, Write, "ok"),
            (Role::User, Grant::Full, other, Read, "forbidden"),
            (Role::User, Grant::Full, Permission::UseManager, Credentials, "ok"),
            (Role::User, token(T::Read, false, None), own, Read, "ok"),
            (Role::User, token(T::Read, false, None), own, Write, "token"),
            (Role::User, token(T::Write, false, None), own, Write, "ok"),
            (
                Role::User,
                token(T::Write, false, None),
                Permission::UseManager,
                Credentials,
                "token",
            ),
            // A member's token with the admin scope is still a member's.
            (Role::User, token(T::Write, true, None), other, Read, "forbidden"),
            (
                Role::User,
                token(T::Write, true, None),
                Permission::Administer,
                Read,
                "forbidden",
            ),
            (
                Role::User,
                token(T::Write, false, Some(vec![3])),
                own,
                Write,
                "ok",
            ),
            (
                Role::User,
                token(T::Write, false, Some(vec![5])),
                own,
                Read,
                "token",
            ),
            (
                Role::User,
                token(T::Write, false, Some(vec![3])),
                Permission::UseManager,
                Read,
                "ok",
            ),
            (
                Role::User,
                token(T::Write, false, Some(vec![3])),
                Permission::UseManager,
                Write,
                "token",
            ),
            // An admin's powers come with the admin scope only, and never to a limited token.
            (Role::Admin, Grant::Full, other, Write, "ok"),
            (
                Role::Admin,
                token(T::Write, false, None),
                other,
                Read,
                "forbidden",
            ),
            (
                Role::Admin,
                token(T::Write, false, None),
                Permission::ManageUsers,
                Read,
                "forbidden",
            ),
            (Role::Admin, token(T::Read, true, None), other, Read, "ok"),
            (
                Role::Admin,
                token(T::Read, true, None),
                Permission::Administer,
                Read,
                "ok",
            ),
            (
                Role::Admin,
                token(T::Read, true, None),
                Permission::Administer,
                Write,
                "token",
            ),
            (
                Role::Admin,
                token(T::Write, true, None),
                Permission::ManageUsers,
                Write,
                "ok",
            ),
            (
                Role::Admin,
                token(T::Write, true, None),
                Permission::UseManager,
                Credentials,
                "token",
            ),
            (
                Role::Admin,
                token(T::Write, true, Some(vec![4])),
                other,
                Read,
                "forbidden",
            ),
            (
                Role::Approver,
                token(T::Read, false, None),
                Permission::ReviewRequests,
                Read,
                "ok",
            ),
            (
                Role::Approver,
                token(T::Read, false, None),
                Permission::ReviewRequests,
                Write,
                "token",
            ),
            (
                Role::User,
                Grant::Full,
                Permission::ReviewRequests,
                Read,
                "forbidden",
            ),
        ];
        for (n, (role, grant, permission, access, expected)) in cases.into_iter().enumerate() {
            let who = actor(role, grant);
            assert_eq!(
                verdict(&who, permission, access),
                expected,
                "case {n}: {who:?} {permission:?} {access:?}"
            );
        }
        assert!(matches!(
            authorize(None, Permission::UseManager, Read),
            Err(Error::Unauthenticated)
        ));
    }
}
