//! Director's own base images, made on the engine from the project's contexts when they are
//! missing, with no registry: `busybox` (FROM scratch and Debian's static busybox), `debian`
//! (a debootstrap minbase root, imported) and `python` (the Debian one with Python 3).
//!
//! One source of truth per image: its Dockerfile in `images/` (included here), its files from
//! the host (busybox) or debootstrap. A repository other than `director` makes the same images
//! under throw-away names (tests prove the cold path with them).

use std::{path::Path, sync::Arc};

use futures::StreamExt as _;

use crate::{BuildLine, Error, Orchestrator, Result};

/// The repository of Director's own base images (the catalogue names them `director/…`).
pub const REPOSITORY: &str = "director";

/// One of Director's base images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BaseImage {
    /// A static busybox and nothing else.
    Busybox,
    /// Debian bookworm, minbase.
    Debian,
    /// Debian with Python 3.
    Python,
}

impl BaseImage {
    /// Every base image, each after the one it is made from.
    pub const ALL: [Self; 3] = [Self::Busybox, Self::Debian, Self::Python];

    /// Its name and tag under a repository (`python:3`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Busybox => "busybox:latest",
            Self::Debian => "debian:bookworm",
            Self::Python => "python:3",
        }
    }

    /// The base image it is made from.
    fn from(self) -> Option<Self> {
        match self {
            Self::Python => Some(Self::Debian),
            Self::Busybox | Self::Debian => None,
        }
    }

    /// Its Dockerfile (none for Debian: its root is imported).
    fn dockerfile(self) -> Option<&'static str> {
        match self {
            Self::Busybox => Some(include_str!("../../images/busybox/Dockerfile")),
            Self::Python => Some(include_str!("../../images/python/Dockerfile")),
            Self::Debian => None,
        }
    }
}

/// Where the making of a base image stands, in this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Being made; the latest step or line of output.
    Making(String),
    /// Made by this process.
    Made,
    /// The last try failed, for this reason (a site that needs it tries again).
    Failed(String),
}

/// Director's base images under one repository (`director` in production).
#[derive(Debug, Clone)]
pub struct BaseImages {
    repository: String,
    /// One build at a time: a site's create waiting for its image and the build at start make
    /// it once.
    building: Arc<tokio::sync::Mutex<()>>,
    /// What this process has made, is making or failed to make (for admins to see).
    made: Arc<std::sync::Mutex<std::collections::HashMap<BaseImage, Progress>>>,
}

impl BaseImages {
    /// The base images under `repository` (lowercase letters, digits, `-` and `_`).
    pub fn new(repository: &str) -> Result<Self> {
        if repository.is_empty()
            || !repository
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(Error::invalid("image repository", format!("{repository:?}")));
        }
        Ok(Self {
            repository: repository.to_owned(),
            building: Arc::default(),
            made: Arc::default(),
        })
    }

    /// The image's reference here (`director/python:3`).
    pub fn reference(&self, image: BaseImage) -> String {
        format!("{}/{}", self.repository, image.name())
    }

    /// Which base image `reference` is, if it is one of these.
    pub fn of(&self, reference: &str) -> Option<BaseImage> {
        BaseImage::ALL
            .into_iter()
            .find(|image| self.reference(*image) == reference)
    }

    /// Where the making of `image` stands in this process, if it was ever made or tried here.
    pub fn progress(&self, image: BaseImage) -> Option<Progress> {
        self.made.lock().ok()?.get(&image).cloned()
    }

    fn record(&self, image: BaseImage, progress: Progress) {
        if let Ok(mut all) = self.made.lock() {
            all.insert(image, progress);
        }
    }

    /// Makes `image` (and what it is made from) unless the engine has it; `on_line` hears each
    /// step and line of output. Returns whether anything was made.
    pub async fn ensure(
        &self,
        orch: &Orchestrator,
        image: BaseImage,
        on_line: &mut (dyn FnMut(BuildLine) + Send),
    ) -> Result<bool> {
        let _one = self.building.lock().await;
        let mut made = false;
        let chain: Vec<BaseImage> = std::iter::successors(Some(image), |i| i.from()).collect();
        for step in chain.into_iter().rev() {
            let reference = self.reference(step);
            if orch.image_exists(&reference).await? {
                continue;
            }
            let mut heard = |line: BuildLine| {
                self.record(step, Progress::Making(line.0.clone()));
                on_line(line);
            };
            heard(BuildLine(format!("making {reference}")));
            let making = match step {
                BaseImage::Debian => self.import_debian(orch, &reference, &mut heard).await,
                BaseImage::Busybox | BaseImage::Python => match tempfile_dir() {
                    Ok(context) => match self.context(step, context.path()) {
                        Ok(()) => orch
                            .build_image(&reference, context.path(), &mut heard)
                            .await
                            .map(|_| ()),
                        Err(err) => Err(err),
                    },
                    Err(err) => Err(err),
                },
            };
            if let Err(err) = making {
                self.record(step, Progress::Failed(err.to_string()));
                return Err(err);
            }
            self.record(step, Progress::Made);
            made = true;
        }
        Ok(made)
    }

    /// A build context: the image's Dockerfile (made from this repository's images) and the
    /// host's static busybox beside it.
    pub(crate) fn context(&self, image: BaseImage, dir: &Path) -> Result<()> {
        let dockerfile = image.dockerfile().unwrap_or_default();
        // The Dockerfiles name `director/…`; here they are made from this repository's images.
        let dockerfile = dockerfile.replace("FROM director/", &format!("FROM {}/", self.repository));
        let busybox =
            std::env::var_os("BUSYBOX").map_or_else(|| "/bin/busybox".into(), std::path::PathBuf::from);
        std::fs::copy(&busybox, dir.join("busybox")).map_err(|source| Error::Io {
            context: "copying busybox (install Debian's busybox-static, or set BUSYBOX)".to_owned(),
            source,
        })?;
        std::fs::write(dir.join("Dockerfile"), dockerfile).map_err(|source| Error::Io {
            context: "writing the Dockerfile".to_owned(),
            source,
        })
    }

    /// debootstrap's minbase root of bookworm, imported as `reference`.
    async fn import_debian(
        &self,
        orch: &Orchestrator,
        reference: &str,
        on_line: &mut (dyn FnMut(BuildLine) + Send),
    ) -> Result<()> {
        let root = tempfile_dir()?;
        let mirror = std::env::var("DIRECTOR_DEBIAN_MIRROR")
            .unwrap_or_else(|_| "http://deb.debian.org/debian".to_owned());
        on_line(BuildLine(format!("debootstrap bookworm (minbase) from {mirror}")));
        let out = tokio::process::Command::new("debootstrap")
            .args(["--variant=minbase", "bookworm"])
            .arg(root.path())
            .arg(&mirror)
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|source| Error::Io {
                context: "running debootstrap (install Debian's debootstrap)".to_owned(),
                source,
            })?;
        if !out.status.success() {
            let said = String::from_utf8_lossy(&out.stdout);
            let tail: Vec<&str> = said.lines().rev().take(5).collect();
            return Err(Error::Build {
                tag: reference.to_owned(),
                message: format!(
                    "debootstrap failed: {}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("; ")
                ),
            });
        }
        on_line(BuildLine(format!("importing {reference}")));
        // The root goes to the engine as a tar stream, never whole in memory.
        let mut tar = tokio::process::Command::new("tar")
            .arg("-C")
            .arg(root.path())
            .args(["-c", "."])
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| Error::Io {
                context: "running tar".to_owned(),
                source,
            })?;
        let stdout = tar.stdout.take().ok_or_else(|| Error::Build {
            tag: reference.to_owned(),
            message: "tar gave no output".to_owned(),
        })?;
        let body = futures::stream::unfold(stdout, |mut stdout| async move {
            use tokio::io::AsyncReadExt as _;
            let mut chunk = vec![0; 1 << 20];
            match stdout.read(&mut chunk).await {
                Ok(0) => None,
                Ok(n) => {
                    chunk.truncate(n);
                    Some((Ok(bytes::Bytes::from(chunk)), stdout))
                }
                Err(e) => Some((Err(e), stdout)),
            }
        });
        let (repo, tag) = reference.rsplit_once(':').unwrap_or((reference, "latest"));
        let options = bollard::query_parameters::CreateImageOptions {
            from_src: Some("-".to_owned()),
            repo: Some(repo.to_owned()),
            tag: Some(tag.to_owned()),
            ..Default::default()
        };
        let mut stream = orch
            .docker
            .create_image(Some(options), Some(bollard::body_try_stream(body)), None);
        while let Some(item) = stream.next().await {
            if let Err(err) = item {
                return Err(Error::Build {
                    tag: reference.to_owned(),
                    message: format!("importing the root failed: {err}"),
                });
            }
        }
        let status = tar.wait().await.map_err(|source| Error::Io {
            context: "waiting for tar".to_owned(),
            source,
        })?;
        drop(root);
        if !status.success() || !orch.image_exists(reference).await? {
            return Err(Error::Build {
                tag: reference.to_owned(),
                message: "importing the root failed".to_owned(),
            });
        }
        Ok(())
    }
}

/// A temporary directory under /var/tmp (a root is too large for a tmpfs /tmp).
fn tempfile_dir() -> Result<TempDir> {
    let path = std::path::PathBuf::from("/var/tmp").join(format!(
        "director-image.{}.{}",
        std::process::id(),
        COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&path).map_err(|source| Error::Io {
        context: "making a build directory".to_owned(),
        source,
    })?;
    Ok(TempDir(path))
}

static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Removed when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_images_are_named_under_their_repository_and_found_by_reference() {
        let images = BaseImages::new("director").unwrap();
        assert_eq!(images.reference(BaseImage::Python), "director/python:3");
        assert_eq!(images.of("director/debian:bookworm"), Some(BaseImage::Debian));
        assert_eq!(images.of("library/python:3"), None);
        assert!(BaseImages::new("Bad/Repo").is_err());
    }
}
