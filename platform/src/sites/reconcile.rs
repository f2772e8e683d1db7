//! The reconciler: compares what the database wants with what runs — services, terminal
//! containers, edge routes — and converges, logging every correction.
//!
//! A site is reconciled only when it is settled: made whole by a create or fix once, not being
//! created or deleted, no operation queued or running for it, and its latest operation not
//! failed (a failed operation waits for
//! a person to retry it; the reconciler never hides it by finishing its work quietly). It is
//! corrected under the site's lock, which a worker holds while running the site's operations,
//! and from its row read again under that lock.
//! Objects of sites the database no longer has are removed.

use std::collections::{BTreeMap, BTreeSet};

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use orchestrator::{
    Ensured, SiteId, SiteObjects,
    disks::DiskChange,
    edge::{SiteRoutes, body_limit_tier},
};

use super::{Event, Runtime, Site, SiteKind, SiteState, load_all_sites, load_site, lock};
use crate::{
    Error, Platform, Result,
    schema::{operations, site_status, sites},
};

/// One thing the reconciler put right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Correction {
    /// The site it concerned.
    pub site: i32,
    /// What was wrong and what was done, in words.
    pub what: String,
}

impl Platform {
    /// Converges the engine and the edge on the database once. Returns what it corrected.
    pub async fn reconcile(&self, runtime: &Runtime) -> Result<Vec<Correction>> {
        // What runs is read before what is wanted: an object made after this listing belongs
        // to a site whose row exists by the time the sites are read, so it is never taken for
        // an orphan.
        // What interrupted route writes left is repaired first, so that the listing below
        // is of whole routes only.
        let repaired = runtime.edge.repair().await.map_err(engine)?;
        let objects = runtime.orchestrator.site_objects().await.map_err(engine)?;
        let routes: BTreeMap<SiteId, _> = runtime
            .edge
            .list()
            .await
            .map_err(engine)?
            .into_iter()
            .map(|r| (r.site, r))
            .collect();
        let mut conn = self.conn().await?;
        let all = load_all_sites(&mut conn).await?;
        let known: BTreeSet<SiteId> = all.iter().map(Site::engine_id).collect();
        // The latest operation of each site, when it is queued, running or failed: such a site
        // is left to its operation (or to the person who will retry it).
        // (A terminal reset is no change to what is served: one that failed does not stop the
        // site being corrected.)
        let busy: BTreeSet<i32> = diesel::sql_query(
            "SELECT site_id FROM (SELECT DISTINCT ON (site_id) site_id, state FROM operations \
             WHERE kind <> $1 ORDER BY site_id, id DESC) latest WHERE state <> $2",
        )
        .bind::<diesel::sql_types::Text, _>(super::OperationKind::ResetTerminal)
        .bind::<diesel::sql_types::Text, _>(super::OperationState::Done)
        .load::<LatestOperation>(&mut conn)
        .await?
        .into_iter()
        .map(|o| o.site_id)
        .collect();

        let mut corrections: Vec<Correction> = repaired
            .into_iter()
            .map(|what| Correction { site: 0, what })
            .collect();
        let mut routes_changed = false;
        let mut lock_conn = self.own_conn().await?;
        // One site's failure is that site's: it is recorded (for admins) and the pass goes on
        // to every other site and to the orphans.
        for site in &all {
            let settled = site.settled() && !busy.contains(&site.id);
            // A site whose lock is held has an operation running: it is left to it.
            if !settled || !lock::try_lock(&mut lock_conn, site.id).await? {
                continue;
            }
            let outcome = self
                .reconcile_site(runtime, site.id, &objects, &routes, &mut conn)
                .await;
            lock::unlock(&mut lock_conn, site.id).await?;
            let problem = match outcome {
                Ok((mut found, changed)) => {
                    corrections.append(&mut found);
                    routes_changed |= changed;
                    String::new()
                }
                Err(err) => {
                    tracing::warn!(site = %site.name, error = %err, "the reconciler could not correct a site");
                    problem_text(&err)
                }
            };
            let recorded = diesel::insert_into(site_status::table)
                .values((
                    site_status::site_id.eq(site.id),
                    site_status::reconcile_problem.eq(&problem),
                ))
                .on_conflict(site_status::site_id)
                .do_update()
                .set(site_status::reconcile_problem.eq(&problem))
                .execute(&mut conn)
                .await;
            match recorded {
                // Deleted since its lock was released: nothing to record.
                Err(diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::ForeignKeyViolation,
                    _,
                )) => {}
                other => {
                    other?;
                }
            }
        }
        let orphans = objects
            .services
            .difference(&known)
            .map(|id| (*id, Orphan::Service))
            .chain(
                objects
                    .terminals
                    .difference(&known)
                    .map(|id| (*id, Orphan::Terminal)),
            )
            .chain(
                routes
                    .keys()
                    .filter(|id| !known.contains(id))
                    .map(|id| (*id, Orphan::Routes)),
            );
        for (id, kind) in orphans {
            let removed = match kind {
                Orphan::Service => runtime.orchestrator.remove_service(id).await,
                Orphan::Terminal => runtime.orchestrator.remove_terminal(id).await,
                Orphan::Routes => runtime.edge.remove(id).await,
            };
            match removed {
                Ok(()) => {
                    routes_changed |= kind == Orphan::Routes;
                    corrections.push(orphan(id, kind.what()));
                }
                Err(err) => {
                    tracing::warn!(site = %id, what = kind.what(), error = %err, "removing an orphan failed; next pass")
                }
            }
        }
        // The database servers sites have databases on are brought back when removed (Swarm
        // itself restarts a task that dies), and no membership between sites' PostgreSQL roles
        // outlives a pass.
        let in_use = super::DatabaseKind::ALL.iter().copied().filter(|kind| {
            all.iter()
                .any(|site| site.databases.iter().any(|d| d.kind == *kind))
        });
        for kind in in_use {
            // An operator's own server is theirs to keep running.
            let (server, ensured) = match runtime.ensure_database_server(kind).await {
                Ok(ensured) => ensured,
                Err(err) => {
                    tracing::warn!(server = %kind, error = %err, "the reconciler could not ensure a database server");
                    continue;
                }
            };
            let found = match ensured {
                Ensured::Unchanged | Ensured::LeftAlone => None,
                Ensured::Created => Some("was missing; started it"),
                Ensured::Updated => Some("was not as it should be; updated it"),
            };
            if let Some(found) = found {
                corrections.push(Correction {
                    site: 0,
                    what: format!("the {} server {found}", kind.label()),
                });
            }
            if kind == super::DatabaseKind::Postgresql {
                match runtime.sweep_database_roles(&server).await {
                    Ok(0) => {}
                    Ok(revoked) => corrections.push(Correction {
                        site: 0,
                        what: format!("revoked {revoked} membership(s) between sites' database roles"),
                    }),
                    Err(err) => {
                        tracing::warn!(error = %err, "the reconciler could not check the sites' database roles")
                    }
                }
            }
        }
        // Traefik's file is compared on every pass too (a write lost to a crash, or made by
        // hand): written again when it differs from the routes in place.
        let rewritten = runtime.write_traefik_file().await.map_err(Error::internal)?;
        if rewritten && !routes_changed {
            corrections.push(Correction {
                site: 0,
                what: "Traefik's file differed from the routes; wrote it again".to_owned(),
            });
        }
        for correction in &corrections {
            tracing::info!(site = correction.site, correction = %correction.what, "reconciled");
        }
        Ok(corrections)
    }

    /// Corrects one site, under its lock. The site and its latest operation are read again
    /// first: what was read before the lock may have changed since (an operation queued and
    /// run meanwhile), and a correction from stale settings would undo it. Returns the
    /// corrections and whether routes changed.
    async fn reconcile_site(
        &self,
        runtime: &Runtime,
        site_id: i32,
        objects: &SiteObjects,
        routes: &BTreeMap<SiteId, SiteRoutes>,
        conn: &mut diesel_async::AsyncPgConnection,
    ) -> Result<(Vec<Correction>, bool)> {
        let Some(site) = load_site(conn, site_id).await? else {
            return Ok((Vec::new(), false));
        };
        let latest: Option<super::OperationState> = operations::table
            .filter(operations::site_id.eq(site_id))
            .filter(operations::kind.ne(super::OperationKind::ResetTerminal))
            .order(operations::id.desc())
            .select(operations::state)
            .first(conn)
            .await
            .optional()?;
        let settled = site.settled() && latest.is_none_or(|state| state == super::OperationState::Done);
        if !settled {
            return Ok((Vec::new(), false));
        }
        let mut corrections = Vec::new();
        let id = site.engine_id();
        if site.provisioned {
            let what = match runtime.ensure_disk(&site).await.map_err(engine)? {
                DiskChange::Ready => None,
                DiskChange::Mounted => Some("its disk was not mounted; mounted it"),
                DiskChange::Grown => Some("its disk was smaller than its quota; grew it"),
                DiskChange::Made => {
                    // Its files are gone: it gets its starter files again, as when it was made.
                    runtime
                        .run(super::Action::CreateDirectory, &site)
                        .await
                        .map_err(Error::internal)?;
                    Some("its disk was missing; made an empty one with its starter files")
                }
            };
            corrections.extend(what.map(|what| Correction {
                site: site.id,
                what: what.to_owned(),
            }));
        }
        match site.kind {
            SiteKind::Dynamic => {
                // A service the engine is updating, or rolled back (its new version never
                // answered), is left as it runs: the operation said why, and a person's retry or
                // fix tries the new version again.
                match runtime.orchestrator.reconcile_service(&runtime.spec(&site)).await {
                    Ok(Ensured::Created) => corrections.push(Correction {
                        site: site.id,
                        what: "its service was missing; created it again".to_owned(),
                    }),
                    Ok(Ensured::Updated) => corrections.push(Correction {
                        site: site.id,
                        what: "its service differed from its settings; updated it".to_owned(),
                    }),
                    Ok(Ensured::Unchanged | Ensured::LeftAlone) => {}
                    Err(err) => {
                        tracing::warn!(site = %site.name, error = %err, "reconciling a service failed");
                    }
                }
                self.follow_service(runtime, &site, conn).await?;
            }
            SiteKind::Static if objects.services.contains(&id) => {
                runtime.orchestrator.remove_service(id).await.map_err(engine)?;
                corrections.push(Correction {
                    site: site.id,
                    what: "a static site had a service; removed it".to_owned(),
                });
            }
            SiteKind::Static => {}
        }
        let mut want = runtime.routes(&site);
        want.body_limit = body_limit_tier(want.body_limit);
        want.hosts.sort();
        let sorted = |r: &SiteRoutes| {
            let mut r = r.clone();
            r.hosts.sort();
            r
        };
        let mut have = routes.get(&id).map(sorted);
        if have.as_ref() != Some(&want) {
            // The listing is from before the lock: look again before calling it drift.
            have = runtime
                .edge
                .list()
                .await
                .map_err(engine)?
                .iter()
                .find(|r| r.site == id)
                .map(sorted);
        }
        let mut routes_changed = false;
        if have.as_ref() != Some(&want) {
            runtime.put_routes(&site).await.map_err(engine)?;
            routes_changed = true;
            corrections.push(Correction {
                site: site.id,
                what: if have.is_none() {
                    "its routes were missing from the edge; put them back".to_owned()
                } else {
                    "its routes on the edge differed; put them again".to_owned()
                },
            });
        }
        Ok((corrections, routes_changed))
    }

    /// Moves a served dynamic site between running and failing as its service does.
    async fn follow_service(
        &self,
        runtime: &Runtime,
        site: &Site,
        conn: &mut diesel_async::AsyncPgConnection,
    ) -> Result<()> {
        if site.availability != super::Availability::Enabled {
            return Ok(());
        }
        let Ok(status) = runtime.orchestrator.status(site.engine_id()).await else {
            return Ok(());
        };
        let event = match site.state {
            SiteState::Running if status.running == 0 && status.last_error.is_some() => Event::Failed,
            SiteState::Failing if status.running > 0 => Event::Recovered,
            _ => return Ok(()),
        };
        let next = site.state.apply(event).map_err(Error::internal)?;
        diesel::update(sites::table.find(site.id).filter(sites::state.eq(site.state)))
            .set((sites::state.eq(next), sites::updated_at.eq(chrono::Utc::now())))
            .execute(conn)
            .await?;
        tracing::info!(site = %site.name, from = %site.state, to = %next, reason = ?status.last_error, "site state follows its service");
        Ok(())
    }
}

#[derive(QueryableByName)]
struct LatestOperation {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    site_id: i32,
}

/// What of a site the database no longer has is still there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Orphan {
    Service,
    Terminal,
    Routes,
}

impl Orphan {
    fn what(self) -> &'static str {
        match self {
            Self::Service => "service",
            Self::Terminal => "terminal container",
            Self::Routes => "routes",
        }
    }
}

/// Why a site could not be corrected, for admins: the engine's or edge's words, never a
/// database's internals.
fn problem_text(err: &Error) -> String {
    match err {
        Error::Internal(cause) => cause.to_string(),
        other => other.to_string(),
    }
    .chars()
    .take(500)
    .collect()
}

fn orphan(id: SiteId, what: &str) -> Correction {
    Correction {
        site: i32::try_from(id.0).unwrap_or(i32::MAX),
        what: format!("no site {id} exists; removed its {what}"),
    }
}

/// The engine's or the edge's failure, in its own words: what the reconciler records as a
/// site's problem for admins (never shown to members).
fn engine(err: orchestrator::Error) -> Error {
    Error::internal(err)
}
