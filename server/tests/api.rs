//! The REST API: every route it documents answers each kind of caller — no token, a browser's
//! cookie, tokens of every scope, limited, expired and revoked — as the platform's one check
//! decides (the rows are read against the OpenAPI document, so a route without one fails), and
//! what it cannot read it refuses with a problem that says why.

mod common;

use common::{TestServer, api_token, create_user, password};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _};
use model::token::TokenAccess;
use platform::{Actor, Platform, Role, api_tokens::NewToken, sites::NewSite, testing::TestDb};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Who calls.
#[derive(Debug, Clone, Copy)]
enum Who {
    /// No credentials at all.
    Anonymous,
    /// The member's browser session cookie, no token.
    Cookie,
    /// Another user's read-and-write token.
    Other,
    /// The member's read-only token.
    MemberRead,
    /// The member's read-and-write token.
    MemberWrite,
    /// The member's read-and-write token limited to another site of theirs.
    Limited,
    /// The member's token, expired.
    Expired,
    /// The member's token, revoked.
    Revoked,
    /// An admin's read-and-write token without the admin scope.
    AdminPlain,
    /// An admin's read-and-write token with the admin scope.
    Admin,
}

const WHO: [Who; 10] = [
    Who::Anonymous,
    Who::Cookie,
    Who::Other,
    Who::MemberRead,
    Who::MemberWrite,
    Who::Limited,
    Who::Expired,
    Who::Revoked,
    Who::AdminPlain,
    Who::Admin,
];

/// One request with the statuses expected from each of [`WHO`], in order.
struct Row {
    method: Method,
    /// The documented path (`{id}` as the document writes it).
    route: &'static str,
    /// The path asked, with its parameters filled in.
    path: String,
    body: Option<Value>,
    expect: [u16; 10],
}

fn row(method: Method, route: &'static str, path: String, body: Option<Value>, expect: [u16; 10]) -> Row {
    Row {
        method,
        route,
        path,
        body,
        expect,
    }
}

async fn sign_in(platform: &Platform, name: &str, role: Role) -> Actor {
    create_user(platform, name, role).await;
    platform
        .login(name, &password(name), &platform::ClientInfo::default())
        .await
        .unwrap()
        .0
}

fn static_site(name: &str) -> NewSite {
    platform::testing::static_site(name)
}

async fn sql(url: &str, statement: &str) {
    let mut conn = AsyncPgConnection::establish(url).await.unwrap();
    diesel::sql_query(statement).execute(&mut conn).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_route_answers_each_kind_of_caller_as_the_platform_decides() {
    let db = TestDb::new().await;
    let platform = &db.platform;
    let member = sign_in(platform, "member", Role::User).await;
    let other = sign_in(platform, "other", Role::User).await;
    let admin = sign_in(platform, "admin", Role::Admin).await;
    // No worker runs: the member's site stays provisioning, its create queued — so a restart or
    // serving it is a conflict past the check, and "doomed", whose deletion is queued, cannot
    // be deleted again.
    let (site, operation) = platform
        .create_site(Some(&member), static_site("guarded"))
        .await
        .unwrap();
    let (elsewhere, _) = platform
        .create_site(Some(&member), static_site("elsewhere"))
        .await
        .unwrap();
    let (doomed, _) = platform
        .create_site(Some(&member), static_site("doomed"))
        .await
        .unwrap();
    platform
        .delete_site(Some(&member), doomed.id, "doomed")
        .await
        .unwrap();

    let expired = api_token(platform, &member, TokenAccess::Write, false, None).await;
    sql(
        &db.url,
        "UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE id = (SELECT max(id) FROM api_tokens)",
    )
    .await;
    let revoked = api_token(platform, &member, TokenAccess::Write, false, None).await;
    let revoked_id = platform.my_tokens(Some(&member)).await.unwrap()[0].id;
    platform.revoke_token(Some(&member), revoked_id).await.unwrap();
    let bearers = [
        None,
        None,
        Some(api_token(platform, &other, TokenAccess::Write, false, None).await),
        Some(api_token(platform, &member, TokenAccess::Read, false, None).await),
        Some(api_token(platform, &member, TokenAccess::Write, false, None).await),
        Some(
            api_token(
                platform,
                &member,
                TokenAccess::Write,
                false,
                Some(vec![elsewhere.id]),
            )
            .await,
        ),
        Some(expired),
        Some(revoked),
        Some(api_token(platform, &admin, TokenAccess::Write, false, None).await),
        Some(api_token(platform, &admin, TokenAccess::Write, true, None).await),
    ];
    let server = TestServer::start(platform.clone()).await;
    let browser = server.signed_in("member", &password("member")).await;
    let plain = reqwest::Client::new();

    let (id, doomed) = (site.id, doomed.id);
    let rows = [
        // Anyone with a live token lists their own sites (a limited token: its own ones).
        row(
            Method::GET,
            "/api/v1/sites",
            "/api/v1/sites".into(),
            None,
            [401, 401, 200, 200, 200, 200, 401, 401, 200, 200],
        ),
        // Every site: admins' tokens with the admin scope only.
        row(
            Method::GET,
            "/api/v1/sites",
            "/api/v1/sites?all=true".into(),
            None,
            [401, 401, 403, 403, 403, 403, 401, 401, 403, 200],
        ),
        // Creating needs write, and reaches past any site a limited token has; the name is bad.
        row(
            Method::POST,
            "/api/v1/sites",
            "/api/v1/sites".into(),
            Some(json!({"name": "-bad-", "kind": "static"})),
            [401, 401, 400, 403, 400, 403, 401, 401, 400, 400],
        ),
        // Another user learns nothing of the site (404), an admin without the scope neither; a
        // token limited to another site is told so.
        row(
            Method::GET,
            "/api/v1/sites/{id}",
            format!("/api/v1/sites/{id}"),
            None,
            [401, 401, 404, 200, 200, 403, 401, 401, 404, 200],
        ),
        row(
            Method::DELETE,
            "/api/v1/sites/{id}",
            format!("/api/v1/sites/{doomed}"),
            None,
            [401, 401, 404, 403, 409, 403, 401, 401, 404, 409],
        ),
        row(
            Method::POST,
            "/api/v1/sites/{id}/restart",
            format!("/api/v1/sites/{id}/restart"),
            None,
            [401, 401, 404, 403, 409, 403, 401, 401, 404, 409],
        ),
        row(
            Method::PUT,
            "/api/v1/sites/{id}/served",
            format!("/api/v1/sites/{id}/served"),
            Some(json!({"served": true})),
            [401, 401, 404, 403, 409, 403, 401, 401, 404, 409],
        ),
        row(
            Method::GET,
            "/api/v1/sites/{id}/operations",
            format!("/api/v1/sites/{id}/operations"),
            None,
            [401, 401, 404, 200, 200, 403, 401, 401, 404, 200],
        ),
        row(
            Method::GET,
            "/api/v1/operations/{id}",
            format!("/api/v1/operations/{operation}"),
            None,
            [401, 401, 404, 200, 200, 403, 401, 401, 404, 200],
        ),
        row(
            Method::GET,
            "/api/v1/operations/{id}/follow",
            format!("/api/v1/operations/{operation}/follow"),
            None,
            [401, 401, 404, 200, 200, 403, 401, 401, 404, 200],
        ),
        // A static site writes no output: its lines are none, and following them ends at once.
        row(
            Method::GET,
            "/api/v1/sites/{id}/logs",
            format!("/api/v1/sites/{id}/logs"),
            None,
            [401, 401, 404, 200, 200, 403, 401, 401, 404, 200],
        ),
        row(
            Method::GET,
            "/api/v1/sites/{id}/logs/follow",
            format!("/api/v1/sites/{id}/logs/follow"),
            None,
            [401, 401, 404, 200, 200, 403, 401, 401, 404, 200],
        ),
        row(
            Method::GET,
            "/api/v1/sites/{id}/members",
            format!("/api/v1/sites/{id}/members"),
            None,
            [401, 401, 404, 200, 200, 403, 401, 401, 404, 200],
        ),
        // A member added keeps their access whatever becomes of the token: no token adds one.
        row(
            Method::POST,
            "/api/v1/sites/{id}/members",
            format!("/api/v1/sites/{id}/members"),
            Some(json!({"username": "nobody"})),
            [401, 401, 404, 403, 403, 403, 401, 401, 404, 403],
        ),
        // The member is the site's only one: removing them is refused past the check.
        row(
            Method::DELETE,
            "/api/v1/sites/{id}/members/{user}",
            format!("/api/v1/sites/{id}/members/{}", member.user_id),
            None,
            [401, 401, 404, 403, 409, 403, 401, 401, 404, 409],
        ),
        row(
            Method::GET,
            "/api/v1/sites/{id}/domains",
            format!("/api/v1/sites/{id}/domains"),
            None,
            [401, 401, 404, 200, 200, 403, 401, 401, 404, 200],
        ),
        row(
            Method::POST,
            "/api/v1/sites/{id}/domains",
            format!("/api/v1/sites/{id}/domains"),
            Some(json!({"host": "not a host"})),
            [401, 401, 404, 403, 400, 403, 401, 401, 404, 400],
        ),
        row(
            Method::DELETE,
            "/api/v1/sites/{id}/domains/{domain}",
            format!("/api/v1/sites/{id}/domains/999999"),
            None,
            [401, 401, 404, 403, 404, 403, 401, 401, 404, 404],
        ),
        row(
            Method::POST,
            "/api/v1/sites/{id}/domains/{domain}/verify",
            format!("/api/v1/sites/{id}/domains/999999/verify"),
            None,
            [401, 401, 404, 403, 404, 403, 401, 401, 404, 404],
        ),
        // Files: past the check, this server has no engine to reach them through (503).
        row(
            Method::GET,
            "/api/v1/sites/{id}/files",
            format!("/api/v1/sites/{id}/files?path=public"),
            None,
            [401, 401, 404, 503, 503, 403, 401, 401, 404, 503],
        ),
        row(
            Method::DELETE,
            "/api/v1/sites/{id}/files",
            format!("/api/v1/sites/{id}/files?path=x"),
            None,
            [401, 401, 404, 403, 503, 403, 401, 401, 404, 503],
        ),
        row(
            Method::GET,
            "/api/v1/sites/{id}/files/download",
            format!("/api/v1/sites/{id}/files/download?path=x"),
            None,
            [401, 401, 404, 503, 503, 403, 401, 401, 404, 503],
        ),
        row(
            Method::POST,
            "/api/v1/sites/{id}/files/upload",
            format!("/api/v1/sites/{id}/files/upload?path="),
            None,
            [401, 401, 404, 403, 503, 403, 401, 401, 404, 503],
        ),
        row(
            Method::POST,
            "/api/v1/sites/{id}/files/move",
            format!("/api/v1/sites/{id}/files/move"),
            Some(json!({"from": "a", "to": "b"})),
            [401, 401, 404, 403, 503, 403, 401, 401, 404, 503],
        ),
        row(
            Method::POST,
            "/api/v1/sites/{id}/files/folder",
            format!("/api/v1/sites/{id}/files/folder"),
            Some(json!({"path": "new"})),
            [401, 401, 404, 403, 503, 403, 401, 401, 404, 503],
        ),
        // The terminal asked without an upgrade: past the check, told it is for a websocket.
        row(
            Method::GET,
            "/api/v1/sites/{id}/terminal",
            format!("/api/v1/sites/{id}/terminal"),
            None,
            [401, 401, 404, 403, 400, 403, 401, 401, 404, 400],
        ),
        row(
            Method::GET,
            "/api/v1/sites/{id}/certificates",
            format!("/api/v1/sites/{id}/certificates"),
            None,
            [401, 401, 404, 200, 200, 403, 401, 401, 404, 200],
        ),
        row(
            Method::GET,
            "/api/v1/images",
            "/api/v1/images".into(),
            None,
            [401, 401, 200, 200, 200, 200, 401, 401, 200, 200],
        ),
        // One's own keys (not through a token limited to sites); another's (here: other's),
        // admins'.
        row(
            Method::GET,
            "/api/v1/keys",
            "/api/v1/keys".into(),
            None,
            [401, 401, 200, 200, 200, 403, 401, 401, 403, 200],
        ),
        row(
            Method::GET,
            "/api/v1/keys",
            format!("/api/v1/keys?user={}", other.user_id),
            None,
            [401, 401, 200, 403, 403, 403, 401, 401, 403, 200],
        ),
        // Admin routes: admins' tokens with the admin scope only.
        row(
            Method::GET,
            "/api/v1/users",
            "/api/v1/users".into(),
            None,
            [401, 401, 403, 403, 403, 403, 401, 401, 403, 200],
        ),
        row(
            Method::PUT,
            "/api/v1/users/{id}/active",
            format!("/api/v1/users/{}/active", other.user_id),
            Some(json!({"active": true})),
            [401, 401, 403, 403, 403, 403, 401, 401, 403, 200],
        ),
        row(
            Method::PUT,
            "/api/v1/users/{id}/quota",
            format!("/api/v1/users/{}/quota", other.user_id),
            Some(json!({"quota": 5})),
            [401, 401, 403, 403, 403, 403, 401, 401, 403, 200],
        ),
        row(
            Method::GET,
            "/api/v1/audit",
            "/api/v1/audit".into(),
            None,
            [401, 401, 403, 403, 403, 403, 401, 401, 403, 200],
        ),
        row(
            Method::GET,
            "/api/v1/certificates/problems",
            "/api/v1/certificates/problems".into(),
            None,
            [401, 401, 403, 403, 403, 403, 401, 401, 403, 200],
        ),
        // The site's limits out of range: refused past the check.
        row(
            Method::PUT,
            "/api/v1/sites/{id}/limits",
            format!("/api/v1/sites/{id}/limits"),
            Some(json!({"cpu_millis": 0, "memory_mb": 256, "body_limit_mb": 10})),
            [401, 401, 403, 403, 403, 403, 401, 401, 403, 400],
        ),
        // Disabling needs a reason.
        row(
            Method::PUT,
            "/api/v1/sites/{id}/availability",
            format!("/api/v1/sites/{id}/availability"),
            Some(json!({"availability": "disabled"})),
            [401, 401, 403, 403, 403, 403, 401, 401, 403, 400],
        ),
        // The site is still being made: nothing to fix yet.
        row(
            Method::POST,
            "/api/v1/sites/{id}/fix",
            format!("/api/v1/sites/{id}/fix"),
            None,
            [401, 401, 403, 403, 403, 403, 401, 401, 403, 409],
        ),
        // Databases: this server has no database servers (503), and the site has none (404).
        row(
            Method::GET,
            "/api/v1/sites/{id}/databases",
            format!("/api/v1/sites/{id}/databases"),
            None,
            [401, 401, 404, 200, 200, 403, 401, 401, 404, 200],
        ),
        row(
            Method::POST,
            "/api/v1/sites/{id}/databases",
            format!("/api/v1/sites/{id}/databases"),
            Some(json!({"kind": "postgresql"})),
            [401, 401, 404, 403, 503, 403, 401, 401, 404, 503],
        ),
        row(
            Method::DELETE,
            "/api/v1/sites/{id}/databases/{kind}",
            format!("/api/v1/sites/{id}/databases/mysql"),
            None,
            [401, 401, 404, 403, 404, 403, 401, 401, 404, 404],
        ),
        row(
            Method::POST,
            "/api/v1/sites/{id}/databases/{kind}/reveal",
            format!("/api/v1/sites/{id}/databases/mysql/reveal"),
            None,
            [401, 401, 404, 403, 404, 403, 401, 401, 404, 404],
        ),
        row(
            Method::POST,
            "/api/v1/sites/{id}/databases/{kind}/rotate",
            format!("/api/v1/sites/{id}/databases/mysql/rotate"),
            None,
            [401, 401, 404, 403, 404, 403, 401, 401, 404, 404],
        ),
        row(
            Method::POST,
            "/api/v1/sites/{id}/databases/{kind}/sql",
            format!("/api/v1/sites/{id}/databases/mysql/sql"),
            Some(json!({"sql": "SELECT 1"})),
            [401, 401, 404, 403, 404, 403, 401, 401, 404, 404],
        ),
        // Builds and variables: the site is static — it has no image of its own to build, nor a
        // service to give variables to (409 past the check); this build does not exist.
        row(
            Method::GET,
            "/api/v1/sites/{id}/builds",
            format!("/api/v1/sites/{id}/builds"),
            None,
            [401, 401, 404, 409, 409, 403, 401, 401, 404, 409],
        ),
        row(
            Method::POST,
            "/api/v1/sites/{id}/builds",
            format!("/api/v1/sites/{id}/builds"),
            None,
            [401, 401, 404, 403, 409, 403, 401, 401, 404, 409],
        ),
        row(
            Method::GET,
            "/api/v1/sites/{id}/builds/{build}",
            format!("/api/v1/sites/{id}/builds/999999"),
            None,
            [401, 401, 404, 404, 404, 403, 401, 401, 404, 404],
        ),
        row(
            Method::GET,
            "/api/v1/sites/{id}/variables",
            format!("/api/v1/sites/{id}/variables"),
            None,
            [401, 401, 404, 200, 200, 403, 401, 401, 404, 200],
        ),
        row(
            Method::PUT,
            "/api/v1/sites/{id}/variables/{name}",
            format!("/api/v1/sites/{id}/variables/GREETING"),
            Some(json!({"value": "hello"})),
            [401, 401, 404, 403, 409, 403, 401, 401, 404, 409],
        ),
        row(
            Method::DELETE,
            "/api/v1/sites/{id}/variables/{name}",
            format!("/api/v1/sites/{id}/variables/GREETING"),
            None,
            [401, 401, 404, 403, 409, 403, 401, 401, 404, 409],
        ),
        // Requests: here sites are made, not requested (409 past the check); reviewing is for
        // approvers and admins; this request does not exist. A token limited to some sites
        // reaches nothing of its owner's beyond them (requests, inbox, keys), and an admin's
        // own records (which hold every site's notices) need the admin scope.
        row(
            Method::GET,
            "/api/v1/requests",
            "/api/v1/requests".into(),
            None,
            [401, 401, 200, 200, 200, 403, 401, 401, 403, 200],
        ),
        row(
            Method::GET,
            "/api/v1/requests",
            "/api/v1/requests?scope=review".into(),
            None,
            [401, 401, 403, 403, 403, 403, 401, 401, 403, 200],
        ),
        row(
            Method::POST,
            "/api/v1/requests",
            "/api/v1/requests".into(),
            Some(json!({"name": "-bad-", "kind": "static", "image": "static", "reason": "x"})),
            [401, 401, 409, 403, 409, 403, 401, 401, 409, 409],
        ),
        row(
            Method::GET,
            "/api/v1/requests/{id}",
            "/api/v1/requests/999999".into(),
            None,
            [401, 401, 404, 404, 404, 403, 401, 401, 403, 404],
        ),
        row(
            Method::POST,
            "/api/v1/requests/{id}/approve",
            "/api/v1/requests/999999/approve".into(),
            Some(json!({})),
            [401, 401, 404, 403, 404, 403, 401, 401, 404, 404],
        ),
        row(
            Method::POST,
            "/api/v1/requests/{id}/deny",
            "/api/v1/requests/999999/deny".into(),
            Some(json!({"comment": "no"})),
            [401, 401, 404, 403, 404, 403, 401, 401, 404, 404],
        ),
        row(
            Method::POST,
            "/api/v1/requests/{id}/withdraw",
            "/api/v1/requests/999999/withdraw".into(),
            None,
            [401, 401, 404, 403, 404, 403, 401, 401, 404, 404],
        ),
        row(
            Method::GET,
            "/api/v1/notifications",
            "/api/v1/notifications".into(),
            None,
            [401, 401, 200, 200, 200, 403, 401, 401, 403, 200],
        ),
        row(
            Method::POST,
            "/api/v1/notifications/read",
            "/api/v1/notifications/read".into(),
            Some(json!({})),
            [401, 401, 204, 403, 204, 403, 401, 401, 403, 204],
        ),
        row(
            Method::GET,
            "/api/v1/me",
            "/api/v1/me".into(),
            None,
            [401, 401, 200, 200, 200, 200, 401, 401, 200, 200],
        ),
        row(
            Method::GET,
            "/api/v1/tokens",
            "/api/v1/tokens".into(),
            None,
            [401, 401, 200, 200, 200, 200, 401, 401, 200, 200],
        ),
        // Revoking needs write, and is one's own (an admin's with the scope: anyone's); this
        // token does not exist.
        row(
            Method::DELETE,
            "/api/v1/tokens/{id}",
            "/api/v1/tokens/999999".into(),
            None,
            [401, 401, 404, 403, 404, 403, 401, 401, 404, 404],
        ),
    ];
    let mut wrong = Vec::new();
    for row in &rows {
        for (n, who) in WHO.iter().enumerate() {
            let client = if matches!(who, Who::Cookie) {
                &browser
            } else {
                &plain
            };
            let mut request = client.request(row.method.clone(), server.url(&row.path));
            if let Some(bearer) = &bearers[n] {
                request = request.bearer_auth(bearer);
            }
            if let Some(body) = &row.body {
                request = request.json(body);
            }
            let response = request.send().await.unwrap();
            let got = response.status().as_u16();
            if got >= 400 {
                let kind = response
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                assert_eq!(
                    kind, "application/problem+json",
                    "{} {} as {who:?}",
                    row.method, row.path
                );
                let problem: Value = response.json().await.unwrap();
                assert_eq!(problem["status"], got, "{problem}");
                assert!(
                    problem["type"]
                        .as_str()
                        .is_some_and(|t| t.starts_with("urn:director:problem:")),
                    "{problem}"
                );
            }
            if got != row.expect[n] {
                wrong.push(format!(
                    "{} {} as {who:?}: {got}, expected {}",
                    row.method, row.path, row.expect[n]
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "wrong answers:\n{}", wrong.join("\n"));

    // Every route the document lists has a row, and every row a documented route.
    let document = serde_json::to_value(server::api::document()).unwrap();
    let mut documented: Vec<String> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|key| ["get", "post", "put", "patch", "delete"].contains(&key.as_str()))
                .map(move |method| format!("{} {path}", method.to_uppercase()))
        })
        .collect();
    let mut covered: Vec<String> = rows.iter().map(|r| format!("{} {}", r.method, r.route)).collect();
    documented.sort();
    covered.sort();
    covered.dedup();
    assert_eq!(
        covered, documented,
        "every documented route, and only those, has a row"
    );
    // Every schema the document refers to, it holds.
    fn refs(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    found.push(target.clone());
                }
                map.values().for_each(|v| refs(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    refs(&document, &mut found);
    let dangling: Vec<&String> = found
        .iter()
        .filter(|target| {
            let name = target.trim_start_matches("#/components/schemas/");
            document["components"]["schemas"].get(name).is_none()
        })
        .collect();
    assert!(dangling.is_empty(), "references to nothing: {dangling:?}");
    // The document served is the one the rows were checked against.
    let served: Value = plain
        .get(server.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(served, document);
    assert!(
        served["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")),
        "{}",
        served["openapi"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_does_what_its_scopes_say_and_stops_at_once_when_revoked() {
    let db = TestDb::new().await;
    let platform = &db.platform;
    let ann = sign_in(platform, "ann", Role::User).await;
    let server = TestServer::start(platform.clone()).await;
    let client = reqwest::Client::new();
    let secret = api_token(platform, &ann, TokenAccess::Write, false, None).await;
    assert!(secret.starts_with("dpat_"), "recognisable");

    // A site made through the API is the caller's, and listed by name a page at a time.
    for name in ["alpha", "beta", "gamma"] {
        let made = client
            .post(server.url("/api/v1/sites"))
            .bearer_auth(&secret)
            .json(&json!({"name": name, "kind": "static", "image": "busybox"}))
            .send()
            .await
            .unwrap();
        assert_eq!(made.status(), StatusCode::ACCEPTED);
        let made: Value = made.json().await.unwrap();
        assert_eq!(made["site"]["name"], name);
        assert!(made["operation"].as_i64().is_some(), "{made}");
    }
    let page = |query: &'static str| {
        let (client, url, secret) = (
            client.clone(),
            server.url(&format!("/api/v1/sites{query}")),
            secret.clone(),
        );
        async move {
            let response = client.get(url).bearer_auth(secret).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response.json::<Value>().await.unwrap()
        }
    };
    let names = |page: &Value| -> Vec<String> {
        page["sites"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let first = page("?limit=2").await;
    assert_eq!(names(&first), ["alpha", "beta"]);
    assert_eq!(first["next"], "beta");
    let second = page("?limit=2&after=beta").await;
    assert_eq!(names(&second), ["gamma"]);
    assert!(second.get("next").is_none(), "{second}");
    assert_eq!(names(&page("?name=mm").await), ["gamma"]);
    // A huge page is clamped, not refused.
    assert_eq!(names(&page("?limit=1000000").await).len(), 3);

    // Its use is recorded; revoked, it stops at once.
    let listed = platform.my_tokens(Some(&ann)).await.unwrap();
    assert!(listed[0].last_used.is_some(), "{listed:?}");
    platform.revoke_token(Some(&ann), listed[0].id).await.unwrap();
    let refused = client
        .get(server.url("/api/v1/sites"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(refused.headers()["www-authenticate"], "Bearer");

    // Following an operation ends once the token is revoked (no worker runs: alpha's create
    // stays queued).
    let alpha = platform.site_by_name(Some(&ann), "alpha").await.unwrap();
    let operation = platform.site_operations(Some(&ann), alpha.id).await.unwrap()[0].id;
    let follower = api_token(platform, &ann, TokenAccess::Read, false, None).await;
    let stream = client
        .get(server.url(&format!("/api/v1/operations/{operation}/follow")))
        .bearer_auth(&follower)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let follower_id = platform.my_tokens(Some(&ann)).await.unwrap()[0].id;
    platform.revoke_token(Some(&ann), follower_id).await.unwrap();
    let ended = tokio::time::timeout(std::time::Duration::from_secs(5), stream.bytes()).await;
    assert!(ended.is_ok(), "the stream ended with the token");

    // A token limited to some sites sees itself only among its owner's tokens.
    let limited = api_token(platform, &ann, TokenAccess::Read, false, Some(vec![alpha.id])).await;
    let seen: Value = client
        .get(server.url("/api/v1/tokens"))
        .bearer_auth(&limited)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen.as_array().unwrap().len(), 1, "{seen}");

    // A token never makes another, nor changes how anyone signs in.
    let reader = api_token(platform, &ann, TokenAccess::Write, false, None).await;
    let as_token = platform.token_actor(&reader, "").await.unwrap().unwrap();
    let refused = platform
        .create_token(
            Some(&as_token),
            NewToken {
                name: "child".to_owned(),
                days: None,
                access: TokenAccess::Write,
                admin: false,
                sites: None,
            },
        )
        .await;
    assert!(
        matches!(refused, Err(platform::Error::TokenRefused(_))),
        "{refused:?}"
    );
    let refused = platform
        .add_ssh_key(Some(&as_token), "k", "ssh-ed25519 AAAA")
        .await;
    assert!(
        matches!(refused, Err(platform::Error::TokenRefused(_))),
        "{refused:?}"
    );

    // An admin's token without the admin scope has none of an admin's powers, in any check:
    // a wildcard domain (admins only) is refused on the admin's own site.
    let boss = sign_in(platform, "boss", Role::Admin).await;
    let (own, _) = platform
        .create_site(Some(&boss), static_site("bosses"))
        .await
        .unwrap();
    let plain = api_token(platform, &boss, TokenAccess::Write, false, None).await;
    let wildcard = |bearer: String| {
        client
            .post(server.url(&format!("/api/v1/sites/{}/domains", own.id)))
            .bearer_auth(bearer)
            .json(&json!({"host": "*.wild.example"}))
            .send()
    };
    assert_eq!(wildcard(plain).await.unwrap().status(), StatusCode::BAD_REQUEST);
    let scoped = api_token(platform, &boss, TokenAccess::Write, true, None).await;
    assert_eq!(wildcard(scoped).await.unwrap().status(), StatusCode::CREATED);

    // What a token may be made with: a member's never carries admin powers, a lifetime is at
    // most a year, a limit names only the maker's sites.
    let ask = |days: Option<u32>, admin: bool, sites: Option<Vec<i32>>| NewToken {
        name: "t".to_owned(),
        days,
        access: TokenAccess::Read,
        admin,
        sites,
    };
    for (new, field) in [
        (ask(None, true, None), "admin"),
        (ask(Some(366), false, None), "days"),
        (ask(Some(0), false, None), "days"),
        (ask(None, false, Some(vec![999_999])), "sites"),
        (ask(None, false, Some(vec![])), "sites"),
    ] {
        let refused = platform.create_token(Some(&ann), new).await;
        assert!(
            matches!(&refused, Err(platform::Error::Invalid { field: f, .. }) if *f == field),
            "{field}: {refused:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_pages_through_users_and_the_audit_log_by_cursor() {
    let db = TestDb::new().await;
    let platform = &db.platform;
    let admin = sign_in(platform, "chief", Role::Admin).await;
    for name in ["ann", "bob", "cy_d", "cyxd", "dee"] {
        create_user(platform, name, Role::User).await;
    }
    let token = api_token(platform, &admin, TokenAccess::Write, true, None).await;
    let server = TestServer::start(platform.clone()).await;
    let client = reqwest::Client::new();
    let get = |path: String| {
        let request = client.get(server.url(&path)).bearer_auth(&token);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            response.json::<Value>().await.unwrap()
        }
    };
    let names = |page: &Value| -> Vec<String> {
        page["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["username"].as_str().unwrap().to_owned())
            .collect()
    };

    // Two at a time, in username order, to the end.
    let mut seen = Vec::new();
    let mut path = "/api/v1/users?limit=2".to_owned();
    loop {
        let page = get(path.clone()).await;
        seen.extend(names(&page));
        match page["next"].as_str() {
            Some(next) => path = format!("/api/v1/users?limit=2&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen, ["ann", "bob", "chief", "cy_d", "cyxd", "dee"]);
    // A filter is matched as typed: `_` is no wildcard.
    assert_eq!(names(&get("/api/v1/users?name=cy_".into()).await), ["cy_d"]);

    // The audit log, newest first, one entry a page: each page older than the one before.
    let other = platform.list_users(Some(&admin)).await.unwrap();
    let bob = other.iter().find(|u| u.username == "bob").unwrap().id;
    for quota in [1, 2, 3] {
        platform
            .set_site_quota(Some(&admin), bob, Some(quota))
            .await
            .unwrap();
    }
    let first = get("/api/v1/audit?limit=1".into()).await;
    let newest = first["entries"][0]["id"].as_i64().unwrap();
    let second = get(format!("/api/v1/audit?limit=1&before={}", first["next"])).await;
    let older = second["entries"][0]["id"].as_i64().unwrap();
    assert!(older < newest, "{first} then {second}");
    assert_eq!(second["entries"].as_array().unwrap().len(), 1);

    // Deactivated, an account's tokens are revoked, not suspended: activated again, it starts
    // without them. Both changes are in the audit log.
    let eve = sign_in(platform, "eve", Role::User).await;
    let hers = api_token(platform, &eve, TokenAccess::Read, false, None).await;
    let as_eve = || client.get(server.url("/api/v1/me")).bearer_auth(&hers).send();
    assert_eq!(as_eve().await.unwrap().status(), StatusCode::OK);
    for active in [false, true] {
        let changed = client
            .put(server.url(&format!("/api/v1/users/{}/active", eve.user_id)))
            .bearer_auth(&token)
            .json(&json!({ "active": active }))
            .send()
            .await
            .unwrap();
        assert_eq!(changed.status(), StatusCode::OK);
        assert_eq!(as_eve().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
    let recent = get("/api/v1/audit?limit=2".into()).await;
    let actions: Vec<&str> = recent["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["user.activate", "user.deactivate"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_requested_through_the_api_is_reviewed_there_and_its_requester_told() {
    use platform::requests::SitePolicy;
    let db = TestDb::new().await;
    let platform = &db.platform;
    let admin = sign_in(platform, "chief", Role::Admin).await;
    let student = sign_in(platform, "student", Role::User).await;
    platform
        .set_site_policy(
            Some(&admin),
            SitePolicy {
                creation: model::request::SiteCreation::Request,
                steps: model::request::ApprovalSteps::Approver,
            },
        )
        .await
        .unwrap();
    let asks = api_token(platform, &student, TokenAccess::Write, false, None).await;
    let reviews = api_token(platform, &admin, TokenAccess::Write, true, None).await;
    let server = TestServer::start(platform.clone()).await;
    let client = reqwest::Client::new();
    let call = |method: Method, path: &str, token: &str, body: Option<Value>| {
        let mut request = client.request(method, server.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap_or(Value::Null))
        }
    };

    let (status, made) = call(
        Method::POST,
        "/api/v1/requests",
        &asks,
        Some(json!({"name": "chess-club", "kind": "static", "image": "busybox", "reason": "for the club"})),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let id = made["id"].as_i64().unwrap();
    let (_, mine) = call(Method::GET, "/api/v1/requests", &asks, None).await;
    assert_eq!(mine[0]["name"], "chess-club");
    assert_eq!(mine[0]["state"], "submitted");
    // The admin sees it to review, and approves it: the site is made.
    let (_, review) = call(Method::GET, "/api/v1/requests?scope=review", &reviews, None).await;
    assert_eq!(review[0]["id"], id);
    let (status, approved) = call(
        Method::POST,
        &format!("/api/v1/requests/{id}/approve"),
        &reviews,
        Some(json!({"comment": "have fun"})),
    )
    .await;
    assert_eq!(status, 200, "{approved}");
    let site = approved["site"].as_i64().expect("the site made");
    let (_, history) = call(Method::GET, &format!("/api/v1/requests/{id}"), &asks, None).await;
    assert_eq!(history["request"]["state"], "created");
    assert_eq!(history["request"]["site"], site);
    assert_eq!(history["steps"][1]["action"], "approve");
    assert_eq!(history["steps"][1]["comment"], "have fun");
    // The student is told, and marks it read.
    let (_, inbox) = call(Method::GET, "/api/v1/notifications", &asks, None).await;
    assert!(inbox["unread"].as_i64().unwrap() >= 1, "{inbox}");
    assert!(
        inbox["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["event"] == "site-created"),
        "{inbox}"
    );
    let (status, _) = call(Method::POST, "/api/v1/notifications/read", &asks, Some(json!({}))).await;
    assert_eq!(status, 204);
    let (_, inbox) = call(Method::GET, "/api/v1/notifications", &asks, None).await;
    assert_eq!(inbox["unread"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_api_cannot_read_it_refuses_with_the_reason() {
    let db = TestDb::new().await;
    let platform = &db.platform;
    let ann = sign_in(platform, "ann", Role::User).await;
    let (site, _) = platform
        .create_site(Some(&ann), static_site("target"))
        .await
        .unwrap();
    let secret = api_token(platform, &ann, TokenAccess::Write, false, None).await;
    let server = TestServer::start(platform.clone()).await;
    let client = reqwest::Client::new();
    let post = |body: Vec<u8>, kind: &'static str| {
        client
            .post(server.url("/api/v1/sites"))
            .bearer_auth(&secret)
            .header("content-type", kind)
            .body(body)
    };
    let problem = |response: reqwest::Response| async move {
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        (status, body["detail"].as_str().unwrap_or_default().to_owned())
    };
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            post(b"{\"name\":".to_vec(), "application/json"),
            400,
            "not what this request takes",
        ),
        (
            post(br#"{"name":"x","kind":"static"}"#.to_vec(), "text/plain"),
            400,
            "as JSON",
        ),
        (
            post(
                br#"{"name":"x","kind":"static","owner":"root"}"#.to_vec(),
                "application/json",
            ),
            400,
            "unknown field `owner`",
        ),
        (
            post(vec![b' '; 10 * 1024 * 1024], "application/json"),
            413,
            "larger than",
        ),
        (
            client.get(server.url(&format!("/api/v1/sites?token={secret}"))),
            400,
            "Authorization header",
        ),
        (
            client
                .get(server.url("/api/v1/sites?limit=many"))
                .bearer_auth(&secret),
            400,
            "",
        ),
        (
            client
                .get(server.url("/api/v1/sites?name=%25"))
                .bearer_auth(&secret),
            400,
            "letters, digits and hyphens",
        ),
        (
            client
                .get(server.url("/api/v1/sites/..%2F1"))
                .bearer_auth(&secret),
            400,
            "",
        ),
        (
            client.get(server.url("/api/v1/sites/1%00")).bearer_auth(&secret),
            400,
            "NUL",
        ),
        // PostgreSQL stores no NUL in text: refused up front, wherever it hides.
        (
            client
                .get(server.url("/api/v1/users?name=a%00"))
                .bearer_auth(&secret),
            400,
            "NUL",
        ),
        (
            post(
                br#"{"name":"a\u0000","kind":"static"}"#.to_vec(),
                "application/json",
            ),
            400,
            "NUL",
        ),
        (
            client
                .delete(server.url("/api/v1/sites/1/variables/A%00"))
                .bearer_auth(&secret),
            400,
            "NUL",
        ),
        (
            client
                .get(server.url("/api/v1/nothing/here"))
                .bearer_auth(&secret),
            404,
            "",
        ),
        (
            client
                .get(server.url("/api/v1/sites"))
                .header("authorization", "Basic YTpi"),
            401,
            "",
        ),
        (
            client
                .get(server.url("/api/v1/sites"))
                .bearer_auth("dpat_not-a-real-one"),
            401,
            "",
        ),
    ];
    for (n, (request, status, says)) in cases.into_iter().enumerate() {
        let (got, detail) = problem(request.send().await.unwrap()).await;
        assert_eq!(got, status, "case {n}: {detail}");
        assert!(detail.contains(says), "case {n}: {detail}");
    }

    // Two deletes of one site at once: one is queued, the other told it is being deleted.
    let delete = || {
        client
            .delete(server.url(&format!("/api/v1/sites/{}", site.id)))
            .bearer_auth(&secret)
            .send()
    };
    let (a, b) = tokio::join!(delete(), delete());
    let mut statuses = [a.unwrap().status().as_u16(), b.unwrap().status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [202, 409]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_past_its_allowance_is_told_when_to_come_back() {
    let db = TestDb::new().await;
    let ann = sign_in(&db.platform, "ann", Role::User).await;
    let bob = sign_in(&db.platform, "bob", Role::User).await;
    let (hers, his) = (
        api_token(&db.platform, &ann, TokenAccess::Read, false, None).await,
        api_token(&db.platform, &bob, TokenAccess::Read, false, None).await,
    );
    let one = std::num::NonZeroU32::MIN;
    let server = TestServer::start_with_api_rate(
        db.platform.clone(),
        server::api::RateLimit {
            per_second: one,
            burst: one.saturating_add(2),
            failures_per_minute: one.saturating_add(2),
        },
    )
    .await;
    let client = reqwest::Client::new();
    let ask = |token: &str| client.get(server.url("/api/v1/me")).bearer_auth(token).send();
    for _ in 0..3 {
        assert_eq!(ask(&hers).await.unwrap().status(), StatusCode::OK);
    }
    let throttled = ask(&hers).await.unwrap();
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = throttled.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    let problem: Value = throttled.json().await.unwrap();
    assert_eq!(problem["type"], "urn:director:problem:throttled");
    // Another token has its own allowance; this one has a request back a second later.
    assert_eq!(ask(&his).await.unwrap().status(), StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(ask(&hers).await.unwrap().status(), StatusCode::OK);

    // Wrong tokens from one address: three a minute are told they are wrong; past that, the
    // address waits, before any lookup — whatever token it sends next, but those seen valid
    // lately (others behind the same proxy are not shut out by a guesser).
    let made_up = format!("dpat_{}", "x".repeat(40));
    for _ in 0..4 {
        assert_eq!(ask(&made_up).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(ask(&his).await.unwrap().status(), StatusCode::OK);
    let unseen = api_token(&db.platform, &bob, TokenAccess::Read, false, None).await;
    for token in [&made_up, &unseen] {
        let shut_out = ask(token).await.unwrap();
        assert_eq!(shut_out.status(), StatusCode::TOO_MANY_REQUESTS);
        let wait: u64 = shut_out.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=20).contains(&wait), "{wait}");
    }
}
