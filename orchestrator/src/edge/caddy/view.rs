//! The read-only view of the sites Caddy serves static files from: one bind per static site,
//! made read-only and `nosymfollow` in a private staging mount, checked, then moved into view.

use std::path::{Path, PathBuf};

use super::{Caddy, SITES_IN, io};
use crate::{Error, Result, mounts};

/// Makes staging places unique within the process.
static STAGINGS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Caddy {
    /// Makes the site directory `directory` (under the sites root) visible to Caddy, read-only
    /// and with `nosymfollow` (no link a tenant makes is followed, to another site or to Caddy's
    /// own files), unless it already is. A bind left from before the directory's disk was
    /// mounted again (it shows another file system) is replaced.
    ///
    /// The bind is made in a private staging mount, its flags set there, and then moved into
    /// the shared view: a mount propagates with the flags it has when it arrives, and a
    /// remount's flags never propagate.
    pub async fn show(&self, directory: &str) -> Result<()> {
        check_directory(directory)?;
        let source = self.config.sites_root.join(directory);
        let shown = self.config.sites_view().join(directory);
        let device = |path: PathBuf| async move {
            tokio::fs::symlink_metadata(path)
                .await
                .map(|m| std::os::unix::fs::MetadataExt::dev(&m))
        };
        let want = device(source.clone())
            .await
            .map_err(io(format!("finding site directory {directory}")))?;
        if let Some(mounted) = mounts::at(&shown).await? {
            if guarded(&mounted) && device(shown.clone()).await.ok() == Some(want) {
                return Ok(());
            }
            mounts::detach(&shown).await?;
        }
        // A staging place of this call's own: another call's bind is never the one moved.
        let staged = self.config.stage().join(format!(
            "{directory}.{}",
            STAGINGS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        tokio::fs::create_dir_all(&staged)
            .await
            .map_err(io("making a staging mount point"))?;
        tokio::fs::create_dir_all(&shown)
            .await
            .map_err(io("making a mount point in the sites view"))?;
        let moved = async {
            mounts::run(
                "mount",
                &["--bind".as_ref(), source.as_os_str(), staged.as_os_str()],
                "binding a site's directory for Caddy",
            )
            .await?;
            mounts::run(
                "mount",
                &[
                    "-o".as_ref(),
                    "remount,bind,ro,nosymfollow,nosuid,nodev,noexec".as_ref(),
                    staged.as_os_str(),
                ],
                "making a site's directory read-only for Caddy (needs Linux 5.10+)",
            )
            .await?;
            // An option the tools did not know would have been dropped without a word:
            // nothing is shown to Caddy without both.
            if !mounts::at(&staged).await?.is_some_and(|m| guarded(&m)) {
                return Err(Error::Disk(
                    "the site's directory could not be made read-only and nosymfollow for Caddy".to_owned(),
                ));
            }
            mounts::run(
                "mount",
                &["--move".as_ref(), staged.as_os_str(), shown.as_os_str()],
                "showing a site's directory to Caddy",
            )
            .await
        }
        .await;
        if moved.is_err() {
            mounts::detach(&staged).await?;
        }
        let _ = tokio::fs::remove_dir(&staged).await;
        moved
    }

    /// Takes the site directory `directory` out of Caddy's view (when the site goes).
    pub async fn hide(&self, directory: &str) -> Result<()> {
        check_directory(directory)?;
        let shown = self.config.sites_view().join(directory);
        mounts::detach(&shown).await?;
        match tokio::fs::remove_dir(&shown).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io("removing a site from the sites view")(e))
            }
            _ => Ok(()),
        }
    }

    pub(super) fn static_root(&self, public_dir: &Path) -> Result<PathBuf> {
        let relative = public_dir.strip_prefix(&self.config.sites_root).map_err(|_| {
            Error::invalid(
                "static root",
                format!("{} is not under the sites root", public_dir.display()),
            )
        })?;
        if relative
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(Error::invalid(
                "static root",
                format!("{} is not a plain path", public_dir.display()),
            ));
        }
        Ok(Path::new(SITES_IN).join(relative))
    }
}
/// Whether a bind in the sites view has what keeps Caddy to the site's files as they are.
fn guarded(mounted: &mounts::Mounted) -> bool {
    let options: Vec<&str> = mounted.options.split(',').collect();
    options.contains(&"ro") && options.contains(&"nosymfollow")
}

/// A site's directory is one plain name under the sites root.
fn check_directory(directory: &str) -> Result<()> {
    if directory.is_empty()
        || !directory
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(Error::invalid(
            "site directory",
            format!("{directory:?} is not a site's directory"),
        ));
    }
    Ok(())
}
