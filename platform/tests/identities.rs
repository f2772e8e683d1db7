//! Accounts and identity providers against real PostgreSQL, past the HTTP doors (tested in
//! server/tests/oidc.rs): the last way in to an account is never unlinked, and group mapping
//! never leaves Director without an admin, even when two admins lose their group at once.

use platform::{
    ClientInfo, Error, Role,
    oidc::{Identity, OidcProvider, Registration},
    testing::TestDb,
};

mod common;

fn provider() -> OidcProvider {
    OidcProvider {
        id: "school".to_owned(),
        name: "School".to_owned(),
        issuer: "https://id.school.example".to_owned(),
        client_id: "director".to_owned(),
        client_secret: "secret".to_owned(),
        scopes: Vec::new(),
        registration: Registration::Open,
        role_claim: "groups".to_owned(),
        admin_groups: vec!["it".to_owned()],
        approver_groups: vec!["teachers".to_owned()],
        ca_bundle: None,
    }
}

fn person(subject: &str, groups: &[&str]) -> Identity {
    Identity {
        issuer: "https://id.school.example".to_owned(),
        subject: subject.to_owned(),
        preferred_username: Some(subject.to_owned()),
        name: None,
        email: None,
        groups: Some(groups.iter().map(|g| (*g).to_owned()).collect()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_to_a_provider_no_longer_configured_is_no_way_in() {
    let db = TestDb::with_settings(platform::Settings {
        oidc: vec![provider()],
        ..platform::Settings::default()
    })
    .await;
    let (erin, _) = db
        .platform
        .sign_in_as(&provider(), &person("erin", &[]), &ClientInfo::default())
        .await
        .unwrap();
    common::sql(
        &db,
        &format!(
            "INSERT INTO user_identities (issuer, subject, user_id) VALUES ('https://gone.example', 'erin', {})",
            erin.user_id
        ),
    )
    .await;
    // Two links, but one to a provider Director no longer knows, and no password she knows.
    let only = db
        .platform
        .unlink_identity(Some(&erin), "https://id.school.example", "erin")
        .await;
    assert!(
        matches!(&only, Err(Error::Conflict(why)) if why.contains("only way")),
        "{only:?}"
    );
    db.platform
        .unlink_identity(Some(&erin), "https://gone.example", "erin")
        .await
        .unwrap();
    assert!(matches!(
        db.platform
            .unlink_identity(Some(&erin), "https://gone.example", "erin")
            .await,
        Err(Error::NotFound(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_admins_who_lose_their_group_at_once_leave_one_admin() {
    let db = TestDb::with_settings(platform::Settings {
        oidc: vec![provider()],
        ..platform::Settings::default()
    })
    .await;
    let client = ClientInfo::default();
    for who in ["ada", "bob"] {
        let (actor, _) = db
            .platform
            .sign_in_as(&provider(), &person(who, &["it"]), &client)
            .await
            .unwrap();
        assert_eq!(actor.role, Role::Admin);
    }
    for _ in 0..5 {
        let (ada, bob) = (person("ada", &["teachers"]), person("bob", &["teachers"]));
        let provider = provider();
        let (a, b) = tokio::join!(
            db.platform.sign_in_as(&provider, &ada, &client),
            db.platform.sign_in_as(&provider, &bob, &client),
        );
        let roles = [a.unwrap().0.role, b.unwrap().0.role];
        assert_eq!(
            roles.iter().filter(|r| **r == Role::Admin).count(),
            1,
            "one stays an admin: {roles:?}"
        );
        // Both admins again for the next round.
        for who in ["ada", "bob"] {
            db.platform
                .sign_in_as(&provider, &person(who, &["it"]), &client)
                .await
                .unwrap();
        }
    }
}
