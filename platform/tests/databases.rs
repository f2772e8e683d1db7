//! Sites' databases end to end: made on Director's real PostgreSQL and MariaDB servers (Swarm
//! services of the test's own namespace), reached by the site over its network with the
//! variables it is given, walled off from every other site, rotated, deleted, and dropped with
//! their site.

mod common;

use std::time::Duration;

use common::*;
use model::database::{ServerState, Value};
use mysql_async::prelude::Queryable as _;
use platform::{
    Actor, Error, Role,
    sites::{Connection, DatabaseKind, DatabaseState, ShellRequest, Site},
};

/// Runs the queued operations to their end; each must succeed.
async fn run_operations(w: &World) {
    while w.db.platform.run_next_operation(&w.runtime).await.unwrap() {}
    let failed = platform::testing::failed_operations(&w.db.platform).await;
    assert!(failed.is_empty(), "failed operations: {failed:#?}");
}

/// The site's database of `kind`, made: its operation run.
async fn add(w: &World, who: &Actor, site: &Site, kind: DatabaseKind) -> Connection {
    w.db.platform
        .add_database(Some(who), site.id, kind)
        .await
        .unwrap();
    run_operations(w).await;
    let databases = w.db.platform.databases(Some(who), site.id).await.unwrap();
    let made = databases.iter().find(|d| d.kind == kind).unwrap();
    assert_eq!(made.state, DatabaseState::Ready, "{made:?}");
    w.db.platform
        .reveal_database(Some(who), site.id, kind)
        .await
        .unwrap()
}

/// A static site of `who`'s with a PostgreSQL database in which its role ran `sql`.
async fn site_with_postgres(w: &World, who: &Actor, name: &str, sql: &str) -> (Site, Connection) {
    let site = made_site(w, who, name, "static").await;
    let db = add(w, who, &site, DatabaseKind::Postgresql).await;
    postgres(w, &db.name, db.password(), &db.name)
        .await
        .unwrap()
        .batch_execute(sql)
        .await
        .unwrap();
    (site, db)
}

/// Runs `input` through the site's database shell (no terminal: the client reads it as a
/// script); returns what it wrote.
async fn database_shell(w: &World, who: &Actor, site: i32, kind: DatabaseKind, input: &str) -> String {
    use tokio::io::AsyncWriteExt as _;
    let request = ShellRequest {
        database: Some(kind),
        ..ShellRequest::default()
    };
    let (_, mut session) = w.db.platform.open_shell(Some(who), site, request).await.unwrap();
    session.input.write_all(input.as_bytes()).await.unwrap();
    session.input.shutdown().await.unwrap();
    said(&mut session).await
}

/// Runs `script` with `sh -c` in the container `container`; returns what it wrote.
async fn exec(w: &World, container: &str, script: &str) -> String {
    let request = orchestrator::ExecRequest {
        cmd: vec!["/bin/sh".into(), "-c".into(), script.into()],
        tty: false,
        ..orchestrator::ExecRequest::default()
    };
    let mut session = w.runtime.orchestrator.exec(container, request).await.unwrap();
    said(&mut session).await
}

fn socket_dir(w: &World, kind: DatabaseKind) -> std::path::PathBuf {
    let engine = match kind {
        DatabaseKind::Postgresql => "postgres",
        DatabaseKind::Mysql => "mariadb",
    };
    w._dir.path().join("databases").join(engine).join("socket")
}

/// Connects on the server's socket as `user` to `database`, as the SQL console does.
async fn postgres(
    w: &World,
    user: &str,
    password: &str,
    database: &str,
) -> Result<tokio_postgres::Client, String> {
    let (client, connection) = tokio_postgres::Config::new()
        .host_path(socket_dir(w, DatabaseKind::Postgresql))
        .port(5432)
        .user(user)
        .password(password)
        .dbname(database)
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| {
            e.as_db_error()
                .map_or_else(|| e.to_string(), |d| d.message().to_owned())
        })?;
    tokio::spawn(connection);
    Ok(client)
}

async fn mysql(
    w: &World,
    user: &str,
    password: &str,
    database: Option<&str>,
) -> Result<mysql_async::Conn, String> {
    let socket = socket_dir(w, DatabaseKind::Mysql).join("mysqld.sock");
    let opts = mysql_async::OptsBuilder::default()
        .socket(Some(socket.to_string_lossy().into_owned()))
        .prefer_socket(true)
        .user(Some(user))
        .pass(Some(password))
        .db_name(database);
    mysql_async::Conn::new(opts).await.map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_database_is_its_sites_alone_rotated_deleted_and_dropped_with_its_site() {
    let w = world().await;
    let alice = user(&w.db, "alice", Role::User).await;
    let bob = user(&w.db, "bob", Role::User).await;
    let blog = made_site(&w, &alice, "my-blog", "dynamic").await;
    let shop = made_site(&w, &bob, "shop", "dynamic").await;
    let mine = add(&w, &alice, &blog, DatabaseKind::Postgresql).await;
    let theirs = add(&w, &bob, &shop, DatabaseKind::Postgresql).await;
    assert_eq!(mine.name, "site_my-blog");
    assert!(
        mine.url(false)
            .starts_with("postgresql://site_my-blog@postgres.director:5432/site_my-blog")
    );

    // The site's role owns its database: it makes a table and a row there.
    let client = postgres(&w, &mine.name, mine.password(), &mine.name)
        .await
        .unwrap();
    client
        .batch_execute("CREATE TABLE notes (body text); INSERT INTO notes VALUES ('hello')")
        .await
        .unwrap();
    // It may not make roles or databases, nor become the superuser, nor read the server's files.
    for refused in [
        "CREATE ROLE intruder",
        "CREATE DATABASE other",
        "SET ROLE postgres",
        "SELECT pg_read_file('/etc/passwd')",
        "COPY notes TO PROGRAM 'id'",
    ] {
        assert!(
            client.batch_execute(refused).await.is_err(),
            "{refused} was allowed"
        );
    }
    // Another site's role cannot connect to it, and this one cannot connect to the other's.
    let error = postgres(&w, &theirs.name, theirs.password(), &mine.name)
        .await
        .err()
        .unwrap();
    assert!(
        error.contains("no pg_hba.conf entry") || error.contains("permission denied"),
        "{error}"
    );
    assert!(
        postgres(&w, &mine.name, mine.password(), &theirs.name)
            .await
            .is_err()
    );
    assert!(
        postgres(&w, &mine.name, mine.password(), "postgres")
            .await
            .is_err()
    );

    // The database shell: psql in Director's client image, connected over the sites' network
    // as the site's role.
    let said = database_shell(
        &w,
        &alice,
        blog.id,
        DatabaseKind::Postgresql,
        "SELECT current_user, count(*) FROM notes;\n",
    )
    .await;
    assert!(said.contains("site_my-blog |     1"), "{said}");
    // Over that network the superuser is refused, even with its password.
    let superuser = std::fs::read_to_string(w._dir.path().join("databases/postgres/superuser")).unwrap();
    let container = w
        .runtime
        .orchestrator
        .namespace()
        .database_shell(orchestrator::SiteId(blog.id as u32));
    let said = exec(
        &w,
        &container,
        &format!(
            "PGPASSWORD={} psql -h postgres.director -U postgres -d postgres -c 'SELECT 1' 2>&1",
            superuser.trim()
        ),
    )
    .await;
    assert!(said.contains("rejects connection"), "{said}");

    // The site's terminal has the variables.
    let env = run_in_terminal(
        &w,
        &alice,
        blog.id,
        "echo \"$DATABASE_URL|$PGHOST|$PGUSER|$PGDATABASE\"",
    )
    .await;
    assert_eq!(
        env.trim(),
        format!("{}|postgres.director|site_my-blog|site_my-blog", mine.url(true))
    );

    // A new password: the old one stops working; the site gets the new one.
    w.db.platform
        .rotate_database_password(Some(&alice), blog.id, DatabaseKind::Postgresql)
        .await
        .unwrap();
    run_operations(&w).await;
    let rotated =
        w.db.platform
            .reveal_database(Some(&alice), blog.id, DatabaseKind::Postgresql)
            .await
            .unwrap();
    assert_ne!(rotated.password(), mine.password());
    assert!(
        postgres(&w, &mine.name, mine.password(), &mine.name)
            .await
            .is_err()
    );
    let client = postgres(&w, &rotated.name, rotated.password(), &rotated.name)
        .await
        .unwrap();
    let rows = client.query("SELECT body FROM notes", &[]).await.unwrap();
    assert_eq!(rows[0].get::<_, String>(0), "hello", "rotating keeps the data");
    let env = run_in_terminal(&w, &alice, blog.id, "echo \"$PGPASSWORD\"").await;
    assert_eq!(env.trim(), rotated.password());
    drop(client);

    // Another member may not see it (a site they do not manage is not found), nor add one.
    assert!(matches!(
        w.db.platform.databases(Some(&bob), blog.id).await,
        Err(Error::NotFound("site"))
    ));
    assert!(matches!(
        w.db.platform
            .reveal_database(Some(&bob), blog.id, DatabaseKind::Postgresql)
            .await,
        Err(Error::NotFound("site"))
    ));
    // A second PostgreSQL database for the site is refused with the reason.
    let again =
        w.db.platform
            .add_database(Some(&alice), blog.id, DatabaseKind::Postgresql)
            .await;
    assert!(
        matches!(again, Err(Error::Conflict(ref m)) if m.contains("already")),
        "{again:?}"
    );

    // Deleting needs its name typed; then the database and the role are gone.
    let wrong =
        w.db.platform
            .delete_database(Some(&alice), blog.id, DatabaseKind::Postgresql, "blog")
            .await;
    assert!(matches!(wrong, Err(Error::Invalid { .. })), "{wrong:?}");
    w.db.platform
        .delete_database(Some(&alice), blog.id, DatabaseKind::Postgresql, "site_my-blog")
        .await
        .unwrap();
    run_operations(&w).await;
    assert!(
        w.db.platform
            .databases(Some(&alice), blog.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        postgres(&w, &rotated.name, rotated.password(), &rotated.name)
            .await
            .is_err()
    );
    let env = run_in_terminal(&w, &alice, blog.id, "echo \"[$DATABASE_URL]\"").await;
    assert_eq!(env.trim(), "[]", "the variables went with it");

    // Deleting a site drops its database and role.
    w.db.platform
        .delete_site(Some(&bob), shop.id, "shop")
        .await
        .unwrap();
    run_operations(&w).await;
    let error = postgres(&w, &theirs.name, theirs.password(), &theirs.name)
        .await
        .err()
        .unwrap();
    assert!(
        error.contains("password authentication failed") || error.contains("does not exist"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mysql_database_is_its_sites_alone_and_a_lookalike_name_gets_nothing() {
    let w = world().await;
    let alice = user(&w.db, "alice", Role::User).await;
    let bob = user(&w.db, "bob", Role::User).await;
    // `_` is a wildcard in MySQL's grants: site_a-b must not get rights on another site whose
    // name differs only where the grant's `_` is.
    let first = made_site(&w, &alice, "a-b", "static").await;
    let second = made_site(&w, &bob, "a-c", "static").await;
    let mine = add(&w, &alice, &first, DatabaseKind::Mysql).await;
    let theirs = add(&w, &bob, &second, DatabaseKind::Mysql).await;
    assert!(
        mine.url(false)
            .starts_with("mysql://site_a-b@mysql.director:3306/site_a-b")
    );

    let mut conn = mysql(&w, &mine.name, mine.password(), Some(&mine.name))
        .await
        .unwrap();
    conn.query_drop("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('hello')")
        .await
        .unwrap();
    for refused in [
        "CREATE USER intruder",
        "CREATE DATABASE other",
        "SELECT * FROM mysql.user",
        "LOAD DATA INFILE '/etc/passwd' INTO TABLE notes",
        "GRANT ALL ON *.* TO CURRENT_USER",
    ] {
        let result: Result<Vec<mysql_async::Row>, _> = conn.query(refused).await;
        assert!(result.is_err(), "{refused} was allowed");
    }
    let file: Vec<Option<String>> = conn.query("SELECT LOAD_FILE('/etc/passwd')").await.unwrap();
    assert_eq!(file, [None], "read a file of the server's");
    let other: Result<Vec<String>, _> = conn
        .query(format!("SELECT body FROM `{}`.notes", theirs.name))
        .await;
    assert!(other.is_err(), "read another site's database");
    drop(conn);
    assert!(
        mysql(&w, &theirs.name, theirs.password(), Some(&mine.name))
            .await
            .is_err()
    );
    assert!(mysql(&w, "root", mine.password(), None).await.is_err());

    let said = database_shell(
        &w,
        &alice,
        first.id,
        DatabaseKind::Mysql,
        "SELECT CURRENT_USER(), COUNT(*) FROM notes;\n",
    )
    .await;
    assert!(said.contains("site_a-b@%\t1"), "{said}");
    // No shell on a database the site does not have.
    let none = w.db.platform.open_shell(
        Some(&alice),
        first.id,
        ShellRequest {
            database: Some(DatabaseKind::Postgresql),
            ..ShellRequest::default()
        },
    );
    assert!(matches!(none.await, Err(Error::NotFound("database"))));

    // The static site's terminal has the MySQL variables, DATABASE_URL among them.
    let env = run_in_terminal(
        &w,
        &alice,
        first.id,
        "echo \"$DATABASE_URL|$MYSQL_HOST|$MYSQL_DATABASE\"",
    )
    .await;
    assert_eq!(env.trim(), format!("{}|mysql.director|site_a-b", mine.url(true)));

    w.db.platform
        .rotate_database_password(Some(&alice), first.id, DatabaseKind::Mysql)
        .await
        .unwrap();
    run_operations(&w).await;
    assert!(
        mysql(&w, &mine.name, mine.password(), Some(&mine.name))
            .await
            .is_err()
    );
    let rotated =
        w.db.platform
            .reveal_database(Some(&alice), first.id, DatabaseKind::Mysql)
            .await
            .unwrap();
    let mut conn = mysql(&w, &rotated.name, rotated.password(), Some(&rotated.name))
        .await
        .unwrap();
    let rows: Vec<String> = conn.query("SELECT body FROM notes").await.unwrap();
    assert_eq!(rows, ["hello"]);
    drop(conn);

    w.db.platform
        .delete_database(Some(&alice), first.id, DatabaseKind::Mysql, "site_a-b")
        .await
        .unwrap();
    run_operations(&w).await;
    assert!(mysql(&w, &rotated.name, rotated.password(), None).await.is_err());
    // The other site's database is untouched.
    let mut conn = mysql(&w, &theirs.name, theirs.password(), Some(&theirs.name))
        .await
        .unwrap();
    conn.query_drop("SELECT 1").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_server_whose_task_dies_comes_back_with_its_data() {
    let w = world().await;
    let alice = user(&w.db, "alice", Role::User).await;
    let (site, db) = site_with_postgres(
        &w,
        &alice,
        "keeper",
        "CREATE TABLE t (n int); INSERT INTO t VALUES (42)",
    )
    .await;
    // The server's service is removed (as by an operator's mistake): the reconciler starts it
    // again, on the same data.
    let engine = orchestrator::databases::Engine::Postgres;
    w.runtime
        .orchestrator
        .remove_database_server(engine)
        .await
        .unwrap();
    let corrections = w.db.platform.reconcile(&w.runtime).await.unwrap();
    assert!(
        corrections
            .iter()
            .any(|c| c.what.contains("PostgreSQL server was missing")),
        "{corrections:?}"
    );
    let mut back = None;
    for _ in 0..240 {
        if let Ok(client) = postgres(&w, &db.name, db.password(), &db.name).await {
            back = Some(client);
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let n: i32 = back
        .expect("the server came back")
        .query_one("SELECT n FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 42);
    // Its task killed: Swarm starts another; an operation that needs it waits for it.
    let status = w
        .runtime
        .orchestrator
        .database_server_status(engine)
        .await
        .unwrap();
    assert!(status.exists);
    w.db.platform
        .rotate_database_password(Some(&alice), site.id, DatabaseKind::Postgresql)
        .await
        .unwrap();
    run_operations(&w).await;
    let db =
        w.db.platform
            .reveal_database(Some(&alice), site.id, DatabaseKind::Postgresql)
            .await
            .unwrap();
    let client = postgres(&w, &db.name, db.password(), &db.name).await.unwrap();
    let n: i32 = client.query_one("SELECT n FROM t", &[]).await.unwrap().get(0);
    assert_eq!(n, 42);
}

fn text(value: &Value) -> &str {
    match value {
        Value::Text { text, .. } => text,
        Value::Null => "NULL",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sql_console_runs_as_the_sites_role_with_a_timeout_a_row_cap_and_the_servers_errors() {
    let w = world().await;
    let alice = user(&w.db, "alice", Role::User).await;
    let bob = user(&w.db, "bob", Role::User).await;
    let site = made_site(&w, &alice, "console", "static").await;
    add(&w, &alice, &site, DatabaseKind::Postgresql).await;
    add(&w, &alice, &site, DatabaseKind::Mysql).await;
    let run = |kind, sql: &'static str| {
        let platform = w.db.platform.clone();
        let alice = alice.clone();
        async move { platform.run_sql(Some(&alice), site.id, kind, sql).await.unwrap() }
    };

    // PostgreSQL: several statements, one result each; NULL and binary as such.
    let out = run(
        DatabaseKind::Postgresql,
        "CREATE TABLE t (n int, b bytea, s text); INSERT INTO t VALUES (1, '\\x00ff', NULL), (2, NULL, 'two'); SELECT * FROM t ORDER BY n; SELECT current_user",
    )
    .await;
    assert!(out.error.is_none(), "{out:?}");
    assert_eq!(out.results.len(), 4);
    assert_eq!(out.results[1].affected, 2);
    let rows = &out.results[2].rows;
    assert_eq!(out.results[2].columns, ["n", "b", "s"]);
    assert_eq!(
        rows.iter()
            .map(|r| r.iter().map(text).collect::<Vec<_>>())
            .collect::<Vec<_>>(),
        [["1", "\\x00ff", "NULL"], ["2", "NULL", "two"]]
    );
    assert_eq!(text(&out.results[3].rows[0][0]), "site_console");
    // A million rows: the first thousand, and how many more.
    let out = run(
        DatabaseKind::Postgresql,
        "SELECT g FROM generate_series(1, 1000000) g",
    )
    .await;
    assert_eq!(out.results[0].rows.len(), model::database::CONSOLE_ROWS);
    assert_eq!(out.results[0].more_rows, 1_000_000 - 1000);
    // A syntax error: the server's message and where it points.
    let out = run(DatabaseKind::Postgresql, "SELECT 1;\nSELEC 2").await;
    let error = out.error.unwrap();
    assert!(error.message.contains("syntax error"), "{error:?}");
    assert_eq!((error.position, error.at), (Some(11), Some((2, 1))));
    // What would escalate is refused by the server, and shown as it said it.
    for escalation in [
        "SET ROLE postgres",
        "SELECT pg_read_file('/etc/passwd')",
        "COPY t TO PROGRAM 'id'",
        "CREATE ROLE x SUPERUSER",
        "ALTER ROLE site_console SUPERUSER",
    ] {
        let out = run(DatabaseKind::Postgresql, escalation).await;
        let error = out.error.unwrap_or_else(|| panic!("{escalation} was allowed"));
        assert!(
            error.message.contains("permission denied") || error.message.contains("must be"),
            "{escalation}: {error:?}"
        );
    }
    // A statement that loops is stopped at the limit, also when it lifts the limit itself.
    let started = std::time::Instant::now();
    let out = run(
        DatabaseKind::Postgresql,
        "SET statement_timeout = 0; SELECT pg_sleep(60)",
    )
    .await;
    assert!(out.error.unwrap().message.contains("canceled"));
    assert!(started.elapsed() < Duration::from_secs(20));

    // MySQL: the same, in its words.
    let out = run(
        DatabaseKind::Mysql,
        "CREATE TABLE t (n INT, b VARBINARY(4), s TEXT); INSERT INTO t VALUES (1, 0x00ff, NULL), (2, NULL, 'two'); SELECT * FROM t ORDER BY n",
    )
    .await;
    assert!(out.error.is_none(), "{out:?}");
    assert_eq!(out.results.len(), 3);
    assert_eq!(out.results[1].affected, 2);
    assert_eq!(
        out.results[2]
            .rows
            .iter()
            .map(|r| r.iter().map(text).collect::<Vec<_>>())
            .collect::<Vec<_>>(),
        [["1", "\\x00ff", "NULL"], ["2", "NULL", "two"]]
    );
    let out = run(
        DatabaseKind::Mysql,
        "SELECT * FROM information_schema.columns a, information_schema.columns b LIMIT 5000",
    )
    .await;
    assert_eq!(out.results[0].rows.len(), 1000);
    assert_eq!(out.results[0].more_rows, 4000);
    for escalation in [
        "LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE t",
        "SELECT * FROM mysql.user",
        "SET PASSWORD FOR root@localhost = PASSWORD('x')",
    ] {
        let out = run(DatabaseKind::Mysql, escalation).await;
        assert!(out.error.is_some(), "{escalation} was allowed");
    }
    let started = std::time::Instant::now();
    let out = run(
        DatabaseKind::Mysql,
        "SET SESSION max_statement_time = 0; SELECT SLEEP(60)",
    )
    .await;
    assert!(out.error.is_some_and(|e| e.message.contains("canceled")));
    assert!(started.elapsed() < Duration::from_secs(20));

    // Each member's history is theirs, newest first; another member cannot run anything.
    let history = w.db.platform.sql_history(Some(&alice), site.id).await.unwrap();
    assert_eq!(
        history[0].1,
        "SET SESSION max_statement_time = 0; SELECT SLEEP(60)"
    );
    assert!(matches!(
        w.db.platform
            .run_sql(Some(&bob), site.id, DatabaseKind::Postgresql, "SELECT 1")
            .await,
        Err(Error::NotFound("site"))
    ));
    assert!(matches!(
        w.db.platform
            .run_sql(Some(&alice), site.id, DatabaseKind::Postgresql, "  ")
            .await,
        Err(Error::Invalid { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_keeps_within_its_budget_and_ends_what_it_cannot_stop() {
    let w = world().await;
    let alice = user(&w.db, "alice", Role::User).await;
    let site = made_site(&w, &alice, "budget", "static").await;
    add(&w, &alice, &site, DatabaseKind::Postgresql).await;
    let run = |sql: String| {
        let platform = w.db.platform.clone();
        let alice = alice.clone();
        async move {
            platform
                .run_sql(Some(&alice), site.id, DatabaseKind::Postgresql, &sql)
                .await
                .unwrap()
        }
    };
    // 5,000 rows of three values of 5,000 characters: each cut at 4,096, and the run kept
    // within 8 MiB (fewer than the 1,000 rows a statement may show).
    let out = run(
        "SELECT repeat('x', 5000), repeat('y', 5000), repeat('z', 5000) FROM generate_series(1, 5000)"
            .to_owned(),
    )
    .await;
    let kept = out.results[0].rows.len();
    assert!(
        out.truncated && kept < 1000 && kept as u64 + out.results[0].more_rows == 5000,
        "{kept}"
    );
    assert!(serde_json::to_vec(&out).unwrap().len() < 9 << 20);
    // 300 columns: the first 200.
    let columns: Vec<String> = (1..=300).map(|i| format!("{i} AS c{i}")).collect();
    let out = run(format!("SELECT {}", columns.join(", "))).await;
    assert_eq!(
        (out.results[0].columns.len(), out.results[0].rows[0].len()),
        (200, 200)
    );
    assert!(out.truncated);
    // 150 statements: 100 results, then the run is stopped.
    let out = run("SELECT 1;".repeat(150)).await;
    assert_eq!(out.results.len(), 100);
    assert!(out.error.unwrap().message.contains("at most 100"));

    // What the cancel cannot stop is ended: a COPY the console does not speak, and a loop that
    // traps the cancel after lifting the limit.
    let started = std::time::Instant::now();
    let out = run("COPY (SELECT generate_series(1, 1000000000)) TO STDOUT".to_owned()).await;
    assert!(out.error.unwrap().message.contains("COPY"));
    let out = run(
        "SET statement_timeout = 0; DO $$BEGIN LOOP BEGIN PERFORM pg_sleep(0.1); \
         EXCEPTION WHEN query_canceled THEN NULL; END; END LOOP; END$$"
            .to_owned(),
    )
    .await;
    assert!(out.error.unwrap().message.contains("canceled"));
    assert!(started.elapsed() < Duration::from_secs(30));
    let left = run(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'director console' \
         AND pid <> pg_backend_pid()"
            .to_owned(),
    )
    .await;
    assert_eq!(text(&left.results[0].rows[0][0]), "0", "sessions left running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_site_keeps_a_hold_on_another_sites_role() {
    let w = world().await;
    let alice = user(&w.db, "alice", Role::User).await;
    let mallory = user(&w.db, "mallory", Role::User).await;
    let target = made_site(&w, &alice, "target", "static").await;
    let theirs = made_site(&w, &mallory, "theirs", "static").await;
    let a = add(&w, &alice, &target, DatabaseKind::Postgresql).await;
    let b = add(&w, &mallory, &theirs, DatabaseKind::Postgresql).await;
    // A role cannot grant itself to another site's role (PostgreSQL 15 allowed that to a
    // role's own session before its later releases: the server refuses it here).
    w.db.platform
        .add_member(Some(&alice), target.id, "mallory")
        .await
        .unwrap();
    let grant = "GRANT \"site_target\" TO \"site_theirs\"";
    let out =
        w.db.platform
            .run_sql(Some(&mallory), target.id, DatabaseKind::Postgresql, grant)
            .await
            .unwrap();
    assert!(
        out.error.is_some_and(|e| e.code == "42501"),
        "the grant was allowed"
    );
    // A membership made anyway (by hand, as the superuser) is revoked by the reconciler's next
    // pass, and by a rotation: her role cannot become the target's.
    let superuser = std::fs::read_to_string(w._dir.path().join("databases/postgres/superuser")).unwrap();
    let admin = postgres(&w, "postgres", superuser.trim(), "postgres")
        .await
        .unwrap();
    admin.batch_execute(grant).await.unwrap();
    let corrections = w.db.platform.reconcile(&w.runtime).await.unwrap();
    assert!(
        corrections
            .iter()
            .any(|c| c.what.contains("revoked 1 membership")),
        "{corrections:?}"
    );
    let mine = postgres(&w, &b.name, b.password(), &b.name).await.unwrap();
    assert!(mine.batch_execute("SET ROLE \"site_target\"").await.is_err());
    admin.batch_execute(grant).await.unwrap();
    w.db.platform
        .rotate_database_password(Some(&alice), target.id, DatabaseKind::Postgresql)
        .await
        .unwrap();
    // Until the rotation has run, the old password is the one shown, and it works.
    let shown =
        w.db.platform
            .reveal_database(Some(&alice), target.id, DatabaseKind::Postgresql)
            .await
            .unwrap();
    assert_eq!(shown.password(), a.password());
    assert!(postgres(&w, &a.name, a.password(), &a.name).await.is_ok());
    run_operations(&w).await;
    let mine = postgres(&w, &b.name, b.password(), &b.name).await.unwrap();
    assert!(mine.batch_execute("SET ROLE \"site_target\"").await.is_err());
    // Her site grants the target's role something of its own, and its database to connect to:
    // that does not keep the target's database, nor the site, from being deleted.
    mine.batch_execute("CREATE TABLE bait (n int); GRANT SELECT ON bait TO \"site_target\"; GRANT CONNECT ON DATABASE \"site_theirs\" TO \"site_target\"")
        .await
        .unwrap();
    // Her grant does not keep the target's database, nor the site, from being deleted.
    w.db.platform
        .delete_site(Some(&alice), target.id, "target")
        .await
        .unwrap();
    run_operations(&w).await;
    assert!(postgres(&w, &a.name, a.password(), &a.name).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_sees_each_server_and_its_sites_and_gives_the_superuser_a_new_password() {
    let w = world().await;
    let alice = user(&w.db, "alice", Role::User).await;
    let admin = user(&w.db, "root-ish", Role::Admin).await;
    let (site, db) = site_with_postgres(
        &w,
        &alice,
        "sizable",
        "CREATE TABLE t AS SELECT repeat('x', 1000) AS filler FROM generate_series(1, 2000)",
    )
    .await;

    // Only administrators see the servers or act on them.
    for refused in [
        w.db.platform.database_servers(Some(&alice)).await.map(|_| ()),
        w.db.platform
            .restart_database_server(Some(&alice), DatabaseKind::Postgresql)
            .await,
        w.db.platform
            .rotate_database_superuser(Some(&alice), DatabaseKind::Postgresql)
            .await,
    ] {
        assert!(matches!(refused, Err(Error::Forbidden)), "{refused:?}");
    }

    let servers = w.db.platform.database_servers(Some(&admin)).await.unwrap();
    let [postgres_server, mariadb] = servers.as_slice() else {
        panic!("{servers:?}")
    };
    assert_eq!(postgres_server.kind, DatabaseKind::Postgresql);
    assert_eq!(postgres_server.state, ServerState::Up);
    let facts = postgres_server.facts.as_ref().unwrap();
    assert!(facts.version.starts_with("15."), "{facts:?}");
    assert!(facts.data_bytes > 2_000_000, "{facts:?}");
    let [sizable] = postgres_server.databases.as_slice() else {
        panic!("{postgres_server:?}")
    };
    assert_eq!(
        (sizable.site.as_str(), sizable.state),
        ("sizable", DatabaseState::Ready)
    );
    assert!(sizable.size_bytes.unwrap() > 2_000_000, "{sizable:?}");
    // No site has a MariaDB database here: its server was never started, and cannot be
    // restarted.
    assert_eq!(
        (mariadb.state.clone(), mariadb.databases.len()),
        (ServerState::NotStarted, 0)
    );
    let never =
        w.db.platform
            .restart_database_server(Some(&admin), DatabaseKind::Mysql)
            .await;
    assert!(matches!(never, Err(Error::Conflict(_))), "{never:?}");

    // A new superuser password: the old one stops working, the site's role keeps its own,
    // and Director's own work on the server goes on with the new one.
    let file = w
        .runtime
        .databases
        .as_ref()
        .unwrap()
        .dir
        .join("postgres/superuser");
    let old = std::fs::read_to_string(&file).unwrap();
    w.db.platform
        .rotate_database_superuser(Some(&admin), DatabaseKind::Postgresql)
        .await
        .unwrap();
    let new = std::fs::read_to_string(&file).unwrap();
    assert_ne!(old, new);
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions()) & 0o777,
        0o600
    );
    let mut answered = None;
    for _ in 0..240 {
        if let Ok(client) = postgres(&w, "postgres", &new, "postgres").await {
            answered = Some(client);
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    answered.expect("the server takes the new password");
    let refused = postgres(&w, "postgres", &old, "postgres").await;
    assert!(refused.is_err(), "the old superuser password still works");
    let client = postgres(&w, &db.name, db.password(), &db.name).await.unwrap();
    let rows: i64 = client
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 2000);
    w.db.platform
        .rotate_database_password(Some(&alice), site.id, DatabaseKind::Postgresql)
        .await
        .unwrap();
    run_operations(&w).await;

    // A restart: the server comes back up with its data.
    w.db.platform
        .restart_database_server(Some(&admin), DatabaseKind::Postgresql)
        .await
        .unwrap();
    let mut state = ServerState::Unknown;
    for _ in 0..240 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        state = w.db.platform.database_servers(Some(&admin)).await.unwrap()[0]
            .state
            .clone();
        if state == ServerState::Up {
            break;
        }
    }
    assert_eq!(state, ServerState::Up);
    let audit = w.db.platform.audit_entries(Some(&admin), None, 50).await.unwrap();
    for action in ["database-server.rotate", "database-server.restart"] {
        assert!(
            audit.iter().any(|e| e.action == action && e.actor == "root-ish"),
            "{action}: {audit:?}"
        );
    }
}

/// A database server of the operator's own, not Director's: a container on the host's network
/// listening on the sites' gateway address (which this machine and the sites' containers both
/// reach), with an administrator `admin` of its own. Removed when dropped.
struct OperatorsServer {
    kind: DatabaseKind,
    container: String,
    host: String,
    port: u16,
}

const OPERATORS_PASSWORD: &str = "operator password";

impl OperatorsServer {
    async fn start(kind: DatabaseKind) -> Self {
        use orchestrator::base_images::BaseImage;
        // The server's image is Director's own (Debian's server): made here when missing.
        let orch = orchestrator::Orchestrator::connect(
            orchestrator::Namespace::prefixed(&format!("x{:08x}", rand_u32())).unwrap(),
        )
        .await
        .unwrap();
        let (image, uid) = match kind {
            DatabaseKind::Postgresql => (BaseImage::Postgres, "60432"),
            DatabaseKind::Mysql => (BaseImage::Mariadb, "60433"),
        };
        orch.base_images()
            .ensure(&orch, image, &mut |_| {})
            .await
            .unwrap();
        let docker = |args: &[&str]| {
            let out = std::process::Command::new("docker").args(args).output().unwrap();
            assert!(
                out.status.success(),
                "docker {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        };
        let host = docker(&[
            "network",
            "inspect",
            "docker_gwbridge",
            "--format",
            "{{(index .IPAM.Config 0).Gateway}}",
        ]);
        let port = platform::testing::free_port();
        let script = match kind {
            DatabaseKind::Postgresql => format!(
                "set -e; export PGDATA=/tmp/data; echo '{OPERATORS_PASSWORD}' > /tmp/pw; \
                 initdb --username=admin --auth=scram-sha-256 --pwfile=/tmp/pw >/dev/null; \
                 printf 'local all all scram-sha-256\nhost all all all scram-sha-256\n' > $PGDATA/pg_hba.conf; \
                 exec postgres -c listen_addresses={host} -p {port} -c unix_socket_directories=/tmp"
            ),
            DatabaseKind::Mysql => format!(
                "set -e; mariadb-install-db --no-defaults --datadir=/tmp/data --skip-test-db \
                 --auth-root-authentication-method=normal --skip-name-resolve >/dev/null; \
                 printf '%s\\n' \"CREATE USER 'admin'@'%' IDENTIFIED BY '{OPERATORS_PASSWORD}';\" \
                 \"GRANT ALL ON *.* TO 'admin'@'%' WITH GRANT OPTION;\" > /tmp/init.sql; \
                 exec mariadbd --no-defaults --datadir=/tmp/data --socket=/tmp/m.sock --bind-address={host} \
                 --port={port} --skip-name-resolve --init-file=/tmp/init.sql --pid-file=/tmp/m.pid"
            ),
        };
        let container = format!("director-test-operators-{kind}-{:08x}", rand_u32());
        docker(&[
            "run",
            "-d",
            "--name",
            &container,
            "--network",
            "host",
            "--user",
            uid,
            "--entrypoint",
            "sh",
            &orch.base_images().reference(image),
            "-c",
            &script,
        ]);
        let server = Self {
            kind,
            container,
            host,
            port,
        };
        for _ in 0..240 {
            if server.connect("admin", OPERATORS_PASSWORD, None).await.is_ok() {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("the operator's {kind} server did not start");
    }

    fn url(&self) -> String {
        let scheme = match self.kind {
            DatabaseKind::Postgresql => "postgresql",
            DatabaseKind::Mysql => "mysql",
        };
        format!("{scheme}://admin:operator%20password@{}:{}", self.host, self.port)
    }

    /// Connects over TCP as `user` (to `database`, or the server's own) and runs `query`, which
    /// gives one number.
    async fn ask(
        &self,
        user: &str,
        password: &str,
        database: Option<&str>,
        query: &str,
    ) -> Result<i64, String> {
        match self.kind {
            DatabaseKind::Postgresql => {
                let (client, connection) = tokio_postgres::Config::new()
                    .host(&self.host)
                    .port(self.port)
                    .user(user)
                    .password(password)
                    .dbname(database.unwrap_or("postgres"))
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::spawn(connection);
                let row = client.query_one(query, &[]).await.map_err(|e| e.to_string())?;
                Ok(row.get(0))
            }
            DatabaseKind::Mysql => {
                let opts = mysql_async::OptsBuilder::default()
                    .ip_or_hostname(self.host.clone())
                    .tcp_port(self.port)
                    .prefer_socket(false)
                    .user(Some(user))
                    .pass(Some(password))
                    .db_name(database);
                let mut conn = mysql_async::Conn::new(opts).await.map_err(|e| e.to_string())?;
                let number: Option<i64> = conn.query_first(query).await.map_err(|e| e.to_string())?;
                Ok(number.unwrap_or_default())
            }
        }
    }

    /// Runs each of `statements` as the server's administrator.
    async fn run_as_admin(&self, statements: &[&str]) {
        match self.kind {
            DatabaseKind::Postgresql => {
                let (client, connection) = tokio_postgres::Config::new()
                    .host(&self.host)
                    .port(self.port)
                    .user("admin")
                    .password(OPERATORS_PASSWORD)
                    .dbname("postgres")
                    .connect(tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(connection);
                for statement in statements {
                    client.batch_execute(statement).await.unwrap();
                }
            }
            DatabaseKind::Mysql => {
                let opts = mysql_async::OptsBuilder::default()
                    .ip_or_hostname(self.host.clone())
                    .tcp_port(self.port)
                    .prefer_socket(false)
                    .user(Some("admin"))
                    .pass(Some(OPERATORS_PASSWORD));
                let mut conn = mysql_async::Conn::new(opts).await.unwrap();
                for statement in statements {
                    conn.query_drop(*statement).await.unwrap();
                }
            }
        }
    }

    /// Connects over TCP as `user` to `database` (or the server's own).
    async fn connect(&self, user: &str, password: &str, database: Option<&str>) -> Result<(), String> {
        let one = match self.kind {
            DatabaseKind::Postgresql => "SELECT 1::bigint",
            DatabaseKind::Mysql => "SELECT 1",
        };
        self.ask(user, password, database, one).await.map(|_| ())
    }

    /// How many databases and roles named `site_…` the server holds.
    async fn leftovers(&self) -> i64 {
        let query = match self.kind {
            DatabaseKind::Postgresql => {
                "SELECT (SELECT count(*) FROM pg_database WHERE datname LIKE 'site\\_%') \
                 + (SELECT count(*) FROM pg_roles WHERE rolname LIKE 'site\\_%')"
            }
            DatabaseKind::Mysql => {
                "SELECT CAST((SELECT count(*) FROM information_schema.schemata WHERE schema_name LIKE 'site\\_%') \
                 + (SELECT count(*) FROM mysql.user WHERE user LIKE 'site\\_%') AS SIGNED)"
            }
        };
        self.ask("admin", OPERATORS_PASSWORD, None, query).await.unwrap()
    }
}

impl Drop for OperatorsServer {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f", &self.container])
            .output();
    }
}

/// The operator's server of `kind` takes the sites' databases instead of Director's own.
async fn operators_server_takes_the_sites_databases(kind: DatabaseKind) {
    let operators = OperatorsServer::start(kind).await;
    let external = Some(platform::sites::ExternalServer::parse(kind, &operators.url()).unwrap());
    let settings = match kind {
        DatabaseKind::Postgresql => platform::Settings {
            site_postgres: external,
            ..platform::Settings::default()
        },
        DatabaseKind::Mysql => platform::Settings {
            site_mysql: external,
            ..platform::Settings::default()
        },
    };
    let w = world_on(platform::testing::TestDb::with_settings(settings).await, false).await;
    let alice = user(&w.db, "alice", Role::User).await;
    let bob = user(&w.db, "bob", Role::User).await;
    let admin = user(&w.db, "chief", Role::Admin).await;
    let shop = made_site(&w, &alice, "shop", "static").await;
    let other = made_site(&w, &bob, "other", "static").await;
    let db = add(&w, &alice, &shop, kind).await;
    let theirs = add(&w, &bob, &other, kind).await;
    assert_eq!(operators.leftovers().await, 4);

    // What someone else made on the server under a site's database name is neither taken over
    // nor dropped: adding the database fails with the reason, and deleting the site leaves it.
    let foreign: &[&str] = match kind {
        DatabaseKind::Postgresql => &[
            "CREATE ROLE site_taken LOGIN PASSWORD 'theirs'",
            "CREATE DATABASE site_taken OWNER site_taken",
        ],
        DatabaseKind::Mysql => &["CREATE DATABASE site_taken"],
    };
    operators.run_as_admin(foreign).await;
    let taken = made_site(&w, &bob, "taken", "static").await;
    w.db.platform
        .add_database(Some(&bob), taken.id, kind)
        .await
        .unwrap();
    while w.db.platform.run_next_operation(&w.runtime).await.unwrap() {}
    let failed = platform::testing::failed_operations(&w.db.platform).await;
    assert!(
        failed.iter().any(|(_, why)| why.contains("did not make")),
        "{failed:?}"
    );
    let foreign_count = i64::try_from(foreign.len()).unwrap();
    assert_eq!(operators.leftovers().await, 4 + foreign_count);

    // The sites are given the operator's server, and each role gets into its own database
    // alone.
    assert_eq!(
        (db.host.as_str(), db.port),
        (operators.host.as_str(), operators.port)
    );
    operators
        .connect(&db.name, db.password(), Some(&db.name))
        .await
        .unwrap();
    let refused = operators
        .connect(&theirs.name, theirs.password(), Some(&db.name))
        .await;
    assert!(refused.is_err(), "another site's role got into the database");
    let made =
        w.db.platform
            .run_sql(
                Some(&alice),
                shop.id,
                kind,
                "CREATE TABLE orders (n int); INSERT INTO orders VALUES (7)",
            )
            .await
            .unwrap();
    assert!(made.error.is_none(), "{:?}", made.error);
    // From the site's own containers too: its database shell reaches it with its variables.
    let said = database_shell(&w, &alice, shop.id, kind, "SELECT n * 6 AS answer FROM orders;\n").await;
    assert!(said.contains("42"), "{said}");

    // Director runs no server of its own for it, even after a reconciler pass; the admin page
    // says whose it is, and Director neither restarts it nor changes its password.
    w.db.platform.reconcile(&w.runtime).await.unwrap();
    let engine = match kind {
        DatabaseKind::Postgresql => orchestrator::databases::Engine::Postgres,
        DatabaseKind::Mysql => orchestrator::databases::Engine::Mariadb,
    };
    let status = w
        .runtime
        .orchestrator
        .database_server_status(engine)
        .await
        .unwrap();
    assert!(!status.exists, "Director started a {kind} server of its own");
    let servers = w.db.platform.database_servers(Some(&admin)).await.unwrap();
    let server = servers.iter().find(|s| s.kind == kind).unwrap();
    assert_eq!(server.state, ServerState::Up);
    assert_eq!(
        server.external,
        Some(format!("{}:{}", operators.host, operators.port))
    );
    // Both sites' databases, and the one that could not be made.
    assert_eq!(server.databases.len(), 3);
    // A new PostgreSQL server lets every role into `postgres` and `template1`: the page says so.
    let open: &[&str] = match kind {
        DatabaseKind::Postgresql => &["postgres", "template1"],
        DatabaseKind::Mysql => &[],
    };
    assert_eq!(server.facts.as_ref().unwrap().open_databases, open);
    for refused in [
        w.db.platform.restart_database_server(Some(&admin), kind).await,
        w.db.platform.rotate_database_superuser(Some(&admin), kind).await,
    ] {
        assert!(
            matches!(refused, Err(Error::Conflict(ref m)) if m.contains("operator's own")),
            "{refused:?}"
        );
    }

    // Deleted with their sites: the databases and roles are gone from the operator's server.
    w.db.platform
        .delete_site(Some(&alice), shop.id, "shop")
        .await
        .unwrap();
    w.db.platform
        .delete_site(Some(&bob), other.id, "other")
        .await
        .unwrap();
    w.db.platform
        .delete_site(Some(&bob), taken.id, "taken")
        .await
        .unwrap();
    while w.db.platform.run_next_operation(&w.runtime).await.unwrap() {}
    assert_eq!(
        operators.leftovers().await,
        foreign_count,
        "databases or roles of deleted sites are left, or someone else's were dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_own_postgres_server_takes_the_sites_databases_instead_of_directors() {
    operators_server_takes_the_sites_databases(DatabaseKind::Postgresql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_own_mysql_server_takes_the_sites_databases_instead_of_directors() {
    operators_server_takes_the_sites_databases(DatabaseKind::Mysql).await;
}
