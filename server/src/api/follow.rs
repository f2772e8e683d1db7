//! What the API streams as Server-Sent Events: an operation's progress until it ends, and a
//! site's output as it is written.

// utoipa's `path` macro names the `params` types by qualified paths in what it generates.
#![allow(unused_qualifications)]

use std::{convert::Infallible, time::Duration};

use axum::{
    Json,
    extract::State,
    response::sse::{Event, KeepAlive, Sse},
};
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt as _};
use platform::sites::{LogEntry, OperationState};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    Answer, Caller, Refusals,
    extract::{ApiPath, ApiQuery},
    sites::{OperationId, OperationJson, SiteId},
};
use crate::http::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(follow_operation))
        .routes(routes!(site_logs))
        .routes(routes!(follow_site_logs))
}

/// One Server-Sent Event, as a client reads it: its name and its data (JSON text).
#[derive(Debug, Serialize, ToSchema)]
pub struct EventJson {
    /// `operation` or `gone`; `line` or `error`.
    event: String,
    /// The event's JSON (an OperationJson, a LogJson), or the error's words.
    data: String,
}

/// How often a followed operation is looked at again.
const OPERATION_POLL: Duration = Duration::from_millis(500);

/// How often a stream asks again whether its caller may still have it (a token revoked, an
/// account deactivated, a member removed end it).
const RECHECK: Duration = Duration::from_secs(5);

/// Streams open at once: 256 in all, 8 for one user (each holds a database connection now and
/// then, or a log stream from the engine).
static STREAMS: crate::places::Places = crate::places::Places::new(256, 8);

/// A place for one more stream of `actor`'s, or the answer to come back later.
fn stream_place(actor: &platform::Actor) -> Answer<crate::places::Place> {
    STREAMS
        .take(actor.user_id)
        .ok_or(super::Problem(app::AppError::Throttled { seconds: 5 }))
}

/// Ends when `actor` may no longer see site `site`.
async fn access_lost(platform: platform::Platform, actor: platform::Actor, site: i32) {
    loop {
        tokio::time::sleep(RECHECK).await;
        let still = match platform.refreshed(&actor).await {
            Ok(Some(now)) => !matches!(
                platform.site(Some(&now), site).await,
                Err(platform::Error::NotFound(_)
                    | platform::Error::Forbidden
                    | platform::Error::TokenRefused(_))
            ),
            Ok(None) => false,
            // The database not answering is no proof either way: asked again next time.
            Err(_) => true,
        };
        if !still {
            return;
        }
    }
}

/// Follows an operation: an `operation` event with it whenever it changes, the last once it
/// is done or failed, after which the stream ends. A site's deletion ends with a `gone` event
/// instead: once done, it forgets the site and its operations.
#[utoipa::path(
    get, path = "/api/v1/operations/{id}/follow", tag = "sites", params(OperationId),
    security(("token" = [])),
    responses(
        (status = 200, description = "`operation` events, each an OperationJson", content_type = "text/event-stream", body = EventJson),
        Refusals,
    ),
)]
async fn follow_operation(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(OperationId { id }): ApiPath<OperationId>,
) -> Answer<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let platform = state.platform().clone();
    // Asked once before the stream starts: a caller who may not see it gets a problem, not an
    // empty stream.
    let first = platform.operation(Some(&actor), id).await?;
    let place = stream_place(&actor)?;
    let events = futures::stream::unfold(
        (Some(first), String::new(), false),
        move |(mut next, last, ended)| {
            let (platform, actor) = (platform.clone(), actor.clone());
            async move {
                if ended {
                    return None;
                }
                loop {
                    let record = match next.take() {
                        Some(record) => record,
                        None => {
                            tokio::time::sleep(OPERATION_POLL).await;
                            // With the caller's credentials as they stand now (revoked: the stream ends).
                            let actor = platform.refreshed(&actor).await.ok().flatten()?;
                            // Read again with the caller's rights. A site's deletion, once done,
                            // forgets the site with its operations: that end is said as `gone`.
                            match platform.operation(Some(&actor), id).await {
                                Ok(record) => record,
                                Err(platform::Error::NotFound(_)) => {
                                    let event = Event::default().event("gone").data(id.to_string());
                                    return Some((Ok(event), (None, last, true)));
                                }
                                Err(_) => return None,
                            }
                        }
                    };
                    let ended = matches!(record.state, OperationState::Done | OperationState::Failed);
                    let json = serde_json::to_string(&OperationJson::from(record)).unwrap_or_default();
                    if json != last {
                        let event = Event::default().event("operation").data(json.clone());
                        return Some((Ok(event), (None, json, ended)));
                    }
                }
            }
        },
    );
    // The place is held for as long as the stream lives.
    let events = events.inspect(move |_| {
        let _ = &place;
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// One line a site wrote.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogJson {
    /// When the engine received it.
    at: DateTime<Utc>,
    /// `stdout` or `stderr`.
    #[schema(example = "stdout")]
    stream: &'static str,
    text: String,
}

impl From<LogEntry> for LogJson {
    fn from(entry: LogEntry) -> Self {
        Self {
            at: entry.at,
            stream: if entry.stderr { "stderr" } else { "stdout" },
            text: entry.text,
        }
    }
}

/// How much of the output.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Lines {
    /// The newest lines (1–500, default 100).
    #[param(minimum = 1, maximum = 500)]
    lines: Option<u32>,
}

impl Lines {
    /// How many lines were asked for, checked.
    fn count(&self) -> Answer<u32> {
        match self.lines {
            None => Ok(100),
            Some(lines @ 1..=platform::sites::MAX_LOG_LINES) => Ok(lines),
            Some(_) => Err(super::Problem(app::AppError::Invalid {
                field: "lines".to_owned(),
                message: format!("Ask for 1 to {} lines.", platform::sites::MAX_LOG_LINES),
            })),
        }
    }
}

/// The newest lines a dynamic site wrote (none for a static site).
#[utoipa::path(
    get, path = "/api/v1/sites/{id}/logs", tag = "sites", params(SiteId, Lines),
    security(("token" = [])),
    responses(
        (status = 200, body = Vec<LogJson>),
        Refusals,
    ),
)]
async fn site_logs(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(SiteId { id }): ApiPath<SiteId>,
    ApiQuery(lines): ApiQuery<Lines>,
) -> Answer<Json<Vec<LogJson>>> {
    let entries = state
        .platform()
        .site_logs(Some(&actor), id, lines.count()?)
        .await?;
    Ok(Json(entries.into_iter().map(LogJson::from).collect()))
}

/// Follows a dynamic site's output: a `line` event for each line it writes, from its newest
/// `lines` on, until the caller leaves (or the site's service goes).
#[utoipa::path(
    get, path = "/api/v1/sites/{id}/logs/follow", tag = "sites", params(SiteId, Lines),
    security(("token" = [])),
    responses(
        (status = 200, description = "`line` events, each a LogJson", content_type = "text/event-stream", body = EventJson),
        Refusals,
    ),
)]
async fn follow_site_logs(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(SiteId { id }): ApiPath<SiteId>,
    ApiQuery(lines): ApiQuery<Lines>,
) -> Answer<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let platform = state.platform().clone();
    let lines = platform
        .follow_site_logs(Some(&actor), id, lines.count()?)
        .await?;
    let place = stream_place(&actor)?;
    let lines = lines.take_until(access_lost(platform, actor, id));
    let events = lines.map(move |line| {
        let _ = &place;
        Ok(match line {
            Ok(entry) => Event::default()
                .event("line")
                .data(serde_json::to_string(&LogJson::from(entry)).unwrap_or_default()),
            Err(err) => Event::default().event("error").data(err.to_string()),
        })
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
