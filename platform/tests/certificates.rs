//! Certificate records against a real PostgreSQL: what admins are shown (failed, or expiring
//! within the window), how a failure, a retry time and an issue follow each other, who may read
//! a site's, and that hosts no longer served are forgotten.

use chrono::{Duration, Utc};
use platform::{
    Error, Role,
    sites::CertificateState,
    testing::{TestDb, signed_in_user, static_site},
};

#[tokio::test]
async fn admins_see_failed_and_soon_expiring_certificates_of_served_hosts_only() {
    let db = TestDb::new().await;
    let platform = &db.platform;
    let (member, _) = signed_in_user(platform, "member", Role::User).await;
    let (other, _) = signed_in_user(platform, "other", Role::User).await;
    let (admin, _) = signed_in_user(platform, "admin", Role::Admin).await;
    let (shop, _) = platform
        .create_site(Some(&member), static_site("shop"))
        .await
        .unwrap();
    let (blog, _) = platform
        .create_site(Some(&member), static_site("blog"))
        .await
        .unwrap();
    platform
        .add_domain(Some(&admin), shop.id, "*.shop.example.net")
        .await
        .unwrap();
    let hosts: Vec<String> = platform
        .served_hosts()
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.host)
        .collect();
    assert!(
        hosts.contains(&"shop.localhost".to_owned()) && hosts.contains(&"*.shop.example.net".to_owned()),
        "{hosts:?}"
    );

    let now = Utc::now();
    platform
        .certificate_issued("shop.localhost", now + Duration::days(3))
        .await
        .unwrap();
    platform
        .certificate_issued("blog.localhost", now + Duration::days(60))
        .await
        .unwrap();
    platform
        .certificate_failed("a.shop.example.net", "rate limited", now)
        .await
        .unwrap();
    platform
        .certificate_issued("gone.localhost", now + Duration::days(1))
        .await
        .unwrap();

    let listed: Vec<(String, i32)> = platform
        .certificate_problems(Some(&admin), Duration::days(14))
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.record.host, p.site_id))
        .collect();
    assert_eq!(
        listed,
        [
            ("a.shop.example.net".to_owned(), shop.id),
            ("shop.localhost".to_owned(), shop.id)
        ],
        "failures first, then by expiry; a name under a wildcard counts as its site's; a host nobody serves is left out"
    );
    assert!(matches!(
        platform
            .certificate_problems(Some(&member), Duration::days(14))
            .await,
        Err(Error::Forbidden)
    ));

    // A failure, then the edge's retry time, then the certificate: the reason goes away.
    let first = now - Duration::minutes(1);
    for at in [first, now] {
        platform
            .certificate_failed("blog.localhost", "connection refused", at)
            .await
            .unwrap();
    }
    let retry_at = now + Duration::minutes(2);
    platform
        .certificate_retry("blog.localhost", retry_at)
        .await
        .unwrap();
    // The edge's log read again after a restart: the same reports change nothing.
    for at in [first, now] {
        platform
            .certificate_failed("blog.localhost", "connection refused", at)
            .await
            .unwrap();
    }
    platform
        .certificate_retry("blog.localhost", first + Duration::seconds(60))
        .await
        .unwrap();
    let records = platform.site_certificates(Some(&member), blog.id).await.unwrap();
    assert_eq!(records[0].host, "blog.localhost");
    let record = records[0].record.as_ref().unwrap();
    assert_eq!(record.state, CertificateState::Failed);
    assert_eq!(record.attempts, 2);
    assert_eq!(record.error, "connection refused");
    assert_eq!(
        record.retry_at.unwrap().timestamp_millis(),
        retry_at.timestamp_millis()
    );
    assert!(
        record.not_after.is_some(),
        "a failing renewal keeps the certificate's expiry on show"
    );
    platform
        .certificate_issued("blog.localhost", now + Duration::days(90))
        .await
        .unwrap();
    let records = platform.site_certificates(Some(&admin), blog.id).await.unwrap();
    let record = records[0].record.as_ref().unwrap();
    assert_eq!(record.state, CertificateState::Issued);
    assert_eq!(
        (record.error.as_str(), record.attempts, record.retry_at),
        ("", 0, None)
    );

    // Only members and admins read a site's certificates.
    assert!(matches!(
        platform.site_certificates(Some(&other), blog.id).await,
        Err(Error::NotFound(_))
    ));

    // Hosts no longer served are forgotten.
    let removed = platform.forget_certificates_except(&hosts).await.unwrap();
    assert_eq!(
        removed, 2,
        "gone.localhost and the name under the wildcard (the worker keeps those)"
    );
}
