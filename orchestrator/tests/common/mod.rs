// Each test binary uses its own part of this module.
#![allow(dead_code)]

//! A namespace of its own on the real engine for each test, removed when the test ends (pass or
//! fail), a busybox image, and sites' directories on disk.

use std::{
    collections::BTreeMap,
    os::unix::fs::PermissionsExt as _,
    path::Path,
    time::{Duration, Instant},
};

use futures::StreamExt as _;
use orchestrator::{
    EndpointMode, ExecRequest, Limits, Namespace, Orchestrator, SiteId, SiteSpec, busybox_context,
};
use rand::Rng as _;
use tokio::sync::OnceCell;

pub const BUSYBOX: &str = "director/busybox:latest";

pub struct Env {
    pub orch: Orchestrator,
    pub network: String,
    pub root: tempfile::TempDir,
}

static IMAGE: OnceCell<()> = OnceCell::const_new();

pub async fn env() -> Env {
    let prefix = format!("t{:08x}", rand::rng().random::<u32>());
    let orch = Orchestrator::connect(Namespace::prefixed(&prefix).unwrap())
        .await
        .expect("a Docker engine (scripts/docker-engine starts one)");
    IMAGE
        .get_or_init(|| async {
            let dir = tempfile::tempdir().unwrap();
            let context = busybox_context(dir.path()).unwrap();
            orch.build_image(BUSYBOX, &context, |_| {}).await.unwrap();
        })
        .await;
    let network = orch.ensure_network("sites").await.unwrap();
    let root = tempfile::tempdir().unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    Env { orch, network, root }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Err(err) = self.orch.remove_namespace_blocking() {
            eprintln!(
                "warning: could not remove test namespace {:?}: {err}",
                self.orch.namespace()
            );
        }
    }
}

impl Env {
    /// A site whose directory holds `run_sh` (when given) and a `public/index.html`.
    pub fn site(&self, id: u32, name: &str, run_sh: Option<&str>) -> SiteSpec {
        let dir = self.root.path().join(name);
        std::fs::create_dir_all(dir.join("public")).unwrap();
        std::fs::write(dir.join("public/index.html"), format!("hello from {name}\n")).unwrap();
        if let Some(script) = run_sh {
            std::fs::write(dir.join("run.sh"), script).unwrap();
            std::fs::set_permissions(dir.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let uid = 100_000 + id;
        chown_tree(&dir, uid);
        SiteSpec {
            id: SiteId(id),
            name: name.to_owned(),
            image: BUSYBOX.to_owned(),
            directory: dir,
            uid,
            gid: uid,
            port: 8080,
            url: format!("http://{name}.localhost"),
            env: BTreeMap::from([("GREETING".to_owned(), "hello".to_owned())]),
            limits: Limits::default(),
            served: true,
            network: self.network.clone(),
            // These machines' kernels have no IPVS, so VIPs do not route here.
            endpoint_mode: EndpointMode::Dnsrr,
            health_check: None,
            labels: BTreeMap::new(),
        }
    }

    /// Runs `script` with `sh -c` in the site's terminal container, without a TTY, and returns
    /// its output and exit code.
    pub async fn run(&self, spec: &SiteSpec, script: &str) -> (String, i64) {
        let container = self.orch.ensure_terminal(spec).await.unwrap();
        let request = ExecRequest {
            cmd: vec!["/bin/sh".into(), "-c".into(), script.into()],
            tty: false,
            ..ExecRequest::default()
        };
        let mut session = self.orch.exec(&container, request).await.unwrap();
        let mut out = Vec::new();
        while let Some(chunk) = session.output.next().await {
            out.extend_from_slice(&chunk.unwrap().1);
        }
        let code = wait_for(Duration::from_secs(10), || async {
            session.exit_code().await.unwrap()
        })
        .await;
        (String::from_utf8_lossy(&out).into_owned(), code)
    }
}

/// Polls `probe` until it gives Some, or panics after `limit`.
pub async fn wait_for<T, F, Fut>(limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(start.elapsed() < limit, "gave up after {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn chown_tree(path: &Path, uid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(uid)).unwrap();
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), uid);
        }
    }
}

/// The HTTP server every test site runs.
pub const HTTPD: &str = "#!/bin/sh\necho \"starting $SITE_NAME on $PORT\"\necho \"a line on stderr\" >&2\nexec httpd -f -p \"$PORT\" -h /site/public\n";
