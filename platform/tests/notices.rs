//! What a site's members (and for certificates the admins) are told, against a real
//! PostgreSQL: an operation that failed (once an hour per site, however often it fails), a site
//! an admin disabled or enabled (with the reason, which disabling requires), a certificate that
//! could not be had (at its first failure) or expires within 14 days (once per expiry).

use std::sync::Mutex;

use chrono::{Duration, Utc};
use model::notification::Event;
use platform::{
    Actor, Error, Platform, Role,
    sites::{Action, Actions, Availability, Site},
    testing::{TestDb, signed_in_user, static_site},
};

/// An engine that does every action but the one it is told to refuse.
#[derive(Default)]
struct Refusing(Mutex<Option<Action>>);

impl Actions for Refusing {
    fn run(&self, action: Action, _site: &Site) -> impl Future<Output = Result<String, String>> + Send {
        let refused = *self.0.lock().unwrap() == Some(action);
        async move {
            if refused {
                Err(format!("the engine refused {action}"))
            } else {
                Ok(format!("{action} done"))
            }
        }
    }
}

/// What `who` was told of `event`: each notification's subject and body.
async fn told(platform: &Platform, who: &Actor, event: Event) -> Vec<(String, String)> {
    platform
        .inbox(Some(who), 100)
        .await
        .unwrap()
        .0
        .into_iter()
        .filter(|n| n.event == event)
        .map(|n| (n.subject, n.body))
        .collect()
}

/// A member's site `shop`, made by its create.
async fn made_shop(db: &TestDb) -> (Actor, Site) {
    let member = signed_in_user(&db.platform, "member", Role::User).await.0;
    let (site, _) = db
        .platform
        .create_site(Some(&member), static_site("shop"))
        .await
        .unwrap();
    assert!(
        db.platform
            .run_next_operation(&Refusing::default())
            .await
            .unwrap()
    );
    (member, site)
}

#[tokio::test]
async fn a_failed_operation_is_told_to_the_sites_members_once_an_hour() {
    let db = TestDb::new().await;
    let (member, site) = made_shop(&db).await;
    let other = signed_in_user(&db.platform, "other", Role::User).await.0;
    // A fix fails where the site's routes are put.
    let engine = Refusing(Mutex::new(Some(Action::PutRoutes)));
    let admin = signed_in_user(&db.platform, "boss", Role::Admin).await.0;
    let fix = db.platform.fix_site(Some(&admin), site.id).await.unwrap();
    assert!(db.platform.run_next_operation(&engine).await.unwrap());
    let failures = told(&db.platform, &member, Event::OperationFailed).await;
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].0.contains("failed for shop"), "{failures:?}");
    assert!(
        failures[0].1.contains("the engine refused put-routes"),
        "{failures:?}"
    );
    assert!(
        told(&db.platform, &other, Event::OperationFailed)
            .await
            .is_empty()
    );

    // It fails again at once: nobody is told twice within the hour.
    db.platform
        .retry_operation(Some(&admin), site.id, fix)
        .await
        .unwrap();
    assert!(db.platform.run_next_operation(&engine).await.unwrap());
    assert_eq!(told(&db.platform, &member, Event::OperationFailed).await.len(), 1);
}

#[tokio::test]
async fn an_admin_disables_a_site_with_a_reason_its_members_are_told() {
    let db = TestDb::new().await;
    let (member, site) = made_shop(&db).await;
    let admin = signed_in_user(&db.platform, "boss", Role::Admin).await.0;

    for (availability, reason, field) in [
        (Availability::Disabled, "  ", "reason"),
        (Availability::Disabled, &*"x".repeat(501), "reason"),
        (Availability::Disabled, "a NUL \0 byte", "reason"),
        (Availability::NotServed, "why", "availability"),
    ] {
        let refused = db
            .platform
            .set_availability(Some(&admin), site.id, availability, reason)
            .await;
        assert!(
            matches!(refused, Err(Error::Invalid { field: f, .. }) if f == field),
            "{availability:?} {reason:?}: {refused:?}"
        );
    }
    assert!(told(&db.platform, &member, Event::SiteDisabled).await.is_empty());
    assert!(matches!(
        db.platform
            .set_availability(Some(&member), site.id, Availability::Disabled, "mine")
            .await,
        Err(Error::Forbidden)
    ));

    // A member whose account was deactivated is told nothing more.
    let quiet = signed_in_user(&db.platform, "quiet", Role::User).await.0;
    db.platform
        .add_member(Some(&member), site.id, "quiet")
        .await
        .unwrap();
    db.platform
        .set_user_active(Some(&admin), quiet.user_id, false)
        .await
        .unwrap();
    db.platform
        .set_availability(Some(&admin), site.id, Availability::Disabled, "It sends spam.")
        .await
        .unwrap();
    let disabled = told(&db.platform, &member, Event::SiteDisabled).await;
    assert!(told(&db.platform, &quiet, Event::SiteDisabled).await.is_empty());
    assert_eq!(disabled[0].0, "Your site shop was disabled");
    assert!(disabled[0].1.contains("boss"), "{disabled:?}");
    assert!(
        disabled[0].1.contains("The reason: “It sends spam.”"),
        "{disabled:?}"
    );
    let audit = db.platform.audit_entries(Some(&admin), None, 10).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "site.availability" && e.details == "disabled: It sends spam."),
        "{audit:?}"
    );

    // Enabled again, without a reason: said plainly.
    db.platform
        .set_availability(Some(&admin), site.id, Availability::Enabled, "")
        .await
        .unwrap();
    let told_now = told(&db.platform, &member, Event::SiteDisabled).await;
    assert_eq!(told_now[0].0, "Your site shop was enabled again", "{told_now:?}");
    assert!(!told_now[0].1.contains("reason"), "{told_now:?}");
}

#[tokio::test]
async fn certificate_trouble_is_told_to_members_and_admins_once() {
    let db = TestDb::new().await;
    let (member, site) = made_shop(&db).await;
    let admin = signed_in_user(&db.platform, "boss", Role::Admin).await.0;
    let host = db
        .platform
        .served_hosts()
        .await
        .unwrap()
        .into_iter()
        .find(|h| h.site_id == site.id)
        .unwrap()
        .host;

    // The first failure is told; the next (a retry of the same trouble) is not.
    let now = Utc::now();
    db.platform
        .certificate_failed(&host, "the CA said: too many certificates", now)
        .await
        .unwrap();
    db.platform
        .certificate_failed(
            &host,
            "the CA said: too many certificates",
            now + Duration::seconds(5),
        )
        .await
        .unwrap();
    for who in [&member, &admin] {
        let trouble = told(&db.platform, who, Event::CertificateProblem).await;
        assert_eq!(trouble.len(), 1, "{trouble:?}");
        assert_eq!(trouble[0].0, format!("No HTTPS certificate for {host}"));
        assert!(trouble[0].1.contains("too many certificates"), "{trouble:?}");
    }

    // Issued for long: nothing to tell. Expiring in five days: told, once.
    db.platform
        .certificate_issued(&host, now + Duration::days(90))
        .await
        .unwrap();
    assert_eq!(db.platform.tell_expiring_certificates().await.unwrap(), 0);
    let expires = now + Duration::days(5);
    db.platform.certificate_issued(&host, expires).await.unwrap();
    assert_eq!(db.platform.tell_expiring_certificates().await.unwrap(), 1);
    assert_eq!(
        db.platform.tell_expiring_certificates().await.unwrap(),
        0,
        "told once"
    );
    for who in [&member, &admin] {
        let trouble = told(&db.platform, who, Event::CertificateProblem).await;
        assert_eq!(trouble.len(), 2, "{trouble:?}");
        assert_eq!(
            trouble[0].0,
            format!(
                "The certificate of {host} expires on {}",
                expires.format("%Y-%m-%d")
            )
        );
    }
    // A renewal that again comes close to its end is a new expiry, told again.
    db.platform
        .certificate_issued(&host, now + Duration::days(3))
        .await
        .unwrap();
    assert_eq!(db.platform.tell_expiring_certificates().await.unwrap(), 1);

    // A renewal that fails keeps the certificate it was to replace: that is said, and its end
    // is still told of as it comes.
    let (cafe, _) = db
        .platform
        .create_site(Some(&member), static_site("cafe"))
        .await
        .unwrap();
    assert!(
        db.platform
            .run_next_operation(&Refusing::default())
            .await
            .unwrap()
    );
    let cafe_host = format!("cafe.{}", db.platform.settings().sites_domain);
    db.platform
        .certificate_issued(&cafe_host, now + Duration::days(10))
        .await
        .unwrap();
    db.platform
        .certificate_failed(&cafe_host, "the CA is down", now + Duration::seconds(10))
        .await
        .unwrap();
    let renewal = told(&db.platform, &member, Event::CertificateProblem).await;
    assert_eq!(
        renewal[0].0,
        format!("Renewing the certificate of {cafe_host} failed")
    );
    assert!(
        renewal[0].1.contains("The current one is valid until"),
        "{renewal:?}"
    );
    assert_eq!(db.platform.tell_expiring_certificates().await.unwrap(), 1);
    assert!(cafe.id != site.id);
}

#[tokio::test]
async fn read_notifications_and_finished_deliveries_are_forgotten_after_their_keeping() {
    use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _};
    let db = TestDb::new().await;
    let (member, site) = made_shop(&db).await;
    let admin = signed_in_user(&db.platform, "boss", Role::Admin).await.0;
    for (availability, reason) in [
        (Availability::Disabled, "for a week"),
        (Availability::Enabled, ""),
    ] {
        db.platform
            .set_availability(Some(&admin), site.id, availability, reason)
            .await
            .unwrap();
    }
    let (items, unread) = db.platform.inbox(Some(&member), 10).await.unwrap();
    assert_eq!((items.len(), unread), (2, 2));
    // The older one was read long ago; the newer one, as old, was never read.
    db.platform
        .mark_read(Some(&member), Some(items[1].id))
        .await
        .unwrap();
    let mut conn = AsyncPgConnection::establish(&db.url).await.unwrap();
    diesel::sql_query("UPDATE notifications SET created_at = now() - interval '200 days', read_at = CASE WHEN read_at IS NULL THEN NULL ELSE now() - interval '200 days' END")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(db.platform.purge_old_notifications().await.unwrap(), (1, 0));
    let (left, unread) = db.platform.inbox(Some(&member), 10).await.unwrap();
    assert_eq!((left.len(), unread), (1, 1), "the unread one stays");
    assert_eq!(left[0].id, items[0].id);
}
