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
    /// Debian with Python 3 (and the drivers of the sites' databases).
    Python,
    /// Debian's PostgreSQL server, for the sites' databases.
    Postgres,
    /// Debian's MariaDB server (MySQL-compatible), for the sites' databases.
    Mariadb,
    /// `psql` and the `mariadb` client, for database shells.
    DbClient,
}

impl BaseImage {
    /// Every base image, each after the one it is made from (what `director images` makes).
    pub const ALL: [Self; 6] = [
        Self::Busybox,
        Self::Debian,
        Self::Python,
        Self::Postgres,
        Self::Mariadb,
        Self::DbClient,
    ];

    /// The images of the site catalogue, which `serve` makes at start; the others are made on
    /// their first use.
    pub const SITES: [Self; 3] = [Self::Busybox, Self::Debian, Self::Python];

    /// Its name and tag under a repository (`python:3`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Busybox => "busybox:latest",
            Self::Debian => "debian:bookworm",
            Self::Python => "python:3",
            Self::Postgres => "postgres:15",
            Self::Mariadb => "mariadb:10.11",
            Self::DbClient => "dbclient:latest",
        }
    }

    /// The base image it is made from.
    fn from(self) -> Option<Self> {
        match self {
            Self::Python | Self::Postgres | Self::Mariadb | Self::DbClient => Some(Self::Debian),
            Self::Busybox | Self::Debian => None,
        }
    }

    /// What it is made of: its Dockerfile with what it is made from, as a digest. An image on
    /// the engine labelled with another (an older Director's) is made again. Debian's root,
    /// imported, carries no label: it is only made when missing.
    pub fn recipe(self) -> String {
        use sha2::Digest as _;
        let mut hasher = sha2::Sha256::new();
        hasher.update(
            self.dockerfile()
                .unwrap_or("debootstrap --variant=minbase bookworm"),
        );
        if let Some(from) = self.from() {
            hasher.update(from.recipe());
        }
        hasher
            .finalize()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Its Dockerfile (none for Debian: its root is imported).
    fn dockerfile(self) -> Option<&'static str> {
        match self {
            Self::Busybox => Some(include_str!("../../images/busybox/Dockerfile")),
            Self::Python => Some(include_str!("../../images/python/Dockerfile")),
            Self::Postgres => Some(include_str!("../../images/postgres/Dockerfile")),
            Self::Mariadb => Some(include_str!("../../images/mariadb/Dockerfile")),
            Self::DbClient => Some(include_str!("../../images/dbclient/Dockerfile")),
            Self::Debian => None,
        }
    }
}

/// The label that carries a base image's recipe ([`BaseImage::recipe`]).
pub const RECIPE_LABEL: &str = "director.recipe";

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

    /// Makes `image` (and what it is made from) unless the engine has it as this Director makes
    /// it (its recipe label; Debian's root only when missing); `on_line` hears each
    /// step and line of output. Returns whether anything was made. The making runs as a task
    /// of its own: a caller that goes away (a request cancelled, an operation taken over) never
    /// stops a build midway.
    pub async fn ensure(
        &self,
        orch: &Orchestrator,
        image: BaseImage,
        on_line: &mut (dyn FnMut(BuildLine) + Send),
    ) -> Result<bool> {
        let (lines, mut heard) = tokio::sync::mpsc::unbounded_channel();
        let (images, orch) = (self.clone(), orch.clone());
        let mut made = tokio::spawn(async move { images.make(&orch, image, lines).await });
        loop {
            tokio::select! {
                Some(line) = heard.recv() => on_line(line),
                done = &mut made => {
                    while let Ok(line) = heard.try_recv() {
                        on_line(line);
                    }
                    return done.map_err(|e| Error::Build {
                        tag: self.reference(image),
                        message: format!("the build stopped: {e}"),
                    })?;
                }
            }
        }
    }

    async fn make(
        &self,
        orch: &Orchestrator,
        image: BaseImage,
        lines: tokio::sync::mpsc::UnboundedSender<BuildLine>,
    ) -> Result<bool> {
        let _one = self.building.lock().await;
        let mut made = false;
        let chain: Vec<BaseImage> = std::iter::successors(Some(image), |i| i.from()).collect();
        for step in chain.into_iter().rev() {
            let reference = self.reference(step);
            let current = match step {
                BaseImage::Debian => orch.image_exists(&reference).await?,
                _ => orch.image_label(&reference, RECIPE_LABEL).await? == Some(step.recipe()),
            };
            if current {
                continue;
            }
            let mut heard = |line: BuildLine| {
                self.record(step, Progress::Making(line.0.clone()));
                let _ = lines.send(line);
            };
            heard(BuildLine(format!("making {reference}")));
            let making = match step {
                BaseImage::Debian => self.import_debian(orch, &reference, &mut heard).await,
                BaseImage::Busybox
                | BaseImage::Python
                | BaseImage::Postgres
                | BaseImage::Mariadb
                | BaseImage::DbClient => match build_dir() {
                    Ok(context) => match self.context(step, context.path()) {
                        Ok(()) => tokio::time::timeout(
                            BUILD_FOR,
                            orch.build_image(&reference, context.path(), &mut heard),
                        )
                        .await
                        .map_err(|_| Error::Build {
                            tag: reference.clone(),
                            message: format!("took longer than {} minutes", BUILD_FOR.as_secs() / 60),
                        })
                        .and_then(|built| built.map(|_| ())),
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
        let dockerfile = format!(
            "{}\nLABEL {RECIPE_LABEL}=\"{}\"\n",
            dockerfile.replace("FROM director/", &format!("FROM {}/", self.repository)),
            image.recipe()
        );
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
        let failed = |message: String| Error::Build {
            tag: reference.to_owned(),
            message,
        };
        let root = build_dir()?;
        let mirror = std::env::var("DIRECTOR_DEBIAN_MIRROR")
            .unwrap_or_else(|_| "http://deb.debian.org/debian".to_owned());
        on_line(BuildLine("debootstrap bookworm (minbase)".to_owned()));
        // The packages' signatures are checked against Debian's keyring: the mirror is plain HTTP.
        let run = tokio::process::Command::new("debootstrap")
            .args([
                "--variant=minbase",
                "--force-check-gpg",
                "--keyring=/usr/share/keyrings/debian-archive-keyring.gpg",
                "bookworm",
            ])
            .arg(root.path())
            .arg(&mirror)
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(BUILD_FOR, run)
            .await
            .map_err(|_| failed("debootstrap took too long".to_owned()))?
            .map_err(|source| Error::Io {
                context: "running debootstrap (install Debian's debootstrap)".to_owned(),
                source,
            })?;
        if !out.status.success() {
            let said = format!(
                "{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let tail: Vec<&str> = said
                .lines()
                .filter(|l| !l.trim().is_empty())
                .rev()
                .take(5)
                .collect();
            return Err(failed(format!(
                "debootstrap failed: {}",
                tail.into_iter().rev().collect::<Vec<_>>().join("; ")
            )));
        }
        on_line(BuildLine(format!("importing {reference}")));
        // Imported under a name of its own and named as asked only once whole: an import cut
        // short is never taken for the image.
        let (repo, tag) = reference.rsplit_once(':').unwrap_or((reference, "latest"));
        let partial = format!("{repo}:importing");
        let imported = tokio::time::timeout(BUILD_FOR, import_root(orch, root.path(), repo))
            .await
            .map_err(|_| failed("importing the root took too long".to_owned()))
            .and_then(|imported| imported);
        drop(root);
        let named = match imported {
            Err(err) => Err(failed(format!("importing the root failed: {err}"))),
            Ok(()) => orch
                .docker
                .tag_image(
                    &partial,
                    Some(bollard::query_parameters::TagImageOptions {
                        repo: Some(repo.to_owned()),
                        tag: Some(tag.to_owned()),
                    }),
                )
                .await
                .map_err(|e| failed(format!("naming the image failed: {e}"))),
        };
        // The partial name goes whatever happened (the image stays under its own name once
        // named).
        let _ = orch
            .docker
            .remove_image(
                &partial,
                None::<bollard::query_parameters::RemoveImageOptions>,
                None,
            )
            .await;
        named
    }
}

/// Streams `root` as a tar to the engine's import, as `<repo>:importing`; an error unless tar
/// and the engine both finished well.
async fn import_root(orch: &Orchestrator, root: &Path, repo: &str) -> Result<()> {
    let io = |context: &str| {
        let context = context.to_owned();
        move |source| Error::Io { context, source }
    };
    let mut tar = tokio::process::Command::new("tar")
        .arg("-C")
        .arg(root)
        .args(["-c", "."])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(io("running tar"))?;
    let stdout = tar
        .stdout
        .take()
        .ok_or_else(|| Error::Engine("tar gave no output".to_owned()))?;
    // The root goes to the engine as a stream, never whole in memory.
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
    let options = bollard::query_parameters::CreateImageOptions {
        from_src: Some("-".to_owned()),
        repo: Some(repo.to_owned()),
        tag: Some("importing".to_owned()),
        ..Default::default()
    };
    let mut stream = orch
        .docker
        .create_image(Some(options), Some(bollard::body_try_stream(body)), None);
    while let Some(item) = stream.next().await {
        let info = item?;
        if let Some(detail) = info.error_detail {
            return Err(Error::Engine(detail.message.unwrap_or_default()));
        }
    }
    let status = tar.wait().await.map_err(io("waiting for tar"))?;
    if !status.success() {
        return Err(Error::Engine(format!("tar {status}")));
    }
    Ok(())
}

/// The longest one step of making an image may take.
const BUILD_FOR: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// A build directory of its own under /var/tmp (a root is too large for a tmpfs /tmp), made
/// exclusively and 0700 (no local user can have made it first, or look into it).
fn build_dir() -> Result<BuildDir> {
    tempfile::Builder::new()
        .prefix("director-image.")
        .tempdir_in("/var/tmp")
        .map(BuildDir)
        .map_err(|source| Error::Io {
            context: "making a build directory".to_owned(),
            source,
        })
}

/// Removed when dropped — after anything mounted beneath it (debootstrap mounts `/proc` and
/// more in its root, and a killed one leaves them) is detached; if that fails it is left, never
/// removed across a mount.
struct BuildDir(tempfile::TempDir);

impl BuildDir {
    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for BuildDir {
    fn drop(&mut self) {
        let beneath = |table: &crate::mounts::Table| {
            let prefix = format!("{}/", self.path().to_string_lossy());
            let mut points: Vec<String> = table.keys().filter(|p| p.starts_with(&prefix)).cloned().collect();
            points.sort_by_key(|p| std::cmp::Reverse(p.len()));
            points
        };
        let read = || std::fs::read_to_string("/proc/self/mountinfo").map(|info| crate::mounts::parse(&info));
        if let Ok(table) = read() {
            for point in beneath(&table) {
                crate::mounts::detach_blocking(Path::new(&point));
            }
        }
        if !read().is_ok_and(|table| beneath(&table).is_empty()) {
            tracing::error!(dir = %self.path().display(), "a build directory still has mounts beneath it; left in place");
            self.0.disable_cleanup(true);
        }
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
