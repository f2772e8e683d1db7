//! Schemathesis, a property-based tester driven by the REST API's own OpenAPI document, against
//! a real server, engine and edge with a member's token (and an admin's on the admins' routes):
//! no answer is a server error, and every answer is one the document describes (status, content
//! type, headers, schema). Bounded: a few examples per route, in CI too.

mod common;

use std::time::Duration;

use common::{TestServer, api_token, edge::start_edge, running_site, signed_in_user};
use model::token::TokenAccess;
use platform::Role;

/// Schemathesis as scripts/setup installs it (`DIRECTOR_SETUP_TESTS=1`), in the checkout's
/// `.venv`.
fn schemathesis() -> std::path::PathBuf {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/schemathesis");
    assert!(
        path.exists(),
        "{} is missing: run DIRECTOR_SETUP_TESTS=1 scripts/setup",
        path.display()
    );
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_answer_the_document_does_not_describe() {
    let edge = start_edge().await;
    let platform = edge.db.platform.clone();
    edge.start_workers();
    let (member, _) = signed_in_user(&platform, "member", Role::User).await;
    // Something to find: a site of the member's, made.
    running_site(&platform, &member, "fuzzed").await;
    let token = api_token(&platform, &member, TokenAccess::Write, false, None).await;
    let one = std::num::NonZeroU32::MIN;
    // Its requests come fast: the allowance is not what is tested here.
    let server = TestServer::start_with_api_rate(
        platform.clone(),
        server::api::RateLimit {
            per_second: one.saturating_add(999),
            burst: one.saturating_add(999),
            failures_per_minute: one.saturating_add(999),
        },
    )
    .await;
    // The member's token on every route but the admins' (which refuse it whatever it sends),
    // and an admin's token with the admin scope on those.
    let admin_token = {
        let (admin, _) = signed_in_user(&platform, "chief", Role::Admin).await;
        api_token(&platform, &admin, TokenAccess::Write, true, None).await
    };
    for (token, filter) in [(&token, "--exclude-tag"), (&admin_token, "--include-tag")] {
        let said = fuzz(&server, token, [filter, "admin"]).await;
        println!("{said}");
    }
}

/// Runs schemathesis on the server's document with `token`, on the routes `filter` selects;
/// what it said, once it found nothing wrong and reached every route it tried with the token.
async fn fuzz(server: &TestServer, token: &str, filter: [&str; 2]) -> String {
    let report = tempfile::tempdir().unwrap();
    let run = tokio::process::Command::new(schemathesis())
        .arg("run")
        .arg(server.url("/api/v1/openapi.json"))
        .args(["--url", &server.base])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(filter)
        // Every check but those that take the schema's types for the whole of a field's rules:
        // a well-typed site name can still be refused (400) for what DNS allows.
        .args(["--checks", "all", "--exclude-checks", "positive_data_acceptance"])
        .args(["--phases", "examples,coverage,fuzzing"])
        // Revoking tokens by random ids would soon revoke this one (revocation has its tests).
        .args(["--exclude-name", "DELETE /api/v1/tokens/{id}"])
        .args(["--max-examples", "12", "--seed", "1", "--workers", "2"])
        .args(["--request-timeout", "20", "--no-color"])
        .env("SCHEMATHESIS_HOOKS", "")
        .current_dir(report.path())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(600), run)
        .await
        .expect("schemathesis finished within 10 minutes")
        .unwrap();
    let said = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schemathesis found problems:\n{said}");
    assert!(
        !said.contains("Authentication failed"),
        "every route was reached with the token:\n{said}"
    );
    said
}
