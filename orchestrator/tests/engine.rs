//! The orchestrator against the real Docker engine: services, terminals, logs, limits, events.

mod common;

use std::time::Duration;

use common::{HTTPD, env, wait_for};
use futures::StreamExt as _;
use orchestrator::{
    Ensured, Error, ExecRequest, Limits, LogOptions, LogStream, SiteEventKind, SiteId, SiteSpec,
};
use tokio::io::AsyncWriteExt as _;

async fn fetch(env: &common::Env, from: &SiteSpec, host: &str) -> Option<String> {
    let (out, code) = env
        .run(from, &format!("timeout 2 wget -qO- http://{host}:8080/"))
        .await;
    (code == 0).then_some(out)
}

async fn running(env: &common::Env, site: SiteId) -> orchestrator::ServiceStatus {
    wait_for(Duration::from_secs(30), || async {
        let status = env.orch.status(site).await.unwrap();
        (status.running == 1).then_some(status)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamic_site_answers_http_from_its_run_sh() {
    let env = env().await;
    let spec = env.site(1, "hello", Some(HTTPD));
    assert_eq!(env.orch.ensure_service(&spec).await.unwrap(), Ensured::Created);
    running(&env, spec.id).await;
    let body = wait_for(Duration::from_secs(20), || fetch(&env, &spec, "hello")).await;
    assert_eq!(body, "hello from hello\n");

    // Its logs hold what run.sh printed, with stderr marked.
    let lines: Vec<_> = env
        .orch
        .logs(spec.id, LogOptions::default())
        .filter_map(|l| async { l.ok() })
        .collect()
        .await;
    assert!(
        lines
            .iter()
            .any(|l| l.stream == LogStream::Stdout && l.text == "starting hello on 8080"),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.stream == LogStream::Stderr && l.text == "a line on stderr"),
        "{lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_site_answers_http_from_its_run_sh() {
    let env = env().await;
    let image = "director/python:3";
    assert!(
        env.orch.image_exists(image).await.unwrap(),
        "{image} is missing: scripts/images builds it"
    );
    let run = "#!/bin/sh\necho \"python on $PORT\"\nexec python3 -m http.server \"$PORT\" --directory /site/public\n";
    let spec = SiteSpec {
        image: image.to_owned(),
        ..env.site(13, "snake", Some(run))
    };
    env.orch.ensure_service(&spec).await.unwrap();
    running(&env, spec.id).await;
    let body = wait_for(Duration::from_secs(30), || fetch(&env, &spec, "snake")).await;
    assert_eq!(body, "hello from snake\n");
    let (out, code) = env
        .run(
            &spec,
            "id -u; python3 -c 'import sys; print(sys.version_info[0])'",
        )
        .await;
    assert_eq!((out.as_str(), code), ("100013\n3\n", 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensuring_twice_changes_nothing_and_restart_replaces_the_task() {
    let env = env().await;
    let spec = env.site(2, "steady", Some(HTTPD));
    assert_eq!(env.orch.ensure_service(&spec).await.unwrap(), Ensured::Created);
    let before = running(&env, spec.id).await;
    assert_eq!(env.orch.ensure_service(&spec).await.unwrap(), Ensured::Unchanged);

    env.orch.restart(spec.id).await.unwrap();
    let after = wait_for(Duration::from_secs(30), || async {
        let status = env.orch.status(spec.id).await.unwrap();
        (status.running == 1 && status.task != before.task).then_some(status)
    })
    .await;
    assert_ne!(after.task, before.task);
    assert_eq!(
        env.orch.ensure_service(&spec).await.unwrap(),
        Ensured::Unchanged,
        "a restart is not a spec change"
    );

    let changed = SiteSpec {
        env: [("GREETING".to_owned(), "changed".to_owned())].into(),
        ..spec.clone()
    };
    assert_eq!(env.orch.ensure_service(&changed).await.unwrap(), Ensured::Updated);

    env.orch.set_replicas(spec.id, 0).await.unwrap();
    wait_for(Duration::from_secs(30), || async {
        let status = env.orch.status(spec.id).await.unwrap();
        (status.desired == 0 && status.running == 0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_runs_as_its_own_user_on_a_read_only_root() {
    let env = env().await;
    let spec = env.site(3, "locked", Some(HTTPD));
    let (out, code) = env
        .run(
            &spec,
            "id -u; id -g; pwd; echo $PORT $SITE_NAME $GREETING; \
             touch /forbidden 2>/dev/null && echo root-writable || echo root-read-only; \
             touch /tmp/x && echo tmp-ok; touch /site/x && echo site-ok",
        )
        .await;
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "100003",
            "100003",
            "/site",
            "8080 locked hello",
            "root-read-only",
            "tmp-ok",
            "site-ok"
        ]
    );
    assert!(
        spec.directory.join("x").exists(),
        "the write reached the site's directory on the host"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_limit_kills_and_status_says_so() {
    let env = env().await;
    let hog = "#!/bin/sh\necho allocating\nx=$(head -c 200000000 /dev/zero | tr '\\0' a)\necho survived\nsleep 1000\n";
    let spec = SiteSpec {
        limits: Limits {
            memory_bytes: 32 * 1024 * 1024,
            ..Limits::default()
        },
        ..env.site(4, "hog", Some(hog))
    };
    env.orch.ensure_service(&spec).await.unwrap();
    let error = wait_for(Duration::from_secs(60), || async {
        env.orch.status(spec.id).await.unwrap().last_error
    })
    .await;
    assert!(error.contains("OOM") || error.contains("memory"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_run_sh_shows_as_a_failing_status_with_the_reason() {
    let env = env().await;
    let spec = env.site(5, "empty", None);
    env.orch.ensure_service(&spec).await.unwrap();
    let error = wait_for(Duration::from_secs(60), || async {
        env.orch.status(spec.id).await.unwrap().last_error
    })
    .await;
    assert!(error.contains("run.sh is missing"), "{error}");
    assert_eq!(env.orch.status(spec.id).await.unwrap().running, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_image_is_a_typed_error() {
    let env = env().await;
    let spec = SiteSpec {
        image: "director/no-such-image:1".to_owned(),
        ..env.site(6, "ghost", Some(HTTPD))
    };
    assert!(matches!(
        env.orch.ensure_service(&spec).await,
        Err(Error::ImageMissing(_))
    ));
    assert!(matches!(
        env.orch.ensure_terminal(&spec).await,
        Err(Error::ImageMissing(_))
    ));
    let bad = SiteSpec {
        name: "Not A Label".to_owned(),
        ..env.site(7, "bad", None)
    };
    assert!(matches!(
        env.orch.ensure_service(&bad).await,
        Err(Error::Invalid { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interactive_shell_echoes_resizes_and_returns_its_exit_code() {
    let env = env().await;
    let spec = env.site(8, "shell", Some(HTTPD));
    let container = env.orch.ensure_terminal(&spec).await.unwrap();
    assert_eq!(
        env.orch.ensure_terminal(&spec).await.unwrap(),
        container,
        "reused, not recreated"
    );
    let request = ExecRequest {
        size: Some((100, 30)),
        ..ExecRequest::default()
    };
    let mut session = env.orch.exec(&container, request).await.unwrap();
    let mut screen = String::new();
    let mut read_until = async |session: &mut orchestrator::ExecSession, needle: &str| {
        tokio::time::timeout(Duration::from_secs(10), async {
            while !screen.contains(needle) {
                let (_, chunk) = session.output.next().await.expect("output ended").unwrap();
                screen.push_str(&String::from_utf8_lossy(&chunk));
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{needle:?} never came; screen:\n{screen}"));
    };
    session
        .input
        .write_all(b"echo sum-$((40+2)); stty size\n")
        .await
        .unwrap();
    read_until(&mut session, "sum-42").await;
    read_until(&mut session, "30 100").await;
    session.control.resize(120, 40).await.unwrap();
    session.input.write_all(b"stty size\n").await.unwrap();
    read_until(&mut session, "40 120").await;
    session.input.write_all(b"exit 3\n").await.unwrap();
    while session.output.next().await.is_some() {}
    let code = wait_for(Duration::from_secs(10), || async {
        session.exit_code().await.unwrap()
    })
    .await;
    assert_eq!(code, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_terminals_are_reaped_and_busy_ones_kept() {
    let env = env().await;
    let idle = env.site(9, "idle", None);
    let busy = env.site(10, "busy", None);
    env.orch.ensure_terminal(&idle).await.unwrap();
    let container = env.orch.ensure_terminal(&busy).await.unwrap();
    let request = ExecRequest {
        cmd: vec!["sleep".into(), "30".into()],
        tty: false,
        ..ExecRequest::default()
    };
    let _session = env.orch.exec(&container, request).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reaped = env
        .orch
        .reap_idle_terminals(Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(reaped, [env.orch.namespace().terminal(idle.id)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_report_starts_and_removal_leaves_nothing_behind() {
    let env = env().await;
    let spec = env.site(11, "evented", Some(HTTPD));
    let mut events = Box::pin(env.orch.events());
    env.orch.ensure_service(&spec).await.unwrap();
    let event = tokio::time::timeout(Duration::from_secs(30), events.next())
        .await
        .expect("an event within 30 s")
        .unwrap()
        .unwrap();
    assert_eq!(event.site, spec.id);
    assert_eq!(event.role, "service");
    assert_eq!(event.kind, SiteEventKind::Started);

    env.orch.ensure_terminal(&spec).await.unwrap();
    env.orch.remove_service(spec.id).await.unwrap();
    env.orch.remove_service(spec.id).await.unwrap();
    env.orch.remove_namespace().await.unwrap();
    let left = env.orch.leftovers().await.unwrap();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_start_the_new_task_first_and_roll_back_a_failing_one() {
    let env = env().await;
    let run = "#!/bin/sh\nif [ -n \"$BROKEN\" ]; then echo broken; exec sleep 1000; fi\n\
               echo \"version $VERSION\" > /tmp/index.html\nexec httpd -f -p \"$PORT\" -h /tmp\n";
    let version = |v: &str, broken: bool| {
        let mut env_vars = std::collections::BTreeMap::from([("VERSION".to_owned(), v.to_owned())]);
        if broken {
            env_vars.insert("BROKEN".to_owned(), "1".to_owned());
        }
        env_vars
    };
    let base = SiteSpec {
        health_check: Some(Duration::from_secs(3)),
        ..env.site(12, "rolling", Some(run))
    };
    let v1 = SiteSpec {
        env: version("1", false),
        ..base.clone()
    };
    assert_eq!(env.orch.ensure_service(&v1).await.unwrap(), Ensured::Created);
    let page = |want: &'static str| {
        let env = &env;
        let base = &base;
        move || async move { fetch(env, base, "rolling").await.filter(|body| body == want) }
    };
    wait_for(Duration::from_secs(30), page("version 1\n")).await;

    // A good update: the new task takes over.
    let v2 = SiteSpec {
        env: version("2", false),
        ..base.clone()
    };
    assert_eq!(env.orch.ensure_service(&v2).await.unwrap(), Ensured::Updated);
    wait_for(Duration::from_secs(60), page("version 2\n")).await;
    let serving = wait_for(Duration::from_secs(30), || async {
        let status = env.orch.status(base.id).await.unwrap();
        (status.running == 1
            && status
                .update
                .as_deref()
                .is_some_and(|u| u.starts_with("completed")))
        .then_some(status.task)
    })
    .await;

    // A broken update: its task never passes the health check, so the old one is never stopped,
    // keeps answering, and Swarm rolls the service back.
    let broken = SiteSpec {
        env: version("2", true),
        ..base.clone()
    };
    assert_eq!(env.orch.ensure_service(&broken).await.unwrap(), Ensured::Updated);
    let status = wait_for(Duration::from_secs(90), || async {
        assert_eq!(
            fetch(&env, &base, "rolling").await.as_deref(),
            Some("version 2\n"),
            "the old task kept serving"
        );
        let status = env.orch.status(base.id).await.unwrap();
        status
            .update
            .as_deref()
            .is_some_and(|u| u.starts_with("rollback_completed"))
            .then_some(status)
    })
    .await;
    assert_eq!(
        status.task, serving,
        "the task that served before the broken update still serves"
    );
    assert_eq!(
        env.orch.ensure_service(&v2).await.unwrap(),
        Ensured::Unchanged,
        "rolled back to v2"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builds_stream_their_output_and_bad_ones_fail_with_the_reason() {
    let env = env().await;
    let dir = tempfile::tempdir().unwrap();
    let context = orchestrator::busybox_context(dir.path()).unwrap();
    let mut lines = Vec::new();
    env.orch
        .build_image(common::BUSYBOX, &context, |line| lines.push(line.0))
        .await
        .unwrap();
    assert!(lines.iter().any(|l| l.starts_with("Step 1/")), "{lines:?}");

    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM scratch\nCOPY no-such-file /x\n",
    )
    .unwrap();
    let err = env
        .orch
        .build_image("director/broken:test", &context, |_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Build { .. }), "{err:?}");
    assert!(err.to_string().contains("no-such-file"), "{err}");

    let err = env
        .orch
        .pull_image("director/not-in-any-registry:0")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ImageMissing(_)), "{err:?}");
}

#[tokio::test]
async fn no_engine_is_a_clear_error_with_a_hint() {
    let ns = orchestrator::Namespace::prefixed("nothing").unwrap();
    let err = orchestrator::Orchestrator::connect_to("unix:///nonexistent/docker.sock", ns)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::EngineUnreachable { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(err.to_string().contains("DOCKER_HOST"), "{err}");
    let ns = orchestrator::Namespace::prefixed("nothing").unwrap();
    let err = orchestrator::Orchestrator::connect_to("tcp://127.0.0.1:2375", ns)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unix://"), "{err}");
}

fn site_build(site: u32, number: u32, dockerfile: &str, time_limit: Duration) -> orchestrator::ImageBuild {
    orchestrator::ImageBuild {
        owner: orchestrator::ImageOwner::Site(SiteId(site)),
        number,
        context: orchestrator::dockerfile_context(dockerfile).unwrap(),
        dockerfile: "Dockerfile".to_owned(),
        recipe: format!("recipe-{number}"),
        limits: orchestrator::BuildLimits {
            memory_bytes: 256 << 20,
            cpu_millis: 500,
            time_limit,
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_images_are_found_by_recipe_pruned_to_the_newest_and_cancelled_past_their_time() {
    let env = env().await;
    let from = format!("FROM {}\n", common::BUSYBOX);
    let mut lines = Vec::new();
    for number in 1..=4 {
        let dockerfile = format!("{from}RUN echo build {number} > /build\n");
        let tag = env
            .orch
            .build_labelled_image(site_build(7, number, &dockerfile, Duration::from_secs(60)), |l| {
                lines.push(l.0)
            })
            .await
            .unwrap();
        assert!(tag.ends_with(&format!("site_0007:{number}")), "{tag}");
    }
    assert!(lines.iter().any(|l| l.contains("build 4")), "{lines:?}");
    let found = env.orch.site_image_for(SiteId(7), "recipe-2").await.unwrap();
    assert!(found.as_deref().is_some_and(|t| t.ends_with(":2")), "{found:?}");
    assert_eq!(
        env.orch.site_image_for(SiteId(7), "recipe-9").await.unwrap(),
        None
    );

    // The newest three stay, and the one in use whatever its age.
    let in_use = vec![found.clone().unwrap()];
    let removed = env.orch.prune_site_images(SiteId(7), 3, &in_use).await.unwrap();
    assert!(removed.len() == 1 && removed[0].ends_with(":1"), "{removed:?}");
    let removed = env.orch.prune_site_images(SiteId(7), 1, &in_use).await.unwrap();
    assert!(removed.len() == 1 && removed[0].ends_with(":3"), "{removed:?}");
    assert!(
        env.orch
            .site_image_for(SiteId(7), "recipe-2")
            .await
            .unwrap()
            .is_some()
    );

    // A build over its time limit is cancelled and says so, well before its step would end.
    let started = std::time::Instant::now();
    let slow = format!("{from}RUN sleep 60\n");
    let err = env
        .orch
        .build_labelled_image(site_build(7, 5, &slow, Duration::from_secs(3)), |_| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("time limit of 3 s"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(
        env.orch
            .site_image_for(SiteId(7), "recipe-5")
            .await
            .unwrap()
            .is_none()
    );

    env.orch.remove_site_images(SiteId(7)).await.unwrap();
    assert!(
        env.orch
            .site_image_for(SiteId(7), "recipe-2")
            .await
            .unwrap()
            .is_none()
    );
}
