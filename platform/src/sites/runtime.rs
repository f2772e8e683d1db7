//! What the actions do, through the orchestrator and the edge.

use std::path::PathBuf;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use orchestrator::{
    EndpointMode, Limits, Orchestrator, SiteId, SiteSpec,
    disks::{DiskChange, DiskSpec, Disks},
    edge::{Availability, Caddy, SiteRoutes, Target, TraefikConfig, traefik_file_config, traefik_labels},
};

use super::{Site, SiteKind};
use crate::schema::images;

/// The first uid of sites: site N runs as 100000 + N, never as a user of the host.
const UID_BASE: u32 = 100_000;

/// Removes `name` in `root` with everything in it, never through a link (see
/// [`crate::files::remove_site_directory`]), off the async workers.
async fn remove_directory(root: PathBuf, name: String) -> crate::Result<()> {
    crate::files::blocking(move || crate::files::remove_site_directory(&root, &name)).await?
}

/// A site's directory's name under the sites root: `0042`.
fn directory_name(site: &Site) -> String {
    format!("{:04}", site.id)
}

/// How a deploy ended.
enum Deployed {
    /// The site serves its new spec (or nothing had to change); what to show.
    Serving(String),
    /// Its new task never answered and the engine rolled it back; why.
    RolledBack(String),
}

/// Where sites live and how they are reached.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// The engine.
    pub orchestrator: Orchestrator,
    /// The edge router.
    pub edge: Caddy,
    /// The sites' disks: each site's directory is its own file system.
    pub disks: Disks,
    /// The directory holding every site's directory (where the disks are mounted).
    pub sites_root: PathBuf,
    /// Sites are `<name>.<domain>`.
    pub sites_domain: String,
    /// The sites' overlay network.
    pub network: String,
    /// VIP or DNS round-robin for services.
    pub endpoint_mode: EndpointMode,
    /// The platform it serves (its database and settings). The platform holds this runtime
    /// too: `Platform::set_runtime(None)` at shutdown lets both go.
    pub(crate) platform: crate::Platform,
    /// With Traefik as the operator's edge router: how to label services and where to write the
    /// file-provider configuration for static sites (Caddy then serves only those, unpublished).
    pub traefik: Option<TraefikMode>,
    /// The database servers sites' databases are on (None: this Director runs none).
    pub databases: Option<super::DatabaseServers>,
}

/// Director behind the operator's Traefik.
#[derive(Debug, Clone)]
pub struct TraefikMode {
    /// What the operator's Traefik looks like.
    pub config: TraefikConfig,
    /// The file-provider configuration Director keeps up to date (Traefik watches it).
    pub file: PathBuf,
    /// Held while the file is written: one writer at a time.
    pub writer: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// Makes temporary names of Traefik's file unique within the process.
static TRAEFIK_WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Runtime {
    /// A runtime on this platform's database.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        platform: crate::Platform,
        orchestrator: Orchestrator,
        edge: Caddy,
        disks: Disks,
        sites_domain: String,
        network: String,
        endpoint_mode: EndpointMode,
    ) -> Self {
        Self {
            orchestrator,
            edge,
            sites_root: disks.sites_root().to_owned(),
            disks,
            sites_domain,
            network,
            endpoint_mode,
            platform,
            traefik: None,
            databases: None,
        }
    }

    /// The same runtime with database servers for the sites.
    pub fn with_databases(mut self, servers: super::DatabaseServers) -> Self {
        self.databases = Some(servers);
        self
    }

    /// The same runtime behind Traefik.
    pub fn with_traefik(mut self, mode: TraefikMode) -> Self {
        self.traefik = Some(mode);
        self
    }

    /// The sites whose service Docker removed, as they go: the reconciler corrects them soon.
    pub fn service_removals(
        &self,
    ) -> impl futures::Stream<Item = orchestrator::Result<SiteId>> + Send + use<> {
        self.orchestrator.service_removals()
    }

    /// The site's directory on the host: `<sites root>/0042`.
    pub fn directory(&self, site: &Site) -> PathBuf {
        self.sites_root.join(directory_name(site))
    }

    /// Mounts the sites' root and every made site's disk: at start, before any operation or
    /// request reaches a site's directory. A directory from before disks is moved onto a disk
    /// of its own while nothing of its site runs (its terminal, service and every container
    /// are gone first; the reconciler makes the service again). A site whose move fails is
    /// logged and keeps its files where they are (its disk is refused, so the reconciler
    /// reports it); the move is tried again at the next start. A disk that does not mount is
    /// tried again by the reconciler.
    pub async fn mount_disks(&self) -> crate::Result<()> {
        let pending = self.disks.prepare().await.map_err(crate::Error::internal)?;
        let mut conn = self.platform.conn().await?;
        let all = super::load_all_sites(&mut conn).await?;
        drop(conn);
        for name in &pending {
            let Some(site) = all.iter().find(|s| directory_name(s) == *name) else {
                tracing::warn!(directory = %name, "a directory from before disks belongs to no site; left where it is");
                continue;
            };
            if let Err(err) = self.move_onto_disk(site).await {
                tracing::error!(site = %site.name, error = %err, "moving a site's files onto its disk failed; they stay where they were");
            }
        }
        // What a move interrupted after its copy was whole left behind.
        for moved in self
            .disks
            .moved_leftovers()
            .await
            .map_err(crate::Error::internal)?
        {
            if let Err(err) = remove_directory(self.disks.old_sites(), moved).await {
                tracing::warn!(error = %err, "removing a moved site's old directory failed");
            }
        }
        self.disks.finish_old().await.map_err(crate::Error::internal)?;
        for site in all.iter().filter(|s| s.provisioned) {
            if let Err(err) = self.ensure_disk(site).await {
                tracing::error!(site = %site.name, error = %err, "a site's disk did not mount");
            }
        }
        Ok(())
    }

    async fn move_onto_disk(&self, site: &Site) -> Result<(), String> {
        let id = site.engine_id();
        let text = |e: orchestrator::Error| e.to_string();
        self.orchestrator.stop_site(id).await.map_err(text)?;
        let moved = self.disks.copy_old(&self.disk_spec(site)).await.map_err(text)?;
        remove_directory(self.disks.old_sites(), moved)
            .await
            .map_err(|e| format!("removing the old copy: {e}"))?;
        tracing::warn!(site = %site.name, "a site's files were moved onto a disk of its own");
        Ok(())
    }

    fn disk_spec(&self, site: &Site) -> DiskSpec {
        DiskSpec {
            directory: directory_name(site),
            quota: self.platform.settings().site_disk_bytes,
            uid: Self::uid(site),
        }
    }

    /// Makes sure the site's disk is mounted and as large as its quota, and (for a static
    /// site) that Caddy sees it.
    pub(crate) async fn ensure_disk(&self, site: &Site) -> orchestrator::Result<DiskChange> {
        let change = self.disks.ensure(&self.disk_spec(site)).await?;
        if site.kind == SiteKind::Static {
            self.edge.show(&directory_name(site)).await?;
        }
        Ok(change)
    }

    /// The site's address.
    pub fn url(&self, site: &Site) -> String {
        self.platform.url_of(site)
    }

    /// The uid (and gid) the site's processes and files have.
    pub fn uid(site: &Site) -> u32 {
        UID_BASE + u32::try_from(site.id).unwrap_or(0)
    }

    pub(crate) fn spec(&self, site: &Site) -> SiteSpec {
        SiteSpec {
            id: site.engine_id(),
            name: site.name.clone(),
            image: site.running_image().to_owned(),
            directory: self.directory(site),
            uid: Self::uid(site),
            gid: Self::uid(site),
            port: orchestrator::edge::SITE_PORT,
            url: self.url(site),
            // Its own variables, then its databases' (whose names its own may not take).
            env: site
                .variables
                .0
                .clone()
                .into_iter()
                .chain(super::databases::environment(self.platform.settings(), site))
                .collect(),
            limits: Limits {
                cpu_millis: u32::try_from(site.cpu_millis).unwrap_or(1000),
                memory_bytes: u64::try_from(site.memory_mb).unwrap_or(512) << 20,
                ..Limits::default()
            },
            served: site.availability == super::Availability::Enabled,
            network: self.network.clone(),
            endpoint_mode: self.endpoint_mode,
            // Deploys are health-gated: a new task takes over only once it answers.
            health_check: Some(self.platform.settings().site_start_period),
            labels: self
                .traefik
                .as_ref()
                .map(|t| traefik_labels(&self.routes(site), &t.config))
                .unwrap_or_default(),
        }
    }

    pub(crate) fn routes(&self, site: &Site) -> SiteRoutes {
        SiteRoutes {
            site: site.engine_id(),
            hosts: std::iter::once(format!("{}.{}", site.name, self.sites_domain))
                .chain(site.domains.iter().cloned())
                .collect(),
            target: match site.kind {
                SiteKind::Static => Target::Static {
                    public_dir: self.directory(site).join("public"),
                },
                SiteKind::Dynamic => Target::Service,
            },
            body_limit: u64::try_from(site.body_limit_mb).unwrap_or(8) << 20,
            availability: match site.availability {
                super::Availability::Disabled => Availability::Disabled,
                super::Availability::NotServed => Availability::NotServed,
                super::Availability::Enabled => Availability::Served,
            },
        }
    }

    /// Puts the site's routes as the database has them. A host the edge still routes for
    /// another site that the database no longer gives it (that site's domain change is queued
    /// behind this one, or the site is being deleted) is released from it first — that host
    /// alone: the other site's routes are otherwise left to its own operations. The database
    /// decides, whatever order the two changes run in; a host the other site still has is
    /// refused, as before.
    pub(crate) async fn put_routes(&self, site: &Site) -> orchestrator::Result<()> {
        // Twice: between a release and the put, an older change of the other site may put
        // the host back; the second round releases it again.
        match self.release_and_put(site).await {
            Err(orchestrator::Error::Invalid { .. }) => self.release_and_put(site).await,
            other => other,
        }
    }

    async fn release_and_put(&self, site: &Site) -> orchestrator::Result<()> {
        let routes = self.routes(site);
        for host in &routes.hosts {
            let Some(holder) = self.edge.owner_of(host).await? else {
                continue;
            };
            if holder == routes.site {
                continue;
            }
            let other = {
                let unavailable = |e: crate::Error| orchestrator::Error::Transient(e.to_string());
                let mut conn = self.platform.conn().await.map_err(unavailable)?;
                super::load_site(&mut conn, i32::try_from(holder.0).unwrap_or(0))
                    .await
                    .map_err(unavailable)?
            };
            let still_theirs = other.is_some_and(|other| {
                other.provisioned
                    && other.state != super::SiteState::Deleting
                    && self.routes(&other).hosts.contains(host)
            });
            if !still_theirs {
                self.edge.release(holder, host).await?;
            }
        }
        self.edge.put(&routes).await
    }

    /// Runs one action for `site`; Ok carries what to show, Err the reason it failed.
    pub(crate) async fn run(&self, action: super::Action, site: &Site) -> Result<String, String> {
        use super::Action as A;
        let id = site.engine_id();
        let text = |e: orchestrator::Error| e.to_string();
        match action {
            A::CreateDirectory => self.create_directory(site).await,
            A::EnsureService => match self.deploy(site).await? {
                Deployed::Serving(said) => Ok(said),
                Deployed::RolledBack(why) => Err(why),
            },
            // Only the deploy of a build undoes it: any other change that fails its deploy
            // leaves the site's image as it is.
            A::DeployImage => match self.deploy(site).await? {
                Deployed::Serving(said) => Ok(said),
                Deployed::RolledBack(why) => {
                    self.undo_build(site).await;
                    Err(format!("{why}; the site runs the image it ran before"))
                }
            },
            A::BuildImage => self.build_image(site).await,
            A::PruneImages => self.prune_images(site).await,
            A::RemoveImages => self.remove_images(site).await,
            A::PutRoutes => {
                self.put_routes(site).await.map_err(text)?;
                self.write_traefik_file().await?;
                Ok(format!("live at {}", self.url(site)))
            }
            A::RemoveRoutes => {
                self.edge.remove(id).await.map_err(text)?;
                self.write_traefik_file().await?;
                Ok("routes removed".to_owned())
            }
            // From whatever it finds: a service removed meanwhile is made again (which starts a
            // new task, what a restart is for), never a failure that a retry would repeat.
            A::RestartService => match self.orchestrator.restart(id).await {
                Ok(()) => Ok("a new task replaces the old one".to_owned()),
                Err(orchestrator::Error::NotFound(_)) => self
                    .orchestrator
                    .ensure_service(&self.spec(site))
                    .await
                    .map(|_| "its service was missing; made it again".to_owned())
                    .map_err(text),
                Err(err) => Err(text(err)),
            },
            A::RemoveService => self
                .orchestrator
                .remove_service(id)
                .await
                .map(|()| "service removed".to_owned())
                .map_err(text),
            A::RemoveTerminal => self
                .orchestrator
                .remove_terminal(id)
                .await
                .map(|()| "terminal removed".to_owned())
                .map_err(text),
            A::RemoveDirectory => {
                let name = directory_name(site);
                self.edge.hide(&name).await.map_err(text)?;
                self.disks.remove(&name).await.map_err(text)?;
                // A directory from before disks (its move failed, or never ran) goes too, file by
                // file, never through a link.
                let old = self.disks.old_sites();
                let pending = tokio::fs::symlink_metadata(old.join(&name)).await.is_ok();
                let removed = async {
                    if pending {
                        remove_directory(old, name.clone()).await?;
                    }
                    remove_directory(self.sites_root.clone(), name).await
                };
                removed
                    .await
                    .map(|()| "files removed".to_owned())
                    .map_err(|err| format!("removing the site's files: {err}"))
            }
            A::EnsureDatabases => self.ensure_databases(site).await,
            A::DropDatabases => self.drop_databases(site).await,
            // The queue forgets the site itself, in the database, within the operation: the
            // engine is never asked to.
            A::ForgetSite => Err("forgetting a site is the queue's, not the engine's".to_owned()),
        }
    }

    /// `ensure-service`: makes the site's service as its settings say and, when that replaced
    /// its task, waits for the new one to answer (start-first: the old one serves meanwhile).
    /// A new task that never answers is rolled back by the engine.
    async fn deploy(&self, site: &Site) -> Result<Deployed, String> {
        let id = site.engine_id();
        let text = |e: orchestrator::Error| e.to_string();
        let done = self
            .orchestrator
            .ensure_service(&self.spec(site))
            .await
            .map_err(text)?;
        // A worker taken over midway may have sent this very spec: the engine is then still
        // rolling it out, and its outcome is this operation's to wait for and report.
        let rolling = match done {
            orchestrator::Ensured::Updated => true,
            orchestrator::Ensured::Unchanged => self.orchestrator.rolling_out(id).await.map_err(text)?,
            orchestrator::Ensured::Created | orchestrator::Ensured::LeftAlone => false,
        };
        if !rolling || site.availability != super::Availability::Enabled {
            return Ok(Deployed::Serving(format!("service {done:?}").to_lowercase()));
        }
        // The start period, the engine's monitoring after it, and room for a rollback.
        let limit = self.platform.settings().site_start_period + std::time::Duration::from_secs(60);
        Ok(
            match self.orchestrator.await_rollout(id, limit).await.map_err(text)? {
                orchestrator::Rollout::Done => Deployed::Serving("the new version serves".to_owned()),
                // Not a success: the engine may yet roll it back. The operation fails, and a
                // retry waits again.
                orchestrator::Rollout::Unfinished => {
                    return Err(format!(
                        "the new version had not answered HTTP on its port after {} s; the engine goes on deciding (retry to wait again)",
                        limit.as_secs()
                    ));
                }
                orchestrator::Rollout::RolledBack(why) => Deployed::RolledBack(format!(
                    "the new version never answered HTTP on its port ({why}); the previous version serves again"
                )),
            },
        )
    }

    /// Puts back the image the site ran before its latest build, whose deploy was rolled back
    /// (the reconciler would otherwise deploy it again).
    async fn undo_build(&self, site: &Site) {
        let undone = async {
            let mut conn = self.platform.conn().await?;
            super::builds::undo(&mut conn, site.id).await
        };
        if let Err(err) = undone.await {
            tracing::warn!(site = %site.name, error = %err, "putting back the previous image failed");
        }
    }

    /// Rewrites Traefik's file-provider configuration from the routes in place (Traefik mode
    /// only) when it differs from them. One writer at a time (workers and the reconciler all
    /// call this), each from the routes as they are once it writes, through a temporary file
    /// of its own renamed into place: Traefik never reads half a file, and no older listing
    /// lands after a newer one. Returns whether the file was written.
    pub(crate) async fn write_traefik_file(&self) -> Result<bool, String> {
        let Some(traefik) = &self.traefik else {
            return Ok(false);
        };
        let _writer = traefik.writer.lock().await;
        let sites = self.edge.list().await.map_err(|e| e.to_string())?;
        let text = traefik_file_config(&sites, &traefik.config);
        let fail = |e: std::io::Error| {
            tracing::error!(file = %traefik.file.display(), error = %e, "writing Traefik's configuration failed");
            format!("writing Traefik's configuration failed: {}", e.kind())
        };
        if tokio::fs::read_to_string(&traefik.file).await.ok().as_deref() == Some(text.as_str()) {
            return Ok(false);
        }
        if let Some(dir) = traefik.file.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(fail)?;
        }
        let tmp = traefik.file.with_extension(format!(
            "toml.{}.{}",
            std::process::id(),
            TRAEFIK_WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        tokio::fs::write(&tmp, text).await.map_err(fail)?;
        if let Err(e) = tokio::fs::rename(&tmp, &traefik.file).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(fail(e));
        }
        Ok(true)
    }

    /// The site's directory with starter files (an index page; a `run.sh` from the image for
    /// dynamic sites), owned by the site's uid. What is there already is kept. Director runs as
    /// root and the directory is the tenant's: everything beneath it is made through
    /// [`SiteFiles`](crate::files::SiteFiles), resolved inside the site and never following a
    /// link out of it, each file written whole with its mode and owner before it appears.
    async fn create_directory(&self, site: &Site) -> Result<String, String> {
        if let Err(err) = self.ensure_disk(site).await {
            tracing::error!(site = site.id, error = %err, "making or mounting a site's disk failed");
            return Err("making the site's disk failed".to_owned());
        }
        // A dynamic site's starter run.sh comes from its image's catalogue entry (None when the
        // entry is gone: then only an existing run.sh will do).
        let run_sh = match site.kind {
            SiteKind::Dynamic => {
                let mut conn = self.platform.conn().await.map_err(|e| e.to_string())?;
                let script: Option<String> = images::table
                    .filter(images::reference.eq(&site.image_reference))
                    .select(images::run_sh)
                    .first(&mut conn)
                    .await
                    .optional()
                    .map_err(|e| e.to_string())?;
                Some(script)
            }
            SiteKind::Static => None,
        };
        let page = format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>{name}</title></head>\n\
             <body>\n<h1>{name}</h1>\n<p>This is the starter page of {name}. Replace public/index.html with your own.</p>\n</body>\n</html>\n",
            name = site.name
        );
        let (root, name, uid) = (self.sites_root.clone(), directory_name(site), Self::uid(site));
        let made = tokio::task::spawn_blocking(move || -> crate::Result<()> {
            let files = crate::files::make_site_directory(&root, &name, uid)?;
            files.ensure_folder("public")?;
            files.create("public/index.html", page.as_bytes(), 0o644)?;
            match run_sh {
                Some(Some(script)) => {
                    files.create("run.sh", script.as_bytes(), 0o755)?;
                }
                Some(None) if !files.exists("run.sh")? => {
                    return Err(crate::Error::Conflict(
                        "the site's image is no longer in the catalogue, so its run.sh cannot be made"
                            .to_owned(),
                    ));
                }
                Some(None) | None => {}
            }
            Ok(())
        })
        .await
        .map_err(|e| e.to_string())?;
        match made {
            // Shown to the site's members: no host paths.
            Ok(()) => Ok("the site's files are ready".to_owned()),
            Err(crate::Error::Conflict(reason)) => Err(format!("making the site's files failed: {reason}")),
            Err(err) => {
                tracing::error!(site = site.id, error = %err, "making a site's directory failed");
                Err("making the site's directory failed".to_owned())
            }
        }
    }
}
