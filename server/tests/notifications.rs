//! Notifications against a real mail server (npm `maildev`, started here, whose REST API shows
//! what it received): an event lands in its person's inbox and is emailed through the durable
//! outbox — with the mail server down it is retried, and once it is back the email arrives
//! exactly once, even with Director restarted in between; a delivery past its day is given
//! up; each person's choices are followed; the test email shows the server's own answer.

mod common;

use std::time::Duration;

use common::TestServer;
use model::notification::{Channel, DeliveryState, Event};
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
