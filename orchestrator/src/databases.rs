//! The database servers Director runs for the sites: one PostgreSQL and one MariaDB server
//! per engine, each a Swarm service on the sites' network, reached there by a fixed alias and
//! never published on the host.
//!
//! Director itself never joins the sites' network: it speaks to a server through the server's
//! Unix socket, which is bind-mounted from a directory on the host. Only there does the
//! superuser exist for a client (PostgreSQL's `pg_hba.conf` lets it in on the socket alone;
//! MariaDB's `root` is `root@localhost`); over the network, a role reaches only the database
//! of its own name.
//!
//! The superuser's password reaches the server as a Swarm secret (a file readable by the
//! server's user alone, never a variable or a label) and is made the superuser's again at every
//! start: the secret is the truth, so a new one and a restart change it.

use std::path::{Path, PathBuf};

use bollard::models::{
    Limit, Mount, MountTmpfsOptions, MountType, NetworkAttachmentConfig, SecretSpec, ServiceSpec,
    ServiceSpecMode, ServiceSpecModeReplicated, ServiceSpecUpdateConfig, ServiceSpecUpdateConfigOrderEnum,
    TaskSpec, TaskSpecContainerSpec, TaskSpecContainerSpecFile, TaskSpecContainerSpecPrivileges,
    TaskSpecContainerSpecSecrets, TaskSpecResources, TaskSpecRestartPolicy,
    TaskSpecRestartPolicyConditionEnum,
};
use sha2::{Digest as _, Sha256};

use crate::{
    EndpointMode, Ensured, Error, Orchestrator, Result,
    base_images::BaseImage,
    error::is_not_found,
    names::{LABEL_NAMESPACE, LABEL_ROLE, LABEL_SPEC},
    spec::digest,
};

/// Which database server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Engine {
    /// PostgreSQL 15.
    Postgres,
    /// MariaDB 10.11, which speaks MySQL's protocol.
    Mariadb,
}

/// Where a server keeps its data, inside its container.
const DATA_MOUNT: &str = "/var/lib/director-db";
/// Where its socket is, inside its container (a directory on the host).
const SOCKET_MOUNT: &str = "/director/socket";
/// The superuser's password, inside the container.
const SECRET_FILE: &str = "superuser";

impl Engine {
    /// Both.
    pub const ALL: &'static [Self] = &[Self::Postgres, Self::Mariadb];

    /// Its short name, in service names and labels: `postgres`, `mariadb`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Mariadb => "mariadb",
        }
    }

    /// The name sites reach it by on their network.
    pub fn alias(self) -> &'static str {
        match self {
            Self::Postgres => "postgres.director",
            Self::Mariadb => "mysql.director",
        }
    }

    /// The port it listens on.
    pub fn port(self) -> u16 {
        match self {
            Self::Postgres => 5432,
            Self::Mariadb => 3306,
        }
    }

    /// The uid (and gid) its server runs as: fixed in its image, so that Director can give the
    /// server its data directory.
    pub fn uid(self) -> u32 {
        match self {
            Self::Postgres => 60432,
            Self::Mariadb => 60433,
        }
    }

    /// The image it runs.
    pub fn image(self) -> BaseImage {
        match self {
            Self::Postgres => BaseImage::Postgres,
            Self::Mariadb => BaseImage::Mariadb,
        }
    }

    /// The file name of its socket in the socket directory.
    pub fn socket_name(self) -> &'static str {
        match self {
            Self::Postgres => ".s.PGSQL.5432",
            Self::Mariadb => "mysqld.sock",
        }
    }

    /// The script its container runs: make the data directory on first start, make the
    /// secret's password the superuser's, then become the server. The password is read from the
    /// secret's file and never put on a command line (every process's arguments can be read)
    /// nor in the server's log.
    fn start_script(self) -> String {
        match self {
            // `pg_hba.conf` is written at every start, so that the rule stays Director's: the
            // superuser on the socket only (over the network it is refused first, or `sameuser`
            // would let it into the database called `postgres`); over the network a role only
            // into the database of its own name. SIGINT (set as the stop signal) is PostgreSQL's fast shutdown.
            Self::Postgres => format!(
                r#"set -eu
umask 077
export PGDATA={DATA_MOUNT}/data
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  initdb --username=postgres --auth=scram-sha-256 --pwfile=/run/secrets/{SECRET_FILE} --encoding=UTF8 --locale=C.UTF-8 >/dev/null
fi
printf '%s\n' 'local all postgres scram-sha-256' 'local sameuser all scram-sha-256' 'host all postgres all reject' 'host sameuser all all scram-sha-256' > "$PGDATA/pg_hba.conf"
pw=$(cat /run/secrets/{SECRET_FILE})
printf "ALTER ROLE postgres PASSWORD '%s';\n" "$pw" | postgres --single -D "$PGDATA" -c log_min_messages=fatal -c log_min_error_statement=panic postgres >/dev/null 2>&1
unset pw
exec postgres -c listen_addresses='*' -c unix_socket_directories={SOCKET_MOUNT} -c unix_socket_permissions=0700 -c max_connections=500 -c log_min_error_statement=panic -c password_encryption=scram-sha-256
"#
            ),
            // The init file holds the password: it is written to the container's own tmpfs,
            // readable by the server alone. Anonymous accounts (which would shadow every '%'
            // account on the socket) are dropped.
            Self::Mariadb => format!(
                r#"set -eu
umask 077
if [ ! -d {DATA_MOUNT}/data/mysql ]; then
  mariadb-install-db --no-defaults --datadir={DATA_MOUNT}/data --skip-test-db --auth-root-authentication-method=normal --skip-name-resolve >/dev/null
fi
pw=$(cat /run/secrets/{SECRET_FILE})
printf "%s\n" "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('$pw');" "DELETE FROM mysql.global_priv WHERE User = '' OR (User = 'root' AND Host <> 'localhost');" "FLUSH PRIVILEGES;" > /tmp/init.sql
unset pw
mkdir -p /tmp/no-files
exec mariadbd --no-defaults --datadir={DATA_MOUNT}/data --socket={SOCKET_MOUNT}/mysqld.sock --bind-address=0.0.0.0 --port=3306 --skip-name-resolve --init-file=/tmp/init.sql --pid-file=/tmp/mariadbd.pid --local-infile=0 --secure-file-priv=/tmp/no-files --max-connections=500 --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci
"#
            ),
        }
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything needed to run one database server.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerSpec {
    /// Which server.
    pub engine: Engine,
    /// Its directory on the host (made if missing): `data/` and `socket/` beneath it.
    pub directory: PathBuf,
    /// The superuser's password.
    pub superuser_password: String,
    /// The sites' overlay network (already namespaced).
    pub network: String,
    /// VIP or DNS round-robin.
    pub endpoint_mode: EndpointMode,
    /// Its memory limit in bytes.
    pub memory_bytes: u64,
}

impl std::fmt::Debug for ServerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSpec")
            .field("engine", &self.engine)
            .field("directory", &self.directory)
            .field("network", &self.network)
            .finish_non_exhaustive()
    }
}

impl ServerSpec {
    /// The host directory of its data.
    pub fn data_dir(&self) -> PathBuf {
        self.directory.join("server").join("data")
    }

    /// The host directory of its socket.
    pub fn socket_dir(&self) -> PathBuf {
        self.directory.join("socket")
    }

    /// Its socket on the host: what Director connects to.
    pub fn socket(&self) -> PathBuf {
        self.socket_dir().join(self.engine.socket_name())
    }

    /// The name of the secret holding this password: a new password, a new secret (Swarm's
    /// secrets cannot change).
    fn secret_name(&self, ns: &crate::Namespace) -> String {
        let hash = Sha256::digest(format!("director superuser {}", self.superuser_password));
        let short: String = hash.iter().take(6).map(|b| format!("{b:02x}")).collect();
        ns.network(&format!("director_{}_superuser_{short}", self.engine.name()))
    }

    /// The server's service, labelled with the digest of itself.
    fn service(&self, ns: &crate::Namespace, image: &str, secret_id: &str) -> ServiceSpec {
        let uid = self.engine.uid().to_string();
        let bind = |source: PathBuf, target: &str| Mount {
            target: Some(target.to_owned()),
            source: Some(source.to_string_lossy().into_owned()),
            typ: Some(MountType::BIND),
            read_only: Some(false),
            ..Default::default()
        };
        let mut labels = std::collections::HashMap::from([
            (LABEL_NAMESPACE.to_owned(), ns.label().to_owned()),
            (LABEL_ROLE.to_owned(), format!("database-{}", self.engine.name())),
        ]);
        let container = TaskSpecContainerSpec {
            image: Some(image.to_owned()),
            labels: Some(labels.clone()),
            command: Some(vec![
                "/bin/sh".to_owned(),
                "-c".to_owned(),
                self.engine.start_script(),
            ]),
            hostname: Some(self.engine.alias().to_owned()),
            user: Some(format!("{uid}:{uid}")),
            read_only: Some(true),
            mounts: Some(vec![
                // The data directory's parent is mounted, so that the server can make (and on
                // its first start, own) `data/` with the mode it insists on.
                bind(self.directory.join("server"), DATA_MOUNT),
                bind(self.socket_dir(), SOCKET_MOUNT),
                Mount {
                    target: Some("/tmp".to_owned()),
                    typ: Some(MountType::TMPFS),
                    tmpfs_options: Some(MountTmpfsOptions {
                        size_bytes: Some(64 << 20),
                        mode: Some(0o1777),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ]),
            init: Some(true),
            capability_drop: Some(vec!["ALL".to_owned()]),
            privileges: Some(TaskSpecContainerSpecPrivileges {
                no_new_privileges: Some(true),
                ..Default::default()
            }),
            secrets: Some(vec![TaskSpecContainerSpecSecrets {
                file: Some(TaskSpecContainerSpecFile {
                    name: Some(SECRET_FILE.to_owned()),
                    uid: Some(uid.clone()),
                    gid: Some(uid),
                    mode: Some(0o400),
                }),
                secret_id: Some(secret_id.to_owned()),
                secret_name: Some(self.secret_name(ns)),
            }]),
            stop_signal: Some(
                match self.engine {
                    Engine::Postgres => "SIGINT",
                    Engine::Mariadb => "SIGTERM",
                }
                .to_owned(),
            ),
            // A database that is cut off mid-write recovers, but slowly: it is given time.
            stop_grace_period: Some(60_000_000_000),
            ..Default::default()
        };
        let task = TaskSpec {
            container_spec: Some(container),
            resources: Some(TaskSpecResources {
                limits: Some(Limit {
                    memory_bytes: Some(i64::try_from(self.memory_bytes).unwrap_or(i64::MAX)),
                    pids: Some(1024),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(TaskSpecRestartPolicyConditionEnum::ANY),
                delay: Some(2_000_000_000),
                max_attempts: None,
                window: None,
            }),
            networks: Some(vec![NetworkAttachmentConfig {
                target: Some(self.network.clone()),
                aliases: Some(vec![self.engine.alias().to_owned()]),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let mut spec = ServiceSpec {
            name: Some(ns.database_server(self.engine.name())),
            task_template: Some(task),
            mode: Some(ServiceSpecMode {
                replicated: Some(ServiceSpecModeReplicated { replicas: Some(1) }),
                ..Default::default()
            }),
            // Never two servers on one data directory: the old task stops before the new starts.
            update_config: Some(ServiceSpecUpdateConfig {
                parallelism: Some(1),
                order: Some(ServiceSpecUpdateConfigOrderEnum::STOP_FIRST),
                ..Default::default()
            }),
            endpoint_spec: Some(self.endpoint_mode.spec()),
            ..Default::default()
        };
        labels.insert(LABEL_SPEC.to_owned(), digest(&spec));
        spec.labels = Some(labels);
        spec
    }
}

/// A database server's state, as an admin sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStatus {
    /// Whether its service exists.
    pub exists: bool,
    /// Whether a task of it runs.
    pub running: bool,
    /// Why its latest task that stopped did so, as the engine says.
    pub last_error: Option<String>,
}

impl Orchestrator {
    /// Makes the server's directories (owned by its user) and its secret, and creates or
    /// updates its service. It does not wait for the server to answer: see
    /// [`Orchestrator::database_socket_ready`].
    pub async fn ensure_database_server(&self, spec: &ServerSpec) -> Result<Ensured> {
        if spec.superuser_password.len() < 16
            || !spec.superuser_password.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err(Error::invalid(
                "superuser password",
                "at least 16 ASCII letters and digits",
            ));
        }
        prepare_directories(spec).await?;
        let image = self.base_images.reference(spec.engine.image());
        let secret_id = self.ensure_secret(spec).await?;
        let desired = spec.service(&self.ns, &image, &secret_id);
        let name = self.ns.database_server(spec.engine.name());
        let ensured = match self.docker.inspect_service(&name, None).await {
            Err(e) if is_not_found(&e) => {
                self.image_present(&image).await?;
                match self.docker.create_service(desired, None).await {
                    Ok(_) => {
                        tracing::info!(service = %name, "database server created");
                        Ensured::Created
                    }
                    Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => {
                        return Box::pin(self.ensure_database_server(spec)).await;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
            Ok(current) => {
                let label = |s: &ServiceSpec| s.labels.as_ref().and_then(|l| l.get(LABEL_SPEC)).cloned();
                if current.spec.as_ref().and_then(label) == label(&desired) {
                    Ensured::Unchanged
                } else {
                    self.image_present(&image).await?;
                    self.modify_service(&name, |current| *current = desired.clone())
                        .await?;
                    tracing::info!(service = %name, "database server updated");
                    Ensured::Updated
                }
            }
        };
        self.remove_old_secrets(spec).await?;
        Ok(ensured)
    }

    /// Makes the secret holding the spec's password, unless it exists; returns its id.
    async fn ensure_secret(&self, spec: &ServerSpec) -> Result<String> {
        use base64::Engine as _;
        let name = spec.secret_name(&self.ns);
        match self.docker.inspect_secret(&name).await {
            Ok(secret) => {
                return secret
                    .id
                    .ok_or_else(|| Error::Engine(format!("secret {name} has no id")));
            }
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
        let labels = std::collections::HashMap::from([
            (LABEL_NAMESPACE.to_owned(), self.ns.label().to_owned()),
            (
                LABEL_ROLE.to_owned(),
                format!("database-{}-superuser", spec.engine.name()),
            ),
        ]);
        let request = SecretSpec {
            name: Some(name.clone()),
            labels: Some(labels),
            data: Some(base64::engine::general_purpose::STANDARD.encode(&spec.superuser_password)),
            ..Default::default()
        };
        match self.docker.create_secret(request).await {
            Ok(created) => Ok(created.id),
            // Made by a concurrent caller: read it back.
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => {
                let secret = self.docker.inspect_secret(&name).await?;
                secret
                    .id
                    .ok_or_else(|| Error::Engine(format!("secret {name} has no id")))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Removes the server's secrets other than the current one (a secret a service still uses
    /// cannot be removed: it goes at a later ensure).
    async fn remove_old_secrets(&self, spec: &ServerSpec) -> Result<()> {
        let current = spec.secret_name(&self.ns);
        let role = format!("{LABEL_ROLE}=database-{}-superuser", spec.engine.name());
        let filters = std::collections::HashMap::from([(
            "label".to_owned(),
            vec![format!("{LABEL_NAMESPACE}={}", self.ns.label()), role],
        )]);
        let secrets = self
            .docker
            .list_secrets(Some(bollard::query_parameters::ListSecretsOptions {
                filters: Some(filters),
            }))
            .await?;
        for secret in secrets {
            let name = secret.spec.and_then(|s| s.name).unwrap_or_default();
            if name == current {
                continue;
            }
            if let Some(id) = secret.id
                && let Err(err) = self.docker.delete_secret(&id).await
                && !is_not_found(&err)
            {
                tracing::debug!(secret = %name, error = %err, "an old superuser secret is still in use");
            }
        }
        Ok(())
    }

    /// Whether the server answers on its socket: a connection is accepted there.
    pub async fn database_socket_ready(&self, spec: &ServerSpec) -> bool {
        tokio::net::UnixStream::connect(spec.socket()).await.is_ok()
    }

    /// The server's state.
    pub async fn database_server_status(&self, engine: Engine) -> Result<ServerStatus> {
        let name = self.ns.database_server(engine.name());
        match self.service_status(&name).await {
            Ok(status) => Ok(ServerStatus {
                exists: true,
                running: status.running > 0,
                last_error: status.last_error,
            }),
            Err(Error::NotFound(_)) => Ok(ServerStatus {
                exists: false,
                running: false,
                last_error: None,
            }),
            Err(err) => Err(err),
        }
    }

    /// Replaces the server's task (a stop, then a start: never two on one data directory).
    pub async fn restart_database_server(&self, engine: Engine) -> Result<()> {
        let name = self.ns.database_server(engine.name());
        self.modify_service(&name, |spec| {
            if let Some(task) = spec.task_template.as_mut() {
                task.force_update = Some(task.force_update.unwrap_or(0) + 1);
            }
        })
        .await
    }

    /// Removes the server's service (its data stays on the host).
    pub async fn remove_database_server(&self, engine: Engine) -> Result<()> {
        let name = self.ns.database_server(engine.name());
        crate::ignore_missing(self.docker.delete_service(&name).await)
    }
}

/// Makes `<dir>/server` (the server's, mode 0700) and `<dir>/socket` (the server's, 0700)
/// beneath `<dir>` (root's, 0700). Director's own directory: a path that is a link is refused
/// rather than followed.
async fn prepare_directories(spec: &ServerSpec) -> Result<()> {
    let (dir, uid) = (spec.directory.clone(), spec.engine.uid());
    tokio::task::spawn_blocking(move || make_owned(&dir, uid))
        .await
        .map_err(|e| Error::Engine(format!("preparing a database server's directory: {e}")))?
}

fn make_owned(dir: &Path, uid: u32) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    let io = |context: String| move |source: std::io::Error| Error::Io { context, source };
    let ensure = |path: &Path, owner: Option<u32>| -> Result<()> {
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() || !meta.is_dir() => {
                return Err(Error::invalid(
                    "database directory",
                    format!("{} is not a directory", path.display()),
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(path)
                .map_err(io(format!("making {}", path.display())))?,
            Err(e) => return Err(io(format!("reading {}", path.display()))(e)),
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
            .map_err(io(format!("setting the mode of {}", path.display())))?;
        if let Some(uid) = owner {
            std::os::unix::fs::lchown(path, Some(uid), Some(uid))
                .map_err(io(format!("giving {} to the server", path.display())))?;
        }
        Ok(())
    };
    ensure(dir, None)?;
    ensure(&dir.join("server"), Some(uid))?;
    ensure(&dir.join("socket"), Some(uid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(engine: Engine) -> ServerSpec {
        ServerSpec {
            engine,
            directory: PathBuf::from("/srv/director/databases/postgres"),
            superuser_password: "a".repeat(32),
            network: "director_sites".to_owned(),
            endpoint_mode: EndpointMode::Dnsrr,
            memory_bytes: 512 << 20,
        }
    }

    #[test]
    fn a_server_is_hardened_reached_by_its_alias_and_never_published() {
        for engine in Engine::ALL {
            let spec = example(*engine).service(&crate::Namespace::production(), "img", "secret-id");
            let task = spec.task_template.as_ref().unwrap();
            let c = task.container_spec.as_ref().unwrap();
            let uid = engine.uid();
            assert_eq!(c.user, Some(format!("{uid}:{uid}")));
            assert_eq!(c.read_only, Some(true));
            assert_eq!(c.capability_drop, Some(vec!["ALL".to_owned()]));
            assert!(c.env.is_none(), "no password in the environment");
            assert!(
                !format!("{spec:?}").contains(&"a".repeat(32)),
                "no password in the spec"
            );
            let secret = &c.secrets.as_ref().unwrap()[0];
            assert_eq!(secret.file.as_ref().unwrap().mode, Some(0o400));
            assert_eq!(
                task.networks.as_ref().unwrap()[0].aliases,
                Some(vec![engine.alias().to_owned()])
            );
            assert!(spec.endpoint_spec.unwrap().ports.is_none());
        }
    }

    #[test]
    fn a_new_password_is_a_new_secret_and_a_new_spec() {
        let ns = crate::Namespace::production();
        let a = example(Engine::Postgres);
        let b = ServerSpec {
            superuser_password: "b".repeat(32),
            ..a.clone()
        };
        assert_ne!(a.secret_name(&ns), b.secret_name(&ns));
        let label = |s: &ServerSpec| s.service(&ns, "img", "id").labels.unwrap()[LABEL_SPEC].clone();
        assert_ne!(label(&a), label(&b));
        assert_eq!(label(&a), label(&a.clone()));
    }
}
