//! HTTPS with a real ACME CA (pebble, validating against the real edge): a site's host and a
//! verified domain get certificates and serve over HTTPS, plain HTTP redirects them; an
//! unverified domain and a host nobody serves get none; with the CA gone, the failure, its
//! reason and the retry time are recorded, and the certificate comes once the CA is back.

mod common;

use std::{net::SocketAddr, path::Path, process::Command, time::Duration};

use common::{
    TestServer,
    acme::{Acme, free_address},
    edge::start_edge_with,
    password, running_site, signed_in_user,
};
use platform::{
    Platform, Role,
    sites::{CertificateRecord, CertificateState},
};

/// GET `https://<host>/` through the edge with curl, trusting only `root`: the body, or curl's
/// error.
fn curl(https: SocketAddr, host: &str, root: &Path) -> Result<String, String> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(root)
        .arg("--resolve")
        .arg(format!("{host}:{}:127.0.0.1", https.port()))
        .arg(format!("https://{host}:{}/", https.port()))
        .output()
        .expect("curl (Debian package curl) is installed");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The record of `host` once `done` says so; panics with the last one after `seconds`.
async fn record_when(
    platform: &Platform,
    host: &str,
    seconds: u64,
    done: impl Fn(&CertificateRecord) -> bool,
) -> CertificateRecord {
    let mut last = None;
    for _ in 0..seconds * 4 {
        last = platform
            .certificate_records()
            .await
            .unwrap()
            .into_iter()
            .find(|r| r.host == host);
        if last.as_ref().is_some_and(&done) {
            return last.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("{host}: the certificate record never got there: {last:?}");
}

fn issued(record: &CertificateRecord) -> bool {
    record.state == CertificateState::Issued
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sites_and_verified_domains_get_certificates_that_retry_while_the_ca_is_away() {
    let (http, https) = (free_address(), free_address());
    let mut acme = Acme::start(http.port(), https.port()).await;
    let edge = start_edge_with(http, "sites.test", Some(acme.config(https))).await;
    edge.start_workers();
    edge.start_certificates();
    let platform = edge.db.platform.clone();
    let caddy = edge.runtime.borrow().clone().unwrap().edge;
    let (member, _) = signed_in_user(&platform, "member", Role::User).await;
    let (admin, _) = signed_in_user(&platform, "admin", Role::Admin).await;
    let site = running_site(&platform, &member, "shop").await;
    assert_eq!(
        platform.url_of(&site),
        format!("https://shop.sites.test:{}", https.port())
    );

    // The site's own host: a certificate before anybody visits, and the site over HTTPS.
    let record = record_when(&platform, "shop.sites.test", 30, issued).await;
    let not_after = record.not_after.expect("an expiry");
    assert!(
        not_after > chrono::Utc::now() + chrono::Duration::days(1),
        "{not_after}"
    );
    let root = acme.issuing_root();
    let first_root = root.clone();
    let page = curl(https, "shop.sites.test", &root).expect("the site over HTTPS");
    assert!(page.contains("starter page of shop"), "{page}");

    // Plain HTTP moves to HTTPS for it.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = plain
        .get(format!("http://{http}/notes?x=1"))
        .header("host", "shop.sites.test")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 308);
    assert_eq!(
        res.headers()["location"],
        format!("https://shop.sites.test:{}/notes?x=1", https.port()).as_str()
    );

    // A verified domain (an admin's) gets one too.
    platform
        .add_domain(Some(&admin), site.id, "www.shop.test")
        .await
        .unwrap();
    record_when(&platform, "www.shop.test", 30, issued).await;
    let page = curl(https, "www.shop.test", &root).expect("the domain over HTTPS");
    assert!(page.contains("starter page of shop"), "{page}");

    // An unverified domain and a host nobody serves get none: the edge asks Director, which
    // says no, and the handshake is refused.
    platform
        .add_domain(Some(&member), site.id, "pending.shop.test")
        .await
        .unwrap();
    for host in ["pending.shop.test", "nobody.sites.test"] {
        let err = curl(https, host, &root).expect_err(host);
        assert!(err.contains("alert") || err.contains("SSL"), "{host}: {err}");
        assert_eq!(caddy.certificate(host).unwrap(), None, "{host}");
    }
    let hosts: Vec<String> = platform
        .certificate_records()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.host)
        .collect();
    assert!(
        !hosts
            .iter()
            .any(|h| h == "pending.shop.test" || h == "nobody.sites.test"),
        "{hosts:?}"
    );
    assert_eq!(
        plain
            .get(format!("http://{http}/"))
            .header("host", "nobody.sites.test")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        404,
        "no redirect for a host without a certificate"
    );

    // The CA goes away: the attempt fails, the reason and the next attempt are on record.
    acme.stop();
    platform
        .add_domain(Some(&admin), site.id, "later.shop.test")
        .await
        .unwrap();
    let failed = record_when(&platform, "later.shop.test", 30, |r| {
        r.state == CertificateState::Failed && r.retry_at.is_some()
    })
    .await;
    println!("with the CA away: {failed:?}");
    assert!(failed.error.contains("connection refused"), "{}", failed.error);
    assert!(failed.attempts >= 1);
    assert!(failed.retry_at.unwrap() > failed.failed_at.unwrap());
    assert!(curl(https, "later.shop.test", &root).is_err());
    let problems = platform
        .certificate_problems(Some(&admin), chrono::Duration::days(14))
        .await
        .unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p.record.host == "later.shop.test" && p.site_id == site.id),
        "{problems:?}"
    );
    assert!(
        !problems.iter().any(|p| p.record.host == "shop.sites.test"),
        "{problems:?}"
    );

    // The manager shows it: on the site's page for its member, among the problems for admins.
    let server = TestServer::start(platform.clone()).await;
    let client = server.signed_in("member", &password("member")).await;
    let id = site.id.to_string();
    let page: serde_json::Value = server
        .call(&client, "site_detail", &[("id", &id)])
        .await
        .json()
        .await
        .unwrap();
    let shown: Vec<(String, String)> = page["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["host"].as_str().unwrap().to_owned(),
                c["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let pair = |host: &str, state: &str| (host.to_owned(), state.to_owned());
    assert_eq!(
        shown,
        [
            pair("shop.sites.test", "issued"),
            pair("later.shop.test", "failed"),
            pair("www.shop.test", "issued"),
        ],
        "its own name first, then its verified domains; the unverified one has none"
    );
    let later = &page["certificates"][1];
    assert!(
        later["error"].as_str().unwrap().contains("connection refused"),
        "{later}"
    );
    assert!(!later["retry_at"].as_str().unwrap().is_empty(), "{later}");
    let admin_client = server.signed_in("admin", &password("admin")).await;
    let listed: serde_json::Value = server
        .call(&admin_client, "certificate_problems", &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["https"], true);
    assert_eq!(
        listed["rows"][0]["certificate"]["host"], "later.shop.test",
        "{listed}"
    );

    // Back, as a new CA that knows none of its old accounts: the edge's retries get the
    // certificate (the first with a new account, which Director has the edge register).
    acme.start_again().await;
    let record = record_when(&platform, "later.shop.test", 240, issued).await;
    assert!(record.error.is_empty());
    let root = acme.issuing_root();
    let page = curl(https, "later.shop.test", &root).expect("the domain over HTTPS once the CA is back");
    assert!(page.contains("starter page of shop"), "{page}");

    // The edge restarts (its container killed, brought back by the supervisor): its log is
    // followed again — a failure, which only the log tells, is recorded for a new domain.
    let killed = Command::new("docker")
        .args(["kill", caddy.container()])
        .output()
        .expect("the docker CLI");
    assert!(killed.status.success(), "{killed:?}");
    acme.stop();
    platform
        .add_domain(Some(&admin), site.id, "again.shop.test")
        .await
        .unwrap();
    let failed = record_when(&platform, "again.shop.test", 60, |r| {
        r.state == CertificateState::Failed
    })
    .await;
    assert!(failed.error.contains("connection refused"), "{}", failed.error);
    let page = curl(https, "shop.sites.test", &first_root)
        .expect("the restarted edge serves the certificates it had");
    assert!(page.contains("starter page of shop"), "{page}");
}
