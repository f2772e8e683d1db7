// Each test binary uses its own part of this module.
#![allow(dead_code)]

//! A world for the platform's tests of sites: a database schema of its own, a namespace of its
//! own on the real engine, a real Caddy, disks and database servers under a temporary
//! directory; all of it removed when the test ends.

use std::{path::PathBuf, time::Duration};

use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _};
use orchestrator::{
    EndpointMode, Namespace, Orchestrator, SiteId,
    edge::{Caddy, CaddyConfig, TraefikConfig, caddy_context},
};
use platform::{
    Actor, Role,
    sites::{DatabaseServers, NewSite, Runtime, TraefikMode},
    testing::TestDb,
};

pub struct World {
    pub db: TestDb,
    pub runtime: Runtime,
    pub edge: std::net::SocketAddr,
    pub edge_dir: PathBuf,
    /// The edge's configuration, to start it again as after a reboot.
    pub caddy_config: CaddyConfig,
    pub _dir: tempfile::TempDir,
}

impl Drop for World {
    fn drop(&mut self) {
        let disks = self._dir.path().join("disks");
        for mount in [
            self.edge_dir.join("sites"),
            self.edge_dir.join("stage"),
            self.runtime.sites_root.clone(),
            disks.join("old-sites"),
            disks.join("stage"),
        ] {
            orchestrator::detach_blocking(&mount);
        }
        if let Err(err) = self.runtime.orchestrator.remove_namespace_blocking() {
            eprintln!("warning: could not remove the test namespace: {err}");
        }
    }
}

pub async fn world() -> World {
    world_with(false).await
}

/// With `traefik`, Caddy publishes nothing and the runtime labels services and writes
/// Traefik's file configuration, as with `director serve --edge traefik`.
pub async fn world_with(traefik: bool) -> World {
    world_on(TestDb::new().await, traefik).await
}

pub async fn world_on(db: TestDb, traefik: bool) -> World {
    let prefix = format!("p{:08x}", std::process::id() ^ rand_u32());
    let orch = Orchestrator::connect(Namespace::prefixed(&prefix).unwrap())
        .await
        .expect("a Docker engine");
    for (tag, make) in [
        (
            "director/busybox:latest",
            orchestrator::busybox_context as fn(&std::path::Path) -> orchestrator::Result<PathBuf>,
        ),
        ("director/caddy:2.6", caddy_context),
    ] {
        if !orch.image_exists(tag).await.unwrap() {
            let ctx = tempfile::tempdir().unwrap();
            orch.build_image(tag, &make(ctx.path()).unwrap(), |_| {})
                .await
                .unwrap();
        }
    }
    let network = orch.ensure_network("sites").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let sites_root = dir.path().join("sites");
    let edge = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = CaddyConfig {
        dir: dir.path().join("edge"),
        sites_root: sites_root.clone(),
        listen: (!traefik).then_some(edge),
        network: network.clone(),
        image: "director/caddy:2.6".to_owned(),
        acme: None,
    };
    let edge_dir = config.dir.clone();
    let caddy_config = config.clone();
    let caddy = Caddy::start(&orch, config).await.unwrap();
    let static_server = format!("http://{}:8080", caddy.container());
    let mut runtime = Runtime::new(
        db.platform.clone(),
        orch,
        caddy,
        orchestrator::disks::Disks::new(dir.path().join("disks"), sites_root),
        "localhost".to_owned(),
        network.clone(),
        EndpointMode::Dnsrr,
    )
    .with_databases(DatabaseServers {
        dir: dir.path().join("databases"),
        memory_bytes: 512 << 20,
    });
    if traefik {
        runtime = runtime.with_traefik(TraefikMode {
            config: TraefikConfig {
                entrypoints: vec!["web".to_owned()],
                cert_resolver: None,
                network,
                static_server,
            },
            file: dir.path().join("traefik/director.toml"),
            writer: Default::default(),
        });
    }
    runtime.mount_disks().await.unwrap();
    db.platform.set_runtime(Some(runtime.clone()));
    World {
        db,
        runtime,
        edge,
        edge_dir,
        caddy_config,
        _dir: dir,
    }
}

pub fn rand_u32() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

pub async fn user(db: &TestDb, name: &str, role: Role) -> Actor {
    platform::testing::signed_in_user(&db.platform, name, role)
        .await
        .0
}

pub fn new_site(name: &str, kind: &str, image: &str) -> NewSite {
    NewSite {
        name: name.to_owned(),
        description: format!("{name}'s site"),
        purpose: "project".to_owned(),
        kind: kind.to_owned(),
        image: image.to_owned(),
    }
}

/// A site `owner` made, its create operation run to its end.
pub async fn made_site(w: &World, owner: &Actor, name: &str, kind: &str) -> platform::sites::Site {
    let (site, _) =
        w.db.platform
            .create_site(Some(owner), new_site(name, kind, "busybox"))
            .await
            .unwrap();
    assert!(w.db.platform.run_next_operation(&w.runtime).await.unwrap());
    site
}

/// GETs `host` (`host/path` for a path) from the edge.
pub async fn get(edge: std::net::SocketAddr, host: &str) -> (u16, String) {
    let (host, path) = host.split_once('/').unwrap_or((host, ""));
    let res = reqwest::Client::new()
        .get(format!("http://{edge}/{path}"))
        .header("host", host)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// Whether the engine has a service for the site.
pub async fn has_service(w: &World, id: SiteId) -> bool {
    w.runtime
        .orchestrator
        .site_objects()
        .await
        .unwrap()
        .services
        .contains(&id)
}

/// The page `host` serves once it answers 200 (within 20 s), or None.
pub async fn served(edge: std::net::SocketAddr, host: &str) -> Option<String> {
    for _ in 0..100 {
        let (status, page) = get(edge, host).await;
        if status == 200 {
            return Some(page);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

/// A world whose sites have `bytes` of disk each.
pub async fn world_with_quota(bytes: u64) -> World {
    world_on(
        TestDb::with_settings(platform::Settings {
            site_disk_bytes: bytes,
            ..platform::Settings::default()
        })
        .await,
        false,
    )
    .await
}

pub async fn sql(db: &TestDb, statement: &str) {
    let mut conn = AsyncPgConnection::establish(&db.url).await.unwrap();
    diesel::sql_query(statement).execute(&mut conn).await.unwrap();
}

pub async fn futures_next(session: &mut orchestrator::ExecSession) -> Option<Vec<u8>> {
    use std::future::poll_fn;
    poll_fn(|cx| session.output.as_mut().poll_next(cx))
        .await
        .map(|c| c.unwrap().1.to_vec())
}

/// Runs `command` in the site's terminal as `who`; returns what it wrote.
pub async fn run_in_terminal(w: &World, who: &Actor, site: i32, command: &str) -> String {
    let (_, mut session) =
        w.db.platform
            .open_shell(
                Some(who),
                site,
                platform::sites::ShellRequest {
                    size: None,
                    command: Some(command.to_owned()),
                    database: None,
                },
            )
            .await
            .unwrap();
    said(&mut session).await
}

/// Everything a session writes, until it ends.
pub async fn said(session: &mut orchestrator::ExecSession) -> String {
    let mut said = Vec::new();
    while let Some(bytes) = futures_next(session).await {
        said.extend(bytes);
    }
    String::from_utf8_lossy(&said).into_owned()
}
