//! The browser terminal's websocket, driven by a real websocket client against the real router,
//! a real Docker engine and a real site: echo, resize, a malformed message, reconnecting to the
//! same shell with its screen replayed, the exit code, and every refusal before the upgrade.

mod common;

use std::time::Duration;

use common::{TestServer, create_user, edge::start_edge, password, running_site};
use futures::{SinkExt as _, StreamExt as _};
use model::token::TokenAccess;
use platform::{Actor, Role, sites::Availability};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Message, client::IntoClientRequest as _, http::HeaderValue},
};

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the terminal websocket as a browser on the manager's page would.
async fn open(
    server: &TestServer,
    site: i32,
    token: Option<&str>,
    origin: &str,
    query: &str,
) -> Result<Socket, u16> {
    let mut request = format!("ws://{}/sites/{site}/terminal/ws?{query}", server.addr)
        .into_client_request()
        .unwrap();
    let headers = request.headers_mut();
    headers.insert("origin", HeaderValue::from_str(origin).unwrap());
    if let Some(token) = token {
        headers.insert(
            "cookie",
            HeaderValue::from_str(&format!("{}={token}", app::ssr::session_cookie_name(false))).unwrap(),
        );
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(other) => panic!("unexpected websocket error: {other}"),
    }
}

/// Opens the terminal websocket as a script would: `/api/v1/sites/{id}/terminal` with a token.
async fn open_with_token(server: &TestServer, site: i32, token: &str, query: &str) -> Result<Socket, u16> {
    let mut request = format!("ws://{}/api/v1/sites/{site}/terminal?{query}", server.addr)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(other) => panic!("unexpected websocket error: {other}"),
    }
}

/// The `session` message that opens every socket: (id, reattached).
async fn hello(socket: &mut Socket) -> (String, bool) {
    let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .expect("a session message within 10 s")
        .unwrap()
        .unwrap();
    let Message::Text(text) = message else {
        panic!("expected the session message, got {message:?}");
    };
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["type"], "session");
    (
        value["id"].as_str().unwrap().to_owned(),
        value["reattached"].as_bool().unwrap(),
    )
}

/// Reads terminal bytes until `wanted` shows up in them (within 15 s); returns all read.
async fn read_until(socket: &mut Socket, wanted: &str) -> String {
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !seen.contains(wanted) {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .unwrap_or_else(|_| panic!("{wanted:?} did not appear; the terminal showed:\n{seen}"))
            .expect("the socket stays open")
            .unwrap();
        match message {
            Message::Binary(bytes) => seen.push_str(&String::from_utf8_lossy(&bytes)),
            Message::Text(text) => seen.push_str(&text),
            _ => {}
        }
    }
    seen
}

async fn type_line(socket: &mut Socket, line: &str) {
    socket
        .send(Message::Binary(format!("{line}\n").into_bytes().into()))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_terminal_runs_a_shell_in_the_site_and_survives_a_dropped_socket() {
    let edge = start_edge().await;
    let platform = edge.db.platform.clone();
    let stopped = edge.stop.subscribe();
    tokio::spawn(server::workers::work(platform.clone(), stopped));
    for (name, role) in [
        ("member", Role::User),
        ("other", Role::User),
        ("admin", Role::Admin),
    ] {
        create_user(&platform, name, role).await;
    }
    let login = |name: &'static str| {
        let platform = platform.clone();
        async move {
            platform
                .login(name, &password(name), &platform::ClientInfo::default())
                .await
                .unwrap()
        }
    };
    let (member, member_session) = login("member").await;
    let (_, other_session) = login("other").await;
    let site = running_site(&platform, &member, "shellsite").await;
    let server = TestServer::start(platform.clone()).await;
    let origin = server.base.clone();
    let token = member_session.token.clone();

    // Refused before any upgrade: no session, another user, another origin.
    assert_eq!(open(&server, site.id, None, &origin, "").await.err(), Some(401));
    assert_eq!(
        open(&server, site.id, Some(&other_session.token), &origin, "")
            .await
            .err(),
        Some(404)
    );
    assert_eq!(
        open(
            &server,
            site.id,
            Some(&token),
            "http://shellsite.localhost:8081",
            ""
        )
        .await
        .err(),
        Some(403)
    );

    let mut socket = open(&server, site.id, Some(&token), &origin, "cols=80&rows=24")
        .await
        .expect("the member gets a terminal");
    let (session, reattached) = hello(&mut socket).await;
    assert!(!reattached);
    read_until(&mut socket, "shellsite:/site$ ").await;
    type_line(&mut socket, "echo hello-$((40+2)) && pwd && id -u").await;
    // The last of the three lines: the site's own uid.
    let shown = read_until(&mut socket, &format!("\r\n{}\r\n", 100_000 + site.id)).await;
    assert!(shown.contains("hello-42\r\n/site\r\n"), "{shown}");

    // A malformed control message is ignored; a resize (clamped when huge) reaches the TTY.
    socket.send(Message::Text("{not json".into())).await.unwrap();
    socket
        .send(Message::Text(r#"{"type":"resize","cols":120,"rows":40}"#.into()))
        .await
        .unwrap();
    type_line(&mut socket, "stty size").await;
    read_until(&mut socket, "40 120").await;
    socket
        .send(Message::Text(
            r#"{"type":"resize","cols":60000,"rows":60000}"#.into(),
        ))
        .await
        .unwrap();
    type_line(&mut socket, "stty size").await;
    read_until(&mut socket, "200 500").await;

    // The socket drops (no close frame): the shell lives on, and the browser comes back to it
    // with the last screen replayed and its state intact.
    type_line(&mut socket, "export MARK=kept; echo marked").await;
    read_until(&mut socket, "marked").await;
    drop(socket);
    let mut socket = open(
        &server,
        site.id,
        Some(&token),
        &origin,
        &format!("session={session}&cols=80&rows=24"),
    )
    .await
    .expect("reconnects");
    let (again, reattached) = hello(&mut socket).await;
    assert_eq!(again, session);
    assert!(reattached);
    read_until(&mut socket, "hello-42").await;
    type_line(&mut socket, "echo $MARK-again").await;
    read_until(&mut socket, "kept-again").await;

    // Another user cannot take the session over with its id.
    assert_eq!(
        open(
            &server,
            site.id,
            Some(&other_session.token),
            &origin,
            &format!("session={session}")
        )
        .await
        .err(),
        Some(404)
    );

    // The shell's exit code ends the socket.
    type_line(&mut socket, "exit 3").await;
    let ended = read_until(&mut socket, r#""type":"exit""#).await;
    assert!(ended.contains(r#""code":3"#), "{ended}");

    // Disabled by an admin: no terminal, with the reason.
    let operator = Actor::operator();
    platform
        .set_availability(Some(&operator), site.id, Availability::Disabled, "a test")
        .await
        .unwrap();
    assert_eq!(
        open(&server, site.id, Some(&token), &origin, "").await.err(),
        Some(409)
    );
    edge.stop.send(true).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_terminal_ends_within_seconds_of_its_access_going() {
    let edge = start_edge().await;
    let platform = edge.db.platform.clone();
    edge.start_workers();
    let (owner, _) = common::signed_in_user(&platform, "owner", Role::User).await;
    let (helper, helper_session) = common::signed_in_user(&platform, "helper", Role::User).await;
    let (_, admin_session) = common::signed_in_user(&platform, "root", Role::Admin).await;
    let site = running_site(&platform, &owner, "revoked").await;
    platform
        .add_member(Some(&owner), site.id, "helper")
        .await
        .unwrap();
    let server = TestServer::start(platform.clone()).await;
    let origin = server.base.clone();

    // A script's terminal, opened with the owner's token: a read-only token gets none, and
    // revoking the token ends the shell at once, with the reason.
    let read_only = common::api_token(&platform, &owner, TokenAccess::Read, false, None).await;
    assert_eq!(
        open_with_token(&server, site.id, &read_only, "").await.err(),
        Some(403)
    );
    let writer = common::api_token(&platform, &owner, TokenAccess::Write, false, None).await;
    let mut scripted = open_with_token(&server, site.id, &writer, "")
        .await
        .expect("a token with write access gets a terminal");
    let (scripted_id, _) = hello(&mut scripted).await;
    read_until(&mut scripted, "revoked:/site$ ").await;
    type_line(&mut scripted, "echo scripted-$((6*7))").await;
    read_until(&mut scripted, "scripted-42").await;
    // Its session cannot be taken over by the read-only token.
    let again = format!("session={scripted_id}");
    assert_eq!(
        open_with_token(&server, site.id, &read_only, &again).await.err(),
        Some(403)
    );
    // Nor by another token that may write: it gets a shell of its own, not this one (whose
    // guard watches the token that opened it).
    let another = common::api_token(&platform, &owner, TokenAccess::Write, false, None).await;
    let mut elsewhere = open_with_token(&server, site.id, &another, &again).await.unwrap();
    let (own_id, reattached) = hello(&mut elsewhere).await;
    assert!(!reattached);
    assert_ne!(own_id, scripted_id);
    drop(elsewhere);
    let token_id = platform
        .my_tokens(Some(&owner))
        .await
        .unwrap()
        .into_iter()
        .find(|t| writer.starts_with(&t.hint))
        .map(|t| t.id)
        .unwrap();
    let revoked = tokio::time::Instant::now();
    platform.revoke_token(Some(&owner), token_id).await.unwrap();
    let ended = read_until(&mut scripted, r#""type":"exit""#).await;
    assert!(ended.contains("revoked"), "{ended}");
    assert!(revoked.elapsed() < Duration::from_secs(10));
    assert_eq!(
        open_with_token(&server, site.id, &writer, "").await.err(),
        Some(401)
    );

    // Two terminals: the helper's, and an admin's.
    let mut helpers = open(&server, site.id, Some(&helper_session.token), &origin, "")
        .await
        .expect("the helper gets a terminal");
    hello(&mut helpers).await;
    read_until(&mut helpers, "revoked:/site$ ").await;
    let mut admins = open(&server, site.id, Some(&admin_session.token), &origin, "")
        .await
        .expect("an admin gets a terminal");
    hello(&mut admins).await;
    read_until(&mut admins, "revoked:/site$ ").await;

    // The helper's shell ignores hang-ups, and would leave a mark if it outlived its access.
    type_line(
        &mut helpers,
        "trap '' HUP; echo trapped; sleep 5; touch public/survived",
    )
    .await;
    read_until(&mut helpers, "trapped").await;
    // The helper is removed from the site: their shell ends, with the reason, within seconds.
    // The site's terminal container is made anew (nothing the helper left running survives),
    // so the admin's shell ends too, and a new one starts at once.
    let removed = tokio::time::Instant::now();
    platform
        .remove_member(Some(&owner), site.id, helper.user_id)
        .await
        .unwrap();
    let ended = read_until(&mut helpers, r#""type":"exit""#).await;
    assert!(ended.contains("no longer a member"), "{ended}");
    assert!(removed.elapsed() < Duration::from_secs(10));
    read_until(&mut admins, r#""type":"exit""#).await;
    let mut admins = open(&server, site.id, Some(&admin_session.token), &origin, "")
        .await
        .expect("the admin opens a new terminal");
    hello(&mut admins).await;
    read_until(&mut admins, "revoked:/site$ ").await;
    type_line(&mut admins, "echo still-$((1+1))").await;
    read_until(&mut admins, "still-2").await;
    // The socket was closed, and the shell (which trapped SIGHUP) was killed before its mark.
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(message)) = helpers.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the helper's socket is closed");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let dir = edge.runtime.borrow().clone().unwrap().directory(&site);
    assert!(
        !dir.join("public/survived").exists(),
        "the trapping shell was killed"
    );

    // The site disabled: the admin's shell ends too, with its reason.
    platform
        .set_availability(
            Some(&Actor::operator()),
            site.id,
            Availability::Disabled,
            "a test",
        )
        .await
        .unwrap();
    let ended = read_until(&mut admins, r#""type":"exit""#).await;
    assert!(ended.contains("disabled"), "{ended}");
    edge.stop.send(true).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shell_whose_socket_never_attached_is_hung_up_and_shells_are_capped() {
    let edge = start_edge().await;
    let platform = edge.db.platform.clone();
    edge.start_workers();
    let (owner, session) = common::signed_in_user(&platform, "capped", Role::User).await;
    let site = running_site(&platform, &owner, "capped").await;
    let terminals = server::terminal::Terminals::new(Duration::from_secs(2));
    let server = TestServer::start_with_terminals(platform.clone(), terminals.clone()).await;

    // A client that asks for the upgrade and goes away before reading the 101: the shell was
    // started for nobody. It is hung up after the grace period like a dropped one.
    {
        use tokio::io::AsyncWriteExt as _;
        let mut raw = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let request = format!(
            "GET /sites/{}/terminal/ws HTTP/1.1\r\nHost: {}\r\nOrigin: {}\r\nCookie: {}={}\r\n\
             Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            site.id,
            server.addr,
            server.base,
            app::ssr::session_cookie_name(false),
            session.token
        );
        raw.write_all(request.as_bytes()).await.unwrap();
        // Gone while the shell starts, with a reset, nothing read: the server's 101 cannot be
        // written. (A reset at once would discard the request unread.) (The
        // deprecation is about a linger that blocks on drop; a zero linger never does.)
        #[allow(deprecated)]
        raw.set_linger(Some(Duration::ZERO)).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let mut started = false;
    for _ in 0..100 {
        if terminals.count() > 0 {
            started = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(started, "the shell was started");
    let mut gone = false;
    for _ in 0..150 {
        if terminals.count() == 0 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        gone,
        "a shell nobody attached to is hung up after the grace period"
    );

    // At most so many shells per user: the next is refused with the reason.
    let mut open_ones = Vec::new();
    for _ in 0..server::terminal::MAX_SHELLS_PER_USER {
        let mut socket = open(&server, site.id, Some(&session.token), &server.base, "")
            .await
            .expect("within the cap");
        hello(&mut socket).await;
        open_ones.push(socket);
    }
    assert_eq!(
        open(&server, site.id, Some(&session.token), &server.base, "")
            .await
            .err(),
        Some(429)
    );
    edge.stop.send(true).unwrap();
}
