//! The embedded PostgreSQL cluster: used when no `DATABASE_URL` is given.
//!
//! The cluster lives in `<data dir>/postgres`, listens on a Unix socket only (no TCP), trusts
//! local connections of its own OS user, and is started with `pg_ctl` and stopped on exit. A
//! lock file keeps a second `director` from using the same data directory at the same time.

use std::{
    fs::{self, File},
    os::unix::fs::{PermissionsExt as _, chown},
    path::{Path, PathBuf},
    process::Stdio,
};

use tokio::process::Command;

/// What can go wrong with the embedded cluster.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error(
        "another director is already using the data directory {0} (it holds {0}/director.lock); stop it first or pick another --data-dir"
    )]
    Locked(PathBuf),
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl) were not found on PATH or under /usr/lib/postgresql/*/bin; install them (apt-get install postgresql) or set DATABASE_URL"
    )]
    NoBinaries,
    #[error("PostgreSQL refuses to run as root and no unprivileged user was found or could be made: {0}")]
    NoUser(String),
    #[error("{command} failed ({status}); its output:\n{output}")]
    Command {
        command: String,
        status: String,
        output: String,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> PgError {
    let context = context.into();
    move |source| PgError::Io { context, source }
}

/// A running embedded cluster, supervised (restarted within seconds if it dies); call
/// [`EmbeddedPostgres::stop`] to shut it down.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    pg: Cluster,
    url: String,
    stopped: bool,
    supervisor: Option<tokio::task::JoinHandle<()>>,
    _lock: File,
}

/// Where the cluster is and how its programs are run.
#[derive(Debug, Clone)]
struct Cluster {
    bin_dir: PathBuf,
    cluster: PathBuf,
    socket_dir: PathBuf,
    run_as: Option<(u32, u32)>,
}

/// How often the supervisor looks at the cluster.
const SUPERVISE_EVERY: std::time::Duration = std::time::Duration::from_secs(2);
/// The longest the supervisor waits between attempts at a cluster that keeps failing.
const SUPERVISE_AT_MOST: std::time::Duration = std::time::Duration::from_secs(60);

const OS_USER_NAME: &str = "director";
const DB_USER: &str = "director";
const DB_NAME: &str = "director";

impl EmbeddedPostgres {
    /// Initialises the cluster on first use, starts it and makes sure Director's database exists.
    pub async fn start(data_dir: &Path) -> Result<Self, PgError> {
        fs::create_dir_all(data_dir).map_err(io(format!("creating {}", data_dir.display())))?;
        let lock = File::create(data_dir.join("director.lock")).map_err(io("creating the lock file"))?;
        if lock.try_lock().is_err() {
            return Err(PgError::Locked(data_dir.to_owned()));
        }
        let bin_dir = find_bin_dir().ok_or(PgError::NoBinaries)?;
        let run_as = if is_root() {
            Some(unprivileged_user().await?)
        } else {
            None
        };

        let cluster = data_dir.join("postgres");
        let socket_dir = socket_dir(data_dir);
        for dir in [&cluster, &socket_dir] {
            fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        }
        if let Some((uid, gid)) = run_as {
            // The cluster's user must reach its directories through the data directory.
            let traversable = fs::Permissions::from_mode(0o711);
            fs::set_permissions(data_dir, traversable)
                .map_err(io("opening the data directory to the cluster's user"))?;
            for dir in [&cluster, &socket_dir] {
                chown(dir, Some(uid), Some(gid))
                    .map_err(io(format!("handing {} to the cluster's user", dir.display())))?;
            }
        }
        fs::set_permissions(&cluster, fs::Permissions::from_mode(0o700))
            .map_err(io("securing the cluster directory"))?;

        let url = format!("postgresql://{DB_USER}@/{DB_NAME}?host={}", socket_dir.display());
        let pg = Cluster {
            bin_dir,
            cluster,
            socket_dir,
            run_as,
        };
        if !pg.cluster.join("PG_VERSION").exists() {
            tracing::info!(cluster = %pg.cluster.display(), "initialising the embedded PostgreSQL cluster");
            pg.run(
                "initdb",
                &[
                    "-D".as_ref(),
                    pg.cluster.as_os_str(),
                    "-U".as_ref(),
                    DB_USER.as_ref(),
                    "--auth=trust".as_ref(),
                    "--encoding=UTF8".as_ref(),
                    "--locale=C".as_ref(),
                ],
            )
            .await?;
        }
        // A cluster left running by a director that was killed: ours (we hold the lock), so
        // stop it and start clean.
        if pg.running().await {
            tracing::warn!("an embedded PostgreSQL from an earlier run was still up; restarting it");
            pg.stop_cluster().await?;
        }
        pg.start_cluster().await?;
        if let Err(err) = pg.ensure_database().await {
            // Never leave a cluster running behind a failed start.
            pg.stop_cluster().await.ok();
            return Err(err);
        }
        tracing::info!(socket = %pg.socket_dir.display(), "embedded PostgreSQL is up");
        let supervisor = tokio::spawn(pg.clone().supervise());
        Ok(Self {
            pg,
            url,
            stopped: false,
            supervisor: Some(supervisor),
            _lock: lock,
        })
    }

    /// The URL to connect with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The postmaster's process id, as its `postmaster.pid` says (tests kill it).
    pub fn postmaster_pid(&self) -> Option<u32> {
        fs::read_to_string(self.pg.cluster.join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// Stops the cluster (fast shutdown: sessions are cut, data is safe), its supervisor first.
    pub async fn stop(mut self) -> Result<(), PgError> {
        // The supervisor ends first (a `pg_ctl` it was running is killed with it), so that it
        // never starts the cluster again under the stop.
        if let Some(supervisor) = self.supervisor.take() {
            supervisor.abort();
            let _ = supervisor.await;
        }
        self.pg.stop_cluster().await?;
        self.stopped = true;
        tracing::info!("embedded PostgreSQL stopped");
        Ok(())
    }
}

impl Cluster {
    /// Restarts the cluster whenever it is found down (killed, crashed, stopped by hand): it
    /// recovers from its own log as it starts, and the pool's next connections reach it. Ends
    /// only when aborted, which `stop` does before stopping the cluster.
    async fn supervise(self) {
        let mut wait = SUPERVISE_EVERY;
        loop {
            tokio::time::sleep(wait).await;
            if self.running().await {
                wait = SUPERVISE_EVERY;
                continue;
            }
            // A cluster whose files are gone cannot be recovered by starting it: that takes a
            // person (and a restart of Director, which makes a new one).
            if !self.cluster.join("PG_VERSION").exists() {
                tracing::error!(cluster = %self.cluster.display(), "the embedded PostgreSQL's files are gone; not restarting it");
                return;
            }
            tracing::warn!("the embedded PostgreSQL is down; restarting it");
            match self.start_cluster().await {
                Ok(()) => {
                    tracing::info!("the embedded PostgreSQL is up again");
                    wait = SUPERVISE_EVERY;
                }
                // Often the dead postmaster's backends have not all exited yet; a cluster that
                // keeps failing (a full disk) is tried less and less often, a minute apart at
                // most, so that its log does not fill the disk further.
                Err(err) => {
                    wait = (wait * 2).min(SUPERVISE_AT_MOST);
                    tracing::error!(error = %err, retry_in = ?wait, "restarting the embedded PostgreSQL failed");
                }
            }
        }
    }

    /// Whether the cluster's postmaster runs (`pg_ctl status`).
    async fn running(&self) -> bool {
        self.run(
            "pg_ctl",
            &["status".as_ref(), "-D".as_ref(), self.cluster.as_os_str()],
        )
        .await
        .is_ok()
    }

    async fn start_cluster(&self) -> Result<(), PgError> {
        let options = format!(
            "-c listen_addresses='' -c unix_socket_directories='{}' -c unix_socket_permissions=0700",
            self.socket_dir.display()
        );
        let log = self.cluster.join("postgres.log");
        self.run(
            "pg_ctl",
            &[
                "start".as_ref(),
                "-w".as_ref(),
                "-t".as_ref(),
                "60".as_ref(),
                "-D".as_ref(),
                self.cluster.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-o".as_ref(),
                options.as_ref(),
            ],
        )
        .await
    }

    async fn stop_cluster(&self) -> Result<(), PgError> {
        self.run(
            "pg_ctl",
            &[
                "stop".as_ref(),
                "-w".as_ref(),
                "-m".as_ref(),
                "fast".as_ref(),
                "-D".as_ref(),
                self.cluster.as_os_str(),
            ],
        )
        .await
    }

    async fn ensure_database(&self) -> Result<(), PgError> {
        let exists = self
            .psql(&format!("SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}'"))
            .await?;
        if exists.trim() != "1" {
            self.psql(&format!("CREATE DATABASE {DB_NAME}")).await?;
        }
        Ok(())
    }

    /// Runs one statement in the maintenance database. psql ships with every PostgreSQL that
    /// has initdb; using it keeps a second SQL client out of this module.
    async fn psql(&self, sql: &str) -> Result<String, PgError> {
        let psql = self.bin_dir.join("psql");
        let psql = if psql.exists() {
            psql
        } else {
            PathBuf::from("psql")
        };
        let mut cmd = Command::new(psql);
        cmd.args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.socket_dir)
            .args(["-U", DB_USER, "-d", "postgres", "-c", sql]);
        self.finish(cmd, "psql").await
    }

    async fn run(&self, program: &str, args: &[&std::ffi::OsStr]) -> Result<(), PgError> {
        let mut cmd = Command::new(self.bin_dir.join(program));
        cmd.args(args);
        self.finish(cmd, program).await.map(drop)
    }

    /// Runs `cmd` as the cluster's user and returns its standard output.
    async fn finish(&self, mut cmd: Command, name: &str) -> Result<String, PgError> {
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid).env("HOME", &self.cluster);
        }
        cmd.stdin(Stdio::null())
            .current_dir(&self.cluster)
            .env("LC_ALL", "C")
            // The database's programs have no business with Director's secrets.
            .env_remove("DIRECTOR_OIDC_CLIENT_SECRET")
            .kill_on_drop(true);
        let out = cmd.output().await.map_err(io(format!("running {name}")))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(PgError::Command {
                command: name.to_owned(),
                status: out.status.to_string(),
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            })
        }
    }
}

impl Drop for EmbeddedPostgres {
    /// A cluster is never left running behind a panic or an early return: without an orderly
    /// [`EmbeddedPostgres::stop`], it is stopped here, synchronously.
    fn drop(&mut self) {
        if let Some(supervisor) = self.supervisor.take() {
            supervisor.abort();
        }
        if self.stopped {
            return;
        }
        let pg = &self.pg;
        use std::os::unix::process::CommandExt as _;
        let mut cmd = std::process::Command::new(pg.bin_dir.join("pg_ctl"));
        cmd.args(["stop", "-w", "-m", "fast", "-D"])
            .arg(&pg.cluster)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .current_dir(&pg.cluster);
        if let Some((uid, gid)) = pg.run_as {
            cmd.uid(uid).gid(gid);
        }
        if let Err(err) = cmd.status() {
            tracing::error!(error = %err, "stopping the embedded PostgreSQL on drop failed");
        }
    }
}

/// The socket directory; Unix socket paths are limited to ~107 bytes, so a deep data
/// directory gets a short one under /tmp instead.
fn socket_dir(data_dir: &Path) -> PathBuf {
    let inside = data_dir.join("run");
    if inside.as_os_str().len() <= 80 {
        return inside;
    }
    let hash = data_dir
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
        });
    std::env::temp_dir().join(format!("director-pg-{hash:016x}"))
}

fn find_bin_dir() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths).find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
    });
    if let Some(dir) = on_path {
        // Debian links initdb into /usr/local/bin or wraps it; resolve to the real directory so
        // that pg_ctl finds the postgres binary beside it.
        return fs::canonicalize(dir.join("initdb"))
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .filter(|d| d.join("pg_ctl").is_file())
            .or(Some(dir));
    }
    let mut versions: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").is_file())
        .collect();
    versions.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions.pop()
}

/// Whether this process runs as root.
pub(crate) fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    // /proc/self belongs to the process's effective user: no FFI needed to ask who we are.
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The user the cluster runs as when director runs as root: `director` if it exists,
/// else `postgres`, else a `director` system user made now.
async fn unprivileged_user() -> Result<(u32, u32), PgError> {
    for name in [OS_USER_NAME, "postgres"] {
        if let Some(ids) = passwd_entry(name) {
            return Ok(ids);
        }
    }
    let out = Command::new("useradd")
        .args([
            "--system",
            "--user-group",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            OS_USER_NAME,
        ])
        .output()
        .await
        .map_err(|e| PgError::NoUser(e.to_string()))?;
    if !out.status.success() {
        return Err(PgError::NoUser(String::from_utf8_lossy(&out.stderr).into_owned()));
    }
    passwd_entry(OS_USER_NAME)
        .ok_or_else(|| PgError::NoUser("useradd succeeded but the user is missing".to_owned()))
}

fn passwd_entry(name: &str) -> Option<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == name).then_some(())?;
        let uid = fields.nth(1)?.parse().ok()?;
        let gid = fields.next()?.parse().ok()?;
        Some((uid, gid))
    })
}
