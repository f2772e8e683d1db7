//! A dynamic site's Swarm service: ensure, remove, scale, restart, status and logs.

use std::collections::HashMap;

use bollard::{
    container::LogOutput,
    models::{ServiceSpec, ServiceUpdateStatusStateEnum, Task, TaskState},
    query_parameters::{ListTasksOptions, LogsOptions, UpdateServiceOptions},
};
use futures::{Stream, StreamExt as _};

use crate::{
    Error, Orchestrator, Result, SiteId, SiteSpec, error::is_not_found, ignore_missing, names::LABEL_SPEC,
};

/// What [`Orchestrator::ensure_service`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    /// The service did not exist and was created.
    Created,
    /// The service existed with another spec and was updated (a rolling, start-first update).
    Updated,
    /// The service already ran this spec: nothing was sent.
    Unchanged,
    /// The engine was updating the service, or had rolled it back from a failed spec: nothing
    /// was sent (see [`Orchestrator::reconcile_service`]).
    LeftAlone,
}

/// How a service's rolling update ended (see [`Orchestrator::await_rollout`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollout {
    /// The new spec runs (or there was nothing to roll).
    Done,
    /// The new task never became healthy (or failed): the old spec runs again. Why, in words.
    RolledBack(String),
    /// Still under way when the wait ended.
    Unfinished,
}

/// A service's state as the platform shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceStatus {
    /// Replicas asked for (0 when not served).
    pub desired: u32,
    /// Tasks running now.
    pub running: u32,
    /// Why the latest task that stopped did so, in words ("run.sh exited 1", "OOM killed", …).
    pub last_error: Option<String>,
    /// The id of the newest running task, if one runs.
    pub task: Option<String>,
    /// The state of the last update, when one happened: `updating`, `completed`,
    /// `rollback_completed` (the new spec failed and the old one runs again), with the engine's
    /// message.
    pub update: Option<String>,
}

/// Which stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One line of a site's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Where it was written.
    pub stream: LogStream,
    /// The line, as written (with its timestamp prefix when asked for).
    pub text: String,
}

/// Which logs to read.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    /// Keep the stream open for new lines.
    pub follow: bool,
    /// Only lines after this Unix time.
    pub since: Option<i64>,
    /// Only the last N lines (all when None).
    pub tail: Option<u32>,
    /// Prefix lines with the engine's RFC 3339 timestamp.
    pub timestamps: bool,
}

impl Orchestrator {
    /// Creates the site's service, or updates it when its spec changed; with the same spec it
    /// sends nothing but the one inspect.
    pub async fn ensure_service(&self, spec: &SiteSpec) -> Result<Ensured> {
        spec.validate()?;
        let desired = spec.service(&self.ns);
        let name = self.ns.service(spec.id);
        match self.docker.inspect_service(&name, None).await {
            Err(e) if is_not_found(&e) => {
                self.image_present(&spec.image).await?;
                match self.docker.create_service(desired, None).await {
                    Ok(_) => {
                        tracing::info!(service = %name, image = %spec.image, "service created");
                        Ok(Ensured::Created)
                    }
                    // A concurrent ensure created it first: converge with an update.
                    Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => {
                        Box::pin(self.ensure_service(spec)).await
                    }
                    Err(e) => Err(e.into()),
                }
            }
            Err(e) => Err(e.into()),
            Ok(current) => {
                let label = |s: &ServiceSpec| s.labels.as_ref().and_then(|l| l.get(LABEL_SPEC)).cloned();
                if current.spec.as_ref().and_then(label) == label(&desired) {
                    return Ok(Ensured::Unchanged);
                }
                self.image_present(&spec.image).await?;
                self.modify(spec.id, |current| *current = desired.clone()).await?;
                tracing::info!(service = %name, image = %spec.image, "service updated");
                Ok(Ensured::Updated)
            }
        }
    }

    /// As [`Orchestrator::ensure_service`], but a service the engine is updating or rolled back
    /// is left as it runs ([`Ensured::LeftAlone`]): the spec it rolled back from failed, and
    /// trying it again unasked would fail again and again. A person's operation (a retry, a
    /// new deploy, a fix) calls `ensure_service`, which tries again.
    pub async fn reconcile_service(&self, spec: &SiteSpec) -> Result<Ensured> {
        spec.validate()?;
        match self.docker.inspect_service(&self.ns.service(spec.id), None).await {
            Ok(current) => {
                use ServiceUpdateStatusStateEnum as S;
                // Mid-update (an operation stopped waiting for it) or rolled back: pushing the
                // spec again would restart an update the engine is deciding, or one it undid.
                let busy_or_undone = current.update_status.and_then(|u| u.state).is_some_and(|state| {
                    matches!(
                        state,
                        S::UPDATING | S::ROLLBACK_STARTED | S::ROLLBACK_COMPLETED | S::ROLLBACK_PAUSED
                    )
                });
                if busy_or_undone {
                    return Ok(Ensured::LeftAlone);
                }
                self.ensure_service(spec).await
            }
            Err(e) if is_not_found(&e) => self.ensure_service(spec).await,
            Err(e) => Err(e.into()),
        }
    }

    /// Whether the engine is rolling the site's service out to its spec and has not decided
    /// yet whether the new task serves.
    pub async fn rolling_out(&self, site: SiteId) -> Result<bool> {
        let service = self.docker.inspect_service(&self.ns.service(site), None).await?;
        Ok(service
            .update_status
            .and_then(|u| u.state)
            .is_some_and(|state| state == ServiceUpdateStatusStateEnum::UPDATING))
    }

    /// Waits (at most `limit`) for the site's rolling update to end: its new task healthy and
    /// the old one stopped, or the engine's rollback done.
    pub async fn await_rollout(&self, site: SiteId, limit: std::time::Duration) -> Result<Rollout> {
        use ServiceUpdateStatusStateEnum as S;
        let name = self.ns.service(site);
        let start = std::time::Instant::now();
        loop {
            let service = self.docker.inspect_service(&name, None).await?;
            let status = service.update_status.unwrap_or_default();
            match status.state {
                Some(S::COMPLETED) => return Ok(Rollout::Done),
                // A rollback started is decided: the new spec failed (the old task still serves).
                Some(S::ROLLBACK_STARTED | S::ROLLBACK_COMPLETED | S::ROLLBACK_PAUSED | S::PAUSED) => {
                    let why = self.status(site).await?.last_error;
                    let message = status.message.filter(|m| !m.is_empty());
                    let reason = match (why, message) {
                        (Some(why), _) => why,
                        (None, Some(message)) => message,
                        (None, None) => "its new task failed".to_owned(),
                    };
                    return Ok(Rollout::RolledBack(reason));
                }
                // No update under way after a few seconds: the change replaced no task.
                None | Some(S::EMPTY) if start.elapsed() > std::time::Duration::from_secs(3) => {
                    return Ok(Rollout::Done);
                }
                _ => {}
            }
            if start.elapsed() > limit {
                return Ok(Rollout::Unfinished);
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    }

    /// The labels on the site's service (Director's and those its spec added).
    pub async fn service_labels(&self, site: SiteId) -> Result<std::collections::BTreeMap<String, String>> {
        let service = self.docker.inspect_service(&self.ns.service(site), None).await?;
        Ok(service
            .spec
            .and_then(|s| s.labels)
            .unwrap_or_default()
            .into_iter()
            .collect())
    }

    /// Removes the site's service; removing one that is gone succeeds.
    pub async fn remove_service(&self, site: SiteId) -> Result<()> {
        let name = self.ns.service(site);
        ignore_missing(self.docker.delete_service(&name).await)?;
        tracing::info!(service = %name, "service removed");
        Ok(())
    }

    /// Sets the number of replicas (1 served, 0 not served) without touching anything else.
    pub async fn set_replicas(&self, site: SiteId, replicas: u32) -> Result<()> {
        self.modify(site, |spec| {
            if let Some(r) = spec.mode.as_mut().and_then(|m| m.replicated.as_mut()) {
                r.replicas = Some(i64::from(replicas));
            }
        })
        .await
    }

    /// Restarts the site: a forced update, which replaces its task (start-first).
    pub async fn restart(&self, site: SiteId) -> Result<()> {
        self.modify(site, |spec| {
            if let Some(task) = spec.task_template.as_mut() {
                task.force_update = Some(task.force_update.unwrap_or(0) + 1);
            }
        })
        .await
    }

    /// Applies `change` to the service's current spec. Swarm bumps a service's version on its
    /// own during rolling updates, so an update made from a stale version ("update out of
    /// sequence") is re-read and retried.
    async fn modify(&self, site: SiteId, change: impl Fn(&mut ServiceSpec)) -> Result<()> {
        self.modify_service(&self.ns.service(site), change).await
    }

    /// [`Orchestrator::modify`] on the service called `name`.
    pub(crate) async fn modify_service(&self, name: &str, change: impl Fn(&mut ServiceSpec)) -> Result<()> {
        let mut attempt = 0;
        loop {
            let current = self.docker.inspect_service(name, None).await?;
            let mut spec = current
                .spec
                .ok_or_else(|| Error::Engine(format!("service {name} has no spec")))?;
            change(&mut spec);
            let version = current.version.and_then(|v| v.index).unwrap_or_default();
            let options = UpdateServiceOptions {
                version: i32::try_from(version)
                    .map_err(|_| Error::Engine(format!("service version {version} out of range")))?,
                ..Default::default()
            };
            match self.docker.update_service(name, spec, options, None).await {
                Ok(_) => return Ok(()),
                Err(bollard::errors::Error::DockerResponseServerError { message, .. })
                    if message.contains("out of sequence") && attempt < 10 =>
                {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Desired and running tasks, and why the latest task that stopped did so.
    pub async fn status(&self, site: SiteId) -> Result<ServiceStatus> {
        self.service_status(&self.ns.service(site)).await
    }

    /// [`Orchestrator::status`] of the service called `name`.
    pub(crate) async fn service_status(&self, name: &str) -> Result<ServiceStatus> {
        let service = self.docker.inspect_service(name, None).await?;
        let update = service.update_status.map(|u| {
            let state = u.state.map(|s| s.to_string()).unwrap_or_default();
            match u.message {
                Some(message) if !message.is_empty() => format!("{state}: {message}"),
                _ => state,
            }
        });
        let desired = service
            .spec
            .and_then(|s| s.mode)
            .and_then(|m| m.replicated)
            .and_then(|r| r.replicas)
            .unwrap_or(0);
        let filters = HashMap::from([("service".to_owned(), vec![name.to_owned()])]);
        let mut tasks = self
            .docker
            .list_tasks(Some(ListTasksOptions {
                filters: Some(filters),
            }))
            .await?;
        tasks.sort_by(|a, b| b.updated_at.cmp(&a.updated_at));
        let state = |t: &Task| t.status.as_ref().and_then(|s| s.state);
        let is_running =
            |t: &&Task| state(t) == Some(TaskState::RUNNING) && t.desired_state == Some(TaskState::RUNNING);
        let running = tasks.iter().filter(is_running).count();
        let task = tasks.iter().find(is_running).and_then(|t| t.id.clone());
        let mut last_error = None;
        if let Some(stopped) = tasks
            .iter()
            .find(|t| matches!(state(t), Some(TaskState::FAILED | TaskState::REJECTED)))
        {
            last_error = Some(self.explain(stopped).await);
        }
        Ok(ServiceStatus {
            desired: u32::try_from(desired).unwrap_or(0),
            running: u32::try_from(running).unwrap_or(u32::MAX),
            last_error,
            task,
            update,
        })
    }

    /// Puts a failed task's cause in words a site owner understands.
    async fn explain(&self, task: &Task) -> String {
        let status = task.status.clone().unwrap_or_default();
        let err = status.err.unwrap_or_default();
        let exit = status.container_status.as_ref().and_then(|c| c.exit_code);
        let container = status.container_status.and_then(|c| c.container_id);
        if let Some(id) = container.filter(|id| !id.is_empty())
            && let Ok(inspect) = self.docker.inspect_container(&id, None).await
            && inspect.state.and_then(|s| s.oom_killed).unwrap_or(false)
        {
            return "OOM killed: the site used more memory than its limit".to_owned();
        }
        if err.contains("run.sh") && (err.contains("no such file") || err.contains("not found")) {
            return "run.sh is missing: add an executable run.sh to the site's directory".to_owned();
        }
        if err.contains("permission denied") {
            return "run.sh cannot be executed: make it executable (chmod +x run.sh)".to_owned();
        }
        if err.contains("No such image") {
            return "the site's image is missing on the engine".to_owned();
        }
        match exit {
            // The init (PID 1) reports a command it cannot start with the shell's codes.
            Some(127) => "run.sh is missing: add an executable run.sh to the site's directory".to_owned(),
            Some(126) => "run.sh cannot be executed: make it executable (chmod +x run.sh)".to_owned(),
            Some(137) => "killed (out of memory or stopped forcibly)".to_owned(),
            Some(code) if code != 0 => format!("run.sh exited {code}"),
            _ if !err.is_empty() => err,
            _ => "stopped".to_owned(),
        }
    }

    /// The site's output, stdout and stderr marked.
    pub fn logs(
        &self,
        site: SiteId,
        options: LogOptions,
    ) -> impl Stream<Item = Result<LogLine>> + Send + use<> {
        let name = self.ns.service(site);
        let options = LogsOptions {
            follow: options.follow,
            stdout: true,
            stderr: true,
            since: options.since.map_or(0, |s| i32::try_from(s).unwrap_or(i32::MAX)),
            timestamps: options.timestamps,
            tail: options.tail.map_or_else(|| "all".to_owned(), |n| n.to_string()),
            ..Default::default()
        };
        self.docker
            .service_logs(&name, Some(options))
            .filter_map(|item| async move {
                match item {
                    Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                        Some(Ok(LogLine {
                            stream: LogStream::Stdout,
                            text: String::from_utf8_lossy(&message)
                                .trim_end_matches('\n')
                                .to_owned(),
                        }))
                    }
                    Ok(LogOutput::StdErr { message }) => Some(Ok(LogLine {
                        stream: LogStream::Stderr,
                        text: String::from_utf8_lossy(&message)
                            .trim_end_matches('\n')
                            .to_owned(),
                    })),
                    Ok(LogOutput::StdIn { .. }) => None,
                    Err(e) => Some(Err(e.into())),
                }
            })
    }
}
