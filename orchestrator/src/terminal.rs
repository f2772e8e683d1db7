//! Terminal containers (Director 4.0's model): `site_NNNN_terminal`, from the site's image with
//! its mount, user, network and limits, idling until shells are exec'd in it; reaped when idle.

use std::{
    collections::HashMap,
    pin::Pin,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bollard::{
    container::LogOutput,
    exec::{CreateExecOptions, StartExecOptions, StartExecResults},
    query_parameters::{CreateContainerOptions, ListContainersOptions, ResizeExecOptions},
};
use futures::{Stream, StreamExt as _};
use tokio::io::AsyncWrite;

use crate::{
    Error, Orchestrator, Result, SiteSpec,
    error::is_not_found,
    names::{LABEL_NAMESPACE, LABEL_ROLE, LABEL_SPEC},
};

/// When each terminal container last had an exec start or end, by container name; and a lock
/// per container, so that shells opened at once on a site make its container once.
#[derive(Debug, Clone, Default)]
pub(crate) struct Activity {
    last: Arc<Mutex<HashMap<String, Instant>>>,
    ensuring: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl Activity {
    fn touch(&self, name: &str) {
        self.last
            .lock()
            .expect("activity lock")
            .insert(name.to_owned(), Instant::now());
    }

    fn last(&self, name: &str) -> Option<Instant> {
        self.last.lock().expect("activity lock").get(name).copied()
    }

    fn forget(&self, name: &str) {
        self.last.lock().expect("activity lock").remove(name);
    }

    fn ensure_lock(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.ensuring
            .lock()
            .expect("activity lock")
            .entry(name.to_owned())
            .or_default()
            .clone()
    }
}

/// What to run in a terminal container.
#[derive(Debug, Clone)]
pub struct ExecRequest {
    /// The command; a login-like shell when empty.
    pub cmd: Vec<String>,
    /// Allocate a TTY (interactive shells); without one, stdout and stderr are kept apart.
    pub tty: bool,
    /// Extra environment (`TERM`, `PS1`, …).
    pub env: Vec<String>,
    /// Initial size (columns, rows) of the TTY.
    pub size: Option<(u16, u16)>,
}

impl Default for ExecRequest {
    fn default() -> Self {
        Self {
            cmd: Vec::new(),
            tty: true,
            env: vec!["TERM=xterm-256color".to_owned()],
            size: None,
        }
    }
}

/// Controls a running exec from outside its streams: resize its TTY, hang it up.
#[derive(Debug, Clone)]
pub struct ExecControl {
    docker: bollard::Docker,
    exec_id: String,
}

impl ExecControl {
    /// Sets the TTY to `cols` × `rows` (clamped to 1–1000 each).
    pub async fn resize(&self, cols: u16, rows: u16) -> Result<()> {
        let options = ResizeExecOptions {
            w: i32::from(cols.clamp(1, 1000)),
            h: i32::from(rows.clamp(1, 1000)),
        };
        self.docker.resize_exec(&self.exec_id, options).await?;
        Ok(())
    }

    /// Ends the process as a terminal going away does: SIGHUP, sent from the host to the PID the
    /// engine reports (the engine has no call for it). A process already gone is fine.
    pub async fn hang_up(&self) -> Result<()> {
        self.signal("-HUP").await
    }

    /// Ends the process whatever it does with SIGHUP (a shell that traps it), and everything
    /// in its session (background jobs, `nohup`): SIGKILL. (A process that made a session of
    /// its own with `setsid` is out of reach here; the terminal container's removal ends it.)
    pub async fn kill(&self) -> Result<()> {
        let Some(pid) = self.running_pid().await? else {
            return Ok(());
        };
        // The exec is its session's leader (the engine starts it so): its session id is its pid.
        let _ = tokio::process::Command::new("pkill")
            .args(["-KILL", "-s", &pid.to_string()])
            .status()
            .await;
        self.signal("-KILL").await
    }

    /// Ends the process as a terminal going away should, whatever it does: SIGHUP, then
    /// [`ExecControl::kill`] `grace` later if it is still running (a shell that traps SIGHUP,
    /// what it left in its session). The first error, if any.
    pub async fn end(&self, grace: Duration) -> Result<()> {
        let hung_up = self.hang_up().await;
        tokio::time::sleep(grace).await;
        hung_up.and(self.kill().await)
    }

    /// The host pid of the exec while it runs.
    async fn running_pid(&self) -> Result<Option<i64>> {
        let inspect = self.docker.inspect_exec(&self.exec_id).await?;
        Ok(inspect
            .pid
            .filter(|pid| *pid > 0 && inspect.running.unwrap_or(false)))
    }

    async fn signal(&self, signal: &str) -> Result<()> {
        let Some(pid) = self.running_pid().await? else {
            return Ok(());
        };
        let status = tokio::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .await
            .map_err(|source| Error::Io {
                context: "signalling a shell".to_owned(),
                source,
            })?;
        if !status.success() {
            tracing::warn!(exec = %self.exec_id, pid, signal, "the shell could not be signalled (was it already gone?)");
        }
        Ok(())
    }
}

/// What an exec writes: chunks with the stream each went to.
pub type ExecOutput = Pin<Box<dyn Stream<Item = Result<(crate::LogStream, bytes::Bytes)>> + Send>>;

/// What an exec reads: its standard input.
pub type ExecInput = Pin<Box<dyn AsyncWrite + Send>>;

/// A running exec: its output, its input, a resize handle, and (once the output ends) its exit
/// code from [`ExecSession::exit_code`].
pub struct ExecSession {
    /// Everything the process writes, with the stream it went to (with a TTY, all of it is
    /// the terminal's, reported as standard output).
    pub output: ExecOutput,
    /// The process's standard input.
    pub input: ExecInput,
    /// Resizes the TTY, hangs up the process.
    pub control: ExecControl,
    exec_id: String,
    container: String,
    activity: Activity,
}

impl std::fmt::Debug for ExecSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecSession")
            .field("exec_id", &self.exec_id)
            .finish_non_exhaustive()
    }
}

impl ExecSession {
    /// The exit code, once the process has ended (None while it runs).
    pub async fn exit_code(&self) -> Result<Option<i64>> {
        self.exit().code().await
    }

    /// How to learn the exit code once the streams are taken apart.
    pub fn exit(&self) -> ExitCode {
        ExitCode {
            docker: self.control.docker.clone(),
            exec_id: self.exec_id.clone(),
            container: self.container.clone(),
            activity: self.activity.clone(),
        }
    }
}

/// Reads an exec's exit code, apart from its streams (which the caller may have moved away).
#[derive(Debug, Clone)]
pub struct ExitCode {
    docker: bollard::Docker,
    exec_id: String,
    container: String,
    activity: Activity,
}

impl ExitCode {
    /// The exit code, once the process has ended (None while it runs).
    pub async fn code(&self) -> Result<Option<i64>> {
        let inspect = self.docker.inspect_exec(&self.exec_id).await?;
        self.activity.touch(&self.container);
        Ok(if inspect.running.unwrap_or(false) {
            None
        } else {
            inspect.exit_code
        })
    }
}

impl Orchestrator {
    /// Creates the site's terminal container, or reuses it; one made from another spec (a new
    /// image, new limits) is replaced. Returns its name.
    pub async fn ensure_terminal(&self, spec: &SiteSpec) -> Result<String> {
        self.ensure_terminal_named(self.ns.terminal(spec.id), spec).await
    }

    /// The site's database shell container: its terminal's twin from Director's database
    /// client image (`psql`, `mariadb`), whatever the site's own image has; made, reused and
    /// reaped as its terminal is. Returns its name.
    pub async fn ensure_database_shell(&self, spec: &SiteSpec) -> Result<String> {
        let client = SiteSpec {
            image: self
                .base_images
                .reference(crate::base_images::BaseImage::DbClient),
            ..spec.clone()
        };
        self.ensure_terminal_named(self.ns.database_shell(spec.id), &client)
            .await
    }

    async fn ensure_terminal_named(&self, name: String, spec: &SiteSpec) -> Result<String> {
        spec.validate()?;
        let lock = self.terminals.ensure_lock(&name);
        let _one_at_a_time = lock.lock().await;
        let body = spec.terminal(&self.ns);
        let want = body.labels.as_ref().and_then(|l| l.get(LABEL_SPEC)).cloned();
        match self.docker.inspect_container(&name, None).await {
            Ok(current) => {
                let have = current
                    .config
                    .and_then(|c| c.labels)
                    .and_then(|l| l.get(LABEL_SPEC).cloned());
                if have == want {
                    if !current.state.and_then(|s| s.running).unwrap_or(false) {
                        already_started(self.docker.start_container(&name, None).await)?;
                    }
                    self.terminals.touch(&name);
                    return Ok(name);
                }
                tracing::info!(container = %name, "terminal spec changed; replacing it");
                self.remove_container(&name).await?;
            }
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
        self.image_present(&spec.image).await?;
        let options = CreateContainerOptions {
            name: Some(name.clone()),
            ..Default::default()
        };
        match self.docker.create_container(Some(options), body).await {
            Ok(_) => {}
            // Created concurrently: use it.
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => {}
            Err(e) => return Err(e.into()),
        }
        already_started(self.docker.start_container(&name, None).await)?;
        self.terminals.touch(&name);
        tracing::info!(container = %name, "terminal container started");
        Ok(name)
    }

    /// Removes the site's terminal container and its database shell; removing one that is
    /// gone succeeds.
    pub async fn remove_terminal(&self, site: crate::SiteId) -> Result<()> {
        for name in [self.ns.terminal(site), self.ns.database_shell(site)] {
            // Under the same lock as `ensure_terminal`: a terminal opened while the container
            // is being removed waits for the removal, then makes a new one (rather than finding
            // one that cannot start).
            let lock = self.terminals.ensure_lock(&name);
            let _one_at_a_time = lock.lock().await;
            self.remove_container(&name).await?;
            self.terminals.forget(&name);
        }
        Ok(())
    }

    /// Starts `request` in the terminal container `container`, in `/site`.
    pub async fn exec(&self, container: &str, request: ExecRequest) -> Result<ExecSession> {
        let cmd = if request.cmd.is_empty() {
            vec!["/bin/sh".to_owned(), "-l".to_owned()]
        } else {
            request.cmd
        };
        let created = self
            .docker
            .create_exec(
                container,
                CreateExecOptions {
                    attach_stdin: Some(true),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    tty: Some(request.tty),
                    env: Some(request.env),
                    cmd: Some(cmd),
                    working_dir: Some(crate::SITE_MOUNT.to_owned()),
                    ..Default::default()
                },
            )
            .await?;
        let control = ExecControl {
            docker: self.docker.clone(),
            exec_id: created.id.clone(),
        };
        let started = self
            .docker
            .start_exec(
                &created.id,
                Some(StartExecOptions {
                    detach: false,
                    tty: request.tty,
                    output_capacity: None,
                }),
            )
            .await?;
        let StartExecResults::Attached { output, input } = started else {
            return Err(Error::Engine("the exec started detached".to_owned()));
        };
        if let (true, Some((cols, rows))) = (request.tty, request.size) {
            control.resize(cols, rows).await?;
        }
        self.terminals.touch(container);
        let output = output.map(|item| match item {
            Ok(LogOutput::StdErr { message }) => Ok((crate::LogStream::Stderr, message)),
            Ok(
                LogOutput::StdOut { message } | LogOutput::Console { message } | LogOutput::StdIn { message },
            ) => Ok((crate::LogStream::Stdout, message)),
            Err(e) => Err(Error::from(e)),
        });
        Ok(ExecSession {
            output: Box::pin(output),
            input,
            control,
            exec_id: created.id,
            container: container.to_owned(),
            activity: self.terminals.clone(),
        })
    }

    /// Removes terminal containers in which no exec runs and none has started or ended for
    /// `idle` (their start counts when this process has seen no exec). Returns their names.
    pub async fn reap_idle_terminals(&self, idle: Duration) -> Result<Vec<String>> {
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![
                format!("{LABEL_NAMESPACE}={}", self.ns.label()),
                format!("{LABEL_ROLE}=terminal"),
            ],
        )]);
        let containers = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await?;
        let mut reaped = Vec::new();
        for summary in containers {
            let Some(name) = summary
                .names
                .and_then(|n| n.first().map(|n| n.trim_start_matches('/').to_owned()))
            else {
                continue;
            };
            let inspect = match self.docker.inspect_container(&name, None).await {
                Ok(i) => i,
                Err(e) if is_not_found(&e) => continue,
                Err(e) => return Err(e.into()),
            };
            let mut busy = false;
            for exec_id in inspect.exec_ids.unwrap_or_default() {
                if let Ok(exec) = self.docker.inspect_exec(&exec_id).await
                    && exec.running.unwrap_or(false)
                {
                    busy = true;
                    break;
                }
            }
            // Without a record of activity (another process started it, or this one restarted),
            // the container counts from now: it is reaped only after a full idle period.
            let last = self.terminals.last(&name).unwrap_or_else(|| {
                self.terminals.touch(&name);
                Instant::now()
            });
            if busy {
                self.terminals.touch(&name);
            } else if last.elapsed() >= idle {
                self.remove_container(&name).await?;
                self.terminals.forget(&name);
                tracing::info!(container = %name, "idle terminal reaped");
                reaped.push(name);
            }
        }
        Ok(reaped)
    }
}

/// Starting a container that runs already (another process got there first) is done.
fn already_started(result: Result<(), bollard::errors::Error>) -> Result<()> {
    match result {
        Err(bollard::errors::Error::DockerResponseServerError { status_code: 304, .. }) | Ok(()) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
