//! Accounts against a real PostgreSQL: sign-in, rate limiting, sessions, permissions, setup.

use std::time::Duration;

use platform::{Actor, ClientInfo, Error, NewUser, Role, Settings, testing::TestDb};

fn client(ip: &str) -> ClientInfo {
    ClientInfo {
        ip: ip.to_owned(),
        user_agent: "tests".to_owned(),
    }
}

fn new_user(username: &str, role: Role) -> NewUser {
    NewUser {
        username: username.to_owned(),
        display_name: String::new(),
        email: String::new(),
        password: format!("{username} password 123"),
        role,
    }
}

async fn with_admin(db: &TestDb) -> Actor {
    let operator = Actor::operator();
    db.platform
        .create_user(Some(&operator), new_user("root", Role::Admin))
        .await
        .unwrap();
    let (admin, _) = db
        .platform
        .login("root", "root password 123", &client("10.0.0.1"))
        .await
        .unwrap();
    admin
}

#[tokio::test]
async fn unknown_user_and_wrong_password_are_indistinguishable() {
    let db = TestDb::new().await;
    with_admin(&db).await;
    let unknown = db
        .platform
        .login("nobody", "whatever password", &client("10.0.0.2"))
        .await
        .unwrap_err();
    let wrong = db
        .platform
        .login("root", "not the password", &client("10.0.0.2"))
        .await
        .unwrap_err();
    assert!(matches!(unknown, Error::BadCredentials));
    assert!(matches!(wrong, Error::BadCredentials));
    assert_eq!(unknown.to_string(), wrong.to_string());
}

#[tokio::test]
async fn a_session_identifies_its_user_until_logout() {
    let db = TestDb::new().await;
    with_admin(&db).await;
    let (actor, session) = db
        .platform
        .login("ROOT", "root password 123", &client("10.0.0.3"))
        .await
        .unwrap();
    assert_eq!(actor.username, "root");
    assert!(actor.is_admin());
    let found = db.platform.session_actor(&session.token).await.unwrap();
    assert_eq!(found.as_ref(), Some(&actor));
    assert_eq!(db.platform.session_actor("forged-token").await.unwrap(), None);
    db.platform.logout(&session.token).await.unwrap();
    assert_eq!(db.platform.session_actor(&session.token).await.unwrap(), None);
}

#[tokio::test]
async fn repeated_failures_lock_the_account_and_the_address() {
    let settings = Settings {
        max_failures_per_account: 3,
        max_failures_per_ip: 5,
        login_window: Duration::from_secs(600),
        ..Settings::default()
    };
    let db = TestDb::with_settings(settings).await;
    with_admin(&db).await;
    for _ in 0..3 {
        let err = db
            .platform
            .login("root", "wrong password", &client("10.0.1.1"))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::BadCredentials));
    }
    // Locked: even the right password is refused, from any address.
    let err = db
        .platform
        .login("root", "root password 123", &client("10.0.1.9"))
        .await
        .unwrap_err();
    let Error::RateLimited { retry_after_secs } = err else {
        panic!("expected a rate limit, got {err:?}")
    };
    assert!((1..=600).contains(&retry_after_secs));

    // One address trying many accounts is locked too.
    for name in ["a", "b", "c", "d", "e"] {
        let err = db
            .platform
            .login(name, "guess", &client("10.0.2.2"))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::BadCredentials));
    }
    let err = db
        .platform
        .login("f", "guess", &client("10.0.2.2"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::RateLimited { .. }), "{err:?}");
}

#[tokio::test]
async fn over_long_input_gets_a_validation_error() {
    let db = TestDb::new().await;
    let err = db
        .platform
        .login(&"u".repeat(500), "pw", &client("10.0.0.4"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Invalid {
                field: "username",
                ..
            }
        ),
        "{err:?}"
    );
    let err = db
        .platform
        .login("root", &"p".repeat(5000), &client("10.0.0.4"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Invalid {
                field: "password",
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn only_admins_manage_users() {
    let db = TestDb::new().await;
    let admin = with_admin(&db).await;
    db.platform
        .create_user(Some(&admin), new_user("alice", Role::User))
        .await
        .unwrap();
    let (alice, _) = db
        .platform
        .login("alice", "alice password 123", &client("10.0.0.5"))
        .await
        .unwrap();

    assert!(matches!(
        db.platform.list_users(None).await,
        Err(Error::Unauthenticated)
    ));
    assert!(matches!(
        db.platform.list_users(Some(&alice)).await,
        Err(Error::Forbidden)
    ));
    assert!(matches!(
        db.platform
            .create_user(Some(&alice), new_user("mallory", Role::Admin))
            .await,
        Err(Error::Forbidden)
    ));
    assert!(matches!(
        db.platform
            .set_user_role(Some(&alice), alice.user_id, Role::Admin)
            .await,
        Err(Error::Forbidden)
    ));
    let names: Vec<String> = db
        .platform
        .list_users(Some(&admin))
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(names, ["root", "alice"], "admins first, then by name");
}

#[tokio::test]
async fn bad_new_accounts_are_refused_with_the_field_named() {
    let db = TestDb::new().await;
    let admin = with_admin(&db).await;
    let cases = [
        (
            NewUser {
                username: "Bad Name".into(),
                ..new_user("x", Role::User)
            },
            "username",
        ),
        (
            NewUser {
                password: "short".into(),
                ..new_user("shorty", Role::User)
            },
            "password",
        ),
        (
            NewUser {
                email: "not-an-email".into(),
                ..new_user("mail", Role::User)
            },
            "email",
        ),
        (new_user("root", Role::User), "username"),
    ];
    for (new, field) in cases {
        match db.platform.create_user(Some(&admin), new).await {
            Err(Error::Invalid { field: got, .. }) => assert_eq!(got, field),
            other => panic!("expected an invalid {field}, got {other:?}"),
        }
    }
    assert_eq!(
        db.platform.list_users(Some(&admin)).await.unwrap().len(),
        1,
        "nothing was created"
    );
}

#[tokio::test]
async fn deactivation_ends_sessions_and_the_last_admin_stays() {
    let db = TestDb::new().await;
    let admin = with_admin(&db).await;
    let bob = db
        .platform
        .create_user(Some(&admin), new_user("bob", Role::User))
        .await
        .unwrap();
    let (_, session) = db
        .platform
        .login("bob", "bob password 123", &client("10.0.0.6"))
        .await
        .unwrap();

    db.platform
        .set_user_active(Some(&admin), bob.id, false)
        .await
        .unwrap();
    assert_eq!(db.platform.session_actor(&session.token).await.unwrap(), None);
    let err = db
        .platform
        .login("bob", "bob password 123", &client("10.0.0.6"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::BadCredentials),
        "a deactivated account looks like a wrong password"
    );

    assert!(matches!(
        db.platform
            .set_user_active(Some(&admin), admin.user_id, false)
            .await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        db.platform
            .set_user_role(Some(&admin), admin.user_id, Role::User)
            .await,
        Err(Error::Conflict(_))
    ));
    db.platform
        .set_user_active(Some(&admin), bob.id, true)
        .await
        .unwrap();
    db.platform
        .set_user_role(Some(&admin), bob.id, Role::Admin)
        .await
        .unwrap();
    db.platform
        .set_user_role(Some(&admin), admin.user_id, Role::User)
        .await
        .unwrap();
    assert!(matches!(
        db.platform.set_user_active(Some(&admin), 999_999, false).await,
        Err(Error::NotFound(_)) | Err(Error::Forbidden)
    ));
}

#[tokio::test]
async fn changing_the_password_ends_the_other_sessions() {
    let db = TestDb::new().await;
    let admin = with_admin(&db).await;
    db.platform
        .create_user(Some(&admin), new_user("carol", Role::User))
        .await
        .unwrap();
    let (carol, here) = db
        .platform
        .login("carol", "carol password 123", &client("10.0.0.7"))
        .await
        .unwrap();
    let (_, elsewhere) = db
        .platform
        .login("carol", "carol password 123", &client("10.0.0.8"))
        .await
        .unwrap();

    let wrong = db
        .platform
        .change_password(
            Some(&carol),
            "nope",
            "a new password",
            "a new password",
            &here.token,
        )
        .await;
    assert!(
        matches!(wrong, Err(Error::Invalid { field: "current", .. })),
        "{wrong:?}"
    );
    let differ = db
        .platform
        .change_password(
            Some(&carol),
            "carol password 123",
            "a new password",
            "another one!",
            &here.token,
        )
        .await;
    assert!(
        matches!(differ, Err(Error::Invalid { field: "confirm", .. })),
        "{differ:?}"
    );

    db.platform
        .change_password(
            Some(&carol),
            "carol password 123",
            "a new password",
            "a new password",
            &here.token,
        )
        .await
        .unwrap();
    assert!(db.platform.session_actor(&here.token).await.unwrap().is_some());
    assert!(
        db.platform
            .session_actor(&elsewhere.token)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        db.platform
            .login("carol", "a new password", &client("10.0.0.7"))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn the_setup_link_makes_one_admin_once() {
    let db = TestDb::new().await;
    let token = db
        .platform
        .issue_setup_token()
        .await
        .unwrap()
        .expect("no admin yet, so a token");
    assert!(db.platform.setup_token_valid(&token).await.unwrap());
    assert!(!db.platform.setup_token_valid("guessed").await.unwrap());

    let (admin, session) = db
        .platform
        .complete_setup(&token, new_user("first", Role::User), &client("10.0.0.9"))
        .await
        .unwrap();
    assert!(admin.is_admin(), "setup always makes an admin");
    assert_eq!(
        db.platform.session_actor(&session.token).await.unwrap(),
        Some(admin)
    );

    assert!(!db.platform.setup_token_valid(&token).await.unwrap());
    let again = db
        .platform
        .complete_setup(&token, new_user("second", Role::Admin), &client("10.0.0.9"))
        .await;
    assert!(matches!(again, Err(Error::Conflict(_))), "{again:?}");
    assert_eq!(
        db.platform.issue_setup_token().await.unwrap(),
        None,
        "an admin exists"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_at_the_same_moment_cannot_race_past_the_limit() {
    let settings = Settings {
        max_failures_per_account: 3,
        max_failures_per_ip: 1000,
        login_window: Duration::from_secs(600),
        ..Settings::default()
    };
    let db = TestDb::with_settings(settings).await;
    with_admin(&db).await;
    // Twenty guesses at once: before any failure was written, all of them passed the count
    // (and each held a 19 MiB hash). Now only the limit's worth get to the password.
    let mut attempts = tokio::task::JoinSet::new();
    for i in 0..20 {
        let platform = db.platform.clone();
        attempts.spawn(async move {
            platform
                .login("root", "wrong password", &client(&format!("10.0.3.{i}")))
                .await
                .unwrap_err()
        });
    }
    let errors = attempts.join_all().await;
    let checked = errors
        .iter()
        .filter(|e| matches!(e, Error::BadCredentials))
        .count();
    let limited = errors
        .iter()
        .filter(|e| matches!(e, Error::RateLimited { .. }))
        .count();
    // At most the limit (fewer when later attempts were recorded before an earlier one counted).
    assert!(checked <= 3, "{checked} passwords checked: {errors:?}");
    assert_eq!(checked + limited, 20, "{errors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_has_at_most_their_quota_of_sites() {
    let db = TestDb::with_settings(Settings {
        sites_per_user: 2,
        ..Settings::default()
    })
    .await;
    let admin = with_admin(&db).await;
    let (member, _) = platform::testing::signed_in_user(&db.platform, "quota", Role::User).await;
    let create = |name: &'static str| {
        let (platform, member) = (db.platform.clone(), member.clone());
        async move {
            platform
                .create_site(Some(&member), platform::testing::static_site(name))
                .await
                .map(|(site, _)| site)
        }
    };
    create("first").await.unwrap();
    // Three at the same moment for the one place left: one gets it.
    let (a, b, c) = tokio::join!(create("second"), create("third"), create("fourth"));
    let made = [&a, &b, &c].iter().filter(|r| r.is_ok()).count();
    assert_eq!(made, 1, "{a:?} {b:?} {c:?}");
    for refused in [a, b, c].into_iter().filter_map(Result::err) {
        assert!(
            matches!(&refused, Error::Conflict(m) if m.contains("the most you may have")),
            "{refused:?}"
        );
    }
    // An admin gives them more; members cannot.
    assert!(matches!(
        db.platform
            .set_site_quota(Some(&member), member.user_id, Some(5))
            .await,
        Err(Error::Forbidden)
    ));
    let summary = db
        .platform
        .set_site_quota(Some(&admin), member.user_id, Some(3))
        .await
        .unwrap();
    assert_eq!(summary.site_quota, Some(3));
    create("fifth").await.unwrap();
    assert!(create("sixth").await.is_err());
    assert!(matches!(
        db.platform
            .set_site_quota(Some(&admin), member.user_id, Some(-1))
            .await,
        Err(Error::Invalid { field: "quota", .. })
    ));
    // Nobody can give them more by adding them to sites of theirs.
    let (other, _) = platform::testing::signed_in_user(&db.platform, "giver", Role::User).await;
    let (gift, _) = db
        .platform
        .create_site(Some(&other), platform::testing::static_site("gift"))
        .await
        .unwrap();
    let refused = db.platform.add_member(Some(&other), gift.id, "quota").await;
    assert!(
        matches!(&refused, Err(Error::Invalid { field: "username", message }) if message.contains("the most they may have")),
        "{refused:?}"
    );
    // Admins have no quota.
    for name in ["a1", "a2", "a3", "a4"] {
        db.platform
            .create_site(Some(&admin), platform::testing::static_site(name))
            .await
            .unwrap();
    }
}
