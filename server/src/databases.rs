//! A site database's dump, downloaded: `GET /sites/{id}/databases/{kind}/dump` streams what
//! `pg_dump` or `mariadb-dump` writes as the site's own role, in the site's database shell
//! container (see `Platform::dump_database`), while it writes it: memory stays flat whatever
//! the database's size. The same checks as the server functions: a session (401), membership
//! (404).
//!
//! A client that cannot connect writes nothing: its failure is the answer's status (503), as is
//! one that writes nothing for a minute (it waits for a lock the site holds). One that fails later (the server restarted mid-dump) ends the transfer unfinished, so the
//! browser marks the download failed rather than keeping half a dump as if it were whole.

use std::io;

use axum::{
    body::Body,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse as _, Response},
};
use bytes::Bytes;
use futures::StreamExt as _;
use orchestrator::{ExecControl, ExecOutput, ExitCode, LogStream};
use platform::sites::{DatabaseDump, DatabaseKind};

use crate::{
    access::{refusal, signed_in},
    files::{TransferPlace, disposition, too_many_transfers, transfer_place},
    http::AppState,
};

/// What of a failing client's standard error is kept for the log.
const COMPLAINTS: usize = 4096;
/// How long a dump may take to write its first bytes.
const FIRST_BYTES: std::time::Duration = std::time::Duration::from_secs(60);

pub async fn dump(
    State(state): State<AppState>,
    Path((site_id, kind)): Path<(i32, String)>,
    headers: HeaderMap,
) -> Response {
    let actor = match signed_in(&state, &headers).await {
        Ok(actor) => actor,
        Err(refused) => return refused,
    };
    let Ok(kind) = kind.parse::<DatabaseKind>() else {
        return (StatusCode::NOT_FOUND, "There is no such kind of database.").into_response();
    };
    let Some(place) = transfer_place(actor.user_id) else {
        return too_many_transfers();
    };
    let DatabaseDump { file_name, session } =
        match state.platform().dump_database(Some(&actor), site_id, kind).await {
            Ok(dump) => dump,
            Err(err) => return refusal(err),
        };
    let exit = session.exit();
    let mut dump = Dump {
        output: session.output,
        exit,
        running: Running(Some(session.control)),
        complaints: Vec::new(),
        site_id,
        kind,
        _place: place,
    };
    // The first bytes, or the client's end: the status says whether a dump follows. A client
    // that says nothing for a minute (waiting for a lock the site's own code holds) is ended.
    let first = match tokio::time::timeout(FIRST_BYTES, dump.next_chunk()).await {
        Ok(Ok(Some(first))) => first,
        Ok(Ok(None)) => return dump_failed(),
        Ok(Err(err)) => {
            dump.log_failure(&err);
            return dump_failed();
        }
        Err(_) => {
            dump.log_failure(&io::Error::other("no byte of the dump within a minute"));
            return dump_failed();
        }
    };
    let body = futures::stream::once(async move { Ok::<_, io::Error>(first) }).chain(
        futures::stream::unfold(dump, async |mut dump| match dump.next_chunk().await {
            Ok(Some(chunk)) => Some((Ok(chunk), dump)),
            Ok(None) => None,
            Err(err) => {
                dump.log_failure(&err);
                // Ended so that nothing reads again: the error is the transfer's last word.
                dump.output = Box::pin(futures::stream::empty());
                Some((Err(err), dump))
            }
        }),
    );
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/sql; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(value) = HeaderValue::from_str(&disposition(&file_name)) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

fn dump_failed() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "10")],
        "The dump could not be made: the database server did not answer, or refused it. Try again in a moment; if it keeps failing, an administrator finds the reason in Director's log.",
    )
        .into_response()
}

/// A dump under way.
struct Dump {
    output: ExecOutput,
    exit: ExitCode,
    running: Running,
    complaints: Vec<u8>,
    site_id: i32,
    kind: DatabaseKind,
    _place: TransferPlace,
}

impl Dump {
    /// The next bytes of the dump; None once the client ended well; an error when it failed.
    async fn next_chunk(&mut self) -> io::Result<Option<Bytes>> {
        loop {
            match self.output.next().await {
                Some(Ok((LogStream::Stdout, bytes))) => return Ok(Some(bytes)),
                Some(Ok((_, bytes))) => {
                    let room = COMPLAINTS.saturating_sub(self.complaints.len());
                    self.complaints.extend_from_slice(&bytes[..bytes.len().min(room)]);
                }
                Some(Err(err)) => return Err(io::Error::other(err)),
                None => break,
            }
        }
        // The output ends as the process does; the engine may report its exit a moment later.
        for _ in 0..50 {
            match self.exit.code().await {
                Ok(Some(0)) => {
                    self.running.0 = None;
                    return Ok(None);
                }
                Ok(Some(code)) => {
                    self.running.0 = None;
                    return Err(io::Error::other(format!("the client exited with {code}")));
                }
                Ok(None) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
                Err(err) => return Err(io::Error::other(err)),
            }
        }
        Err(io::Error::other("the client did not exit"))
    }

    fn log_failure(&self, err: &io::Error) {
        tracing::warn!(
            site = self.site_id,
            kind = %self.kind,
            error = %err,
            complaints = %String::from_utf8_lossy(&self.complaints),
            "database dump failed"
        );
    }
}

/// The client while it may still run: a download abandoned midway (the browser closed) ends
/// it rather than leave it writing to nobody.
struct Running(Option<ExecControl>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(control) = self.0.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                if let Err(err) = control.kill().await {
                    tracing::warn!(error = %err, "ending an abandoned dump");
                }
            });
        }
    }
}
