//! SFTP rooted at a site's directory.
//!
//! Every path is resolved by the kernel with `openat2(RESOLVE_IN_ROOT)` from a descriptor of
//! the site's directory (the file manager's `SiteFiles`, whose primitives this uses): `..`, absolute paths and symlinks (absolute or relative) all resolve
//! as if the site's directory were `/`, at the moment of use — so no race between a check and
//! the use can lead outside. Operations on a last component (remove, rename, lstat, readlink,
//! symlink, mkdir) act by name on the resolved parent's descriptor. What is written belongs to
//! the site's uid; new symlinks may only point inside the site.

use std::{
    collections::HashMap,
    ffi::OsStr,
    fs::File,
    os::{
        fd::{AsFd, OwnedFd},
        unix::{ffi::OsStrExt as _, fs::FileExt as _},
    },
    path::{Component, Path, PathBuf},
};

use platform::files::SiteFiles;
use russh_sftp::protocol::{
    Attrs, Data, File as Entry, FileAttributes, Handle, Name, OpenFlags, Status, StatusCode, Version,
};
use rustix::fs::{AtFlags, Mode, OFlags};

/// The most bytes one read returns (clients ask for 32–256 KiB).
const MAX_READ: u32 = 256 * 1024;

/// One SFTP session on one site.
pub(crate) struct SftpSession {
    files: SiteFiles,
    handles: HashMap<String, Open>,
    next_handle: u64,
    site: String,
}

enum Open {
    File(File),
    /// A directory's entries, read at open, handed out once.
    Dir(Option<Vec<Entry>>),
}

impl SftpSession {
    /// A session on the directory `root`, writing as `uid` (and the same gid).
    pub(crate) fn new(root: &Path, uid: u32, site: String) -> std::io::Result<Self> {
        Ok(Self {
            files: SiteFiles::open(root, uid).map_err(std::io::Error::other)?,
            handles: HashMap::new(),
            next_handle: 0,
            site,
        })
    }

    fn handle(&mut self, open: Open) -> String {
        self.next_handle += 1;
        let handle = self.next_handle.to_string();
        self.handles.insert(handle.clone(), open);
        handle
    }

    /// Opens `path` beneath the root, resolving everything inside it.
    fn open_at(&self, path: &str, flags: OFlags, mode: Mode) -> Result<OwnedFd, StatusCode> {
        self.files
            .open_beneath(&relative(path)?, flags, mode)
            .map_err(errno)
    }

    /// The parent of `path` (opened, resolved inside the root) and its last component.
    fn parent(&self, path: &str) -> Result<(OwnedFd, PathBuf), StatusCode> {
        self.files
            .parent_beneath(&relative(path)?)
            .map_err(errno)?
            .ok_or(StatusCode::PermissionDenied)
    }

    fn own(&self, fd: impl AsFd) -> Result<(), StatusCode> {
        self.files.own(fd).map_err(errno)
    }

    fn own_at(&self, dir: impl AsFd, name: &Path) -> Result<(), StatusCode> {
        self.files.own_at(dir, name).map_err(errno)
    }

    fn ok(id: u32) -> Status {
        Status {
            id,
            status_code: StatusCode::Ok,
            error_message: "Ok".to_owned(),
            language_tag: "en-US".to_owned(),
        }
    }
}

/// A client path relative to the root (the file manager's rule: components only, `..`
/// clamped, NUL refused; the kernel clamps again at use).
fn relative(path: &str) -> Result<PathBuf, StatusCode> {
    platform::files::relative(path).map_err(|_| StatusCode::BadMessage)
}

/// The path the client sees: `/` is the site's directory.
fn virtual_path(path: &str) -> Result<String, StatusCode> {
    let relative = relative(path)?;
    if relative == Path::new(".") {
        return Ok("/".to_owned());
    }
    Ok(format!("/{}", relative.display()))
}

fn errno(err: rustix::io::Errno) -> StatusCode {
    use rustix::io::Errno;
    match err {
        Errno::NOENT | Errno::NOTDIR => StatusCode::NoSuchFile,
        Errno::ACCESS
        | Errno::PERM
        | Errno::XDEV
        | Errno::LOOP
        | Errno::ISDIR
        | Errno::EXIST
        | Errno::NOTEMPTY => StatusCode::PermissionDenied,
        _ => StatusCode::Failure,
    }
}

fn io(err: std::io::Error) -> StatusCode {
    err.raw_os_error().map_or(StatusCode::Failure, |code| {
        errno(rustix::io::Errno::from_raw_os_error(code))
    })
}

fn attributes(stat: &rustix::fs::Stat) -> FileAttributes {
    FileAttributes {
        size: Some(u64::try_from(stat.st_size).unwrap_or(0)),
        uid: Some(stat.st_uid),
        gid: Some(stat.st_gid),
        permissions: Some(stat.st_mode),
        atime: u32::try_from(stat.st_atime).ok(),
        mtime: u32::try_from(stat.st_mtime).ok(),
        ..FileAttributes::default()
    }
}

impl russh_sftp::server::Handler for SftpSession {
    type Error = StatusCode;

    fn unimplemented(&self) -> Self::Error {
        StatusCode::OpUnsupported
    }

    async fn init(
        &mut self,
        _version: u32,
        _extensions: HashMap<String, String>,
    ) -> Result<Version, Self::Error> {
        tracing::info!(site = %self.site, "SFTP session started");
        Ok(Version::new())
    }

    async fn realpath(&mut self, id: u32, path: String) -> Result<Name, Self::Error> {
        let path = virtual_path(&path)?;
        Ok(Name {
            id,
            files: vec![Entry::dummy(path)],
        })
    }

    async fn open(
        &mut self,
        id: u32,
        filename: String,
        pflags: OpenFlags,
        attrs: FileAttributes,
    ) -> Result<Handle, Self::Error> {
        let mut flags = match (
            pflags.contains(OpenFlags::READ),
            pflags.contains(OpenFlags::WRITE),
        ) {
            (true, true) => OFlags::RDWR,
            (false, true) => OFlags::WRONLY,
            _ => OFlags::RDONLY,
        };
        if pflags.contains(OpenFlags::APPEND) {
            flags |= OFlags::APPEND;
        }
        if pflags.contains(OpenFlags::CREATE) {
            flags |= OFlags::CREATE;
        }
        if pflags.contains(OpenFlags::TRUNCATE) {
            flags |= OFlags::TRUNC;
        }
        if pflags.contains(OpenFlags::EXCLUDE) {
            flags |= OFlags::EXCL;
        }
        // openat2 refuses a mode without O_CREAT.
        let mode = if flags.contains(OFlags::CREATE) {
            Mode::from_bits_truncate(attrs.permissions.unwrap_or(0o644) & 0o777)
        } else {
            Mode::empty()
        };
        let existed = self.open_at(&filename, OFlags::PATH, Mode::empty()).is_ok();
        let fd = self.open_at(&filename, flags, mode)?;
        if !existed {
            self.own(&fd)?;
        }
        let file = File::from(fd);
        if file.metadata().map_err(io)?.is_dir() {
            return Err(StatusCode::PermissionDenied);
        }
        Ok(Handle {
            id,
            handle: self.handle(Open::File(file)),
        })
    }

    async fn close(&mut self, id: u32, handle: String) -> Result<Status, Self::Error> {
        self.handles.remove(&handle);
        Ok(Self::ok(id))
    }

    async fn read(&mut self, id: u32, handle: String, offset: u64, len: u32) -> Result<Data, Self::Error> {
        let Some(Open::File(file)) = self.handles.get(&handle) else {
            return Err(StatusCode::Failure);
        };
        let mut data = vec![0; len.min(MAX_READ) as usize];
        let read = file.read_at(&mut data, offset).map_err(io)?;
        if read == 0 && len > 0 {
            return Err(StatusCode::Eof);
        }
        data.truncate(read);
        Ok(Data { id, data })
    }

    async fn write(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<Status, Self::Error> {
        let Some(Open::File(file)) = self.handles.get(&handle) else {
            return Err(StatusCode::Failure);
        };
        file.write_all_at(&data, offset).map_err(io)?;
        Ok(Self::ok(id))
    }

    async fn lstat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        let (dir, name) = match self.parent(&path) {
            Ok(found) => found,
            // The root itself.
            Err(_) if relative(&path)? == Path::new(".") => return self.stat(id, path).await,
            Err(err) => return Err(err),
        };
        let stat = rustix::fs::statat(&dir, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW).map_err(errno)?;
        Ok(Attrs {
            id,
            attrs: attributes(&stat),
        })
    }

    async fn stat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        let fd = self.open_at(&path, OFlags::PATH, Mode::empty())?;
        let stat = rustix::fs::fstat(&fd).map_err(errno)?;
        Ok(Attrs {
            id,
            attrs: attributes(&stat),
        })
    }

    async fn fstat(&mut self, id: u32, handle: String) -> Result<Attrs, Self::Error> {
        let Some(Open::File(file)) = self.handles.get(&handle) else {
            return Err(StatusCode::Failure);
        };
        let stat = rustix::fs::fstat(file).map_err(errno)?;
        Ok(Attrs {
            id,
            attrs: attributes(&stat),
        })
    }

    async fn setstat(&mut self, id: u32, path: String, attrs: FileAttributes) -> Result<Status, Self::Error> {
        let fd = self.open_at(&path, OFlags::RDONLY, Mode::empty())?;
        set_attributes(&fd, &attrs)?;
        Ok(Self::ok(id))
    }

    async fn fsetstat(
        &mut self,
        id: u32,
        handle: String,
        attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        let Some(Open::File(file)) = self.handles.get(&handle) else {
            return Err(StatusCode::Failure);
        };
        set_attributes(file, &attrs)?;
        Ok(Self::ok(id))
    }

    async fn opendir(&mut self, id: u32, path: String) -> Result<Handle, Self::Error> {
        let fd = self.open_at(&path, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())?;
        let mut entries = Vec::new();
        let dir = rustix::fs::Dir::read_from(&fd).map_err(errno)?;
        for entry in dir {
            let entry = entry.map_err(errno)?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            if let Ok(stat) = rustix::fs::statat(&fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                entries.push(Entry::new(name.to_string_lossy(), attributes(&stat)));
            }
        }
        Ok(Handle {
            id,
            handle: self.handle(Open::Dir(Some(entries))),
        })
    }

    async fn readdir(&mut self, id: u32, handle: String) -> Result<Name, Self::Error> {
        match self.handles.get_mut(&handle) {
            Some(Open::Dir(entries)) => match entries.take() {
                Some(files) => Ok(Name { id, files }),
                None => Err(StatusCode::Eof),
            },
            _ => Err(StatusCode::Failure),
        }
    }

    async fn remove(&mut self, id: u32, filename: String) -> Result<Status, Self::Error> {
        let (dir, name) = self.parent(&filename)?;
        rustix::fs::unlinkat(&dir, name.as_os_str(), AtFlags::empty()).map_err(errno)?;
        Ok(Self::ok(id))
    }

    async fn mkdir(&mut self, id: u32, path: String, attrs: FileAttributes) -> Result<Status, Self::Error> {
        let (dir, name) = self.parent(&path)?;
        let mode = Mode::from_bits_truncate(attrs.permissions.unwrap_or(0o755) & 0o777);
        rustix::fs::mkdirat(&dir, name.as_os_str(), mode).map_err(errno)?;
        self.own_at(&dir, &name)?;
        Ok(Self::ok(id))
    }

    async fn rmdir(&mut self, id: u32, path: String) -> Result<Status, Self::Error> {
        let (dir, name) = self.parent(&path)?;
        rustix::fs::unlinkat(&dir, name.as_os_str(), AtFlags::REMOVEDIR).map_err(errno)?;
        Ok(Self::ok(id))
    }

    async fn rename(&mut self, id: u32, oldpath: String, newpath: String) -> Result<Status, Self::Error> {
        let (from_dir, from) = self.parent(&oldpath)?;
        let (to_dir, to) = self.parent(&newpath)?;
        rustix::fs::renameat(&from_dir, from.as_os_str(), &to_dir, to.as_os_str()).map_err(errno)?;
        Ok(Self::ok(id))
    }

    async fn readlink(&mut self, id: u32, path: String) -> Result<Name, Self::Error> {
        let (dir, name) = self.parent(&path)?;
        let target = rustix::fs::readlinkat(&dir, name.as_os_str(), Vec::new()).map_err(errno)?;
        Ok(Name {
            id,
            files: vec![Entry::dummy(target.to_string_lossy())],
        })
    }

    async fn symlink(&mut self, id: u32, first: String, second: String) -> Result<Status, Self::Error> {
        // OpenSSH sends the target first and the link second (the reverse of the draft's order);
        // every client written against it does the same, and so its sftp-server reads them.
        let (targetpath, linkpath) = (first, second);
        // Only links that stay inside the site: relative, resolving (from the link's directory)
        // to a path inside the root.
        let link = relative(&linkpath)?;
        if targetpath.starts_with('/') || targetpath.contains('\0') {
            return Err(StatusCode::PermissionDenied);
        }
        let mut depth = link.components().count().saturating_sub(1) as i64;
        for component in Path::new(&targetpath).components() {
            match component {
                Component::ParentDir => depth -= 1,
                Component::Normal(_) => depth += 1,
                _ => {}
            }
            if depth < 0 {
                return Err(StatusCode::PermissionDenied);
            }
        }
        let (dir, name) = self.parent(&linkpath)?;
        rustix::fs::symlinkat(targetpath.as_str(), &dir, name.as_os_str()).map_err(errno)?;
        self.own_at(&dir, &name)?;
        Ok(Self::ok(id))
    }
}

/// Applies the attributes a client may change: permissions (the mode's low 12 bits, never
/// set-uid) and size. Owners and times are left alone.
fn set_attributes(fd: impl AsFd, attrs: &FileAttributes) -> Result<(), StatusCode> {
    if let Some(mode) = attrs.permissions {
        rustix::fs::fchmod(&fd, Mode::from_bits_truncate(mode & 0o1777)).map_err(errno)?;
    }
    if let Some(size) = attrs.size {
        rustix::fs::ftruncate(&fd, size).map_err(errno)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_paths_never_climb_out_of_the_root() {
        for (given, want) in [
            ("/", "."),
            ("", "."),
            ("..", "."),
            ("/../../etc/passwd", "etc/passwd"),
            ("public/../../x", "x"),
            ("./a/./b", "a/b"),
        ] {
            assert_eq!(relative(given).unwrap(), PathBuf::from(want), "{given}");
        }
        assert!(relative("a\0b").is_err());
        assert_eq!(virtual_path("/../public/").unwrap(), "/public");
    }
}
