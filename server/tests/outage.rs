//! The embedded PostgreSQL going away and coming back, and its data-directory lock.

mod common;

use common::{TestServer, create_user, password};
use platform::{Platform, Role, Settings};
use reqwest::StatusCode;
use server::embedded_pg::{EmbeddedPostgres, PgError};

async fn platform_on(pg: &EmbeddedPostgres) -> Platform {
    platform::db::run_migrations(pg.url()).await.unwrap();
    Platform::new(platform::db::pool(pg.url(), 4).unwrap(), Settings::default())
}

/// A server on a new embedded cluster, and an admin signed in who sees their dashboard.
async fn signed_in_on_embedded() -> (tempfile::TempDir, EmbeddedPostgres, TestServer, reqwest::Client) {
    let dir = tempfile::tempdir().unwrap();
    let pg = EmbeddedPostgres::start(dir.path()).await.unwrap();
    let platform = platform_on(&pg).await;
    create_user(&platform, "admin", Role::Admin).await;
    let server = TestServer::start(platform).await;
    let client = server.signed_in("admin", &password("admin")).await;
    assert_eq!(server.page(&client, "/").await.status(), StatusCode::OK);
    (dir, pg, server, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_database_gives_503_and_service_returns_with_it() {
    let (dir, pg, server, client) = signed_in_on_embedded().await;

    pg.stop().await.unwrap();
    assert_eq!(
        server.page(&client, "/readyz").await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    let page = server.page(&client, "/").await;
    assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
    let html = page.text().await.unwrap();
    assert!(html.contains("temporarily unavailable"), "{html}");
    assert!(
        !html.contains("postgres") && !html.contains("socket"),
        "nothing internal is shown: {html}"
    );
    let login = server
        .call(
            &server.client(),
            "login",
            &[("username", "admin"), ("password", &password("admin"))],
        )
        .await;
    assert_eq!(login.status(), StatusCode::SERVICE_UNAVAILABLE);

    // Back again: the same process serves the same session without a restart.
    let pg = EmbeddedPostgres::start(dir.path()).await.unwrap();
    assert_eq!(server.page(&client, "/readyz").await.status(), StatusCode::OK);
    let page = server.page(&client, "/").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("My sites"));
    pg.stop().await.unwrap();
}

#[tokio::test]
async fn a_second_director_on_the_same_data_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pg = EmbeddedPostgres::start(dir.path()).await.unwrap();
    let second = EmbeddedPostgres::start(dir.path()).await;
    match second {
        Err(err @ PgError::Locked(_)) => assert!(err.to_string().contains("already using"), "{err}"),
        other => panic!("expected the lock to refuse, got {other:?}"),
    }
    // The first cluster is untouched by the refused attempt.
    let platform = platform_on(&pg).await;
    platform.database_ready().await.unwrap();
    pg.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_database_is_restarted_and_pages_come_back_without_a_director_restart() {
    let (_dir, pg, server, client) = signed_in_on_embedded().await;

    let postmaster = pg.postmaster_pid().expect("the postmaster's pid");
    let killed = std::process::Command::new("kill")
        .args(["-9", &postmaster.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let since = std::time::Instant::now();
    // Pages come back on a new postmaster (a page answered before the old one is gone
    // proves nothing).
    loop {
        let status = server.page(&client, "/").await.status();
        let restarted = pg.postmaster_pid().is_some_and(|pid| pid != postmaster);
        if status == StatusCode::OK && restarted {
            break;
        }
        assert!(
            since.elapsed() < std::time::Duration::from_secs(30),
            "still {status} (restarted: {restarted}) 30 s after the kill"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    println!(
        "pages came back {:.1} s after the kill",
        since.elapsed().as_secs_f64()
    );
    pg.stop().await.unwrap();
}
