//! The operations queue's own logic, in-process: a real PostgreSQL, and an engine that only
//! records what it is asked (and refuses one action when told to). What the actions do to
//! Docker and the edge is tested against the real ones in `sites.rs`.

use std::sync::Mutex;

use platform::{
    Actor, Error, Role,
    sites::{Action, ActionState, Actions, OperationState, Site, SiteState},
    testing::{TestDb, signed_in_user, static_site},
};

/// An engine that records the actions it is asked for, by site name, and fails `refuse`.
#[derive(Default)]
struct Recorder {
    asked: Mutex<Vec<(Action, String)>>,
    refuse: Mutex<Option<Action>>,
}

impl Recorder {
    fn asked(&self) -> Vec<Action> {
        self.asked
            .lock()
            .unwrap()
            .iter()
            .map(|(action, _)| *action)
            .collect()
    }

    fn refuse(&self, action: Option<Action>) {
        *self.refuse.lock().unwrap() = action;
    }
}

impl Actions for Recorder {
    fn run(&self, action: Action, site: &Site) -> impl Future<Output = Result<String, String>> + Send {
        self.asked.lock().unwrap().push((action, site.name.clone()));
        let refused = *self.refuse.lock().unwrap() == Some(action);
        async move {
            if refused {
                Err(format!("the engine refused {action}"))
            } else {
                Ok(format!("{action} done"))
            }
        }
    }
}

/// A member and their new static site `shop`, its create queued (and the operation's id).
async fn queued_shop(db: &TestDb) -> (Actor, Site, i64) {
    let member = signed_in_user(&db.platform, "member", Role::User).await.0;
    let (site, operation) = db
        .platform
        .create_site(Some(&member), static_site("shop"))
        .await
        .unwrap();
    (member, site, operation)
}

#[tokio::test]
async fn a_create_runs_its_actions_in_order_and_makes_the_site() {
    let db = TestDb::new().await;
    let (member, site, _) = queued_shop(&db).await;
    let engine = Recorder::default();
    assert_eq!(site.state, SiteState::Provisioning);

    assert!(db.platform.run_next_operation(&engine).await.unwrap());
    assert!(
        !db.platform.run_next_operation(&engine).await.unwrap(),
        "nothing else is queued"
    );

    assert_eq!(engine.asked(), [Action::CreateDirectory, Action::PutRoutes]);
    let site = db.platform.site(Some(&member), site.id).await.unwrap();
    assert_eq!(site.state, SiteState::Running);
    assert!(site.provisioned);
    let operations = db.platform.site_operations(Some(&member), site.id).await.unwrap();
    assert_eq!(operations[0].state, OperationState::Done);
    assert!(operations[0].actions.iter().all(|a| a.state == ActionState::Done));
}

#[tokio::test]
async fn a_failed_action_stops_its_operation_and_a_retry_resumes_where_it_failed() {
    let db = TestDb::new().await;
    let (member, site, operation) = queued_shop(&db).await;
    let engine = Recorder::default();
    engine.refuse(Some(Action::PutRoutes));

    assert!(db.platform.run_next_operation(&engine).await.unwrap());
    let site = db.platform.site(Some(&member), site.id).await.unwrap();
    assert_eq!(site.state, SiteState::Failing);
    assert!(!site.provisioned, "a create that failed made nothing to serve");
    let record = &db.platform.site_operations(Some(&member), site.id).await.unwrap()[0];
    assert_eq!(record.state, OperationState::Failed);
    let states: Vec<_> = record.actions.iter().map(|a| (a.action, a.state)).collect();
    assert_eq!(
        states,
        [
            (Action::CreateDirectory, ActionState::Done),
            (Action::PutRoutes, ActionState::Failed)
        ]
    );
    assert_eq!(record.actions[1].output, "the engine refused put-routes");

    engine.refuse(None);
    db.platform
        .retry_operation(Some(&member), site.id, operation)
        .await
        .unwrap();
    assert!(db.platform.run_next_operation(&engine).await.unwrap());
    assert_eq!(
        engine.asked(),
        [Action::CreateDirectory, Action::PutRoutes, Action::PutRoutes],
        "what was done is not done again"
    );
    let site = db.platform.site(Some(&member), site.id).await.unwrap();
    assert_eq!((site.state, site.provisioned), (SiteState::Running, true));
}

#[tokio::test]
async fn a_deletion_removes_everything_then_forgets_the_site() {
    let db = TestDb::new().await;
    let (member, site, _) = queued_shop(&db).await;
    let engine = Recorder::default();
    assert!(db.platform.run_next_operation(&engine).await.unwrap());
    // A change queued before the deletion gets nothing back for a site being deleted.
    db.platform
        .set_served(Some(&member), site.id, false)
        .await
        .unwrap();
    db.platform
        .delete_site(Some(&member), site.id, "shop")
        .await
        .unwrap();
    while db.platform.run_next_operation(&engine).await.unwrap() {}

    assert_eq!(
        engine.asked()[2..],
        [
            Action::RemoveRoutes,
            Action::RemoveService,
            Action::RemoveTerminal,
            Action::RemoveImages,
            Action::DropDatabases,
            Action::RemoveDirectory
        ],
        "taking it off the air ran nothing, and forgetting the site is the database's"
    );
    assert!(matches!(
        db.platform.site(Some(&member), site.id).await,
        Err(Error::NotFound(_))
    ));
}

#[tokio::test]
async fn without_docker_shells_and_files_are_unavailable_for_now_not_refused() {
    let db = TestDb::new().await;
    let (member, site, _) = queued_shop(&db).await;
    assert!(
        db.platform
            .run_next_operation(&Recorder::default())
            .await
            .unwrap()
    );
    // No runtime was ever given to this platform: Docker is not connected.
    let shell = db
        .platform
        .open_shell(Some(&member), site.id, platform::sites::ShellRequest::default())
        .await;
    assert!(
        matches!(&shell, Err(Error::EngineUnavailable(why)) if why.starts_with("Terminals are unavailable"))
    );
    let sftp = db.platform.open_files(Some(&member), site.id).await;
    assert!(matches!(&sftp, Err(Error::EngineUnavailable(why)) if why.starts_with("Files are unavailable")));
    let files = db
        .platform
        .site_files(Some(&member), site.id, platform::Access::Write)
        .await;
    assert!(matches!(&files, Err(Error::EngineUnavailable(_))));
    // Someone who may not see the site learns nothing more than before.
    let other = signed_in_user(&db.platform, "other", Role::User).await.0;
    assert!(matches!(
        db.platform.open_files(Some(&other), site.id).await,
        Err(Error::NotFound(_))
    ));
}

#[tokio::test]
async fn a_site_busy_with_one_operation_never_holds_a_worker_from_other_sites() {
    let db = TestDb::new().await;
    let (member, shop, _) = queued_shop(&db).await;
    let engine = Recorder::default();
    assert!(db.platform.run_next_operation(&engine).await.unwrap());
    // Two operations of shop (a long one claimed and running, one behind it) and one of cafe.
    db.platform
        .set_served(Some(&member), shop.id, false)
        .await
        .unwrap();
    db.platform
        .set_served(Some(&member), shop.id, true)
        .await
        .unwrap();
    let (cafe, _) = db
        .platform
        .create_site(Some(&member), static_site("cafe"))
        .await
        .unwrap();
    let running = db
        .platform
        .claim_operation()
        .await
        .unwrap()
        .expect("shop's first change");
    // The next claim skips shop's second change (it would only wait for shop's lock) and
    // takes cafe's create.
    let next = db
        .platform
        .claim_operation()
        .await
        .unwrap()
        .expect("cafe's create");
    db.platform.run_claimed(&engine, next).await.unwrap();
    assert_eq!(
        db.platform.site(Some(&member), cafe.id).await.unwrap().state,
        SiteState::Running
    );
    assert!(
        db.platform.claim_operation().await.unwrap().is_none(),
        "shop's second change waits"
    );
    db.platform.run_claimed(&engine, running).await.unwrap();
    assert!(
        db.platform.run_next_operation(&engine).await.unwrap(),
        "then it runs"
    );
}
