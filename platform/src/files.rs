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

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};

use crate::{Error, Result};

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

/// A file as [`SiteFiles::read_versioned`] read it.
#[derive(Debug)]
pub struct Contents {
    /// What it was when opened (a save with it refuses if the file changed since).
    pub version: Version,
    /// Its size in bytes.
    pub size: u64,
    /// Its contents; None when it is larger than asked.
    pub bytes: Option<Vec<u8>>,
}

/// A site's directory, opened.
#[derive(Debug)]
pub struct SiteFiles {
    root: OwnedFd,
    uid: u32,
}

/// A path as given, relative to the site's directory: components only, `..` clamped at the
/// root, NUL refused. (The kernel clamps again at use; this keeps names clean for messages.)
pub fn relative(path: &str) -> Result<PathBuf> {
    if path.contains('\0') {
        return Err(Error::invalid("path", "A path cannot contain a NUL byte."));
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
        other => Error::internal(std::io::Error::from(other)),
    }
}

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

impl SiteFiles {
    /// Opens the site directory `root`, whose files belong to `uid`.
    pub fn open(root: &Path, uid: u32) -> Result<Self> {
        let root = rustix::fs::open(
            root,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io)?;
        Ok(Self { root, uid })
    }

    /// Opens `relative` (see [`relative`]) beneath the site's directory, resolved inside it.
    /// The kernel's own error: for protocols that answer errors their own way (SFTP).
    pub fn open_beneath(&self, relative: &Path, flags: OFlags, mode: Mode) -> rustix::io::Result<OwnedFd> {
        rustix::fs::openat2(
            &self.root,
            relative.as_os_str(),
            flags | OFlags::CLOEXEC,
            mode,
            RESOLVE,
        )
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
            let kind = rustix::fs::FileType::from_raw_mode(stat.st_mode);
            entries.push(FileEntry {
                name: name.to_string_lossy().into_owned(),
                dir: kind == rustix::fs::FileType::Directory,
                link: kind == rustix::fs::FileType::Symlink,
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
    pub fn save(&self, path: &str, bytes: &[u8], expected: Option<&Version>) -> Result<Version> {
        if let Some(expected) = expected {
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
        }
        self.write(path, bytes)?;
        self.version(path)
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
        let fd = self.open_at(&relative(path)?, OFlags::RDONLY, Mode::empty())?;
        let stat = rustix::fs::fstat(&fd).map_err(io)?;
        if rustix::fs::FileType::from_raw_mode(stat.st_mode) == rustix::fs::FileType::Directory {
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
        })
    }

    /// Writes `bytes` to `path` atomically, replacing what is there (see [`SiteFiles::write_from`]).
    pub fn write(&self, path: &str, bytes: &[u8]) -> Result<()> {
        self.write_from(path, &mut &bytes[..], u64::MAX, true).map(|_| ())
    }

    /// Writes what `source` yields to `path` atomically: into a temporary file beside it,
    /// synced, then renamed into place — a failed or refused write never leaves half a file.
    /// More than `limit` bytes is refused as [`Error::TooLarge`]. Without `replace`, an existing
    /// `path` is refused (at the rename, so a file made meanwhile is not overwritten either).
    /// A new file gets `0644` and a replaced one keeps its mode; either way it belongs to the
    /// site's uid. Returns the number of bytes written.
    pub fn write_from(&self, path: &str, source: &mut dyn Read, limit: u64, replace: bool) -> Result<u64> {
        let (dir, name) = self.parent(path)?;
        let mode = match rustix::fs::statat(&dir, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(_) if !replace => return Err(io(rustix::io::Errno::EXIST)),
            Ok(stat)
                if rustix::fs::FileType::from_raw_mode(stat.st_mode) == rustix::fs::FileType::RegularFile =>
            {
                stat.st_mode & 0o777
            }
            Ok(_) => return Err(Error::Conflict("Only a regular file can be written.".to_owned())),
            Err(rustix::io::Errno::NOENT) => 0o644,
            Err(err) => return Err(io(err)),
        };
        let temp = PathBuf::from(format!(
            ".{}.director-{}-{}",
            name.display(),
            std::process::id(),
            TEMP_SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let fd = rustix::fs::openat(
            &dir,
            temp.as_os_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_bits_truncate(mode),
        )
        .map_err(io)?;
        let written = (|| -> Result<u64> {
            self.own(&fd).map_err(io)?;
            rustix::fs::fchmod(&fd, Mode::from_bits_truncate(mode)).map_err(io)?;
            let mut file = std::fs::File::from(fd);
            let size = copy_limited(source, &mut file, limit)?;
            file.sync_all().map_err(write_error)?;
            if replace {
                rustix::fs::renameat(&dir, temp.as_os_str(), &dir, name.as_os_str()).map_err(io)?;
            } else {
                rustix::fs::renameat_with(
                    &dir,
                    temp.as_os_str(),
                    &dir,
                    name.as_os_str(),
                    rustix::fs::RenameFlags::NOREPLACE,
                )
                .map_err(io)?;
            }
            Ok(size)
        })();
        if written.is_err() {
            let _ = rustix::fs::unlinkat(&dir, temp.as_os_str(), AtFlags::empty());
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
        let fd = self.open_at(&relative(path)?, OFlags::RDONLY, Mode::empty())?;
        let stat = rustix::fs::fstat(&fd).map_err(io)?;
        Ok(match rustix::fs::FileType::from_raw_mode(stat.st_mode) {
            rustix::fs::FileType::Directory => Opened::Folder(Folder { fd }),
            rustix::fs::FileType::RegularFile => Opened::File {
                file: std::fs::File::from(fd),
                size: u64::try_from(stat.st_size).unwrap_or(0),
            },
            _ => return Err(Error::Conflict("Only files and folders can be read.".to_owned())),
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
        remove_entry(&dir, name.as_os_str(), 0)
    }

    /// Sets the permission bits of `path` (never set-uid or set-gid).
    pub fn chmod(&self, path: &str, mode: u32) -> Result<()> {
        let fd = self.open_at(&relative(path)?, OFlags::RDONLY, Mode::empty())?;
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
        match rustix::fs::FileType::from_raw_mode(stat.st_mode) {
            rustix::fs::FileType::Directory => {
                let fd = rustix::fs::openat(
                    dir,
                    name.as_os_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(io)?;
                visit(Walked::Folder {
                    path: path.clone(),
                    modified,
                })?;
                walk_dir(&fd, &format!("{path}/"), depth + 1, visit)?;
            }
            rustix::fs::FileType::RegularFile => {
                let fd = rustix::fs::openat(
                    dir,
                    name.as_os_str(),
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(io)?;
                visit(Walked::File {
                    path,
                    file: std::fs::File::from(fd),
                    size: u64::try_from(stat.st_size).unwrap_or(0),
                    mode: stat.st_mode & 0o777,
                    modified,
                })?;
            }
            rustix::fs::FileType::Symlink => {
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

fn remove_entry(dir: &OwnedFd, name: &OsStr, depth: usize) -> Result<()> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Err(rustix::io::Errno::ISDIR) => {}
        other => return other.map_err(io),
    }
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io)?;
    for child in names(&fd)? {
        remove_entry(&fd, &child, depth + 1)?;
    }
    rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR).map_err(io)
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

/// `bytes` for people: `512 KiB`, `20 MiB`, `1.5 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value.fract() == 0.0 || value >= 100.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
