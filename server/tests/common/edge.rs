//! The edge under its supervisor, in a Docker namespace and on a database of the test's own.

use orchestrator::{Namespace, Orchestrator};
use rand::Rng as _;
use server::edge::{EdgePlan, supervise};

struct Cleanup {
    orch: Orchestrator,
    /// The edge's directory, holding the sites view and its staging mount.
    view: std::path::PathBuf,
    sites_root: std::path::PathBuf,
    /// The edge's supervisor: stopped before the namespace goes, or it would make Caddy's
    /// container again (a test's end can look like Caddy failing its health check).
    supervisor: Option<tokio::task::AbortHandle>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(supervisor) = &self.supervisor {
            supervisor.abort();
            for _ in 0..50 {
                if supervisor.is_finished() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
        for mount in [
            self.view.join("sites"),
            self.view.join("stage"),
            self.sites_root.clone(),
        ] {
            orchestrator::detach_blocking(&mount);
        }
        // Twice: a container the aborted supervisor had asked for may land just after the first.
        for pass in 0..2 {
            if pass > 0 {
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
            if let Err(err) = self.orch.remove_namespace_blocking() {
                eprintln!("warning: could not remove the test namespace: {err}");
            }
        }
    }
}

pub struct Edge {
    pub namespace: Namespace,
    pub listen: std::net::SocketAddr,
    pub db: platform::testing::TestDb,
    pub runtime: tokio::sync::watch::Receiver<Option<platform::sites::Runtime>>,
    pub stop: tokio::sync::watch::Sender<bool>,
    pub supervisor: tokio::task::JoinHandle<()>,
    _cleanup: Cleanup,
    _dir: tempfile::TempDir,
}

impl Edge {
    /// Starts the operation workers on this edge's database and runtime (until the test ends).
    pub fn start_workers(&self) {
        tokio::spawn(server::workers::work(
            self.db.platform.clone(),
            self.stop.subscribe(),
        ));
    }

    /// Starts the certificate worker on this edge (until the test ends).
    pub fn start_certificates(&self) {
        tokio::spawn(server::certificates::run(
            self.db.platform.clone(),
            self.stop.subscribe(),
        ));
    }
}

/// The edge under its supervisor, in a namespace of its own, on a database of its own.
pub async fn start_edge() -> Edge {
    start_edge_with(super::acme::free_address(), "localhost", None).await
}

/// The same, serving `<site>.<sites_domain>` at `listen`, and HTTPS with `acme`.
pub async fn start_edge_with(
    listen: std::net::SocketAddr,
    sites_domain: &str,
    acme: Option<orchestrator::edge::AcmeConfig>,
) -> Edge {
    let namespace = Namespace::prefixed(&format!("e{:08x}", rand::rng().random::<u32>())).unwrap();
    let orch = Orchestrator::connect(namespace.clone())
        .await
        .expect("a Docker engine");
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let settings = platform::Settings {
        sites_domain: sites_domain.to_owned(),
        sites_port: listen.port(),
        sites_https_port: acme.as_ref().map(|acme| acme.listen.port()),
        ..platform::Settings::default()
    };
    let plan = EdgePlan {
        namespace: namespace.clone(),
        dir: dir.path().join("edge"),
        sites_root: dir.path().join("sites"),
        disks: dir.path().join("disks"),
        listen: Some(listen),
        sites_domain: sites_domain.to_owned(),
        traefik: None,
        acme,
        databases: platform::sites::DatabaseServers {
            dir: dir.path().join("databases"),
            memory_bytes: 512 << 20,
        },
    };
    let mut cleanup = Cleanup {
        orch: orch.clone(),
        view: plan.dir.clone(),
        sites_root: plan.sites_root.clone(),
        supervisor: None,
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let db = platform::testing::TestDb::with_settings(settings).await;
    let mut runtime_rx = db.platform.runtime_changes();
    let supervisor = tokio::spawn(supervise(plan, db.platform.clone(), stopped));
    cleanup.supervisor = Some(supervisor.abort_handle());
    runtime_rx
        .wait_for(Option::is_some)
        .await
        .expect("the runtime is published once the edge is up");
    Edge {
        namespace,
        listen,
        db,
        runtime: runtime_rx,
        stop,
        supervisor,
        _cleanup: cleanup,
        _dir: dir,
    }
}
