//! Sign-in through a real OpenID Connect provider (npm `oidc-provider`, started here): its own
//! login page filled in as a browser would, the code exchanged with PKCE, the ID token checked;
//! a first sign-in makes an account (a username made unique, the admin role from the groups),
//! a later one finds it again; the last admin is never demoted by their groups; a replayed or
//! forged callback, one finished in another browser (login CSRF), a person a closed provider
//! does not register, and a provider that is down each end on the sign-in page with the reason.
//! A person with the email address of an existing account waits until its owner or an admin
//! links them; claims only the userinfo endpoint gives are read there; a provider behind a
//! private certificate authority is trusted with its bundle only; signing out offers the
//! provider's end-session page.

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
    /// Starts it on `listener` (from [`provider_port`]) for a client whose callbacks are under
    /// `director`.
    async fn start(listener: std::net::TcpListener, director: &str) -> Self {
        Self::start_with(listener, director, &[]).await
    }

    /// The same, with the script's `options` (`--claims-in-userinfo`, `--tls cert key`).
    async fn start_with(listener: std::net::TcpListener, director: &str, options: &[&str]) -> Self {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), people(director, &["staff", "director-admins"])).unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../end2end/oidc-provider.mjs");
        let port = listener.local_addr().unwrap().port().to_string();
        // The socket itself goes to the provider as its standard input, so the port stays
        // held from the moment the issuer's URL was made: a port merely found free could be
        // taken meanwhile by any other test's connection.
        let socket = std::os::fd::OwnedFd::from(listener);
        let mut child = tokio::process::Command::new("node")
            .args([script, &port, file.path().to_str().unwrap(), "--listening-stdin"])
            .args(options)
            .stdin(std::process::Stdio::from(socket))
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
            approver_groups: vec!["staff".to_owned()],
            ca_bundle: None,
        }
    }
}

/// A listening socket for the provider and its port, which the issuer's URL names.
fn provider_port() -> (std::net::TcpListener, u16) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
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
            "carol-sub": {"preferred_username": "carol", "name": "Carol", "email": "Carol@Example.org", "groups": []},
            "dave-sub": {"preferred_username": "dave", "name": "Dave", "email": "dave@example.org", "groups": []},
            "erin-sub": {"preferred_username": "erin", "name": "Erin", "email": "erin@example.org", "groups": []},
            // Addresses a provider did not verify, or in look-alike letters, match nobody.
            "frank-sub": {"preferred_username": "frank", "name": "Frank", "email": "carol@example.org", "email_verified": false, "groups": []},
            "kelvin-sub": {"preferred_username": "kelvin", "name": "Kelvin", "email": "\u{212A}im@example.org", "groups": []},
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
    let start = director
        .get(server.url("/auth/oidc/test/start?next=/account"))
        .send()
        .await
        .unwrap();
    at_the_provider(server, start, finisher, login).await
}

/// From Director's `start` (its redirect to the provider) on: `login` signs in at the provider,
/// and `finisher` follows the provider back to Director.
async fn at_the_provider(
    server: &TestServer,
    start: reqwest::Response,
    finisher: &reqwest::Client,
    login: &str,
) -> SignedIn {
    // The person's browser at the provider (whose certificate is not what is tested here).
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .danger_accept_invalid_certs(true)
        .build()
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
    let (listener, port) = provider_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let db = TestDb::with_settings(platform::Settings {
        oidc: vec![Provider::settings(&issuer, Registration::Open)],
        ..platform::Settings::default()
    })
    .await;
    // A local account already has the name Alice would like: hers is made unique.
    create_user(&db.platform, "alice", Role::User).await;
    let server = TestServer::start(db.platform.clone()).await;
    let provider = Provider::start(listener, &server.base).await;

    // A first sign-in makes her account, an admin by her groups, and lands on `next`.
    let alice = server.client();
    let done = sign_in(&server, &alice, "alice-sub").await;
    assert_eq!(done.location, "/account");
    let me = server.call(&alice, "current_user", &[]).await;
    let me: serde_json::Value = me.json().await.unwrap();
    assert_eq!(me["username"], "alice2", "{me}");
    assert_eq!(me["display_name"], "Alice Liddell");
    assert_eq!(me["is_admin"], true);
    assert_eq!(me["role"], "admin");

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
    // gets a third, and is an approver by their group.
    let done = sign_in(&server, &server.client(), "alice-sub").await;
    assert_eq!(done.location, "/account");
    let bob = server.client();
    sign_in(&server, &bob, "bob-sub").await;
    let me: serde_json::Value = server.call(&bob, "current_user", &[]).await.json().await.unwrap();
    assert_eq!(
        (me["username"].as_str(), me["role"].as_str()),
        (Some("alice3"), Some("approver")),
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
    let (listener, port) = provider_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let db = TestDb::with_settings(platform::Settings {
        oidc: vec![Provider::settings(&issuer, Registration::Closed)],
        ..platform::Settings::default()
    })
    .await;
    let server = TestServer::start(db.platform.clone()).await;
    let _provider = Provider::start(listener, &server.base).await;
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

/// A local account `username` with `email` (its password is `common::password(username)`).
async fn local_account(platform: &platform::Platform, username: &str, email: &str, role: Role) {
    platform
        .create_user(
            Some(&platform::Actor::operator()),
            platform::NewUser {
                username: username.to_owned(),
                display_name: username.to_owned(),
                email: email.to_owned(),
                password: common::password(username),
                role,
            },
        )
        .await
        .unwrap();
}

async fn json(
    server: &TestServer,
    client: &reqwest::Client,
    function: &str,
    form: &[(&str, &str)],
) -> serde_json::Value {
    let response = server.call(client, function, form).await;
    assert_eq!(response.status(), 200, "{function}");
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_with_an_accounts_email_waits_until_its_owner_or_an_admin_links_them() {
    let (listener, port) = provider_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let db = TestDb::with_settings(platform::Settings {
        oidc: vec![Provider::settings(&issuer, Registration::Open)],
        ..platform::Settings::default()
    })
    .await;
    local_account(&db.platform, "root", "", Role::Admin).await;
    local_account(&db.platform, "carol", "carol@example.org", Role::User).await;
    local_account(&db.platform, "dave", "dave@example.org", Role::User).await;
    let server = TestServer::start(db.platform.clone()).await;
    let provider = Provider::start(listener, &server.base).await;
    let accounts = || async {
        db.platform
            .list_users(Some(&platform::Actor::operator()))
            .await
            .unwrap()
            .len()
    };

    // Carol at the provider has the address of the local account carol (in other letters):
    // she is neither signed in to it nor given another one.
    let done = sign_in(&server, &server.client(), "carol-sub").await;
    assert_eq!(failed(&done.location), "account-exists");
    assert_eq!(accounts().await, 3);

    // An admin sees her waiting, and links her; then she signs in to carol.
    let root = server.signed_in("root", &common::password("root")).await;
    let waiting = json(&server, &root, "pending_identities", &[]).await;
    assert_eq!(waiting.as_array().unwrap().len(), 1, "{waiting}");
    assert_eq!(waiting[0]["username"], "carol");
    assert_eq!(
        waiting[0]["email"], "Carol@Example.org",
        "as the provider says it"
    );
    let (issuer_of, subject, carol_id) = (
        waiting[0]["issuer"].as_str().unwrap().to_owned(),
        waiting[0]["subject"].as_str().unwrap().to_owned(),
        waiting[0]["user_id"].to_string(),
    );
    let link = [
        ("issuer", issuer_of.as_str()),
        ("subject", subject.as_str()),
        ("user_id", carol_id.as_str()),
    ];
    // Members may not.
    let dave = server.signed_in("dave", &common::password("dave")).await;
    let refused = server.call(&dave, "link_pending", &link).await;
    assert_eq!(refused.status(), 403);
    // Had she signed in again meanwhile with another account's address, the admin's click
    // would link nobody: they must look again.
    set_email(&provider, "carol-sub", "dave@example.org");
    let again = sign_in(&server, &server.client(), "carol-sub").await;
    assert_eq!(failed(&again.location), "account-exists");
    let changed = server.call(&root, "link_pending", &link).await;
    assert_eq!(changed.status(), 409);
    set_email(&provider, "carol-sub", "Carol@Example.org");
    sign_in(&server, &server.client(), "carol-sub").await;
    json(&server, &root, "link_pending", &link).await;
    let carol = server.client();
    assert_eq!(sign_in(&server, &carol, "carol-sub").await.location, "/account");
    assert_eq!(
        json(&server, &carol, "current_user", &[]).await["username"],
        "carol"
    );
    nobody_waits(&server, &root).await;

    // Dave, signed in with his password, links the provider's Dave himself.
    let linked = link_as(&server, &dave, "dave-sub").await;
    assert_eq!(linked.location, "/account?linked=test");
    let methods = json(&server, &dave, "my_identities", &[]).await;
    assert_eq!(methods["linked"][0]["provider"], "Test SSO", "{methods}");
    assert!(methods["linkable"].as_array().unwrap().is_empty());
    let fresh = server.client();
    sign_in(&server, &fresh, "dave-sub").await;
    assert_eq!(
        json(&server, &fresh, "current_user", &[]).await["username"],
        "dave"
    );

    // An address the provider did not verify, or one in look-alike letters, is no account's:
    // those people get accounts of their own, without it.
    local_account(&db.platform, "kim", "kim@example.org", Role::User).await;
    for (person, username) in [("frank-sub", "frank"), ("kelvin-sub", "kelvin")] {
        let client = server.client();
        assert_eq!(sign_in(&server, &client, person).await.location, "/account");
        assert_eq!(
            json(&server, &client, "current_user", &[]).await["username"],
            username
        );
    }
    let users = json(&server, &root, "list_users", &[]).await;
    let frank = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "frank")
        .unwrap();
    assert_eq!(frank["email"], "", "an unverified address is not kept");
    nobody_waits(&server, &root).await;

    // Linking a person the provider vouches for who is someone else's already is refused.
    let taken = link_as(&server, &dave, "carol-sub").await;
    assert!(taken.location.starts_with("/account?"), "{}", taken.location);
    assert_eq!(failed_at(&taken.location), "linked-elsewhere");
    // Nobody signed out may start a link.
    let anonymous = server
        .client()
        .post(server.url("/auth/oidc/test/link"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    // Dave knows his password: he may unlink. Erin, whose account was made at her first
    // sign-in, has no other way in: she may not.
    let dave_link = &methods["linked"][0];
    let unlink = [
        ("issuer", dave_link["issuer"].as_str().unwrap()),
        ("subject", dave_link["subject"].as_str().unwrap()),
    ];
    json(&server, &dave, "unlink_identity", &unlink).await;
    // The session Dave's provider sign-in made ended with the link.
    assert!(json(&server, &fresh, "current_user", &[]).await.is_null());
    let erin = server.client();
    sign_in(&server, &erin, "erin-sub").await;
    let methods = json(&server, &erin, "my_identities", &[]).await;
    let erin_link = &methods["linked"][0];
    let only = server
        .call(
            &erin,
            "unlink_identity",
            &[
                ("issuer", erin_link["issuer"].as_str().unwrap()),
                ("subject", erin_link["subject"].as_str().unwrap()),
            ],
        )
        .await;
    assert_eq!(only.status(), 409);
    assert!(only.text().await.unwrap().contains("only way to sign in"));

    // Signing out of a session the provider's sign-in made offers to sign out there too, through
    // the provider's own end-session page.
    let out = server.call(&erin, "logout", &[]).await;
    assert_eq!(location(&out), "/login?signed_out=test");
    let page = server
        .page(&erin, "/login?signed_out=test")
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Sign out of Test SSO too"), "{page}");
    let there = erin
        .get(server.url("/auth/oidc/test/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(there.status(), 303);
    assert_eq!(
        location(&there),
        format!("{issuer}/session/end?client_id=director")
    );
    let out = server.call(&root, "logout", &[]).await;
    assert_eq!(
        location(&out),
        "/login",
        "a password's session has no provider to sign out of"
    );
}

/// `client`, signed in, links the provider's `person` to its account from the account page.
async fn link_as(server: &TestServer, client: &reqwest::Client, person: &str) -> SignedIn {
    let start = client
        .post(server.url("/auth/oidc/test/link"))
        .send()
        .await
        .unwrap();
    at_the_provider(server, start, client, person).await
}

/// Nobody waits to be linked, as the admin `root` sees.
async fn nobody_waits(server: &TestServer, root: &reqwest::Client) {
    let waiting = json(server, root, "pending_identities", &[]).await;
    assert!(waiting.as_array().unwrap().is_empty(), "{waiting}");
}

/// Changes what the provider says `person`'s address is.
fn set_email(provider: &Provider, person: &str, email: &str) {
    let mut people: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(provider.file.path()).unwrap()).unwrap();
    people["accounts"][person]["email"] = email.into();
    std::fs::write(provider.file.path(), people.to_string()).unwrap();
}

/// The refusal's name a redirect to any page carries.
fn failed_at(location: &str) -> String {
    url::form_urlencoded::parse(location.split_once('?').unwrap().1.as_bytes())
        .find(|(k, _)| k == "failed")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no refusal in {location}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_id_token_leaves_unsaid_is_read_from_the_userinfo_endpoint() {
    let (listener, port) = provider_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let db = TestDb::with_settings(platform::Settings {
        oidc: vec![Provider::settings(&issuer, Registration::Open)],
        ..platform::Settings::default()
    })
    .await;
    let server = TestServer::start(db.platform.clone()).await;
    let _provider = Provider::start_with(listener, &server.base, &["--claims-in-userinfo"]).await;
    let alice = server.client();
    assert_eq!(sign_in(&server, &alice, "alice-sub").await.location, "/account");
    let me = json(&server, &alice, "current_user", &[]).await;
    assert_eq!(
        (
            me["username"].as_str(),
            me["display_name"].as_str(),
            me["role"].as_str()
        ),
        (Some("alice"), Some("Alice Liddell"), Some("admin")),
        "{me}"
    );
}

/// A private certificate authority and a certificate it signed for 127.0.0.1, made by the
/// `openssl` command (which Debian's ca-certificates brings): the files' paths in `dir`.
fn private_authority(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let run = |args: &[&str]| {
        let status = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "openssl {args:?}");
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=Test private CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "tls.key",
        "-out",
        "tls.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "tls.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "tls.pem",
        "-days",
        "1",
        "-extfile",
        "san.ext",
    ]);
    (dir.join("ca.pem"), dir.join("tls.pem"), dir.join("tls.key"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_behind_a_private_authority_is_trusted_with_its_bundle_only() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = private_authority(dir.path());
    let (listener, port) = provider_port();
    let issuer = format!("https://127.0.0.1:{port}");
    let trusting = OidcProvider {
        ca_bundle: Some(std::fs::read(&ca).unwrap()),
        ..Provider::settings(&issuer, Registration::Open)
    };
    let untrusting = OidcProvider {
        id: "plain".to_owned(),
        ..Provider::settings(&issuer, Registration::Open)
    };
    let db = TestDb::with_settings(platform::Settings {
        oidc: vec![trusting, untrusting],
        ..platform::Settings::default()
    })
    .await;
    let server = TestServer::start(db.platform.clone()).await;
    let _provider = Provider::start_with(
        listener,
        &server.base,
        &["--tls", cert.to_str().unwrap(), key.to_str().unwrap()],
    )
    .await;
    let alice = server.client();
    assert_eq!(sign_in(&server, &alice, "alice-sub").await.location, "/account");
    assert_eq!(
        json(&server, &alice, "current_user", &[]).await["username"],
        "alice"
    );
    // Without the bundle the provider's certificate is a stranger's: no sign-in begins.
    let start = server
        .client()
        .get(server.url("/auth/oidc/plain/start"))
        .send()
        .await
        .unwrap();
    assert_eq!(failed(&location(&start)), "unavailable");
}
