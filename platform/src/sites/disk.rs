//! How much disk each site's files take: measured in the background (`du`, which never follows
//! a link and never opens a file, so nothing a tenant makes can stall or mislead it), recorded
//! per site, and enforced on what Director itself writes there (the file manager and SFTP
//! refuse to write past the quota). Crossing the quota is recorded in the audit log and shown
//! on the site's page. What the site's own code writes is capped by the kernel: the site's
//! directory is a disk of its own, as large as the quota (`orchestrator::disks`).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use std::sync::Arc;

use super::{Runtime, Site, SiteState};
use crate::files::Disk;
use crate::{Actor, Platform, Result, schema::site_status};

/// The longest one site's measurement may take.
const MEASURE_FOR: std::time::Duration = std::time::Duration::from_secs(120);

/// A site's disk, as last measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskUse {
    /// Bytes its files take; None until first measured.
    pub bytes: Option<u64>,
    /// The quota, in bytes.
    pub quota: u64,
    /// When it was measured.
    pub measured_at: Option<DateTime<Utc>>,
    /// Since when it has been over its quota.
    pub over_since: Option<DateTime<Utc>>,
}

impl DiskUse {
    /// Bytes that may still be written; None when not yet measured.
    pub fn room(&self) -> Option<u64> {
        self.bytes.map(|used| self.quota.saturating_sub(used))
    }
}

/// Measures `dir` with `du`: the bytes its files take on disk. `du` runs as its own process,
/// so a huge or deep tree never holds the manager.
pub async fn measure(dir: &std::path::Path) -> std::io::Result<u64> {
    // At the lowest priority, and never for long: a tree of millions of files is measured
    // as far as `du` gets in its time, and tried again at the next pass.
    let run = tokio::process::Command::new("nice")
        .args(["-n", "19", "du", "-s", "-x", "-B1", "--"])
        .arg(dir)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(MEASURE_FOR, run)
        .await
        .map_err(|_| std::io::Error::other("measuring took too long"))??;
    // Files that vanish while it runs make du complain and exit 1; its total still stands.
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| std::io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_owned()))
}

impl Platform {
    /// The site's disk use, for its members and admins.
    pub async fn site_disk(&self, actor: Option<&Actor>, site_id: i32) -> Result<DiskUse> {
        self.site(actor, site_id).await?;
        let mut disk = self.disk_of(site_id).await?;
        // This process's writers count what they write between measurements.
        if let Some(counter) = self.known_disk(site_id) {
            disk.bytes = Some(counter.used());
        }
        Ok(disk)
    }

    fn known_disk(&self, site_id: i32) -> Option<Arc<Disk>> {
        self.inner
            .disks
            .lock()
            .expect("disks lock")
            .get(&site_id)
            .cloned()
    }

    /// The site's disk counter, shared by everything in this process that writes to its
    /// files. A site never measured yet is measured now: writes are never let through
    /// unbounded for want of a measurement.
    pub async fn disk_counter(&self, site: &Site, runtime: &Runtime) -> Result<Arc<Disk>> {
        if let Some(counter) = self.known_disk(site.id) {
            return Ok(counter);
        }
        let used = match self.disk_of(site.id).await?.bytes {
            Some(bytes) => bytes,
            None => {
                let bytes = measure(&runtime.directory(site))
                    .await
                    .map_err(crate::Error::internal)?;
                self.record_disk(site, bytes).await?;
                bytes
            }
        };
        let counter = Arc::new(Disk::new(used, self.settings().site_disk_bytes));
        Ok(self
            .inner
            .disks
            .lock()
            .expect("disks lock")
            .entry(site.id)
            .or_insert(counter)
            .clone())
    }

    pub(crate) async fn disk_of(&self, site_id: i32) -> Result<DiskUse> {
        let mut conn = self.conn().await?;
        let (bytes, measured_at, over_since): (Option<i64>, Option<DateTime<Utc>>, Option<DateTime<Utc>>) =
            site_status::table
                .find(site_id)
                .select((
                    site_status::disk_bytes,
                    site_status::disk_measured_at,
                    site_status::disk_over_since,
                ))
                .first(&mut conn)
                .await
                .optional()?
                .unwrap_or((None, None, None));
        Ok(DiskUse {
            bytes: bytes.and_then(|b| u64::try_from(b).ok()),
            quota: self.settings().site_disk_bytes,
            measured_at,
            over_since,
        })
    }

    /// Measures every site's files and records them; a site that goes over its quota gets an
    /// audit line (and its page says so) once, when it crosses. Returns how many were measured.
    pub async fn measure_disks(&self, runtime: &Runtime) -> Result<usize> {
        let all = super::load_all_sites(&mut *self.conn().await?).await?;
        let mut measured = 0;
        for site in all.into_iter().filter(|s| s.state != SiteState::Deleting) {
            let bytes = match measure(&runtime.directory(&site)).await {
                Ok(bytes) => bytes,
                Err(err) => {
                    tracing::debug!(site = %site.name, error = %err, "measuring a site's files failed");
                    continue;
                }
            };
            // A site deleted meanwhile, or a database that went away, is this site's problem
            // only: the pass goes on.
            match self.record_disk(&site, bytes).await {
                Ok(()) => measured += 1,
                Err(err) => {
                    tracing::debug!(site = %site.name, error = %err, "recording a site's disk use failed")
                }
            }
        }
        Ok(measured)
    }

    /// Records what `site`'s files take; crossing its quota writes an audit line, once.
    async fn record_disk(&self, site: &Site, bytes: u64) -> Result<()> {
        let quota = self.settings().site_disk_bytes;
        if let Some(counter) = self.known_disk(site.id) {
            counter.set_used(bytes);
        }
        let over = bytes > quota;
        let mut conn = self.conn().await?;
        let was_over: Option<DateTime<Utc>> = site_status::table
            .find(site.id)
            .select(site_status::disk_over_since)
            .first(&mut conn)
            .await
            .optional()?
            .flatten();
        let stored = i64::try_from(bytes).unwrap_or(i64::MAX);
        diesel::insert_into(site_status::table)
            .values((
                site_status::site_id.eq(site.id),
                site_status::disk_bytes.eq(stored),
                site_status::disk_measured_at.eq(diesel::dsl::now),
            ))
            .on_conflict(site_status::site_id)
            .do_update()
            .set((
                site_status::disk_bytes.eq(stored),
                site_status::disk_measured_at.eq(diesel::dsl::now),
            ))
            .execute(&mut conn)
            .await?;
        match (was_over.is_some(), over) {
            (false, true) => {
                diesel::update(site_status::table.find(site.id))
                    .set(site_status::disk_over_since.eq(diesel::dsl::now))
                    .execute(&mut conn)
                    .await?;
                let details = format!(
                    "{} used of {}",
                    crate::files::human_bytes(bytes),
                    crate::files::human_bytes(quota)
                );
                super::audit(
                    &mut conn,
                    &Actor::operator(),
                    "site.disk.over-quota",
                    &site.name,
                    &details,
                )
                .await?;
                tracing::warn!(site = %site.name, bytes, quota, "a site went over its disk quota");
            }
            (true, false) => {
                diesel::update(site_status::table.find(site.id))
                    .set(site_status::disk_over_since.eq(None::<DateTime<Utc>>))
                    .execute(&mut conn)
                    .await?;
            }
            _ => {}
        }
        Ok(())
    }
}
