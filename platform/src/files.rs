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
    os::{fd::OwnedFd, unix::ffi::OsStrExt as _},
    path::{Component, Path, PathBuf},
};

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};

use crate::{Error, Result};

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

    fn open_at(&self, path: &Path, flags: OFlags, mode: Mode) -> Result<OwnedFd> {
        rustix::fs::openat2(
            &self.root,
            path.as_os_str(),
            flags | OFlags::CLOEXEC,
            mode,
            RESOLVE,
        )
        .map_err(io)
    }

    /// The parent of `path` (opened inside the root) and its last component; the root itself
    /// has none.
    fn parent(&self, path: &str) -> Result<(OwnedFd, PathBuf)> {
        let relative = relative(path)?;
        let name = relative
            .file_name()
            .ok_or_else(|| Error::Conflict("The site's own folder cannot be changed that way.".to_owned()))?
            .to_owned();
        let parent = match relative.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let fd = self.open_at(&parent, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())?;
        Ok((fd, PathBuf::from(name)))
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
        for entry in rustix::fs::Dir::read_from(&fd).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            if name == "." || name == ".." {
                continue;
            }
            let Ok(stat) = rustix::fs::statat(&fd, name, AtFlags::SYMLINK_NOFOLLOW) else {
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
        use std::io::Read as _;
        let fd = self.open_at(&relative(path)?, OFlags::RDONLY, Mode::empty())?;
        let file = std::fs::File::from(fd);
        let meta = file.metadata().map_err(Error::internal)?;
        if meta.is_dir() {
            return Err(Error::Conflict("That is a folder.".to_owned()));
        }
        if meta.len() > limit {
            return Err(Error::Conflict(format!(
                "The file has {} bytes, more than the {limit} shown here: download it instead.",
                meta.len()
            )));
        }
        let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        file.take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(Error::internal)?;
        Ok(bytes)
    }

    /// Writes `bytes` to `path` atomically: into a temporary file beside it, synced, then
    /// renamed over it — a failed write never leaves half a file. A new file gets `0644` and
    /// an existing one keeps its mode; either way it belongs to the site's uid.
    pub fn write(&self, path: &str, bytes: &[u8]) -> Result<()> {
        use std::io::Write as _;
        let (dir, name) = self.parent(path)?;
        let mode = match rustix::fs::statat(&dir, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat)
                if rustix::fs::FileType::from_raw_mode(stat.st_mode) == rustix::fs::FileType::RegularFile =>
            {
                stat.st_mode & 0o777
            }
            Ok(_) => return Err(Error::Conflict("Only a regular file can be written.".to_owned())),
            Err(rustix::io::Errno::NOENT) => 0o644,
            Err(err) => return Err(io(err)),
        };
        let temp = PathBuf::from(format!(".{}.director-{}", name.display(), std::process::id()));
        let fd = rustix::fs::openat(
            &dir,
            temp.as_os_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_bits_truncate(mode),
        )
        .map_err(io)?;
        let (uid, gid) = self.owner();
        let written = (|| -> Result<()> {
            rustix::fs::fchown(&fd, uid, gid).map_err(io)?;
            rustix::fs::fchmod(&fd, Mode::from_bits_truncate(mode)).map_err(io)?;
            let mut file = std::fs::File::from(fd);
            file.write_all(bytes).map_err(Error::internal)?;
            file.sync_all().map_err(Error::internal)?;
            rustix::fs::renameat(&dir, temp.as_os_str(), &dir, name.as_os_str()).map_err(io)
        })();
        if written.is_err() {
            let _ = rustix::fs::unlinkat(&dir, temp.as_os_str(), AtFlags::empty());
        }
        written
    }

    /// Makes the folder `path`, owned by the site's uid.
    pub fn mkdir(&self, path: &str) -> Result<()> {
        let (dir, name) = self.parent(path)?;
        rustix::fs::mkdirat(&dir, name.as_os_str(), Mode::from_bits_truncate(0o755)).map_err(io)?;
        let (uid, gid) = self.owner();
        rustix::fs::chownat(&dir, name.as_os_str(), uid, gid, AtFlags::SYMLINK_NOFOLLOW).map_err(io)
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

    /// Sets the permission bits of `path` (never set-uid or set-gid).
    pub fn chmod(&self, path: &str, mode: u32) -> Result<()> {
        let fd = self.open_at(&relative(path)?, OFlags::RDONLY, Mode::empty())?;
        rustix::fs::fchmod(&fd, Mode::from_bits_truncate(mode & 0o1777)).map_err(io)
    }
}
