//! Each site's files on a file system of their own, so that the kernel holds every writer to
//! the site's disk quota — the site's own code and its terminal as much as Director.
//!
//! A site's disk is a sparse ext4 image, `<images>/0042.ext4`, sized so that what its files may
//! take is its quota, loop-mounted `nosuid,nodev` at `<sites root>/0042`. The sites root is
//! itself a small tmpfs mounted when Director starts: after a reboot no site's directory exists
//! until its disk is mounted again, so a service the engine restarts first fails to start (its
//! bind has no source) and retries, rather than running on an empty directory and writing
//! beside its disk. This kernel has no quota support (`CONFIG_QUOTA`), and a shared btrfs would
//! let a tenant leave its qgroup by making a subvolume; a file system per site needs neither.
//!
//! Architecture invariant: only this module mounts, grows and removes sites' disks, and it
//! never reads or writes inside one (the platform's descriptor-based primitives do that; a
//! directory from before disks is copied by `cp -a` only while nothing of its site runs).

use std::{
    ffi::OsStr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use crate::{Error, Result, mounts};

/// The tmpfs under which sites' disks are mounted (its name in the mount table).
const SITES_TMPFS: &str = "director-sites";
/// mke2fs makes it; nothing needs it (e2fsck makes it again if it must), and the site's
/// members would find a directory of root's in their files.
const LOST_FOUND: &str = "lost+found";
/// The longest copying one directory from before disks may take.
const COPY_FOR: Duration = Duration::from_secs(30 * 60);

/// The size an image is first made at: the quota and room for the file system's own
/// structures (journal, inode tables), which are then measured and the image cut to fit.
fn first_size(quota: u64) -> u64 {
    quota + quota / 8 + (16 << 20)
}

/// The kernel keeps back a little of an ext4 for delayed allocation (2%, at most 4096
/// blocks): added, so that the site can write its whole quota.
fn kept_back(quota: u64) -> u64 {
    (quota / 50).min(16 << 20) + (1 << 20)
}

/// What [`Disks::ensure`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskChange {
    /// It was mounted, at least as large as asked.
    Ready,
    /// It existed and was mounted again (after a reboot, or after it was unmounted).
    Mounted,
    /// It was made (and mounted).
    Made,
    /// It was grown to a larger quota.
    Grown,
}

/// One site's disk, as the platform asks for it.
#[derive(Debug, Clone)]
pub struct DiskSpec {
    /// The site's directory's name under the sites root (`0042`): digits only.
    pub directory: String,
    /// The quota: what the site's files may take.
    pub quota: u64,
    /// The owner of the disk's root directory (the site's uid and gid).
    pub uid: u32,
}

/// The sites' disks on this host.
#[derive(Debug, Clone)]
pub struct Disks {
    images: PathBuf,
    sites_root: PathBuf,
    /// One change at a time: two makes of one disk would format it twice and mount it twice.
    changes: Arc<tokio::sync::Mutex<()>>,
}

impl Disks {
    /// Disks kept in `images`, mounted under `sites_root`.
    pub fn new(images: PathBuf, sites_root: PathBuf) -> Self {
        Self {
            images,
            sites_root,
            changes: Arc::default(),
        }
    }

    /// The directory under which sites' disks are mounted.
    pub fn sites_root(&self) -> &Path {
        &self.sites_root
    }

    fn image(&self, directory: &str) -> PathBuf {
        self.images.join(format!("{directory}.ext4"))
    }

    /// Where the sites root as it was before disks is seen while its directories are copied
    /// onto disks (a private bind of it, made before the tmpfs covers it).
    pub fn old_sites(&self) -> PathBuf {
        self.images.join("old-sites")
    }

    /// Mounts the sites root's tmpfs unless it is there. If the sites root held sites'
    /// directories (from before disks), it is first bound privately at [`Self::old_sites`], and
    /// their names are returned: each is to be moved with [`Self::copy_old`] while nothing of
    /// its site runs. Until it is, [`Self::ensure`] refuses that site (its files are not lost
    /// under an empty disk).
    pub async fn prepare(&self) -> Result<Vec<String>> {
        for dir in [&self.images, &self.sites_root] {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(io("making the disks' directories"))?;
        }
        // The images hold every tenant's files: root's alone.
        tokio::fs::set_permissions(&self.images, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .await
            .map_err(io("closing the disks' directory"))?;
        let old = self.old_sites();
        if !mounts::is_tmpfs(&mounts::at(&self.sites_root).await?, SITES_TMPFS)
            && !old_entries(&self.sites_root).await?.is_empty()
            && mounts::at(&old).await?.is_none()
        {
            tokio::fs::create_dir_all(&old)
                .await
                .map_err(io("making old-sites"))?;
            let bound = mounts::run(
                "mount",
                &["--bind".as_ref(), self.sites_root.as_os_str(), old.as_os_str()],
                "keeping the sites from before disks in view",
            )
            .await;
            bound.and(
                mounts::run(
                    "mount",
                    &["--make-private".as_ref(), old.as_os_str()],
                    "keeping the sites from before disks private",
                )
                .await,
            )?;
        }
        mounts::ensure_tmpfs(&self.sites_root, SITES_TMPFS, "0755", "--make-private").await?;
        if mounts::at(&old).await?.is_none() {
            return Ok(Vec::new());
        }
        numbered(&old).await
    }

    /// What is left in [`Self::old_sites`] of directories already copied onto their disks
    /// (`.moved-0042`: renamed so once their copy was whole, and to be removed).
    pub async fn moved_leftovers(&self) -> Result<Vec<String>> {
        let old = self.old_sites();
        if mounts::at(&old).await?.is_none() {
            return Ok(Vec::new());
        }
        Ok(old_entries(&old)
            .await?
            .into_iter()
            .filter(|name| name.starts_with(MOVED))
            .collect())
    }

    /// Copies the site's directory from before disks onto its disk (made for it, with room for
    /// what it holds), then renames the old directory to `.moved-0042`, whose name it returns:
    /// the caller removes it and calls [`Self::ensure`]. Nothing of the site may run meanwhile
    /// (`cp` walks the tree by path, as root). The copy goes to an image of its own, placed
    /// only once whole, and the old directory is renamed only then: wherever a crash stops it,
    /// the next try starts again from a whole old directory, or finds the move done.
    pub async fn copy_old(&self, spec: &DiskSpec) -> Result<String> {
        check_directory(&spec.directory)?;
        let _one = self.changes.lock().await;
        let old = self.old_sites();
        let from = old.join(&spec.directory);
        let (bytes, inodes) = (used(&from, "-B1").await?, used(&from, "--inodes").await?);
        let image = self.image(&spec.directory);
        let copy = image.with_extension("ext4.copy");
        let _ = tokio::fs::remove_file(&copy).await;
        make_image(
            &copy,
            &ImagePlan {
                quota: spec.quota.max(bytes + bytes / 8),
                uid: spec.uid,
                inodes: Some(inodes + inodes / 2),
            },
        )
        .await?;
        let stage = self.images.join("stage");
        mounts::ensure_tmpfs(&stage, "director-stage", "0700", "--make-private").await?;
        let to = stage.join(&spec.directory);
        tokio::fs::create_dir_all(&to)
            .await
            .map_err(io("making a staging directory"))?;
        let copied = async {
            mount_image(&copy, &to).await?;
            let _ = tokio::fs::remove_dir(to.join(LOST_FOUND)).await;
            // -a copies links as links and keeps owners, modes and times; it never opens a
            // FIFO or a device (it makes them anew).
            let source = from.join(".");
            let what = format!("copying site directory {} onto its disk", spec.directory);
            let args: [&OsStr; 5] = [
                "-a".as_ref(),
                "--one-file-system".as_ref(),
                "--".as_ref(),
                source.as_os_str(),
                to.as_os_str(),
            ];
            let copying = mounts::run("cp", &args, &what);
            tokio::time::timeout(COPY_FOR, copying)
                .await
                .map_err(|_| Error::Disk("copying the site's directory took too long".to_owned()))?
        }
        .await;
        mounts::detach(&to).await?;
        let _ = tokio::fs::remove_dir(&to).await;
        if let Err(err) = copied {
            let _ = tokio::fs::remove_file(&copy).await;
            return Err(err);
        }
        tokio::fs::rename(&copy, &image)
            .await
            .map_err(io("placing a site's disk"))?;
        let moved = format!("{MOVED}{}", spec.directory);
        tokio::fs::rename(&from, old.join(&moved))
            .await
            .map_err(io("marking a site's old directory as moved"))?;
        Ok(moved)
    }

    /// After the last directory from before disks has moved: lets go of the old sites root.
    pub async fn finish_old(&self) -> Result<()> {
        let old = self.old_sites();
        if mounts::at(&old).await?.is_some() && old_entries(&old).await?.is_empty() {
            mounts::detach(&old).await?;
            let _ = tokio::fs::remove_dir(&old).await;
        }
        Ok(())
    }

    /// Makes sure the site's disk exists, holds at least its quota, and is mounted at its
    /// directory. Idempotent: a second call finds it ready.
    pub async fn ensure(&self, spec: &DiskSpec) -> Result<DiskChange> {
        check_directory(&spec.directory)?;
        let _one = self.changes.lock().await;
        let table = mounts::table().await?;
        if !mounts::is_tmpfs(&mounts::in_table(&table, &self.sites_root), SITES_TMPFS) {
            return Err(Error::Disk(
                "the sites root is not mounted (Director mounts it when it starts)".to_owned(),
            ));
        }
        if mounts::in_table(&table, &self.old_sites()).is_some()
            && tokio::fs::symlink_metadata(self.old_sites().join(&spec.directory))
                .await
                .is_ok()
        {
            return Err(Error::Disk(
                "the site's files from before disks are not on its disk yet".to_owned(),
            ));
        }
        let image = self.image(&spec.directory);
        let directory = self.sites_root.join(&spec.directory);
        let mut change = DiskChange::Ready;
        if tokio::fs::symlink_metadata(&image).await.is_err() {
            make_image(
                &image,
                &ImagePlan {
                    quota: spec.quota,
                    uid: spec.uid,
                    inodes: None,
                },
            )
            .await?;
            change = DiskChange::Made;
        }
        let mounted = match mounts::in_table(&table, &directory) {
            Some(m) if m.fstype == "ext4" => m,
            _ => {
                match tokio::fs::create_dir(&directory).await {
                    Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                        return Err(io("making a site's mount point")(e));
                    }
                    _ => {}
                }
                if let Err(err) = mount_image(&image, &directory).await {
                    // No directory without its disk: nothing may start on, or write to, an
                    // empty directory in its place.
                    let _ = tokio::fs::remove_dir(&directory).await;
                    return Err(err);
                }
                if change == DiskChange::Made {
                    let _ = tokio::fs::remove_dir(directory.join(LOST_FOUND)).await;
                } else {
                    change = DiskChange::Mounted;
                }
                mounts::at(&directory)
                    .await?
                    .ok_or_else(|| Error::Disk("the site's disk did not mount".to_owned()))?
            }
        };
        if capacity(&directory).await? < spec.quota {
            grow(&image, &mounted.source, spec.quota).await?;
            change = DiskChange::Grown;
        }
        Ok(change)
    }

    /// Unmounts the site's disk and removes it with everything on it. Already gone is fine.
    pub async fn remove(&self, directory: &str) -> Result<()> {
        check_directory(directory)?;
        let _one = self.changes.lock().await;
        let path = self.sites_root.join(directory);
        mounts::detach(&path).await?;
        match tokio::fs::remove_dir(&path).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io("removing a site's mount point")(e));
            }
            _ => {}
        }
        match tokio::fs::remove_file(self.image(directory)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("removing a site's disk")(e)),
            _ => Ok(()),
        }
    }
}

/// A site's directory is named by its number, `0042`.
fn check_directory(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 10 || !name.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::invalid(
            "site directory",
            "a site's directory is named by digits",
        ));
    }
    Ok(())
}

/// What [`Disks::copy_old`] renames a directory it has copied to, before it is removed.
const MOVED: &str = ".moved-";

/// The directories in `dir` of sites from before disks: pending (`0042`) or moved
/// (`.moved-0042`).
async fn old_entries(dir: &Path) -> Result<Vec<String>> {
    let mut names = numbered(dir).await?;
    let mut entries = tokio::fs::read_dir(dir)
        .await
        .map_err(io("reading the sites root"))?;
    while let Some(entry) = entries.next_entry().await.map_err(io("reading the sites root"))? {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name
            .strip_prefix(MOVED)
            .is_some_and(|number| check_directory(number).is_ok())
        {
            names.push(name);
        }
    }
    Ok(names)
}

/// The sites' directories (numbered ones) in `dir`.
async fn numbered(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    let mut entries = tokio::fs::read_dir(dir)
        .await
        .map_err(io("reading the sites root"))?;
    while let Some(entry) = entries.next_entry().await.map_err(io("reading the sites root"))? {
        let name = entry.file_name().to_string_lossy().into_owned();
        if check_directory(&name).is_ok() && entry.file_type().await.is_ok_and(|t| t.is_dir()) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io {
        context: context.to_owned(),
        source,
    }
}

/// What `dir` takes (`-B1`: bytes; `--inodes`: files), by `du`, which never follows a link.
async fn used(dir: &Path, what: &str) -> Result<u64> {
    let out = tokio::process::Command::new("du")
        .args(["-s", "-x", what, "--"])
        .arg(dir)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(io("running du"))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0))
}

/// What a new image is made for.
struct ImagePlan {
    /// What its files may take.
    quota: u64,
    /// The owner of its root directory.
    uid: u32,
    /// How many files it must hold at least (mke2fs gives one per 16 KiB, or more).
    inodes: Option<u64>,
}

/// A sparse image with an empty ext4 file system whose root `uid` owns, sized so that its
/// files may take `quota`: made larger, measured (`dumpe2fs`), and cut to fit (`resize2fs`).
/// Made under a temporary name and renamed into place: a crash never leaves half an image.
async fn make_image(image: &Path, plan: &ImagePlan) -> Result<()> {
    let temporary = image.with_extension("ext4.new");
    let _ = tokio::fs::remove_file(&temporary).await;
    let made = async {
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)
            .await
            .map_err(io("making a site's disk"))?;
        let size = first_size(plan.quota);
        file.set_len(size).await.map_err(io("sizing a site's disk"))?;
        drop(file);
        let owner = format!("root_owner={}:{}", plan.uid, plan.uid);
        // -m 0: no blocks reserved for root, the whole disk is the site's.
        let mut args: Vec<&OsStr> = ["-q", "-F", "-m", "0", "-E"].map(OsStr::new).to_vec();
        args.push(owner.as_ref());
        let inodes = plan.inodes.filter(|n| *n > size / 16384).map(|n| n.to_string());
        if let Some(inodes) = &inodes {
            args.extend([OsStr::new("-N"), OsStr::new(inodes)]);
        }
        args.push(temporary.as_os_str());
        mounts::run("mkfs.ext4", &args, "making a site's file system").await?;
        let (block, free) = free_blocks(&temporary).await?;
        let spare = (free * block).saturating_sub(plan.quota + kept_back(plan.quota));
        if spare >= 1 << 20 {
            let blocks = format!("{}", (size - spare) / block);
            mounts::run(
                "resize2fs",
                &[temporary.as_os_str(), blocks.as_ref()],
                "fitting a site's file system to its quota",
            )
            .await?;
        }
        tokio::fs::rename(&temporary, image)
            .await
            .map_err(io("placing a site's disk"))
    }
    .await;
    if made.is_err() {
        let _ = tokio::fs::remove_file(&temporary).await;
    }
    made
}

/// An unmounted file system's block size and free blocks.
async fn free_blocks(image: &Path) -> Result<(u64, u64)> {
    let out = tokio::process::Command::new("dumpe2fs")
        .arg("-h")
        .arg(image)
        .output()
        .await
        .map_err(io("running dumpe2fs"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    match (field("Block size:"), field("Free blocks:")) {
        (Some(block), Some(free)) if block > 0 => Ok((block, free)),
        _ => Err(Error::Disk("reading a new site disk's size failed".to_owned())),
    }
}

/// What the mounted file system at `directory` can hold in all, for its files.
async fn capacity(directory: &Path) -> Result<u64> {
    let directory = directory.to_owned();
    let stat = tokio::task::spawn_blocking(move || rustix::fs::statvfs(&directory))
        .await
        .map_err(|e| Error::Disk(e.to_string()))?
        .map_err(|e| Error::Disk(format!("reading a site's disk: {e}")))?;
    // What its files take plus what is still free for them.
    let used = (stat.f_blocks - stat.f_bfree) * stat.f_frsize;
    Ok(used + stat.f_bavail * stat.f_frsize)
}

/// Loop-mounts `image` at `directory`. A file system that does not mount (after a crash) is
/// checked and repaired once (`e2fsck -p` fixes what is safe to fix) and mounted again.
async fn mount_image(image: &Path, directory: &Path) -> Result<()> {
    if mount_once(image, directory).await.is_ok() {
        return Ok(());
    }
    let checked = tokio::process::Command::new("e2fsck")
        .args(["-p"])
        .arg(image)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(io("running e2fsck"))?;
    tracing::warn!(image = %image.display(), status = ?checked.status.code(), "a site's disk did not mount; checked it");
    mount_once(image, directory).await
}

async fn mount_once(image: &Path, directory: &Path) -> Result<()> {
    mounts::run(
        "mount",
        &[
            "-t".as_ref(),
            "ext4".as_ref(),
            "-o".as_ref(),
            // discard: the loop device gives back to the host what the site deletes.
            "loop,nosuid,nodev,noatime,discard".as_ref(),
            image.as_os_str(),
            directory.as_os_str(),
        ],
        "mounting a site's disk",
    )
    .await
}

/// Grows a mounted disk so that its files may take `quota`: the file, then the loop device,
/// then the file system (ext4 grows while mounted; that needs root with `CAP_SYS_RESOURCE`).
/// The file is never made smaller: a file system partly grown may already use it.
async fn grow(image: &Path, device: &str, quota: u64) -> Result<()> {
    let want = first_size(quota);
    let file = tokio::fs::OpenOptions::new()
        .write(true)
        .open(image)
        .await
        .map_err(io("growing a site's disk"))?;
    if file.metadata().await.map_err(io("reading a site's disk"))?.len() < want {
        file.set_len(want).await.map_err(io("growing a site's disk"))?;
    }
    drop(file);
    let device = OsStr::new(device);
    mounts::run(
        "losetup",
        &["--set-capacity".as_ref(), device],
        "resizing a site's loop device",
    )
    .await?;
    mounts::run(
        "resize2fs",
        &[device],
        "growing a site's file system (online resizing needs root with CAP_SYS_RESOURCE)",
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_numbered_directories_are_disks() {
        assert!(check_directory("0042").is_ok());
        for bad in ["", "../0042", "0042/x", "abc", "00000000001"] {
            assert!(check_directory(bad).is_err(), "{bad}");
        }
    }
}
