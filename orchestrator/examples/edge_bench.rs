//! Edge benchmark (run by bench/edge.sh, not a test): with 10, 1,000 and 10,000 routes in
//! place, the time from putting a new site's route to its host answering 200 (p50/p95 over 50
//! changes), the CPU time Caddy spends per change, and Caddy's memory.

use std::{
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use orchestrator::{
    Namespace, Orchestrator, SiteId,
    edge::{Availability, Caddy, CaddyConfig, SiteRoutes, Target, caddy_context},
};

const IMAGE: &str = "director/caddy:2.6";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let orch =
        Orchestrator::connect(Namespace::prefixed(&format!("edgebench{}", std::process::id()))?).await?;
    let work = tempfile::tempdir()?;
    let result = run(&orch, work.path()).await;
    let _ = std::process::Command::new("umount")
        .arg(work.path().join("edge/sites"))
        .status();
    orch.remove_namespace().await?;
    result
}

fn routes(root: &Path, id: u32) -> std::io::Result<SiteRoutes> {
    let public = root.join(format!("s{id}/public"));
    std::fs::create_dir_all(&public)?;
    std::fs::write(public.join("index.html"), format!("site {id}\n"))?;
    Ok(SiteRoutes {
        site: SiteId(id),
        hosts: vec![format!("s{id}.bench.localhost")],
        target: Target::Static { public_dir: public },
        body_limit: 1 << 20,
        availability: Availability::Served,
    })
}

/// User + system CPU time of a process, in clock ticks (1/100 s).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    fields.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + fields.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}

fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmRSS:")?
                .trim()
                .strip_suffix(" kB")?
                .trim()
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(0.0)
        / 1024.0
}

async fn run(orch: &Orchestrator, work: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let context = tempfile::tempdir()?;
    orch.build_image(IMAGE, &caddy_context(context.path())?, |_| {})
        .await?;
    let network = orch.ensure_network("sites").await?;
    let sites_root: PathBuf = work.join("sites");
    std::fs::create_dir_all(&sites_root)?;
    std::fs::set_permissions(work, std::fs::Permissions::from_mode(0o755))?;
    let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let caddy = Caddy::start(
        orch,
        CaddyConfig {
            dir: work.join("edge"),
            sites_root: sites_root.clone(),
            listen: Some(addr),
            network,
            image: IMAGE.to_owned(),
            acme: None,
        },
    )
    .await?;
    // The container's first process is its init; Caddy is the init's child.
    let init = orch
        .container_pid(caddy.container())
        .await?
        .ok_or("Caddy is not running")?;
    let pid: u32 = std::fs::read_to_string(format!("/proc/{init}/task/{init}/children"))?
        .split_whitespace()
        .next()
        .ok_or("Caddy's init has no child")?
        .parse()?;
    let client = reqwest::Client::new();

    println!(
        "{:>8} {:>10} {:>10} {:>18} {:>18} {:>12}",
        "routes", "p50", "p95", "put (p50)", "Caddy CPU/change", "Caddy RSS"
    );
    let mut present = 0;
    let mut next = 100_000;
    for size in [10u32, 1_000, 10_000] {
        while present < size {
            present += 1;
            caddy.put(&routes(&sites_root, present)?).await?;
        }
        // CPU per change, without traffic: 50 route changes, nothing else.
        let before = cpu_ticks(pid);
        for _ in 0..50 {
            next += 1;
            caddy.put(&routes(&sites_root, next)?).await?;
        }
        let cpu_per_change_ms = (cpu_ticks(pid) - before) as f64 * 10.0 / 50.0;
        // Time to live: put, then poll the new host every millisecond until it answers 200.
        let mut live = Vec::new();
        let mut puts = Vec::new();
        for _ in 0..50 {
            next += 1;
            let route = routes(&sites_root, next)?;
            let host = route.hosts[0].clone();
            let start = Instant::now();
            caddy.put(&route).await?;
            puts.push(start.elapsed());
            loop {
                let res = client
                    .get(format!("http://{addr}/"))
                    .header("host", &host)
                    .send()
                    .await?;
                if res.status() == 200 {
                    break;
                }
                assert!(start.elapsed() < Duration::from_secs(10), "{host} never answered");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            live.push(start.elapsed());
        }
        live.sort();
        puts.sort();
        let pct = |v: &[Duration], p: f64| v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1];
        println!(
            "{:>8} {:>10.2?} {:>10.2?} {:>18.2?} {:>15.2} ms {:>9.1} MB",
            size,
            pct(&live, 0.5),
            pct(&live, 0.95),
            pct(&puts, 0.5),
            cpu_per_change_ms,
            rss_mb(pid)
        );
    }
    println!(
        "(Caddy's CPU per change is measured in 10 ms clock ticks over 50 changes; 0 means below one tick in all.)"
    );
    Ok(())
}
