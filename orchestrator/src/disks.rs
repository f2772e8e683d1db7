//! Each site's files on a file system of their own, so that the kernel holds every writer to
//! the site's disk quota — the site's own code and its terminal as much as Director.
//!
//! A site's disk is a sparse ext4 image, `<images>/0042.ext4`, as large as its quota, loop-mounted
//! `nosuid,nodev` at `<sites root>/0042`. The sites root is itself a small tmpfs mounted when
//! Director starts: after a reboot no site's directory exists until its disk is mounted again,
//! so a service the engine restarts first fails to start (its bind has no source) and retries,
//! rather than running on an empty directory and writing beside its disk. This kernel has no
//! quota support (`CONFIG_QUOTA`), and a shared btrfs would let a tenant escape its qgroup by
//! making a subvolume; a file system per site needs neither.
//!
//! Architecture invariant: only this module mounts, grows and removes sites' disks, and it
//! never reads or writes inside one (the platform's descriptor-based primitives do that).

use std::{
    collections::HashSet,
    ffi::OsStr,
    path::{Path, PathBuf},
};

use crate::{Error, Result, mounts};

/// The tmpfs under which sites' disks are mounted (its name in the mount table).
const SITES_TMPFS: &str = "director-sites";
/// mke2fs makes it; nothing needs it (e2fsck makes it again if it must), and the site's
/// members would find a directory of root's in their files.
const LOST_FOUND: &str = "lost+found";
/// The file system's own share of an image: its journal and inode tables take this much more
/// than the quota, so that the quota is what the site's files can use.
fn image_size(quota: u64) -> u64 {
    quota + quota / 16 + (16 << 20)
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
}

impl Disks {
    /// Disks kept in `images`, mounted under `sites_root`.
    pub fn new(images: PathBuf, sites_root: PathBuf) -> Self {
        Self { images, sites_root }
    }

    /// The directory under which sites' disks are mounted.
    pub fn sites_root(&self) -> &Path {
        &self.sites_root
    }

    fn image(&self, directory: &str) -> PathBuf {
        self.images.join(format!("{directory}.ext4"))
    }

    /// Where a directory from before disks is copied from (a private mount: see [`Self::prepare`]).
    fn stage(&self) -> PathBuf {
        self.images.join("stage")
    }

    /// Mounts the sites root's tmpfs unless it is there. Sites' directories from before disks
    /// existed (plain directories in the sites root) are copied onto disks of `quota` (or of
    /// what they take, if more) and moved to `<images>/before-disks`; their names are returned,
    /// so that whatever still runs on the old directories can be restarted.
    pub async fn prepare(&self, quota: u64) -> Result<Vec<String>> {
        std::fs::create_dir_all(&self.images).map_err(io("making the disks' directory"))?;
        std::fs::create_dir_all(&self.sites_root).map_err(io("making the sites root"))?;
        if mounts::at(&self.sites_root)?.is_some_and(|m| m.fstype == "tmpfs" && m.source == SITES_TMPFS) {
            return Ok(Vec::new());
        }
        let migrated = self.migrate(quota).await?;
        mounts::ensure_tmpfs(&self.sites_root, SITES_TMPFS, "0755", "--make-private").await?;
        Ok(migrated)
    }

    async fn migrate(&self, quota: u64) -> Result<Vec<String>> {
        let mut old = Vec::new();
        for entry in std::fs::read_dir(&self.sites_root).map_err(io("reading the sites root"))? {
            let entry = entry.map_err(io("reading the sites root"))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_directory_name(&name) && entry.file_type().is_ok_and(|t| t.is_dir()) {
                old.push(name);
            }
        }
        if old.is_empty() {
            return Ok(old);
        }
        let stage = self.stage();
        mounts::ensure_tmpfs(&stage, "director-stage", "0700", "--make-private").await?;
        let before = self.images.join("before-disks");
        std::fs::create_dir_all(&before).map_err(io("making before-disks"))?;
        for name in &old {
            let from = self.sites_root.join(name);
            let used = used(&from).await?;
            let meta = std::fs::symlink_metadata(&from).map_err(io("reading a site's directory"))?;
            let uid = std::os::unix::fs::MetadataExt::uid(&meta);
            let image = self.image(name);
            if !image.exists() {
                make_image(&image, image_size(quota.max(used + used / 8)), uid).await?;
            }
            let to = stage.join(name);
            std::fs::create_dir_all(&to).map_err(io("making a staging directory"))?;
            mount_image(&image, &to).await?;
            let _ = std::fs::remove_dir(to.join(LOST_FOUND));
            // cp -a copies links as links and keeps owners and modes; --one-file-system keeps
            // it on the site's own tree.
            let copied = mounts::run(
                "cp",
                &[
                    "-a".as_ref(),
                    "--one-file-system".as_ref(),
                    "--".as_ref(),
                    from.join(".").as_os_str(),
                    to.as_os_str(),
                ],
                &format!("copying site directory {name} onto its disk"),
            )
            .await;
            mounts::detach(&to).await?;
            let _ = std::fs::remove_dir(&to);
            copied?;
            std::fs::rename(&from, before.join(name))
                .map_err(io("moving a copied site's directory aside"))?;
            tracing::warn!(site = %name, kept = %before.join(name).display(), "a site's directory was copied onto a disk of its own; the old copy is kept");
        }
        mounts::detach(&stage).await?;
        Ok(old)
    }

    /// Makes sure the site's disk exists, is at least as large as its quota, and is mounted at
    /// its directory. Idempotent: a second call finds it ready.
    pub async fn ensure(&self, spec: &DiskSpec) -> Result<DiskChange> {
        if !is_directory_name(&spec.directory) {
            return Err(Error::invalid(
                "site directory",
                "a site's directory is named by digits",
            ));
        }
        let image = self.image(&spec.directory);
        let directory = self.sites_root.join(&spec.directory);
        let mut change = DiskChange::Ready;
        if !image.exists() {
            make_image(&image, image_size(spec.quota), spec.uid).await?;
            change = DiskChange::Made;
        }
        let mounted = match mounts::at(&directory)? {
            Some(m) if m.fstype == "ext4" => m,
            other => {
                if other.is_some() {
                    mounts::detach(&directory).await?;
                }
                match std::fs::create_dir(&directory) {
                    Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                        return Err(io("making a site's mount point")(e));
                    }
                    _ => {}
                }
                mount_image(&image, &directory).await?;
                if change == DiskChange::Made {
                    let _ = std::fs::remove_dir(directory.join(LOST_FOUND));
                } else {
                    change = DiskChange::Mounted;
                }
                mounts::at(&directory)?
                    .ok_or_else(|| Error::Disk("the site's disk did not mount".to_owned()))?
            }
        };
        let want = image_size(spec.quota);
        let have = std::fs::metadata(&image)
            .map_err(io("reading a site's disk"))?
            .len();
        if have < want {
            grow(&image, &mounted.source, want).await?;
            change = DiskChange::Grown;
        }
        Ok(change)
    }

    /// The directories whose disks are mounted now.
    pub fn mounted(&self) -> Result<HashSet<String>> {
        let table = mounts::table()?;
        let Ok(entries) = std::fs::read_dir(&self.sites_root) else {
            return Ok(HashSet::new());
        };
        Ok(entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| {
                is_directory_name(name)
                    && mounts::in_table(&table, &self.sites_root.join(name))
                        .is_some_and(|m| m.fstype == "ext4")
            })
            .collect())
    }

    /// Unmounts the site's disk and removes it with everything on it. Already gone is fine.
    pub async fn remove(&self, directory: &str) -> Result<()> {
        if !is_directory_name(directory) {
            return Err(Error::invalid(
                "site directory",
                "a site's directory is named by digits",
            ));
        }
        let path = self.sites_root.join(directory);
        mounts::detach(&path).await?;
        match std::fs::remove_dir(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                // A directory from before disks, not emptied: the platform removes those.
                tracing::debug!(site = %directory, error = %e, "a site's mount point was not empty");
            }
            _ => {}
        }
        match std::fs::remove_file(self.image(directory)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("removing a site's disk")(e)),
            _ => Ok(()),
        }
    }

    /// Detaches every site's disk and the sites root (tests, and uninstalling).
    pub fn detach_all_blocking(&self) {
        mounts::detach_blocking(&self.sites_root);
    }
}

/// Sites' directories are named by their number, `0042`.
fn is_directory_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 10 && name.bytes().all(|b| b.is_ascii_digit())
}

fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io {
        context: context.to_owned(),
        source,
    }
}

/// What `dir` takes on disk, in bytes (`du`, which never follows a link).
async fn used(dir: &Path) -> Result<u64> {
    let out = tokio::process::Command::new("du")
        .args(["-s", "-x", "-B1", "--"])
        .arg(dir)
        .output()
        .await
        .map_err(io("running du"))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0))
}

/// A sparse file of `size` bytes with an empty ext4 file system whose root `uid` owns, made
/// under a temporary name and renamed into place: a crash never leaves half an image.
async fn make_image(image: &Path, size: u64, uid: u32) -> Result<()> {
    let temporary = image.with_extension("ext4.new");
    let file = std::fs::File::create(&temporary).map_err(io("making a site's disk"))?;
    file.set_len(size).map_err(io("sizing a site's disk"))?;
    drop(file);
    let owner = format!("root_owner={uid}:{uid}");
    // No blocks reserved for root: the whole disk is the site's.
    let made = mounts::run(
        "mkfs.ext4",
        &[
            "-q".as_ref(),
            "-F".as_ref(),
            "-m".as_ref(),
            "0".as_ref(),
            "-E".as_ref(),
            owner.as_ref(),
            temporary.as_os_str(),
        ],
        "making a site's file system",
    )
    .await;
    if let Err(err) = made {
        let _ = std::fs::remove_file(&temporary);
        return Err(err);
    }
    std::fs::rename(&temporary, image).map_err(io("placing a site's disk"))
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

/// Grows a mounted disk to `size`: the file, then the loop device, then the file system (ext4
/// grows while mounted). If the file system cannot grow (online resizing needs root with
/// `CAP_SYS_RESOURCE`), the file is put back as it was, so that the next try starts over.
async fn grow(image: &Path, device: &str, size: u64) -> Result<()> {
    let set_len = |len: u64| {
        std::fs::OpenOptions::new()
            .write(true)
            .open(image)
            .and_then(|f| f.set_len(len))
            .map_err(io("growing a site's disk"))
    };
    let before = std::fs::metadata(image)
        .map_err(io("reading a site's disk"))?
        .len();
    set_len(size)?;
    let device = OsStr::new(device);
    set_capacity(device).await?;
    let grown = mounts::run(
        "resize2fs",
        &[device],
        "growing a site's file system (online resizing needs root with CAP_SYS_RESOURCE)",
    )
    .await;
    if grown.is_err() {
        set_len(before)?;
        set_capacity(device).await?;
    }
    grown
}

/// Makes the loop device `device` as large as its file is now.
async fn set_capacity(device: &OsStr) -> Result<()> {
    mounts::run(
        "losetup",
        &["--set-capacity".as_ref(), device],
        "resizing a site's loop device",
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_numbered_directories_are_disks() {
        assert!(is_directory_name("0042"));
        for bad in ["", "../0042", "0042/x", "abc", "00000000001"] {
            assert!(!is_directory_name(bad), "{bad}");
        }
    }

    #[test]
    fn an_image_holds_its_quota_and_its_file_systems_own_share() {
        assert!(image_size(1 << 30) > (1 << 30) + (64 << 20));
        assert!(image_size(1 << 30) < (1 << 30) + (128 << 20));
    }
}
