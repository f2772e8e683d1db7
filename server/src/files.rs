//! The file manager's transfers, beside its server functions (which carry JSON, not files):
//!
//! - `POST /sites/{id}/files/upload?path=<folder>` takes `multipart/form-data` files (field
//!   `file`, any number; a `replace=1` part before them replaces files of the same name). Each is streamed to
//!   disk through [`SiteFiles::write_from`] (temporary file, then rename), so memory stays flat
//!   and a refused or broken file leaves nothing. Limits are checked before anything is written
//!   when the request declares its length (per-upload total, free disk space) and again while
//!   the bytes arrive (per file, total), so an upload that lies about its size still stops at
//!   the limit. The answer is JSON (what was saved, what was refused and why), or a redirect
//!   back to the folder for a plain form post.
//! - `GET /sites/{id}/files/download?path=<path>` gives a file, or a folder as a zip written
//!   while it is sent (links kept as links, never followed).
//!
//! Both run the same checks as the server functions: a session (401), membership (404). The
//! CSRF middleware covers the upload like every other POST.

use std::{
    io::{self, Write},
    sync::Arc,
};

use app::api::{UploadLimits, clean, url_encode};
use axum::{
    body::Body,
    extract::{Path, Query, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse as _, Redirect, Response},
};
use bytes::Bytes;
use platform::files::{Existing, Opened, SiteFiles, Walked, human_bytes};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::{
    access::{refusal, signed_in},
    http::AppState,
};

/// Room kept free on the disk: an upload that would eat into it is refused.
const DISK_RESERVE: u64 = 256 << 20;
/// Multipart framing allowed beyond the files' own bytes.
const FRAMING: u64 = 1 << 20;
/// Uploads and downloads under way at once: 64 in all — each holds a blocking thread while its
/// client sends or reads at its own pace, and past this many a transfer is refused (503) rather
/// than let slow clients take the threads that sign-in and every file operation need — and 8 for
/// one user.
static TRANSFERS: crate::places::Places = crate::places::Places::new(64, 8);

/// A transfer's place, held until it ends.
pub(crate) type TransferPlace = crate::places::Place;

/// A place for one more transfer of `user`, if there is one.
pub(crate) fn transfer_place(user: i64) -> Option<TransferPlace> {
    TRANSFERS.take(user)
}

/// The answer when [`transfer_place`] has none.
pub(crate) fn too_many_transfers() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "5")],
        "Too many file transfers are under way; try again in a moment.",
    )
        .into_response()
}

/// Files one upload may carry (each has a line in the report).
const MAX_FILES: usize = 1000;
/// The most a field other than a file may carry (the `replace` flag is one byte).
const SMALL_FIELD: u64 = 1024;
/// Chunks handed between the network and the disk.
const CHUNK: usize = 256 * 1024;

/// `?path=`: the folder to upload into, or the file or folder to download.
#[derive(Debug, Deserialize)]
pub struct At {
    #[serde(default)]
    path: String,
}

/// The answer to an upload: what was saved and what refused (with why).
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
#[schema(as = UploadReport)]
pub struct Report {
    saved: Vec<Saved>,
    refused: Vec<Refused>,
    #[serde(skip)]
    status: Option<StatusCode>,
}

/// A file saved.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Saved {
    name: String,
    size: u64,
}

/// A file (or the upload itself) refused, and why.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Refused {
    name: String,
    message: String,
}

impl Report {
    fn refuse(&mut self, name: &str, status: StatusCode, message: String) {
        self.status.get_or_insert(status);
        // What a client sent is never echoed back at any length.
        self.refused.push(Refused {
            name: name.chars().take(255).collect(),
            message,
        });
    }

    /// Files reported on so far, saved or refused.
    fn files(&self) -> usize {
        self.saved.len() + self.refused.len()
    }

    fn refuse_error(&mut self, name: &str, err: platform::Error) {
        let app = app::ssr::to_app_error(err);
        let status = StatusCode::from_u16(app.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        self.refuse(name, status, app.to_string());
    }
}

/// `POST /sites/{id}/files/upload?path=`
pub async fn upload(
    State(state): State<AppState>,
    Path(site_id): Path<i32>,
    Query(at): Query<At>,
    headers: HeaderMap,
    request: Request,
) -> Response {
    match signed_in(&state, &headers).await {
        Ok(actor) => upload_as(&state, actor, site_id, &at.path, &headers, request).await,
        Err(refused) => refused,
    }
}

/// Receives an upload (multipart, `file` parts) into folder `folder` of the site, for `actor`
/// (a browser's session or an API token): the answer says what was saved and what refused.
pub async fn upload_as(
    state: &AppState,
    actor: platform::Actor,
    site_id: i32,
    folder: &str,
    headers: &HeaderMap,
    request: Request,
) -> Response {
    let files = match state
        .platform()
        .site_files(Some(&actor), site_id, platform::Access::Write)
        .await
    {
        Ok(files) => files,
        Err(err) => return refusal(err),
    };
    let Some(_place) = transfer_place(actor.user_id) else {
        return too_many_transfers();
    };
    let folder = clean(folder);
    let limits = state.app.uploads;
    let report = receive(files, &folder, limits, headers, request).await;
    let bytes: u64 = report.saved.iter().map(|s| s.size).sum();
    tracing::info!(
        user = %actor.username,
        site = site_id,
        folder = %folder,
        saved = report.saved.len(),
        bytes,
        refused = report.refused.len(),
        "upload"
    );
    let plain_form = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    if plain_form {
        // Without JavaScript: back to the folder, which says how it went.
        let back = format!(
            "/sites/{site_id}/files?path={}&uploaded={}&refused={}",
            url_encode(&folder),
            report.saved.len(),
            report.refused.len()
        );
        return Redirect::to(&back).into_response();
    }
    let status = report.status.unwrap_or(StatusCode::OK);
    // A refused upload may leave the rest of its body unread: the connection is not kept for
    // another request (a client reusing it would race its closing).
    let close = !report.refused.is_empty();
    let mut response = (status, axum::Json(report)).into_response();
    if close {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

async fn receive(
    files: Arc<SiteFiles>,
    folder: &str,
    limits: UploadLimits,
    headers: &HeaderMap,
    request: Request,
) -> Report {
    let (room, boundary) = match admit(&files, limits, headers).await {
        Ok(admitted) => admitted,
        Err(refused) => return refused,
    };
    let mut report = Report::default();
    // Every part is bounded: the body by the upload's total, a file by the writer's limits
    // below, any other field (the `replace` flag) to a few bytes, a part's headers by the guard.
    let constraints = multer::Constraints::new().size_limit(
        multer::SizeLimit::new()
            .whole_stream(limits.total_bytes + FRAMING)
            .per_field(SMALL_FIELD)
            .for_field("file", u64::MAX),
    );
    let body = crate::multipart::guard(request.into_body().into_data_stream(), &boundary);
    let mut multipart = multer::Multipart::with_constraints(body, boundary, constraints);
    let mut existing = Existing::Refuse;
    // What may still be written: the total limit and the disk's room, shrinking as files land.
    let mut budget = limits.total_bytes.min(room);
    loop {
        let mut field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(err) => {
                let (status, message) = unreadable(&err, limits);
                report.refuse("upload", status, message);
                break;
            }
        };
        match field.name() {
            Some("replace") => match field.text().await {
                Ok(text) => {
                    existing = if text == "1" || text == "on" {
                        Existing::Replace
                    } else {
                        Existing::Refuse
                    };
                    continue;
                }
                Err(err) => {
                    let (status, message) = unreadable(&err, limits);
                    report.refuse("upload", status, message);
                    break;
                }
            },
            Some("file") => {}
            _ => continue,
        }
        if report.files() >= MAX_FILES {
            report.refuse(
                "upload",
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("An upload carries at most {MAX_FILES} files; the rest were not read."),
            );
            break;
        }
        // A form whose file input was left empty sends one nameless, empty part.
        let Some(name) = field.file_name().map(str::to_owned).filter(|n| !n.is_empty()) else {
            continue;
        };
        let name = match upload_name(&name) {
            Ok(name) => name,
            Err(message) => {
                report.refuse(&name, StatusCode::BAD_REQUEST, message);
                continue;
            }
        };
        let part = Part {
            target: clean(&format!("{folder}/{name}")),
            limit: limits.file_bytes.min(budget),
            existing,
        };
        let limit = part.limit;
        let (saved, broken) = save(&files, &mut field, part, limits).await;
        match saved {
            Ok(size) => {
                budget = budget.saturating_sub(size);
                report.saved.push(Saved { name, size });
            }
            Err(err) => refuse_file(&mut report, &name, err, limit, limits),
        }
        if let Some((status, message)) = broken {
            report.refuse("upload", status, message);
            break;
        }
    }
    report
}

/// Whether an upload may be read at all: its declared length within the upload's limit and the
/// disk's room, and a multipart boundary. The room and the boundary, or the report refusing it.
async fn admit(
    files: &Arc<SiteFiles>,
    limits: UploadLimits,
    headers: &HeaderMap,
) -> Result<(u64, String), Report> {
    let mut refused = Report::default();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(length) = declared
        && length > limits.total_bytes + FRAMING
    {
        refused.refuse(
            "upload",
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "The upload is {}, more than the {} one upload may carry; nothing was saved.",
                human_bytes(length),
                human_bytes(limits.total_bytes)
            ),
        );
        return Err(refused);
    }
    let room = match files.run(SiteFiles::free_bytes).await {
        Ok(free) => free.saturating_sub(DISK_RESERVE),
        Err(err) => {
            refused.refuse_error("upload", err);
            return Err(refused);
        }
    };
    if let Some(length) = declared
        && length > room + FRAMING
    {
        refused.refuse(
            "upload",
            StatusCode::INSUFFICIENT_STORAGE,
            format!(
                "The server's disk has room for {} more, less than this upload's {}; nothing was saved.",
                human_bytes(room),
                human_bytes(length)
            ),
        );
        return Err(refused);
    }
    match headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(multer::parse_boundary)
    {
        Some(Ok(boundary)) if boundary.len() <= crate::multipart::MAX_BOUNDARY => Ok((room, boundary)),
        _ => {
            refused.refuse(
                "upload",
                StatusCode::BAD_REQUEST,
                "An upload is sent as multipart/form-data.".to_owned(),
            );
            Err(refused)
        }
    }
}

/// Where one uploaded file goes, and how much of it may be written.
struct Part {
    target: String,
    limit: u64,
    existing: Existing,
}

/// Writes one file part off the async workers as it arrives: its size once saved (or why not),
/// and why the body stopped being readable midway (over its total, cut, broken), if it did.
async fn save(
    files: &Arc<SiteFiles>,
    field: &mut multer::Field<'_>,
    part: Part,
    limits: UploadLimits,
) -> (platform::Result<u64>, Option<(StatusCode, String)>) {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(4);
    let writer = tokio::task::spawn_blocking({
        let files = files.clone();
        move || {
            files.write_from(
                &part.target,
                &mut ChannelReader::new(rx),
                part.limit,
                part.existing,
            )
        }
    });
    let mut broken = None;
    let mut feeding = true;
    loop {
        match field.chunk().await {
            Ok(Some(chunk)) => {
                // Once the writer has stopped (a limit, a taken name), the rest of this file is
                // read and dropped so that the next files still arrive.
                if feeding && tx.send(Ok(chunk)).await.is_err() {
                    feeding = false;
                }
            }
            Ok(None) => break,
            Err(err) => {
                let _ = tx.send(Err(io::Error::other(err.to_string()))).await;
                broken = Some(unreadable(&err, limits));
                break;
            }
        }
    }
    drop(tx);
    let saved = writer
        .await
        .unwrap_or_else(|join| Err(platform::Error::Internal(Box::new(join))));
    (saved, broken)
}

/// Records why a file was not saved; a file too large says which limit it went over: what was
/// left of the upload's total or of the disk's room (`limit` below a file's own), or a file's.
fn refuse_file(report: &mut Report, name: &str, err: platform::Error, limit: u64, limits: UploadLimits) {
    match err {
        platform::Error::TooLarge(_) if limit < limits.file_bytes => report.refuse(
            name,
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "This file goes over what is left of the upload's {} (or of the disk's room); nothing of it was saved.",
                human_bytes(limits.total_bytes)
            ),
        ),
        platform::Error::TooLarge(_) => report.refuse(
            name,
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "This file is larger than the {} a file may be; nothing of it was saved.",
                human_bytes(limits.file_bytes)
            ),
        ),
        err => report.refuse_error(name, err),
    }
}

/// What a multipart body that could not be read is answered with.
fn unreadable(err: &multer::Error, limits: UploadLimits) -> (StatusCode, String) {
    match err {
        multer::Error::StreamSizeExceeded { .. } => (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "The upload is more than the {} one upload may carry; what came after was not read.",
                human_bytes(limits.total_bytes)
            ),
        ),
        multer::Error::FieldSizeExceeded { field_name, .. } => (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "The field {:?} is longer than the {SMALL_FIELD} bytes it may have.",
                field_name.as_deref().unwrap_or_default()
            ),
        ),
        multer::Error::StreamReadFailed(cause) if cause.is::<crate::multipart::HeadersTooLong>() => (
            StatusCode::BAD_REQUEST,
            format!("The upload could not be read: {cause}."),
        ),
        other => (
            StatusCode::BAD_REQUEST,
            format!("The upload could not be read: {other}"),
        ),
    }
}

/// The name an uploaded file is saved under: its last component (some browsers send a path),
/// which must be an ordinary name.
fn upload_name(given: &str) -> Result<String, String> {
    let name = given.rsplit(['/', '\\']).next().unwrap_or_default();
    if name.is_empty() || name == "." || name == ".." || name.contains('\0') {
        let shown: String = given.chars().take(255).collect();
        return Err(format!("{shown:?} is not a name a file can have."));
    }
    if name.len() > 255 {
        return Err("A file name can have at most 255 bytes.".to_owned());
    }
    Ok(name.to_owned())
}

/// `GET /sites/{id}/files/download?path=`
pub async fn download(
    State(state): State<AppState>,
    Path(site_id): Path<i32>,
    Query(at): Query<At>,
    headers: HeaderMap,
) -> Response {
    match signed_in(&state, &headers).await {
        Ok(actor) => download_as(&state, actor, site_id, &at.path).await,
        Err(refused) => refused,
    }
}

/// Sends a file of the site as it is, or a folder as a zip, to `actor` (a browser's session
/// or an API token).
pub async fn download_as(state: &AppState, actor: platform::Actor, site_id: i32, path: &str) -> Response {
    let files = match state
        .platform()
        .site_files(Some(&actor), site_id, platform::Access::Read)
        .await
    {
        Ok(files) => files,
        Err(err) => return refusal(err),
    };
    let Some(place) = transfer_place(actor.user_id) else {
        return too_many_transfers();
    };
    let path = clean(path);
    let opened = match files
        .run({
            let path = path.clone();
            move |files| files.open_read(&path)
        })
        .await
    {
        Ok(opened) => opened,
        Err(err) => return refusal(err),
    };
    tracing::info!(user = %actor.username, site = site_id, path = %path, "download");
    let base = path.rsplit('/').next().unwrap_or_default();
    let (name, length, body) = match opened {
        Opened::File { mut file, size } => (
            base.to_owned(),
            Some(size),
            blocking_body(place, move |out| io::copy(&mut file, out).map(|_| ())),
        ),
        Opened::Folder(folder) => {
            let name = match state.platform().site(Some(&actor), site_id).await {
                Ok(site) if path.is_empty() => format!("{}.zip", site.name),
                Ok(site) => format!("{}-{base}.zip", site.name),
                Err(err) => return refusal(err),
            };
            (
                name,
                None,
                blocking_body(place, move |out| zip_folder(&folder, out)),
            )
        }
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(length) = length {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    if let Ok(value) = HeaderValue::from_str(&disposition(&name)) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// `attachment` with the name twice: plain ASCII for old clients, UTF-8 (RFC 6266) for the rest.
pub(crate) fn disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{}",
        url_encode(name)
    )
}

/// Why a zip stopped.
#[derive(Debug, thiserror::Error)]
enum ZipFailure {
    #[error(transparent)]
    Files(#[from] platform::Error),
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(transparent)]
    Zip(#[from] zip::result::ZipError),
}

impl From<ZipFailure> for io::Error {
    fn from(failure: ZipFailure) -> Self {
        match failure {
            ZipFailure::Io(err) => err,
            other => io::Error::other(other),
        }
    }
}

/// Formats that gain nothing from deflate.
const COMPRESSED: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "webp", "avif", "ico", "woff", "woff2", "zip", "gz", "tgz", "bz2", "xz",
    "zst", "7z", "mp3", "mp4", "m4a", "webm", "ogg", "pdf",
];

fn zip_folder(folder: &platform::files::Folder, out: &mut ChannelWriter) -> io::Result<()> {
    use zip::{CompressionMethod, write::SimpleFileOptions};
    let mut zip = zip::ZipWriter::new_stream(out);
    let when = |seconds: i64| {
        chrono::DateTime::from_timestamp(seconds, 0)
            .and_then(|t| {
                use chrono::{Datelike as _, Timelike as _};
                zip::DateTime::from_date_and_time(
                    u16::try_from(t.year()).ok()?,
                    t.month() as u8,
                    t.day() as u8,
                    t.hour() as u8,
                    t.minute() as u8,
                    t.second() as u8,
                )
                .ok()
            })
            .unwrap_or_default()
    };
    folder.walk(&mut |walked| -> Result<(), ZipFailure> {
        match walked {
            Walked::Folder { path, modified } => {
                zip.add_directory(
                    format!("{path}/"),
                    SimpleFileOptions::default().last_modified_time(when(modified)),
                )?;
            }
            Walked::File {
                path,
                mut file,
                size,
                mode,
                modified,
                ..
            } => {
                let extension = path
                    .rsplit_once('.')
                    .map(|(_, e)| e.to_ascii_lowercase())
                    .unwrap_or_default();
                let method = if COMPRESSED.contains(&extension.as_str()) {
                    CompressionMethod::Stored
                } else {
                    CompressionMethod::Deflated
                };
                let options = SimpleFileOptions::default()
                    .compression_method(method)
                    .unix_permissions(mode)
                    .last_modified_time(when(modified))
                    .large_file(size >= u64::from(u32::MAX));
                zip.start_file(path, options)?;
                io::copy(&mut file, &mut zip)?;
            }
            Walked::Link { path, target } => {
                zip.add_symlink(path, target, SimpleFileOptions::default())?;
            }
        }
        Ok(())
    })?;
    zip.finish().map_err(ZipFailure::from)?;
    Ok(())
}

/// A response body produced by blocking code (file reads, zip) on a blocking thread, through a
/// small bounded channel: a slow client slows the producer, memory stays flat. An error midway
/// aborts the body, so the client sees a failed download rather than a short one.
fn blocking_body(
    place: TransferPlace,
    produce: impl FnOnce(&mut ChannelWriter) -> io::Result<()> + Send + 'static,
) -> Body {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(8);
    tokio::task::spawn_blocking(move || {
        let _place = place;
        let mut out = ChannelWriter {
            tx,
            buffer: Vec::with_capacity(CHUNK),
        };
        if let Err(err) = produce(&mut out).and_then(|()| out.flush()) {
            // A broken pipe is the client gone; anything else is worth a line.
            if err.kind() != io::ErrorKind::BrokenPipe {
                tracing::warn!(error = %err, "download failed midway");
                let _ = out.tx.blocking_send(Err(err));
            }
        }
    });
    Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// The writing end of [`blocking_body`].
struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buffer: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= CHUNK {
            self.flush()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))
    }
}

/// The reading end of an upload: chunks from the network, read on a blocking thread.
struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl ChannelReader {
    fn new(rx: mpsc::Receiver<io::Result<Bytes>>) -> Self {
        Self {
            rx,
            current: Bytes::new(),
        }
    }
}

impl io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(err)) => return Err(err),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_names_are_last_components_and_never_special() {
        assert_eq!(upload_name("a.txt").unwrap(), "a.txt");
        assert_eq!(upload_name("C:\\Users\\me\\a.txt").unwrap(), "a.txt");
        assert_eq!(upload_name("dir/sub/b.png").unwrap(), "b.png");
        for bad in ["..", ".", "dir/", "a\0b", "x/.."] {
            assert!(upload_name(bad).is_err(), "{bad:?}");
        }
        assert!(upload_name(&"n".repeat(256)).is_err());
    }

    #[test]
    fn download_names_are_quoted_safely() {
        assert_eq!(
            disposition("a b.txt"),
            "attachment; filename=\"a b.txt\"; filename*=UTF-8''a%20b.txt"
        );
        assert_eq!(
            disposition("é\"x.zip"),
            "attachment; filename=\"__x.zip\"; filename*=UTF-8''%C3%A9%22x.zip"
        );
    }
}
