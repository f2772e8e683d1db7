//! A site's files, for the file manager: each function names the actor and asks the platform
//! for the site's files (which checks membership), then acts through them.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::AppError;
#[cfg(feature = "ssr")]
use crate::ssr::{actor, platform, to_app_error};

/// The largest file the editor opens; bigger ones are downloaded instead.
pub const EDITABLE_BYTES: u64 = 1 << 20;

/// What one upload may carry: each file, and all its files together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadLimits {
    /// The largest file, in bytes.
    pub file_bytes: u64,
    /// All files of one upload together, in bytes.
    pub total_bytes: u64,
}

/// One entry of a folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRow {
    /// Its name.
    pub name: String,
    /// Its path from the site's folder, `/`-separated, without a leading slash.
    pub path: String,
    /// A folder.
    pub dir: bool,
    /// A symbolic link.
    pub link: bool,
    /// Size in bytes.
    pub size: u64,
    /// Permission bits, as `rwxr-xr-x`.
    pub mode: String,
    /// Permission bits in octal, as `755`.
    pub octal: String,
    /// Last change, `YYYY-MM-DD HH:MM` UTC.
    pub modified: String,
}

/// A file opened in the editor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileText {
    /// Its path.
    pub path: String,
    /// Its text; None when it is not UTF-8 text or too large to edit here (to download).
    pub text: Option<String>,
    /// Its size in bytes.
    pub size: u64,
    /// What it was when read: a save with it refuses to overwrite a newer change.
    pub version: String,
}

/// A folder in the tree beside the listing: the site's folders, opened along the path shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeRow {
    /// Its name.
    pub name: String,
    /// Its path.
    pub path: String,
    /// How deep it is (0 for the site's own folders).
    pub depth: usize,
    /// The folder shown.
    pub current: bool,
}

/// Folders listed per level of the tree; a folder with more shows the first ones.
#[cfg(feature = "ssr")]
const TREE_WIDTH: usize = 200;

/// `text` for a URL's query: all but unreserved characters and `/` percent-encoded.
pub fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// The path without its leading slash, as the rows carry it.
pub fn clean(path: &str) -> String {
    path.split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(feature = "ssr")]
fn mode_text(mode: u32) -> String {
    let bits = ['r', 'w', 'x'];
    (0..9)
        .map(|i| {
            if mode & (0o400 >> i) != 0 {
                bits[i % 3]
            } else {
                '-'
            }
        })
        .collect()
}

/// Does `work` on the site's files (the platform checks the actor's membership), on a
/// blocking thread (see `SiteFiles::run`).
#[cfg(feature = "ssr")]
async fn on_files<T: Send + 'static>(
    site: i32,
    access: platform::Access,
    work: impl FnOnce(&platform::files::SiteFiles) -> platform::Result<T> + Send + 'static,
) -> Result<T, AppError> {
    let platform = platform();
    let actor = actor().await?;
    let files = platform
        .site_files(actor.as_ref(), site, access)
        .await
        .map_err(to_app_error)?;
    files.run(work).await.map_err(to_app_error)
}

/// The entries of a folder of the site.
#[server(prefix = "/fn", endpoint = "list_files")]
pub async fn list_files(site: i32, path: String) -> Result<Vec<FileRow>, AppError> {
    let base = clean(&path);
    let entries = on_files(site, platform::Access::Read, {
        let base = base.clone();
        move |files| files.list(&base)
    })
    .await?;
    Ok(entries
        .into_iter()
        .map(|e| FileRow {
            path: clean(&format!("{base}/{}", e.name)),
            name: e.name,
            dir: e.dir,
            link: e.link,
            size: e.size,
            mode: mode_text(e.mode),
            octal: format!("{:o}", e.mode & 0o7777),
            modified: chrono::DateTime::from_timestamp(e.modified, 0)
                .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                .unwrap_or_default(),
        })
        .collect())
}

/// The folder tree: the site's folders, and the folders of each folder on the way to `path`.
#[server(prefix = "/fn", endpoint = "folder_tree")]
pub async fn folder_tree(site: i32, path: String) -> Result<Vec<TreeRow>, AppError> {
    fn level(
        files: &platform::files::SiteFiles,
        base: &str,
        depth: usize,
        here: &str,
        rows: &mut Vec<TreeRow>,
    ) {
        // A folder on the way that is gone or unreadable ends the tree there.
        let Ok(entries) = files.list(base) else {
            return;
        };
        for entry in entries.into_iter().filter(|e| e.dir).take(TREE_WIDTH) {
            let path = clean(&format!("{base}/{}", entry.name));
            let on_the_way = here == path || here.starts_with(&format!("{path}/"));
            rows.push(TreeRow {
                name: entry.name,
                current: here == path,
                depth,
                path: path.clone(),
            });
            if on_the_way {
                level(files, &path, depth + 1, here, rows);
            }
        }
    }
    on_files(site, platform::Access::Read, move |files| {
        let mut rows = Vec::new();
        level(files, "", 0, &clean(&path), &mut rows);
        Ok(rows)
    })
    .await
}

/// Opens a file for the editor.
#[server(prefix = "/fn", endpoint = "open_file")]
pub async fn open_file(site: i32, path: String) -> Result<FileText, AppError> {
    let path = clean(&path);
    let read = on_files(site, platform::Access::Read, {
        let path = path.clone();
        move |files| files.read_versioned(&path, EDITABLE_BYTES)
    })
    .await?;
    Ok(FileText {
        size: read.size,
        // Too large to edit here, or not text: the page offers the download instead.
        text: read
            .bytes
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .filter(|t| !t.contains('\0')),
        path,
        version: read.version.0,
    })
}

/// Saves a file from the editor; `version` (empty for a new file) guards against
/// overwriting a change made since it was opened. Returns the new version.
#[server(prefix = "/fn", endpoint = "save_file")]
pub async fn save_file(site: i32, path: String, text: String, version: String) -> Result<String, AppError> {
    let expected = (!version.is_empty()).then_some(platform::files::Version(version));
    // Text from a browser's textarea has CRLF line ends; files on a server have LF.
    let text = text.replace("\r\n", "\n");
    let saved = on_files(site, platform::Access::Write, move |files| {
        files.save(&clean(&path), text.as_bytes(), expected.as_ref())
    })
    .await?;
    Ok(saved.0)
}

/// What an upload may carry, for the page to say (and check before sending).
#[server(prefix = "/fn", endpoint = "file_limits")]
pub async fn file_limits() -> Result<UploadLimits, AppError> {
    // Context is read before the first await: it is not there after one.
    let limits = crate::ssr::upload_limits();
    actor()
        .await?
        .ok_or_else(|| to_app_error(platform::Error::Unauthenticated))?;
    Ok(limits)
}

/// Makes a folder.
#[server(prefix = "/fn", endpoint = "make_folder")]
pub async fn make_folder(site: i32, path: String) -> Result<(), AppError> {
    on_files(site, platform::Access::Write, move |files| {
        files.mkdir(&clean(&path))
    })
    .await
}

/// Renames or moves a file or folder.
#[server(prefix = "/fn", endpoint = "move_path")]
pub async fn move_path(site: i32, from: String, to: String) -> Result<(), AppError> {
    on_files(site, platform::Access::Write, move |files| {
        files.rename(&clean(&from), &clean(&to))
    })
    .await
}

/// Deletes a file or a link, or a folder with everything in it.
#[server(prefix = "/fn", endpoint = "delete_path")]
pub async fn delete_path(site: i32, path: String) -> Result<(), AppError> {
    on_files(site, platform::Access::Write, move |files| {
        files.remove_all(&clean(&path))
    })
    .await
}

/// Sets a file's mode from octal (`755`).
#[server(prefix = "/fn", endpoint = "set_mode")]
pub async fn set_mode(site: i32, path: String, mode: String) -> Result<(), AppError> {
    let mode = u32::from_str_radix(mode.trim(), 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| AppError::Invalid {
            field: "mode".to_owned(),
            message: "Give the mode in octal, like 755 or 644.".to_owned(),
        })?;
    on_files(site, platform::Access::Write, move |files| {
        files.chmod(&clean(&path), mode)
    })
    .await
}
