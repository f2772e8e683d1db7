//! `/api/v1/sites/{id}/terminal`: the site's terminal — the browser's websocket, opened with a
//! token instead of a session cookie (so no `Origin` to check: a browser never sends a token by
//! itself). The shell ends when the token is revoked or expires, as when a member is removed.

// utoipa's `path` macro names the `params` types by qualified paths in what it generates.
#![allow(unused_qualifications)]

use axum::{
    extract::{
        State,
        ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection},
    },
    response::Response,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    Caller, ChangeRefusals,
    extract::{ApiPath, ApiQuery},
    sites::SiteId,
};
use crate::{
    http::AppState,
    terminal::{Opening, WsQuery},
};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(terminal))
}

/// Opens a shell in the site (a websocket; the token needs write access). Binary frames carry
/// the terminal's bytes both ways; text frames carry JSON: `{"type":"resize","cols":…,"rows":…}`
/// from the client, `session` (its id, to reattach with `?session=`) and `exit` (the code, and
/// why Director ended it if it did) from the server. Asked without an upgrade, it answers why
/// it could not open one.
#[utoipa::path(
    get, path = "/api/v1/sites/{id}/terminal", tag = "sites", params(SiteId, WsQuery),
    security(("token" = [])),
    responses(
        (status = 101, description = "The websocket"),
        ChangeRefusals,
    ),
)]
async fn terminal(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiPath(SiteId { id }): ApiPath<SiteId>,
    ApiQuery(query): ApiQuery<WsQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let opening = Opening {
        actor,
        session: None,
        site_id: id,
        query,
    };
    crate::terminal::open(state, opening, upgrade).await
}
