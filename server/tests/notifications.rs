//! Notifications against a real mail server (npm `maildev`, started here, whose REST API shows
//! what it received): an event lands in its person's inbox and is emailed through the durable
//! outbox — with the mail server down it is retried, and once it is back the email arrives
//! exactly once, even with Director restarted in between; a delivery past its day is given
//! up; each person's choices are followed; the test email shows the server's own answer.

mod common;

use std::time::Duration;

use common::TestServer;
use model::notification::{Channel, DeliveryState, Event, WebhookScope};
use platform::{Actor, Platform, Role, notify::SmtpSettings, testing::TestDb};

/// The mail server, on its own ports; it goes with it.
struct MailServer {
    _process: tokio::process::Child,
    api: String,
}

impl MailServer {
    async fn start(smtp: u16) -> Self {
        let web = platform::testing::free_port();
        let bin = concat!(env!("CARGO_MANIFEST_DIR"), "/../node_modules/.bin/maildev");
        let mut child = tokio::process::Command::new(bin)
            .args(["--smtp", &smtp.to_string(), "--web", &web.to_string()])
            .args(["--ip", "127.0.0.1", "--web-ip", "127.0.0.1"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("maildev runs (npm ci installs it)");
        let mut out = tokio::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(30), async {
            while !line.contains("MailDev API running") {
                line.clear();
                tokio::io::AsyncBufReadExt::read_line(&mut out, &mut line)
                    .await
                    .unwrap();
            }
        })
        .await
        .expect("maildev starts within 30 s");
        // Its output is read no more: let it go where nobody reads.
        tokio::spawn(async move {
            let mut sink = tokio::io::sink();
            let _ = tokio::io::copy(&mut out, &mut sink).await;
        });
        Self {
            _process: child,
            api: format!("http://127.0.0.1:{web}/api/email"),
        }
    }

    /// Every email it received.
    async fn emails(&self) -> Vec<serde_json::Value> {
        reqwest::get(&self.api).await.unwrap().json().await.unwrap()
    }
}

fn settings(smtp: u16) -> platform::Settings {
    platform::Settings {
        public_url: "https://director.example.org".to_owned(),
        smtp: Some(SmtpSettings {
            url: format!("smtp://127.0.0.1:{smtp}"),
            username: None,
            password: None,
            from: "Director <director@example.org>".to_owned(),
        }),
        delivery_retry: Duration::from_millis(50),
        ..platform::Settings::default()
    }
}

/// `name` with the address `name@example.org`.
async fn person(platform: &Platform, name: &str, role: Role) -> Actor {
    platform
        .create_user(
            Some(&Actor::operator()),
            platform::NewUser {
                username: name.to_owned(),
                display_name: format!("{name} display"),
                email: format!("{name}@example.org"),
                password: common::password(name),
                role,
            },
        )
        .await
        .unwrap();
    platform
        .login(name, &common::password(name), &platform::ClientInfo::default())
        .await
        .unwrap()
        .0
}

/// A site of `owner`'s, to add people to.
async fn site_of(platform: &Platform, owner: &Actor, name: &str) -> i32 {
    let new = platform::sites::NewSite {
        name: name.to_owned(),
        description: String::new(),
        purpose: "project".to_owned(),
        kind: "static".to_owned(),
        image: "busybox".to_owned(),
    };
    platform.create_site(Some(owner), new).await.unwrap().0.id
}

/// Runs deliveries until none is due; how many ran.
async fn deliver_all(platform: &Platform) -> usize {
    let mut ran = 0;
    while platform.deliver_next().await.unwrap() {
        ran += 1;
    }
    ran
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_waits_out_a_mail_server_that_is_down_and_arrives_once_even_across_a_restart() {
    let smtp = platform::testing::free_port();
    let db = TestDb::with_settings(settings(smtp)).await;
    let owner = person(&db.platform, "owner", Role::User).await;
    let alice = person(&db.platform, "alice", Role::User).await;
    let admin = person(&db.platform, "boss", Role::Admin).await;
    let site = site_of(&db.platform, &owner, "club").await;
    db.platform.add_member(Some(&owner), site, "alice").await.unwrap();

    // Her inbox has it at once.
    let (items, unread) = db.platform.inbox(Some(&alice), 10).await.unwrap();
    assert_eq!(unread, 1);
    assert_eq!(items[0].event, Event::Membership);
    assert_eq!(items[0].link, format!("/sites/{site}"));

    // The mail server is down: the attempt fails, and is due again later.
    assert_eq!(deliver_all(&db.platform).await, 1);
    let queued = db.platform.deliveries(Some(&admin)).await.unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!((queued[0].state, queued[0].attempts), (DeliveryState::Pending, 1));
    assert!(!queued[0].last_error.is_empty());

    // Director restarts (a new platform on the same database), and the mail server comes back.
    let restarted = Platform::new(platform::db::pool(&db.url, 4).unwrap(), settings(smtp));
    let mail = MailServer::start(smtp).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(deliver_all(&restarted).await, 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(deliver_all(&restarted).await, 0, "nothing is sent twice");
    let emails = mail.emails().await;
    assert_eq!(emails.len(), 1, "{emails:#?}");
    let email = &emails[0];
    assert_eq!(email["to"][0]["address"], "alice@example.org");
    assert_eq!(email["subject"], "[Director] You were added to the site club");
    let link = format!("https://director.example.org/sites/{site}");
    assert!(email["text"].as_str().unwrap().contains(&link), "{email:#}");
    assert!(
        email["html"]
            .as_str()
            .unwrap()
            .contains(&format!("href=\"{link}\"")),
        "{email:#}"
    );
    let message_id = email["headers"]["message-id"].as_str().unwrap();
    assert!(message_id.starts_with("<delivery-"), "{email:#}");
    let sent = db.platform.deliveries(Some(&admin)).await.unwrap();
    assert_eq!((sent[0].state, sent[0].attempts), (DeliveryState::Delivered, 2));

    db.platform.mark_read(Some(&alice), None).await.unwrap();
    assert_eq!(db.platform.inbox(Some(&alice), 10).await.unwrap().1, 0);
    // Nobody reads another's notifications, nor marks them.
    assert!(matches!(
        db.platform.mark_read(Some(&owner), Some(items[0].id)).await,
        Err(platform::Error::NotFound(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_is_given_up_after_its_day_and_each_persons_choices_are_followed() {
    let smtp = platform::testing::free_port();
    let db = TestDb::with_settings(platform::Settings {
        delivery_give_up: Duration::ZERO,
        ..settings(smtp)
    })
    .await;
    let owner = person(&db.platform, "owner", Role::User).await;
    let bob = person(&db.platform, "bob", Role::User).await;
    let admin = person(&db.platform, "boss", Role::Admin).await;
    let site = site_of(&db.platform, &owner, "band").await;
    db.platform.add_member(Some(&owner), site, "bob").await.unwrap();
    deliver_all(&db.platform).await;
    let given_up = db.platform.deliveries(Some(&admin)).await.unwrap();
    assert_eq!(
        (given_up[0].state, given_up[0].attempts),
        (DeliveryState::Failed, 1)
    );

    // Bob wants no emails, and no inbox row, of membership changes.
    for channel in [Channel::Email, Channel::Inbox] {
        db.platform
            .set_notification_choice(Some(&bob), Event::Membership, channel, false)
            .await
            .unwrap();
    }
    let choices = db.platform.notification_choices(Some(&bob)).await.unwrap();
    assert!(choices.contains(&(Event::Membership, Channel::Email, false)));
    assert!(choices.contains(&(Event::SiteCreated, Channel::Email, true)));
    let bob_id = db
        .platform
        .site_members(Some(&owner), site)
        .await
        .unwrap()
        .into_iter()
        .find(|(_, name)| name == "bob")
        .unwrap()
        .0;
    db.platform
        .remove_member(Some(&owner), site, bob_id)
        .await
        .unwrap();
    assert_eq!(
        db.platform.deliveries(Some(&admin)).await.unwrap().len(),
        1,
        "no new email"
    );
    let (items, unread) = db.platform.inbox(Some(&bob), 10).await.unwrap();
    assert_eq!(
        (items.len(), unread),
        (2, 1),
        "the removal is there, read already"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_email_says_what_the_mail_server_answered_and_the_bell_counts_the_unread() {
    let smtp = platform::testing::free_port();
    let db = TestDb::with_settings(settings(smtp)).await;
    let owner = person(&db.platform, "owner", Role::User).await;
    person(&db.platform, "carol", Role::User).await;
    let server = TestServer::start(db.platform.clone()).await;
    let carol = server.signed_in("carol", &common::password("carol")).await;

    let down: serde_json::Value = server
        .call(&carol, "send_test_email", &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(down["sent"], false, "{down}");
    assert!(!down["said"].as_str().unwrap().is_empty(), "{down}");
    let mail = MailServer::start(smtp).await;
    let up: serde_json::Value = server
        .call(&carol, "send_test_email", &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(up["sent"], true, "{up}");
    let emails = mail.emails().await;
    assert_eq!(emails[0]["subject"], "[Director] A test from Director");
    // One sent test per half minute.
    let again = server.call(&carol, "send_test_email", &[]).await;
    assert_eq!(again.status(), 409);

    let site = site_of(&db.platform, &owner, "choir").await;
    db.platform.add_member(Some(&owner), site, "carol").await.unwrap();
    let me: serde_json::Value = server
        .call(&carol, "current_user", &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["unread"], 1, "{me}");
    let page = server.page(&carol, "/notifications").await.text().await.unwrap();
    assert!(page.contains("You were added to the site choir"), "{page}");
    assert!(page.contains("Notifications, 1 unread"), "{page}");
}

/// The webhook endpoint (`end2end/webhook-receiver.py`, which checks signatures with Python's
/// own hmac), on its own port; it goes with it.
struct Receiver {
    _process: tokio::process::Child,
    base: String,
}

impl Receiver {
    async fn start() -> Self {
        let port = platform::testing::free_port();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../end2end/webhook-receiver.py");
        let mut child = tokio::process::Command::new("python3")
            .args([script, &port.to_string()])
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs (scripts/setup installs it)");
        let mut out = tokio::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        tokio::time::timeout(
            Duration::from_secs(20),
            tokio::io::AsyncBufReadExt::read_line(&mut out, &mut line),
        )
        .await
        .expect("the receiver starts within 20 s")
        .unwrap();
        assert!(line.contains("webhook receiver on"), "{line}");
        Self {
            _process: child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Tells it the secret of `path`, and the statuses it answers there in turn.
    async fn expect(&self, path: &str, secret: &str, statuses: &str) {
        let http = reqwest::Client::new();
        for (what, body) in [("_secret", secret), ("_status", statuses)] {
            let url = format!("{}/{what}{path}", self.base);
            assert_eq!(
                http.put(url).body(body.to_owned()).send().await.unwrap().status(),
                204
            );
        }
    }

    /// Every POST it received at `path`.
    async fn received(&self, path: &str) -> Vec<serde_json::Value> {
        let all: Vec<serde_json::Value> = reqwest::get(format!("{}/_received", self.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        all.into_iter().filter(|r| r["path"] == path).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_retried_while_the_endpoint_is_down_and_follow_each_persons_choices() {
    let receiver = Receiver::start().await;
    let db = TestDb::with_settings(platform::Settings {
        public_url: "https://director.example.org".to_owned(),
        delivery_retry: Duration::from_millis(50),
        // The receiver is on this machine: loopback is refused unless the operator allows it.
        webhook_allowed_networks: vec!["127.0.0.1/32".parse().unwrap()],
        ..platform::Settings::default()
    })
    .await;
    let owner = person(&db.platform, "owner", Role::User).await;
    let alice = person(&db.platform, "alice", Role::User).await;
    let admin = person(&db.platform, "boss", Role::Admin).await;
    let (mine, secret) = db
        .platform
        .add_webhook(
            Some(&alice),
            &format!("{}/alice", receiver.base),
            WebhookScope::Mine,
        )
        .await
        .unwrap();
    assert!(secret.starts_with("whsec_") && secret.len() > 40, "{secret}");
    receiver.expect("/alice", &secret, "503").await;
    let (_, everyone_secret) = db
        .platform
        .add_webhook(
            Some(&admin),
            &format!("{}/all", receiver.base),
            WebhookScope::Everyone,
        )
        .await
        .unwrap();
    receiver.expect("/all", &everyone_secret, "").await;
    // A member may not hear everyone's events.
    assert!(matches!(
        db.platform
            .add_webhook(
                Some(&alice),
                &format!("{}/x", receiver.base),
                WebhookScope::Everyone
            )
            .await,
        Err(platform::Error::Forbidden)
    ));

    let site = site_of(&db.platform, &owner, "club").await;
    db.platform.add_member(Some(&owner), site, "alice").await.unwrap();
    // Alice's endpoint is down (503) at first; everyone's takes it.
    assert_eq!(deliver_all(&db.platform).await, 2);
    let hooks = db.platform.webhooks(Some(&alice)).await.unwrap();
    assert_eq!(hooks.len(), 1, "hers only");
    assert_eq!(hooks[0].last_state, Some(DeliveryState::Pending));
    assert!(hooks[0].last_error.contains("503"), "{hooks:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(deliver_all(&db.platform).await, 1);
    assert_eq!(deliver_all(&db.platform).await, 0, "nothing is sent twice");

    let posts = receiver.received("/alice").await;
    assert_eq!(posts.len(), 2, "{posts:#?}");
    for post in &posts {
        assert_eq!(post["verified"], true, "{post:#}");
        assert_eq!(post["headers"]["content-type"], "application/json");
        assert_eq!(post["headers"]["x-director-event"], "membership");
    }
    assert_eq!(
        posts[0]["body"]["delivery"], posts[1]["body"]["delivery"],
        "a repeat is recognisable"
    );
    let body = &posts[1]["body"];
    assert_eq!(body["event"], "membership");
    assert_eq!(body["subject"], "You were added to the site club");
    assert_eq!(body["recipient"], "alice");
    assert_eq!(body["link"], format!("https://director.example.org/sites/{site}"));
    assert_eq!(
        body["text"],
        format!("You were added to the site club\nhttps://director.example.org/sites/{site}")
    );
    assert!(chrono::DateTime::parse_from_rfc3339(body["time"].as_str().unwrap()).is_ok());
    let all = receiver.received("/all").await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["verified"], true);
    assert!(all[0]["body"].get("recipient").is_none(), "{:#}", all[0]);
    assert_eq!(
        db.platform.webhooks(Some(&alice)).await.unwrap()[0].last_state,
        Some(DeliveryState::Delivered)
    );
    // A POST signed with another secret does not pass the receiver's check.
    let other = platform::webhooks::signature("not the secret", chrono::Utc::now().timestamp(), b"{}");
    assert_ne!(
        other,
        platform::webhooks::signature(&secret, chrono::Utc::now().timestamp(), b"{}")
    );

    // Alice turns webhooks off for membership changes: hers hears nothing more of them,
    // everyone's still does.
    db.platform
        .set_notification_choice(Some(&alice), Event::Membership, Channel::Webhook, false)
        .await
        .unwrap();
    let alice_id = db
        .platform
        .site_members(Some(&owner), site)
        .await
        .unwrap()
        .into_iter()
        .find(|(_, name)| name == "alice")
        .unwrap()
        .0;
    db.platform
        .remove_member(Some(&owner), site, alice_id)
        .await
        .unwrap();
    deliver_all(&db.platform).await;
    assert_eq!(receiver.received("/alice").await.len(), 2);
    assert_eq!(receiver.received("/all").await.len(), 2);

    // An endpoint that refuses for good (410) or redirects is given up at once.
    db.platform
        .set_notification_choice(Some(&alice), Event::Membership, Channel::Webhook, true)
        .await
        .unwrap();
    receiver.expect("/alice", &secret, "410").await;
    db.platform.add_member(Some(&owner), site, "alice").await.unwrap();
    deliver_all(&db.platform).await;
    let hers = db.platform.webhooks(Some(&alice)).await.unwrap();
    assert_eq!(hers[0].last_state, Some(DeliveryState::Failed), "{hers:?}");
    assert!(hers[0].last_error.contains("410"), "{hers:?}");
    receiver.expect("/alice", &secret, "302").await;
    db.platform
        .remove_member(Some(&owner), site, alice_id)
        .await
        .unwrap();
    deliver_all(&db.platform).await;
    let hers = db.platform.webhooks(Some(&alice)).await.unwrap();
    assert_eq!(hers[0].last_state, Some(DeliveryState::Failed), "{hers:?}");
    assert!(
        hers[0].last_error.contains("redirects are not followed"),
        "{hers:?}"
    );
    assert_eq!(receiver.received("/alice").await.len(), 4);

    // Nobody removes another's webhook; its owner does, and what it had pending goes too.
    assert!(matches!(
        db.platform.remove_webhook(Some(&owner), mine.id).await,
        Err(platform::Error::NotFound(_))
    ));
    db.platform.remove_webhook(Some(&alice), mine.id).await.unwrap();
    assert!(db.platform.webhooks(Some(&alice)).await.unwrap().is_empty());
    assert_eq!(
        db.platform.webhooks(Some(&admin)).await.unwrap().len(),
        1,
        "everyone's stays"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_never_reach_loopback_link_local_the_host_or_the_engines_networks() {
    let receiver = Receiver::start().await;
    let db = TestDb::new().await;
    let alice = person(&db.platform, "alice", Role::User).await;
    let mut refused = vec![
        receiver.base.clone(),
        "http://localhost:9/x".to_owned(),
        "http://[::1]/x".to_owned(),
        "http://[::ffff:127.0.0.1]/x".to_owned(),
        "http://0.0.0.0/x".to_owned(),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://[fe80::1]/x".to_owned(),
        "http://224.0.0.1/x".to_owned(),
        // Private addresses (Docker's pools among them), a cloud's IPv6 metadata service, an
        // IPv4 address carried by NAT64.
        "http://172.17.0.1:2375/containers/json".to_owned(),
        "http://10.0.0.5/x".to_owned(),
        "http://[fd00:ec2::254]/latest/api/token".to_owned(),
        "http://[64:ff9b::a9fe:a9fe]/".to_owned(),
        // Written as a number, it is still 127.0.0.1.
        "http://2130706433/x".to_owned(),
        "ftp://example.org/x".to_owned(),
        "https://me:pw@example.org/x".to_owned(),
    ];
    // The host's own address on its way out, when it has one: a POST there reaches whatever
    // listens on the host.
    let probe = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    if probe.connect("192.0.2.1:9").is_ok() {
        refused.push(format!("http://{}:5432/", probe.local_addr().unwrap().ip()));
    }
    for url in &refused {
        let err = db
            .platform
            .add_webhook(Some(&alice), url, WebhookScope::Mine)
            .await
            .expect_err(url);
        assert!(
            matches!(err, platform::Error::Invalid { field: "url", .. }),
            "{url}: {err}"
        );
    }
    assert!(db.platform.webhooks(Some(&alice)).await.unwrap().is_empty());

    // Added where the operator allowed it, then sent by a Director that does not: refused at
    // the send, and given up (the check is made again at every send, as a name's address may
    // change between).
    let allowing = Platform::new(
        platform::db::pool(&db.url, 2).unwrap(),
        platform::Settings {
            webhook_allowed_networks: vec!["127.0.0.1/32".parse().unwrap()],
            ..platform::Settings::default()
        },
    );
    let alice_there = allowing
        .login(
            "alice",
            &common::password("alice"),
            &platform::ClientInfo::default(),
        )
        .await
        .unwrap()
        .0;
    allowing
        .add_webhook(
            Some(&alice_there),
            &format!("{}/alice", receiver.base),
            WebhookScope::Mine,
        )
        .await
        .unwrap();
    let owner = person(&db.platform, "owner", Role::User).await;
    let site = site_of(&db.platform, &owner, "club").await;
    db.platform.add_member(Some(&owner), site, "alice").await.unwrap();
    assert_eq!(deliver_all(&db.platform).await, 1);
    let hooks = db.platform.webhooks(Some(&alice)).await.unwrap();
    assert_eq!(hooks[0].last_state, Some(DeliveryState::Failed), "{hooks:?}");
    assert!(hooks[0].last_error.contains("loopback"), "{hooks:?}");
    assert!(receiver.received("/alice").await.is_empty());

    // A test is refused too, and counts: a second at once is refused before it is tried, so
    // tests cannot probe one address after another.
    let tried = db.platform.test_webhook(Some(&alice), hooks[0].id).await.unwrap();
    assert!(!tried.sent && tried.said.contains("loopback"), "{tried:?}");
    assert!(matches!(
        db.platform.test_webhook(Some(&alice), hooks[0].id).await,
        Err(platform::Error::Conflict(_))
    ));
}
