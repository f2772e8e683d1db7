//! The manager over real HTTP: pages, server functions, sessions, CSRF, permissions.

mod common;

use common::{TestServer, create_user, password};
use platform::{Role, testing::TestDb};
use reqwest::{StatusCode, header};

async fn setup() -> (TestDb, TestServer) {
    let db = TestDb::new().await;
    create_user(&db.platform, "admin", Role::Admin).await;
    create_user(&db.platform, "member", Role::User).await;
    let server = TestServer::start(db.platform.clone()).await;
    (db, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness_answer() {
    let (_db, server) = setup().await;
    let client = server.client();
    assert_eq!(server.page(&client, "/healthz").await.text().await.unwrap(), "ok");
    assert_eq!(server.page(&client, "/readyz").await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_visitors_are_sent_to_sign_in() {
    let (_db, server) = setup().await;
    let res = server.page(&server.client(), "/admin/users").await;
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(res.headers()[header::LOCATION], "/login?next=/admin/users");

    let res = server.page(&server.client(), "/login").await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(html.contains("<h2 id=\"signin-title\">Sign in</h2>"), "{html}");
    assert!(html.contains("/pkg/director.js"), "the page loads the client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_gets_an_error_and_no_session() {
    let (_db, server) = setup().await;
    let client = server.client();
    let res = server
        .call(&client, "login", &[("username", "admin"), ("password", "wrong")])
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().get(header::SET_COOKIE).is_none());
    let body = res.text().await.unwrap();
    assert!(body.contains("BadCredentials"), "{body}");
    let res = server.call(&client, "current_user", &[]).await;
    assert_eq!(res.text().await.unwrap(), "null");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_cookie_is_http_only_and_logout_ends_it() {
    let (_db, server) = setup().await;
    let client = server.client();
    let res = server
        .call(
            &client,
            "login",
            &[
                ("username", "member"),
                ("password", &password("member")),
                ("next", "/account"),
            ],
        )
        .await;
    let cookie = res.headers()[header::SET_COOKIE].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("director_session="), "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    let me = server
        .call(&client, "current_user", &[])
        .await
        .text()
        .await
        .unwrap();
    assert!(me.contains("\"username\":\"member\""), "{me}");

    let page = server.page(&client, "/").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("member display"));

    server.call(&client, "logout", &[]).await;
    assert_eq!(
        server
            .call(&client, "current_user", &[])
            .await
            .text()
            .await
            .unwrap(),
        "null"
    );
    let page = server.page(&client, "/").await;
    assert_eq!(page.status(), StatusCode::FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_form_post_redirects_back_with_the_error() {
    let (_db, server) = setup().await;
    let res = server
        .client()
        .post(server.url("/fn/login"))
        .header(header::ACCEPT, "text/html")
        .header(header::REFERER, server.url("/login"))
        .form(&[("username", "admin"), ("password", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    let location = res.headers()[header::LOCATION].to_str().unwrap().to_owned();
    assert!(location.contains("__err="), "{location}");

    let page = server
        .client()
        .get(location)
        .header(header::ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert!(page.text().await.unwrap().contains("Wrong username or password."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_posts_are_refused() {
    let (_db, server) = setup().await;
    let client = server.signed_in("admin", &password("admin")).await;
    for (name, value) in [
        ("origin", "http://evil.example"),
        ("origin", "http://mysite.localhost"),
        ("sec-fetch-site", "same-site"),
    ] {
        let res = client
            .post(server.url("/fn/create_user"))
            .header(name, value)
            .form(&[
                ("username", "eve"),
                ("display_name", ""),
                ("email", ""),
                ("password", "eve password 123"),
                ("role", "user"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{name}: {value}");
    }
    let users = server
        .call(&client, "list_users", &[])
        .await
        .text()
        .await
        .unwrap();
    assert!(!users.contains("eve"), "nothing was created: {users}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_cannot_use_admin_pages_or_functions() {
    let (_db, server) = setup().await;
    let member = server.signed_in("member", &password("member")).await;
    let page = server.page(&member, "/admin/users").await;
    assert_eq!(page.status(), StatusCode::FORBIDDEN);
    assert!(page.text().await.unwrap().contains("Not allowed"));

    for (name, form) in [
        ("list_users", vec![]),
        (
            "create_user",
            vec![
                ("username", "eve"),
                ("display_name", ""),
                ("email", ""),
                ("password", "eve password 123"),
                ("role", "admin"),
            ],
        ),
        ("set_user_role", vec![("id", "2"), ("role", "admin")]),
        ("set_user_active", vec![("id", "1"), ("active", "false")]),
    ] {
        let res = server.call(&member, name, &form).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{name}");
        let anonymous = server.call(&server.client(), name, &form).await;
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED, "{name} anonymously");
    }

    let admin = server.signed_in("admin", &password("admin")).await;
    let page = server.page(&admin, "/admin/users").await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("data-username=\"member\""), "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_pages_are_404_and_bad_requests_400() {
    let (_db, server) = setup().await;
    let res = server.page(&server.client(), "/no/such/page").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(res.text().await.unwrap().contains("Not found"));

    let client = server.client();
    let res = client
        .post(server.url("/fn/login"))
        .header(header::ACCEPT, "application/json")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(b"username=%FF%FE&password=x".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body = res.text().await.unwrap();
    assert!(body.contains("not valid text"), "{body}");
}

/// `current_user` as a client sending exactly `cookie` sees it.
async fn user_behind(server: &TestServer, cookie: &str) -> String {
    reqwest::Client::new()
        .post(server.url("/fn/current_user"))
        .header(header::ORIGIN, &server.base)
        .header(header::ACCEPT, "application/json")
        .header(header::COOKIE, cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_https_the_session_cookie_is_the_hosts_own_and_a_tossed_one_is_never_taken() {
    let db = TestDb::new().await;
    let (_, victim) = platform::testing::signed_in_user(&db.platform, "victim", Role::User).await;
    let (_, attacker) = platform::testing::signed_in_user(&db.platform, "attacker", Role::User).await;
    let server = TestServer::start_with(db.platform.clone(), true).await;

    let res = server
        .call(
            &server.client(),
            "login",
            &[("username", "victim"), ("password", &password("victim"))],
        )
        .await;
    let cookie = res.headers()[header::SET_COOKIE].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("__Host-director_session="), "{cookie}");
    for attribute in ["Secure", "HttpOnly", "Path=/", "SameSite=Lax"] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    assert!(!cookie.to_ascii_lowercase().contains("domain="), "{cookie}");

    let (victim, attacker) = (&victim.token, &attacker.token);
    // A site on a sibling subdomain can set `director_session` for the parent domain, never a
    // `__Host-` cookie: the attacker's session planted so is not taken over HTTPS.
    let seen = user_behind(&server, &format!("director_session={attacker}")).await;
    assert_eq!(seen, "null");
    let seen = user_behind(
        &server,
        &format!("director_session={attacker}; __Host-director_session={victim}"),
    )
    .await;
    assert!(seen.contains("\"username\":\"victim\""), "{seen}");
    // Two of the same name: the first is not taken blindly; the one that is a session is.
    let seen = user_behind(
        &server,
        &format!("__Host-director_session=stale; __Host-director_session={victim}"),
    )
    .await;
    assert!(seen.contains("\"username\":\"victim\""), "{seen}");

    // Over plain HTTP there is no `__Host-`: two users' live sessions side by side mean one was
    // planted, and neither is taken (whichever comes first).
    let plain = TestServer::start(db.platform.clone()).await;
    for cookie in [
        format!("director_session={attacker}; director_session={victim}"),
        format!("director_session={victim}; director_session={attacker}"),
    ] {
        assert_eq!(user_behind(&plain, &cookie).await, "null", "{cookie}");
    }
    let seen = user_behind(
        &plain,
        &format!("director_session=stale; director_session={victim}"),
    )
    .await;
    assert!(seen.contains("\"username\":\"victim\""), "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_sign_in_only_paths_of_this_site_are_followed() {
    let (_db, server) = setup().await;
    for (next, want) in [
        ("/account", "/account"),
        ("/\t/evil.example", "/"),
        ("//evil.example/x", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example", "/"),
        ("/.//evil.example", "/"),
        ("/..//evil.example", "/"),
        // A newline once made the redirect itself panic.
        ("/account\n/x", "/account/x"),
        ("/a\r\nSet-Cookie: x=1", "/aSet-Cookie:%20x=1"),
    ] {
        let res = server
            .call(
                &server.client(),
                "login",
                &[
                    ("username", "member"),
                    ("password", &password("member")),
                    ("next", next),
                ],
            )
            .await;
        assert!(
            res.status().is_success() || res.status().is_redirection(),
            "{next:?}: {}",
            res.status()
        );
        let location = res
            .headers()
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap().to_owned());
        let redirect = res
            .headers()
            .get("serverfnredirect")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(location.or(redirect).as_deref(), Some(want), "{next:?}");
    }
}
