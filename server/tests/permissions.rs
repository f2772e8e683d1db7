//! The permission matrix: every server function, called over HTTP as an anonymous visitor,
//! another user, the site's member and an admin, answers as the platform's one check decides —
//! 401 for the anonymous, 404 for a site someone may not know of, 403 for admin functions, and
//! for those allowed, the function's own answer (its success, or a conflict or a refused field
//! that proves the check was passed). No call here changes anything the next one depends on.
//! The functions are those server_fn registered and the other doors those the router is built
//! from, so none can be left out.

mod common;

use common::{TestServer, create_user, password};
use platform::{Actor, Role, sites::NewSite, testing::TestDb};
use reqwest::Method;

/// Who calls.
#[derive(Debug, Clone, Copy)]
enum Who {
    Anonymous,
    Other,
    Approver,
    Member,
    Admin,
}

const WHO: [Who; 5] = [Who::Anonymous, Who::Other, Who::Approver, Who::Member, Who::Admin];

/// One server function with the statuses expected from [anonymous, other, approver, member, admin].
struct Row {
    name: &'static str,
    form: Vec<(&'static str, String)>,
    expect: [u16; 5],
}

fn row(name: &'static str, form: &[(&'static str, &str)], expect: [u16; 5]) -> Row {
    Row {
        name,
        form: form.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        expect,
    }
}

/// One of the router's doors beside the server functions (`{id}` is the site's), with the
/// statuses expected from [anonymous, other, approver, member, admin].
struct Door {
    method: Method,
    path: &'static str,
    query: &'static str,
    expect: [u16; 5],
}

fn door(method: Method, path: &'static str, query: &'static str, expect: [u16; 5]) -> Door {
    Door {
        method,
        path,
        query,
        expect,
    }
}

/// Functions that do not act on anyone's behalf: signing in and out, the first-run setup,
/// asking who one is, changing one's own password (tested in http.rs and accounts).
const NOT_IN_MATRIX: [&str; 7] = [
    "login",
    "sign_in_options",
    "logout",
    "setup_link_valid",
    "complete_setup",
    "current_user",
    "change_password",
];

/// Every server function the server answers, by endpoint name, from server_fn's own registry
/// (what the router serves, not what some source file says): a function without a row here
/// fails this test, wherever it is defined.
fn every_server_function() -> Vec<String> {
    let mut names: Vec<String> = leptos::server_fn::axum::server_fn_paths()
        .filter_map(|(path, _)| path.strip_prefix("/fn/").map(ToOwned::to_owned))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// A server function defined here only, with no row: the proof that the matrix finds a
/// function nobody listed (it must be the one function reported missing).
#[leptos::server(prefix = "/fn", endpoint = "unlisted_probe")]
async fn unlisted_probe() -> Result<(), leptos::prelude::ServerFnError> {
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_server_function_answers_each_kind_of_caller_as_the_platform_decides() {
    let db = TestDb::new().await;
    for (name, role) in [
        ("admin", Role::Admin),
        ("member", Role::User),
        ("other", Role::User),
        ("approver", Role::Approver),
    ] {
        create_user(&db.platform, name, role).await;
    }
    let member = db
        .platform
        .login("member", &password("member"), &platform::ClientInfo::default())
        .await
        .unwrap()
        .0;
    let (site, operation) = db
        .platform
        .create_site(
            Some(&member),
            NewSite {
                name: "guarded".to_owned(),
                description: String::new(),
                purpose: "project".to_owned(),
                kind: "static".to_owned(),
                image: "busybox".to_owned(),
            },
        )
        .await
        .unwrap();
    let member_id = member.user_id.to_string();
    let id = site.id.to_string();
    let operation = operation.to_string();
    // Members request sites here: the member has asked for one, addressed to the approver.
    db.platform
        .set_site_policy(
            Some(&Actor::operator()),
            platform::requests::SitePolicy {
                creation: model::request::SiteCreation::Request,
                steps: model::request::ApprovalSteps::ApproverAndAdmin,
            },
        )
        .await
        .unwrap();
    let request = db
        .platform
        .submit_request(
            Some(&member),
            platform::requests::NewRequest {
                site: NewSite {
                    name: "asked".to_owned(),
                    description: String::new(),
                    purpose: "project".to_owned(),
                    kind: "static".to_owned(),
                    image: "busybox".to_owned(),
                },
                reason: "for the matrix".to_owned(),
                approver: "approver".to_owned(),
            },
        )
        .await
        .unwrap()
        .to_string();
    let too_long = "x".repeat(1001);
    let server = TestServer::start(db.platform.clone()).await;
    let clients = [
        server.client(),
        server.signed_in("other", &password("other")).await,
        server.signed_in("approver", &password("approver")).await,
        server.signed_in("member", &password("member")).await,
        server.signed_in("admin", &password("admin")).await,
    ];

    // Site functions: the anonymous must sign in, another user learns nothing (404), the
    // member and an admin pass the check. No worker runs, so the site stays provisioning and
    // its create operation queued: the answers past the check are conflicts or refused fields.
    let site_rows = [
        row("site_detail", &[("id", &id)], [401, 404, 404, 200, 200]),
        row("site_logs", &[("id", &id)], [401, 404, 404, 200, 200]),
        row(
            "add_member",
            &[("site", &id), ("username", "nobody")],
            [401, 404, 404, 400, 400],
        ),
        row(
            "remove_member",
            &[("site", &id), ("user", &member_id)],
            [401, 404, 404, 409, 409],
        ),
        row(
            "retry_operation",
            &[("site", &id), ("operation", &operation)],
            [401, 404, 404, 409, 409],
        ),
        row(
            "set_served",
            &[("id", &id), ("served", "false")],
            [401, 404, 404, 409, 409],
        ),
        row("restart_site", &[("id", &id)], [401, 404, 404, 409, 409]),
        row(
            "delete_site",
            &[("id", &id), ("confirm", "not-it")],
            [401, 404, 404, 400, 400],
        ),
        // No runtime here: past the check, the files are unavailable (503: Docker is not connected).
        row(
            "list_files",
            &[("site", &id), ("path", "")],
            [401, 404, 404, 503, 503],
        ),
        row(
            "open_file",
            &[("site", &id), ("path", "x")],
            [401, 404, 404, 503, 503],
        ),
        row(
            "folder_tree",
            &[("site", &id), ("path", "")],
            [401, 404, 404, 503, 503],
        ),
        row(
            "save_file",
            &[("site", &id), ("path", "x"), ("text", ""), ("version", "")],
            [401, 404, 404, 503, 503],
        ),
        row(
            "make_folder",
            &[("site", &id), ("path", "d")],
            [401, 404, 404, 503, 503],
        ),
        row(
            "move_path",
            &[("site", &id), ("from", "a"), ("to", "b")],
            [401, 404, 404, 503, 503],
        ),
        row(
            "delete_path",
            &[("site", &id), ("path", "a")],
            [401, 404, 404, 503, 503],
        ),
        row(
            "set_mode",
            &[("site", &id), ("path", "a"), ("mode", "644")],
            [401, 404, 404, 503, 503],
        ),
        // A host that is no host is refused once the check is passed; no domain is there to
        // verify or remove.
        row(
            "add_domain",
            &[("site", &id), ("host", "not a host")],
            [401, 404, 404, 400, 400],
        ),
        row(
            "verify_domain",
            &[("site", &id), ("domain", "999999")],
            [401, 404, 404, 404, 404],
        ),
        row(
            "remove_domain",
            &[("site", &id), ("domain", "999999")],
            [401, 404, 404, 404, 404],
        ),
        // Its image and environment: the site is static, so a member and an admin are told it
        // has none (409); the others never learn it exists.
        row("site_image", &[("site", &id)], [401, 404, 404, 409, 409]),
        row(
            "save_recipe",
            &[
                ("site", &id),
                ("recipe[source]", "packages"),
                ("recipe[apt]", "jq"),
                ("recipe[pip]", ""),
                ("recipe[npm]", ""),
                ("recipe[setup]", ""),
                ("recipe[dockerfile]", ""),
                ("recipe[context]", ""),
            ],
            [401, 404, 404, 409, 409],
        ),
        row("rebuild_site", &[("site", &id)], [401, 404, 404, 409, 409]),
        row("build_policy", &[], [401, 403, 403, 403, 200]),
        row(
            "set_build_policy",
            &[
                ("time_limit_s", "600"),
                ("memory_mb", "2047"),
                ("cpu_millis", "2000"),
                ("apt_rule", "any"),
                ("apt_list", ""),
            ],
            [401, 403, 403, 403, 200],
        ),
        row(
            "set_variable",
            &[("site", &id), ("name", "GREETING"), ("value", "hi")],
            [401, 404, 404, 409, 409],
        ),
        row(
            "remove_variable",
            &[("site", &id), ("name", "GREETING")],
            [401, 404, 404, 409, 409],
        ),
        // Databases: the site has none, and no runtime runs here (adding one is unavailable).
        row("site_databases", &[("site", &id)], [401, 404, 404, 200, 200]),
        row(
            "add_database",
            &[("site", &id), ("kind", "postgresql")],
            [401, 404, 404, 503, 503],
        ),
        row(
            "reveal_database",
            &[("site", &id), ("kind", "postgresql")],
            [401, 404, 404, 404, 404],
        ),
        row(
            "rotate_database_password",
            &[("site", &id), ("kind", "mysql")],
            [401, 404, 404, 404, 404],
        ),
        // The site has no such database: not found, before its name is checked.
        row(
            "delete_database",
            &[("site", &id), ("kind", "postgresql"), ("confirm", "not-it")],
            [401, 404, 404, 404, 404],
        ),
        row(
            "run_sql",
            &[("site", &id), ("kind", "postgresql"), ("sql", "SELECT 1")],
            [401, 404, 404, 404, 404],
        ),
    ];
    // Admin functions: 403 for every signed-in non-admin.
    let admin_rows = [
        row("ssh_keys", &[("user", &member_id)], [401, 403, 403, 200, 200]),
        row("admin_sites", &[("page", "0")], [401, 403, 403, 403, 200]),
        row("api_tokens", &[("everyone", "true")], [401, 403, 403, 403, 200]),
        row(
            "set_limits",
            &[
                ("id", &id),
                ("cpu_millis", "1000"),
                ("memory_mb", "1"),
                ("body_limit_mb", "8"),
            ],
            [401, 403, 403, 403, 400],
        ),
        row(
            "set_availability",
            &[("id", &id), ("availability", "enabled"), ("reason", "")],
            [401, 403, 403, 403, 409],
        ),
        row("fix_site", &[("id", &id)], [401, 403, 403, 403, 409]),
        row("catalogue", &[], [401, 403, 403, 403, 200]),
        row("catalogue_builds", &[], [401, 403, 403, 403, 200]),
        row(
            "save_image",
            &[
                ("id", "0"),
                ("name", "x"),
                ("description", ""),
                ("reference", "Bad Ref"),
                ("serves", "both"),
                ("texts[run_sh]", ""),
                ("texts[dockerfile]", ""),
            ],
            [401, 403, 403, 403, 400],
        ),
        row("audit_log", &[], [401, 403, 403, 403, 200]),
        row("certificate_problems", &[], [401, 403, 403, 403, 200]),
        row("list_users", &[], [401, 403, 403, 403, 200]),
        row(
            "create_user",
            &[
                ("username", ""),
                ("display_name", ""),
                ("email", ""),
                ("password", ""),
                ("role", "user"),
            ],
            [401, 403, 403, 403, 400],
        ),
        row(
            "set_user_active",
            &[("id", "999999"), ("active", "false")],
            [401, 403, 403, 403, 404],
        ),
        row(
            "set_user_role",
            &[("id", "999999"), ("role", "approver")],
            [401, 403, 403, 403, 404],
        ),
        row(
            "set_site_quota",
            &[("id", "999999"), ("quota", "3")],
            [401, 403, 403, 403, 404],
        ),
        row("default_site_quota", &[], [401, 403, 403, 403, 200]),
        row("pending_identities", &[], [401, 403, 403, 403, 200]),
        row("deliveries", &[], [401, 403, 403, 403, 200]),
        // The policy as it is already: nothing changes.
        row(
            "set_site_policy",
            &[("creation", "request"), ("steps", "approver-and-admin")],
            [401, 403, 403, 403, 200],
        ),
        row(
            "link_pending",
            &[
                ("issuer", "https://nowhere.invalid"),
                ("subject", "x"),
                ("user_id", "1"),
            ],
            [401, 403, 403, 403, 404],
        ),
        row(
            "dismiss_pending",
            &[("issuer", "https://nowhere.invalid"), ("subject", "x")],
            [401, 403, 403, 403, 404],
        ),
        // No runtime here: the servers' state is unknown, and acting on them unavailable.
        row("database_servers", &[], [401, 403, 403, 403, 200]),
        row(
            "restart_database_server",
            &[("kind", "postgresql")],
            [401, 403, 403, 403, 503],
        ),
        row(
            "rotate_database_superuser",
            &[("kind", "mysql")],
            [401, 403, 403, 403, 503],
        ),
    ];
    // Everyone signed in.
    let user_rows = [
        row("my_sites", &[], [401, 200, 200, 200, 200]),
        row("my_identities", &[], [401, 200, 200, 200, 200]),
        // Notifications: one's own; the test accounts have no email address to test.
        row("inbox", &[], [401, 200, 200, 200, 200]),
        row("mark_read", &[("id", "999999")], [401, 404, 404, 404, 404]),
        row("notification_choices", &[], [401, 200, 200, 200, 200]),
        row(
            "set_notification_choice",
            &[("event", "membership"), ("channel", "inbox"), ("enabled", "true")],
            [401, 200, 200, 200, 200],
        ),
        row("send_test_email", &[], [401, 400, 400, 400, 400]),
        // Webhooks: one's own; everyone's for admins. A bad URL is refused past the check.
        row("webhooks", &[], [401, 200, 200, 200, 200]),
        row(
            "add_webhook",
            &[("url", "ftp://example.org/"), ("scope", "Mine")],
            [401, 400, 400, 400, 400],
        ),
        row(
            "add_webhook",
            &[("url", "ftp://example.org/"), ("scope", "Everyone")],
            [401, 403, 403, 403, 400],
        ),
        row("remove_webhook", &[("id", "999999")], [401, 404, 404, 404, 404]),
        row("test_webhook", &[("id", "999999")], [401, 404, 404, 404, 404]),
        // Requests for sites: the member's request, addressed to the approver, is seen by
        // them, the approver and admins; reviewed (past the check: a refused comment) by the
        // approver and admins, never by its requester (409). A bad name is refused to all.
        row("request_form", &[], [401, 200, 200, 200, 200]),
        row(
            "submit_request",
            &[
                ("name", "-bad-"),
                ("description", ""),
                ("purpose", "project"),
                ("kind", "static"),
                ("image", "busybox"),
                ("reason", "why not"),
                ("approver", ""),
            ],
            [401, 400, 400, 400, 400],
        ),
        row("site_requests", &[("scope", "mine")], [401, 200, 200, 200, 200]),
        row("site_requests", &[("scope", "review")], [401, 403, 200, 403, 200]),
        row("site_request", &[("id", &request)], [401, 404, 200, 200, 200]),
        row(
            "approve_request",
            &[("id", &request), ("comment", &too_long)],
            [401, 404, 400, 409, 400],
        ),
        row(
            "deny_request",
            &[("id", &request), ("comment", "")],
            [401, 404, 400, 409, 400],
        ),
        row("withdraw_request", &[("id", "999999")], [401, 404, 404, 404, 404]),
        row(
            "unlink_identity",
            &[("issuer", "https://nowhere.invalid"), ("subject", "x")],
            [401, 404, 404, 404, 404],
        ),
        row("ssh_keys", &[], [401, 200, 200, 200, 200]),
        row(
            "add_ssh_key",
            &[("name", ""), ("public_key", "not a key")],
            [401, 400, 400, 400, 400],
        ),
        row("remove_ssh_key", &[("id", "999999")], [401, 404, 404, 404, 404]),
        row("api_tokens", &[("everyone", "false")], [401, 200, 200, 200, 200]),
        row(
            "create_api_token",
            &[("name", ""), ("days", "90"), ("access", "read"), ("sites", "")],
            [401, 400, 400, 400, 400],
        ),
        row("revoke_api_token", &[("id", "999999")], [401, 404, 404, 404, 404]),
        row("site_images", &[], [401, 200, 200, 200, 200]),
        row("file_limits", &[], [401, 200, 200, 200, 200]),
        row(
            "check_site_name",
            &[("name", "guarded")],
            [401, 200, 200, 200, 200],
        ),
        row(
            "create_site",
            &[
                ("name", "-bad-"),
                ("kind", "static"),
                ("image", "busybox"),
                ("purpose", "project"),
                ("description", ""),
            ],
            // Members request sites here; an admin still creates them (and is refused the name).
            [401, 409, 409, 409, 400],
        ),
    ];

    // The doors beside the server functions, asked as plainly as a browser would: the
    // terminal's without a websocket upgrade (a page asking why its socket was refused), the
    // upload with nothing in it. The probes and the edge's question are open to anyone. Past
    // the check: no runtime for files (503), a site still being made for a dump (409).
    let door_rows = [
        door(Method::GET, "/healthz", "", [200, 200, 200, 200, 200]),
        door(Method::GET, "/readyz", "", [200, 200, 200, 200, 200]),
        door(
            Method::GET,
            "/edge/ask",
            "domain=nowhere.invalid",
            [404, 404, 404, 404, 404],
        ),
        door(
            Method::GET,
            "/sites/{id}/terminal/ws",
            "",
            [401, 404, 404, 400, 400],
        ),
        door(
            Method::POST,
            "/sites/{id}/files/upload",
            "path=",
            [401, 404, 404, 503, 503],
        ),
        door(
            Method::GET,
            "/sites/{id}/files/download",
            "path=x",
            [401, 404, 404, 503, 503],
        ),
        door(
            Method::GET,
            "/sites/{id}/databases/{kind}/dump",
            "",
            [401, 404, 404, 409, 409],
        ),
        // Sign-in with a provider is for anyone; this server has none configured.
        door(
            Method::GET,
            "/auth/oidc/{provider}/start",
            "",
            [404, 404, 404, 404, 404],
        ),
        door(
            Method::GET,
            "/auth/oidc/{provider}/callback",
            "state=x&code=y",
            [404, 404, 404, 404, 404],
        ),
        // Linking is for the signed-in only.
        door(
            Method::POST,
            "/auth/oidc/{provider}/link",
            "",
            [401, 404, 404, 404, 404],
        ),
        door(
            Method::GET,
            "/auth/oidc/{provider}/logout",
            "",
            [404, 404, 404, 404, 404],
        ),
    ];
    let mut wrong_doors = Vec::new();
    for door in &door_rows {
        let path = door
            .path
            .replace("{id}", &id)
            .replace("{kind}", "postgresql")
            .replace("{provider}", "none");
        for (who, (client, expected)) in WHO.iter().zip(clients.iter().zip(door.expect)) {
            let got = client
                .request(door.method.clone(), server.url(&format!("{path}?{}", door.query)))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
            if got != expected {
                wrong_doors.push(format!(
                    "{} {} as {who:?}: {got}, expected {expected}",
                    door.method, door.path
                ));
            }
        }
    }
    assert!(
        wrong_doors.is_empty(),
        "wrong answers:\n{}",
        wrong_doors.join("\n")
    );
    let mut doors: Vec<&str> = server::http::doors().into_iter().map(|(path, _)| path).collect();
    let mut rows: Vec<&str> = door_rows.iter().map(|d| d.path).collect();
    doors.sort_unstable();
    rows.sort_unstable();
    assert_eq!(
        rows, doors,
        "every door the router has, and only those, has a row"
    );

    let mut covered: Vec<&str> = NOT_IN_MATRIX.to_vec();
    let mut wrong = Vec::new();
    for row in site_rows.iter().chain(&admin_rows).chain(&user_rows) {
        covered.push(row.name);
        for (who, (client, expected)) in WHO.iter().zip(clients.iter().zip(row.expect)) {
            let form: Vec<(&str, &str)> = row.form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let got = server.call(client, row.name, &form).await.status().as_u16();
            if got != expected {
                wrong.push(format!("{} as {who:?}: {got}, expected {expected}", row.name));
            }
        }
    }
    assert!(wrong.is_empty(), "wrong answers:\n{}", wrong.join("\n"));
    let registered = every_server_function();
    let gone: Vec<&&str> = covered
        .iter()
        .filter(|name| !registered.iter().any(|r| r == *name))
        .collect();
    assert!(
        gone.is_empty(),
        "rows for functions the server does not have: {gone:?}"
    );
    let missing: Vec<String> = registered
        .into_iter()
        .filter(|name| !covered.contains(&name.as_str()))
        .collect();
    assert_eq!(
        missing,
        ["unlisted_probe"],
        "server functions without a row in the matrix (the probe is this test's own)"
    );
    // The probe is called through the registry only.
    let _ = unlisted_probe;

    // And nothing above changed the site: the member still sees it as it was, alone.
    let after = db.platform.site(Some(&member), site.id).await.unwrap();
    assert_eq!(after, site);
    assert_eq!(
        db.platform
            .site_members(Some(&Actor::operator()), site.id)
            .await
            .unwrap()
            .len(),
        1
    );
}
