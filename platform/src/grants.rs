//! Access that lasts: a terminal, an SSH connection or an SFTP session is opened on grounds
//! (an active account, a key of theirs, membership of a site that is not disabled) that may
//! go while it is open. A [`Grant`] names those grounds; [`Platform::revoked`] returns once
//! they no longer hold, so the session can end within seconds of a deactivation, a removed
//! key or member, or a disabled site.
//!
//! Changes made through this process wake every waiting grant at once ([`Platform::access_changed`]);
//! those made by another manager process are found by the re-check every [`RECHECK`].

use std::time::Duration;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::{
    Actor, Error, Platform, Result, Role,
    schema::{ssh_keys, users},
    sites::SiteState,
};

/// How often a grant is checked again without being woken.
pub const RECHECK: Duration = Duration::from_secs(5);

/// What a live session was opened on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The account it acts for.
    pub user_id: i64,
    /// The SSH key it authenticated with (its fingerprint), if it did with one.
    pub key: Option<String>,
    /// The manager session (its token) it was opened from, if it was: signing out or a
    /// changed password ends it too.
    pub session: Option<String>,
    /// The site it works in, if any.
    pub site_id: Option<i32>,
    /// The personal access token it was opened with, if it was: revoking the token or its
    /// expiry ends it too, and the site is reached only as far as the token reaches.
    pub token: Option<crate::TokenGrant>,
}

impl Platform {
    /// Checks `grant` now: the account's actor when every ground holds, else why not (in
    /// words for the person whose session ends).
    pub async fn check_grant(&self, grant: &Grant) -> Result<Actor> {
        let mut conn = self.conn().await?;
        let user: Option<(String, String, Role, bool)> = users::table
            .find(grant.user_id)
            .select((users::username, users::display_name, users::role, users::active))
            .first(&mut conn)
            .await
            .optional()?;
        let mut actor = match user {
            Some((username, display_name, role, true)) => Actor {
                user_id: grant.user_id,
                username,
                display_name,
                role,
                grant: crate::Grant::Full,
            },
            _ => return Err(Error::Conflict("Your account was deactivated.".to_owned())),
        };
        if let Some(key) = &grant.key {
            let kept: i64 = ssh_keys::table
                .filter(ssh_keys::fingerprint.eq(key))
                .filter(ssh_keys::user_id.eq(grant.user_id))
                .count()
                .get_result(&mut conn)
                .await?;
            if kept == 0 {
                return Err(Error::Conflict(
                    "The SSH key this session used was removed.".to_owned(),
                ));
            }
        }
        drop(conn);
        if let Some(token) = &grant.token {
            actor.grant = crate::Grant::Token(token.clone());
            actor = self.refreshed(&actor).await?.ok_or_else(|| {
                Error::Conflict("The token this session was opened with was revoked or expired.".to_owned())
            })?;
        }
        if let Some(token) = &grant.session
            && !self.session_live(token).await?
        {
            return Err(Error::Conflict(
                "You signed out, or your session ended.".to_owned(),
            ));
        }
        if let Some(site_id) = grant.site_id {
            let site = match self.site(Some(&actor), site_id).await {
                Ok(site) => site,
                Err(Error::NotFound(_)) => {
                    return Err(Error::Conflict(
                        "You are no longer a member of this site.".to_owned(),
                    ));
                }
                Err(other) => return Err(other),
            };
            if site.availability == crate::sites::Availability::Disabled {
                return Err(Error::Conflict("An administrator disabled this site.".to_owned()));
            }
            if site.state == SiteState::Deleting {
                return Err(Error::Conflict("The site is being deleted.".to_owned()));
            }
        }
        Ok(actor)
    }

    /// Waits until `grant` no longer holds, and says why. A check that cannot be made (the
    /// database away) keeps the session: it is tried again at the next wake or [`RECHECK`].
    pub async fn revoked(&self, grant: &Grant) -> String {
        let mut changed = self.inner.access.subscribe();
        loop {
            match self.check_grant(grant).await {
                Err(Error::Conflict(reason)) => return reason,
                Err(err) => {
                    tracing::warn!(user = grant.user_id, error = %err, "re-checking a session's access failed")
                }
                Ok(_) => {}
            }
            let _ = tokio::time::timeout(RECHECK, changed.changed()).await;
        }
    }

    /// Waits until `grant` holds (a login whose site is disabled may be re-enabled while its
    /// connection lasts).
    pub async fn granted(&self, grant: &Grant) {
        let mut changed = self.inner.access.subscribe();
        while self.check_grant(grant).await.is_err() {
            let _ = tokio::time::timeout(RECHECK, changed.changed()).await;
        }
    }

    /// Something that grants access changed (an account, a key, a membership, a site's
    /// availability): every waiting grant is checked again at once.
    pub(crate) fn access_changed(&self) {
        self.inner.access.send_modify(|epoch| *epoch += 1);
    }
}
