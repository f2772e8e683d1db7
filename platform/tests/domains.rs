//! Domains against a real PostgreSQL and a real DNS server (pebble's challenge test server,
//! whose records are set through its management API): refusals, one site per domain, TXT
//! verification, admins' domains verified at once, removal, and what the edge may serve.

use std::{net::SocketAddr, process::Child, time::Duration};

use platform::{
    Actor, Error, Role,
    sites::{txt_name, txt_value},
    testing::{TestDb, free_port},
};

async fn user(db: &TestDb, name: &str, role: Role) -> Actor {
    platform::testing::signed_in_user(&db.platform, name, role)
        .await
        .0
}

async fn site(db: &TestDb, owner: &Actor, name: &str) -> i32 {
    db.platform
        .create_site(Some(owner), platform::testing::static_site(name))
        .await
        .unwrap()
        .0
        .id
}

/// A platform whose manager is at director.example.org and sites under sites.example.org, asking
/// `dns` (None: the system's resolver) to verify domains.
async fn db_with(dns: Option<SocketAddr>) -> TestDb {
    TestDb::with_settings(platform::Settings {
        manager_host: "director.example.org".to_owned(),
        sites_domain: "sites.example.org".to_owned(),
        dns_server: dns,
        ..platform::Settings::default()
    })
    .await
}

/// pebble-challtestsrv answering DNS on a port of its own; stopped when dropped.
struct DnsServer {
    child: Child,
    dns: SocketAddr,
    management: String,
}

impl DnsServer {
    async fn start() -> Self {
        let (dns, management) = (free_port(), free_port());
        let child = std::process::Command::new("pebble-challtestsrv")
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-management", &format!("127.0.0.1:{management}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("pebble-challtestsrv (Debian package pebble) is installed");
        let server = Self {
            child,
            dns: format!("127.0.0.1:{dns}").parse().unwrap(),
            management: format!("http://127.0.0.1:{management}"),
        };
        for _ in 0..100 {
            if reqwest::get(&server.management).await.is_ok() {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("pebble-challtestsrv did not start");
    }

    async fn set_txt(&self, name: &str, value: &str) {
        let res = reqwest::Client::new()
            .post(format!("{}/set-txt", self.management))
            .json(&serde_json::json!({ "host": format!("{name}."), "value": value }))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{}", res.status());
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Each of `cases` (a domain, a part of the reason) is refused to `actor` with that reason.
async fn refused(db: &TestDb, actor: &Actor, site: i32, cases: &[(&str, &str)]) {
    for (given, why) in cases {
        let err = db
            .platform
            .add_domain(Some(actor), site, given)
            .await
            .unwrap_err();
        let message = field_message(err);
        assert!(message.contains(why), "{given:?}: {message}");
    }
}

fn field_message(err: Error) -> String {
    match err {
        Error::Invalid {
            field: "host",
            message,
        } => message,
        other => panic!("expected a refused host, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_domains_are_refused_with_the_reason() {
    let db = db_with(None).await;
    let member = user(&db, "member", Role::User).await;
    let id = site(&db, &member, "shop").await;
    refused(
        &db,
        &member,
        id,
        &[
            ("", "Enter a domain name"),
            ("not a name", "not a valid domain name"),
            ("bücher.example", "punycode"),
            ("localhost", "two labels"),
            ("192.0.2.7", "IP address"),
            ("[2001:db8::1]", "IP address"),
            ("*.example.com", "Only admins can add a wildcard"),
            ("director.example.org", "manager's own address"),
            ("other.sites.example.org", "given to sites by their own names"),
            ("sites.example.org", "given to sites by their own names"),
        ],
    )
    .await;
    assert!(
        db.platform
            .site_domains(Some(&member), id)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_domain_belongs_to_one_site_and_only_its_members_see_it() {
    let db = db_with(None).await;
    let member = user(&db, "member", Role::User).await;
    let other = user(&db, "other", Role::User).await;
    let shop = site(&db, &member, "shop").await;
    let blog = site(&db, &other, "blog").await;
    let added = db
        .platform
        .add_domain(Some(&member), shop, "WWW.Shop.Example.")
        .await
        .unwrap();
    assert_eq!(added.host, "www.shop.example");
    assert!(
        added.verified_at.is_none(),
        "a member's domain waits for its record"
    );
    let again = field_message(
        db.platform
            .add_domain(Some(&member), shop, "www.shop.example")
            .await
            .unwrap_err(),
    );
    assert!(again.contains("this site's already"), "{again}");
    // Unproven, the claim keeps nobody else from claiming the name too.
    let rival = db
        .platform
        .add_domain(Some(&other), blog, "www.shop.example")
        .await
        .unwrap();
    assert!(rival.verified_at.is_none());
    db.platform
        .remove_domain(Some(&other), blog, rival.id)
        .await
        .unwrap();
    assert!(matches!(
        db.platform.site_domains(Some(&other), shop).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        db.platform.remove_domain(Some(&other), blog, added.id).await,
        Err(Error::NotFound(_))
    ));
    // Not routed while unverified: the site carries no domain yet.
    let site = db.platform.site(Some(&member), shop).await.unwrap();
    assert!(site.domains.is_empty());
    assert!(
        !db.platform
            .serves_host("www.shop.example", "sites.example.org")
            .await
            .unwrap()
    );
    assert!(
        db.platform
            .serves_host("shop.sites.example.org", "sites.example.org")
            .await
            .unwrap()
    );
    assert!(
        !db.platform
            .serves_host("nobody.sites.example.org", "sites.example.org")
            .await
            .unwrap()
    );
    db.platform
        .remove_domain(Some(&member), shop, added.id)
        .await
        .unwrap();
    assert!(
        db.platform
            .site_domains(Some(&member), shop)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_txt_record_verifies_a_domain_and_routes_it() {
    let dns_server = DnsServer::start().await;
    let db = db_with(Some(dns_server.dns)).await;
    let member = user(&db, "member", Role::User).await;
    let shop = site(&db, &member, "shop").await;
    let domain = db
        .platform
        .add_domain(Some(&member), shop, "www.shop.test")
        .await
        .unwrap();

    // No record yet: the attempt is recorded with the reason, nothing is routed.
    let checked = db
        .platform
        .verify_domain(Some(&member), shop, domain.id)
        .await
        .unwrap();
    assert!(checked.verified_at.is_none());
    assert_eq!(
        checked.last_check_error,
        "No TXT record was found at _director.www.shop.test."
    );
    assert!(checked.last_check_at.is_some());

    // A record with another value: named in the reason.
    dns_server
        .set_txt(&txt_name("www.shop.test"), "something-else")
        .await;
    let checked = db
        .platform
        .verify_domain(Some(&member), shop, domain.id)
        .await
        .unwrap();
    assert!(checked.verified_at.is_none());
    assert!(
        checked.last_check_error.contains("\"something-else\""),
        "{}",
        checked.last_check_error
    );

    // The right value: verified, on the site, served, and an operation puts the routes.
    dns_server
        .set_txt(&txt_name("www.shop.test"), &txt_value(&domain.token))
        .await;
    let checked = db
        .platform
        .verify_domain(Some(&member), shop, domain.id)
        .await
        .unwrap();
    assert!(checked.verified_at.is_some(), "{}", checked.last_check_error);
    assert_eq!(checked.verified_by, platform::sites::Proof::Txt);
    assert_eq!(checked.last_check_error, "");
    let site = db.platform.site(Some(&member), shop).await.unwrap();
    assert_eq!(site.domains, ["www.shop.test"]);
    assert!(
        db.platform
            .serves_host("WWW.shop.test.", "sites.example.org")
            .await
            .unwrap()
    );
    let operations = db.platform.site_operations(Some(&member), shop).await.unwrap();
    assert_eq!(operations[0].kind, platform::sites::OperationKind::UpdateDomains);

    // Removed: no longer served.
    db.platform
        .remove_domain(Some(&member), shop, domain.id)
        .await
        .unwrap();
    assert!(
        !db.platform
            .serves_host("www.shop.test", "sites.example.org")
            .await
            .unwrap()
    );
    assert!(
        db.platform
            .site(Some(&member), shop)
            .await
            .unwrap()
            .domains
            .is_empty()
    );
}

#[tokio::test]
async fn an_admins_domain_is_verified_at_once() {
    let db = db_with(None).await;
    let member = user(&db, "member", Role::User).await;
    let admin = user(&db, "admin", Role::Admin).await;
    let shop = site(&db, &member, "shop").await;
    let domain = db
        .platform
        .add_domain(Some(&admin), shop, "shop.example.net")
        .await
        .unwrap();
    assert_eq!(domain.verified_by, platform::sites::Proof::Admin);
    assert!(domain.verified_at.is_some());
    assert_eq!(
        db.platform.site(Some(&member), shop).await.unwrap().domains,
        ["shop.example.net"]
    );
}

#[tokio::test]
async fn an_admin_may_add_a_wildcard_which_serves_the_names_one_level_under_it() {
    let db = db_with(None).await;
    let member = user(&db, "member", Role::User).await;
    let admin = user(&db, "admin", Role::Admin).await;
    let shop = site(&db, &member, "shop").await;
    refused(
        &db,
        &admin,
        shop,
        &[
            ("*.org", "not *.org"),
            ("*.example.org", "manager's own address"),
            ("*.sites.example.org", "given to sites by their own names"),
            ("a.*.example.net", "wildcards are not allowed"),
        ],
    )
    .await;
    let wildcard = db
        .platform
        .add_domain(Some(&admin), shop, "*.Shop.Example.net")
        .await
        .unwrap();
    assert_eq!(wildcard.host, "*.shop.example.net");
    assert!(wildcard.verified_at.is_some());
    let serves = |host: &'static str| {
        let platform = db.platform.clone();
        async move { platform.serves_host(host, "sites.example.org").await.unwrap() }
    };
    assert!(serves("a.shop.example.net").await);
    assert!(serves("www.shop.example.net").await);
    assert!(
        !serves("shop.example.net").await,
        "the wildcard is not its own domain"
    );
    assert!(!serves("a.b.shop.example.net").await, "one level only");
}

#[tokio::test]
async fn no_site_may_be_named_after_the_managers_own_host() {
    // The manager at panel.example.org, sites under example.org: a site `panel` would be the
    // manager's host (its pages could set the manager's cookies, the edge would route it).
    let db = TestDb::with_settings(platform::Settings {
        sites_domain: "example.org".to_owned(),
        manager_host: "panel.example.org".to_owned(),
        ..platform::Settings::default()
    })
    .await;
    let member = user(&db, "member", Role::User).await;
    for name in ["panel", "PANEL"] {
        let refused = db
            .platform
            .create_site(Some(&member), platform::testing::static_site(name))
            .await;
        assert!(
            matches!(&refused, Err(Error::Invalid { field: "name", message }) if message.contains("manager")),
            "{refused:?}"
        );
        assert!(matches!(
            db.platform.check_site_name(Some(&member), name).await,
            Err(Error::Invalid { field: "name", .. })
        ));
    }
    site(&db, &member, "panels").await;
    assert!(
        !db.platform
            .serves_host("panel.example.org", "example.org")
            .await
            .unwrap()
    );

    // A manager deeper under a site's host: the site's host would be its parent.
    let db = TestDb::with_settings(platform::Settings {
        sites_domain: "example.org".to_owned(),
        manager_host: "director.admin.example.org".to_owned(),
        ..platform::Settings::default()
    })
    .await;
    let member = user(&db, "member", Role::User).await;
    assert!(matches!(
        db.platform
            .create_site(Some(&member), platform::testing::static_site("admin"))
            .await,
        Err(Error::Invalid { field: "name", .. })
    ));
}

#[tokio::test]
async fn an_unproven_claim_never_keeps_a_domain_from_its_owner() {
    let dns_server = DnsServer::start().await;
    let db = db_with(Some(dns_server.dns)).await;
    let squatter = user(&db, "squatter", Role::User).await;
    let owner = user(&db, "owner", Role::User).await;
    let admin = user(&db, "admin", Role::Admin).await;
    let squat = site(&db, &squatter, "squat").await;
    let real = site(&db, &owner, "real").await;
    let third = site(&db, &owner, "third").await;

    // The squatter claims the owner's name first; the owner may claim it all the same.
    let squatted = db
        .platform
        .add_domain(Some(&squatter), squat, "www.owner.test")
        .await
        .unwrap();
    let claim = db
        .platform
        .add_domain(Some(&owner), real, "www.owner.test")
        .await
        .unwrap();
    // The squatter cannot prove it: the record holds the owner's token only.
    dns_server
        .set_txt(&txt_name("www.owner.test"), &txt_value(&claim.token))
        .await;
    let failed = db
        .platform
        .verify_domain(Some(&squatter), squat, squatted.id)
        .await
        .unwrap();
    assert!(failed.verified_at.is_none());
    // The owner proves it: theirs, and the squatter's claim is gone.
    let proved = db
        .platform
        .verify_domain(Some(&owner), real, claim.id)
        .await
        .unwrap();
    assert!(proved.verified_at.is_some(), "{}", proved.last_check_error);
    assert!(
        db.platform
            .site_domains(Some(&squatter), squat)
            .await
            .unwrap()
            .is_empty()
    );
    // Now proven, nobody else can claim it.
    let taken = field_message(
        db.platform
            .add_domain(Some(&squatter), squat, "www.owner.test")
            .await
            .unwrap_err(),
    );
    assert!(taken.contains("belongs to another site"), "{taken}");

    // An admin's domain takes the name from an unproven claim at once.
    db.platform
        .add_domain(Some(&squatter), squat, "api.owner.test")
        .await
        .unwrap();
    let given = db
        .platform
        .add_domain(Some(&admin), third, "api.owner.test")
        .await
        .unwrap();
    assert!(given.verified_at.is_some());
    assert!(
        db.platform
            .site_domains(Some(&squatter), squat)
            .await
            .unwrap()
            .is_empty()
    );

    // A claim left unproven lapses after its days: the owner then finds the name free even
    // of the squatter's row.
    let stale = db
        .platform
        .add_domain(Some(&squatter), squat, "shop.owner.test")
        .await
        .unwrap();
    let mut conn = <diesel_async::AsyncPgConnection as diesel_async::AsyncConnection>::establish(&db.url)
        .await
        .unwrap();
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query(format!(
            "UPDATE site_domains SET created_at = now() - interval '{} days 1 hour' WHERE id = {}",
            platform::sites::UNVERIFIED_CLAIM_DAYS,
            stale.id
        )),
        &mut conn,
    )
    .await
    .unwrap();
    db.platform
        .add_domain(Some(&owner), real, "shop.owner.test")
        .await
        .unwrap();
    assert!(
        db.platform
            .site_domains(Some(&squatter), squat)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn sql(db: &TestDb, statement: &str) {
    let mut conn = <diesel_async::AsyncPgConnection as diesel_async::AsyncConnection>::establish(&db.url)
        .await
        .unwrap();
    diesel_async::RunQueryDsl::execute(diesel::sql_query(statement), &mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_domain_change_is_committed_with_the_operation_that_routes_it_or_not_at_all() {
    let db = db_with(None).await;
    let member = user(&db, "member", Role::User).await;
    let admin = user(&db, "admin", Role::Admin).await;
    let shop = site(&db, &member, "shop").await;
    // The database refuses the routing operation (a crash between the two writes, made
    // deterministic): the domain change must not be committed without it.
    sql(
        &db,
        "CREATE FUNCTION refuse_routing() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN IF NEW.kind = 'update-domains' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$",
    )
    .await;
    let refuse = "CREATE TRIGGER refuse_routing BEFORE INSERT ON operations \
                  FOR EACH ROW EXECUTE FUNCTION refuse_routing()";
    sql(&db, refuse).await;
    let added = db
        .platform
        .add_domain(Some(&admin), shop, "shop.example.net")
        .await;
    assert!(added.is_err(), "{added:?}");
    assert!(
        db.platform
            .site_domains(Some(&member), shop)
            .await
            .unwrap()
            .is_empty(),
        "no domain without its routing"
    );

    sql(&db, "DROP TRIGGER refuse_routing ON operations").await;
    let domain = db
        .platform
        .add_domain(Some(&admin), shop, "shop.example.net")
        .await
        .unwrap();
    sql(&db, refuse).await;
    let removed = db.platform.remove_domain(Some(&member), shop, domain.id).await;
    assert!(removed.is_err(), "{removed:?}");
    assert_eq!(
        db.platform.site(Some(&member), shop).await.unwrap().domains,
        ["shop.example.net"],
        "the domain stays (and stays routed) when its routes cannot be taken away"
    );
    sql(&db, "DROP TRIGGER refuse_routing ON operations").await;
    db.platform
        .remove_domain(Some(&member), shop, domain.id)
        .await
        .unwrap();
    let operations = db.platform.site_operations(Some(&member), shop).await.unwrap();
    assert_eq!(
        operations
            .iter()
            .filter(|o| o.kind == platform::sites::OperationKind::UpdateDomains)
            .count(),
        2,
        "one routing per committed change: {operations:?}"
    );
}
