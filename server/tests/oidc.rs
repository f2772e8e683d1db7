//! Sign-in through a real OpenID Connect provider (npm `oidc-provider`, started here): its own
//! login page filled in as a browser would, the code exchanged with PKCE, the ID token checked;
//! a first sign-in makes an account (a username made unique, the admin role from the groups),
//! a later one finds it again; the last admin is never demoted by their groups; a replayed or
//! forged callback, one finished in another browser (login CSRF), a person a closed provider
//! does not register, and a provider that is down each end on the sign-in page with the reason.

mod common;

use std::time::Duration;

use common::{TestServer, create_user};
use platform::{
    Role,
    oidc::{OidcProvider, Registration},
    testing::TestDb,
};

/// The provider, on its own port, with the clients and people of its file; both go with it.
struct Provider {
    _process: tokio::process::Child,
    file: tempfile::NamedTempFile,
}

impl Provider {
    /// Starts it on `port` for a client whose callbacks are under `director`.
    async fn start(port: u16, director: &str) -> Self {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), people(director, &["staff", "director-admins"])).unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../end2end/oidc-provider.mjs");
        let mut child = tokio::process::Command::new("node")
            .args([script, &port.to_string(), file.path().to_str().unwrap()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs the test provider");
        let mut out = tokio::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        tokio::time::timeout(
            Duration::from_secs(30),
            tokio::io::AsyncBufReadExt::read_line(&mut out, &mut line),
        )
        .await
        .expect("the provider starts within 30 s")
        .unwrap();
        assert!(line.starts_with("ready"), "the provider said: {line}");
        Self {
            _process: child,
            file,
        }
    }

    fn settings(issuer: &str, registration: Registration) -> OidcProvider {
        OidcProvider {
            id: "test".to_owned(),
            name: "Test SSO".to_owned(),
            issuer: issuer.to_owned(),
            client_id: "director".to_owned(),
            client_secret: "director secret".to_owned(),
            scopes: vec!["email".to_owned(), "profile".to_owned(), "groups".to_owned()],
            registration,
            role_claim: "groups".to_owned(),
            admin_groups: vec!["director-admins".to_owned()],
        }
    }
}

/// The provider's file: its client (Director at `director`), and its people, Alice in
/// `alice_groups`.
fn people(director: &str, alice_groups: &[&str]) -> String {
    serde_json::json!({
        "clients": [{
            "client_id": "director",
            "client_secret": "director secret",
            "redirect_uris": [format!("{director}/auth/oidc/test/callback")],
        }],
        "accounts": {
            "alice-sub": {"preferred_username": "Alice", "name": "Alice Liddell", "email": "alice@example.org", "groups": alice_groups},
            "bob-sub": {"preferred_username": "alice", "name": "Another Alice", "email": "bob@example.org", "groups": ["staff"]},
        },
    })
    .to_string()
}

/// The refusal's name a redirect to the sign-in page carries.
fn failed(location: &str) -> String {
    assert!(location.starts_with("/login?"), "{location}");
    url::form_urlencoded::parse(location.split_once('?').unwrap().1.as_bytes())
        .find(|(k, _)| k == "failed")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no refusal in {location}"))
}

/// Where a sign-in ended: Director's answer to the provider's callback (a redirect), and the
/// callback's URL (to replay it).
struct SignedIn {
    location: String,
    callback: String,
}

/// Signs `login` in at the provider as a browser would, from Director's start door to its
/// callback, with `director`'s cookies.
async fn sign_in(server: &TestServer, director: &reqwest::Client, login: &str) -> SignedIn {
    sign_in_finished_by(server, director, director, login).await
}

/// The same, the callback reached by `finisher` (another browser, when it is not `director`).
async fn sign_in_finished_by(
    server: &TestServer,
    director: &reqwest::Client,
    finisher: &reqwest::Client,
    login: &str,
) -> SignedIn {
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let start = director
        .get(server.url("/auth/oidc/test/start?next=/account"))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 303, "{:?}", start.text().await);
    let mut next = location(&start);
    let mut logged_in = false;
    for _ in 0..10 {
        if next.starts_with(&server.base) {
            let response = finisher.get(&next).send().await.unwrap();
            return SignedIn {
                location: location(&response),
                callback: next,
            };
        }
        let response = browser.get(&next).send().await.unwrap();
        if response.status().is_redirection() {
            next = absolute(&next, &location(&response));
            continue;
        }
        assert!(!logged_in, "the provider asked twice");
        // Its login page: any password, the login is the person's subject.
        let page = response.text().await.unwrap();
        let action = page
            .split("action=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("a login form");
        let posted = browser
            .post(absolute(&next, action))
            .form(&[("prompt", "login"), ("login", login), ("password", "anything")])
            .send()
            .await
            .unwrap();
        assert!(posted.status().is_redirection(), "{}", posted.status());
        next = absolute(&next, &location(&posted));
        logged_in = true;
    }
    panic!("the sign-in did not come back to Director");
}

fn location(response: &reqwest::Response) -> String {
    response.headers()["location"].to_str().unwrap().to_owned()
}

fn absolute(base: &str, reference: &str) -> String {
    url::Url::parse(base)
        .unwrap()
        .join(reference)
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_sign_in_through_the_provider_and_forged_or_replayed_callbacks_are_refused() {
    let port = platform::testing::free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let db = TestDb::with_settings(platform::Settings {
        oidc: vec![Provider::settings(&issuer, Registration::Open)],
        ..platform::Settings::default()
    })
    .await;
    // A local account already has the name Alice would like: hers is made unique.
    create_user(&db.platform, "alice", Role::User).await;
    let server = TestServer::start(db.platform.clone()).await;
    let provider = Provider::start(port, &server.base).await;

    // A first sign-in makes her account, an admin by her groups, and lands on `next`.
    let alice = server.client();
    let done = sign_in(&server, &alice, "alice-sub").await;
    assert_eq!(done.location, "/account");
    let me = server.call(&alice, "current_user", &[]).await;
    let me: serde_json::Value = me.json().await.unwrap();
    assert_eq!(me["username"], "alice2", "{me}");
    assert_eq!(me["display_name"], "Alice Liddell");
    assert_eq!(me["is_admin"], true);

    // The same callback again (a replayed code and state) is refused, and nobody is signed in.
    let replayed = server.client();
    let again = replayed.get(&done.callback).send().await.unwrap();
    assert_eq!(failed(&location(&again)), "unknown");
    let anonymous: serde_json::Value = server
        .call(&replayed, "current_user", &[])
        .await
        .json()
        .await
        .unwrap();
    assert!(anonymous.is_null(), "{anonymous}");

    // A forged state is refused the same way.
    let forged = replayed
        .get(server.url("/auth/oidc/test/callback?state=forged&code=whatever"))
        .send()
        .await
        .unwrap();
    assert_eq!(failed(&location(&forged)), "unknown");

    // The provider's refusal (the person cancelled) is shown in its words.
    let cancelled = replayed
        .get(server.url(
            "/auth/oidc/test/callback?error=access_denied&error_description=End-User+aborted+interaction",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(failed(&location(&cancelled)), "cancelled");

    // A sign-in started in one browser and finished in another (someone sending their own
    // callback to a victim: login CSRF) signs nobody in.
    let victim = server.client();
    let crossed = sign_in_finished_by(&server, &server.client(), &victim, "bob-sub").await;
    assert_eq!(failed(&crossed.location), "other-browser");
    let nobody: serde_json::Value = server
        .call(&victim, "current_user", &[])
        .await
        .json()
        .await
        .unwrap();
    assert!(nobody.is_null(), "{nobody}");

    // A later sign-in finds the same account; another person who would like the same name
    // gets a third, and is no admin.
    let done = sign_in(&server, &server.client(), "alice-sub").await;
    assert_eq!(done.location, "/account");
    let bob = server.client();
    sign_in(&server, &bob, "bob-sub").await;
    let me: serde_json::Value = server.call(&bob, "current_user", &[]).await.json().await.unwrap();
    assert_eq!(
        (me["username"].as_str(), me["is_admin"].as_bool()),
        (Some("alice3"), Some(false)),
        "{me}"
    );

    // Out of the admins' group, Alice would be demoted at her next sign-in; as the only admin
    // she stays one (Director is never left without an admin).
    std::fs::write(provider.file.path(), people(&server.base, &["staff"])).unwrap();
    let alice = server.client();
    sign_in(&server, &alice, "alice-sub").await;
    let me: serde_json::Value = server
        .call(&alice, "current_user", &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["is_admin"], true, "{me}");

    // With the provider down, starting a sign-in says so on the sign-in page.
    drop(provider);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let down = server
        .client()
        .get(server.url("/auth/oidc/test/start"))
        .send()
        .await
        .unwrap();
    assert_eq!(failed(&location(&down)), "unavailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_provider_signs_in_only_people_who_have_an_account() {
    let port = platform::testing::free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let db = TestDb::with_settings(platform::Settings {
        oidc: vec![Provider::settings(&issuer, Registration::Closed)],
        ..platform::Settings::default()
    })
    .await;
    let server = TestServer::start(db.platform.clone()).await;
    let _provider = Provider::start(port, &server.base).await;
    let done = sign_in(&server, &server.client(), "alice-sub").await;
    assert_eq!(failed(&done.location), "no-account");
    assert!(
        db.platform
            .list_users(Some(&platform::Actor::operator()))
            .await
            .unwrap()
            .is_empty(),
        "nobody was registered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_passwords_off_the_sign_in_page_offers_the_provider_alone() {
    let db = TestDb::with_settings(platform::Settings {
        oidc: vec![Provider::settings("http://127.0.0.1:9", Registration::Open)],
        local_login: platform::oidc::LocalLogin::Off,
        ..platform::Settings::default()
    })
    .await;
    create_user(&db.platform, "local", Role::Admin).await;
    let server = TestServer::start(db.platform.clone()).await;
    let client = server.client();
    let page = server.page(&client, "/login").await.text().await.unwrap();
    assert!(page.contains("Sign in with Test SSO"), "{page}");
    assert!(
        !page.contains("name=\"password\""),
        "the password form is offered: {page}"
    );
    // A password sign-in sent anyway is refused with the reason.
    let refused = server
        .call(
            &client,
            "login",
            &[("username", "local"), ("password", &common::password("local"))],
        )
        .await;
    assert_eq!(refused.status(), 409);
    assert!(refused.text().await.unwrap().contains("turned off"));
}
