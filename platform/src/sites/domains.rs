//! Domains of members' own: added to a site, verified by a TXT record before they are routed
//! (an admin's are verified at once), removed with their routes. A domain belongs to one site.
//!
//! Routing follows from the rows: a site's verified domains come with it
//! ([`super::Site::domains`]) into its routes, so an `update-domains` operation (or the
//! reconciler, within a round) puts them on the edge.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use diesel::{dsl::IntervalDsl as _, prelude::*};
use diesel_async::{AsyncConnection as _, RunQueryDsl};

use super::{Change, OperationKind, SiteState, audit, record_change};
use crate::{Access, Actor, Error, Platform, Result, schema::site_domains, tokens};
pub use model::domain::Proof;

/// The name the TXT record is looked up at: `_director.<host>`.
pub fn txt_name(host: &str) -> String {
    format!("_director.{host}")
}

/// What the TXT record must hold for `token`.
pub fn txt_value(token: &str) -> String {
    format!("director-verification={token}")
}

/// The wildcard a host is a name of: `*.example.org` for `www.example.org` (wildcards reach
/// one label deep).
pub fn wildcard_over(host: &str) -> Option<String> {
    host.split_once('.').map(|(_, parent)| format!("*.{parent}"))
}

/// Days an unverified claim of a domain lasts: a claim nobody proved lapses, and never keeps
/// the owner of the name from adding it (several sites may claim a name until one proves it).
pub const UNVERIFIED_CLAIM_DAYS: i32 = 7;

/// What the rules for a domain depend on: the manager's own host and the sites' domain (whose
/// names are given to sites by their own names).
#[derive(Debug, Clone)]
pub struct DomainRules {
    /// The host the manager is reached at.
    pub manager_host: String,
    /// The domain under which sites get their names.
    pub sites_domain: String,
}

/// A domain of a site.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = site_domains, check_for_backend(diesel::pg::Pg))]
pub struct Domain {
    /// Its id.
    pub id: i64,
    /// The host name, lower case.
    pub host: String,
    /// The token its TXT record must carry (see [`txt_value`]).
    pub token: String,
    /// When it was verified (and routed); None while it waits.
    pub verified_at: Option<DateTime<Utc>>,
    /// How its claim was proved, if it was.
    pub verified_by: Proof,
    /// The last verification attempt.
    pub last_check_at: Option<DateTime<Utc>>,
    /// Why the last attempt failed; empty when it did not.
    pub last_check_error: String,
}

/// The host as given, checked against the rules: a valid name, not an IP address, not the
/// manager's host, not a name under the sites' domain; a wildcard (`*.example.org`: every name
/// one label under it) only for admins.
pub fn check_domain(raw: &str, rules: &DomainRules, wildcard_allowed: bool) -> Result<String> {
    let given = raw.trim().trim_end_matches('.');
    let bad = |message: String| Err(Error::invalid("host", message));
    if given.is_empty() {
        return bad("Enter a domain name, like www.example.org.".to_owned());
    }
    if given.trim_matches(['[', ']']).parse::<IpAddr>().is_ok() {
        return bad(format!("{given} is an IP address: enter a domain name instead."));
    }
    if given.starts_with("*.") && !wildcard_allowed {
        return bad(
            "Only admins can add a wildcard domain: add each name you need, or ask an admin.".to_owned(),
        );
    }
    let host = orchestrator::edge::validate_host(given, wildcard_allowed)
        .map_err(|err| Error::invalid("host", format!("That is not a valid domain name ({err}).")))?;
    let manager = rules.manager_host.to_ascii_lowercase();
    let covered = host.strip_prefix("*.").is_some_and(|domain| {
        manager
            .split_once('.')
            .is_some_and(|(_, parent)| parent == domain)
    });
    if host == manager || covered {
        return bad(format!("{host} is (or covers) the manager's own address."));
    }
    let sites_domain = rules.sites_domain.to_ascii_lowercase();
    let bare = host.strip_prefix("*.").unwrap_or(&host);
    if bare == sites_domain || bare.ends_with(&format!(".{sites_domain}")) {
        return bad(format!(
            "Names under {sites_domain} are given to sites by their own names: add a domain of your own."
        ));
    }
    Ok(host)
}

impl Platform {
    /// A site's domains, for its members and admins.
    pub async fn site_domains(&self, actor: Option<&Actor>, site_id: i32) -> Result<Vec<Domain>> {
        self.site(actor, site_id).await?;
        let mut conn = self.conn().await?;
        Ok(site_domains::table
            .filter(site_domains::site_id.eq(site_id))
            .order(site_domains::host)
            .select(Domain::as_select())
            .load::<Domain>(&mut conn)
            .await?)
    }

    /// What members' domains must not be: the manager's host and the sites' domain, as set.
    pub fn domain_rules(&self) -> DomainRules {
        DomainRules {
            manager_host: self.settings().manager_host.clone(),
            sites_domain: self.settings().sites_domain.clone(),
        }
    }

    /// Adds a domain to a site. A member's waits for its TXT record; an admin's is verified at
    /// once and routed.
    pub async fn add_domain(&self, actor: Option<&Actor>, site_id: i32, raw: &str) -> Result<Domain> {
        let (actor, site) = self.managed_site(actor, site_id, Access::Write).await?;
        let actor = actor.clone();
        let by_admin = actor.is_admin();
        let host = check_domain(raw, &self.domain_rules(), by_admin)?;
        if site.state == SiteState::Deleting {
            return Err(Error::Conflict("The site is being deleted.".to_owned()));
        }
        let mut conn = self.conn().await?;
        let domain = conn
            .transaction::<_, Error, _>(async |conn| {
                // A claim nobody proved within the period lapses.
                diesel::delete(
                    site_domains::table
                        .filter(site_domains::host.eq(&host))
                        .filter(site_domains::verified_at.is_null())
                        .filter(
                            site_domains::created_at
                                .lt(diesel::dsl::now.into_sql::<diesel::sql_types::Timestamptz>()
                                    - UNVERIFIED_CLAIM_DAYS.days()),
                        ),
                )
                .execute(conn)
                .await?;
                let claims: Vec<(i32, bool)> = site_domains::table
                    .filter(site_domains::host.eq(&host))
                    .select((site_domains::site_id, site_domains::verified_at.is_not_null()))
                    .load(conn)
                    .await?;
                if claims.iter().any(|(owner, _)| *owner == site_id) {
                    return Err(Error::invalid("host", format!("{host} is this site's already.")));
                }
                if claims.iter().any(|(_, verified)| *verified) {
                    return Err(Error::invalid("host", format!("{host} belongs to another site.")));
                }
                // Other sites' claims are unproven: they stay beside this one until one is
                // verified — at once for an admin's, whose claim takes the name.
                if by_admin {
                    diesel::delete(
                        site_domains::table
                            .filter(site_domains::host.eq(&host))
                            .filter(site_domains::verified_at.is_null()),
                    )
                    .execute(conn)
                    .await?;
                }
                let now = Utc::now();
                let domain: Domain = diesel::insert_into(site_domains::table)
                    .values((
                        site_domains::site_id.eq(site_id),
                        site_domains::host.eq(&host),
                        site_domains::token.eq(tokens::generate()),
                        site_domains::verified_at.eq(by_admin.then_some(now)),
                        site_domains::verified_by.eq(if by_admin { Proof::Admin } else { Proof::Unproved }),
                    ))
                    .returning(Domain::as_select())
                    .get_result(conn)
                    .await
                    .map_err(|err| match err {
                        // Another site's claim was verified between the check and the insert.
                        diesel::result::Error::DatabaseError(
                            diesel::result::DatabaseErrorKind::UniqueViolation,
                            _,
                        ) => Error::invalid("host", format!("{host} belongs to another site.")),
                        other => other.into(),
                    })?;
                audit(conn, &actor, "site.domain.add", &site.name, &host).await?;
                if by_admin {
                    let details = format!("{host} added by an admin");
                    record_change(conn, &actor, &site, &route_change(&details)).await?;
                }
                Ok(domain)
            })
            .await?;
        tracing::info!(user = %actor.username, site = %site.name, host = %domain.host, verified = by_admin, "domain added");
        self.wake_workers();
        Ok(domain)
    }

    /// Removes a domain from its site, and its routes.
    pub async fn remove_domain(&self, actor: Option<&Actor>, site_id: i32, domain_id: i64) -> Result<()> {
        let (actor, site) = self.managed_site(actor, site_id, Access::Write).await?;
        let actor = actor.clone();
        let mut conn = self.conn().await?;
        let removed: Option<(String, Option<DateTime<Utc>>)> = conn
            .transaction::<_, Error, _>(async |conn| {
                let removed: Option<(String, Option<DateTime<Utc>>)> = diesel::delete(
                    site_domains::table
                        .filter(site_domains::id.eq(domain_id))
                        .filter(site_domains::site_id.eq(site_id)),
                )
                .returning((site_domains::host, site_domains::verified_at))
                .get_result(conn)
                .await
                .optional()?;
                if let Some((host, verified_at)) = &removed {
                    audit(conn, &actor, "site.domain.remove", &site.name, host).await?;
                    // A verified domain is routed: its routes go with it, or not at all.
                    if verified_at.is_some() {
                        let details = format!("{host} removed");
                        record_change(conn, &actor, &site, &route_change(&details)).await?;
                    }
                }
                Ok(removed)
            })
            .await?;
        let Some((host, _)) = removed else {
            return Err(Error::NotFound("domain"));
        };
        tracing::info!(user = %actor.username, site = %site.name, host = %host, "domain removed");
        self.wake_workers();
        Ok(())
    }

    /// Looks for the domain's TXT record; when it holds the token, the domain is verified and
    /// routed. Either way the attempt is recorded (a failure with what was found instead).
    pub async fn verify_domain(&self, actor: Option<&Actor>, site_id: i32, domain_id: i64) -> Result<Domain> {
        let (actor, site) = self.managed_site(actor, site_id, Access::Write).await?;
        let actor = actor.clone();
        let mut conn = self.conn().await?;
        let domain = site_domains::table
            .filter(site_domains::id.eq(domain_id))
            .filter(site_domains::site_id.eq(site_id))
            .select(Domain::as_select())
            .first::<Domain>(&mut conn)
            .await
            .optional()?
            .ok_or(Error::NotFound("domain"))?;
        if domain.verified_at.is_some() {
            return Ok(domain);
        }
        let name = txt_name(&domain.host);
        let wanted = txt_value(&domain.token);
        let outcome = match self.dns()?.txt(&name).await {
            Ok(found) if found.iter().any(|v| v.trim() == wanted) => Ok(()),
            Ok(found) if found.is_empty() => Err(format!("No TXT record was found at {name}.")),
            Ok(found) => Err(format!(
                "The TXT record at {name} holds {}, not the value shown here.",
                found
                    .iter()
                    .map(|v| format!("{v:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Err(err) => Err(err.to_string()),
        };
        let now = Utc::now();
        let record = |outcome: &std::result::Result<(), String>| {
            diesel::update(site_domains::table.find(domain_id)).set((
                site_domains::last_check_at.eq(now),
                site_domains::last_check_error.eq(outcome.as_ref().err().cloned().unwrap_or_default()),
                site_domains::verified_at.eq(outcome.is_ok().then_some(now)),
                site_domains::verified_by.eq(if outcome.is_ok() {
                    Proof::Txt
                } else {
                    Proof::Unproved
                }),
            ))
        };
        // Proved: this claim takes the name and the others' unproven claims go, unless another
        // site's claim was verified first (between the look-up and this one's).
        let mut outcome = outcome;
        let taken = match outcome {
            Ok(()) => match conn
                .transaction::<_, Error, _>(async |conn| {
                    let taken: Domain = record(&Ok(()))
                        .returning(Domain::as_select())
                        .get_result(conn)
                        .await
                        .map_err(|err| match err {
                            diesel::result::Error::DatabaseError(
                                diesel::result::DatabaseErrorKind::UniqueViolation,
                                _,
                            ) => Error::Conflict(format!(
                                "{} was verified by another site first.",
                                domain.host
                            )),
                            other => other.into(),
                        })?;
                    diesel::delete(
                        site_domains::table
                            .filter(site_domains::host.eq(&taken.host))
                            .filter(site_domains::verified_at.is_null()),
                    )
                    .execute(conn)
                    .await?;
                    let details = format!("{} verified", taken.host);
                    record_change(conn, &actor, &site, &route_change(&details)).await?;
                    Ok(taken)
                })
                .await
            {
                Ok(taken) => Some(taken),
                Err(Error::Conflict(reason)) => {
                    outcome = Err(reason);
                    None
                }
                Err(other) => return Err(other),
            },
            Err(_) => None,
        };
        let domain = match taken {
            Some(taken) => taken,
            None => {
                record(&outcome)
                    .returning(Domain::as_select())
                    .get_result(&mut conn)
                    .await?
            }
        };
        tracing::info!(user = %actor.username, site = %site.name, host = %domain.host, verified = outcome.is_ok(), "domain check");
        if outcome.is_ok() {
            self.wake_workers();
        }
        Ok(domain)
    }

    /// Whether the edge serves `host`: a site's own name under the sites' domain, or a verified
    /// domain (what a certificate may be asked for).
    pub async fn serves_host(&self, host: &str, sites_domain: &str) -> Result<bool> {
        let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
        // The manager's certificate is never the edge's to ask for, whatever site was named
        // like it before names were checked against it.
        if host == self.settings().manager_host {
            return Ok(false);
        }
        let mut conn = self.conn().await?;
        if let Some(name) = host.strip_suffix(&format!(".{}", sites_domain.to_ascii_lowercase()))
            && !name.contains('.')
        {
            use crate::schema::sites;
            let found: Option<i32> = sites::table
                .filter(sites::name.eq(name))
                .filter(sites::state.ne(SiteState::Deleting))
                .select(sites::id)
                .first(&mut conn)
                .await
                .optional()?;
            return Ok(found.is_some());
        }
        // The host itself, or the wildcard it is a name of.
        let wildcard = wildcard_over(&host).unwrap_or_default();
        let found: Option<i64> = site_domains::table
            .filter(site_domains::host.eq(&host).or(site_domains::host.eq(&wildcard)))
            .filter(site_domains::verified_at.is_not_null())
            .select(site_domains::id)
            .first(&mut conn)
            .await
            .optional()?;
        Ok(found.is_some())
    }
}

/// Puts the site's routes again, with its domains as they now are: recorded in the same
/// transaction as the domain change it follows.
fn route_change(details: &str) -> Change<'_> {
    Change {
        kind: OperationKind::UpdateDomains,
        state: None,
        availability: None,
        audit_action: "site.domain.route",
        details,
    }
}
