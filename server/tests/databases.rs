//! A site database's dump, downloaded over HTTP from the real router, made by the real
//! clients from the real servers: PostgreSQL's and MariaDB's hold what the site's role wrote,
//! as a file named after the site; another user learns nothing; a download abandoned while its
//! dump waits for a lock ends the dump; with the server gone, the answer is a clear 503 rather than an empty file.

mod common;

use std::time::Duration;

use common::{TestServer, edge::start_edge, password, running_site, signed_in_user};
use model::token::TokenAccess;
use platform::{
    Actor, Role,
    sites::{DatabaseKind, DatabaseState},
};

/// Adds the site's database of `kind` and waits (at most 3 minutes: the first use starts the
/// server) until it is ready.
async fn add(platform: &platform::Platform, who: &Actor, site: i32, kind: DatabaseKind) {
    platform.add_database(Some(who), site, kind).await.unwrap();
    ready(platform, who, site, kind).await;
}

/// Waits (at most 3 minutes) until the site's database of `kind` is ready.
async fn ready(platform: &platform::Platform, who: &Actor, site: i32, kind: DatabaseKind) {
    for _ in 0..1800 {
        let databases = platform.databases(Some(who), site).await.unwrap();
        if databases
            .iter()
            .any(|d| d.kind == kind && d.state == DatabaseState::Ready)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the {kind} database was not made: {:?}",
        platform::testing::failed_operations(platform).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_downloads_each_database_as_a_dump_and_nobody_else_can() {
    let edge = start_edge().await;
    edge.start_workers();
    let platform = &edge.db.platform;
    let (member, _) = signed_in_user(platform, "member", Role::User).await;
    signed_in_user(platform, "other", Role::User).await;
    let site = running_site(platform, &member, "ledger").await;
    let server = TestServer::start(platform.clone()).await;
    let as_member = server.signed_in("member", &password("member")).await;
    let as_other = server.signed_in("other", &password("other")).await;
    let token = common::api_token(platform, &member, TokenAccess::Write, false, None).await;
    let api = reqwest::Client::new();

    // The site's files are the tenant's: an option file there does not reshape the dump (nor
    // load anything into the client).
    let directory = edge.runtime.borrow().clone().unwrap().directory(&site);
    std::fs::write(
        directory.join(".my.cnf"),
        "[mysqldump]\nskip-comments\n[client]\nuser=nobody\n",
    )
    .unwrap();

    for (kind, create) in [
        (
            DatabaseKind::Postgresql,
            "CREATE TABLE entries (id serial PRIMARY KEY, note text); \
             INSERT INTO entries (note) VALUES ('it''s in the dump');",
        ),
        (
            DatabaseKind::Mysql,
            "CREATE TABLE entries (id int AUTO_INCREMENT PRIMARY KEY, note text); \
             INSERT INTO entries (note) VALUES ('it''s in the dump');",
        ),
    ] {
        if kind == DatabaseKind::Postgresql {
            // Through the REST API, with a token, as a script would.
            let databases = server.url(&format!("/api/v1/sites/{}/databases", site.id));
            let added = api
                .post(&databases)
                .bearer_auth(&token)
                .json(&serde_json::json!({"kind": kind}))
                .send()
                .await
                .unwrap();
            assert_eq!(added.status(), 202);
            ready(platform, &member, site.id, kind).await;
            let post = |path: String, body: serde_json::Value| {
                let request = api.post(path).bearer_auth(&token).json(&body);
                async move {
                    let response = request.send().await.unwrap();
                    response.json::<serde_json::Value>().await.unwrap()
                }
            };
            let run = post(
                format!("{databases}/{kind}/sql"),
                serde_json::json!({"sql": create}),
            )
            .await;
            assert!(run["error"].is_null(), "{run}");
            let revealed = post(format!("{databases}/{kind}/reveal"), serde_json::json!({})).await;
            let url = revealed["url"].as_str().unwrap();
            // `postgresql://role:password@host…`: the password is there.
            let credentials = url
                .strip_prefix("postgresql://")
                .and_then(|rest| rest.split_once('@'))
                .map(|(credentials, _)| credentials);
            assert!(
                credentials.is_some_and(|c| c.split_once(':').is_some_and(|(_, pw)| pw.len() >= 16)),
                "{revealed}"
            );
        } else {
            add(platform, &member, site.id, kind).await;
            let run = platform
                .run_sql(Some(&member), site.id, kind, create)
                .await
                .unwrap();
            assert!(run.error.is_none(), "{kind}: {:?}", run.error);
        }

        let url = server.url(&format!("/sites/{}/databases/{kind}/dump", site.id));
        let response = as_member.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{kind}");
        let headers = response.headers().clone();
        assert_eq!(headers["content-type"], "application/sql; charset=utf-8");
        let disposition = headers["content-disposition"].to_str().unwrap();
        assert!(
            disposition.starts_with(&format!("attachment; filename=\"ledger-{kind}-")),
            "{disposition}"
        );
        let dump = response.text().await.unwrap();
        assert!(dump.contains("CREATE TABLE"), "{kind}: {dump}");
        assert!(dump.contains("entries"), "{kind}: {dump}");
        let header = match kind {
            DatabaseKind::Postgresql => "-- PostgreSQL database dump",
            DatabaseKind::Mysql => "-- MariaDB dump",
        };
        assert!(
            dump.starts_with(header) || dump.contains(&format!("\n{header}")),
            "{kind}: {dump}"
        );
        // PostgreSQL's rows as COPY data, MariaDB's as INSERTs with its own quoting.
        assert!(dump.contains("s in the dump"), "{kind}: {dump}");
        // Loadable anywhere: neither the site's role nor its grants are in it.
        if kind == DatabaseKind::Postgresql {
            assert!(!dump.contains("OWNER TO"), "{dump}");
            assert!(!dump.contains("GRANT "), "{dump}");
        }

        let other = as_other.get(&url).send().await.unwrap();
        assert_eq!(other.status(), 404, "{kind}: another user learns nothing");
        let anonymous = server.client().get(&url).send().await.unwrap();
        assert_eq!(anonymous.status(), 401, "{kind}");
    }

    // Each download is an audit line.
    let audit = platform
        .audit_entries(Some(&Actor::operator()), None, 100)
        .await
        .unwrap();
    assert_eq!(
        audit.iter().filter(|e| e.action == "database.dump").count(),
        2,
        "{audit:?}"
    );

    // A download abandoned before its first byte (the browser gave up while pg_dump waits for
    // a lock the site's own code holds) ends its dump: none is left waiting for nobody.
    let locker = tokio::spawn({
        let (platform, member) = (platform.clone(), member.clone());
        async move {
            platform
                .run_sql(
                    Some(&member),
                    site.id,
                    DatabaseKind::Postgresql,
                    "BEGIN; LOCK TABLE entries IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(8); COMMIT",
                )
                .await
        }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let url = server.url(&format!("/sites/{}/databases/postgresql/dump", site.id));
    let abandoned = tokio::spawn(as_member.get(&url).timeout(Duration::from_secs(3)).send());
    let shell = edge
        .namespace
        .database_shell(orchestrator::SiteId(u32::try_from(site.id).unwrap()));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(dumps_running(&shell) > 0, "the dump waits for the lock");
    assert!(
        abandoned.await.unwrap().is_err(),
        "the dump answered despite the lock"
    );
    let mut running = 1;
    for _ in 0..20 {
        running = dumps_running(&shell);
        if running == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(running, 0, "an abandoned dump still waits, for nobody");
    assert!(!locker.is_finished(), "the lock was held all along");
    locker.await.unwrap().unwrap();

    // With PostgreSQL's server gone (and no reconciler to bring it back), the answer says so
    // instead of giving an empty file.
    let runtime = edge.runtime.borrow().clone().unwrap();
    runtime
        .orchestrator
        .remove_database_server(orchestrator::databases::Engine::Postgres)
        .await
        .unwrap();
    let url = server.url(&format!("/sites/{}/databases/postgresql/dump", site.id));
    let mut status = 0;
    for _ in 0..30 {
        status = as_member.get(&url).send().await.unwrap().status().as_u16();
        if status == 503 {
            break;
        }
        // The server's task may take a moment to stop.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(status, 503);
}

/// How many `pg_dump` processes run in the container `name`.
fn dumps_running(name: &str) -> usize {
    let out = std::process::Command::new("docker")
        .args(["top", name])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|line| line.contains("/pg_dump "))
        .count()
}
