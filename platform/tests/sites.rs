//! Sites end to end in the platform: the model and its checks, the operations queue (claim,
//! resume after a worker dies, retry after a failure), against real PostgreSQL, the real Docker
//! engine and a real Caddy.

use std::{path::PathBuf, time::Duration};

use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _};
use orchestrator::{EndpointMode, ExecRequest, SiteId, edge::Caddy};
use platform::{
    Actor, Error, Role,
    sites::{Availability, EngineImage, NewSite, SiteState},
    testing::TestDb,
};

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_site_is_created_served_and_deleted() {
    let w = world().await;
    let alice = user(&w.db, "alice", Role::User).await;
    let (site, operation) =
        w.db.platform
            .create_site(Some(&alice), new_site("notes", "static", "busybox"))
            .await
            .unwrap();
    assert_eq!(site.state, SiteState::Provisioning);
    assert!(w.db.platform.run_next_operation(&w.runtime).await.unwrap());
    assert!(
        !w.db.platform.run_next_operation(&w.runtime).await.unwrap(),
        "nothing else queued"
    );

    let site = w.db.platform.site(Some(&alice), site.id).await.unwrap();
    assert_eq!(site.state, SiteState::Running);
    let ops =
        w.db.platform
            .site_operations(Some(&alice), site.id)
            .await
            .unwrap();
    assert_eq!(ops[0].id, operation);
    assert_eq!(ops[0].state, platform::sites::OperationState::Done);
    assert!(
        ops[0]
            .actions
            .iter()
            .all(|a| a.state == platform::sites::ActionState::Done),
        "{:?}",
        ops[0].actions
    );
    let (status, page) = get(w.edge, "notes.localhost").await;
    assert_eq!(status, 200);
    assert!(page.contains("This is the starter page of notes"), "{page}");
    assert_eq!(w.db.platform.my_sites(Some(&alice)).await.unwrap().len(), 1);

    let wrong =
        w.db.platform
            .delete_site(Some(&alice), site.id, "not-notes")
            .await;
    assert!(
        matches!(wrong, Err(Error::Invalid { field: "confirm", .. })),
        "{wrong:?}"
    );
    w.db.platform
        .delete_site(Some(&alice), site.id, "notes")
        .await
        .unwrap();
    assert_eq!(
        w.db.platform.site(Some(&alice), site.id).await.unwrap().state,
        SiteState::Deleting
    );
    assert!(w.db.platform.run_next_operation(&w.runtime).await.unwrap());
    assert!(matches!(
        w.db.platform.site(Some(&alice), site.id).await,
        Err(Error::NotFound(_))
    ));
    assert_eq!(get(w.edge, "notes.localhost").await.0, 404);
    assert!(!w.runtime.directory(&site).exists(), "its files are gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamic_site_runs_its_images_run_sh_behind_the_edge() {
    let w = world().await;
    let bob = user(&w.db, "bob", Role::User).await;
    let site = made_site(&w, &bob, "shop", "dynamic").await;
    assert_eq!(
        w.db.platform.site(Some(&bob), site.id).await.unwrap().state,
        SiteState::Running
    );
    assert!(
        w.runtime.directory(&site).join("run.sh").exists(),
        "a starter run.sh from the image"
    );
    assert!(
        served(w.edge, "shop.localhost")
            .await
            .expect("the site answers within 20 s")
            .contains("starter page of shop")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_dies_mid_operation_is_taken_over() {
    let w = world().await;
    let carol = user(&w.db, "carol", Role::User).await;
    let (site, operation) =
        w.db.platform
            .create_site(Some(&carol), new_site("phoenix", "static", "busybox"))
            .await
            .unwrap();
    // A worker claimed it, started its first action, and died: its heartbeat is fresh, so
    // nobody takes it over yet.
    sql(
        &w.db,
        &format!("UPDATE operations SET state = 'running', heartbeat = now() WHERE id = {operation}"),
    )
    .await;
    sql(
        &w.db,
        &format!(
            "UPDATE operation_actions SET state = 'running' WHERE operation_id = {operation} AND position = 0"
        ),
    )
    .await;
    assert!(
        !w.db.platform.run_next_operation(&w.runtime).await.unwrap(),
        "a live claim is respected"
    );

    // Its heartbeat goes stale: the next worker resumes it and finishes it.
    sql(
        &w.db,
        &format!("UPDATE operations SET heartbeat = now() - interval '1 hour' WHERE id = {operation}"),
    )
    .await;
    assert!(w.db.platform.run_next_operation(&w.runtime).await.unwrap());
    let ops =
        w.db.platform
            .site_operations(Some(&carol), site.id)
            .await
            .unwrap();
    assert_eq!(ops[0].state, platform::sites::OperationState::Done);
    assert_eq!(
        w.db.platform.site(Some(&carol), site.id).await.unwrap().state,
        SiteState::Running
    );
    assert_eq!(get(w.edge, "phoenix.localhost").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_action_leaves_a_retryable_operation_and_an_intact_site() {
    let w = world().await;
    let dave = user(&w.db, "dave", Role::User).await;
    sql(&w.db, "INSERT INTO images (name, reference, serves_static, serves_dynamic) VALUES ('ghost', 'director/ghost:0', FALSE, TRUE)").await;
    let (site, operation) =
        w.db.platform
            .create_site(Some(&dave), new_site("haunted", "dynamic", "ghost"))
            .await
            .unwrap();
    assert!(w.db.platform.run_next_operation(&w.runtime).await.unwrap());
    let site_now = w.db.platform.site(Some(&dave), site.id).await.unwrap();
    assert_eq!(site_now.state, SiteState::Failing);
    let ops = w.db.platform.site_operations(Some(&dave), site.id).await.unwrap();
    assert_eq!(ops[0].state, platform::sites::OperationState::Failed);
    let failed = ops[0]
        .actions
        .iter()
        .find(|a| a.state == platform::sites::ActionState::Failed)
        .expect("a failed action");
    assert!(
        failed.output.contains("director/ghost:0"),
        "the reason is kept: {}",
        failed.output
    );
    assert_eq!(
        ops[0].actions[0].state,
        platform::sites::ActionState::Done,
        "the directory was made"
    );

    // The image appears; retrying runs what is left and the site comes up.
    sql(
        &w.db,
        "UPDATE images SET reference = 'director/busybox:latest' WHERE name = 'ghost'",
    )
    .await;
    w.db.platform
        .retry_operation(Some(&dave), site.id, operation)
        .await
        .unwrap();
    assert!(w.db.platform.run_next_operation(&w.runtime).await.unwrap());
    assert_eq!(
        w.db.platform.site(Some(&dave), site.id).await.unwrap().state,
        SiteState::Running
    );
    let again =
        w.db.platform
            .retry_operation(Some(&dave), site.id, operation)
            .await;
    assert!(
        matches!(again, Err(Error::Conflict(_))),
        "a done operation is not retried: {again:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sites_are_visible_to_their_members_and_admins_only() {
    let w = world().await;
    let owner = user(&w.db, "owner", Role::User).await;
    let stranger = user(&w.db, "stranger", Role::User).await;
    let admin = user(&w.db, "boss", Role::Admin).await;
    let (site, operation) =
        w.db.platform
            .create_site(Some(&owner), new_site("private", "static", "busybox"))
            .await
            .unwrap();
    assert!(matches!(
        w.db.platform.site(None, site.id).await,
        Err(Error::Unauthenticated)
    ));
    assert!(matches!(
        w.db.platform.site(Some(&stranger), site.id).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        w.db.platform.site_operations(Some(&stranger), site.id).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        w.db.platform
            .delete_site(Some(&stranger), site.id, "private")
            .await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        w.db.platform
            .retry_operation(Some(&stranger), site.id, operation)
            .await,
        Err(Error::NotFound(_))
    ));
    assert!(w.db.platform.my_sites(Some(&stranger)).await.unwrap().is_empty());
    assert_eq!(
        w.db.platform.site(Some(&admin), site.id).await.unwrap().name,
        "private"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_new_sites_are_refused_and_nothing_is_created() {
    let w = world().await;
    let eve = user(&w.db, "eve", Role::User).await;
    w.db.platform
        .create_site(Some(&eve), new_site("taken", "static", "busybox"))
        .await
        .unwrap();
    for (new, field) in [
        (new_site("taken", "static", "busybox"), "name"),
        (new_site("www", "static", "busybox"), "name"),
        (new_site("Bad_Name", "static", "busybox"), "name"),
        (new_site(&"x".repeat(33), "static", "busybox"), "name"),
        (new_site("fine", "static", "python"), "image"),
        (new_site("fine", "dynamic", "no-such-image"), "image"),
        (new_site("fine", "serverless", "busybox"), "kind"),
        (
            NewSite {
                purpose: "mining".into(),
                ..new_site("fine", "static", "busybox")
            },
            "purpose",
        ),
    ] {
        match w.db.platform.create_site(Some(&eve), new).await {
            Err(Error::Invalid { field: got, .. }) => assert_eq!(got, field),
            other => panic!("expected an invalid {field}, got {other:?}"),
        }
    }
    assert_eq!(w.db.platform.my_sites(Some(&eve)).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_traefik_services_are_labelled_and_static_sites_are_in_its_file() {
    let w = world_with(true).await;
    let frank = user(&w.db, "frank", Role::User).await;
    let (dynamic, _) =
        w.db.platform
            .create_site(Some(&frank), new_site("labelled", "dynamic", "busybox"))
            .await
            .unwrap();
    let docs = made_site(&w, &frank, "docs", "static").await;
    assert!(w.db.platform.run_next_operation(&w.runtime).await.unwrap());

    let labels = w
        .runtime
        .orchestrator
        .service_labels(SiteId(dynamic.id as u32))
        .await
        .unwrap();
    let router = format!("traefik.http.routers.director-site-{:04}", dynamic.id);
    assert_eq!(labels.get("traefik.enable").map(String::as_str), Some("true"));
    assert_eq!(
        labels.get(&format!("{router}.rule")).map(String::as_str),
        Some("Host(`labelled.localhost`)")
    );
    assert_eq!(
        labels.get(&format!("{router}.entrypoints")).map(String::as_str),
        Some("web")
    );
    assert_eq!(labels.get("traefik.swarm.network"), Some(&w.runtime.network));

    let mode = w.runtime.traefik.clone().unwrap();
    let file = std::fs::read_to_string(&mode.file).unwrap();
    assert!(
        file.contains(&format!("[http.routers.director-site-{:04}]", docs.id)),
        "{file}"
    );
    assert!(file.contains("rule = \"Host(`docs.localhost`)\""), "{file}");
    assert!(
        !file.contains("labelled"),
        "dynamic sites are routed by their labels: {file}"
    );

    // The shared static server answers for the static site on the sites network, where Traefik
    // reaches it; nothing is published on the host.
    let probe = w
        .runtime
        .orchestrator
        .ensure_terminal(&orchestrator::SiteSpec {
            id: SiteId(9000),
            name: "probe".to_owned(),
            image: "director/busybox:latest".to_owned(),
            directory: w.runtime.sites_root.clone(),
            uid: 109_000,
            gid: 109_000,
            port: 8080,
            url: String::new(),
            env: Default::default(),
            limits: Default::default(),
            served: false,
            network: w.runtime.network.clone(),
            endpoint_mode: EndpointMode::Dnsrr,
            health_check: None,
            labels: Default::default(),
        })
        .await
        .unwrap();
    let script = format!(
        "wget -qO- --header 'Host: docs.localhost' {}/",
        mode.config.static_server
    );
    let mut session = w
        .runtime
        .orchestrator
        .exec(
            &probe,
            ExecRequest {
                cmd: vec!["/bin/sh".into(), "-c".into(), script],
                tty: false,
                ..ExecRequest::default()
            },
        )
        .await
        .unwrap();
    let out = said(&mut session).await;
    assert!(out.contains("starter page of docs"), "{out}");
    assert!(
        reqwest::get(format!("http://{}/", w.edge)).await.is_err(),
        "Caddy publishes nothing behind Traefik"
    );

    w.db.platform
        .delete_site(Some(&frank), docs.id, "docs")
        .await
        .unwrap();
    assert!(w.db.platform.run_next_operation(&w.runtime).await.unwrap());
    let file = std::fs::read_to_string(&mode.file).unwrap();
    assert!(!file.contains("docs.localhost"), "{file}");

    // The file lost (a crash, a hand): the reconciler compares it on every pass and writes it
    // again; passes at the same moment all write through their own temporary files.
    let kept = std::fs::read_to_string(&mode.file).unwrap();
    std::fs::remove_file(&mode.file).unwrap();
    // (Two: each pass holds two of the test pool's four connections.)
    let passes: Vec<_> = (0..2)
        .map(|_| {
            let (platform, runtime) = (w.db.platform.clone(), w.runtime.clone());
            tokio::spawn(async move { platform.reconcile(&runtime).await })
        })
        .collect();
    let mut rewritten = 0;
    for pass in passes {
        let corrections = pass.await.unwrap().expect("no pass fails on another's write");
        rewritten += corrections
            .iter()
            .filter(|c| c.what.contains("Traefik's file"))
            .count();
    }
    assert_eq!(rewritten, 1, "written once, by one pass");
    assert_eq!(std::fs::read_to_string(&mode.file).unwrap(), kept);
    let leftovers: Vec<_> = std::fs::read_dir(mode.file.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "no temporary file left: {leftovers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_is_taken_off_the_air_put_back_and_restarted() {
    let w = world().await;
    let gina = user(&w.db, "gina", Role::User).await;
    let site = made_site(&w, &gina, "onoff", "dynamic").await;
    let serving = async || {
        for _ in 0..100 {
            if get(w.edge, "onoff.localhost").await.0 == 200 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    };
    assert!(serving().await, "up within 20 s");

    w.db.platform
        .set_served(Some(&gina), site.id, false)
        .await
        .unwrap();
    assert!(w.db.platform.run_next_operation(&w.runtime).await.unwrap());
    assert_eq!(
        w.db.platform.site(Some(&gina), site.id).await.unwrap().state,
        SiteState::Stopped
    );
    let (status, page) = get(w.edge, "onoff.localhost").await;
    assert_eq!(status, 503);
    assert!(page.contains("not being served"), "{page}");
    let status = w
        .runtime
        .orchestrator
        .status(SiteId(site.id as u32))
        .await
        .unwrap();
    assert_eq!(status.desired, 0, "no task runs while it is off the air");

    w.db.platform
        .set_served(Some(&gina), site.id, true)
        .await
        .unwrap();
    assert!(w.db.platform.run_next_operation(&w.runtime).await.unwrap());
    assert_eq!(
        w.db.platform.site(Some(&gina), site.id).await.unwrap().state,
        SiteState::Running
    );
    assert!(serving().await, "back within 20 s");

    w.db.platform.restart_site(Some(&gina), site.id).await.unwrap();
    assert!(w.db.platform.run_next_operation(&w.runtime).await.unwrap());
    let ops = w.db.platform.site_operations(Some(&gina), site.id).await.unwrap();
    assert_eq!(
        (ops[0].state.as_str(), ops[0].actions[0].state.as_str()),
        ("done", "done")
    );
    assert!(serving().await, "serving after the restart");

    let docs = made_site(&w, &gina, "plain", "static").await;
    assert!(matches!(
        w.db.platform.restart_site(Some(&gina), docs.id).await,
        Err(Error::Conflict(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconciler_puts_back_what_was_removed_and_removes_what_no_site_owns() {
    let w = world().await;
    let dora = user(&w.db, "dora", Role::User).await;
    let mut ids = Vec::new();
    for (name, kind) in [("backend", "dynamic"), ("docs", "static"), ("gone", "dynamic")] {
        let site = made_site(&w, &dora, name, kind).await;
        ids.push(SiteId(u32::try_from(site.id).unwrap()));
    }
    let [api, docs, gone] = ids[..] else {
        unreachable!()
    };
    assert_eq!(
        w.db.platform.reconcile(&w.runtime).await.unwrap(),
        vec![],
        "nothing to correct right after the operations"
    );

    // Someone removes a service and a site's routes by hand, and a site's record disappears
    // while its service and routes stay behind.
    w.runtime.orchestrator.remove_service(api).await.unwrap();
    w.runtime.edge.remove(docs).await.unwrap();
    assert_eq!(get(w.edge, "docs.localhost").await.0, 404);
    sql(&w.db, &format!("DELETE FROM sites WHERE id = {}", gone.0)).await;

    let corrections = w.db.platform.reconcile(&w.runtime).await.unwrap();
    let said: Vec<(u32, &str)> = corrections
        .iter()
        .map(|c| (u32::try_from(c.site).unwrap(), c.what.as_str()))
        .collect();
    assert!(
        said.contains(&(api.0, "its service was missing; created it again")),
        "{said:?}"
    );
    assert!(
        said.contains(&(docs.0, "its routes were missing from the edge; put them back")),
        "{said:?}"
    );
    assert!(
        said.iter()
            .any(|(id, what)| *id == gone.0 && what.ends_with("removed its service")),
        "{said:?}"
    );
    assert!(
        said.iter()
            .any(|(id, what)| *id == gone.0 && what.ends_with("removed its routes")),
        "{said:?}"
    );
    assert_eq!(corrections.len(), 4, "{said:?}");

    let objects = w.runtime.orchestrator.site_objects().await.unwrap();
    assert!(objects.services.contains(&api));
    assert!(!objects.services.contains(&gone));
    assert_eq!(get(w.edge, "docs.localhost").await.0, 200);
    assert_eq!(get(w.edge, "gone.localhost").await.0, 404);
    let mut answered = false;
    for _ in 0..100 {
        if get(w.edge, "backend.localhost").await.0 == 200 {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(answered, "the service that came back serves the site");
    assert_eq!(
        w.db.platform.reconcile(&w.runtime).await.unwrap(),
        vec![],
        "converged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconciler_leaves_a_site_with_a_failed_operation_to_its_retry() {
    let w = world().await;
    let erin = user(&w.db, "erin", Role::User).await;
    let site = made_site(&w, &erin, "half", "dynamic").await;
    let id = SiteId(u32::try_from(site.id).unwrap());
    // A fix that fails (the site's `public` made a link to nowhere) leaves a failed
    // operation, before it gets to the service removed meanwhile.
    let dir = w.runtime.directory(&site);
    std::fs::remove_dir_all(dir.join("public")).unwrap();
    std::os::unix::fs::symlink("nowhere", dir.join("public")).unwrap();
    w.runtime.orchestrator.remove_service(id).await.unwrap();
    let admin = user(&w.db, "boss", Role::Admin).await;
    w.db.platform.fix_site(Some(&admin), site.id).await.unwrap();
    assert!(w.db.platform.run_next_operation(&w.runtime).await.unwrap());
    let ops = w.db.platform.site_operations(Some(&erin), site.id).await.unwrap();
    assert_eq!(ops[0].state, platform::sites::OperationState::Failed);

    assert_eq!(w.db.platform.reconcile(&w.runtime).await.unwrap(), vec![]);
    assert!(!has_service(&w, id).await);
}

/// Owner and mode of `path`, not following a link there.
fn owner(path: &std::path::Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::symlink_metadata(path).unwrap();
    (meta.uid(), meta.mode() & 0o7777)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixing_a_site_never_follows_its_tenants_links_out_of_it() {
    let w = world().await;
    let admin = user(&w.db, "boss", Role::Admin).await;
    let mallory = user(&w.db, "mallory", Role::User).await;
    let victim_user = user(&w.db, "victim", Role::User).await;
    let mut sites = Vec::new();
    for (owner, name, kind) in [
        (&mallory, "trap", "dynamic"),
        (&mallory, "snare", "static"),
        (&victim_user, "other", "static"),
    ] {
        sites.push(made_site(&w, owner, name, kind).await);
    }
    let [trap, snare, other] = [&sites[0], &sites[1], &sites[2]].map(|s| w.runtime.directory(s));

    // Host files a root process must never touch for a tenant: one to chown, one to create.
    let host = tempfile::tempdir().unwrap();
    let shadow = host.path().join("shadow");
    std::fs::write(&shadow, "root:*:").unwrap();
    std::fs::set_permissions(&shadow, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let cron = host.path().join("cron.d-x");

    // What `ln -s` in the site's terminal plants (as the tenant sees them, under /site).
    std::fs::remove_file(trap.join("run.sh")).unwrap();
    std::os::unix::fs::symlink(&shadow, trap.join("run.sh")).unwrap();
    std::fs::remove_dir_all(trap.join("public")).unwrap();
    let other_name = other.file_name().unwrap().to_str().unwrap().to_owned();
    std::os::unix::fs::symlink(format!("../{other_name}"), trap.join("public")).unwrap();
    std::fs::remove_file(snare.join("public/index.html")).unwrap();
    std::os::unix::fs::symlink(&cron, snare.join("public/index.html")).unwrap();
    let other_before = owner(&other);
    let other_index_before = owner(&other.join("public/index.html"));

    for site in [&sites[0], &sites[1]] {
        w.db.platform.fix_site(Some(&admin), site.id).await.unwrap();
        assert!(w.db.platform.run_next_operation(&w.runtime).await.unwrap());
    }

    assert_eq!(
        owner(&shadow),
        (0, 0o600),
        "the host file kept its owner and mode"
    );
    assert_eq!(std::fs::read_to_string(&shadow).unwrap(), "root:*:");
    assert!(!cron.exists(), "no host file was created");
    assert_eq!(
        owner(&other),
        other_before,
        "another tenant's directory untouched"
    );
    assert_eq!(owner(&other.join("public/index.html")), other_index_before);
    // The links are still the tenant's own links, and the static site's fix went through.
    assert!(
        std::fs::symlink_metadata(trap.join("run.sh"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let snare_ops =
        w.db.platform
            .site_operations(Some(&admin), sites[1].id)
            .await
            .unwrap();
    assert_eq!(
        snare_ops[0].state,
        platform::sites::OperationState::Done,
        "{:?}",
        snare_ops[0].actions
    );
    // The dynamic site's `public` leads nowhere inside the site: its fix fails and says why.
    let trap_ops =
        w.db.platform
            .site_operations(Some(&admin), sites[0].id)
            .await
            .unwrap();
    assert_eq!(trap_ops[0].state, platform::sites::OperationState::Failed);
    assert!(
        trap_ops[0]
            .actions
            .iter()
            .any(|a| a.output.contains("public is not a folder")),
        "{:?}",
        trap_ops[0].actions
    );

    // Deleting the site removes its links, never what they lead to.
    w.db.platform
        .delete_site(Some(&mallory), sites[1].id, "snare")
        .await
        .unwrap();
    assert!(w.db.platform.run_next_operation(&w.runtime).await.unwrap());
    assert!(!snare.exists());
    assert_eq!(owner(&shadow), (0, 0o600));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sites_files_are_measured_and_held_to_their_disk_quota() {
    let w = world_with_quota(1 << 20).await;
    let alice = user(&w.db, "alice", Role::User).await;
    let site = made_site(&w, &alice, "roomy", "static").await;
    let disk = w.db.platform.site_disk(Some(&alice), site.id).await.unwrap();
    assert_eq!((disk.bytes, disk.quota), (None, 1 << 20), "not measured yet");
    let open = || {
        w.db.platform
            .site_files(Some(&alice), site.id, platform::Access::Write)
    };

    // Opened for writing, a site never measured is measured first (never unbounded); the
    // starter files take a few KiB, and 600 KiB more fit.
    let files = open().await.unwrap();
    let disk = w.db.platform.site_disk(Some(&alice), site.id).await.unwrap();
    assert!(disk.bytes.is_some_and(|b| b < 64 << 10), "{disk:?}");
    files.write("public/a.bin", &vec![7u8; 600 << 10]).unwrap();
    w.db.platform.measure_disks(&w.runtime).await.unwrap();
    let disk = w.db.platform.site_disk(Some(&alice), site.id).await.unwrap();
    assert!(disk.bytes.unwrap() > 600 << 10, "{disk:?}");
    assert!(disk.over_since.is_none());

    // What would go past the quota is refused whole, with the reason.
    let refused = open().await.unwrap().write("public/b.bin", &vec![7u8; 600 << 10]);
    assert!(
        matches!(&refused, Err(Error::DiskFull(m)) if m.contains("delete some before adding more")),
        "{refused:?}"
    );
    assert!(!w.runtime.directory(&site).join("public/b.bin").exists());
    // Writers at the same moment share the room (each reserves what it writes before it
    // starts): of two writes that each fit alone, one is refused.
    let room = files.disk().unwrap().room();
    let part = usize::try_from(room * 2 / 3).unwrap();
    let (first, second) = (open().await.unwrap(), open().await.unwrap());
    let (a, b) = tokio::join!(
        first.run(move |f| f.write("public/d1.bin", &vec![1u8; part])),
        second.run(move |f| f.write("public/d2.bin", &vec![2u8; part])),
    );
    assert_eq!([&a, &b].iter().filter(|r| r.is_ok()).count(), 1, "{a:?} {b:?}");
    let _ = (files.remove("public/d1.bin"), files.remove("public/d2.bin"));

    // The site's own code writes past it (nothing in Director can stop that): measured, it is
    // over, the audit log says so once, and nothing more is written through Director.
    std::fs::write(
        w.runtime.directory(&site).join("public/c.bin"),
        vec![1u8; 1 << 20],
    )
    .unwrap();
    w.db.platform.measure_disks(&w.runtime).await.unwrap();
    w.db.platform.measure_disks(&w.runtime).await.unwrap();
    let disk = w.db.platform.site_disk(Some(&alice), site.id).await.unwrap();
    assert!(disk.over_since.is_some() && disk.room() == Some(0), "{disk:?}");
    let admin = user(&w.db, "boss", Role::Admin).await;
    let audit = w.db.platform.audit_entries(Some(&admin), None, 50).await.unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|e| e.action == "site.disk.over-quota")
            .count(),
        1,
        "{audit:?}"
    );
    assert!(matches!(
        open().await.unwrap().write("public/tiny.txt", b"x"),
        Err(Error::DiskFull(_))
    ));

    // Files deleted: back under, writes go through again.
    files.remove("public/c.bin").unwrap();
    files.remove("public/a.bin").unwrap();
    w.db.platform.measure_disks(&w.runtime).await.unwrap();
    let disk = w.db.platform.site_disk(Some(&alice), site.id).await.unwrap();
    assert!(disk.over_since.is_none(), "{disk:?}");
    open().await.unwrap().write("public/tiny.txt", b"x").unwrap();
}

/// What a reboot does: every container and every mount of Director's goes, so that nothing
/// keeps a disk's loop device alive.
async fn reboot(w: &World, sites: &[&platform::sites::Site]) {
    for site in sites {
        w.runtime
            .orchestrator
            .stop_site(SiteId(site.id as u32))
            .await
            .unwrap();
    }
    for mount in [
        w.edge_dir.join("sites"),
        w.edge_dir.join("stage"),
        w.runtime.sites_root.clone(),
    ] {
        orchestrator::detach_blocking(&mount);
    }
    for site in sites {
        assert!(!w.runtime.directory(site).exists());
        // A lazily detached mount lets its loop device go once its last user has: a moment
        // after the containers are gone, not always at once.
        let mut holders = loop_devices_of(w, site);
        for _ in 0..50 {
            if holders.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            holders = loop_devices_of(w, site);
        }
        assert_eq!(holders, "", "nothing holds {}'s disk", site.name);
    }
}

/// The loop devices backing the site's disk image (`losetup -j`), empty when none.
fn loop_devices_of(w: &World, site: &platform::sites::Site) -> String {
    let image = w._dir.path().join(format!("disks/{:04}.ext4", site.id));
    let out = std::process::Command::new("losetup")
        .arg("-j")
        .arg(&image)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The mount table's line for exactly `path`.
fn mount_line(path: &std::path::Path) -> Option<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .find(|l| l.split(' ').nth(4) == path.to_str())
        .map(str::to_owned)
}

/// The kernel holds a site's own code to its quota (each site's directory is a file system of
/// its own, its quota large); after a reboot, when every mount is gone, the disks are mounted
/// again before anything reaches them, the site serves what it had, and Caddy still follows
/// no link; a deleted site's disk goes with it, loop device and all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sites_own_code_cannot_write_past_its_disk_and_its_disk_outlives_a_reboot() {
    const QUOTA: u64 = 8 << 20;
    let w = world_with_quota(QUOTA).await;
    let alice = user(&w.db, "alice", Role::User).await;
    let site = made_site(&w, &alice, "full", "static").await;
    let other = made_site(&w, &alice, "roomy", "static").await;
    let dir = w.runtime.directory(&site);

    // Its directory is its own ext4, nosuid and nodev.
    let line = mount_line(&dir).unwrap_or_else(|| panic!("{} is not a mount", dir.display()));
    assert!(
        line.contains(" - ext4 ") && line.contains("nosuid") && line.contains("nodev"),
        "{line}"
    );

    // The site's code (its terminal, as the site's uid) writes its whole quota, and then the
    // kernel stops it.
    let said = run_in_terminal(
        &w,
        &alice,
        site.id,
        &format!(
            "ln -s /srv/sites/{:04}/public/index.html /site/public/leak; dd if=/dev/zero of=/site/fill bs=1M count=64 2>&1",
            other.id
        ),
    )
    .await;
    assert!(said.contains("No space left on device"), "{said}");
    let filled = std::fs::metadata(dir.join("fill")).unwrap().len();
    assert!(
        (QUOTA - (1 << 20)..=QUOTA + (3 << 20)).contains(&filled),
        "wrote {filled} bytes on an 8 MiB quota"
    );
    // Another site's disk is its own.
    let said = run_in_terminal(
        &w,
        &alice,
        other.id,
        "dd if=/dev/zero of=/site/fine bs=1M count=4 2>/dev/null && echo wrote",
    )
    .await;
    assert!(said.contains("wrote"), "{said}");
    // Measured, the full site is over: Director writes nothing more there, with the reason.
    w.db.platform.measure_disks(&w.runtime).await.unwrap();
    let refused =
        w.db.platform
            .site_files(Some(&alice), site.id, platform::Access::Write)
            .await
            .unwrap()
            .write("public/more.txt", b"more");
    assert!(matches!(refused, Err(Error::DiskFull(_))), "{refused:?}");
    // A link to another site's page, as Caddy would see it, is never followed.
    assert!(std::fs::symlink_metadata(dir.join("public/leak")).is_ok());
    assert_eq!(get(w.edge, "roomy.localhost").await.0, 200);
    assert_eq!(get(w.edge, "full.localhost/leak").await.0, 404);

    // A reboot, then Director starts: the edge, then the disks, before anything else.
    reboot(&w, &[&site, &other]).await;
    Caddy::start(&w.runtime.orchestrator, w.caddy_config.clone())
        .await
        .unwrap();
    w.runtime.mount_disks().await.unwrap();
    assert_eq!(std::fs::metadata(dir.join("fill")).unwrap().len(), filled);
    let (status, page) = get(w.edge, "full.localhost").await;
    assert_eq!(status, 200);
    assert!(page.contains("starter page of full"), "{page}");
    assert_eq!(
        get(w.edge, "full.localhost/leak").await.0,
        404,
        "no link is followed"
    );
    let shown = w.edge_dir.join("sites").join(format!("{:04}", site.id));
    let line = mount_line(&shown).unwrap();
    assert!(line.contains(" ro,") && line.contains("nosymfollow"), "{line}");
    assert!(w.db.platform.reconcile(&w.runtime).await.unwrap().is_empty());

    // Deleted, the site's disk goes: no mount, no view, no loop device, no image.
    w.db.platform
        .delete_site(Some(&alice), site.id, "full")
        .await
        .unwrap();
    assert!(w.db.platform.run_next_operation(&w.runtime).await.unwrap());
    assert!(!dir.exists() && !shown.exists());
    assert!(mount_line(&dir).is_none() && mount_line(&shown).is_none());
    assert_eq!(loop_devices_of(&w, &site), "");
    let images: Vec<_> = std::fs::read_dir(w._dir.path().join("disks"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".ext4"))
        .collect();
    assert_eq!(images, vec![format!("{:04}.ext4", other.id)]);
}

/// A site whose directory is from before disks (a plain directory in the sites root, its
/// service running on it) is moved onto a disk of its own at start: only once nothing of the
/// site runs (not even a process that ignores SIGTERM), links as links and FIFOs as FIFOs,
/// owners kept; its service is made again on the disk and serves what it served. A directory
/// no site owns is left where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directories_from_before_disks_move_onto_disks_of_their_own() {
    let w = world().await;
    let alice = user(&w.db, "alice", Role::User).await;
    let site = made_site(&w, &alice, "older", "dynamic").await;
    let id = SiteId(site.id as u32);
    // As Director before disks left it: no mounts, no image, a plain directory, the site's
    // service running on it.
    reboot(&w, &[&site]).await;
    std::fs::remove_file(w._dir.path().join(format!("disks/{:04}.ext4", site.id))).unwrap();
    let dir = w.runtime.directory(&site);
    let uid = 100_000 + site.id as u32;
    std::fs::create_dir_all(dir.join("public")).unwrap();
    std::fs::write(dir.join("public/index.html"), "from before disks\n").unwrap();
    std::fs::write(
        dir.join("run.sh"),
        "#!/bin/sh\ntrap '' TERM\nhttpd -f -p \"$PORT\" -h /site/public &\nwhile :; do wait; done\n",
    )
    .unwrap();
    std::fs::set_permissions(
        dir.join("run.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::os::unix::fs::symlink("/etc", dir.join("public/etc")).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(dir.join("pipe"))
        .status()
        .unwrap();
    assert!(made.success());
    for path in [
        dir.clone(),
        dir.join("public"),
        dir.join("public/index.html"),
        dir.join("run.sh"),
    ] {
        std::os::unix::fs::chown(&path, Some(uid), Some(uid)).unwrap();
    }
    // Restarted, its service is made again, on the plain directory.
    w.db.platform.restart_site(Some(&alice), site.id).await.unwrap();
    assert!(w.db.platform.run_next_operation(&w.runtime).await.unwrap());
    for _ in 0..100 {
        if w.runtime.orchestrator.status(id).await.unwrap().running == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(w.runtime.orchestrator.status(id).await.unwrap().running, 1);
    let orphan = w.runtime.sites_root.join("9999");
    std::fs::create_dir_all(&orphan).unwrap();
    std::fs::write(orphan.join("keep.txt"), "nobody's\n").unwrap();

    Caddy::start(&w.runtime.orchestrator, w.caddy_config.clone())
        .await
        .unwrap();
    w.runtime.mount_disks().await.unwrap();

    // Moved while nothing of it ran: its service is gone until the reconciler makes it again.
    assert!(!has_service(&w, id).await);
    assert!(mount_line(&dir).is_some_and(|l| l.contains(" - ext4 ")));
    assert_eq!(
        std::fs::read_link(dir.join("public/etc")).unwrap(),
        PathBuf::from("/etc")
    );
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(
        &std::fs::symlink_metadata(dir.join("pipe")).unwrap().file_type()
    ));
    assert_eq!(owner(&dir.join("public/index.html")).0, uid);
    assert!(!dir.join("lost+found").exists());
    let corrections = w.db.platform.reconcile(&w.runtime).await.unwrap();
    assert!(!corrections.is_empty(), "its service made again");
    assert_eq!(
        served(w.edge, "older.localhost").await.as_deref(),
        Some("from before disks\n")
    );
    // The old copy is gone; the directory no site owns is kept, in view.
    let old = w._dir.path().join("disks/old-sites");
    assert!(!old.join(format!("{:04}", site.id)).exists());
    assert_eq!(
        std::fs::read_to_string(old.join("9999/keep.txt")).unwrap(),
        "nobody's\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_makes_a_missing_service_again() {
    let w = world().await;
    let bob = user(&w.db, "bob", Role::User).await;
    let site = made_site(&w, &bob, "phoenix", "dynamic").await;
    let id = SiteId(site.id as u32);
    // Removed by hand (or by a crash): a restart used to fail with the engine's 404, and so
    // did every retry.
    w.runtime.orchestrator.remove_service(id).await.unwrap();
    w.db.platform.restart_site(Some(&bob), site.id).await.unwrap();
    assert!(w.db.platform.run_next_operation(&w.runtime).await.unwrap());
    let ops = w.db.platform.site_operations(Some(&bob), site.id).await.unwrap();
    assert_eq!(
        ops[0].state,
        platform::sites::OperationState::Done,
        "{:?}",
        ops[0].actions
    );
    assert!(has_service(&w, id).await);
    assert_eq!(
        w.db.platform.site(Some(&bob), site.id).await.unwrap().state,
        SiteState::Running
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_that_finishes_after_a_deletion_was_queued_never_revives_the_site() {
    let w = world().await;
    let carol = user(&w.db, "carol", Role::User).await;
    let (site, _) =
        w.db.platform
            .create_site(Some(&carol), new_site("fleeting", "static", "busybox"))
            .await
            .unwrap();
    // Deleted while its create is still queued: the create then runs to its end.
    w.db.platform
        .delete_site(Some(&carol), site.id, "fleeting")
        .await
        .unwrap();
    assert!(w.db.platform.run_next_operation(&w.runtime).await.unwrap());
    assert_eq!(
        w.db.platform.site(Some(&carol), site.id).await.unwrap().state,
        SiteState::Deleting,
        "the finished create does not write running over deleting"
    );
    assert!(w.db.platform.run_next_operation(&w.runtime).await.unwrap());
    assert!(matches!(
        w.db.platform.site(Some(&carol), site.id).await,
        Err(Error::NotFound(_))
    ));
    assert!(!w.runtime.directory(&site).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sites_failure_never_stops_the_reconcilers_pass() {
    let w = world().await;
    let admin = user(&w.db, "boss", Role::Admin).await;
    let mut made = Vec::new();
    for name in ["alpha", "beta"] {
        let site = made_site(&w, &admin, name, "static").await;
        made.push(site);
    }
    let (alpha, beta) = (&made[0], &made[1]);
    // The database gives alpha a host that beta still has (beta's own name, written past
    // the checks): alpha's routes cannot be put while beta has it. And beta's routes on the
    // edge differ from the database (a host it no longer has).
    let mut held = w
        .runtime
        .edge
        .list()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.site == SiteId(beta.id as u32))
        .unwrap();
    held.hosts.push("shared.test".to_owned());
    w.runtime.edge.put(&held).await.unwrap();
    sql(
        &w.db,
        &format!(
            "INSERT INTO site_domains (site_id, host, token, verified_at, verified_by) \
             VALUES ({}, 'beta.localhost', 't', now(), 'admin')",
            alpha.id
        ),
    )
    .await;
    // And routes no site owns, which the pass must reach whatever happened before.
    let orphan = SiteId(4242);
    w.runtime
        .edge
        .put(&orchestrator::edge::SiteRoutes {
            site: orphan,
            hosts: vec!["orphan.localhost".to_owned()],
            ..held.clone()
        })
        .await
        .unwrap();

    let corrections = w.db.platform.reconcile(&w.runtime).await.unwrap();
    assert!(
        corrections.iter().any(|c| c.site == 4242),
        "the orphan was reached: {corrections:?}"
    );
    let (listed, _) = w.db.platform.all_sites(Some(&admin), None, 0).await.unwrap();
    let alpha_row = listed.iter().find(|s| s.site.id == alpha.id).unwrap();
    assert!(
        !alpha_row.problem.is_empty(),
        "alpha's failure is recorded for admins: {corrections:?} {alpha_row:?}"
    );
    assert_eq!(get(w.edge, "orphan.localhost").await.0, 404);

    assert_eq!(
        get(w.edge, "shared.test").await.0,
        404,
        "beta's drift was corrected"
    );

    // The database is put right: the next pass finds alpha correct and clears its problem.
    sql(&w.db, "DELETE FROM site_domains WHERE host = 'beta.localhost'").await;
    w.db.platform.reconcile(&w.runtime).await.unwrap();
    let (listed, _) = w.db.platform.all_sites(Some(&admin), None, 0).await.unwrap();
    assert!(listed.iter().all(|s| s.problem.is_empty()), "{listed:?}");
    for name in ["alpha", "beta"] {
        let (status, page) = get(w.edge, &format!("{name}.localhost")).await;
        assert_eq!(status, 200);
        assert!(page.contains(&format!("starter page of {name}")), "{page}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_moved_between_sites_is_routed_whatever_order_their_changes_run_in() {
    let w = world().await;
    let admin = user(&w.db, "boss", Role::Admin).await;
    let mut made = Vec::new();
    for name in ["giver", "taker"] {
        let site = made_site(&w, &admin, name, "static").await;
        made.push(site);
    }
    let (giver, taker) = (&made[0], &made[1]);
    let domain =
        w.db.platform
            .add_domain(Some(&admin), giver.id, "moving.test")
            .await
            .unwrap();
    assert!(w.db.platform.run_next_operation(&w.runtime).await.unwrap());
    // The host moves: the giver's change is queued first, but the taker's runs first (its
    // worker was quicker). The giver's operation is held back by holding its site's lock.
    w.db.platform
        .remove_domain(Some(&admin), giver.id, domain.id)
        .await
        .unwrap();
    w.db.platform
        .add_domain(Some(&admin), taker.id, "moving.test")
        .await
        .unwrap();
    let mut holder = AsyncPgConnection::establish(&w.db.url).await.unwrap();
    let lock = format!(
        "SELECT pg_advisory_lock(hashtext(current_schema() || '/site'), {})",
        giver.id
    );
    diesel::sql_query(lock).execute(&mut holder).await.unwrap();
    let (platform, runtime) = (w.db.platform.clone(), w.runtime.clone());
    let giver_worker = tokio::spawn(async move { platform.run_next_operation(&runtime).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(w.db.platform.run_next_operation(&w.runtime).await.unwrap());
    let ops =
        w.db.platform
            .site_operations(Some(&admin), taker.id)
            .await
            .unwrap();
    assert_eq!(
        ops[0].state,
        platform::sites::OperationState::Done,
        "{:?}",
        ops[0]
    );
    let (status, page) = get(w.edge, "moving.test").await;
    assert_eq!(status, 200);
    assert!(page.contains("starter page of taker"), "{page}");
    drop(holder);
    assert!(giver_worker.await.unwrap().unwrap());
    let (_, page) = get(w.edge, "moving.test").await;
    assert!(page.contains("starter page of taker"), "{page}");
    assert!(w.db.platform.reconcile(&w.runtime).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_whose_create_failed_stays_unserved_whatever_succeeds_after() {
    let w = world().await;
    let admin = user(&w.db, "boss", Role::Admin).await;
    let (site, create) =
        w.db.platform
            .create_site(Some(&admin), new_site("halfmade", "static", "busybox"))
            .await
            .unwrap();
    // Its directory cannot be made (a file holds its place): the create fails at its first
    // action.
    std::fs::create_dir_all(&w.runtime.sites_root).unwrap();
    std::fs::write(w.runtime.directory(&site), "in the way").unwrap();
    assert!(w.db.platform.run_next_operation(&w.runtime).await.unwrap());
    assert_eq!(
        w.db.platform.site(Some(&admin), site.id).await.unwrap().state,
        SiteState::Failing
    );

    // A later operation succeeds (an admin's domain, routed at once): the site is no more made
    // than before, so it stays failing and nothing of it is served, now or by the reconciler.
    w.db.platform
        .add_domain(Some(&admin), site.id, "half.test")
        .await
        .unwrap();
    assert!(w.db.platform.run_next_operation(&w.runtime).await.unwrap());
    let ops =
        w.db.platform
            .site_operations(Some(&admin), site.id)
            .await
            .unwrap();
    assert_eq!(ops[0].state, platform::sites::OperationState::Done);
    assert!(ops[0].actions[0].output.contains("not made yet"), "{:?}", ops[0]);
    assert_eq!(
        w.db.platform.site(Some(&admin), site.id).await.unwrap().state,
        SiteState::Failing
    );
    let corrections = w.db.platform.reconcile(&w.runtime).await.unwrap();
    assert!(corrections.iter().all(|c| c.site != site.id), "{corrections:?}");
    assert!(
        w.runtime
            .edge
            .list()
            .await
            .unwrap()
            .iter()
            .all(|r| r.site != SiteId(site.id as u32)),
        "no routes for a site never made"
    );

    // The way is cleared and its create retried: it is made, with the domain added meanwhile.
    std::fs::remove_file(w.runtime.directory(&site)).unwrap();
    w.db.platform
        .retry_operation(Some(&admin), site.id, create)
        .await
        .unwrap();
    assert!(w.db.platform.run_next_operation(&w.runtime).await.unwrap());
    assert_eq!(
        w.db.platform.site(Some(&admin), site.id).await.unwrap().state,
        SiteState::Running
    );
    for host in ["halfmade.localhost", "half.test"] {
        let (status, page) = get(w.edge, host).await;
        assert_eq!(status, 200, "{host}");
        assert!(page.contains("starter page of halfmade"), "{host}: {page}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_taken_over_from_a_silent_worker_is_finished_once_by_its_new_worker() {
    let w = world().await;
    let carol = user(&w.db, "carol", Role::User).await;
    let (site, operation) =
        w.db.platform
            .create_site(Some(&carol), new_site("twice", "static", "busybox"))
            .await
            .unwrap();
    let first = w.db.platform.claim_operation().await.unwrap().unwrap();
    assert_eq!(first.id, operation);
    // The first worker goes silent past the timeout: a second takes the operation over.
    sql(
        &w.db,
        &format!("UPDATE operations SET heartbeat = now() - interval '1 hour' WHERE id = {operation}"),
    )
    .await;
    let second = w.db.platform.claim_operation().await.unwrap().unwrap();
    assert_eq!(second.id, operation);

    // The first wakes up: its claim is no longer its own, so it does and records nothing.
    w.db.platform.run_claimed(&w.runtime, first).await.unwrap();
    let ops =
        w.db.platform
            .site_operations(Some(&carol), site.id)
            .await
            .unwrap();
    assert_eq!(ops[0].state, platform::sites::OperationState::Running);
    assert!(
        ops[0]
            .actions
            .iter()
            .all(|a| a.state == platform::sites::ActionState::Pending),
        "{:?}",
        ops[0].actions
    );
    assert_eq!(
        w.db.platform.site(Some(&carol), site.id).await.unwrap().state,
        SiteState::Provisioning
    );

    w.db.platform.run_claimed(&w.runtime, second).await.unwrap();
    let ops =
        w.db.platform
            .site_operations(Some(&carol), site.id)
            .await
            .unwrap();
    assert_eq!(ops[0].state, platform::sites::OperationState::Done);
    assert_eq!(
        w.db.platform.site(Some(&carol), site.id).await.unwrap().state,
        SiteState::Running
    );
    // A claim that was taken over stays so, even once the operation is done.
    w.db.platform.run_claimed(&w.runtime, first).await.unwrap();
    assert_eq!(
        w.db.platform
            .site_operations(Some(&carol), site.id)
            .await
            .unwrap()[0]
            .state,
        platform::sites::OperationState::Done
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_keeps_its_claim_alive_while_it_waits_for_the_sites_lock() {
    let db = TestDb::with_settings(platform::Settings {
        operation_heartbeat_timeout: Duration::from_secs(2),
        ..Default::default()
    })
    .await;
    let w = world_on(db, false).await;
    let carol = user(&w.db, "carol", Role::User).await;
    let (site, _) =
        w.db.platform
            .create_site(Some(&carol), new_site("patient", "static", "busybox"))
            .await
            .unwrap();
    // Something else holds the site's lock (the reconciler correcting it, say) for longer
    // than the heartbeat timeout.
    let mut holder = AsyncPgConnection::establish(&w.db.url).await.unwrap();
    let lock = format!(
        "SELECT pg_advisory_lock(hashtext(current_schema() || '/site'), {})",
        site.id
    );
    diesel::sql_query(lock).execute(&mut holder).await.unwrap();
    let (platform, runtime) = (w.db.platform.clone(), w.runtime.clone());
    let worker = tokio::spawn(async move { platform.run_next_operation(&runtime).await });
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        w.db.platform.claim_operation().await.unwrap().is_none(),
        "the waiting worker's claim stays fresh: nobody else takes its operation"
    );
    drop(holder);
    assert!(worker.await.unwrap().unwrap());
    assert_eq!(
        w.db.platform.site(Some(&carol), site.id).await.unwrap().state,
        SiteState::Running
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_taken_over_midway_is_decided_by_its_new_worker() {
    use platform::sites::VariableInput;
    let db = TestDb::with_settings(platform::Settings {
        site_start_period: Duration::from_secs(8),
        operation_heartbeat_timeout: Duration::from_secs(1),
        ..Default::default()
    })
    .await;
    let w = world_on(db, false).await;
    let ann = user(&w.db, "ann", Role::User).await;
    let site = made_site(&w, &ann, "handover", "dynamic").await;
    write_run_sh(
        &w,
        &site,
        "#!/bin/sh\nif [ -n \"$BROKEN\" ]; then exec sleep 1000; fi\necho up > /tmp/index.html\nexec httpd -f -p \"$PORT\" -h /tmp\n",
    );
    w.db.platform.restart_site(Some(&ann), site.id).await.unwrap();
    run_queue(&w).await;
    assert_eq!(
        served(w.edge, "handover.localhost").await.as_deref(),
        Some("up\n")
    );

    // A change whose new version never answers; its worker is killed once it sent the update
    // and while it waits for the engine to decide.
    w.db.platform
        .set_site_variable(
            Some(&ann),
            site.id,
            VariableInput {
                name: "BROKEN".to_owned(),
                value: Some("1".to_owned()),
                secret: false,
            },
        )
        .await
        .unwrap();
    let killed = tokio::time::timeout(
        Duration::from_secs(3),
        w.db.platform.run_next_operation(&w.runtime),
    )
    .await;
    assert!(killed.is_err(), "the worker was still waiting: {killed:?}");
    let status = w.runtime.orchestrator.status(site.engine_id()).await.unwrap();
    assert!(
        status
            .update
            .as_deref()
            .is_some_and(|u| u.starts_with("updating")),
        "{status:?}"
    );

    // The worker that takes it over waits for the same decision and reports it: the change
    // failed, and the site serves its old version.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    run_queue(&w).await;
    let failed = platform::testing::failed_operations(&w.db.platform).await;
    assert!(
        failed.iter().any(|(_, why)| why.contains("never answered")),
        "{failed:?}"
    );
    assert_eq!(get(w.edge, "handover.localhost").await, (200, "up\n".to_owned()));
}

/// How many random changes the soak test makes: a few dozen in CI; `bench/soak.sh` sets more.
fn soak_changes() -> usize {
    std::env::var("DIRECTOR_SOAK_CHANGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(60)
}

/// Counts that tasks share (`load` is named in full: diesel's `RunQueryDsl` has one too).
fn count(counter: &std::sync::atomic::AtomicUsize) -> usize {
    std::sync::atomic::AtomicUsize::load(counter, std::sync::atomic::Ordering::Relaxed)
}

fn stopped(flag: &std::sync::atomic::AtomicBool) -> bool {
    std::sync::atomic::AtomicBool::load(flag, std::sync::atomic::Ordering::Relaxed)
}

/// One random change to a random site of `made`, as a person would make it; what the
/// platform refuses for the site's state at that moment (4xx-like errors) is fine.
async fn random_change(
    platform: &platform::Platform,
    admin: &Actor,
    rng: &mut rand::rngs::StdRng,
    made: &std::sync::Mutex<Vec<(i32, String)>>,
    serial: usize,
) -> Result<(), Error> {
    use rand::Rng as _;
    let pick = {
        let made = made.lock().unwrap();
        made.get(rng.random_range(0..made.len().max(1))).cloned()
    };
    let Some((id, name)) = pick else {
        return Ok(());
    };
    let hosts = ["one.soak.test", "two.soak.test", "three.soak.test"];
    match rng.random_range(0..9) {
        8 => platform
            .set_availability(
                Some(admin),
                id,
                if rng.random_bool(0.5) {
                    Availability::Disabled
                } else {
                    Availability::Enabled
                },
                "randomly",
            )
            .await
            .map(drop),
        0 => platform.restart_site(Some(admin), id).await.map(drop),
        1 => platform
            .set_served(Some(admin), id, rng.random_bool(0.5))
            .await
            .map(drop),
        2 => platform
            .add_domain(Some(admin), id, hosts[rng.random_range(0..hosts.len())])
            .await
            .map(drop),
        3 => {
            let domains = platform.site_domains(Some(admin), id).await?;
            match <[_]>::first(&domains) {
                Some(domain) => platform.remove_domain(Some(admin), id, domain.id).await,
                None => Ok(()),
            }
        }
        4 => platform.fix_site(Some(admin), id).await.map(drop),
        5 => {
            platform.delete_site(Some(admin), id, &name).await?;
            made.lock().unwrap().retain(|(made, _)| *made != id);
            let kind = if rng.random_bool(0.5) { "static" } else { "dynamic" };
            let (site, _) = platform
                .create_site(Some(admin), new_site(&format!("soak{serial}"), kind, "busybox"))
                .await?;
            made.lock().unwrap().push((site.id, site.name));
            Ok(())
        }
        _ => platform
            .set_limits(
                Some(admin),
                id,
                platform::sites::Limits {
                    cpu_millis: 250,
                    memory_mb: if rng.random_bool(0.5) { 64 } else { 128 },
                    body_limit_mb: if rng.random_bool(0.5) { 8 } else { 16 },
                },
            )
            .await
            .map(drop),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_changes_with_workers_killed_midway_converge_on_the_database() {
    use rand::{Rng as _, SeedableRng as _};
    use std::sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed},
    };
    let db = TestDb::with_settings(platform::Settings {
        operation_heartbeat_timeout: Duration::from_secs(1),
        sites_per_user: 1000,
        ..Default::default()
    })
    .await;
    let w = world_on(db, false).await;
    let admin = user(&w.db, "boss", Role::Admin).await;
    let seed: u64 = std::env::var("DIRECTOR_SOAK_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    println!("soak seed {seed} (DIRECTOR_SOAK_SEED)");
    let made = Arc::new(Mutex::new(Vec::new()));
    for (n, kind) in ["static", "static", "dynamic", "static", "dynamic"]
        .iter()
        .enumerate()
    {
        let (site, _) =
            w.db.platform
                .create_site(Some(&admin), new_site(&format!("first{n}"), kind, "busybox"))
                .await
                .unwrap();
        made.lock().unwrap().push((site.id, site.name));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let kills = Arc::new(AtomicUsize::new(0));
    let applied = Arc::new(AtomicUsize::new(0));
    let started = std::time::Instant::now();
    let mut background = Vec::new();
    // Two workers; each run may be cut short at a random moment (its task dropped midway,
    // its connections closed: a worker killed), to be taken over once its claim goes stale.
    for worker in 0..2u64 {
        let (platform, runtime, stop, kills) = (
            w.db.platform.clone(),
            w.runtime.clone(),
            stop.clone(),
            kills.clone(),
        );
        background.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ (worker + 1));
            while !stopped(&stop) {
                let cut = Duration::from_millis(rng.random_range(5..400));
                match tokio::time::timeout(cut, platform.run_next_operation(&runtime)).await {
                    Ok(Ok(true)) => {}
                    Ok(Ok(false)) => tokio::time::sleep(Duration::from_millis(50)).await,
                    Ok(Err(err)) => panic!("a worker failed: {err}"),
                    Err(_) => {
                        kills.fetch_add(1, Relaxed);
                    }
                }
            }
        }));
    }
    {
        let (platform, runtime, stop) = (w.db.platform.clone(), w.runtime.clone(), stop.clone());
        background.push(tokio::spawn(async move {
            while !stopped(&stop) {
                platform.reconcile(&runtime).await.expect("a reconciler pass");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }));
    }
    // Three people making changes at once.
    let changes = soak_changes();
    let mut people = Vec::new();
    for person in 0..3u64 {
        let (platform, admin, made, applied) = (
            w.db.platform.clone(),
            admin.clone(),
            made.clone(),
            applied.clone(),
        );
        people.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ (person + 100));
            for n in 0..changes / 3 {
                let serial = (person as usize) * changes + n;
                match random_change(&platform, &admin, &mut rng, &made, serial).await {
                    Ok(()) => {
                        applied.fetch_add(1, Relaxed);
                    }
                    Err(Error::Conflict(_) | Error::NotFound(_) | Error::Invalid { .. }) => {}
                    Err(other) => panic!("a change failed: {other}"),
                }
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..150))).await;
            }
        }));
    }
    for person in people {
        person.await.unwrap();
    }
    stop.store(true, Relaxed);
    for task in background {
        task.await.unwrap();
    }

    // Every operation runs to its end (the killed workers' ones once their claims lapse).
    let drained = std::time::Instant::now();
    loop {
        if w.db.platform.run_next_operation(&w.runtime).await.unwrap() {
            continue;
        }
        let mut conn = AsyncPgConnection::establish(&w.db.url).await.unwrap();
        let open: i64 = diesel::dsl::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
            "(SELECT count(*) FROM operations WHERE state IN ('queued', 'running'))",
        ))
        .get_result(&mut conn)
        .await
        .unwrap();
        if open == 0 {
            break;
        }
        assert!(
            drained.elapsed() < Duration::from_secs(120),
            "{open} operations never finished"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut conn = AsyncPgConnection::establish(&w.db.url).await.unwrap();
    let failed: Vec<String> = diesel::dsl::sql::<diesel::sql_types::Text>(
        "SELECT o.kind || ': ' || a.action || ': ' || a.output FROM operations o \
         JOIN operation_actions a ON a.operation_id = o.id WHERE a.state = 'failed'",
    )
    .load(&mut conn)
    .await
    .unwrap();
    assert!(failed.is_empty(), "no operation fails: {failed:#?}");

    // The operations alone (the reconciler stopped) leave every site's state, service, routes
    // and files as the database has them.
    assert_sites_agree(&w, &admin).await;
    // The reconciler then only has the edge's leftovers to repair (temporaries of the killed
    // workers' writes), and a second pass nothing at all.
    let first = w.db.platform.reconcile(&w.runtime).await.unwrap();
    assert!(first.iter().all(|c| c.site == 0), "only repairs: {first:#?}");
    let second = w.db.platform.reconcile(&w.runtime).await.unwrap();
    assert!(second.is_empty(), "converged: {second:#?}");
    assert_sites_agree(&w, &admin).await;
    assert!(
        changes < 30 || count(&kills) > 0,
        "workers were killed midway: {}",
        count(&kills)
    );
    assert!(
        count(&applied) * 4 > changes,
        "most changes were applied: {} of {changes}",
        count(&applied)
    );
    println!(
        "soak: {changes} changes tried, {} applied, {} workers killed midway, {:.1} s",
        count(&applied),
        count(&kills),
        started.elapsed().as_secs_f64()
    );
}

/// Every site's state, service, routes and files agree with the database, and nothing of a
/// deleted site is left.
async fn assert_sites_agree(w: &World, admin: &Actor) {
    let (sites, _) = w.db.platform.all_sites(Some(admin), None, 0).await.unwrap();
    let objects = w.runtime.orchestrator.site_objects().await.unwrap();
    let routes = w.runtime.edge.list().await.unwrap();
    for row in &sites {
        let site = &row.site;
        let id = SiteId(site.id as u32);
        assert!(site.provisioned, "{site:?}");
        assert!(
            matches!(site.state, SiteState::Running | SiteState::Stopped),
            "{site:?}"
        );
        assert_eq!(
            objects.services.contains(&id),
            site.kind == platform::sites::SiteKind::Dynamic,
            "{site:?}"
        );
        let routed = routes.iter().find(|r| r.site == id).expect("its routes");
        let mut hosts = routed.hosts.clone();
        hosts.sort();
        let mut want: Vec<String> = std::iter::once(format!("{}.localhost", site.name))
            .chain(site.domains.iter().cloned())
            .collect();
        want.sort();
        assert_eq!(hosts, want, "{site:?}");
        let availability = match site.availability {
            Availability::Disabled => orchestrator::edge::Availability::Disabled,
            Availability::NotServed => orchestrator::edge::Availability::NotServed,
            Availability::Enabled => orchestrator::edge::Availability::Served,
        };
        assert_eq!(routed.availability, availability, "{site:?} {routed:?}");
        assert_eq!(
            site.state == SiteState::Running,
            site.availability == Availability::Enabled,
            "{site:?}"
        );
        let dir = w.runtime.directory(site);
        let made = match site.kind {
            platform::sites::SiteKind::Static => dir.join("public/index.html"),
            platform::sites::SiteKind::Dynamic => dir.join("run.sh"),
        };
        assert_eq!(owner(&made).0, 100_000 + site.id as u32, "{site:?}");
    }
    let known: std::collections::BTreeSet<SiteId> = sites.iter().map(|s| SiteId(s.site.id as u32)).collect();
    assert!(
        routes.iter().all(|r| known.contains(&r.site)),
        "no routes of deleted sites"
    );
    assert!(objects.services.is_subset(&known), "no services of deleted sites");
    let dirs = std::fs::read_dir(&w.runtime.sites_root).unwrap().count();
    assert_eq!(dirs, sites.len(), "no directories of deleted sites");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_removed_member_left_running_in_the_terminal_ends_with_their_access() {
    let w = world().await;
    let admin = user(&w.db, "boss", Role::Admin).await;
    let bob = user(&w.db, "bob", Role::User).await;
    let carol = user(&w.db, "carol", Role::User).await;
    let (site, _) =
        w.db.platform
            .create_site(Some(&admin), new_site("shared", "static", "busybox"))
            .await
            .unwrap();
    for member in ["bob", "carol"] {
        w.db.platform
            .add_member(Some(&admin), site.id, member)
            .await
            .unwrap();
    }
    assert!(w.db.platform.run_next_operation(&w.runtime).await.unwrap());
    // Bob leaves a process behind that outlives his shell (its own session: no hang-up reaches it).
    let said = run_in_terminal(
        &w,
        &bob,
        site.id,
        "setsid sleep 1000 </dev/null >/dev/null 2>&1 & echo started",
    )
    .await;
    assert!(said.contains("started"));
    let id = SiteId(site.id as u32);
    assert!(
        w.runtime
            .orchestrator
            .site_objects()
            .await
            .unwrap()
            .terminals
            .contains(&id)
    );

    w.db.platform
        .remove_member(Some(&admin), site.id, bob.user_id)
        .await
        .unwrap();
    assert!(w.db.platform.run_next_operation(&w.runtime).await.unwrap());
    assert!(
        !w.runtime
            .orchestrator
            .site_objects()
            .await
            .unwrap()
            .terminals
            .contains(&id),
        "the terminal container went, and everything in it"
    );
    // The members left get a new one when they open a terminal.
    let listed = run_in_terminal(&w, &carol, site.id, "ps -o pid,comm,args").await;
    assert!(!listed.contains("sleep 1000"), "bob's sleep is gone: {listed}");

    // Deactivating an account ends the terminals of all its sites the same way.
    w.db.platform
        .set_user_active(Some(&admin), carol.user_id, false)
        .await
        .unwrap();
    let ops =
        w.db.platform
            .site_operations(Some(&admin), site.id)
            .await
            .unwrap();
    assert_eq!(ops[0].kind, platform::sites::OperationKind::ResetTerminal);
    assert!(w.db.platform.run_next_operation(&w.runtime).await.unwrap());
    assert!(
        !w.runtime
            .orchestrator
            .site_objects()
            .await
            .unwrap()
            .terminals
            .contains(&id)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sites_swapping_their_domains_both_end_routed_whatever_the_order() {
    let w = world().await;
    let admin = user(&w.db, "boss", Role::Admin).await;
    let mut made = Vec::new();
    for (name, host) in [("left", "one.swap.test"), ("right", "two.swap.test")] {
        let site = made_site(&w, &admin, name, "static").await;
        w.db.platform
            .add_domain(Some(&admin), site.id, host)
            .await
            .unwrap();
        assert!(w.db.platform.run_next_operation(&w.runtime).await.unwrap());
        made.push(site);
    }
    let (left, right) = (&made[0], &made[1]);
    // The database swaps them at once; the edge still has each on its old site when the
    // first operation runs.
    sql(
        &w.db,
        &format!(
            "UPDATE site_domains SET site_id = CASE site_id WHEN {l} THEN {r} ELSE {l} END",
            l = left.id,
            r = right.id
        ),
    )
    .await;
    for site in [right, left] {
        w.db.platform.fix_site(Some(&admin), site.id).await.unwrap();
    }
    while w.db.platform.run_next_operation(&w.runtime).await.unwrap() {}
    for site in [left, right] {
        let ops =
            w.db.platform
                .site_operations(Some(&admin), site.id)
                .await
                .unwrap();
        assert_eq!(
            ops[0].state,
            platform::sites::OperationState::Done,
            "{:?}",
            ops[0]
        );
    }
    for (host, owner) in [("one.swap.test", "right"), ("two.swap.test", "left")] {
        let (status, page) = get(w.edge, host).await;
        assert_eq!(status, 200, "{host}");
        assert!(
            page.contains(&format!("starter page of {owner}")),
            "{host}: {page}"
        );
    }
    assert!(w.db.platform.reconcile(&w.runtime).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_being_deleted_is_never_served_again_by_a_later_change() {
    let w = world().await;
    let admin = user(&w.db, "boss", Role::Admin).await;
    let site = made_site(&w, &admin, "leaving", "static").await;
    let domain =
        w.db.platform
            .add_domain(Some(&admin), site.id, "leaving.test")
            .await
            .unwrap();
    assert!(w.db.platform.run_next_operation(&w.runtime).await.unwrap());
    // Its deletion took its routes away, then failed (its service would not go, say).
    let deletion =
        w.db.platform
            .delete_site(Some(&admin), site.id, "leaving")
            .await
            .unwrap();
    w.runtime.edge.remove(SiteId(site.id as u32)).await.unwrap();
    sql(
        &w.db,
        &format!(
            "UPDATE operation_actions SET state = CASE WHEN position = 0 THEN 'done' ELSE 'failed' END \
             WHERE operation_id = {deletion} AND position <= 1"
        ),
    )
    .await;
    sql(
        &w.db,
        &format!("UPDATE operations SET state = 'failed' WHERE id = {deletion}"),
    )
    .await;
    // A member removes a domain meanwhile: its routing must not bring the site back.
    w.db.platform
        .remove_domain(Some(&admin), site.id, domain.id)
        .await
        .unwrap();
    assert!(w.db.platform.run_next_operation(&w.runtime).await.unwrap());
    let ops =
        w.db.platform
            .site_operations(Some(&admin), site.id)
            .await
            .unwrap();
    assert!(ops[0].actions[0].output.contains("being deleted"), "{:?}", ops[0]);
    assert_eq!(get(w.edge, "leaving.localhost").await.0, 404);
    assert!(
        w.runtime
            .edge
            .list()
            .await
            .unwrap()
            .iter()
            .all(|r| r.site != SiteId(site.id as u32))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_directors_operations_resume_at_once_on_its_own_database() {
    let w = world().await;
    let carol = user(&w.db, "carol", Role::User).await;
    let (site, _) =
        w.db.platform
            .create_site(Some(&carol), new_site("again", "static", "busybox"))
            .await
            .unwrap();
    // Claimed by a Director that was then killed: its heartbeat is fresh, so another
    // process would wait it out.
    let killed = w.db.platform.claim_operation().await.unwrap().unwrap();
    assert!(w.db.platform.claim_operation().await.unwrap().is_none());
    // Started again on a database it alone uses: the operation runs now.
    assert_eq!(w.db.platform.resume_orphaned_operations().await.unwrap(), 1);
    assert!(w.db.platform.run_next_operation(&w.runtime).await.unwrap());
    assert_eq!(
        w.db.platform.site(Some(&carol), site.id).await.unwrap().state,
        SiteState::Running
    );
    // The killed one's claim is no longer its own.
    w.db.platform.run_claimed(&w.runtime, killed).await.unwrap();
    assert_eq!(get(w.edge, "again.localhost").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_access_in_any_way_resets_the_terminals_it_could_reach() {
    let w = world().await;
    let admin = user(&w.db, "boss", Role::Admin).await;
    let helper = user(&w.db, "helper", Role::Admin).await;
    let alice = user(&w.db, "alice", Role::User).await;
    let mut made = Vec::new();
    for (name, kind) in [("quiet", "static"), ("busy", "dynamic")] {
        let site = made_site(&w, &alice, name, kind).await;
        made.push(site);
    }
    // An admin demoted could open a terminal in every site: every site's is reset once (a
    // reset already queued is not queued twice).
    w.db.platform
        .set_user_role(Some(&admin), helper.user_id, Role::User)
        .await
        .unwrap();
    w.db.platform
        .set_user_active(Some(&admin), helper.user_id, false)
        .await
        .unwrap();
    for site in &made {
        let ops =
            w.db.platform
                .site_operations(Some(&admin), site.id)
                .await
                .unwrap();
        let resets = ops
            .iter()
            .filter(|o| o.kind == platform::sites::OperationKind::ResetTerminal)
            .count();
        assert_eq!(resets, 1, "{}: {ops:?}", site.name);
    }
    while w.db.platform.run_next_operation(&w.runtime).await.unwrap() {}
    // A dynamic site's service task is replaced too: its members' code runs there as well.
    let busy =
        w.db.platform
            .site_operations(Some(&admin), made[1].id)
            .await
            .unwrap();
    assert_eq!(
        busy[0].state,
        platform::sites::OperationState::Done,
        "{:?}",
        busy[0]
    );
    assert_eq!(
        busy[0].actions.iter().map(|a| a.action).collect::<Vec<_>>(),
        [
            platform::sites::Action::RemoveTerminal,
            platform::sites::Action::RestartService
        ]
    );
    assert_eq!(
        w.db.platform.site(Some(&alice), made[1].id).await.unwrap().state,
        SiteState::Running
    );
}

/// Admins see where each catalogue image stands on the engine; nobody else does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_see_where_each_image_stands_on_the_engine() {
    let w = world().await;
    let admin = user(&w.db, "boss", Role::Admin).await;
    let alice = user(&w.db, "alice", Role::User).await;
    let references = vec![
        "director/busybox:latest".to_owned(),
        "example.org/not-here:1".to_owned(),
    ];
    let states =
        w.db.platform
            .images_on_engine(Some(&admin), &references)
            .await
            .unwrap();
    assert_eq!(states, vec![EngineImage::Ready, EngineImage::Missing]);
    w.db.platform.set_runtime(None);
    let unknown =
        w.db.platform
            .images_on_engine(Some(&admin), &references)
            .await
            .unwrap();
    assert_eq!(unknown, vec![EngineImage::Unknown, EngineImage::Unknown]);
    w.db.platform.set_runtime(Some(w.runtime.clone()));
    let refused = w.db.platform.images_on_engine(Some(&alice), &references).await;
    assert!(matches!(refused, Err(Error::Forbidden)), "{refused:?}");
}

/// Writes `run.sh` into a site's directory as its own user would have.
fn write_run_sh(w: &World, site: &platform::sites::Site, script: &str) {
    let path = w.runtime.directory(site).join("run.sh");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let uid = platform::sites::Runtime::uid(site);
    std::os::unix::fs::chown(&path, Some(uid), Some(uid)).unwrap();
}

/// A dynamic site `name` of `who` on the Python image, made, whose `run.sh` is `script`.
async fn python_site(w: &World, who: &Actor, name: &str, script: &str) -> platform::sites::Site {
    let (site, _) =
        w.db.platform
            .create_site(Some(who), new_site(name, "dynamic", "python"))
            .await
            .unwrap();
    run_queue(w).await;
    write_run_sh(w, &site, script);
    site
}

/// Runs every queued operation to its end.
async fn run_queue(w: &World) {
    while w.db.platform.run_next_operation(&w.runtime).await.unwrap() {}
}

/// Runs the queue, then reads the build `id` of `site` as `who` sees it once it ended.
async fn finished_build(w: &World, who: &Actor, site: i32, id: i64) -> platform::sites::BuildRecord {
    run_queue(w).await;
    w.db.platform.site_build(Some(who), site, id).await.unwrap()
}

/// The catalogue's image called `name`, as `admin` sees it.
async fn catalogue_image(w: &World, admin: &Actor, name: &str) -> platform::sites::CatalogueImage {
    w.db.platform
        .catalogue(Some(admin))
        .await
        .unwrap()
        .into_iter()
        .find(|image| image.name == name)
        .unwrap()
}

/// A world whose sites' new tasks must answer within `period` before they are rolled back.
async fn world_starting_within(period: Duration) -> World {
    let db = TestDb::with_settings(platform::Settings {
        site_start_period: period,
        ..platform::Settings::default()
    })
    .await;
    world_on(db, false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recipe_adds_a_debian_package_its_site_uses_and_a_failed_build_leaves_it_serving() {
    use platform::sites::{BuildState, RecipeInput};
    let w = world().await;
    let ann = user(&w.db, "ann", Role::User).await;
    let site = python_site(&w, &ann, "jqsite", "#!/bin/sh\necho '{\"a\": 41}' | jq '.a + 1' > /tmp/index.html\nexec python3 -m http.server \"$PORT\" -d /tmp\n").await;

    // Bad names are refused before anything is saved or built.
    for bad in ["-o", "jq;id", "$(id)"] {
        let input = RecipeInput {
            apt: bad.to_owned(),
            ..RecipeInput::default()
        };
        let err =
            w.db.platform
                .save_recipe(Some(&ann), site.id, &input)
                .await
                .unwrap_err();
        assert!(
            matches!(err, Error::Invalid { field: "apt", .. }),
            "{bad}: {err:?}"
        );
    }
    let view = w.db.platform.site_image(Some(&ann), site.id).await.unwrap();
    assert!(view.builds.is_empty() && view.recipe.apt.is_empty());

    // jq added: the build runs as an operation and the site then runs the image it made.
    let jq = RecipeInput {
        apt: "jq".to_owned(),
        ..RecipeInput::default()
    };
    let first = w.db.platform.save_recipe(Some(&ann), site.id, &jq).await.unwrap();
    let build = finished_build(&w, &ann, site.id, first).await;
    assert_eq!(build.summary.state, BuildState::Succeeded, "{}", build.log);
    // The engine's output, step by step (apt's own lines only when its layer was not cached).
    assert!(build.log.contains("Successfully tagged"), "{}", build.log);
    let tag =
        w.db.platform
            .site(Some(&ann), site.id)
            .await
            .unwrap()
            .built_image
            .unwrap();
    assert!(
        tag.starts_with("director/") && tag.ends_with("site_0001:1"),
        "{tag}"
    );
    assert_eq!(served(w.edge, "jqsite.localhost").await.as_deref(), Some("42\n"));

    // The same recipe again: nothing is built, the image is used again.
    let again = w.db.platform.rebuild_site(Some(&ann), site.id).await.unwrap();
    let build = finished_build(&w, &ann, site.id, again).await;
    assert_eq!(build.summary.state, BuildState::Reused, "{}", build.log);
    assert_eq!(
        w.db.platform
            .site(Some(&ann), site.id)
            .await
            .unwrap()
            .built_image
            .as_deref(),
        Some(tag.as_str())
    );

    // A package that does not exist: the build fails with apt's words, the site serves on.
    let missing = RecipeInput {
        apt: "jq no-such-package-anywhere".to_owned(),
        ..RecipeInput::default()
    };
    let failed =
        w.db.platform
            .save_recipe(Some(&ann), site.id, &missing)
            .await
            .unwrap();
    let build = finished_build(&w, &ann, site.id, failed).await;
    assert_eq!(build.summary.state, BuildState::Failed);
    assert!(
        build
            .log
            .contains("Unable to locate package no-such-package-anywhere"),
        "{}",
        build.log
    );
    assert!(!build.summary.error.is_empty());
    let site_now = w.db.platform.site(Some(&ann), site.id).await.unwrap();
    assert_eq!(site_now.built_image.as_deref(), Some(tag.as_str()));
    assert_eq!(
        site_now.state,
        SiteState::Running,
        "a failed build is no failing site"
    );
    assert_eq!(get(w.edge, "jqsite.localhost").await, (200, "42\n".to_owned()));
    // Its operation retried builds nothing behind the member's back: it says what to do.
    let operation = w.db.platform.site_operations(Some(&ann), site.id).await.unwrap()[0].id;
    w.db.platform
        .retry_operation(Some(&ann), site.id, operation)
        .await
        .unwrap();
    run_queue(&w).await;
    let retried = &w.db.platform.site_operations(Some(&ann), site.id).await.unwrap()[0];
    assert!(
        retried.actions[0].output.contains("press Build again"),
        "{retried:?}"
    );
    assert_eq!(get(w.edge, "jqsite.localhost").await, (200, "42\n".to_owned()));

    // A new site may come with its packages: built after its create, in order.
    let err =
        w.db.platform
            .create_site_with_recipe(Some(&ann), new_site("pkgstatic", "static", "busybox"), &jq)
            .await
            .unwrap_err();
    assert!(matches!(err, Error::Invalid { field: "apt", .. }), "{err:?}");
    let (made, _) =
        w.db.platform
            .create_site_with_recipe(Some(&ann), new_site("pkgsite", "dynamic", "python"), &jq)
            .await
            .unwrap();
    run_queue(&w).await;
    let made = w.db.platform.site(Some(&ann), made.id).await.unwrap();
    assert_eq!(made.state, SiteState::Running);
    assert!(made.built_image.is_some_and(|t| t.ends_with(":1")));
    let view = w.db.platform.site_image(Some(&ann), made.id).await.unwrap();
    assert_eq!(view.recipe.apt, ["jq"]);
    assert!(matches!(
        view.builds[0].state,
        BuildState::Succeeded | BuildState::Reused
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variables_reach_the_site_and_a_version_that_never_answers_is_rolled_back() {
    use platform::sites::VariableInput;
    let w = world_starting_within(Duration::from_secs(8)).await;
    let ann = user(&w.db, "ann", Role::User).await;
    let site = made_site(&w, &ann, "vars", "dynamic").await;
    write_run_sh(
        &w,
        &site,
        "#!/bin/sh\nif [ -n \"$BROKEN\" ]; then exec sleep 1000; fi\necho \"$GREETING, $NAME\" > /tmp/index.html\nexec httpd -f -p \"$PORT\" -h /tmp\n",
    );
    let set = |name: &str, value: Option<&str>, secret: bool| VariableInput {
        name: name.to_owned(),
        value: value.map(str::to_owned),
        secret,
    };
    let platform = &w.db.platform;
    platform
        .set_site_variable(Some(&ann), site.id, set("GREETING", Some("hello"), false))
        .await
        .unwrap();
    platform
        .set_site_variable(Some(&ann), site.id, set("NAME", Some("s3cr3t"), true))
        .await
        .unwrap();
    run_queue(&w).await;
    assert_eq!(
        served(w.edge, "vars.localhost").await.as_deref(),
        Some("hello, s3cr3t\n")
    );
    let listed = platform.site_variables(Some(&ann), site.id).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].value.as_deref(), Some("hello"));
    assert_eq!(listed[1].value, None, "a secret's value is never shown again");

    // Names Director sets, bad names and bad values are refused.
    for (name, value) in [
        ("PORT", "1"),
        ("DATABASE_URL", "x"),
        ("1X", "x"),
        ("A-B", "x"),
        ("OK", "a\0b"),
    ] {
        let err = platform
            .set_site_variable(Some(&ann), site.id, set(name, Some(value), false))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Invalid { .. }), "{name}: {err:?}");
    }
    let err = platform
        .set_site_variable(Some(&ann), site.id, set("NAME", None, false))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Invalid { field: "secret", .. }), "{err:?}");

    // A variable that makes the new version never answer: the old one serves throughout, the
    // operation fails with why, and the reconciler does not deploy it again unasked.
    platform
        .set_site_variable(Some(&ann), site.id, set("BROKEN", Some("1"), false))
        .await
        .unwrap();
    let checker = {
        let edge = w.edge;
        tokio::spawn(async move {
            let mut answers = Vec::new();
            for _ in 0..40 {
                answers.push(get(edge, "vars.localhost").await);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            answers
        })
    };
    run_queue(&w).await;
    let failed = platform::testing::failed_operations(platform).await;
    assert!(
        failed.iter().any(|(_, why)| why.contains("never answered")),
        "{failed:?}"
    );
    for answer in checker.await.unwrap() {
        assert_eq!(
            answer,
            (200, "hello, s3cr3t\n".to_owned()),
            "the old version kept serving"
        );
    }
    platform.reconcile(&w.runtime).await.unwrap();
    assert_eq!(
        get(w.edge, "vars.localhost").await,
        (200, "hello, s3cr3t\n".to_owned())
    );
    let status = w
        .runtime
        .orchestrator
        .status(SiteId(site.id as u32))
        .await
        .unwrap();
    assert!(
        status
            .update
            .as_deref()
            .is_some_and(|u| u.starts_with("rollback")),
        "{status:?}"
    );

    // Removing it deploys the good version again.
    platform
        .remove_site_variable(Some(&ann), site.id, "BROKEN")
        .await
        .unwrap();
    run_queue(&w).await;
    assert_eq!(
        get(w.edge, "vars.localhost").await,
        (200, "hello, s3cr3t\n".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_whose_image_never_answers_is_undone_and_the_site_serves_on() {
    use platform::sites::{BuildState, RecipeInput};
    let w = world_starting_within(Duration::from_secs(8)).await;
    let ann = user(&w.db, "ann", Role::User).await;
    let site = python_site(
        &w,
        &ann,
        "undone",
        "#!/bin/sh\necho up > /tmp/index.html\nexec python3 -m http.server \"$PORT\" -d /tmp\n",
    )
    .await;
    w.db.platform.restart_site(Some(&ann), site.id).await.unwrap();
    run_queue(&w).await;
    assert_eq!(served(w.edge, "undone.localhost").await.as_deref(), Some("up\n"));

    // The build succeeds, but its image has no Python left: its task never answers.
    let broken = RecipeInput {
        setup: "rm /usr/bin/python3".to_owned(),
        ..RecipeInput::default()
    };
    let build =
        w.db.platform
            .save_recipe(Some(&ann), site.id, &broken)
            .await
            .unwrap();
    let record = finished_build(&w, &ann, site.id, build).await;
    assert_eq!(record.summary.state, BuildState::Failed, "{record:?}");
    assert!(
        record.summary.error.contains("rolled back"),
        "{}",
        record.summary.error
    );
    let now = w.db.platform.site(Some(&ann), site.id).await.unwrap();
    assert_eq!(now.built_image, None, "the catalogue image it ran before");
    assert_eq!(get(w.edge, "undone.localhost").await, (200, "up\n".to_owned()));
    let failed = platform::testing::failed_operations(&w.db.platform).await;
    assert!(
        failed
            .iter()
            .any(|(kind, why)| kind == "build-image" && why.contains("never answered")),
        "{failed:?}"
    );
    // The reconciler does not deploy it again.
    w.db.platform.reconcile(&w.runtime).await.unwrap();
    assert_eq!(get(w.edge, "undone.localhost").await, (200, "up\n".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_builds_its_own_dockerfile_whose_context_carries_links_never_what_they_point_to() {
    use platform::sites::{BuildState, RecipeInput, RecipeSource};
    use std::os::unix::fs::symlink;
    let w = world().await;
    let admin = user(&w.db, "root", Role::Admin).await;
    let ann = user(&w.db, "ann", Role::User).await;
    let site = python_site(
        &w,
        &ann,
        "ownsite",
        "#!/bin/sh\nexec python3 -m http.server \"$PORT\" -d /opt/out\n",
    )
    .await;
    let own = RecipeInput {
        source: RecipeSource::Dockerfile,
        dockerfile: "app/Dockerfile".to_owned(),
        context: "app".to_owned(),
        ..RecipeInput::default()
    };
    // Until an administrator allows it on the site's catalogue image, it is refused.
    let err =
        w.db.platform
            .save_recipe(Some(&ann), site.id, &own)
            .await
            .unwrap_err();
    assert!(
        matches!(err, Error::Conflict(ref why) if why.contains("administrator")),
        "{err:?}"
    );
    let mut python = catalogue_image(&w, &admin, "python").await;
    python.recipes.dockerfile = true;
    let reference = python.reference.clone();
    w.db.platform.save_image(Some(&admin), python).await.unwrap();

    // The context: a file, a link to a host file outside the site, a pipe (which would hang a
    // reader), and a file .dockerignore leaves out.
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("host-secret");
    std::fs::write(&secret, "HOST-SECRET-4417\n").unwrap();
    let app = w.runtime.directory(&site).join("app");
    std::fs::create_dir(&app).unwrap();
    // The site's files are its user's, as its members would have made them.
    let uid = platform::sites::Runtime::uid(&site);
    let chown = |path: &std::path::Path| std::os::unix::fs::lchown(path, Some(uid), Some(uid)).unwrap();
    std::fs::write(app.join("hello.txt"), "hello from the context\n").unwrap();
    symlink(&secret, app.join("secret")).unwrap();
    symlink("/etc/passwd", app.join("passwd")).unwrap();
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        app.join("pipe"),
        rustix::fs::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    std::fs::write(app.join("left-out.txt"), "never sent\n").unwrap();
    std::fs::write(app.join(".dockerignore"), "left-out.txt\n").unwrap();
    // (The secret's words are split in two quoted halves: the Dockerfile, which the context
    // holds, must not contain them itself.)
    let dockerfile = format!(
        "FROM {reference}\nCOPY . /app\n\
         RUN test -L /app/secret && test \"$(readlink /app/passwd)\" = /etc/passwd && test ! -e /app/left-out.txt && test ! -e /app/pipe \\\n \
         && ! grep -rqs 'SECRET-44''17' /app \\\n \
         && mkdir /opt/out && readlink /app/secret > /opt/out/index.html && cat /app/hello.txt >> /opt/out/index.html\n"
    );
    std::fs::write(app.join("Dockerfile"), &dockerfile).unwrap();
    for name in [
        "",
        "hello.txt",
        "secret",
        "passwd",
        "pipe",
        "left-out.txt",
        ".dockerignore",
        "Dockerfile",
    ] {
        chown(&app.join(name));
    }

    let first =
        w.db.platform
            .save_recipe(Some(&ann), site.id, &own)
            .await
            .unwrap();
    let build = finished_build(&w, &ann, site.id, first).await;
    assert_eq!(build.summary.state, BuildState::Succeeded, "{}", build.log);
    let expected = format!("{}\nhello from the context\n", secret.display());
    assert_eq!(
        served(w.edge, "ownsite.localhost").await.as_deref(),
        Some(expected.as_str())
    );
    let view = w.db.platform.site_image(Some(&ann), site.id).await.unwrap();
    assert_eq!(view.recipe.source, RecipeSource::Dockerfile);
    assert_eq!(
        (view.recipe.dockerfile.as_str(), view.recipe.context.as_str()),
        ("app/Dockerfile", "app")
    );

    // Unchanged files: the image is used again. A changed one is built anew.
    let again = w.db.platform.rebuild_site(Some(&ann), site.id).await.unwrap();
    assert_eq!(
        finished_build(&w, &ann, site.id, again).await.summary.state,
        BuildState::Reused
    );

    // What a build may not do fails it with why, and the site serves on: a context of 10 GB
    // (a sparse file: refused before a byte is read), a stage from outside the catalogue, a
    // file fetched over the network.
    // A file the site does not own (a hard link to another's file) is never sent.
    std::fs::write(app.join("theirs"), "root's\n").unwrap();
    let refused = w.db.platform.rebuild_site(Some(&ann), site.id).await.unwrap();
    let build = finished_build(&w, &ann, site.id, refused).await;
    assert_eq!(build.summary.state, BuildState::Failed);
    assert!(
        build.summary.error.contains("theirs is not the site's own file"),
        "{}",
        build.summary.error
    );
    std::fs::remove_file(app.join("theirs")).unwrap();
    let big = std::fs::File::create(app.join("big.bin")).unwrap();
    big.set_len(10 << 30).unwrap();
    chown(&app.join("big.bin"));
    let refused = w.db.platform.rebuild_site(Some(&ann), site.id).await.unwrap();
    let build = finished_build(&w, &ann, site.id, refused).await;
    assert_eq!(build.summary.state, BuildState::Failed);
    assert!(
        build.summary.error.contains(" 10")
            && build.summary.error.contains("GiB")
            && build.summary.error.contains("256 MiB"),
        "{}",
        build.summary.error
    );
    std::fs::remove_file(app.join("big.bin")).unwrap();
    for (bad, why) in [
        ("FROM debian:bookworm\n", "catalogue image"),
        (
            &*format!("FROM {reference}\nADD http://169.254.169.254/latest/meta-data /x\n"),
            "network",
        ),
    ] {
        std::fs::write(app.join("Dockerfile"), bad).unwrap();
        chown(&app.join("Dockerfile"));
        let id = w.db.platform.rebuild_site(Some(&ann), site.id).await.unwrap();
        let build = finished_build(&w, &ann, site.id, id).await;
        assert_eq!(build.summary.state, BuildState::Failed, "{bad}");
        assert!(
            build.summary.error.contains(why),
            "{bad}: {}",
            build.summary.error
        );
    }
    assert_eq!(
        served(w.edge, "ownsite.localhost").await.as_deref(),
        Some(expected.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admins_pasted_dockerfile_becomes_a_catalogue_image_sites_run() {
    use platform::sites::{BuildState, CatalogueImage, RecipeSupport};
    let w = world().await;
    let admin = user(&w.db, "root", Role::Admin).await;
    let ann = user(&w.db, "ann", Role::User).await;
    let python = catalogue_image(&w, &admin, "python").await.reference;
    let tools = CatalogueImage {
        id: 0,
        name: "tools".to_owned(),
        description: "Python with a page of its own".to_owned(),
        reference: String::new(),
        serves_static: false,
        serves_dynamic: true,
        run_sh: "#!/bin/sh\nexec python3 -m http.server \"$PORT\" -d /opt/out\n".to_owned(),
        enabled: true,
        recipes: RecipeSupport {
            dockerfile: true,
            ..RecipeSupport::default()
        },
    };
    let dockerfile =
        format!("FROM {python}\nRUN mkdir /opt/out && echo built by an admin > /opt/out/index.html\n");
    // Only admins, and only a Dockerfile.
    let refused =
        w.db.platform
            .save_and_build_image(Some(&ann), tools.clone(), &dockerfile)
            .await;
    assert!(matches!(refused, Err(Error::Forbidden)), "{refused:?}");
    let refused =
        w.db.platform
            .save_and_build_image(Some(&admin), tools.clone(), "echo hello")
            .await;
    assert!(
        matches!(
            refused,
            Err(Error::Invalid {
                field: "dockerfile",
                ..
            })
        ),
        "{refused:?}"
    );

    let (id, _) =
        w.db.platform
            .save_and_build_image(Some(&admin), tools.clone(), &dockerfile)
            .await
            .unwrap();
    let listed = |w: &World| {
        let platform = w.db.platform.clone();
        let admin = admin.clone();
        async move {
            platform
                .catalogue(Some(&admin))
                .await
                .unwrap()
                .into_iter()
                .find(|image| image.id == id)
                .unwrap()
        }
    };
    // Not offered to new sites until it is made; a second build waits for the first to end.
    let pending = listed(&w).await;
    assert!(!pending.enabled);
    assert!(
        pending.reference.ends_with(&format!("catalogue_{id}:1")),
        "{}",
        pending.reference
    );
    let twice =
        w.db.platform
            .save_and_build_image(Some(&admin), pending.clone(), &dockerfile)
            .await;
    assert!(matches!(twice, Err(Error::Conflict(_))), "{twice:?}");
    let offered = CatalogueImage {
        enabled: true,
        ..pending.clone()
    };
    let early = w.db.platform.save_image(Some(&admin), offered).await;
    assert!(
        matches!(early, Err(Error::Conflict(ref why)) if why.contains("No build has made")),
        "{early:?}"
    );

    assert!(w.db.platform.run_next_catalogue_build(&w.runtime).await.unwrap());
    assert!(!w.db.platform.run_next_catalogue_build(&w.runtime).await.unwrap());
    let build =
        w.db.platform
            .catalogue_builds(Some(&admin))
            .await
            .unwrap()
            .remove(0);
    assert_eq!(build.state, BuildState::Succeeded, "{}", build.log);
    assert!(build.log.contains("Successfully tagged"), "{}", build.log);
    let made = listed(&w).await;
    assert!(made.enabled);
    let (site, _) =
        w.db.platform
            .create_site(Some(&ann), new_site("toolsite", "dynamic", "tools"))
            .await
            .unwrap();
    run_queue(&w).await;
    assert_eq!(
        w.db.platform.site(Some(&ann), site.id).await.unwrap().state,
        SiteState::Running
    );
    assert_eq!(
        served(w.edge, "toolsite.localhost").await.as_deref(),
        Some("built by an admin\n")
    );

    // A build that fails says why and leaves the image as it was.
    w.db.platform
        .save_and_build_image(
            Some(&admin),
            made.clone(),
            &format!("FROM {python}\nRUN exit 3\n"),
        )
        .await
        .unwrap();
    assert!(w.db.platform.run_next_catalogue_build(&w.runtime).await.unwrap());
    let build =
        w.db.platform
            .catalogue_builds(Some(&admin))
            .await
            .unwrap()
            .remove(0);
    assert_eq!((build.number, build.state), (2, BuildState::Failed));
    assert!(build.error.contains("non-zero code: 3"), "{}", build.error);
    assert_eq!(listed(&w).await.reference, made.reference);

    // Built anew, the image keeps its earlier tag for the sites' Dockerfiles written for it.
    w.db.platform
        .save_and_build_image(Some(&admin), made.clone(), &dockerfile)
        .await
        .unwrap();
    assert!(w.db.platform.run_next_catalogue_build(&w.runtime).await.unwrap());
    assert!(listed(&w).await.reference.ends_with(":3"));
    let own = w.runtime.directory(&site).join("Dockerfile");
    std::fs::write(
        &own,
        format!(
            "FROM {}\nRUN echo its own > /opt/out/index.html\n",
            made.reference
        ),
    )
    .unwrap();
    let uid = platform::sites::Runtime::uid(&site);
    std::os::unix::fs::chown(&own, Some(uid), Some(uid)).unwrap();
    let input = platform::sites::RecipeInput {
        source: platform::sites::RecipeSource::Dockerfile,
        ..platform::sites::RecipeInput::default()
    };
    let id =
        w.db.platform
            .save_recipe(Some(&ann), site.id, &input)
            .await
            .unwrap();
    let build = finished_build(&w, &ann, site.id, id).await;
    assert_eq!(build.summary.state, BuildState::Succeeded, "{}", build.log);
    assert_eq!(
        served(w.edge, "toolsite.localhost").await.as_deref(),
        Some("its own\n")
    );
}
