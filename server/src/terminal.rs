//! The browser terminal's websocket: `GET /sites/{id}/terminal/ws`.
//!
//! Every check happens before the upgrade — a session cookie (else 401), an `Origin` of this
//! very host (else 403), membership through the platform (else 404), a site that is not
//! disabled (else 409 with the reason) — so a refused caller never gets a socket.
//!
//! A shell outlives its socket: each runs in a [`Session`] whose pump reads the shell's output
//! into a small replay buffer and, when a socket is attached, into a bounded channel to it (so a
//! command printing gigabytes waits for the browser instead of filling memory). A socket that
//! drops leaves the shell running for a grace period; the browser reconnects with the session's
//! id and gets the last screenful replayed. Frames: binary carries terminal bytes both ways;
//! text carries small JSON messages (`resize` from the browser; `session` and `exit` from here).
//! The server pings every 20 s so that idle proxies keep the connection, and drops a socket
//! that has not answered for a minute.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    extract::{
        Path, Query, State,
        ws::{Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection},
    },
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use futures::StreamExt as _;
use platform::sites::ExecControl;
use platform::{
    grants::Grant,
    sites::{ShellRequest, clamp_size},
};
use serde::Deserialize;
use tokio::{io::AsyncWriteExt as _, sync::mpsc};

use crate::{
    access::{refusal, signed_in_session},
    http::AppState,
};

/// How much output is kept for a reconnecting browser: a full screen of a large terminal.
const REPLAY_BYTES: usize = 64 * 1024;
/// Chunks in flight to one socket before the shell is made to wait.
const IN_FLIGHT: usize = 32;
/// How often the server pings.
const PING_EVERY: Duration = Duration::from_secs(20);
/// A socket silent this long (no pong, no input) is taken for dead.
const SILENT_FOR: Duration = Duration::from_secs(60);

/// The shells this manager runs, by session id.
#[derive(Clone)]
pub struct Terminals {
    sessions: Arc<Mutex<Shells>>,
    /// How long a shell waits for its browser to come back.
    grace: Duration,
}

impl std::fmt::Debug for Terminals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Terminals")
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

/// The shells running, and those being started (counted against the caps from the moment
/// they are asked for, so that requests at the same moment cannot all pass).
#[derive(Default)]
struct Shells {
    running: HashMap<String, Arc<Session>>,
    starting: HashMap<u64, (i64, i32)>,
    next: u64,
}

/// A place among the caps for a shell being started; given back when dropped.
struct Place {
    terminals: Terminals,
    key: u64,
}

impl Drop for Place {
    fn drop(&mut self) {
        self.terminals
            .sessions
            .lock()
            .expect("sessions lock")
            .starting
            .remove(&self.key);
    }
}

/// The credential a shell was opened with: a manager session, or a token.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Credential {
    session: Option<String>,
    token: Option<i64>,
}

impl Credential {
    fn of(actor: &platform::Actor, session: Option<&str>) -> Self {
        Self {
            session: session.map(str::to_owned),
            token: match &actor.grant {
                platform::Grant::Token(token) => Some(token.id),
                platform::Grant::Full => None,
            },
        }
    }
}

/// What goes to an attached socket.
enum Out {
    Bytes(Bytes),
    /// The shell ended: its exit code, and why when Director ended it.
    Exit(Option<i64>, Option<String>),
}

/// How long a hung-up shell has to end before it is killed.
const KILL_AFTER: Duration = Duration::from_secs(2);
/// Shells one user may have open at once, across sites.
pub const MAX_SHELLS_PER_USER: usize = 8;
/// Shells open at once in one site, whoever opened them.
pub const MAX_SHELLS_PER_SITE: usize = 16;

/// One shell and whoever is watching it.
struct Session {
    user_id: i64,
    site_id: i32,
    /// What it was opened with: only the same may attach to it again.
    credential: Credential,
    input: tokio::sync::Mutex<platform::sites::ExecInput>,
    control: ExecControl,
    state: Mutex<SessionState>,
    /// Set once the shell has ended (the session's guard stops then).
    ended: tokio::sync::watch::Sender<bool>,
}

struct SessionState {
    /// The newest output, for a browser that reconnects.
    replay: VecDeque<u8>,
    /// The attached socket's channel, and a number telling attachments apart.
    attached: Option<(u64, mpsc::Sender<Out>)>,
    attachments: u64,
    /// Set once the shell has ended.
    exit: Option<Option<i64>>,
    /// Why Director ended the shell, if it did (access taken away).
    ended_because: Option<String>,
}

impl Terminals {
    /// No shells yet; a dropped socket's shell waits `grace` for its browser.
    pub fn new(grace: Duration) -> Self {
        Self {
            sessions: Arc::default(),
            grace,
        }
    }

    /// How many shells run.
    pub fn count(&self) -> usize {
        self.sessions.lock().expect("sessions lock").running.len()
    }

    /// A place for one more shell of `user` in `site`, or why there is none.
    fn place(&self, user: i64, site: i32) -> Result<Place, String> {
        let mut shells = self.sessions.lock().expect("sessions lock");
        let owners = shells
            .running
            .values()
            .map(|s| (s.user_id, s.site_id))
            .chain(shells.starting.values().copied())
            .collect::<Vec<_>>();
        if owners.iter().filter(|(u, _)| *u == user).count() >= MAX_SHELLS_PER_USER {
            return Err(format!(
                "You have {MAX_SHELLS_PER_USER} terminals open already: close one (or exit its shell) first."
            ));
        }
        if owners.iter().filter(|(_, s)| *s == site).count() >= MAX_SHELLS_PER_SITE {
            return Err(format!(
                "This site has {MAX_SHELLS_PER_SITE} terminals open already: close one first."
            ));
        }
        shells.next += 1;
        let key = shells.next;
        shells.starting.insert(key, (user, site));
        Ok(Place {
            terminals: self.clone(),
            key,
        })
    }

    fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.sessions
            .lock()
            .expect("sessions lock")
            .running
            .get(id)
            .cloned()
    }

    fn remove(&self, id: &str) {
        self.sessions.lock().expect("sessions lock").running.remove(id);
    }
}

/// What the terminal's address takes.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WsQuery {
    /// A session to reattach to (from the `session` message of an earlier socket).
    session: Option<String>,
    /// The terminal's width, in columns (80 when not said).
    cols: Option<u16>,
    /// The terminal's height, in rows (24 when not said).
    rows: Option<u16>,
    /// A database shell (`postgresql`, `mysql`) instead of the site's own shell.
    #[param(value_type = Option<String>)]
    shell: Option<platform::sites::DatabaseKind>,
}

/// A message from the browser.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Control {
    Resize { cols: u16, rows: u16 },
}

/// The browser's door: a session cookie, from a page of this very host. Checks everything,
/// then upgrades.
pub async fn websocket(
    State(state): State<AppState>,
    Path(site_id): Path<i32>,
    Query(query): Query<WsQuery>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    // A plain GET (the page asking why its socket was refused) goes through the same checks
    // and opens nothing; it carries no Origin when same-origin, and cannot change anything.
    if upgrade.is_ok() && !same_origin(&headers) {
        tracing::info!(site = site_id, "terminal refused: cross-origin upgrade");
        return (StatusCode::FORBIDDEN, "cross-origin websocket refused").into_response();
    }
    let (actor, session) = match signed_in_session(&state, &headers).await {
        Ok(signed_in) => signed_in,
        Err(refused) => return refused,
    };
    let opening = Opening {
        actor,
        session: Some(session),
        site_id,
        query,
    };
    open(state, opening, upgrade).await
}

/// Who opens a terminal, from which manager session (none for a token), where, and how.
pub struct Opening {
    pub actor: platform::Actor,
    pub session: Option<String>,
    pub site_id: i32,
    pub query: WsQuery,
}

/// Opens (or reattaches to) a shell for a caller already known: checks what the site allows,
/// then upgrades. A request that is no upgrade is answered why it could not be one.
pub async fn open(
    state: AppState,
    opening: Opening,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Opening {
        actor,
        session,
        site_id,
        query,
    } = opening;
    let platform = state.platform().clone();
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(_) => {
            return match platform.shell_site(Some(&actor), site_id).await {
                Ok(_) => (
                    StatusCode::BAD_REQUEST,
                    "This address is for the terminal's websocket.",
                )
                    .into_response(),
                Err(err) => refusal(err),
            };
        }
    };
    let terminals = state.terminals.clone();
    // A reattachment: the same user's shell on the same site, still running, asked with what
    // opened it (so that the shell's guard watches the credential its socket came with).
    if let Some(id) = query.session.as_deref()
        && let Some(shell) = terminals.get(id)
        && shell.user_id == actor.user_id
        && shell.site_id == site_id
        && shell.credential == Credential::of(&actor, session.as_deref())
    {
        // The site may have been disabled, or the user removed, since; and this caller (a
        // read-only token, say) may reach less than the one that opened the shell: ask again.
        if let Err(err) = platform.shell_site(Some(&actor), site_id).await {
            return refusal(err);
        }
        let id = id.to_owned();
        return upgrade.on_upgrade(move |socket| attach(terminals, id, shell, socket, true));
    }
    let place = match terminals.place(actor.user_id, site_id) {
        Ok(place) => place,
        Err(refused) => return (StatusCode::TOO_MANY_REQUESTS, refused).into_response(),
    };
    let size = clamp_size(query.cols.unwrap_or(80), query.rows.unwrap_or(24));
    // Started on a task of its own: a client that goes away meanwhile cancels this handler,
    // never the start of a shell (which would then run for nobody, for ever).
    let opener = Opener {
        actor,
        session,
        site_id,
        size,
        database: query.shell,
    };
    let started = tokio::spawn(start(platform, place, opener)).await;
    let (id, shell) = match started {
        Ok(Ok(started)) => started,
        Ok(Err(err)) => return refusal(err),
        Err(join) => return refusal(platform::Error::Internal(Box::new(join))),
    };
    upgrade.on_upgrade(move |socket| attach(terminals, id, shell, socket, false))
}

/// Who asks for a shell, from which session, where and how large.
struct Opener {
    actor: platform::Actor,
    session: Option<String>,
    site_id: i32,
    size: (u16, u16),
    database: Option<platform::sites::DatabaseKind>,
}

/// Starts a shell in the site for `actor`: its session, the pump of its output, the guard of
/// its access, and — until a socket attaches — the grace timer, so that a shell whose upgrade
/// never completes (the client gone before the 101) is hung up like one whose socket dropped.
async fn start(
    platform: platform::Platform,
    place: Place,
    opener: Opener,
) -> platform::Result<(String, Arc<Session>)> {
    let Opener {
        actor,
        session: manager_session,
        site_id,
        size,
        database,
    } = opener;
    let terminals = place.terminals.clone();
    let request = ShellRequest {
        size: Some(size),
        command: None,
        database,
    };
    let (site, exec) = platform.open_shell(Some(&actor), site_id, request).await?;
    let id = new_session_id();
    let exit = exec.exit();
    let session = Arc::new(Session {
        credential: Credential::of(&actor, manager_session.as_deref()),
        user_id: actor.user_id,
        site_id: site.id,
        input: tokio::sync::Mutex::new(exec.input),
        control: exec.control.clone(),
        state: Mutex::new(SessionState {
            replay: VecDeque::new(),
            attached: None,
            attachments: 0,
            exit: None,
            ended_because: None,
        }),
        ended: tokio::sync::watch::Sender::new(false),
    });
    {
        let mut shells = terminals.sessions.lock().expect("sessions lock");
        shells.running.insert(id.clone(), session.clone());
        shells.starting.remove(&place.key);
    }
    tokio::spawn(pump(
        terminals.clone(),
        id.clone(),
        session.clone(),
        exec.output,
        exit,
    ));
    let grant = Grant {
        user_id: actor.user_id,
        key: None,
        session: manager_session,
        site_id: Some(site.id),
        token: match &actor.grant {
            platform::Grant::Token(token) => Some(token.clone()),
            platform::Grant::Full => None,
        },
    };
    tokio::spawn(guard(
        platform,
        terminals.clone(),
        grant,
        id.clone(),
        session.clone(),
    ));
    arm_grace(terminals, id.clone(), session.clone(), 0);
    tracing::info!(user = %actor.username, site = %site.name, "terminal opened");
    Ok((id, session))
}

/// Ends the shell when the grounds it was opened on go (the account deactivated, the member
/// removed, the site disabled or deleted), within seconds, with the reason for its socket.
async fn guard(
    platform: platform::Platform,
    terminals: Terminals,
    grant: Grant,
    id: String,
    session: Arc<Session>,
) {
    let mut ended = session.ended.subscribe();
    tokio::select! {
        reason = platform.revoked(&grant) => {
            tracing::info!(session = %id, site = session.site_id, user = grant.user_id, %reason, "terminal access ended");
            // Gone for its user at once, whatever the shell does with the signals below: the
            // socket is told why and closed, and nobody can attach to it again.
            terminals.remove(&id);
            let attached = {
                let mut state = session.state.lock().expect("session lock");
                state.ended_because = Some(reason.clone());
                state.attached.take()
            };
            if let Some((_, sender)) = attached {
                let _ = tokio::time::timeout(KILL_AFTER, sender.send(Out::Exit(None, Some(reason)))).await;
            }
            if let Err(err) = session.control.end(KILL_AFTER).await {
                tracing::warn!(session = %id, error = %err, "ending a shell failed");
            }
        }
        // The value it gives borrows the channel: dropped here, never held across an await.
        _ = async { ended.wait_for(|ended| *ended).await.is_ok() } => {}
    }
}

/// Reads the shell's output until it ends: into the replay buffer, and to the attached socket
/// (waiting for it when its channel is full).
async fn pump(
    terminals: Terminals,
    id: String,
    session: Arc<Session>,
    mut output: platform::sites::ExecOutput,
    exit: platform::sites::ExitCode,
) {
    while let Some(chunk) = output.next().await {
        let Ok((_, chunk)) = chunk else { break };
        let sender = {
            let mut state = session.state.lock().expect("session lock");
            state.replay.extend(chunk.iter().copied());
            let excess = state.replay.len().saturating_sub(REPLAY_BYTES);
            state.replay.drain(..excess);
            state.attached.clone()
        };
        if let Some((attachment, sender)) = sender
            && sender.send(Out::Bytes(chunk)).await.is_err()
        {
            // That socket is gone; its attach task detaches it.
            tracing::debug!(session = %id, attachment, "output for a closed socket dropped");
        }
    }
    let code = exit.code().await.ok().flatten();
    let (sender, reason) = {
        let mut state = session.state.lock().expect("session lock");
        state.exit = Some(code);
        (state.attached.take(), state.ended_because.clone())
    };
    session.ended.send_replace(true);
    if let Some((_, sender)) = sender {
        let _ = sender.send(Out::Exit(code, reason)).await;
    }
    terminals.remove(&id);
    tracing::info!(session = %id, site = session.site_id, code, "shell ended");
}

/// Serves one socket for a session until the socket or the shell ends.
async fn attach(
    terminals: Terminals,
    id: String,
    session: Arc<Session>,
    mut socket: WebSocket,
    reattached: bool,
) {
    let (sender, mut receiver) = mpsc::channel(IN_FLIGHT);
    let (attachment, replay, ended, reason) = {
        let mut state = session.state.lock().expect("session lock");
        state.attachments += 1;
        let attachment = state.attachments;
        // A newer socket takes over from an older one (the same user in another tab).
        state.attached = Some((attachment, sender));
        // What the shell wrote before this socket was attached: the last screen for a browser
        // coming back, the first prompt for a new one.
        let replay = Bytes::from(state.replay.iter().copied().collect::<Vec<u8>>());
        (attachment, replay, state.exit, state.ended_because.clone())
    };
    let hello = serde_json::json!({ "type": "session", "id": id, "reattached": reattached });
    if socket
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_err()
    {
        return detach(terminals, id, session, attachment);
    }
    if !replay.is_empty() && socket.send(Message::Binary(replay)).await.is_err() {
        return detach(terminals, id, session, attachment);
    }
    if let Some(code) = ended {
        let _ = send_exit(&mut socket, code, reason).await;
        return;
    }
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    let mut heard = Instant::now();
    loop {
        tokio::select! {
            out = receiver.recv() => match out {
                Some(Out::Bytes(bytes)) => {
                    if socket.send(Message::Binary(bytes)).await.is_err() {
                        break;
                    }
                }
                Some(Out::Exit(code, reason)) => {
                    let _ = send_exit(&mut socket, code, reason).await;
                    return;
                }
                // Replaced by a newer socket.
                None => {
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
            },
            message = socket.recv() => {
                let Some(Ok(message)) = message else { break };
                heard = Instant::now();
                match message {
                    Message::Binary(bytes) => {
                        let mut input = session.input.lock().await;
                        if input.write_all(&bytes).await.is_err() || input.flush().await.is_err() {
                            break;
                        }
                    }
                    Message::Text(text) => control(&session, &id, text.as_str()).await,
                    Message::Close(_) => break,
                    Message::Ping(_) | Message::Pong(_) => {}
                }
            }
            _ = ping.tick() => {
                if heard.elapsed() > SILENT_FOR {
                    tracing::info!(session = %id, "terminal socket silent for a minute; detaching");
                    break;
                }
                if socket.send(Message::Ping(Bytes::new())).await.is_err() {
                    break;
                }
            }
        }
    }
    detach(terminals, id, session, attachment);
}

/// A malformed message is logged and ignored; a resize is clamped.
async fn control(session: &Session, id: &str, text: &str) {
    match serde_json::from_str::<Control>(text) {
        Ok(Control::Resize { cols, rows }) => {
            let (cols, rows) = clamp_size(cols, rows);
            if let Err(err) = session.control.resize(cols, rows).await {
                tracing::debug!(session = %id, error = %err, "resizing a terminal failed");
            }
        }
        Err(err) => {
            tracing::info!(session = %id, error = %err, length = text.len(), "malformed terminal message ignored");
        }
    }
}

async fn send_exit(
    socket: &mut WebSocket,
    code: Option<i64>,
    reason: Option<String>,
) -> Result<(), axum::Error> {
    let message = serde_json::json!({ "type": "exit", "code": code, "reason": reason });
    socket.send(Message::Text(message.to_string().into())).await?;
    socket.send(Message::Close(None)).await
}

/// The socket went away: unless another took over, the shell waits `grace` for one, then is
/// hung up.
fn detach(terminals: Terminals, id: String, session: Arc<Session>, attachment: u64) {
    {
        let mut state = session.state.lock().expect("session lock");
        if state.attached.as_ref().is_some_and(|(a, _)| *a == attachment) {
            state.attached = None;
        } else {
            return;
        }
    }
    arm_grace(terminals, id, session, attachment);
}

/// In `grace`, hangs the shell up unless a socket attached after `attachment` (the count of
/// attachments when the last socket went, 0 for a shell none has attached to yet).
fn arm_grace(terminals: Terminals, id: String, session: Arc<Session>, attachment: u64) {
    tokio::spawn(async move {
        tokio::time::sleep(terminals.grace).await;
        let idle = {
            let state = session.state.lock().expect("session lock");
            state.attached.is_none() && state.exit.is_none() && state.attachments == attachment
        };
        if idle {
            tracing::info!(session = %id, site = session.site_id, "nobody came back to the shell; hanging it up");
            // Killed if it ignores SIGHUP: it would keep its place among the caps for ever.
            if let Err(err) = session.control.end(KILL_AFTER).await {
                tracing::warn!(session = %id, error = %err, "ending a shell failed");
            }
        }
    });
}

/// The websocket's `Origin` must name this very host: a page elsewhere (a member's site on a
/// subdomain included) cannot open a shell with the visitor's cookie.
fn same_origin(headers: &HeaderMap) -> bool {
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match (origin, host) {
        (Some(origin), Some(host)) => origin.split_once("://").is_some_and(|(scheme, rest)| {
            matches!(scheme, "http" | "https") && rest.eq_ignore_ascii_case(host)
        }),
        _ => false,
    }
}

fn new_session_id() -> String {
    use base64::Engine as _;
    use rand::RngCore as _;
    let mut bytes = [0u8; 18];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
