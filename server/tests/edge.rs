//! `director serve`'s edge: started through the orchestrator, answering for the sites domain,
//! and brought back by the supervisor when it dies.

mod common;

use std::time::Duration;

use common::edge::start_edge;

async fn answer(client: &reqwest::Client, url: &str) -> Option<(u16, String)> {
    let res = client
        .get(url)
        .header("host", "nothing.localhost")
        .send()
        .await
        .ok()?;
    Some((res.status().as_u16(), res.text().await.ok()?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_starts_answers_and_is_brought_back() {
    let edge = start_edge().await;
    let (namespace, listen) = (edge.namespace.clone(), edge.listen);
    let client = reqwest::Client::new();
    let url = format!("http://{listen}/");
    let mut page = None;
    for _ in 0..300 {
        page = answer(&client, &url).await;
        if page.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = page.expect("the edge answers within 30 s");
    assert_eq!(status, 404);
    assert!(body.contains("No site here"), "{body}");

    // Caddy's container removed behind Director's back: the supervisor puts it back.
    let caddy = namespace.network("director_edge");
    std::process::Command::new("/usr/bin/docker")
        .args(["rm", "-f", &caddy])
        .output()
        .unwrap();
    assert!(answer(&client, &url).await.is_none(), "gone");
    let mut back = false;
    for _ in 0..150 {
        if answer(&client, &url)
            .await
            .is_some_and(|(status, _)| status == 404)
        {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "the supervisor restored the edge within 15 s");

    edge.stop.send(true).unwrap();
    edge.supervisor.await.unwrap();
    assert!(
        answer(&client, &url).await.is_some(),
        "stopping the manager leaves the sites served"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_removed_by_hand_comes_back_within_seconds() {
    let edge = start_edge().await;
    let platform = edge.db.platform.clone();
    let stopped = edge.stop.subscribe();
    tokio::spawn(server::workers::work(platform.clone(), stopped.clone()));
    tokio::spawn(server::reconciler::run(platform.clone(), stopped));

    let operator = platform::Actor::operator();
    let (site, _) = platform
        .create_site(
            Some(&operator),
            platform::sites::NewSite {
                name: "comeback".to_owned(),
                description: String::new(),
                purpose: "project".to_owned(),
                kind: "dynamic".to_owned(),
                image: "busybox".to_owned(),
            },
        )
        .await
        .unwrap();
    let service = edge
        .namespace
        .service(orchestrator::SiteId(u32::try_from(site.id).unwrap()));
    let exists = || {
        std::process::Command::new("/usr/bin/docker")
            .args(["service", "inspect", &service])
            .output()
            .unwrap()
            .status
            .success()
    };
    let mut created = false;
    for _ in 0..300 {
        if exists()
            && platform.site(Some(&operator), site.id).await.unwrap().state
                == platform::sites::SiteState::Running
        {
            created = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(created, "the site's operation ran within 30 s");

    let removed = std::process::Command::new("/usr/bin/docker")
        .args(["service", "rm", &service])
        .output()
        .unwrap();
    assert!(removed.status.success());
    let started = std::time::Instant::now();
    let mut back = false;
    // Well under the 30 s period: the removal event brings the reconciler at once.
    while started.elapsed() < Duration::from_secs(10) {
        if exists() {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "the reconciler recreated the service within 10 s");
    edge.stop.send(true).unwrap();
}

/// Host names are case-insensitive and `a.example.` is `a.example`: the edge sends such a
/// request to the same address (path and query as they were sent, scheme as the visitor's)
/// with the host as sites are routed, whatever the method.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_in_capitals_or_with_a_trailing_dot_is_sent_to_the_host_as_routed() {
    let edge = start_edge().await;
    let listen = edge.listen;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let ask = |host: String, path: &'static str, method: reqwest::Method| {
        let client = client.clone();
        async move {
            let res = client
                .request(method, format!("http://{listen}{path}"))
                .header("host", host)
                .send()
                .await
                .ok()?;
            let header = |name: &str| res.headers().get(name).map(|l| l.to_str().unwrap().to_owned());
            Some((res.status().as_u16(), header("location"), header("cache-control")))
        }
    };
    let port = listen.port();
    let capitals = format!("Docs.LocalHost:{port}");
    let wanted = Some((
        308,
        Some(format!("//docs.localhost:{port}/some/page?x=1&y=%2F")),
        Some("no-store".to_owned()),
    ));
    let mut first = None;
    for _ in 0..300 {
        first = ask(capitals.clone(), "/some/page?x=1&y=%2F", reqwest::Method::GET).await;
        if first.as_ref().is_some_and(|(status, _, _)| *status == 308) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(first, wanted);
    let location = |answer: Option<(u16, Option<String>, Option<String>)>| answer.and_then(|a| a.1);
    assert_eq!(
        location(
            ask(
                "docs.localhost.".to_owned(),
                "/a%3Fb/%2F?q",
                reqwest::Method::POST
            )
            .await
        ),
        Some("//docs.localhost/a%3Fb/%2F?q".to_owned()),
        "the path as it was sent, never decoded"
    );
    // Nothing else is taken for a host.
    for host in [
        "Bad_Host.localhost",
        "docs.localhost.:99999",
        "\u{17f}ite.localhost",
    ] {
        let status = ask(host.to_owned(), "/", reqwest::Method::GET).await.map(|a| a.0);
        assert!(matches!(status, Some(400 | 404)), "{host}: {status:?}");
    }
}
