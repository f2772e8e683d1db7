//! The routes as files: each host a link to an entry of marker files, swapped by rename, under
//! one lock per edge; their listing, and their repair after a crash.

use std::{
    collections::{BTreeMap, BTreeSet},
    os::unix::fs::{PermissionsExt as _, symlink},
    path::{Path, PathBuf},
    time::Duration,
};

use super::{Caddy, ROUTES_LOCK_WAIT, RoutesLock, SITES_IN, io};
use crate::{
    Error, Result, SiteId,
    edge::{Availability, BODY_LIMIT_TIERS, SiteRoutes, Target, body_limit_tier, validate_host},
};

impl Caddy {
    /// Puts a site's routes: its hosts now lead to `routes.target`; hosts it had before and
    /// no longer lists stop leading anywhere. A host another site owns is refused. The work is
    /// proportional to the site's own hosts, whatever the number of sites.
    pub async fn put(&self, routes: &SiteRoutes) -> Result<()> {
        let hosts = routes
            .hosts
            .iter()
            .map(|h| validate_host(h, true).map(|host| route_name(&host)))
            .collect::<Result<Vec<_>>>()?;
        let static_root = match &routes.target {
            Target::Static { public_dir } => Some(self.static_root(public_dir)?),
            Target::Service => None,
        };
        if let Some(root) = &static_root
            && let Some(std::path::Component::Normal(directory)) = root
                .strip_prefix(SITES_IN)
                .ok()
                .and_then(|r| r.components().next())
        {
            self.show(&directory.to_string_lossy()).await?;
        }
        let _lock = self.lock_routes().await?;
        for host in &hosts {
            if let Some(owner) = self.owner(host)?
                && owner != routes.site
            {
                return Err(Error::invalid(
                    "host",
                    format!("{} belongs to another site", host_of(host)),
                ));
            }
        }
        let index = self.config.index().join(routes.site.0.to_string());
        std::fs::create_dir_all(&index).map_err(io("writing a site's route index"))?;
        // Each step leaves something invisible or repairable, wherever a crash stops it: the
        // entry is made whole aside and renamed in (unrouted until linked); the index lists
        // the host before its link exists (an index line without a link is dropped by
        // `repair`, while a link without its line could never be removed); the link is
        // swapped atomically; the replaced entry goes last (an unlinked one is dropped too).
        for host in &hosts {
            let entry = self.write_entry(host, routes, static_root.as_deref())?;
            let link = self.config.hosts().join(host);
            let previous = std::fs::read_link(&link).ok();
            std::fs::write(index.join(host), b"").map_err(io("writing a site's route index"))?;
            self.swap_symlink(&link, &Path::new("../entries").join(&entry))?;
            if let Some(previous) = previous {
                self.remove_entry(&previous)?;
            }
        }
        for old in self.site_hosts(routes.site)? {
            if !hosts.contains(&old) {
                self.remove_host(routes.site, &old)?;
            }
        }
        tracing::debug!(site = %routes.site, hosts = ?hosts, "routes put");
        Ok(())
    }

    /// The site the edge routes `host` for, if any.
    pub async fn owner_of(&self, host: &str) -> Result<Option<SiteId>> {
        let host = validate_host(host, true)?;
        self.owner(&route_name(&host))
    }

    /// Takes `host` away from `site`, if the edge still routes it for that site: its link,
    /// entry and index line go; the site's other hosts stay as they are.
    pub async fn release(&self, site: SiteId, host: &str) -> Result<()> {
        let host = route_name(&validate_host(host, true)?);
        let _lock = self.lock_routes().await?;
        if self.owner(&host)? == Some(site) {
            self.remove_host(site, &host)?;
        }
        Ok(())
    }

    /// Removes every route of a site.
    pub async fn remove(&self, site: SiteId) -> Result<()> {
        let _lock = self.lock_routes().await?;
        for host in self.site_hosts(site)? {
            self.remove_host(site, &host)?;
        }
        match std::fs::remove_dir(self.config.index().join(site.0.to_string())) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("removing a site's route index")(e)),
            _ => Ok(()),
        }
    }

    /// Every site's routes, as put.
    pub async fn list(&self) -> Result<Vec<SiteRoutes>> {
        let mut sites: BTreeMap<SiteId, SiteRoutes> = BTreeMap::new();
        for (host, site) in self.all_hosts()? {
            let entry = self.config.hosts().join(&host);
            let mut target = Target::Service;
            let mut body_limit = BODY_LIMIT_TIERS[0];
            let mut availability = Availability::Served;
            // A host removed since the listing is simply gone: the listing never fails for it.
            let items = match std::fs::read_dir(&entry) {
                Ok(items) => items,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io("reading a route")(e)),
            };
            for item in items {
                let item = item.map_err(io("reading a route"))?;
                let name = item.file_name().to_string_lossy().into_owned();
                if name == "static" {
                    let inside = match std::fs::read_link(item.path()) {
                        Ok(inside) => inside,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(io("reading a static root")(e)),
                    };
                    let relative = inside.strip_prefix(SITES_IN).unwrap_or(&inside).to_owned();
                    target = Target::Static {
                        public_dir: self.config.sites_root.join(relative),
                    };
                } else if let Some(bytes) = name.strip_prefix("body-") {
                    body_limit = bytes.parse().unwrap_or(body_limit);
                } else if name == "disabled" {
                    availability = Availability::Disabled;
                } else if name == "not-served" {
                    availability = Availability::NotServed;
                }
            }
            let routes = sites.entry(site).or_insert_with(|| SiteRoutes {
                site,
                hosts: Vec::new(),
                target: target.clone(),
                body_limit,
                availability,
            });
            routes.hosts.push(host_of(&host));
        }
        Ok(sites.into_values().collect())
    }

    pub(super) fn write_entry(
        &self,
        host: &str,
        routes: &SiteRoutes,
        static_root: Option<&Path>,
    ) -> Result<String> {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let name = format!("{host}~{stamp}");
        let dir = self.config.temporaries().join(&name);
        let fail = io(format!("writing the route of {host}"));
        let result = (|| {
            std::fs::create_dir(&dir)?;
            std::fs::write(dir.join(".site"), routes.site.0.to_string())?;
            match static_root {
                Some(root) => symlink(root, dir.join("static"))?,
                None => std::fs::write(dir.join(self.orch.namespace().service(routes.site)), b"")?,
            }
            std::fs::write(
                dir.join(format!("body-{}", body_limit_tier(routes.body_limit))),
                b"",
            )?;
            match routes.availability {
                Availability::Served => {}
                Availability::NotServed => std::fs::write(dir.join("not-served"), b"")?,
                Availability::Disabled => std::fs::write(dir.join("disabled"), b"")?,
            }
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
            std::fs::rename(&dir, self.config.entries().join(&name))
        })();
        if let Err(err) = result {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(fail(err));
        }
        Ok(name)
    }

    pub(super) fn owner(&self, host: &str) -> Result<Option<SiteId>> {
        match std::fs::read_to_string(self.config.hosts().join(host).join(".site")) {
            Ok(id) => Ok(id.trim().parse().ok().map(SiteId)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("reading a route's owner")(e)),
        }
    }

    /// Every host with a route, and its owner (for listing; changes never scan them all).
    pub(super) fn all_hosts(&self) -> Result<Vec<(String, SiteId)>> {
        let mut hosts = Vec::new();
        for item in std::fs::read_dir(self.config.hosts()).map_err(io("listing routes"))? {
            let host = item
                .map_err(io("listing routes"))?
                .file_name()
                .to_string_lossy()
                .into_owned();
            if let Some(site) = self.owner(&host)? {
                hosts.push((host, site));
            }
        }
        hosts.sort();
        Ok(hosts)
    }

    /// The hosts a site has, from its index.
    pub(super) fn site_hosts(&self, site: SiteId) -> Result<Vec<String>> {
        match std::fs::read_dir(self.config.index().join(site.0.to_string())) {
            Ok(items) => items
                .map(|item| {
                    Ok(item
                        .map_err(io("reading a site's route index"))?
                        .file_name()
                        .to_string_lossy()
                        .into_owned())
                })
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io("reading a site's route index")(e)),
        }
    }

    /// Removes one host of `site`: its link (only if the site still owns it), its entry, and
    /// its line in the index.
    pub(super) fn remove_host(&self, site: SiteId, host: &str) -> Result<()> {
        let link = self.config.hosts().join(host);
        if self.owner(host)? == Some(site) {
            let entry = std::fs::read_link(&link).ok();
            std::fs::remove_file(&link).map_err(io(format!("removing the route of {host}")))?;
            if let Some(entry) = entry {
                self.remove_entry(&entry)?;
            }
        }
        match std::fs::remove_file(self.config.index().join(site.0.to_string()).join(host)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("updating a site's route index")(e)),
            _ => Ok(()),
        }
    }

    /// Points `link` at `target` atomically: a new symlink, made among the temporaries (never
    /// routable, whatever its name), renamed over the old one.
    pub(super) fn swap_symlink(&self, link: &Path, target: &Path) -> Result<()> {
        let name = link.file_name().unwrap_or_default().to_string_lossy();
        let tmp = self
            .config
            .temporaries()
            .join(format!("{name}~{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        symlink(target, &tmp).map_err(io("writing a route link"))?;
        std::fs::rename(&tmp, link).map_err(io("swapping a route link"))
    }

    /// Brings the route directories back to a state every write leaves when it is not
    /// interrupted: removes what interrupted writes left (temporaries, entries no link leads
    /// to, links to nothing), lists in its site's index every host a site's link routes (so
    /// that removing the site takes it away), and drops index lines whose host is not the
    /// site's. Returns what it repaired, in words. Each item is repaired on its own: one that
    /// cannot be is logged and left for the next pass, never stopping the others. The
    /// reconciler runs it on every pass.
    pub async fn repair(&self) -> Result<Vec<String>> {
        let _lock = self.lock_routes().await?;
        let mut repaired = Vec::new();
        let mut tried = |what: String, done: std::io::Result<()>| match done {
            Ok(()) => repaired.push(what),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(what, error = %e, "a route could not be repaired; next pass"),
        };
        let list = |dir: PathBuf| -> Result<Vec<std::fs::DirEntry>> {
            std::fs::read_dir(dir)
                .and_then(Iterator::collect)
                .map_err(io("repairing the routes"))
        };
        for item in list(self.config.temporaries())? {
            let path = item.path();
            let removed = match std::fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&path),
                Ok(_) => std::fs::remove_file(&path),
                Err(e) => Err(e),
            };
            let what = format!("removed {}, left by an interrupted route write", path.display());
            tried(what, removed);
        }
        let mut linked = BTreeSet::new();
        for item in list(self.config.hosts())? {
            let host = item.file_name().to_string_lossy().into_owned();
            let link = item.path();
            let Ok(target) = std::fs::read_link(&link) else {
                continue;
            };
            // Its entry is in use unless the link goes below.
            let entry = target.file_name().map(ToOwned::to_owned);
            linked.extend(entry.clone());
            // A route whose owner cannot be read now (out of descriptors, a disk error) is
            // left as it is: only one known to lead nowhere is removed.
            let owner = match self.owner(&host) {
                Ok(owner) => owner,
                Err(err) => {
                    tracing::warn!(host, error = %err, "a route's owner could not be read; next pass");
                    continue;
                }
            };
            let listed = |site: SiteId| self.config.index().join(site.0.to_string()).join(&host);
            // Its entry is named after the host it was written for: a legacy temporary's is
            // its real host's, a real host's (even one ending in `.tmp1`) its own.
            let legacy_temporary = host
                .rsplit_once(".tmp")
                .is_some_and(|(_, pid)| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
                && !target
                    .file_name()
                    .is_some_and(|entry| entry.to_string_lossy().starts_with(&format!("{host}~")));
            match owner {
                // Before temporaries had a folder of their own, a crash could leave
                // `<host>.tmp<pid>` among the routes; no site lists such a name.
                // (Its entry is the real host's: it stays.)
                Some(site) if legacy_temporary && !listed(site).exists() => tried(
                    format!("removed the stale temporary route {host}"),
                    std::fs::remove_file(&link),
                ),
                Some(site) => {
                    if !listed(site).exists() {
                        let index = self.config.index().join(site.0.to_string());
                        tried(
                            format!("{host} was routed for site {site} without its index; listed it"),
                            std::fs::create_dir_all(index).and_then(|()| std::fs::write(listed(site), b"")),
                        );
                    }
                }
                None => {
                    if let Some(entry) = &entry {
                        linked.remove(entry);
                    }
                    tried(
                        format!("removed the route of {host}, which led to nothing"),
                        std::fs::remove_file(&link),
                    );
                }
            }
        }
        for item in list(self.config.index())? {
            let Some(site) = item.file_name().to_str().and_then(|s| s.parse().ok()).map(SiteId) else {
                continue;
            };
            for host in self.site_hosts(site).unwrap_or_default() {
                if self.owner(&host).is_ok_and(|owner| owner != Some(site)) {
                    tried(
                        format!(
                            "site {site}'s index listed {host}, which is not routed for it; dropped the line"
                        ),
                        std::fs::remove_file(item.path().join(&host)),
                    );
                }
            }
        }
        for item in list(self.config.entries())? {
            if !linked.contains(&item.file_name()) {
                tried(
                    format!(
                        "removed the route entry {}, which no host led to",
                        item.file_name().to_string_lossy()
                    ),
                    std::fs::remove_dir_all(item.path()),
                );
            }
        }
        for what in &repaired {
            tracing::info!(repaired = %what, "edge routes repaired");
        }
        Ok(repaired)
    }

    /// Held while the route directories change: one writer at a time in this process, and in
    /// every Director process sharing the directory (an `flock` on `routes/.lock`, a file of
    /// Director's own), so that a repair never sees another's write half made.
    pub(super) async fn lock_routes(&self) -> Result<RoutesLock<'_>> {
        let process = self.writes.lock().await;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.config.routes().join(".lock"))
            .map_err(io("locking the routes"))?;
        // Tried without blocking (a blocked thread would hold the async runtime), and again a
        // moment later: another process holds it for a few file operations at most; one that
        // holds it far longer is stuck, and its holder's changes wait no longer than this.
        let started = std::time::Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => {
                    return Ok(RoutesLock {
                        _process: process,
                        _file: file,
                    });
                }
                Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < ROUTES_LOCK_WAIT => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(Error::Transient(
                        "another Director process holds the edge's routes".to_owned(),
                    ));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(io("locking the routes")(e)),
            }
        }
    }

    /// Removes an entry a link pointed at (`../entries/<name>`).
    pub(super) fn remove_entry(&self, link_target: &Path) -> Result<()> {
        let Some(name) = link_target.file_name() else {
            return Ok(());
        };
        match std::fs::remove_dir_all(self.config.entries().join(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("removing an old route entry")(e)),
            _ => Ok(()),
        }
    }
}

/// What a wildcard's route is called in the route directories: `*.example.org` is
/// `_wildcard.example.org` (a `*` would be a glob to Caddy's file matcher; `_` is never in a
/// host). Other hosts are their own names.
pub(super) const WILDCARD_ROUTE: &str = "_wildcard.";

fn route_name(host: &str) -> String {
    host.strip_prefix("*.")
        .map_or_else(|| host.to_owned(), |domain| format!("{WILDCARD_ROUTE}{domain}"))
}

fn host_of(route: &str) -> String {
    route
        .strip_prefix(WILDCARD_ROUTE)
        .map_or_else(|| route.to_owned(), |domain| format!("*.{domain}"))
}
