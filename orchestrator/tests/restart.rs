//! The engine going away mid-operation (as when dockerd restarts) and coming back: calls fail
//! with a retryable error and a retry converges. The engine is the real one, reached through a
//! socket relay that the test cuts and restores — from the orchestrator's side exactly what a
//! restart looks like: connections reset, then the socket missing, then back.

mod common;

use std::{path::PathBuf, time::Duration};

use common::{HTTPD, env, wait_for};
use orchestrator::{Ensured, Namespace, Orchestrator};
use tokio::{
    net::{UnixListener, UnixStream},
    task::JoinHandle,
};

struct Relay {
    path: PathBuf,
    task: JoinHandle<()>,
}

fn engine_socket() -> String {
    std::env::var("DOCKER_HOST")
        .unwrap_or_else(|_| "unix:///var/run/docker.sock".to_owned())
        .trim_start_matches("unix://")
        .to_owned()
}

impl Relay {
    fn start(path: PathBuf) -> Self {
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                connections.spawn(async move {
                    if let Ok(mut engine) = UnixStream::connect(engine_socket()).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut engine).await;
                    }
                });
            }
        });
        Self { path, task }
    }

    /// Cuts every connection and removes the socket.
    fn stop(self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_restart_gives_retryable_errors_and_a_retry_converges() {
    let env = env().await;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("engine.sock");
    let relay = Relay::start(socket.clone());
    let address = format!("unix://{}", socket.display());
    let orch = Orchestrator::connect_to(&address, Namespace::clone(env.orch.namespace()))
        .await
        .unwrap();
    let spec = env.site(1, "phoenix", Some(HTTPD));

    // Mid-operation: the engine vanishes.
    relay.stop();
    let err = orch.ensure_service(&spec).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");

    // Back again: retrying the same call converges, however many times it is retried.
    let _relay = Relay::start(socket);
    let outcome = wait_for(Duration::from_secs(10), || async {
        match orch.ensure_service(&spec).await {
            Ok(outcome) => Some(outcome),
            Err(e) if e.is_retryable() => None,
            Err(e) => panic!("not retryable: {e:?}"),
        }
    })
    .await;
    assert_eq!(outcome, Ensured::Created);
    assert_eq!(orch.ensure_service(&spec).await.unwrap(), Ensured::Unchanged);
    wait_for(Duration::from_secs(30), || async {
        (orch.status(spec.id).await.ok()?.running == 1).then_some(())
    })
    .await;
}
