//! Images without a registry: built on the engine from a Dockerfile context, with the build's
//! output streamed back line by line.

use std::path::{Path, PathBuf};

use bollard::query_parameters::BuildImageOptions;
use futures::StreamExt as _;

use crate::{Error, Orchestrator, Result, error::is_not_found};

/// One line of build output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildLine(pub String);

impl Orchestrator {
    /// Builds `tag` from the Dockerfile context in `context` (a directory), calling `on_line`
    /// with each line of output. Returns the image id.
    pub async fn build_image(
        &self,
        tag: &str,
        context: &Path,
        mut on_line: impl FnMut(BuildLine) + Send,
    ) -> Result<String> {
        if tag.is_empty() || tag.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::invalid("image tag", format!("{tag:?}")));
        }
        let tar = tar_directory(context)?;
        let options = BuildImageOptions {
            dockerfile: "Dockerfile".to_owned(),
            t: Some(tag.to_owned()),
            rm: true,
            forcerm: true,
            // Never reach for a registry: FROM lines must name images already on the engine.
            pull: None,
            ..Default::default()
        };
        self.run_build(tag, options, tar, &mut on_line).await
    }

    /// Sends one build to the engine and follows its output to the end: the image's id, or
    /// the builder's error.
    pub(crate) async fn run_build(
        &self,
        tag: &str,
        options: BuildImageOptions,
        tar: Vec<u8>,
        on_line: &mut (impl FnMut(BuildLine) + Send),
    ) -> Result<String> {
        let mut stream = self
            .docker
            .build_image(options, None, Some(bollard::body_full(tar.into())));
        let mut id = None;
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| match e {
                bollard::errors::Error::DockerStreamError { error } => Error::Build {
                    tag: tag.to_owned(),
                    message: error,
                },
                other => other.into(),
            })?;
            if let Some(detail) = info.error_detail {
                return Err(Error::Build {
                    tag: tag.to_owned(),
                    message: detail.message.unwrap_or_default(),
                });
            }
            if let Some(text) = info.stream {
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    on_line(BuildLine(line.to_owned()));
                }
            }
            if let Some(aux) = info.aux.and_then(|a| a.id) {
                id = Some(aux);
            }
        }
        let id = match id {
            Some(id) => id,
            None => self
                .docker
                .inspect_image(tag)
                .await?
                .id
                .ok_or_else(|| Error::ImageMissing(tag.to_owned()))?,
        };
        tracing::info!(%tag, %id, "image built");
        Ok(id)
    }

    /// Pulls `reference` from its registry (real deployments; these machines reach none). An
    /// image that cannot be had is [`Error::ImageMissing`] with the registry's reason.
    pub async fn pull_image(&self, reference: &str) -> Result<()> {
        if reference.is_empty() || reference.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::invalid("image reference", format!("{reference:?}")));
        }
        let options = bollard::query_parameters::CreateImageOptions {
            from_image: Some(reference.to_owned()),
            ..Default::default()
        };
        let mut stream = self.docker.create_image(Some(options), None, None);
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(detail) = info.error_detail {
                        return Err(Error::ImageMissing(format!(
                            "{reference}: {}",
                            detail.message.unwrap_or_default()
                        )));
                    }
                }
                Err(bollard::errors::Error::DockerResponseServerError { message, .. })
                | Err(bollard::errors::Error::DockerStreamError { error: message }) => {
                    return Err(Error::ImageMissing(format!("{reference}: {message}")));
                }
                Err(e) => return Err(e.into()),
            }
        }
        tracing::info!(%reference, "image pulled");
        Ok(())
    }

    /// The engine's record of the image `reference`; None when it has no such image.
    async fn inspected(&self, reference: &str) -> Result<Option<bollard::models::ImageInspect>> {
        match self.docker.inspect_image(reference).await {
            Ok(image) => Ok(Some(image)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether `reference` is on the engine.
    pub async fn image_exists(&self, reference: &str) -> Result<bool> {
        Ok(self.inspected(reference).await?.is_some())
    }

    /// The size of the image `reference` on disk, with its layers, in bytes.
    pub async fn image_size(&self, reference: &str) -> Result<u64> {
        let image = self
            .inspected(reference)
            .await?
            .ok_or_else(|| Error::ImageMissing(reference.to_owned()))?;
        Ok(u64::try_from(image.size.unwrap_or(0)).unwrap_or(0))
    }

    /// The id of the image `reference` (`sha256:…`).
    pub async fn image_id(&self, reference: &str) -> Result<String> {
        self.inspected(reference)
            .await?
            .and_then(|image| image.id)
            .ok_or_else(|| Error::ImageMissing(reference.to_owned()))
    }

    /// The value of the image's label `key`; None when the image or the label is not there.
    pub async fn image_label(&self, reference: &str, key: &str) -> Result<Option<String>> {
        Ok(self
            .inspected(reference)
            .await?
            .and_then(|image| image.config)
            .and_then(|c| c.labels)
            .and_then(|mut l| l.remove(key)))
    }

    /// Removes the image `reference` (gone already counts as removed).
    pub async fn remove_image(&self, reference: &str) -> Result<()> {
        let removed = self
            .docker
            .remove_image(
                reference,
                None::<bollard::query_parameters::RemoveImageOptions>,
                None,
            )
            .await;
        crate::ignore_missing(removed.map(|_| ()))
    }

    /// Makes sure `reference` is on the engine before a service or terminal is made from it:
    /// one of Director's base images is made (waiting for a build already under way); any
    /// other missing image is a typed error, before the engine's own.
    pub async fn image_present(&self, reference: &str) -> Result<()> {
        if self.image_exists(reference).await? {
            return Ok(());
        }
        match self.base_images.of(reference) {
            Some(image) => {
                let mut log = |line: BuildLine| tracing::info!(image = %reference, line = %line.0, "making a base image");
                self.base_images.ensure(self, image, &mut log).await.map(|_| ())
            }
            None => Err(Error::ImageMissing(reference.to_owned())),
        }
    }
}

/// The build context of Director's tiny base image (see [`crate::base_images`]), written into
/// `dir`.
pub fn busybox_context(dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        context: "creating the build context".to_owned(),
        source,
    })?;
    crate::base_images::BaseImages::new(crate::base_images::REPOSITORY)?
        .context(crate::base_images::BaseImage::Busybox, dir)?;
    Ok(dir.to_owned())
}

/// A directory as an uncompressed tar, for the engine's build API.
fn tar_directory(dir: &Path) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    builder.append_dir_all(".", dir).map_err(|source| Error::Io {
        context: format!("packing the build context {}", dir.display()),
        source,
    })?;
    builder.into_inner().map_err(|source| Error::Io {
        context: "finishing the build context".to_owned(),
        source,
    })
}
