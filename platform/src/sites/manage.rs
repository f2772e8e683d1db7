//! Managing sites beyond their own page: members (by the site's members), and what only admins
//! do — every site, resource limits, disabling, fixing, the audit log.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection as _, RunQueryDsl};

use super::{
    Availability, Change, Event, OperationKind, Site, SiteState, audit, record_change, site_columns,
    site_from_row, terminal_reset,
};
use crate::{
    Access, Actor, Error, Permission, Platform, Result, authorize,
    schema::{audit_log, images, site_members, site_status, sites, users},
    validation::{Required, text},
};

pub use model::site::{BODY_LIMIT_MB, CPU_MILLIS, MEMORY_MB};

/// A site's resource limits, as an admin sets them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// CPU, in thousandths of a core.
    pub cpu_millis: i32,
    /// Memory, in MiB.
    pub memory_mb: i32,
    /// Largest request body, in MiB.
    pub body_limit_mb: i32,
}

/// A site with its members, as the admin's list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteWithMembers {
    /// The site.
    pub site: Site,
    /// Its members' usernames, sorted.
    pub members: Vec<String>,
    /// Why the reconciler could not correct it at its last pass; empty when it could.
    pub problem: String,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Its number: later entries have larger ones.
    pub id: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// Who (a username, or `operator` for the command line).
    pub actor: String,
    /// What (`site.create`, `site.limits`, …).
    pub action: String,
    /// On what (a site's or user's name).
    pub target: String,
    /// With what.
    pub details: String,
}

/// One page of the admin's site list.
pub const SITES_PER_PAGE: i64 = 50;
/// The longest reason an admin gives for disabling or enabling a site.
pub const MAX_AVAILABILITY_REASON: usize = 500;

impl Platform {
    /// The members of a site the actor may manage: (user id, username), by username.
    pub async fn site_members(&self, actor: Option<&Actor>, site_id: i32) -> Result<Vec<(i64, String)>> {
        self.site(actor, site_id).await?;
        let mut conn = self.conn().await?;
        Ok(site_members::table
            .inner_join(users::table)
            .filter(site_members::site_id.eq(site_id))
            .order(users::username.asc())
            .select((users::id, users::username))
            .load(&mut conn)
            .await?)
    }

    /// Adds the user called `username` to a site's members.
    pub async fn add_member(&self, actor: Option<&Actor>, site_id: i32, username: &str) -> Result<()> {
        // A member added has lasting access (the browser, SSH, the database console) that no
        // token's revocation takes back: only a person signed in may give it.
        let (actor, site) = self.managed_site(actor, site_id, Access::Credentials).await?;
        let username = username.trim().to_ascii_lowercase();
        if username.is_empty() {
            return Err(Error::invalid(
                "username",
                "Enter the username of the person to add.",
            ));
        }
        let mut conn = self.conn().await?;
        let user: Option<(i64, bool)> = users::table
            .filter(users::username.eq(&username))
            .select((users::id, users::active))
            .first(&mut conn)
            .await
            .optional()?;
        let Some((user_id, true)) = user else {
            return Err(Error::invalid(
                "username",
                format!("No active user is called {username}."),
            ));
        };
        conn.transaction::<_, Error, _>(async |conn| {
            // A member counts a site they were added to like one they made: nobody can be
            // given sites past their quota.
            if let Some((has, _)) = self.at_site_quota(conn, user_id).await? {
                return Err(Error::invalid(
                    "username",
                    format!(
                        "{username} has {has} site(s), the most they may have; an admin can give them more."
                    ),
                ));
            }
            let added = diesel::insert_into(site_members::table)
                .values((
                    site_members::site_id.eq(site_id),
                    site_members::user_id.eq(user_id),
                ))
                .on_conflict_do_nothing()
                .execute(conn)
                .await?;
            if added == 0 {
                return Err(Error::invalid(
                    "username",
                    format!("{username} is a member already."),
                ));
            }
            audit(conn, actor, "site.member.add", &site.name, &username).await?;
            let notice = crate::notify::Notice {
                event: model::notification::Event::Membership,
                subject: format!("You were added to the site {}", site.name),
                body: format!(
                    "{} added you to the members of {}: you may now manage it, its files, terminal and databases.",
                    actor.named(), site.name
                ),
                link: format!("/sites/{site_id}"),
            };
            self.notify(conn, &[user_id], &notice).await
        })
        .await?;
        self.wake_deliveries();
        tracing::info!(user = %actor.username, site = %site.name, member = %username, "member added");
        Ok(())
    }

    /// Removes a member from a site. A site keeps at least one member: nobody else could
    /// manage it but the admins.
    pub async fn remove_member(&self, actor: Option<&Actor>, site_id: i32, user_id: i64) -> Result<()> {
        let (actor, site) = self.managed_site(actor, site_id, Access::Write).await?;
        let mut conn = self.conn().await?;
        let username = conn
            .transaction::<_, Error, _>(async |conn| {
                // Locks the site's member rows, so that two members removing each other cannot
                // both succeed and leave none.
                let members: Vec<i64> = site_members::table
                    .filter(site_members::site_id.eq(site_id))
                    .select(site_members::user_id)
                    .for_update()
                    .load(conn)
                    .await?;
                if !members.contains(&user_id) {
                    return Err(Error::NotFound("member"));
                }
                if members.len() == 1 {
                    return Err(Error::Conflict(
                        "A site keeps at least one member: add another before removing this one.".to_owned(),
                    ));
                }
                diesel::delete(
                    site_members::table
                        .filter(site_members::site_id.eq(site_id))
                        .filter(site_members::user_id.eq(user_id)),
                )
                .execute(conn)
                .await?;
                let username: String = users::table
                    .find(user_id)
                    .select(users::username)
                    .first(conn)
                    .await?;
                audit(conn, actor, "site.member.remove", &site.name, &username).await?;
                let why = format!("{username} was removed from the site");
                record_change(conn, actor, &site, &terminal_reset(&why)).await?;
                let notice = crate::notify::Notice {
                    event: model::notification::Event::Membership,
                    subject: format!("You were removed from the site {}", site.name),
                    body: format!("{} removed you from the members of {}.", actor.named(), site.name),
                    link: "/".to_owned(),
                };
                self.notify(conn, &[user_id], &notice).await?;
                Ok(username)
            })
            .await?;
        tracing::info!(user = %actor.username, site = %site.name, member = %username, "member removed");
        self.wake_deliveries();
        self.wake_workers();
        self.access_changed();
        Ok(())
    }

    /// Every site with its members, by name, a page at a time; `member` keeps only the sites
    /// of that user. Admins only. Returns the page and the number of sites in all.
    pub async fn all_sites(
        &self,
        actor: Option<&Actor>,
        member: Option<&str>,
        page: i64,
    ) -> Result<(Vec<SiteWithMembers>, i64)> {
        authorize(actor, Permission::Administer, Access::Read)?;
        let mut conn = self.conn().await?;
        let member = member.map(str::trim).filter(|m| !m.is_empty());
        let of_member = |username: &str| {
            site_members::table
                .inner_join(users::table)
                .filter(users::username.eq(username.to_ascii_lowercase()))
                .select(site_members::site_id)
        };
        let mut count = sites::table.count().into_boxed();
        let mut query = sites::table
            .inner_join(images::table)
            .select(site_columns())
            .order(sites::name.asc())
            .limit(SITES_PER_PAGE)
            .offset(page.max(0) * SITES_PER_PAGE)
            .into_boxed();
        if let Some(username) = member {
            count = count.filter(sites::id.eq_any(of_member(username)));
            query = query.filter(sites::id.eq_any(of_member(username)));
        }
        let total: i64 = count.get_result(&mut conn).await?;
        let found: Vec<Site> = query
            .load(&mut conn)
            .await?
            .into_iter()
            .map(site_from_row)
            .collect();
        let ids: Vec<i32> = found.iter().map(|s| s.id).collect();
        let pairs: Vec<(i32, String)> = site_members::table
            .inner_join(users::table)
            .filter(site_members::site_id.eq_any(&ids))
            .order(users::username.asc())
            .select((site_members::site_id, users::username))
            .load(&mut conn)
            .await?;
        let problems: Vec<(i32, String)> = site_status::table
            .filter(site_status::site_id.eq_any(&ids))
            .filter(site_status::reconcile_problem.ne(""))
            .select((site_status::site_id, site_status::reconcile_problem))
            .load(&mut conn)
            .await?;
        let sites = found
            .into_iter()
            .map(|site| SiteWithMembers {
                problem: problems
                    .iter()
                    .find(|(id, _)| *id == site.id)
                    .map(|(_, p)| p.clone())
                    .unwrap_or_default(),
                members: pairs
                    .iter()
                    .filter(|(id, _)| *id == site.id)
                    .map(|(_, name)| name.clone())
                    .collect(),
                site,
            })
            .collect();
        Ok((sites, total))
    }

    /// Sets a site's resource limits and queues the operation that applies them. Admins only.
    pub async fn set_limits(&self, actor: Option<&Actor>, site_id: i32, limits: Limits) -> Result<i64> {
        let actor = authorize(actor, Permission::Administer, Access::Write)?.clone();
        let site = self.site(Some(&actor), site_id).await?;
        let check = |field: &'static str, value: i32, range: std::ops::RangeInclusive<i32>, unit: &str| {
            if range.contains(&value) {
                Ok(())
            } else {
                Err(Error::invalid(
                    field,
                    format!("Choose between {} and {} {unit}.", range.start(), range.end()),
                ))
            }
        };
        check(
            "cpu_millis",
            limits.cpu_millis,
            CPU_MILLIS,
            "thousandths of a core",
        )?;
        check("memory_mb", limits.memory_mb, MEMORY_MB, "MiB")?;
        check("body_limit_mb", limits.body_limit_mb, BODY_LIMIT_MB, "MiB")?;
        let details = format!(
            "cpu {} millis, memory {} MiB, body {} MiB",
            limits.cpu_millis, limits.memory_mb, limits.body_limit_mb
        );
        let change = Change {
            kind: OperationKind::ApplySettings,
            state: None,
            availability: None,
            audit_action: "site.limits",
            details: &details,
        };
        // The limits, the operation that applies them and the audit line commit together, on
        // a site not being deleted (checked on its locked row).
        let mut conn = self.conn().await?;
        let operation = conn
            .transaction::<_, Error, _>(async |conn| {
                let state: SiteState = sites::table
                    .find(site_id)
                    .select(sites::state)
                    .for_update()
                    .first(conn)
                    .await?;
                if state == SiteState::Deleting {
                    return Err(Error::Conflict("The site is being deleted.".to_owned()));
                }
                diesel::update(sites::table.find(site_id))
                    .set((
                        sites::cpu_millis.eq(limits.cpu_millis),
                        sites::memory_mb.eq(limits.memory_mb),
                        sites::body_limit_mb.eq(limits.body_limit_mb),
                        sites::updated_at.eq(Utc::now()),
                    ))
                    .execute(conn)
                    .await?;
                record_change(conn, &actor, &site, &change).await
            })
            .await?;
        self.wake_workers();
        Ok(operation)
    }

    /// Disables a site (`Disabled`: visitors get a page saying so; its members cannot serve it
    /// again) or enables it again (`Enabled`), with the reason its members are told (required
    /// to disable). Admins only.
    pub async fn set_availability(
        &self,
        actor: Option<&Actor>,
        site_id: i32,
        availability: Availability,
        reason: &str,
    ) -> Result<i64> {
        let actor = authorize(actor, Permission::Administer, Access::Write)?.clone();
        let disabled = match availability {
            Availability::Disabled => true,
            Availability::Enabled => false,
            Availability::NotServed => {
                return Err(Error::invalid(
                    "availability",
                    "An admin disables a site or enables it; its members take it off the air.",
                ));
            }
        };
        // Its members are told why it was disabled.
        let required = if disabled { Required::Yes } else { Required::No };
        let reason = text("reason", reason, MAX_AVAILABILITY_REASON, required)?;
        let reason = reason.as_str();
        let site = self.site(Some(&actor), site_id).await?;
        if disabled == (site.availability == Availability::Disabled) {
            return Err(Error::Conflict(if disabled {
                "The site is disabled already.".to_owned()
            } else {
                "The site is not disabled.".to_owned()
            }));
        }
        let state = match (disabled, site.state) {
            // A site its members had taken off the air is off already.
            (true, SiteState::Stopped) => SiteState::Stopped,
            (true, state) => state
                .apply(Event::Stopped)
                .map_err(|e| Error::Conflict(format!("Not now: {e}.")))?,
            (false, state) => state
                .apply(Event::Started)
                .map_err(|e| Error::Conflict(format!("Not now: {e}.")))?,
        };
        let details = if reason.is_empty() {
            availability.as_str().to_owned()
        } else {
            format!("{}: {reason}", availability.as_str())
        };
        let change = Change {
            kind: OperationKind::SetAvailability,
            state: Some(state),
            availability: Some(availability),
            audit_action: "site.availability",
            details: &details,
        };
        let because = if reason.is_empty() {
            String::new()
        } else {
            format!(" The reason: “{reason}”")
        };
        let notice = if disabled {
            crate::notify::Notice {
                event: model::notification::Event::SiteDisabled,
                subject: format!("Your site {} was disabled", site.name),
                body: format!(
                    "{} disabled {}: it is off the air, and its terminal and SSH are closed until an administrator enables it.{because}",
                    actor.named(),
                    site.name
                ),
                link: format!("/sites/{site_id}"),
            }
        } else {
            crate::notify::Notice {
                event: model::notification::Event::SiteDisabled,
                subject: format!("Your site {} was enabled again", site.name),
                body: format!("{} enabled {} again.{because}", actor.named(), site.name),
                link: format!("/sites/{site_id}"),
            }
        };
        let operation = if disabled {
            let reset = terminal_reset("an administrator disabled the site");
            self.queue_changes_telling(&actor, &site, &[change, reset], Some(&notice))
                .await?
        } else {
            self.queue_changes_telling(&actor, &site, &[change], Some(&notice))
                .await?
        };
        self.access_changed();
        Ok(operation)
    }

    /// Re-runs everything that makes a site — files, service, routes — with its current
    /// settings. Admins only.
    pub async fn fix_site(&self, actor: Option<&Actor>, site_id: i32) -> Result<i64> {
        let actor = authorize(actor, Permission::Administer, Access::Write)?.clone();
        let site = self.site(Some(&actor), site_id).await?;
        if matches!(site.state, SiteState::Deleting | SiteState::Provisioning) {
            return Err(Error::Conflict(format!(
                "A site that is {} has its own operation running; retry that one.",
                site.state
            )));
        }
        self.queue_change(
            &actor,
            &site,
            Change {
                kind: OperationKind::FixSite,
                state: None,
                availability: None,
                audit_action: "site.fix",
                details: "",
            },
        )
        .await
    }

    /// The newest entries of the audit log (those before entry `before`, when given), newest
    /// first. Admins only.
    pub async fn audit_entries(
        &self,
        actor: Option<&Actor>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>> {
        authorize(actor, Permission::Administer, Access::Read)?;
        let mut conn = self.conn().await?;
        let mut query = audit_log::table
            .order(audit_log::id.desc())
            .limit(limit.clamp(1, 1000))
            .select((
                audit_log::id,
                audit_log::at,
                audit_log::actor,
                audit_log::action,
                audit_log::target,
                audit_log::details,
            ))
            .into_boxed();
        if let Some(before) = before {
            query = query.filter(audit_log::id.lt(before));
        }
        let rows: Vec<(i64, DateTime<Utc>, String, String, String, String)> = query.load(&mut conn).await?;
        Ok(rows
            .into_iter()
            .map(|(id, at, actor, action, target, details)| AuditEntry {
                id,
                at,
                actor,
                action,
                target,
                details,
            })
            .collect())
    }
}
