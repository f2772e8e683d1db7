//! Requests for sites against real PostgreSQL: the state machine (every allowed step and the
//! refused ones), who sees which request, the checks at submission and again at approval, and
//! the policy an admin sets.

use model::{
    notification::Event,
    request::{ApprovalSteps, RequestAction, RequestState, SiteCreation},
};
use platform::{
    Actor, Error, Role,
    requests::{NewRequest, RequestScope, SitePolicy},
    sites::NewSite,
    testing::TestDb,
};

mod common;

use common::{new_site, user};

fn request(name: &str, approver: &str) -> NewRequest {
    NewRequest {
        site: NewSite {
            purpose: "activity".to_owned(),
            ..new_site(name, "static", "busybox")
        },
        reason: "The chess club's results.".to_owned(),
        approver: approver.to_owned(),
    }
}

async fn policy(db: &TestDb, admin: &Actor, creation: SiteCreation, steps: ApprovalSteps) {
    db.platform
        .set_site_policy(Some(admin), SitePolicy { creation, steps })
        .await
        .unwrap();
}

fn conflict<T: std::fmt::Debug>(result: Result<T, Error>, says: &str) {
    match result {
        Err(Error::Conflict(why)) => assert!(why.contains(says), "{why}"),
        other => panic!("not a conflict saying {says:?}: {other:?}"),
    }
}

fn invalid<T: std::fmt::Debug>(result: Result<T, Error>, field: &str) {
    match result {
        Err(Error::Invalid { field: got, .. }) => assert_eq!(got, field),
        other => panic!("not refused for {field}: {other:?}"),
    }
}

/// What `who`'s inbox holds, the newest first: (event, link).
async fn told(db: &TestDb, who: &Actor) -> Vec<(Event, String)> {
    let (items, _) = db.platform.inbox(Some(who), 50).await.unwrap();
    items.into_iter().map(|n| (n.event, n.link)).collect()
}

async fn state(db: &TestDb, who: &Actor, id: i64) -> RequestState {
    db.platform.site_request(Some(who), id).await.unwrap().0.state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_goes_from_member_to_approver_to_admin_and_its_site_is_made_for_the_member() {
    let db = TestDb::new().await;
    let admin = user(&db, "boss", Role::Admin).await;
    let teacher = user(&db, "teacher", Role::Approver).await;
    let student = user(&db, "student", Role::User).await;

    // By default members create sites, and nobody requests them.
    conflict(
        db.platform
            .submit_request(Some(&student), request("chess", ""))
            .await,
        "created directly",
    );
    policy(
        &db,
        &admin,
        SiteCreation::Request,
        ApprovalSteps::ApproverAndAdmin,
    )
    .await;
    conflict(
        db.platform
            .create_site(Some(&student), new_site("chess", "static", "busybox"))
            .await,
        "Request a site",
    );

    let id = db
        .platform
        .submit_request(Some(&student), request("Chess", "teacher"))
        .await
        .unwrap();
    let mine = db
        .platform
        .site_requests(Some(&student), RequestScope::Mine)
        .await
        .unwrap();
    assert_eq!(
        (mine[0].name.as_str(), mine[0].state),
        ("chess", RequestState::Submitted)
    );
    assert_eq!(mine[0].approver.as_ref().unwrap().username, "teacher");
    let to_review = db
        .platform
        .site_requests(Some(&teacher), RequestScope::ToReview)
        .await
        .unwrap();
    assert_eq!(to_review.len(), 1);

    // The approver passes it on to the admins; it leaves their list, and they cannot act again.
    assert_eq!(
        db.platform
            .approve_request(Some(&teacher), id, "Good idea.")
            .await
            .unwrap(),
        None
    );
    assert_eq!(state(&db, &student, id).await, RequestState::Approved);
    assert!(
        db.platform
            .site_requests(Some(&teacher), RequestScope::ToReview)
            .await
            .unwrap()
            .is_empty()
    );
    conflict(
        db.platform.approve_request(Some(&teacher), id, "").await,
        "an admin decides",
    );
    conflict(
        db.platform
            .deny_request(Some(&teacher), id, "changed my mind")
            .await,
        "an admin decides",
    );
    assert_eq!(
        db.platform
            .site_requests(Some(&admin), RequestScope::ToReview)
            .await
            .unwrap()
            .len(),
        1
    );

    // The admin's approval makes the site, the student its member, through its create operation.
    let site = db
        .platform
        .approve_request(Some(&admin), id, "")
        .await
        .unwrap()
        .expect("a site");
    let (made, steps) = db.platform.site_request(Some(&student), id).await.unwrap();
    // Each step told whom it concerns, in their inbox.
    assert_eq!(
        told(&db, &teacher).await,
        [(Event::RequestSubmitted, format!("/requests/{id}"))]
    );
    assert_eq!(
        told(&db, &student).await,
        [
            (Event::SiteCreated, format!("/sites/{site}")),
            (Event::RequestApproved, format!("/requests/{id}")),
        ]
    );
    assert_eq!(
        told(&db, &admin).await,
        [(Event::RequestSubmitted, format!("/requests/{id}"))]
    );
    assert_eq!((made.state, made.site_id), (RequestState::Created, Some(site)));
    let actions: Vec<(&str, RequestAction)> =
        steps.iter().map(|s| (s.actor_name.as_str(), s.action)).collect();
    assert_eq!(
        actions,
        [
            ("student", RequestAction::Submit),
            ("teacher", RequestAction::Approve),
            ("boss", RequestAction::Approve),
        ]
    );
    assert_eq!(steps[1].comment, "Good idea.");
    let theirs = db.platform.my_sites(Some(&student)).await.unwrap();
    assert_eq!((theirs[0].id, theirs[0].name.as_str()), (site, "chess"));
    let ops = db.platform.site_operations(Some(&student), site).await.unwrap();
    assert_eq!(ops.len(), 1, "the normal create operation is queued");
    conflict(
        db.platform.approve_request(Some(&admin), id, "").await,
        "no longer open",
    );
    conflict(
        db.platform.withdraw_request(Some(&student), id).await,
        "no longer open",
    );

    // With the admin step off, an approver's approval is the last one.
    policy(&db, &admin, SiteCreation::Request, ApprovalSteps::Approver).await;
    let id = db
        .platform
        .submit_request(Some(&student), request("go-club", ""))
        .await
        .unwrap();
    assert!(
        db.platform
            .approve_request(Some(&teacher), id, "")
            .await
            .unwrap()
            .is_some()
    );
    // Admins still create sites directly.
    db.platform
        .create_site(Some(&admin), new_site("admins-own", "static", "busybox"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_seen_and_reviewed_only_by_whom_they_are_for_and_never_by_their_requester() {
    let db = TestDb::new().await;
    let admin = user(&db, "boss", Role::Admin).await;
    let named = user(&db, "named", Role::Approver).await;
    let other_approver = user(&db, "another", Role::Approver).await;
    let student = user(&db, "student", Role::User).await;
    let stranger = user(&db, "stranger", Role::User).await;
    policy(
        &db,
        &admin,
        SiteCreation::Request,
        ApprovalSteps::ApproverAndAdmin,
    )
    .await;

    // Addressed to one approver: the other neither sees nor reviews it; other members neither.
    let id = db
        .platform
        .submit_request(Some(&student), request("robotics", "named"))
        .await
        .unwrap();
    assert!(
        db.platform
            .site_requests(Some(&other_approver), RequestScope::ToReview)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        db.platform.site_request(Some(&other_approver), id).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        db.platform.approve_request(Some(&other_approver), id, "").await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        db.platform.site_request(Some(&stranger), id).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        db.platform.withdraw_request(Some(&stranger), id).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        db.platform
            .site_requests(Some(&student), RequestScope::ToReview)
            .await,
        Err(Error::Forbidden)
    ));
    assert!(matches!(
        db.platform.site_requests(None, RequestScope::Mine).await,
        Err(Error::Unauthenticated)
    ));

    // A denial needs a reason, which the requester reads; a denied request is closed.
    invalid(db.platform.deny_request(Some(&named), id, "  ").await, "comment");
    db.platform
        .deny_request(Some(&named), id, "Use the club's existing site.")
        .await
        .unwrap();
    let (denied, steps) = db.platform.site_request(Some(&student), id).await.unwrap();
    let (inbox, _) = db.platform.inbox(Some(&student), 1).await.unwrap();
    assert_eq!(inbox[0].event, Event::RequestDenied);
    assert!(
        inbox[0].body.contains("Use the club's existing site."),
        "{}",
        inbox[0].body
    );
    // The request went to the approver named, not to the other.
    assert!(told(&db, &other_approver).await.is_empty());
    assert_eq!(denied.state, RequestState::Denied);
    assert_eq!(steps.last().unwrap().comment, "Use the club's existing site.");
    conflict(
        db.platform.withdraw_request(Some(&student), id).await,
        "no longer open",
    );
    // Its name is free to ask for again.
    let again = db
        .platform
        .submit_request(Some(&student), request("robotics", ""))
        .await
        .unwrap();
    db.platform.withdraw_request(Some(&student), again).await.unwrap();
    assert_eq!(state(&db, &student, again).await, RequestState::Withdrawn);

    // An approver's own request goes to another approver: they cannot approve it themselves,
    // nor name themselves.
    invalid(
        db.platform
            .submit_request(Some(&named), request("mine", "named"))
            .await,
        "approver",
    );
    invalid(
        db.platform
            .submit_request(Some(&student), request("mine", "stranger"))
            .await,
        "approver",
    );
    let own = db
        .platform
        .submit_request(Some(&named), request("mine", ""))
        .await
        .unwrap();
    conflict(
        db.platform.approve_request(Some(&named), own, "").await,
        "their own request",
    );
    conflict(
        db.platform.deny_request(Some(&named), own, "no").await,
        "their own request",
    );
    assert_eq!(
        db.platform
            .approve_request(Some(&other_approver), own, "")
            .await
            .unwrap(),
        None
    );
    // An admin's approval of a submitted request is the last one.
    let direct = db
        .platform
        .submit_request(Some(&student), request("fast", ""))
        .await
        .unwrap();
    assert!(
        db.platform
            .approve_request(Some(&admin), direct, "")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_is_checked_at_submission_and_again_at_approval_and_open_requests_count_against_the_quota() {
    let db = TestDb::new().await;
    let admin = user(&db, "boss", Role::Admin).await;
    let teacher = user(&db, "teacher", Role::Approver).await;
    let student = user(&db, "student", Role::User).await;
    let friend = user(&db, "friend", Role::User).await;
    policy(&db, &admin, SiteCreation::Request, ApprovalSteps::Approver).await;

    // Invalid, reserved, taken by a site or by another open request: refused at once.
    invalid(
        db.platform
            .submit_request(Some(&student), request("-bad-", ""))
            .await,
        "name",
    );
    invalid(
        db.platform
            .submit_request(Some(&student), request("www", ""))
            .await,
        "name",
    );
    db.platform
        .create_site(Some(&admin), new_site("taken", "static", "busybox"))
        .await
        .unwrap();
    invalid(
        db.platform
            .submit_request(Some(&student), request("taken", ""))
            .await,
        "name",
    );
    let first = db
        .platform
        .submit_request(Some(&student), request("wanted", ""))
        .await
        .unwrap();
    invalid(
        db.platform
            .submit_request(Some(&friend), request("wanted", ""))
            .await,
        "name",
    );
    invalid(
        db.platform
            .submit_request(
                Some(&student),
                NewRequest {
                    reason: String::new(),
                    ..request("why", "")
                },
            )
            .await,
        "reason",
    );
    invalid(
        db.platform
            .submit_request(
                Some(&student),
                NewRequest {
                    site: new_site("no-image", "static", "no-such-image"),
                    ..request("x", "")
                },
            )
            .await,
        "image",
    );

    // Taken between submission and approval (an admin made a site of that name): refused at
    // approval, the request still open for a denial.
    db.platform
        .create_site(Some(&admin), new_site("wanted", "static", "busybox"))
        .await
        .unwrap();
    invalid(
        db.platform.approve_request(Some(&teacher), first, "").await,
        "name",
    );
    assert_eq!(state(&db, &student, first).await, RequestState::Submitted);
    db.platform.withdraw_request(Some(&student), first).await.unwrap();

    // Room for one site: one open request fills it.
    let friend_id = db
        .platform
        .list_users(Some(&admin))
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.username == "friend")
        .unwrap()
        .id;
    db.platform
        .set_site_quota(Some(&admin), friend_id, Some(1))
        .await
        .unwrap();
    let one = db
        .platform
        .submit_request(Some(&friend), request("one", ""))
        .await
        .unwrap();
    conflict(
        db.platform
            .submit_request(Some(&friend), request("two", ""))
            .await,
        "open request",
    );
    db.platform
        .approve_request(Some(&teacher), one, "")
        .await
        .unwrap();
    conflict(
        db.platform
            .submit_request(Some(&friend), request("two", ""))
            .await,
        "the most you may have",
    );
}
