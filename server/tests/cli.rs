//! `director` as a client, against a real server, engine and edge: a member signs in with a
//! token, makes sites, puts files and sees them served, reads and follows a site's output, and
//! deletes; scripts get JSON and exit codes they can rely on.

mod common;

use std::{process::Output, time::Duration};

use common::{TestServer, api_token, edge::start_edge, signed_in_user, visit};
use model::token::TokenAccess;
use platform::Role;
use serde_json::Value;

/// `director <args>` for the server at `url` with `token` (in the environment), its HOME a
/// folder of the test's own.
struct Cli {
    url: String,
    token: String,
    home: tempfile::TempDir,
}

impl Cli {
    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_director"));
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("DIRECTOR_URL", &self.url)
            .env("DIRECTOR_TOKEN", &self.token)
            .kill_on_drop(true);
        command
    }

    async fn run(&self, args: &[&str]) -> Output {
        tokio::time::timeout(Duration::from_secs(120), self.command(args).output())
            .await
            .unwrap_or_else(|_| panic!("director {args:?} took too long"))
            .unwrap()
    }

    /// Runs `args`, which must succeed, and returns what it printed.
    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            out.status.success(),
            "director {args:?}: {:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    async fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all).await).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_makes_fills_watches_and_deletes_sites_from_the_command_line() {
    let edge = start_edge().await;
    let platform = edge.db.platform.clone();
    edge.start_workers();
    let (member, _) = signed_in_user(&platform, "member", Role::User).await;
    let token = api_token(&platform, &member, TokenAccess::Write, false, None).await;
    let server = TestServer::start(platform.clone()).await;
    let cli = Cli {
        url: server.base.clone(),
        token,
        home: tempfile::tempdir().unwrap(),
    };

    // A static site, made and waited for; a page put into it is served.
    let said = cli.ok(&["sites", "create", "clisite"]).await;
    assert!(said.contains("clisite is at http://clisite.localhost"), "{said}");
    let shown = cli.json(&["sites", "show", "clisite"]).await;
    assert_eq!(shown["state"], "running", "{shown}");
    // `#id` names a site by its id (a name may be all digits).
    let by_id = cli.json(&["sites", "show", &format!("#{}", shown["id"])]).await;
    assert_eq!(by_id["name"], "clisite");
    let page = cli.home.path().join("index.html");
    std::fs::write(&page, "<h1>from the command line</h1>\n").unwrap();
    cli.ok(&[
        "files",
        "put",
        "clisite",
        page.to_str().unwrap(),
        "--to",
        "public",
        "--replace",
    ])
    .await;
    assert_eq!(
        visit(edge.listen, "clisite.localhost").await,
        (200, "<h1>from the command line</h1>\n".to_owned())
    );
    let listed = cli.json(&["files", "ls", "clisite", "public"]).await;
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "index.html" && e["kind"] == "file"),
        "{listed}"
    );
    let fetched = cli.ok(&["files", "get", "clisite", "public/index.html"]).await;
    assert_eq!(fetched, "<h1>from the command line</h1>\n");

    // A dynamic site whose run.sh says something: its output is read, and followed.
    cli.ok(&[
        "sites", "create", "clidyn", "--kind", "dynamic", "--image", "busybox",
    ])
    .await;
    let script = cli.home.path().join("run.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\necho \"hello from the cli\"\nmkdir -p /tmp/www && echo up > /tmp/www/index.html\nexec httpd -f -p \"$PORT\" -h /tmp/www\n",
    )
    .unwrap();
    cli.ok(&["files", "put", "clidyn", script.to_str().unwrap(), "--replace"])
        .await;
    cli.ok(&["sites", "restart", "clidyn"]).await;
    let mut said = String::new();
    for _ in 0..60 {
        said = cli.ok(&["logs", "clidyn"]).await;
        if said.contains("hello from the cli") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(said.contains("hello from the cli"), "{said}");
    let mut follower = cli
        .command(&["logs", "-f", "clidyn"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = tokio::io::BufReader::new(follower.stdout.take().unwrap());
    let mut first = String::new();
    tokio::time::timeout(
        Duration::from_secs(30),
        tokio::io::AsyncBufReadExt::read_line(&mut stdout, &mut first),
    )
    .await
    .expect("a followed line")
    .unwrap();
    assert_eq!(first.trim(), "hello from the cli");
    follower.kill().await.unwrap();

    // Listing, by name and as JSON; deleting.
    let mine = cli.json(&["sites", "ls"]).await;
    let names: Vec<&str> = mine
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["clidyn", "clisite"]);
    cli.ok(&["sites", "rm", "clisite"]).await;
    assert_eq!(visit(edge.listen, "clisite.localhost").await.0, 404);
    let mine = cli.json(&["sites", "ls"]).await;
    assert_eq!(mine.as_array().unwrap().len(), 1, "{mine}");

    // Exit codes: 3 for what is not there or not allowed, 1 for what failed, 2 for usage.
    let missing = cli.run(&["sites", "show", "nosuch"]).await;
    assert_eq!(missing.status.code(), Some(3));
    let bad = cli.run(&["sites", "create", "bad_name", "--no-wait"]).await;
    assert_eq!(
        bad.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let usage = cli.run(&["sites", "frobnicate"]).await;
    assert_eq!(usage.status.code(), Some(2));
    let wrong = Cli {
        url: server.base.clone(),
        token: "dpat_wrong".to_owned(),
        home: tempfile::tempdir().unwrap(),
    };
    let refused = wrong.run(&["sites", "ls"]).await;
    assert_eq!(refused.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("token"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // `director login` keeps the server and token, readable by their owner only, and later
    // commands use them.
    let mut login = cli.command(&["login", &server.base]);
    login
        .env_remove("DIRECTOR_URL")
        .env_remove("DIRECTOR_TOKEN")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = login.spawn().unwrap();
    tokio::io::AsyncWriteExt::write_all(
        child.stdin.as_mut().unwrap(),
        format!("{}\n", cli.token).as_bytes(),
    )
    .await
    .unwrap();
    let out = child.wait_with_output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let kept = cli.home.path().join(".config/director/config.toml");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&kept).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let listed = cli
        .command(&["--json", "sites", "ls"])
        .env_remove("DIRECTOR_URL")
        .env_remove("DIRECTOR_TOKEN")
        .output()
        .await
        .unwrap();
    assert!(listed.status.success());
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed[0]["name"], "clidyn");

    // Completions for a shell.
    let completions = cli.ok(&["completions", "bash"]).await;
    assert!(
        completions.contains("director"),
        "{}",
        &completions[..100.min(completions.len())]
    );
}
