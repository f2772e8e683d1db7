//! Domains through the real router and the real edge: an admin's domain is routed at once and
//! serves the site, the certificate `ask` endpoint says yes only for hosts Director serves, and a
//! removed domain stops being served.

mod common;

use std::time::Duration;

use common::{TestServer, edge::start_edge, running_site, signed_in_user, visit};
use platform::Role;

/// GET `/` of the edge as a visitor of `host` would: (status, body).
/// Waits (10 s at most) until `host` answers with `status`.
async fn until_status(edge: std::net::SocketAddr, host: &str, status: u16) -> String {
    for _ in 0..100 {
        let (got, body) = visit(edge, host).await;
        if got == status {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{host} never answered {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_is_served_once_routed_asked_for_and_gone_when_removed() {
    let edge = start_edge().await;
    let platform = edge.db.platform.clone();
    edge.start_workers();
    let (member, _) = signed_in_user(&platform, "member", Role::User).await;
    let (admin, _) = signed_in_user(&platform, "admin", Role::Admin).await;
    let site = running_site(&platform, &member, "shop").await;
    let server = TestServer::start(platform.clone()).await;
    let ask = |domain: &'static str| {
        let url = server.url(&format!("/edge/ask?domain={domain}"));
        async move { reqwest::get(url).await.unwrap().status().as_u16() }
    };

    // Nobody has shop.example.test yet: the edge does not know it, no certificate may be asked.
    assert_eq!(visit(edge.listen, "shop.example.test").await.0, 404);
    assert_eq!(ask("shop.example.test").await, 404);
    assert_eq!(ask("shop.localhost").await, 200, "a site's own name");
    assert_eq!(ask("nobody.localhost").await, 404);

    // A member's domain waits for verification: still not served.
    let pending = platform
        .add_domain(Some(&member), site.id, "www.example.test")
        .await
        .unwrap();
    assert_eq!(ask("www.example.test").await, 404);
    assert_eq!(visit(edge.listen, "www.example.test").await.0, 404);
    platform
        .remove_domain(Some(&member), site.id, pending.id)
        .await
        .unwrap();

    // An admin's is routed at once: the site's page on the domain.
    let domain = platform
        .add_domain(Some(&admin), site.id, "Shop.Example.Test")
        .await
        .unwrap();
    let body = until_status(edge.listen, "shop.example.test", 200).await;
    assert!(body.contains("starter page of shop"), "{body}");
    assert_eq!(ask("shop.example.test").await, 200);
    assert_eq!(ask("SHOP.example.test.").await, 200);
    // The site's own name still works beside it.
    assert_eq!(visit(edge.listen, "shop.localhost").await.0, 200);

    // Removed: gone from the edge, and no certificate may be asked for it.
    platform
        .remove_domain(Some(&member), site.id, domain.id)
        .await
        .unwrap();
    until_status(edge.listen, "shop.example.test", 404).await;
    assert_eq!(ask("shop.example.test").await, 404);
    assert_eq!(visit(edge.listen, "shop.localhost").await.0, 200);
}
