//! Benchmark (run by bench/orchestrator.sh, not a test):
//! 1. time from `ensure_service` to the new task answering HTTP, p50/p95 over 20 sites (busybox);
//! 2. time to ensure 100 already-running sites, which must be one inspect each and no update.
//!
//! Everything runs in a random namespace that is removed at the end.

use std::{
    collections::BTreeMap,
    os::unix::fs::PermissionsExt as _,
    time::{Duration, Instant},
};

use futures::StreamExt as _;
use orchestrator::{
    EndpointMode, Ensured, ExecRequest, Limits, Namespace, Orchestrator, SiteId, SiteSpec, busybox_context,
};

const IMAGE: &str = "director/busybox:latest";
const RUN_SH: &str = "#!/bin/sh\nexec httpd -f -p \"$PORT\" -h /site/public\n";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ns = Namespace::prefixed(&format!("bench{}", std::process::id()))?;
    let orch = Orchestrator::connect(ns).await?;
    let result = run(&orch).await;
    orch.remove_namespace().await?;
    result
}

async fn run(orch: &Orchestrator) -> Result<(), Box<dyn std::error::Error>> {
    let context = tempfile::tempdir()?;
    orch.build_image(IMAGE, &busybox_context(context.path())?, |_| {})
        .await?;
    let network = orch.ensure_network("sites").await?;
    let root = tempfile::tempdir()?;
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755))?;

    let site = |id: u32| -> std::io::Result<SiteSpec> {
        let dir = root.path().join(format!("s{id}"));
        std::fs::create_dir_all(dir.join("public"))?;
        std::fs::write(dir.join("public/index.html"), "ok\n")?;
        std::fs::write(dir.join("run.sh"), RUN_SH)?;
        std::fs::set_permissions(dir.join("run.sh"), std::fs::Permissions::from_mode(0o755))?;
        Ok(SiteSpec {
            id: SiteId(id),
            name: format!("bench{id}"),
            image: IMAGE.to_owned(),
            directory: dir,
            uid: 100_000 + id,
            gid: 100_000 + id,
            port: 8080,
            url: String::new(),
            env: BTreeMap::new(),
            limits: Limits {
                memory_bytes: 32 * 1024 * 1024,
                ..Limits::default()
            },
            served: true,
            network: network.clone(),
            endpoint_mode: EndpointMode::Dnsrr,
            health_check: None,
            labels: BTreeMap::new(),
        })
    };

    // A probe on the sites' network polls each new site every 20 ms from the moment it is ensured.
    let probe_spec = site(9999)?;
    let probe = orch.ensure_terminal(&probe_spec).await?;
    let mut times = Vec::new();
    for id in 1..=20 {
        let spec = site(id)?;
        let script = format!(
            "while ! timeout 1 wget -qO- http://{}:8080/ >/dev/null 2>&1; do usleep 20000; done; echo up",
            spec.name
        );
        let start = Instant::now();
        assert_eq!(orch.ensure_service(&spec).await?, Ensured::Created);
        let request = ExecRequest {
            cmd: vec!["/bin/sh".into(), "-c".into(), script],
            tty: false,
            ..ExecRequest::default()
        };
        let mut session = orch.exec(&probe, request).await?;
        let mut out = Vec::new();
        while let Some(chunk) = tokio::time::timeout(Duration::from_secs(60), session.output.next()).await? {
            out.extend_from_slice(&chunk?.1);
            if out.ends_with(b"up\n") {
                break;
            }
        }
        times.push(start.elapsed());
    }
    times.sort();
    let pct = |p: f64| times[((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1];
    println!(
        "ensure -> HTTP 200 (busybox, 20 sites): p50 {:?}  p95 {:?}  max {:?}",
        pct(0.5),
        pct(0.95),
        times[times.len() - 1]
    );

    for id in 21..=100 {
        orch.ensure_service(&site(id)?).await?;
    }
    // Wait until all 100 run, so the measurement is of running sites.
    for id in 1..=100 {
        while orch.status(SiteId(id)).await?.running != 1 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let specs: Vec<SiteSpec> = (1..=100).map(site).collect::<Result<_, _>>()?;
    let start = Instant::now();
    for spec in &specs {
        assert_eq!(orch.ensure_service(spec).await?, Ensured::Unchanged);
    }
    let elapsed = start.elapsed();
    println!(
        "ensure 100 running sites: {:?} total, {:?} per site, 0 updates",
        elapsed,
        elapsed / 100
    );
    Ok(())
}
