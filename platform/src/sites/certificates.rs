//! Certificates of the hosts Director serves over HTTPS, as the edge reports them: pending,
//! issued (until when), or failed (the CA's reason, when the next attempt starts). The
//! certificate worker's policy is here ([`Platform::check_certificates`]: which hosts, when to
//! ask, what a wildcard covers; [`Platform::record_certificate_event`]: what Caddy's log says);
//! the `director` binary only schedules it. The manager reads the rows. The edge itself never
//! waits on them: it asks [`Platform::serves_host`] and gets its certificates on demand.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use diesel::{
    prelude::*,
    sql_types::{Int4, Text, Timestamptz},
};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};

use orchestrator::edge::{Caddy, Certificate, CertificateEvent};

use super::{SiteState, wildcard_over};
use crate::{
    Access, Actor, Error, Permission, Platform, Result, Role, authorize,
    notify::{Notice, members_of, people_with, told_since},
    schema::{certificates, site_domains, sites},
};

use model::notification::Event as Told;

/// A certificate that expires within this long, not renewed yet, is told of.
const EXPIRY_WARNING: Duration = Duration::days(14);

pub use model::certificate::CertificateState;

/// What Director knows of one host's certificate.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = certificates, check_for_backend(diesel::pg::Pg))]
pub struct CertificateRecord {
    /// The host.
    pub host: String,
    /// Its state.
    pub state: CertificateState,
    /// When the certificate the edge holds expires.
    pub not_after: Option<DateTime<Utc>>,
    /// Why the last attempt failed, in the CA's words; empty once issued.
    pub error: String,
    /// When the last attempt failed.
    pub failed_at: Option<DateTime<Utc>>,
    /// When the next attempt starts.
    pub retry_at: Option<DateTime<Utc>>,
    /// Failures since the last certificate was issued.
    pub attempts: i32,
    /// When Director last started a handshake to get it.
    pub requested_at: Option<DateTime<Utc>>,
}

/// A host of a site and its certificate's record, if it has one yet.
#[derive(Debug, Clone)]
pub struct HostCertificate {
    /// The host.
    pub host: String,
    /// Its certificate's record; None before it was first asked for.
    pub record: Option<CertificateRecord>,
}

/// How long after a pending request without news Director asks again (a request lost with a
/// restarted edge, say).
const PENDING_PATIENCE: Duration = Duration::minutes(10);
/// How long past a failure's retry time Director leaves the edge to retry by itself before it
/// asks again (the edge forgets its retries when it restarts).
const RETRY_GRACE: Duration = Duration::seconds(30);

impl CertificateRecord {
    /// Whether Director should start a handshake for this host now, given that the edge holds
    /// no certificate for it (`record` None: never asked for).
    pub fn due(record: Option<&Self>, now: DateTime<Utc>) -> bool {
        let Some(record) = record else {
            return true;
        };
        match record.state {
            // It was issued and is gone from the edge's storage: get it again.
            CertificateState::Issued => true,
            CertificateState::Pending => record.requested_at.is_none_or(|at| at + PENDING_PATIENCE <= now),
            CertificateState::Failed => match record.retry_at {
                Some(retry_at) => {
                    retry_at + RETRY_GRACE <= now && record.requested_at.is_none_or(|at| at < retry_at)
                }
                None => true,
            },
        }
    }
}

/// Director's own backoff after a failure the edge gave no retry time for: a minute, doubling
/// with each failure, at most six hours.
pub fn certificate_backoff(attempts: i32) -> Duration {
    let doublings = u32::try_from(attempts.clamp(1, 20) - 1).unwrap_or(0);
    Duration::minutes(1i64 << doublings.min(9)).min(Duration::hours(6))
}

/// A host Director serves, and its site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedHost {
    /// The host.
    pub host: String,
    /// The site's id.
    pub site_id: i32,
    /// The site's name.
    pub site_name: String,
}

/// A certificate that needs an admin's eye, with its site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateProblem {
    /// The host and its certificate.
    pub record: CertificateRecord,
    /// The site it serves.
    pub site_id: i32,
    /// Its name.
    pub site_name: String,
}

/// Handshakes started per pass at most: the CA's rate limits are the edge's to respect, and a
/// thousand new hosts at once would only queue there.
const REQUESTS_PER_PASS: usize = 10;

/// Which hosts a pass of [`Platform::check_certificates`] reads from the edge's storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificatePass {
    /// Those without an issued certificate (new, pending, failing): every few seconds.
    NotIssued,
    /// Every served host, the issued ones too (a renewal shows as a new expiry): now and then.
    All,
}

impl Platform {
    /// Compares served hosts' records with the certificates the edge holds, records what it
    /// finds, starts a handshake for hosts that have none and are due
    /// ([`CertificateRecord::due`], at most a few per pass), and forgets the records of hosts
    /// no longer served (keeping the names under a served wildcard).
    pub async fn check_certificates(&self, edge: &Caddy, pass: CertificatePass) -> Result<()> {
        let served = self.served_hosts().await?;
        let records: HashMap<String, CertificateRecord> = self
            .certificate_records()
            .await?
            .into_iter()
            .map(|r| (r.host.clone(), r))
            .collect();
        let now = Utc::now();
        let mut requests = 0;
        // A wildcard's names get their certificates one by one as visitors come: none to ask for.
        for host in served.iter().filter(|h| !h.host.starts_with("*.")) {
            let record = records.get(&host.host);
            if pass == CertificatePass::NotIssued
                && record.is_some_and(|r| r.state == CertificateState::Issued)
            {
                continue;
            }
            match edge.certificate(&host.host) {
                Ok(Some(certificate)) => {
                    let not_after = expiry(certificate);
                    // A failing renewal keeps its failure on show until a new certificate lands.
                    let known = record.is_some_and(|r| {
                        r.not_after == Some(not_after) && r.state != CertificateState::Pending
                    });
                    if !known {
                        self.certificate_issued(&host.host, not_after).await?;
                    }
                }
                Ok(None) if requests < REQUESTS_PER_PASS && CertificateRecord::due(record, now) => {
                    requests += 1;
                    self.certificate_requested(&host.host).await?;
                    let (edge, platform, name) = (edge.clone(), self.clone(), host.host.clone());
                    tokio::spawn(async move {
                        match edge.request_certificate(&name).await {
                            Ok(outcome) => tracing::debug!(host = %name, ?outcome, "certificate requested"),
                            Err(err) => {
                                tracing::warn!(host = %name, error = %err, "requesting a certificate failed");
                                if let Err(err) = platform.certificate_request_lost(&name).await {
                                    tracing::warn!(host = %name, error = %err, "recording a lost request failed");
                                }
                            }
                        }
                    });
                }
                Ok(None) => {}
                Err(err) => tracing::warn!(host = %host.host, error = %err, "reading a certificate failed"),
            }
        }
        // Kept: served hosts, and the names under served wildcards that have records.
        let wildcards: HashSet<&str> = served
            .iter()
            .map(|h| h.host.as_str())
            .filter(|h| h.starts_with("*."))
            .collect();
        let covered = records
            .keys()
            .filter(|host| wildcard_over(host).is_some_and(|w| wildcards.contains(w.as_str())));
        let keep: Vec<String> = served
            .iter()
            .map(|h| h.host.clone())
            .chain(covered.cloned())
            .collect();
        self.forget_certificates_except(&keep).await?;
        if pass == CertificatePass::All {
            self.tell_expiring_certificates().await?;
        }
        Ok(())
    }

    /// Records what the edge's log reported. A CA that no longer knows the stored ACME account
    /// (`accountDoesNotExist`) gets a new one at the next attempt: Caddy would otherwise fail
    /// with the old one for ever.
    pub async fn record_certificate_event(&self, edge: &Caddy, event: CertificateEvent) -> Result<()> {
        match event {
            CertificateEvent::Obtained { host } => {
                if let Some(certificate) = edge.certificate(&host)? {
                    self.certificate_issued(&host, expiry(certificate)).await?;
                }
            }
            CertificateEvent::Failed { host, reason, at } => {
                self.certificate_failed(&host, &reason, timestamp(at)).await?;
                if reason.contains("accountDoesNotExist") {
                    tracing::warn!(
                        "the CA does not know the edge's ACME account; a new one is registered at the next attempt"
                    );
                    edge.forget_acme_account()?;
                }
            }
            CertificateEvent::WillRetry { host, at, .. } => {
                self.certificate_retry(&host, timestamp(at)).await?;
            }
        }
        Ok(())
    }

    /// Whether Director's edge gets the sites' certificates (Caddy with ACME), so that there
    /// are records to show. Behind Traefik, Traefik's resolver keeps its certificates to itself.
    pub fn tracks_certificates(&self) -> bool {
        self.runtime_if_up()
            .is_some_and(|r| r.traefik.is_none() && r.edge.acme().is_some())
    }

    /// Every host Director serves: each site's own name and its verified domains.
    pub async fn served_hosts(&self) -> Result<Vec<ServedHost>> {
        let mut conn = self.conn().await?;
        let own: Vec<(i32, String)> = sites::table
            .filter(sites::state.ne(SiteState::Deleting))
            .select((sites::id, sites::name))
            .load(&mut conn)
            .await?;
        let domains: Vec<(String, i32, String)> = site_domains::table
            .inner_join(sites::table)
            .filter(site_domains::verified_at.is_not_null())
            .filter(sites::state.ne(SiteState::Deleting))
            .select((site_domains::host, sites::id, sites::name))
            .load(&mut conn)
            .await?;
        let domain = &self.settings().sites_domain;
        Ok(own
            .into_iter()
            .map(|(site_id, site_name)| ServedHost {
                host: format!("{site_name}.{domain}"),
                site_id,
                site_name,
            })
            .chain(domains.into_iter().map(|(host, site_id, site_name)| ServedHost {
                host,
                site_id,
                site_name,
            }))
            .collect())
    }

    /// Every certificate record (for the certificate worker).
    pub async fn certificate_records(&self) -> Result<Vec<CertificateRecord>> {
        let mut conn = self.conn().await?;
        Ok(certificates::table
            .select(CertificateRecord::as_select())
            .load(&mut conn)
            .await?)
    }

    /// Director started a handshake for `host`: pending, unless it is failing (then the reason
    /// stays on show until the attempt's outcome).
    pub async fn certificate_requested(&self, host: &str) -> Result<()> {
        let mut conn = self.conn().await?;
        diesel::sql_query(
            "INSERT INTO certificates (host, state, requested_at) VALUES ($1, $2, now()) \
             ON CONFLICT (host) DO UPDATE SET requested_at = now(), updated_at = now(), \
             state = CASE WHEN certificates.state = $3 THEN $3 ELSE $2 END",
        )
        .bind::<Text, _>(host)
        .bind::<Text, _>(CertificateState::Pending)
        .bind::<Text, _>(CertificateState::Failed)
        .execute(&mut conn)
        .await?;
        Ok(())
    }

    /// Director's handshake for `host` did not reach the edge (restarting, say): the host is
    /// due again at the next pass rather than after [`PENDING_PATIENCE`].
    pub async fn certificate_request_lost(&self, host: &str) -> Result<()> {
        let mut conn = self.conn().await?;
        diesel::update(certificates::table.find(host))
            .set(certificates::requested_at.eq(None::<DateTime<Utc>>))
            .execute(&mut conn)
            .await?;
        Ok(())
    }

    /// The edge holds a certificate for `host` until `not_after`.
    pub async fn certificate_issued(&self, host: &str, not_after: DateTime<Utc>) -> Result<()> {
        let mut conn = self.conn().await?;
        diesel::sql_query(
            "INSERT INTO certificates (host, state, not_after) VALUES ($1, $3, $2) \
             ON CONFLICT (host) DO UPDATE SET state = $3, not_after = $2, error = '', \
             failed_at = NULL, retry_at = NULL, attempts = 0, updated_at = now()",
        )
        .bind::<Text, _>(host)
        .bind::<Timestamptz, _>(not_after)
        .bind::<Text, _>(CertificateState::Issued)
        .execute(&mut conn)
        .await?;
        tracing::info!(host, %not_after, "certificate issued");
        Ok(())
    }

    /// An attempt for `host` failed at `at` for `reason`; the next one is at Director's own
    /// backoff until the edge says when it retries ([`Platform::certificate_retry`]). A failure
    /// reported again (the same or an older time) is not counted twice.
    pub async fn certificate_failed(&self, host: &str, reason: &str, at: DateTime<Utc>) -> Result<()> {
        let mut conn = self.conn().await?;
        let recorded = conn
            .transaction::<_, Error, _>(async |conn| {
                let failed: Vec<FailedRow> = diesel::sql_query(
                    "INSERT INTO certificates (host, state, error, failed_at, attempts) \
                     VALUES ($1, $4, $2, $3, 1) \
                     ON CONFLICT (host) DO UPDATE SET state = $4, error = $2, failed_at = $3, \
                     attempts = certificates.attempts + 1, updated_at = now() \
                     WHERE certificates.failed_at IS NULL OR certificates.failed_at < $3 \
                     RETURNING attempts, not_after",
                )
                .bind::<Text, _>(host)
                .bind::<Text, _>(reason)
                .bind::<Timestamptz, _>(at)
                .bind::<Text, _>(CertificateState::Failed)
                .load(conn)
                .await?;
                // No row: this failure (or a later one) is on record already — the edge's log
                // is read again from a little before each (re)start.
                let Some(failed) = failed.into_iter().next() else {
                    return Ok(None);
                };
                diesel::update(certificates::table.find(host))
                    .set(certificates::retry_at.eq(at + certificate_backoff(failed.attempts)))
                    .execute(conn)
                    .await?;
                // The first failure of a run is told (later ones are retries of the same
                // trouble).
                let told = failed.attempts == 1
                    && self
                        .tell_of_failed_certificate(conn, host, reason, failed.not_after)
                        .await?;
                Ok(Some((failed.attempts, told)))
            })
            .await?;
        let Some((attempts, told)) = recorded else {
            return Ok(());
        };
        if told {
            self.wake_deliveries();
        }
        tracing::warn!(host, reason, attempts, "getting a certificate failed");
        Ok(())
    }

    /// The site serving `host` (its name or a verified domain of it), read in the caller's
    /// transaction: (its id, its name).
    async fn site_serving(&self, conn: &mut AsyncPgConnection, host: &str) -> Result<Option<(i32, String)>> {
        let suffix = format!(".{}", self.settings().sites_domain);
        if let Some(name) = host.strip_suffix(&suffix).filter(|name| !name.contains('.')) {
            return Ok(sites::table
                .filter(sites::name.eq(name))
                .filter(sites::state.ne(SiteState::Deleting))
                .select((sites::id, sites::name))
                .first(conn)
                .await
                .optional()?);
        }
        Ok(site_domains::table
            .inner_join(sites::table)
            .filter(site_domains::host.eq(host))
            .filter(site_domains::verified_at.is_not_null())
            .filter(sites::state.ne(SiteState::Deleting))
            .select((sites::id, sites::name))
            .first(conn)
            .await
            .optional()?)
    }

    /// Tells the members of the site serving `host`, and the admins, that getting its
    /// certificate failed — at most once an hour per site, however many of its hosts fail
    /// (a member adding domain after domain floods nobody). Returns whether anyone was told.
    async fn tell_of_failed_certificate(
        &self,
        conn: &mut AsyncPgConnection,
        host: &str,
        reason: &str,
        valid_until: Option<DateTime<Utc>>,
    ) -> Result<bool> {
        let Some((site_id, site_name)) = self.site_serving(conn, host).await? else {
            return Ok(false);
        };
        let link = format!("/sites/{site_id}");
        let hour_ago = Utc::now() - Duration::hours(1);
        if told_since(conn, Told::CertificateProblem, &link, hour_ago).await? {
            return Ok(false);
        }
        let reason: String = reason.chars().take(500).collect();
        let notice = match valid_until.filter(|until| *until > Utc::now()) {
            // A renewal failed: the certificate it was to replace still serves.
            Some(until) => Notice {
                event: Told::CertificateProblem,
                subject: format!("Renewing the certificate of {host} failed"),
                body: format!(
                    "Renewing the HTTPS certificate of {host} (the site {site_name}) failed: {reason}\nThe current one is valid until {} UTC; renewal is tried again by itself, with a growing wait.",
                    until.format("%Y-%m-%d %H:%M")
                ),
                link,
            },
            None => Notice {
                event: Told::CertificateProblem,
                subject: format!("No HTTPS certificate for {host}"),
                body: format!(
                    "Getting a certificate for {host} (the site {site_name}) failed: {reason}\nIt is tried again by itself, with a growing wait; visitors get no HTTPS there meanwhile."
                ),
                link,
            },
        };
        self.tell_of_certificate(conn, site_id, &notice).await?;
        Ok(true)
    }

    /// Tells a site's members and the admins of a certificate's trouble.
    async fn tell_of_certificate(
        &self,
        conn: &mut AsyncPgConnection,
        site_id: i32,
        notice: &Notice,
    ) -> Result<()> {
        let mut told = members_of(conn, site_id).await?;
        told.extend(people_with(conn, Role::Admin).await?);
        self.notify(conn, &told, notice).await
    }

    /// Tells the members and the admins of each served host whose certificate expires within
    /// 14 days (or has expired) and was not renewed — a renewal that keeps failing among them:
    /// once per expiry (a renewal brings a new one), however many managers look. Returns how
    /// many were told of.
    pub async fn tell_expiring_certificates(&self) -> Result<usize> {
        let now = Utc::now();
        let expiring: Vec<(String, DateTime<Utc>)> = {
            let mut conn = self.conn().await?;
            certificates::table
                .filter(certificates::not_after.is_not_null())
                .filter(certificates::not_after.lt(now + EXPIRY_WARNING))
                .filter(certificates::expiry_told.is_distinct_from(certificates::not_after))
                .select((certificates::host, certificates::not_after.assume_not_null()))
                .load(&mut conn)
                .await?
        };
        let mut conn = self.conn().await?;
        let mut told = 0;
        for (host, not_after) in expiring {
            let when = if not_after > now { "expires" } else { "expired" };
            let told_now = conn
                .transaction::<_, Error, _>(async |conn| {
                    // Whoever marks it first tells of it.
                    let marked = diesel::update(certificates::table.find(&host))
                        .filter(certificates::not_after.eq(not_after))
                        .filter(certificates::expiry_told.is_distinct_from(not_after))
                        .set(certificates::expiry_told.eq(not_after))
                        .execute(conn)
                        .await?;
                    if marked == 0 {
                        return Ok(false);
                    }
                    let Some((site_id, site_name)) = self.site_serving(conn, &host).await? else {
                        return Ok(false);
                    };
                    let notice = Notice {
                        event: Told::CertificateProblem,
                        subject: format!(
                            "The certificate of {host} {when} on {}",
                            not_after.format("%Y-%m-%d")
                        ),
                        body: format!(
                            "The HTTPS certificate of {host} (the site {site_name}) {when} at {} UTC and was not renewed yet. Renewal is tried by itself; until it succeeds, visitors are warned that the site is not secure once it has expired.",
                            not_after.format("%Y-%m-%d %H:%M")
                        ),
                        link: format!("/sites/{site_id}"),
                    };
                    self.tell_of_certificate(conn, site_id, &notice).await?;
                    Ok(true)
                })
                .await?;
            told += usize::from(told_now);
        }
        if told > 0 {
            self.wake_deliveries();
        }
        Ok(told)
    }

    /// The edge retries `host` by itself at `at`.
    pub async fn certificate_retry(&self, host: &str, at: DateTime<Utc>) -> Result<()> {
        let mut conn = self.conn().await?;
        diesel::update(certificates::table.find(host))
            .filter(certificates::state.eq(CertificateState::Failed))
            // A retry time read again from an older failure's report changes nothing.
            .filter(certificates::failed_at.lt(at))
            .set((
                certificates::retry_at.eq(Some(at)),
                certificates::updated_at.eq(diesel::dsl::now),
            ))
            .execute(&mut conn)
            .await?;
        Ok(())
    }

    /// Removes the records of hosts no longer served.
    pub async fn forget_certificates_except(&self, served: &[String]) -> Result<usize> {
        let mut conn = self.conn().await?;
        Ok(
            diesel::delete(certificates::table.filter(certificates::host.ne_all(served)))
                .execute(&mut conn)
                .await?,
        )
    }

    /// The certificate of each host of a site that gets one — its own name, then its verified
    /// domains (a wildcard's names get theirs one by one, on their first visits). A host never
    /// asked for has no record yet, and none has one when Director's edge gets no certificates
    /// ([`Platform::tracks_certificates`]).
    pub async fn site_certificates(
        &self,
        actor: Option<&Actor>,
        site_id: i32,
    ) -> Result<Vec<HostCertificate>> {
        let site = self.site(actor, site_id).await?;
        let hosts: Vec<String> = std::iter::once(format!("{}.{}", site.name, self.settings().sites_domain))
            .chain(site.domains.into_iter().filter(|d| !d.starts_with("*.")))
            .collect();
        let mut conn = self.conn().await?;
        let mut records: HashMap<String, CertificateRecord> = certificates::table
            .filter(certificates::host.eq_any(&hosts))
            .select(CertificateRecord::as_select())
            .load::<CertificateRecord>(&mut conn)
            .await?
            .into_iter()
            .map(|r| (r.host.clone(), r))
            .collect();
        Ok(hosts
            .into_iter()
            .map(|host| HostCertificate {
                record: records.remove(&host),
                host,
            })
            .collect())
    }

    /// Certificates of served hosts that failed or expire within `within`, soonest first:
    /// what an admin must look at.
    pub async fn certificate_problems(
        &self,
        actor: Option<&Actor>,
        within: Duration,
    ) -> Result<Vec<CertificateProblem>> {
        authorize(actor, Permission::Administer, Access::Read)?;
        let served: HashMap<String, ServedHost> = self
            .served_hosts()
            .await?
            .into_iter()
            .map(|h| (h.host.clone(), h))
            .collect();
        let mut conn = self.conn().await?;
        let records = certificates::table
            .filter(
                certificates::state
                    .eq(CertificateState::Failed)
                    .or(certificates::not_after.lt(Utc::now() + within)),
            )
            .order((certificates::not_after.asc().nulls_first(), certificates::host))
            .select(CertificateRecord::as_select())
            .load::<CertificateRecord>(&mut conn)
            .await?;
        Ok(records
            .into_iter()
            .filter_map(|record| {
                // The host itself, or the wildcard it is a name of.
                let host = served
                    .get(&record.host)
                    .or_else(|| served.get(&wildcard_over(&record.host)?))?;
                Some(CertificateProblem {
                    site_id: host.site_id,
                    site_name: host.site_name.clone(),
                    record,
                })
            })
            .collect())
    }
}

#[derive(QueryableByName)]
struct FailedRow {
    #[diesel(sql_type = Int4)]
    attempts: i32,
    #[diesel(sql_type = diesel::sql_types::Nullable<Timestamptz>)]
    not_after: Option<DateTime<Utc>>,
}

fn expiry(certificate: Certificate) -> DateTime<Utc> {
    DateTime::from_timestamp(certificate.not_after, 0).unwrap_or_default()
}

/// Seconds since the Unix epoch as a time (Caddy's log times are fractional).
#[allow(clippy::cast_possible_truncation)]
fn timestamp(seconds: f64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis((seconds * 1000.0) as i64).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(state: CertificateState) -> CertificateRecord {
        CertificateRecord {
            host: "shop.example.org".to_owned(),
            state,
            not_after: None,
            error: String::new(),
            failed_at: None,
            retry_at: None,
            attempts: 0,
            requested_at: None,
        }
    }

    #[test]
    fn a_host_is_asked_for_when_new_lost_or_past_its_retry() {
        let now = Utc::now();
        assert!(CertificateRecord::due(None, now), "never asked for");
        assert!(
            CertificateRecord::due(Some(&record(CertificateState::Issued)), now),
            "issued, but the edge no longer holds it"
        );

        let mut pending = record(CertificateState::Pending);
        pending.requested_at = Some(now - Duration::minutes(1));
        assert!(!CertificateRecord::due(Some(&pending), now), "asked a minute ago");
        pending.requested_at = Some(now - Duration::minutes(11));
        assert!(
            CertificateRecord::due(Some(&pending), now),
            "asked long ago with no news"
        );

        let mut failed = record(CertificateState::Failed);
        failed.requested_at = Some(now - Duration::minutes(5));
        failed.retry_at = Some(now + Duration::minutes(1));
        assert!(
            !CertificateRecord::due(Some(&failed), now),
            "the edge retries in a minute"
        );
        failed.retry_at = Some(now - Duration::seconds(10));
        assert!(
            !CertificateRecord::due(Some(&failed), now),
            "the edge is retrying right now"
        );
        failed.retry_at = Some(now - Duration::minutes(1));
        assert!(
            CertificateRecord::due(Some(&failed), now),
            "the edge did not retry"
        );
        failed.requested_at = Some(now - Duration::seconds(5));
        assert!(!CertificateRecord::due(Some(&failed), now), "asked again since");
    }

    #[test]
    fn directors_backoff_doubles_up_to_six_hours() {
        assert_eq!(certificate_backoff(0), Duration::minutes(1));
        assert_eq!(certificate_backoff(1), Duration::minutes(1));
        assert_eq!(certificate_backoff(2), Duration::minutes(2));
        assert_eq!(certificate_backoff(5), Duration::minutes(16));
        assert_eq!(certificate_backoff(100), Duration::hours(6));
    }
}
