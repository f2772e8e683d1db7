//! A site's files, as the browser's file manager works on them: every path resolved by the
//! kernel inside the site's directory at the moment of use, writes atomic and owned by the
//! site's uid.
//!
//! Paths are resolved with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` from a descriptor
//! of the site's directory: `..`, absolute paths and symlinks (absolute or relative) resolve as
//! if the site's directory were `/`. Nothing is checked first and used later, so a symlink
//! swapped in between cannot lead outside. Operations on a last component act by name on the
//! resolved parent's descriptor.

use std::{
    ffi::OsStr,
    io::{Read, Write as _},
    os::{
        fd::{AsFd, OwnedFd},
        unix::ffi::OsStrExt as _,
    },
    path::{Component, Path, PathBuf},
};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};

use crate::{Error, Result};

pub use model::human_bytes;

/// File work running at once on blocking threads, across all sites: a member who opens many
/// slow files waits for room instead of taking every thread the runtime has.
const MAX_BLOCKING: usize = 32;

static BLOCKING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_BLOCKING);

/// Runs `work` on a blocking thread once one of the [`MAX_BLOCKING`] places for file work is
/// free. The place is held by the work itself, not by its caller: a request that gives up
/// does not free it while the work still runs.
pub async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let permit = BLOCKING.acquire().await.map_err(Error::internal)?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work()
    })
    .await
    .map_err(Error::internal)
}

/// Flags every open of a site's file carries. `NONBLOCK`: opening a FIFO for reading waits
/// for a writer, for ever if the tenant wants it so — with it, the open returns at once and
/// the type check below refuses the FIFO. `NOCTTY`: a terminal never becomes ours.
const OPEN: OFlags = OFlags::CLOEXEC.union(OFlags::NONBLOCK).union(OFlags::NOCTTY);

/// Folders nested deeper than this are not walked (a tree made to exhaust the stack).
const MAX_DEPTH: usize = 128;

/// Makes temporary names unique within the process, for concurrent writes of one file.
static TEMP_SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Its name.
    pub name: String,
    /// A directory.
    pub dir: bool,
    /// A symbolic link (not followed for the listing).
    pub link: bool,
    /// Size in bytes.
    pub size: u64,
    /// Permission bits.
    pub mode: u32,
    /// Last modification, seconds since the epoch.
    pub modified: i64,
}

/// What a file was when it was read: saving with it refuses to overwrite a file changed since
/// (from the terminal, SFTP or another tab). Inode, size and modification time to the
/// nanosecond: an atomic save elsewhere makes a new inode, an in-place edit a new time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version(pub String);

fn version_of(stat: &rustix::fs::Stat) -> Version {
    Version(format!(
        "{:x}-{:x}-{:x}.{:09}",
        stat.st_ino, stat.st_size, stat.st_mtime, stat.st_mtime_nsec
    ))
}

/// The folders (device, inode) a save with a version is writing in, in this process. A lock of
/// Director's own, not an `flock` on the folder: the folder is the tenant's, and their code
/// could hold an `flock` on it for ever.
static SAVING: std::sync::Mutex<Vec<(u64, u64)>> = std::sync::Mutex::new(Vec::new());
static SAVED: std::sync::Condvar = std::sync::Condvar::new();

/// A folder held by one save (see [`lock_folder`]); let go when dropped.
struct FolderLock((u64, u64));

impl Drop for FolderLock {
    fn drop(&mut self) {
        let mut saving = SAVING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        saving.retain(|held| *held != self.0);
        SAVED.notify_all();
    }
}

/// Holds `folder` for one save: waits (on a blocking thread, as all file work) while another
/// save in this process writes in it, which takes one write of at most the editor's size —
/// 5 s at most (a slow disk, many saves at once), then 409: a waiting save holds one of the
/// blocking threads every site's file work shares.
fn lock_folder(folder: &OwnedFd) -> Result<FolderLock> {
    let stat = rustix::fs::fstat(folder).map_err(io)?;
    let key = (stat.st_dev, stat.st_ino);
    let deadline = std::time::Instant::now() + FOLDER_WAIT;
    let mut saving = SAVING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    while saving.contains(&key) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(Error::Conflict(
                "Another save in this folder has not finished; try again in a moment.".to_owned(),
            ));
        }
        saving = SAVED
            .wait_timeout(saving, left)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0;
    }
    saving.push(key);
    Ok(FolderLock(key))
}

/// How long a save waits for another in its folder.
const FOLDER_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// A file as [`SiteFiles::read_versioned`] read it.
#[derive(Debug)]
pub struct Contents {
    /// What it was when opened (a save with it refuses if the file changed since).
    pub version: Version,
    /// Its size in bytes.
    pub size: u64,
    /// Its contents; None when it is larger than asked.
    pub bytes: Option<Vec<u8>>,
    /// Its owner's uid.
    pub owner: u32,
}

/// How much a write may carry: `cap` (what the quota leaves), within `limit` (the caller's).
#[derive(Debug, Clone, Copy)]
struct Limits {
    cap: u64,
    limit: u64,
}

/// What a write does when its target exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// The new contents replace it (keeping its mode).
    Replace,
    /// The write is refused (checked at the rename, so a file made meanwhile is kept too).
    Refuse,
}

/// What [`SiteFiles::create`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// The file was written.
    Written,
    /// Something of that name was there already, and was left as it was.
    Kept,
}

/// A directory of Director's own (the sites root, a site's directory by its known path),
/// opened as a place to resolve from.
fn open_path(dir: &Path) -> Result<OwnedFd> {
    rustix::fs::open(
        dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io)
}

/// Makes a site's directory `<sites_root>/<name>` unless it exists, gives it to `uid`, and
/// opens it. `sites_root` is Director's own (no tenant can write in it); from the site's
/// directory down, nothing is followed: it is opened with `O_NOFOLLOW`, and what is beneath it
/// is reached through [`SiteFiles`].
pub fn make_site_directory(sites_root: &Path, name: &str, uid: u32) -> Result<SiteFiles> {
    let parent = open_path(sites_root)?;
    match rustix::fs::mkdirat(&parent, name, Mode::from_bits_truncate(0o755)) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
        Err(err) => return Err(io(err)),
    }
    let root = rustix::fs::openat(
        &parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OPEN,
        Mode::empty(),
    )
    .map_err(io)?;
    let files = SiteFiles {
        root,
        uid,
        disk: None,
    };
    files.own(&files.root).map_err(io)?;
    Ok(files)
}

/// Removes a site's directory `<sites_root>/<name>` and everything in it, never through a link
/// (see [`SiteFiles::remove_all`]); a directory already gone is not an error.
pub fn remove_site_directory(sites_root: &Path, name: &str) -> Result<()> {
    let parent = open_path(sites_root)?;
    match remove_entry(&parent, OsStr::new(name)) {
        Err(Error::NotFound(_)) => Ok(()),
        other => other,
    }
}

/// A site's directory, opened.
#[derive(Debug)]
pub struct SiteFiles {
    root: OwnedFd,
    uid: u32,
    /// The site's disk quota and use: writes stop at what is left of it.
    disk: Option<std::sync::Arc<Disk>>,
}

/// A site's disk quota and what its files take, shared by every writer of the site in this
/// process (the file manager's requests, SFTP sessions): a write reserves what it may write
/// before it starts and gives back what it did not use, so writers at the same moment cannot
/// each use the same room. Measurements set what the files take.
#[derive(Debug)]
pub struct Disk {
    used: std::sync::atomic::AtomicU64,
    quota: u64,
}

impl Disk {
    /// Files taking `used` bytes of `quota`.
    pub fn new(used: u64, quota: u64) -> Self {
        Self {
            used: std::sync::atomic::AtomicU64::new(used),
            quota,
        }
    }

    /// Bytes the files take (as measured, with what was written since).
    pub fn used(&self) -> u64 {
        self.used.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The quota, in bytes.
    pub fn quota(&self) -> u64 {
        self.quota
    }

    /// Bytes that may still be written.
    pub fn room(&self) -> u64 {
        self.quota.saturating_sub(self.used())
    }

    /// What a measurement found.
    pub fn set_used(&self, used: u64) {
        self.used.store(used, std::sync::atomic::Ordering::Relaxed);
    }

    /// Reserves up to `want` bytes: how many (0 when none are left).
    pub fn reserve(&self, want: u64) -> u64 {
        use std::sync::atomic::Ordering;
        let mut taken = 0;
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                taken = want.min(self.quota.saturating_sub(used));
                Some(used + taken)
            });
        taken
    }

    /// Gives back reserved bytes that were not written.
    pub fn release(&self, bytes: u64) {
        use std::sync::atomic::Ordering;
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(bytes))
            });
    }

    /// The refusal of a write that finds no room.
    pub fn full(&self) -> Error {
        Error::DiskFull(format!(
            "The site's files take {} of the {} they may: delete some before adding more; nothing was saved.",
            human_bytes(self.used()),
            human_bytes(self.quota)
        ))
    }
}

/// A path as given, relative to the site's directory: components only, `..` clamped at the
/// root, NUL refused. (The kernel clamps again at use; this keeps names clean for messages.)
pub fn relative(path: &str) -> Result<PathBuf> {
    if path.contains('\0') {
        return Err(Error::invalid("path", "A path cannot contain a NUL byte."));
    }
    // The kernel's limits (PATH_MAX, NAME_MAX), told as such rather than as a failure.
    if path.len() >= 4096 {
        return Err(Error::invalid("path", "A path has at most 4095 bytes."));
    }
    if path.split('/').any(|part| part.len() > 255) {
        return Err(Error::invalid(
            "path",
            "A file or folder name has at most 255 bytes.",
        ));
    }
    let mut parts: Vec<&OsStr> = Vec::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(part) => parts.push(part),
            Component::ParentDir => {
                parts.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Ok(if parts.is_empty() {
        PathBuf::from(".")
    } else {
        parts.iter().collect()
    })
}

fn io(err: rustix::io::Errno) -> Error {
    use rustix::io::Errno;
    match err {
        Errno::NOENT | Errno::NOTDIR => Error::NotFound("file"),
        Errno::EXIST => Error::Conflict("Something of that name exists already.".to_owned()),
        Errno::NOTEMPTY => Error::Conflict("The folder is not empty.".to_owned()),
        Errno::ISDIR => Error::Conflict("That is a folder.".to_owned()),
        Errno::ACCESS | Errno::PERM | Errno::XDEV | Errno::LOOP => {
            Error::Conflict("That path is not allowed.".to_owned())
        }
        Errno::NAMETOOLONG => Error::invalid("path", "That path is too long."),
        other => Error::internal(std::io::Error::from(other)),
    }
}

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

impl SiteFiles {
    /// Opens the site directory `root`, whose files belong to `uid`.
    pub fn open(root: &Path, uid: u32) -> Result<Self> {
        let root = open_path(root)?;
        Ok(Self {
            root,
            uid,
            disk: None,
        })
    }

    /// The same files, writes held to what is left of `disk`'s quota.
    pub fn with_disk(mut self, disk: std::sync::Arc<Disk>) -> Self {
        self.disk = Some(disk);
        self
    }

    /// The site's disk quota and use, when writes are held to it.
    pub fn disk(&self) -> Option<&std::sync::Arc<Disk>> {
        self.disk.as_ref()
    }

    /// Opens `relative` (see [`relative`]) beneath the site's directory, resolved inside it.
    /// The kernel's own error: for protocols that answer errors their own way (SFTP).
    pub fn open_beneath(&self, relative: &Path, flags: OFlags, mode: Mode) -> rustix::io::Result<OwnedFd> {
        // openat2 refuses O_PATH with flags that have no meaning for it.
        let extra = if flags.contains(OFlags::PATH) {
            OFlags::CLOEXEC
        } else {
            OPEN
        };
        rustix::fs::openat2(&self.root, relative.as_os_str(), flags | extra, mode, RESOLVE)
    }

    /// Runs `work` on these files on a blocking thread. Every file system call may wait (on
    /// the disk, on a tenant's slow file), and none may hold one of the async runtime's
    /// workers, which serve every other request.
    pub async fn run<T, F>(self: &std::sync::Arc<Self>, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&SiteFiles) -> Result<T> + Send + 'static,
    {
        let files = std::sync::Arc::clone(self);
        blocking(move || work(&files)).await?
    }

    /// Opens `path` for reading if it is a regular file or a folder; anything else (a FIFO, a
    /// socket, a device) is refused without ever waiting on it.
    fn open_readable(&self, path: &str) -> Result<(OwnedFd, rustix::fs::Stat)> {
        let fd = self.open_at(&relative(path)?, OFlags::RDONLY, Mode::empty())?;
        let stat = rustix::fs::fstat(&fd).map_err(io)?;
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::RegularFile | FileType::Directory => Ok((fd, stat)),
            _ => Err(not_a_file()),
        }
    }

    /// The parent of `relative` (opened beneath the site's directory) and its last component,
    /// to act on by name; None for the site's directory itself, which has none.
    pub fn parent_beneath(&self, relative: &Path) -> rustix::io::Result<Option<(OwnedFd, PathBuf)>> {
        let Some(name) = relative.file_name() else {
            return Ok(None);
        };
        let parent = match relative.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let fd = self.open_beneath(parent, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())?;
        Ok(Some((fd, PathBuf::from(name))))
    }

    /// Gives `fd` to the site's uid and gid.
    pub fn own(&self, fd: impl AsFd) -> rustix::io::Result<()> {
        let (uid, gid) = self.owner();
        rustix::fs::fchown(fd, uid, gid)
    }

    /// Gives `name` in `dir` (never what a link points at) to the site's uid and gid.
    pub fn own_at(&self, dir: impl AsFd, name: &Path) -> rustix::io::Result<()> {
        let (uid, gid) = self.owner();
        rustix::fs::chownat(dir, name.as_os_str(), uid, gid, AtFlags::SYMLINK_NOFOLLOW)
    }

    fn open_at(&self, path: &Path, flags: OFlags, mode: Mode) -> Result<OwnedFd> {
        self.open_beneath(path, flags, mode).map_err(io)
    }

    fn parent(&self, path: &str) -> Result<(OwnedFd, PathBuf)> {
        self.parent_beneath(&relative(path)?)
            .map_err(io)?
            .ok_or_else(|| Error::Conflict("The site's own folder cannot be changed that way.".to_owned()))
    }

    /// The site's uid, which owns its files.
    pub fn uid(&self) -> u32 {
        self.uid
    }

    fn owner(&self) -> (Option<rustix::fs::Uid>, Option<rustix::fs::Gid>) {
        (
            Some(rustix::fs::Uid::from_raw(self.uid)),
            Some(rustix::fs::Gid::from_raw(self.uid)),
        )
    }

    /// The entries of the directory `path`, folders first, then by name.
    pub fn list(&self, path: &str) -> Result<Vec<FileEntry>> {
        let fd = self.open_at(
            &relative(path)?,
            OFlags::RDONLY | OFlags::DIRECTORY,
            Mode::empty(),
        )?;
        let mut entries = Vec::new();
        for name in names(&fd)? {
            let Ok(stat) = rustix::fs::statat(&fd, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) else {
                continue;
            };
            let kind = FileType::from_raw_mode(stat.st_mode);
            entries.push(FileEntry {
                name: name.to_string_lossy().into_owned(),
                dir: kind == FileType::Directory,
                link: kind == FileType::Symlink,
                size: u64::try_from(stat.st_size).unwrap_or(0),
                mode: stat.st_mode & 0o7777,
                modified: stat.st_mtime,
            });
        }
        entries.sort_by(|a, b| b.dir.cmp(&a.dir).then_with(|| a.name.cmp(&b.name)));
        Ok(entries)
    }

    /// The current version of the file `path`.
    pub fn version(&self, path: &str) -> Result<Version> {
        let fd = self.open_at(&relative(path)?, OFlags::PATH, Mode::empty())?;
        Ok(version_of(&rustix::fs::fstat(&fd).map_err(io)?))
    }

    /// Writes `bytes` to `path` (as [`SiteFiles::write`]) unless the file changed since it was
    /// read as `expected`; returns the new version.
    ///
    /// The check and the write are one step for every saver in this process: each holds its
    /// folder from before the check until the file is in place, so of two saves made from the
    /// same version, the second always finds the first's.
    pub fn save(&self, path: &str, bytes: &[u8], expected: Option<&Version>) -> Result<Version> {
        let Some(expected) = expected else {
            self.write(path, bytes)?;
            return self.version(path);
        };
        let (folder, _) = self.parent(path)?;
        let held = lock_folder(&folder)?;
        match self.version(path) {
            Ok(current) if &current == expected => {}
            Ok(_) => {
                return Err(Error::Conflict(
                    "The file changed since you opened it (in the terminal, over SFTP or in another tab). Reload it, or save under another name.".to_owned(),
                ));
            }
            Err(Error::NotFound(_)) => {
                return Err(Error::Conflict(
                    "The file was removed since you opened it.".to_owned(),
                ));
            }
            Err(other) => return Err(other),
        }
        self.write(path, bytes)?;
        let saved = self.version(path);
        // Let go once the file is in place.
        drop(held);
        saved
    }

    /// The contents of the file `path`, if it is at most `limit` bytes.
    pub fn read(&self, path: &str, limit: u64) -> Result<Vec<u8>> {
        let read = self.read_versioned(path, limit)?;
        read.bytes.ok_or_else(|| {
            Error::TooLarge(format!(
                "The file has {}, more than the {} shown here: download it instead.",
                human_bytes(read.size),
                human_bytes(limit)
            ))
        })
    }

    /// The file `path` as an editor opens it, through one descriptor: its version and size as
    /// it was opened, and its contents if it is at most `limit` bytes.
    pub fn read_versioned(&self, path: &str, limit: u64) -> Result<Contents> {
        let (fd, stat) = self.open_readable(path)?;
        if FileType::from_raw_mode(stat.st_mode) == FileType::Directory {
            return Err(Error::Conflict("That is a folder.".to_owned()));
        }
        let size = u64::try_from(stat.st_size).unwrap_or(0);
        let bytes = if size > limit {
            None
        } else {
            let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            std::fs::File::from(fd)
                .take(limit + 1)
                .read_to_end(&mut bytes)
                .map_err(Error::internal)?;
            Some(bytes)
        };
        Ok(Contents {
            version: version_of(&stat),
            size,
            bytes,
            owner: stat.st_uid,
        })
    }

    /// Writes `bytes` to `path` atomically, replacing what is there (see [`SiteFiles::write_from`]).
    pub fn write(&self, path: &str, bytes: &[u8]) -> Result<()> {
        self.write_from(path, &mut &bytes[..], bytes.len() as u64, Existing::Replace)
            .map(|_| ())
    }

    /// Whether something (a file, a folder, a link: not followed) is at `path`.
    pub fn exists(&self, path: &str) -> Result<bool> {
        let (dir, name) = self.parent(path)?;
        match rustix::fs::statat(&dir, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(_) => Ok(true),
            Err(rustix::io::Errno::NOENT) => Ok(false),
            Err(err) => Err(io(err)),
        }
    }

    /// Writes `bytes` to a new file `path` with `mode`, unless something of that name is there
    /// (a file, a folder, a link — none is followed or changed). The file appears whole, with
    /// its mode and owner, or not at all: a crash midway leaves at most a temporary file.
    pub fn create(&self, path: &str, bytes: &[u8], mode: u32) -> Result<Created> {
        if self.exists(path)? {
            return Ok(Created::Kept);
        }
        let (dir, name) = self.parent(path)?;
        let written = self.write_at(
            &dir,
            &name,
            &mut &bytes[..],
            bytes.len() as u64,
            Existing::Refuse,
            mode & 0o777,
        );
        match written {
            Ok(_) => Ok(Created::Written),
            // Made meanwhile by another writer (a worker taken over whose file work went on):
            // there it is, which is what was asked.
            Err(_) if self.exists(path)? => Ok(Created::Kept),
            Err(err) => Err(err),
        }
    }

    /// Makes the folder `path` unless it is there, and gives it to the site's uid. A link in
    /// its place is resolved inside the site like every path; one that leads to nothing, or to
    /// something other than a folder, is refused.
    pub fn ensure_folder(&self, path: &str) -> Result<()> {
        let (dir, name) = self.parent(path)?;
        match rustix::fs::mkdirat(&dir, name.as_os_str(), Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(err) => return Err(io(err)),
        }
        let folder = self
            .open_at(
                &relative(path)?,
                OFlags::RDONLY | OFlags::DIRECTORY,
                Mode::empty(),
            )
            .map_err(|_| Error::Conflict(format!("{path} is not a folder.")))?;
        self.own(&folder).map_err(io)
    }

    /// Writes what `source` yields to `path` atomically: into a temporary file beside it,
    /// synced, then renamed into place — a failed or refused write never leaves half a file.
    /// More than `limit` bytes is refused as [`Error::TooLarge`]. Without `replace`, an existing
    /// `path` is refused (at the rename, so a file made meanwhile is not overwritten either).
    /// A new file gets `0644` and a replaced one keeps its mode; either way it belongs to the
    /// site's uid. Returns the number of bytes written.
    pub fn write_from(
        &self,
        path: &str,
        source: &mut dyn Read,
        limit: u64,
        existing: Existing,
    ) -> Result<u64> {
        let (dir, name) = self.parent(path)?;
        self.write_at(&dir, &name, source, limit, existing, 0o644)
    }

    /// [`SiteFiles::write_from`] into `name` of the resolved folder `dir`; a new file gets
    /// `new_mode`, set (with the owner) before it is renamed into place.
    fn write_at(
        &self,
        dir: &OwnedFd,
        name: &Path,
        source: &mut dyn Read,
        limit: u64,
        existing: Existing,
        new_mode: u32,
    ) -> Result<u64> {
        let replace = existing == Existing::Replace;
        // What may be written: the limit, within what is left of the site's quota (reserved
        // now, the unused part given back at the end).
        let reserved = match &self.disk {
            Some(disk) => match disk.reserve(limit) {
                0 => return Err(disk.full()),
                reserved => Some((disk, reserved)),
            },
            None => None,
        };
        let cap = reserved.map_or(limit, |(_, reserved)| reserved);
        let outcome = self.write_within(dir, name, source, Limits { cap, limit }, replace, new_mode);
        if let Some((disk, reserved)) = reserved {
            disk.release(reserved - outcome.as_ref().map_or(0, |written| (*written).min(reserved)));
            // Said with what the files take once this write's reservation is given back.
            if let Err(Error::DiskFull(_)) = outcome {
                return Err(disk.full());
            }
        }
        outcome
    }

    /// [`SiteFiles::write_at`] once its room is reserved: at most `limits.cap` bytes.
    fn write_within(
        &self,
        dir: &OwnedFd,
        name: &Path,
        source: &mut dyn Read,
        limits: Limits,
        replace: bool,
        new_mode: u32,
    ) -> Result<u64> {
        let Limits { cap, limit } = limits;
        let mode = match rustix::fs::statat(dir, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(_) if !replace => return Err(io(rustix::io::Errno::EXIST)),
            Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile => {
                stat.st_mode & 0o777
            }
            Ok(_) => return Err(Error::Conflict("Only a regular file can be written.".to_owned())),
            Err(rustix::io::Errno::NOENT) => new_mode,
            Err(err) => return Err(io(err)),
        };
        let temp = PathBuf::from(format!(
            ".{}.director-{}-{}",
            name.display(),
            std::process::id(),
            TEMP_SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let fd = rustix::fs::openat(
            dir,
            temp.as_os_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_bits_truncate(mode),
        )
        .map_err(io)?;
        let written = (|| -> Result<u64> {
            self.own(&fd).map_err(io)?;
            rustix::fs::fchmod(&fd, Mode::from_bits_truncate(mode)).map_err(io)?;
            let mut file = std::fs::File::from(fd);
            let size = match copy_limited(source, &mut file, cap) {
                Err(Error::TooLarge(_)) if cap < limit => {
                    return Err(self
                        .disk
                        .as_ref()
                        .map_or_else(|| io(rustix::io::Errno::NOSPC), |d| d.full()));
                }
                other => other?,
            };
            file.sync_all().map_err(write_error)?;
            if replace {
                rustix::fs::renameat(dir, temp.as_os_str(), dir, name.as_os_str()).map_err(io)?;
            } else {
                rustix::fs::renameat_with(
                    dir,
                    temp.as_os_str(),
                    dir,
                    name.as_os_str(),
                    rustix::fs::RenameFlags::NOREPLACE,
                )
                .map_err(io)?;
            }
            Ok(size)
        })();
        if written.is_err() {
            let _ = rustix::fs::unlinkat(dir, temp.as_os_str(), AtFlags::empty());
        }
        written
    }

    /// The bytes free for the site's files on their file system (for an unprivileged writer).
    pub fn free_bytes(&self) -> Result<u64> {
        let stat = rustix::fs::fstatvfs(&self.root).map_err(io)?;
        Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
    }

    /// Opens `path` for reading: a file or a folder (to [`SiteFiles::walk`]).
    pub fn open_read(&self, path: &str) -> Result<Opened> {
        let (fd, stat) = self.open_readable(path)?;
        Ok(if FileType::from_raw_mode(stat.st_mode) == FileType::Directory {
            Opened::Folder(Folder { fd })
        } else {
            Opened::File {
                file: std::fs::File::from(fd),
                size: u64::try_from(stat.st_size).unwrap_or(0),
            }
        })
    }

    /// Makes the folder `path`, owned by the site's uid.
    pub fn mkdir(&self, path: &str) -> Result<()> {
        let (dir, name) = self.parent(path)?;
        rustix::fs::mkdirat(&dir, name.as_os_str(), Mode::from_bits_truncate(0o755)).map_err(io)?;
        self.own_at(&dir, &name).map_err(io)
    }

    /// Moves or renames `from` to `to`; an existing `to` is refused, never replaced.
    pub fn rename(&self, from: &str, to: &str) -> Result<()> {
        let (from_dir, from_name) = self.parent(from)?;
        let (to_dir, to_name) = self.parent(to)?;
        rustix::fs::renameat_with(
            &from_dir,
            from_name.as_os_str(),
            &to_dir,
            to_name.as_os_str(),
            rustix::fs::RenameFlags::NOREPLACE,
        )
        .map_err(io)
    }

    /// Removes the file, link or empty folder `path` (a link itself, never what it points to).
    pub fn remove(&self, path: &str) -> Result<()> {
        let (dir, name) = self.parent(path)?;
        match rustix::fs::unlinkat(&dir, name.as_os_str(), AtFlags::empty()) {
            Err(rustix::io::Errno::ISDIR) => {
                rustix::fs::unlinkat(&dir, name.as_os_str(), AtFlags::REMOVEDIR).map_err(io)
            }
            other => other.map_err(io),
        }
    }

    /// Removes `path` and, when it is a folder, everything in it. Links are removed, never
    /// followed, and every folder is entered by a descriptor opened without following links,
    /// so nothing outside the site can be reached even while the tree changes.
    pub fn remove_all(&self, path: &str) -> Result<()> {
        let (dir, name) = self.parent(path)?;
        remove_entry(&dir, name.as_os_str())
    }

    /// Sets the permission bits of `path` (never set-uid or set-gid).
    pub fn chmod(&self, path: &str, mode: u32) -> Result<()> {
        let (fd, _) = self.open_readable(path)?;
        rustix::fs::fchmod(&fd, Mode::from_bits_truncate(mode & 0o1777)).map_err(io)
    }
}

/// What [`SiteFiles::open_read`] found.
#[derive(Debug)]
pub enum Opened {
    /// A regular file, and its size.
    File {
        /// The file, open for reading.
        file: std::fs::File,
        /// Its size in bytes when opened.
        size: u64,
    },
    /// A folder.
    Folder(Folder),
}

/// A folder of a site, open: what [`Folder::walk`] goes through.
#[derive(Debug)]
pub struct Folder {
    fd: OwnedFd,
}

/// One thing met by [`Folder::walk`], with its path from the walked folder.
#[derive(Debug)]
pub enum Walked {
    /// A folder (met before what it holds).
    Folder {
        /// Its path, `/`-separated.
        path: String,
        /// Last modification, seconds since the epoch.
        modified: i64,
    },
    /// A regular file, open for reading.
    File {
        /// Its path, `/`-separated.
        path: String,
        /// The file.
        file: std::fs::File,
        /// Its size in bytes.
        size: u64,
        /// Permission bits.
        mode: u32,
        /// Last modification, seconds since the epoch.
        modified: i64,
        /// Its owner's uid.
        owner: u32,
    },
    /// A symbolic link, not followed.
    Link {
        /// Its path, `/`-separated.
        path: String,
        /// What it points to, as written.
        target: String,
    },
}

impl Folder {
    /// Calls `visit` for everything below this folder, depth first, in name order. Folders are
    /// entered by descriptors opened without following links (a link is reported, never
    /// entered), so the walk stays inside the site whatever changes meanwhile.
    pub fn walk<E: From<Error>>(&self, visit: &mut dyn FnMut(Walked) -> Result<(), E>) -> Result<(), E> {
        walk_dir(&self.fd, "", 0, visit)
    }
}

fn walk_dir<E: From<Error>>(
    dir: &OwnedFd,
    prefix: &str,
    depth: usize,
    visit: &mut dyn FnMut(Walked) -> Result<(), E>,
) -> Result<(), E> {
    if depth > MAX_DEPTH {
        return Err(too_deep().into());
    }
    for name in names(dir)? {
        let Ok(stat) = rustix::fs::statat(dir, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        let path = format!("{prefix}{}", name.to_string_lossy());
        let modified = stat.st_mtime;
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::Directory => {
                let fd = rustix::fs::openat(
                    dir,
                    name.as_os_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OPEN,
                    Mode::empty(),
                )
                .map_err(io)?;
                visit(Walked::Folder {
                    path: path.clone(),
                    modified,
                })?;
                walk_dir(&fd, &format!("{path}/"), depth + 1, visit)?;
            }
            FileType::RegularFile => {
                let fd = rustix::fs::openat(
                    dir,
                    name.as_os_str(),
                    OFlags::RDONLY | OFlags::NOFOLLOW | OPEN,
                    Mode::empty(),
                )
                .map_err(io)?;
                // Swapped for something else since it was looked at: left out, like a pipe.
                let stat = rustix::fs::fstat(&fd).map_err(io)?;
                if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
                    continue;
                }
                visit(Walked::File {
                    path,
                    file: std::fs::File::from(fd),
                    size: u64::try_from(stat.st_size).unwrap_or(0),
                    mode: stat.st_mode & 0o777,
                    modified,
                    owner: stat.st_uid,
                })?;
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(dir, name.as_os_str(), Vec::new()).map_err(io)?;
                visit(Walked::Link {
                    path,
                    target: target.to_string_lossy().into_owned(),
                })?;
            }
            // Sockets, pipes and devices have no place in a download.
            _ => {}
        }
    }
    Ok(())
}

fn not_a_file() -> Error {
    Error::Conflict(
        "That is not a file or a folder (a pipe, socket or device): it cannot be opened here.".to_owned(),
    )
}

fn too_deep() -> Error {
    Error::Conflict(format!("Folders are nested more than {MAX_DEPTH} deep."))
}

/// The names in a directory, without `.` and `..`, sorted.
fn names(dir: &OwnedFd) -> Result<Vec<std::ffi::OsString>> {
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = OsStr::from_bytes(entry.file_name().to_bytes());
        if name != "." && name != ".." {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Entries a removal looks at, at most: a tree a tenant keeps refilling while it is removed
/// ends the removal with an error instead of holding a thread for ever.
const MAX_REMOVED: usize = 10_000_000;

/// One folder on the way down: which it is, what of it is still to remove, and the subfolder
/// being removed below it.
struct Level {
    identity: (u64, u64),
    remaining: Vec<std::ffi::OsString>,
    below: Option<std::ffi::OsString>,
}

/// Removes `name` in `dir` and, when it is a folder, everything in it, however deep: one
/// folder is held open at a time (a tree nested thousands deep needs no descriptor per level),
/// each folder is listed once (its names kept while its subfolders are removed), every folder
/// is entered with `O_NOFOLLOW` (links are removed, never followed), and the way back up goes
/// through `..` only after checking it is the folder come down from — a tree moved meanwhile
/// by the tenant stops the removal instead of leading it anywhere else.
fn remove_entry(dir: &OwnedFd, name: &OsStr) -> Result<()> {
    use rustix::io::Errno;
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Err(Errno::ISDIR) => {}
        other => return other.map_err(io),
    }
    let enter = |parent: &OwnedFd, child: &OsStr| {
        rustix::fs::openat(
            parent,
            child,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OPEN,
            Mode::empty(),
        )
        .map_err(io)
    };
    let identity = |fd: &OwnedFd| rustix::fs::fstat(fd).map(|s| (s.st_dev, s.st_ino)).map_err(io);
    let level = |fd: &OwnedFd| -> Result<Level> {
        Ok(Level {
            identity: identity(fd)?,
            remaining: names(fd)?,
            below: None,
        })
    };
    let mut current = enter(dir, name)?;
    let mut path = vec![level(&current)?];
    let mut looked_at = 0usize;
    while let Some(here) = path.last_mut() {
        if let Some(child) = here.remaining.pop() {
            looked_at += 1;
            if looked_at > MAX_REMOVED {
                return Err(Error::Conflict(
                    "The folder keeps changing while it is being removed; try again.".to_owned(),
                ));
            }
            match rustix::fs::unlinkat(&current, child.as_os_str(), AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(Errno::ISDIR) => {
                    match rustix::fs::unlinkat(&current, child.as_os_str(), AtFlags::REMOVEDIR) {
                        Ok(()) | Err(Errno::NOENT) => {}
                        Err(Errno::NOTEMPTY | Errno::EXIST) => {
                            let entered = enter(&current, &child)?;
                            here.below = Some(child);
                            current = entered;
                            path.push(level(&current)?);
                        }
                        Err(err) => return Err(io(err)),
                    }
                }
                Err(err) => return Err(io(err)),
            }
            continue;
        }
        // Everything listed here is gone: back up to the parent, which removes this folder
        // (or, refilled meanwhile, lists it again).
        path.pop();
        let Some(parent) = path.last_mut() else { break };
        let up = rustix::fs::openat(
            &current,
            "..",
            OFlags::RDONLY | OFlags::DIRECTORY | OPEN,
            Mode::empty(),
        )
        .map_err(io)?;
        if identity(&up)? != parent.identity {
            return Err(Error::Conflict(
                "The folder was moved while it was being removed; try again.".to_owned(),
            ));
        }
        current = up;
        if let Some(below) = parent.below.take() {
            parent.remaining.push(below);
        }
    }
    match rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR) {
        // Refilled at the last moment: the caller may try again.
        Err(Errno::NOTEMPTY) => Err(Error::Conflict(
            "The folder keeps changing while it is being removed; try again.".to_owned(),
        )),
        other => other.map_err(io),
    }
}

/// Copies at most `limit` bytes from `source` to `file`; a source with more is refused.
fn copy_limited(source: &mut dyn Read, file: &mut std::fs::File, limit: u64) -> Result<u64> {
    let mut buffer = vec![0u8; 256 * 1024];
    let mut total: u64 = 0;
    loop {
        let read = match source.read(&mut buffer) {
            Ok(0) => return Ok(total),
            Ok(read) => read,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => {
                return Err(Error::Conflict(format!(
                    "The upload stopped before its end ({err}); nothing was saved."
                )));
            }
        };
        total += read as u64;
        if total > limit {
            return Err(Error::TooLarge(format!(
                "It is larger than the {} allowed; nothing was saved.",
                human_bytes(limit)
            )));
        }
        file.write_all(&buffer[..read]).map_err(write_error)?;
    }
}

/// A write failure: a full disk or quota is the user's to know, anything else a bug.
fn write_error(err: std::io::Error) -> Error {
    match err.raw_os_error() {
        Some(code)
            if code == rustix::io::Errno::NOSPC.raw_os_error()
                || code == rustix::io::Errno::DQUOT.raw_os_error() =>
        {
            Error::TooLarge("The disk is full; nothing was saved.".to_owned())
        }
        _ => Error::internal(err),
    }
}
