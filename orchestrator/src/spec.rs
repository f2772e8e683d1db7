//! What a site runs as: its [`SiteSpec`], and the Swarm service and terminal container made
//! from it. Everything here is pure (no engine calls), so the hardening is unit-tested.
//!
//! Hardening, and what this engine's Swarm API enforces:
//! - non-root uid/gid per site, read-only root filesystem, tmpfs `/tmp` and `/run`
//!   (size-limited), all capabilities dropped, CPU, memory and pids limits, an init as PID 1:
//!   enforced by the Swarm API from 1.41 (Docker 20.10) on.
//! - `no-new-privileges`: the Swarm API takes it from 1.46 (Docker 27) on; older engines ignore
//!   the field, so on Docker 20.10 services run without it. Terminal containers are plain
//!   containers, where `security_opt: no-new-privileges` is enforced on every version.
//! - never the Docker socket: the only bind mount is the site's own directory.

use std::{collections::BTreeMap, path::PathBuf};

use bollard::models::{
    EndpointSpec, EndpointSpecModeEnum, HealthConfig, HostConfig, Limit, Mount, MountTmpfsOptions, MountType,
    NetworkAttachmentConfig, ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated,
    ServiceSpecRollbackConfig, ServiceSpecRollbackConfigFailureActionEnum,
    ServiceSpecRollbackConfigOrderEnum, ServiceSpecUpdateConfig, ServiceSpecUpdateConfigFailureActionEnum,
    ServiceSpecUpdateConfigOrderEnum, TaskSpec, TaskSpecContainerSpec, TaskSpecContainerSpecPrivileges,
    TaskSpecResources, TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum,
};
use sha2::{Digest as _, Sha256};

use crate::{
    Result,
    names::{
        LABEL_NAMESPACE, LABEL_ROLE, LABEL_SITE, LABEL_SPEC, Namespace, SiteId, validate_env_name,
        validate_env_value, validate_site_name,
    },
};

/// Where a site's files are mounted in its containers.
pub const SITE_MOUNT: &str = "/site";
/// The command of a dynamic site's service.
pub const RUN_SCRIPT: &str = "/site/run.sh";

/// Resource limits of a site's containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// CPU in thousandths of a core.
    pub cpu_millis: u32,
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// Processes and threads.
    pub pids: u32,
    /// Size of each tmpfs (`/tmp`, `/run`) in bytes.
    pub tmpfs_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            cpu_millis: 1000,
            memory_bytes: 512 * 1024 * 1024,
            pids: 256,
            tmpfs_bytes: 64 * 1024 * 1024,
        }
    }
}

/// How a service is reached on its network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EndpointMode {
    /// One virtual IP load-balanced by IPVS (the engine's default).
    #[default]
    Vip,
    /// DNS round-robin over the tasks' own addresses: needed where the kernel has no IPVS.
    Dnsrr,
}

impl EndpointMode {
    /// A service's endpoint in this mode, publishing nothing.
    pub(crate) fn spec(self) -> EndpointSpec {
        EndpointSpec {
            mode: Some(match self {
                Self::Vip => EndpointSpecModeEnum::VIP,
                Self::Dnsrr => EndpointSpecModeEnum::DNSRR,
            }),
            ports: None,
        }
    }
}

/// Everything the orchestrator needs to run one site.
#[derive(Clone, PartialEq, Eq)]
pub struct SiteSpec {
    /// The site's id (its service is `site_NNNN`).
    pub id: SiteId,
    /// The site's name, a DNS label; also a network alias of its service.
    pub name: String,
    /// The image reference (or id) its containers run.
    pub image: String,
    /// The site's directory on the host, bind-mounted at `/site`.
    pub directory: PathBuf,
    /// The uid and gid its processes run as.
    pub uid: u32,
    /// The gid its processes run as.
    pub gid: u32,
    /// The port `run.sh` must listen on (`PORT`).
    pub port: u16,
    /// The site's public URL (`SITE_URL`).
    pub url: String,
    /// User-set environment variables.
    pub env: BTreeMap<String, String>,
    /// Resource limits.
    pub limits: Limits,
    /// Whether the site is served (1 replica) or not (0).
    pub served: bool,
    /// The attachable overlay network its containers join (already namespaced).
    pub network: String,
    /// VIP or DNS round-robin.
    pub endpoint_mode: EndpointMode,
    /// Check that `run.sh` answers HTTP on `PORT` (any status counts), allowing it this long to
    /// start; updates then wait for the new task to pass before the old one stops (a deploy
    /// without downtime). Each check is a process the engine starts in the container, every
    /// five seconds once the task is up. None: no check, and a new task takes over as soon as
    /// it starts (the edge router's retries then cover the few seconds it takes to answer).
    pub health_check: Option<std::time::Duration>,
    /// Extra labels on the service, for an edge router that reads them (Traefik).
    pub labels: BTreeMap<String, String>,
}

/// Its variables' values may be secrets (a database's password): only their names are shown.
impl std::fmt::Debug for SiteSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiteSpec")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("image", &self.image)
            .field("directory", &self.directory)
            .field("uid", &self.uid)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("limits", &self.limits)
            .field("served", &self.served)
            .field("network", &self.network)
            .finish_non_exhaustive()
    }
}

impl SiteSpec {
    /// Refuses anything that must not reach the engine: bad names, root ids, bad variables,
    /// a relative directory, zero limits.
    pub fn validate(&self) -> Result<()> {
        use crate::Error;
        validate_site_name(&self.name)?;
        if self.uid == 0 || self.gid == 0 {
            return Err(Error::invalid(
                "site user",
                "a site never runs as root (uid/gid 0)",
            ));
        }
        if !self.directory.is_absolute() {
            return Err(Error::invalid("site directory", "must be an absolute path"));
        }
        if self.image.is_empty() || self.image.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::invalid(
                "image",
                format!("{:?} is not an image reference", self.image),
            ));
        }
        if self.port == 0 {
            return Err(Error::invalid("port", "must be 1-65535"));
        }
        for (name, value) in &self.env {
            validate_env_name(name)?;
            validate_env_value(name, value)?;
            if matches!(name.as_str(), "PORT" | "SITE_NAME" | "SITE_URL") {
                return Err(Error::invalid(
                    "environment variable",
                    format!("{name} is set by Director"),
                ));
            }
        }
        for (key, value) in &self.labels {
            let key_ok = !key.is_empty()
                && key.len() <= 256
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
                && !key.starts_with("director.");
            if !key_ok || value.chars().any(char::is_control) || value.len() > 4096 {
                return Err(Error::invalid(
                    "label",
                    format!("{key:?} is not a label Director may set"),
                ));
            }
        }
        let Limits {
            cpu_millis,
            memory_bytes,
            pids,
            tmpfs_bytes,
        } = self.limits;
        if cpu_millis == 0 || memory_bytes < 4 * 1024 * 1024 || pids == 0 || tmpfs_bytes == 0 {
            return Err(Error::invalid(
                "limits",
                "CPU, pids and tmpfs above 0, memory at least 4 MiB",
            ));
        }
        Ok(())
    }

    fn env(&self) -> Vec<String> {
        let mut env = vec![
            format!("PORT={}", self.port),
            format!("SITE_NAME={}", self.name),
            format!("SITE_URL={}", self.url),
            "HOME=/site".to_owned(),
        ];
        env.extend(self.env.iter().map(|(k, v)| format!("{k}={v}")));
        env
    }

    fn labels(&self, ns: &Namespace, role: &str) -> std::collections::HashMap<String, String> {
        [
            (LABEL_NAMESPACE, ns.label().to_owned()),
            (LABEL_SITE, self.id.0.to_string()),
            (LABEL_ROLE, role.to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    fn site_mount(&self) -> Mount {
        Mount {
            target: Some(SITE_MOUNT.to_owned()),
            source: Some(self.directory.to_string_lossy().into_owned()),
            typ: Some(MountType::BIND),
            read_only: Some(false),
            ..Default::default()
        }
    }

    fn tmpfs_mounts(&self) -> Vec<Mount> {
        ["/tmp", "/run"]
            .into_iter()
            .map(|target| Mount {
                target: Some(target.to_owned()),
                typ: Some(MountType::TMPFS),
                tmpfs_options: Some(MountTmpfsOptions {
                    size_bytes: Some(self.limits.tmpfs_bytes as i64),
                    mode: Some(0o1777),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect()
    }

    /// The Swarm service of a dynamic site, labelled with the digest of itself.
    pub fn service(&self, ns: &Namespace) -> ServiceSpec {
        let mut labels = self.labels(ns, "service");
        let container_labels = labels.clone();
        labels.extend(self.labels.clone());
        let container = TaskSpecContainerSpec {
            image: Some(self.image.clone()),
            labels: Some(container_labels),
            command: Some(vec![RUN_SCRIPT.to_owned()]),
            hostname: Some(self.name.clone()),
            env: Some(self.env()),
            dir: Some(SITE_MOUNT.to_owned()),
            user: Some(format!("{}:{}", self.uid, self.gid)),
            read_only: Some(true),
            mounts: Some(
                std::iter::once(self.site_mount())
                    .chain(self.tmpfs_mounts())
                    .collect(),
            ),
            init: Some(true),
            capability_drop: Some(vec!["ALL".to_owned()]),
            privileges: Some(TaskSpecContainerSpecPrivileges {
                no_new_privileges: Some(true),
                ..Default::default()
            }),
            stop_grace_period: Some(10_000_000_000),
            health_check: self.health_check.map(health),
            ..Default::default()
        };
        let task = TaskSpec {
            container_spec: Some(container),
            resources: Some(TaskSpecResources {
                limits: Some(Limit {
                    nano_cpus: Some(i64::from(self.limits.cpu_millis) * 1_000_000),
                    memory_bytes: Some(self.limits.memory_bytes as i64),
                    pids: Some(i64::from(self.limits.pids)),
                }),
                ..Default::default()
            }),
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(TaskSpecRestartPolicyConditionEnum::ON_FAILURE),
                // Swarm backs off by this delay between restarts of a failing task.
                delay: Some(5_000_000_000),
                max_attempts: None,
                window: Some(60_000_000_000),
            }),
            networks: Some(vec![NetworkAttachmentConfig {
                target: Some(self.network.clone()),
                aliases: Some(vec![self.name.clone()]),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let mut spec = ServiceSpec {
            name: Some(ns.service(self.id)),
            labels: None,
            task_template: Some(task),
            mode: Some(ServiceSpecMode {
                replicated: Some(ServiceSpecModeReplicated {
                    replicas: Some(i64::from(self.served)),
                }),
                ..Default::default()
            }),
            // Zero-downtime redeploys: the new task starts (and must stay up for the monitor
            // period) before the old one stops; a failing one rolls back.
            update_config: Some(ServiceSpecUpdateConfig {
                parallelism: Some(1),
                order: Some(ServiceSpecUpdateConfigOrderEnum::START_FIRST),
                failure_action: Some(ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK),
                monitor: Some(5_000_000_000),
                ..Default::default()
            }),
            rollback_config: Some(ServiceSpecRollbackConfig {
                parallelism: Some(1),
                order: Some(ServiceSpecRollbackConfigOrderEnum::START_FIRST),
                failure_action: Some(ServiceSpecRollbackConfigFailureActionEnum::PAUSE),
                ..Default::default()
            }),
            endpoint_spec: Some(self.endpoint_mode.spec()),
            ..Default::default()
        };
        labels.insert(LABEL_SPEC.to_owned(), digest(&spec));
        spec.labels = Some(labels);
        spec
    }

    /// The terminal container: the same image, mount, user, network and limits as the
    /// service, idling until a shell is exec'd in it.
    pub fn terminal(&self, ns: &Namespace) -> bollard::models::ContainerCreateBody {
        let host = HostConfig {
            mounts: Some(
                std::iter::once(self.site_mount())
                    .chain(self.tmpfs_mounts())
                    .collect(),
            ),
            readonly_rootfs: Some(true),
            cap_drop: Some(vec!["ALL".to_owned()]),
            security_opt: Some(vec!["no-new-privileges".to_owned()]),
            memory: Some(self.limits.memory_bytes as i64),
            nano_cpus: Some(i64::from(self.limits.cpu_millis) * 1_000_000),
            pids_limit: Some(i64::from(self.limits.pids)),
            init: Some(true),
            network_mode: Some(self.network.clone()),
            ..Default::default()
        };
        let mut labels = self.labels(ns, "terminal");
        let mut body = bollard::models::ContainerCreateBody {
            image: Some(self.image.clone()),
            cmd: Some(vec!["sleep".to_owned(), "2147483647".to_owned()]),
            user: Some(format!("{}:{}", self.uid, self.gid)),
            working_dir: Some(SITE_MOUNT.to_owned()),
            env: Some(self.env()),
            // Not the site's name: that must keep resolving to the site's service, also from
            // inside the terminal (`curl http://blog:8080/`).
            hostname: Some(format!("{}-terminal", self.name)),
            host_config: Some(host),
            ..Default::default()
        };
        labels.insert(LABEL_SPEC.to_owned(), digest(&body));
        body.labels = Some(labels);
        body
    }
}

/// The health check: any HTTP answer on `PORT`, with whichever client the image has —
/// `wget -S` (busybox's prints the status line even for a 404), `curl` (any status), or bash's
/// `/dev/tcp` (a connection) on an image with neither — never through a proxy a tenant's
/// variables name. Each check is a process the engine starts in the container: every second
/// while the task starts (engines from API 1.44 on; older ones check at the interval from the
/// start), then every five seconds; three misses in a row after the start period, each
/// allowed ten seconds (a busy single-threaded site is not a dead one), mark it unhealthy.
const HEALTH_TEST: &str = "unset http_proxy HTTP_PROXY https_proxy HTTPS_PROXY all_proxy ALL_PROXY; \
    wget -S -O /dev/null \"http://127.0.0.1:$PORT/\" 2>&1 | grep -q 'HTTP/' \
    || curl -s -o /dev/null \"http://127.0.0.1:$PORT/\" \
    || bash -c \"exec 3<>/dev/tcp/127.0.0.1/$PORT\"";

fn health(start_period: std::time::Duration) -> HealthConfig {
    HealthConfig {
        test: Some(vec!["CMD-SHELL".to_owned(), HEALTH_TEST.to_owned()]),
        interval: Some(5_000_000_000),
        timeout: Some(10_000_000_000),
        retries: Some(3),
        start_period: Some(i64::try_from(start_period.as_nanos()).unwrap_or(i64::MAX)),
        start_interval: Some(1_000_000_000),
    }
}

/// A short digest of a spec's JSON: equal specs, equal digests. The spec goes through
/// `serde_json::Value` first, whose objects keep their keys sorted, because the specs hold
/// `HashMap`s whose iteration order changes from one map to the next.
pub(crate) fn digest<T: serde::Serialize>(spec: &T) -> String {
    let canonical = serde_json::to_value(spec).expect("specs serialise");
    let json = serde_json::to_vec(&canonical).expect("values serialise");
    let hash = Sha256::digest(json);
    hash.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn example() -> SiteSpec {
        SiteSpec {
            id: SiteId(42),
            name: "blog".to_owned(),
            image: "director/busybox:latest".to_owned(),
            directory: PathBuf::from("/srv/director/sites/0042"),
            uid: 100_042,
            gid: 100_042,
            port: 8080,
            url: "http://blog.localhost".to_owned(),
            env: BTreeMap::from([("GREETING".to_owned(), "hi".to_owned())]),
            limits: Limits::default(),
            served: true,
            network: "director_sites".to_owned(),
            endpoint_mode: EndpointMode::Dnsrr,
            health_check: Some(std::time::Duration::from_secs(30)),
            labels: BTreeMap::new(),
        }
    }

    #[test]
    fn the_service_is_hardened() {
        let spec = example().service(&Namespace::production());
        assert_eq!(spec.name.as_deref(), Some("site_0042"));
        let task = spec.task_template.unwrap();
        let c = task.container_spec.unwrap();
        assert_eq!(c.user.as_deref(), Some("100042:100042"));
        assert_eq!(c.read_only, Some(true));
        assert_eq!(c.init, Some(true));
        assert_eq!(c.capability_drop, Some(vec!["ALL".to_owned()]));
        assert_eq!(c.command, Some(vec!["/site/run.sh".to_owned()]));
        let mounts = c.mounts.unwrap();
        assert_eq!(mounts.len(), 3);
        assert!(
            mounts
                .iter()
                .all(|m| m.source.as_deref() != Some("/var/run/docker.sock"))
        );
        let env = c.env.unwrap();
        assert!(env.contains(&"PORT=8080".to_owned()) && env.contains(&"GREETING=hi".to_owned()));
        let limits = task.resources.unwrap().limits.unwrap();
        assert_eq!(limits.nano_cpus, Some(1_000_000_000));
        assert_eq!(limits.pids, Some(256));
        assert_eq!(task.networks.unwrap()[0].aliases, Some(vec!["blog".to_owned()]));
    }

    #[test]
    fn the_digest_follows_the_spec() {
        let ns = Namespace::production();
        let a = example().service(&ns);
        let b = example().service(&ns);
        assert_eq!(
            a.labels.as_ref().unwrap()[LABEL_SPEC],
            b.labels.as_ref().unwrap()[LABEL_SPEC]
        );
        let changed = SiteSpec {
            image: "director/python:latest".to_owned(),
            ..example()
        }
        .service(&ns);
        assert_ne!(a.labels.unwrap()[LABEL_SPEC], changed.labels.unwrap()[LABEL_SPEC]);
    }

    #[test]
    fn bad_specs_are_refused() {
        let bad = [
            SiteSpec { uid: 0, ..example() },
            SiteSpec {
                name: "Bad_Name".into(),
                ..example()
            },
            SiteSpec {
                directory: "relative".into(),
                ..example()
            },
            SiteSpec {
                image: "two words".into(),
                ..example()
            },
            SiteSpec {
                env: BTreeMap::from([("PORT".into(), "1".into())]),
                ..example()
            },
            SiteSpec {
                env: BTreeMap::from([("A-B".into(), "1".into())]),
                ..example()
            },
            SiteSpec {
                limits: Limits {
                    memory_bytes: 1,
                    ..Limits::default()
                },
                ..example()
            },
        ];
        for spec in bad {
            assert!(spec.validate().is_err(), "{spec:?}");
        }
        example().validate().unwrap();
    }
}
