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
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use platform::files::SiteFiles;
use russh_sftp::protocol::{
    Attrs, Data, File as Entry, FileAttributes, Handle, Name, OpenFlags, Status, StatusCode, Version,
};
use rustix::fs::{AtFlags, Mode, OFlags};

/// The most bytes one read returns (clients ask for 32–256 KiB).
const MAX_READ: u32 = 256 * 1024;
/// Files and folders one session may hold open at once (each is a descriptor of the manager's).
pub(crate) const MAX_HANDLES: usize = 256;
/// Files and folders all sessions together may hold open: the manager's descriptors are for
/// everyone (the server raises its own limit well above this at start).
pub(crate) const MAX_ALL_HANDLES: usize = 16_384;

static ALL_HANDLES: AtomicUsize = AtomicUsize::new(0);

/// One SFTP session on one site.
pub(crate) struct SftpSession {
    files: Arc<SiteFiles>,
    handles: HashMap<String, Open>,
    next_handle: u64,
    site: String,
    /// The site's disk quota and use (every write counts, also over existing bytes).
    disk: Arc<platform::files::Disk>,
}

enum Open {
    File(Arc<File>),
    /// A directory being listed: its entries are read a batch per `readdir`, so that a folder
    /// of millions is never held in memory whole.
    Dir(Arc<std::sync::Mutex<Listing>>),
}

impl SftpSession {
    /// A session on the directory `root`, writing as `uid` (and the same gid).
    /// `disk` is the site's quota and use, shared with its other writers: writes stop at
    /// what is left of it.
    pub(crate) fn new(
        root: &Path,
        uid: u32,
        site: String,
        disk: Arc<platform::files::Disk>,
    ) -> std::io::Result<Self> {
        Ok(Self {
            files: Arc::new(SiteFiles::open(root, uid).map_err(std::io::Error::other)?),
            handles: HashMap::new(),
            next_handle: 0,
            site,
            disk,
        })
    }

    /// Refuses another open when the session holds [`MAX_HANDLES`] already, or all sessions
    /// together [`MAX_ALL_HANDLES`].
    fn room_for_handle(&self) -> Result<(), StatusCode> {
        if self.handles.len() >= MAX_HANDLES || ALL_HANDLES.load(Ordering::Relaxed) >= MAX_ALL_HANDLES {
            tracing::info!(site = %self.site, "SFTP open refused: too many open handles");
            return Err(StatusCode::Failure);
        }
        Ok(())
    }

    fn handle(&mut self, open: Open) -> String {
        ALL_HANDLES.fetch_add(1, Ordering::Relaxed);
        self.next_handle += 1;
        let handle = self.next_handle.to_string();
        self.handles.insert(handle.clone(), open);
        handle
    }

    /// Runs `work` on the site's files on a blocking thread: file system calls may wait, and
    /// none may hold one of the async runtime's workers.
    async fn on_files<T: Send + 'static>(
        &self,
        work: impl FnOnce(&SiteFiles) -> Result<T, StatusCode> + Send + 'static,
    ) -> Result<T, StatusCode> {
        let files = Arc::clone(&self.files);
        blocking(move || work(&files)).await
    }

    /// The open file behind `handle`.
    fn file(&self, handle: &str) -> Result<Arc<File>, StatusCode> {
        match self.handles.get(handle) {
            Some(Open::File(file)) => Ok(Arc::clone(file)),
            _ => Err(StatusCode::Failure),
        }
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

/// Entries one `readdir` answers with at most.
const LISTING_BATCH: usize = 256;

/// An open directory and where its listing is.
pub(crate) struct Listing {
    fd: OwnedFd,
    dir: rustix::fs::Dir,
}

impl Listing {
    /// The next entries (none at the end), with their attributes, links not followed.
    fn next_batch(&mut self) -> Result<Vec<Entry>, StatusCode> {
        let mut files = Vec::new();
        while files.len() < LISTING_BATCH {
            let Some(entry) = self.dir.next() else { break };
            let entry = entry.map_err(errno)?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            if let Ok(stat) = rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                files.push(Entry::new(name.to_string_lossy(), attributes(&stat)));
            }
        }
        Ok(files)
    }
}

impl Drop for SftpSession {
    fn drop(&mut self) {
        ALL_HANDLES.fetch_sub(self.handles.len(), Ordering::Relaxed);
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

/// Runs `work` on a blocking thread, within the file manager's bound on file work.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StatusCode> + Send + 'static,
) -> Result<T, StatusCode> {
    platform::files::blocking(work)
        .await
        .unwrap_or(Err(StatusCode::Failure))
}

/// Opens `path` beneath the root, resolving everything inside it (never waiting on a FIFO:
/// `SiteFiles` opens without blocking).
fn open_at(files: &SiteFiles, path: &str, flags: OFlags, mode: Mode) -> Result<OwnedFd, StatusCode> {
    files.open_beneath(&relative(path)?, flags, mode).map_err(errno)
}

/// The parent of `path` (opened, resolved inside the root) and its last component.
fn parent(files: &SiteFiles, path: &str) -> Result<(OwnedFd, PathBuf), StatusCode> {
    files
        .parent_beneath(&relative(path)?)
        .map_err(errno)?
        .ok_or(StatusCode::PermissionDenied)
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
        self.room_for_handle()?;
        // openat2 refuses a mode without O_CREAT.
        let mode = if flags.contains(OFlags::CREATE) {
            Mode::from_bits_truncate(attrs.permissions.unwrap_or(0o644) & 0o777)
        } else {
            Mode::empty()
        };
        let file = self
            .on_files(move |files| {
                let existed = open_at(files, &filename, OFlags::PATH, Mode::empty()).is_ok();
                let fd = open_at(files, &filename, flags, mode)?;
                // Only regular files: a folder has no bytes, and a pipe or a socket would make
                // reads wait for the tenant's other end.
                let stat = rustix::fs::fstat(&fd).map_err(errno)?;
                if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::RegularFile {
                    return Err(StatusCode::PermissionDenied);
                }
                if !existed {
                    files.own(&fd).map_err(errno)?;
                }
                Ok(File::from(fd))
            })
            .await?;
        Ok(Handle {
            id,
            handle: self.handle(Open::File(Arc::new(file))),
        })
    }

    async fn close(&mut self, id: u32, handle: String) -> Result<Status, Self::Error> {
        if self.handles.remove(&handle).is_some() {
            ALL_HANDLES.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(Self::ok(id))
    }

    async fn read(&mut self, id: u32, handle: String, offset: u64, len: u32) -> Result<Data, Self::Error> {
        let file = self.file(&handle)?;
        let data = blocking(move || {
            let mut data = vec![0; len.min(MAX_READ) as usize];
            let read = file.read_at(&mut data, offset).map_err(io)?;
            if read == 0 && len > 0 {
                return Err(StatusCode::Eof);
            }
            data.truncate(read);
            Ok(data)
        })
        .await?;
        Ok(Data { id, data })
    }

    async fn write(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<Status, Self::Error> {
        let file = self.file(&handle)?;
        let len = data.len() as u64;
        let reserved = self.disk.reserve(len);
        if reserved < len {
            self.disk.release(reserved);
            tracing::info!(site = %self.site, "SFTP write refused: the site's disk quota is used up");
            return Err(StatusCode::Failure);
        }
        blocking(move || file.write_all_at(&data, offset).map_err(io)).await?;
        Ok(Self::ok(id))
    }

    async fn lstat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        if relative(&path)? == Path::new(".") {
            // The root itself, which has no parent to look it up in.
            return self.stat(id, path).await;
        }
        let stat = self
            .on_files(move |files| {
                let (dir, name) = parent(files, &path)?;
                rustix::fs::statat(&dir, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW).map_err(errno)
            })
            .await?;
        Ok(Attrs {
            id,
            attrs: attributes(&stat),
        })
    }

    async fn stat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        let stat = self
            .on_files(move |files| {
                let fd = open_at(files, &path, OFlags::PATH, Mode::empty())?;
                rustix::fs::fstat(&fd).map_err(errno)
            })
            .await?;
        Ok(Attrs {
            id,
            attrs: attributes(&stat),
        })
    }

    async fn fstat(&mut self, id: u32, handle: String) -> Result<Attrs, Self::Error> {
        let file = self.file(&handle)?;
        let stat = blocking(move || rustix::fs::fstat(&*file).map_err(errno)).await?;
        Ok(Attrs {
            id,
            attrs: attributes(&stat),
        })
    }

    async fn setstat(&mut self, id: u32, path: String, attrs: FileAttributes) -> Result<Status, Self::Error> {
        self.on_files(move |files| {
            let fd = open_at(files, &path, OFlags::RDONLY, Mode::empty())?;
            set_attributes(&fd, &attrs)
        })
        .await?;
        Ok(Self::ok(id))
    }

    async fn fsetstat(
        &mut self,
        id: u32,
        handle: String,
        attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        let file = self.file(&handle)?;
        blocking(move || set_attributes(&*file, &attrs)).await?;
        Ok(Self::ok(id))
    }

    async fn opendir(&mut self, id: u32, path: String) -> Result<Handle, Self::Error> {
        self.room_for_handle()?;
        let listing = self
            .on_files(move |files| {
                let fd = open_at(files, &path, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())?;
                let dir = rustix::fs::Dir::read_from(&fd).map_err(errno)?;
                Ok(Listing { fd, dir })
            })
            .await?;
        Ok(Handle {
            id,
            handle: self.handle(Open::Dir(Arc::new(std::sync::Mutex::new(listing)))),
        })
    }

    async fn readdir(&mut self, id: u32, handle: String) -> Result<Name, Self::Error> {
        let Some(Open::Dir(listing)) = self.handles.get(&handle) else {
            return Err(StatusCode::Failure);
        };
        let listing = Arc::clone(listing);
        let files = blocking(move || listing.lock().expect("listing lock").next_batch()).await?;
        if files.is_empty() {
            return Err(StatusCode::Eof);
        }
        Ok(Name { id, files })
    }

    async fn remove(&mut self, id: u32, filename: String) -> Result<Status, Self::Error> {
        self.on_files(move |files| {
            let (dir, name) = parent(files, &filename)?;
            rustix::fs::unlinkat(&dir, name.as_os_str(), AtFlags::empty()).map_err(errno)
        })
        .await?;
        Ok(Self::ok(id))
    }

    async fn mkdir(&mut self, id: u32, path: String, attrs: FileAttributes) -> Result<Status, Self::Error> {
        let mode = Mode::from_bits_truncate(attrs.permissions.unwrap_or(0o755) & 0o777);
        self.on_files(move |files| {
            let (dir, name) = parent(files, &path)?;
            rustix::fs::mkdirat(&dir, name.as_os_str(), mode).map_err(errno)?;
            files.own_at(&dir, &name).map_err(errno)
        })
        .await?;
        Ok(Self::ok(id))
    }

    async fn rmdir(&mut self, id: u32, path: String) -> Result<Status, Self::Error> {
        self.on_files(move |files| {
            let (dir, name) = parent(files, &path)?;
            rustix::fs::unlinkat(&dir, name.as_os_str(), AtFlags::REMOVEDIR).map_err(errno)
        })
        .await?;
        Ok(Self::ok(id))
    }

    async fn rename(&mut self, id: u32, oldpath: String, newpath: String) -> Result<Status, Self::Error> {
        self.on_files(move |files| {
            let (from_dir, from) = parent(files, &oldpath)?;
            let (to_dir, to) = parent(files, &newpath)?;
            rustix::fs::renameat(&from_dir, from.as_os_str(), &to_dir, to.as_os_str()).map_err(errno)
        })
        .await?;
        Ok(Self::ok(id))
    }

    async fn readlink(&mut self, id: u32, path: String) -> Result<Name, Self::Error> {
        let target = self
            .on_files(move |files| {
                let (dir, name) = parent(files, &path)?;
                rustix::fs::readlinkat(&dir, name.as_os_str(), Vec::new()).map_err(errno)
            })
            .await?;
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
        self.on_files(move |files| {
            let (dir, name) = parent(files, &linkpath)?;
            rustix::fs::symlinkat(targetpath.as_str(), &dir, name.as_os_str()).map_err(errno)?;
            files.own_at(&dir, &name).map_err(errno)
        })
        .await?;
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
    use russh_sftp::server::Handler as _;

    use super::*;

    #[tokio::test]
    async fn a_session_holds_at_most_its_share_of_open_files_and_writes_within_the_quota() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), "x").unwrap();
        let disk = Arc::new(platform::files::Disk::new(0, 64 * 1024));
        let mut session = SftpSession::new(dir.path(), 0, "t".to_owned(), disk.clone()).unwrap();
        let read = || (OpenFlags::READ, FileAttributes::default());
        for id in 0..MAX_HANDLES as u32 {
            let (flags, attrs) = read();
            session.open(id, "/f".to_owned(), flags, attrs).await.unwrap();
        }
        let (flags, attrs) = read();
        assert_eq!(
            session
                .open(9999, "/f".to_owned(), flags, attrs)
                .await
                .unwrap_err(),
            StatusCode::Failure,
            "one file more than a session may hold"
        );
        assert_eq!(
            session.opendir(9999, "/".to_owned()).await.unwrap_err(),
            StatusCode::Failure
        );
        // Closing one makes room again.
        session.close(1, "1".to_owned()).await.unwrap();
        let (flags, attrs) = read();
        let handle = session
            .open(1, "/f".to_owned(), flags, attrs)
            .await
            .unwrap()
            .handle;
        session.close(2, handle).await.unwrap();
        session.close(3, "2".to_owned()).await.unwrap();

        // Writes reserve their bytes from the site's disk: past the quota, refused.
        let write = session
            .open(
                4,
                "/new".to_owned(),
                OpenFlags::WRITE | OpenFlags::CREATE,
                FileAttributes::default(),
            )
            .await
            .unwrap()
            .handle;
        session
            .write(5, write.clone(), 0, vec![1; 60 * 1024])
            .await
            .unwrap();
        assert_eq!(
            session
                .write(6, write, 60 * 1024, vec![1; 8 * 1024])
                .await
                .unwrap_err(),
            StatusCode::Failure
        );
        assert_eq!(disk.used(), 60 * 1024);
        drop(session);
        assert_eq!(
            ALL_HANDLES.load(Ordering::Relaxed),
            0,
            "a session's handles are given back"
        );
    }

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
