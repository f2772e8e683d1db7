//! Sites' own images: built on the engine from a context the caller packed (no registry),
//! with limits and a time limit, labelled with the recipe they were built from so that an
//! unchanged recipe is not built again, and pruned to the last few.

use std::{collections::HashMap, time::Duration};

use bollard::query_parameters::{BuildImageOptions, ListImagesOptions, RemoveImageOptions};

use crate::{
    BuildLine, Error, Orchestrator, Result, SiteId,
    error::is_not_found,
    names::{LABEL_NAMESPACE, LABEL_SITE},
};

/// The label holding the digest of what a site's image was built from.
pub const LABEL_RECIPE: &str = "director.recipe";

/// A build context holding nothing but `dockerfile` (as `Dockerfile`): an uncompressed tar.
pub fn dockerfile_context(dockerfile: &str) -> Result<Vec<u8>> {
    let mut context = BuildContext::default();
    context.add_file("Dockerfile", 0o644, dockerfile.as_bytes())?;
    context.finish()
}

/// A build context being packed: an uncompressed tar in memory. It holds what its caller adds
/// and nothing else — folders, files with their bytes, and links as links (the engine's
/// builder copies a link as a link; nothing of what it points to is read here).
pub struct BuildContext {
    tar: tar::Builder<Vec<u8>>,
}

impl Default for BuildContext {
    fn default() -> Self {
        Self {
            tar: tar::Builder::new(Vec::new()),
        }
    }
}

impl BuildContext {
    /// Adds the folder `path`.
    pub fn add_folder(&mut self, path: &str) -> Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        header.set_size(0);
        self.append(&mut header, path, &[][..])
    }

    /// Adds the file `path` holding `bytes`, with permission bits `mode`.
    pub fn add_file(&mut self, path: &str, mode: u32, bytes: &[u8]) -> Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(mode & 0o777);
        header.set_size(bytes.len() as u64);
        self.append(&mut header, path, bytes)
    }

    /// Adds the symbolic link `path` pointing to `target` (as written, never followed).
    pub fn add_link(&mut self, path: &str, target: &str) -> Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_mode(0o777);
        header.set_size(0);
        self.tar.append_link(&mut header, path, target).map_err(packing)
    }

    /// The tar.
    pub fn finish(self) -> Result<Vec<u8>> {
        self.tar.into_inner().map_err(packing)
    }

    fn append(&mut self, header: &mut tar::Header, path: &str, bytes: &[u8]) -> Result<()> {
        self.tar.append_data(header, path, bytes).map_err(packing)
    }
}

fn packing(source: std::io::Error) -> Error {
    Error::Io {
        context: "packing a build context".to_owned(),
        source,
    }
}

/// Whose image a build makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageOwner {
    /// A site's own (`director/site_0042:<n>`, labelled with the site).
    Site(SiteId),
    /// A catalogue image built from an administrator's Dockerfile (`director/catalogue_7:<n>`).
    Catalogue(i64),
}

/// The label naming the catalogue image an image was built for.
pub const LABEL_CATALOGUE: &str = "director.catalogue";

/// One build of a site's or a catalogue image.
#[derive(Debug, Clone)]
pub struct ImageBuild {
    /// Whose image it is.
    pub owner: ImageOwner,
    /// The build's number: the image is tagged with it.
    pub number: u32,
    /// The build context: an uncompressed tar.
    pub context: Vec<u8>,
    /// The Dockerfile's path inside the context.
    pub dockerfile: String,
    /// The digest of what it is built from (its recipe).
    pub recipe: String,
    /// What it may use.
    pub limits: BuildLimits,
}

/// What a build may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildLimits {
    /// The most memory the build's steps may use, in bytes.
    pub memory_bytes: u64,
    /// The CPU the build's steps may use, in thousandths of a core.
    pub cpu_millis: u32,
    /// How long the whole build may take; past it, it is cancelled.
    pub time_limit: Duration,
}

impl Orchestrator {
    /// The repository of a site's images: `director/site_0042`.
    pub fn site_image_repository(&self, site: SiteId) -> String {
        format!("director/{}", self.ns.service(site))
    }

    /// A site's image already built from `recipe`, if the engine still has one.
    pub async fn site_image_for(&self, site: SiteId, recipe: &str) -> Result<Option<String>> {
        Ok(self
            .site_images(site)
            .await?
            .into_iter()
            .find(|image| image.recipe == recipe)
            .map(|image| image.tag))
    }

    /// The tag of a catalogue image's build `number`: `director/catalogue_7:2`.
    pub fn catalogue_image_tag(&self, image: i64, number: u32) -> String {
        format!(
            "director/{}:{number}",
            self.ns.network(&format!("catalogue_{image}"))
        )
    }

    /// Builds a site's or a catalogue image, calling `on_line` with each line of output;
    /// returns its tag (`director/site_0042:7`). A build that runs over its time limit is
    /// cancelled (the engine stops a build whose client went away) and is [`Error::Build`].
    pub async fn build_labelled_image(
        &self,
        build: ImageBuild,
        mut on_line: impl FnMut(BuildLine) + Send,
    ) -> Result<String> {
        let (tag, owner_label) = match build.owner {
            ImageOwner::Site(site) => (
                format!("{}:{}", self.site_image_repository(site), build.number),
                (LABEL_SITE, site.0.to_string()),
            ),
            ImageOwner::Catalogue(image) => (
                self.catalogue_image_tag(image, build.number),
                (LABEL_CATALOGUE, image.to_string()),
            ),
        };
        let labels = HashMap::from([
            (LABEL_NAMESPACE.to_owned(), self.ns.label().to_owned()),
            (owner_label.0.to_owned(), owner_label.1),
            (LABEL_RECIPE.to_owned(), build.recipe.clone()),
        ]);
        let options = BuildImageOptions {
            dockerfile: build.dockerfile.clone(),
            t: Some(tag.clone()),
            rm: true,
            forcerm: true,
            pull: None,
            labels: Some(labels),
            memory: Some(i32::try_from(build.limits.memory_bytes).unwrap_or(i32::MAX)),
            // No swap beyond the memory limit.
            memswap: Some(i32::try_from(build.limits.memory_bytes).unwrap_or(i32::MAX)),
            cpuperiod: Some(100_000),
            cpuquota: Some(i32::try_from(u64::from(build.limits.cpu_millis) * 100).unwrap_or(i32::MAX)),
            ..Default::default()
        };
        let limit = build.limits.time_limit;
        match tokio::time::timeout(limit, self.run_build(&tag, options, build.context, &mut on_line)).await {
            Ok(built) => built.map(|_| tag),
            Err(_) => Err(Error::Build {
                tag,
                message: format!(
                    "it ran over its time limit of {} and was cancelled",
                    humanize(limit)
                ),
            }),
        }
    }

    /// Removes a site's images but the newest `keep` and those in `in_use`; returns the tags
    /// removed. An image a container still uses is left for the next time.
    pub async fn prune_site_images(
        &self,
        site: SiteId,
        keep: usize,
        in_use: &[String],
    ) -> Result<Vec<String>> {
        let mut images = self.site_images(site).await?;
        images.sort_by_key(|image| std::cmp::Reverse(image.number));
        let mut removed = Vec::new();
        for image in images.into_iter().skip(keep) {
            if in_use.contains(&image.tag) {
                continue;
            }
            let options = RemoveImageOptions {
                force: false,
                noprune: false,
                ..Default::default()
            };
            match self.docker.remove_image(&image.tag, Some(options), None).await {
                Ok(_) => removed.push(image.tag),
                Err(e) if is_not_found(&e) => {}
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 409,
                    message,
                }) => {
                    tracing::info!(image = %image.tag, %message, "an old image of a site is still used; kept");
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(removed)
    }

    /// Removes every image of a site (it is being deleted), waiting (a minute at most) for
    /// the containers that still use one — its service's tasks stop within their grace period.
    pub async fn remove_site_images(&self, site: SiteId) -> Result<()> {
        for _ in 0..60 {
            self.prune_site_images(site, 0, &[]).await?;
            if self.site_images(site).await?.is_empty() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Err(Error::Transient(format!(
            "the images of site {} are still used by a container",
            site.0
        )))
    }

    async fn site_images(&self, site: SiteId) -> Result<Vec<SiteImage>> {
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![
                format!("{LABEL_NAMESPACE}={}", self.ns.label()),
                format!("{LABEL_SITE}={}", site.0),
            ],
        )]);
        let listed = self
            .docker
            .list_images(Some(ListImagesOptions {
                filters: Some(filters),
                ..Default::default()
            }))
            .await?;
        let repository = format!("{}:", self.site_image_repository(site));
        Ok(listed
            .into_iter()
            .flat_map(|image| {
                let recipe = image.labels.get(LABEL_RECIPE).cloned().unwrap_or_default();
                image
                    .repo_tags
                    .into_iter()
                    .filter_map(|tag| {
                        let number = tag.strip_prefix(&repository)?.parse().ok()?;
                        Some(SiteImage {
                            tag,
                            number,
                            recipe: recipe.clone(),
                        })
                    })
                    .collect::<Vec<_>>()
            })
            .collect())
    }
}

/// One of a site's images on the engine.
struct SiteImage {
    tag: String,
    number: u32,
    recipe: String,
}

fn humanize(limit: Duration) -> String {
    let secs = limit.as_secs();
    if secs >= 60 && secs.is_multiple_of(60) {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}
