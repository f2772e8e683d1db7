//! Director's database servers on the real engine: made from nothing, answering on their
//! socket, given a new superuser secret, brought back by Swarm when their task dies.

mod common;

use std::time::Duration;

use common::{env, wait_for};
use orchestrator::{
    EndpointMode, Ensured,
    databases::{Engine, ServerSpec},
};

fn spec(env: &common::Env, engine: Engine, password: &str) -> ServerSpec {
    ServerSpec {
        engine,
        directory: env.root.path().join("databases").join(engine.name()),
        superuser_password: password.to_owned(),
        network: env.network.clone(),
        endpoint_mode: EndpointMode::Dnsrr,
        memory_bytes: 512 << 20,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn both_servers_start_answer_on_their_socket_and_take_a_new_superuser_secret() {
    let env = env().await;
    for engine in Engine::ALL {
        let first = spec(&env, *engine, &"a1".repeat(16));
        assert_eq!(
            env.orch.ensure_database_server(&first).await.unwrap(),
            Ensured::Created
        );
        assert_eq!(
            env.orch.ensure_database_server(&first).await.unwrap(),
            Ensured::Unchanged
        );
        wait_for(Duration::from_secs(180), || async {
            env.orch.database_socket_ready(&first).await.then_some(())
        })
        .await;
        let status = env.orch.database_server_status(*engine).await.unwrap();
        assert!(status.exists && status.running, "{engine}: {status:?}");
        // Its data is the server's own: a directory only its user may enter.
        let meta = std::fs::metadata(first.data_dir()).unwrap();
        assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), engine.uid());

        let second = spec(&env, *engine, &"b2".repeat(16));
        assert_eq!(
            env.orch.ensure_database_server(&second).await.unwrap(),
            Ensured::Updated
        );
        // The old secret goes once no service uses it (at this ensure or a later one).
        wait_for(Duration::from_secs(60), || async {
            env.orch.ensure_database_server(&second).await.unwrap();
            let left = env.orch.leftovers().await.unwrap();
            let secrets = left
                .iter()
                .filter(|n| n.contains(&format!("{engine}_superuser")))
                .count();
            (secrets == 1).then_some(())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_passwords_and_linked_directories_are_refused_before_the_engine() {
    let env = env().await;
    let short = spec(&env, Engine::Postgres, "short");
    assert!(env.orch.ensure_database_server(&short).await.is_err());
    let quoted = spec(&env, Engine::Mariadb, &format!("{}'", "a".repeat(20)));
    assert!(env.orch.ensure_database_server(&quoted).await.is_err());
    let linked = spec(&env, Engine::Postgres, &"c3".repeat(16));
    std::fs::create_dir_all(&linked.directory).unwrap();
    std::os::unix::fs::symlink("/etc", linked.directory.join("server")).unwrap();
    assert!(env.orch.ensure_database_server(&linked).await.is_err());
    assert!(
        env.orch
            .leftovers()
            .await
            .unwrap()
            .iter()
            .all(|n| !n.contains("director_"))
    );
}
