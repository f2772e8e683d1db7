//! SSH into a site with the real OpenSSH client: a key generated per test, Director's SSH
//! server on a free port, a real site in a real terminal container.

mod common;

use std::{path::Path, process::Output, time::Duration};

use common::{create_user, edge::start_edge, password, running_site, signed_in_user};
use platform::{Actor, Role, sites::Availability};

/// A user's key pair on disk, made with ssh-keygen.
fn keygen(dir: &Path, name: &str) -> (std::path::PathBuf, String) {
    let path = dir.join(name);
    let made = std::process::Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            &format!("{name}@test"),
            "-f",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    (path, public)
}

/// What every OpenSSH client of these tests is given: a throw-away server key is trusted
/// without a known-hosts file, only the given key is offered, and a stuck server fails fast.
const CLIENT_OPTIONS: [&str; 10] = [
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "LogLevel=ERROR",
    "-o",
    "ConnectTimeout=10",
];

/// Runs `ssh` non-interactively against the test server, with `args` after the destination.
async fn ssh(port: u16, key: &Path, login: &str, args: &[&str], stdin: Option<&str>) -> Output {
    use tokio::io::AsyncWriteExt as _;
    let mut command = tokio::process::Command::new("ssh");
    command
        .args(["-p", &port.to_string(), "-i"])
        .arg(key)
        .args(CLIENT_OPTIONS)
        .args(["-o", "PasswordAuthentication=no", "-o", "BatchMode=yes"])
        .arg(format!("{login}@127.0.0.1"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).await.unwrap();
    }
    drop(input);
    tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("ssh finished within 60 s")
        .unwrap()
}

/// Director's SSH server on a free port, over the edge's platform and engine, with its host
/// key in `keys`; its port.
async fn start_ssh(edge: &common::edge::Edge, keys: &Path, login_grace: Duration) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let host_keys = shell::host_keys(&keys.join("host")).unwrap();
    tokio::spawn(shell::serve(
        listener,
        host_keys,
        edge.db.platform.clone(),
        shell::SshSettings {
            public_port: port,
            login_grace,
            ..shell::SshSettings::default()
        },
        edge.stop.subscribe(),
    ));
    port
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_ssh_into_their_sites_with_their_keys_and_nobody_else_does() {
    let edge = start_edge().await;
    let platform = edge.db.platform.clone();
    edge.start_workers();
    for (name, role) in [("member", Role::User), ("other", Role::User)] {
        create_user(&platform, name, role).await;
    }
    let login = |name: &'static str| {
        let platform = platform.clone();
        async move {
            platform
                .login(name, &password(name), &platform::ClientInfo::default())
                .await
                .unwrap()
                .0
        }
    };
    let member = login("member").await;
    let other = login("other").await;
    let keys = tempfile::tempdir().unwrap();
    let (member_key, member_pub) = keygen(keys.path(), "member");
    let (other_key, other_pub) = keygen(keys.path(), "other");
    let (stranger_key, _) = keygen(keys.path(), "stranger");
    platform
        .add_ssh_key(Some(&member), "", &member_pub)
        .await
        .unwrap();
    platform
        .add_ssh_key(Some(&other), "laptop", &other_pub)
        .await
        .unwrap();
    // The same key again, for anyone, is refused.
    assert!(matches!(
        platform.add_ssh_key(Some(&other), "", &member_pub).await,
        Err(platform::Error::Invalid {
            field: "public_key",
            ..
        })
    ));

    let site = running_site(&platform, &member, "sshsite").await;

    let port = start_ssh(&edge, keys.path(), Duration::from_secs(2)).await;

    // A command: its output, its stderr apart, its exit code.
    let out = ssh(
        port,
        &member_key,
        "sshsite",
        &["echo out-$((6*7)); echo err >&2; pwd; exit 3"],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(text(&out.stdout), "out-42\n/site\n");
    assert_eq!(text(&out.stderr), "err\n");

    // Input to a command, up to EOF: a file written in the site is served.
    let out = ssh(
        port,
        &member_key,
        "sshsite",
        &["cat > public/by-ssh.html"],
        Some("sent over ssh\n"),
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let dir = edge.runtime.borrow().clone().unwrap().directory(&site);
    assert_eq!(
        std::fs::read_to_string(dir.join("public/by-ssh.html")).unwrap(),
        "sent over ssh\n"
    );

    // An interactive shell on a TTY: the prompt, a command typed on stdin, the window size.
    let out = ssh(
        port,
        &member_key,
        "sshsite",
        &["-tt"],
        Some("stty size\necho typed-$((1+1))\nexit\n"),
    )
    .await;
    let shown = text(&out.stdout);
    assert!(shown.contains("sshsite:/site$ "), "{shown}");
    assert!(shown.contains("typed-2"), "{shown}");

    // Logging in with one's own name lists one's sites.
    let out = ssh(port, &member_key, "member", &[], None).await;
    assert!(text(&out.stdout).contains("sshsite"), "{out:?}");

    // Refused: a key nobody added, another user's site, a site that does not exist, a silly name.
    for (key, login) in [
        (&stranger_key, "sshsite"),
        (&other_key, "sshsite"),
        (&member_key, "no-such-site"),
        (&member_key, &"x".repeat(300)[..]),
    ] {
        let out = ssh(port, key, login, &["true"], None).await;
        assert_eq!(out.status.code(), Some(255), "{login:.20}: {out:?}");
        assert!(text(&out.stderr).contains("Permission denied"), "{out:?}");
    }

    // Disabled by an admin: the login works, the shell is refused with the reason.
    platform
        .set_availability(
            Some(&Actor::operator()),
            site.id,
            Availability::Disabled,
            "a test",
        )
        .await
        .unwrap();
    let out = ssh(port, &member_key, "sshsite", &["true"], None).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(text(&out.stderr).contains("disabled"), "{out:?}");

    // Garbage on the port and a client that stalls do not hurt the server; the stalled one is
    // closed once the login grace time is over.
    {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut garbage = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let _ = garbage.write_all(&[0xff; 4096]).await;
        let mut stalled = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        stalled.write_all(b"SSH-2.0-Stalling\r\n").await.unwrap();
        let out = ssh(port, &member_key, "member", &[], None).await;
        assert!(out.status.success(), "{out:?}");
        let mut seen = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(10), stalled.read_to_end(&mut seen)).await;
        assert!(
            closed.is_ok(),
            "the stalled client is closed after the grace time"
        );
        assert!(seen.starts_with(b"SSH-2.0-Director"), "{seen:?}");
    }
    edge.stop.send(true).unwrap();
}

/// Runs an `sftp -b` batch against the test server; returns its output.
async fn sftp(port: u16, key: &Path, login: &str, batch: &str, cwd: &Path) -> Output {
    let file = cwd.join("batch");
    std::fs::write(&file, batch).unwrap();
    let out = tokio::process::Command::new("sftp")
        .current_dir(cwd)
        .args(["-P", &port.to_string(), "-i"])
        .arg(key)
        .args(CLIENT_OPTIONS)
        .arg("-b")
        .arg(&file)
        .arg(format!("{login}@127.0.0.1"))
        .output();
    tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .expect("sftp finished within 60 s")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_and_scp_work_inside_the_site_and_never_outside() {
    use std::os::unix::fs::MetadataExt as _;
    let edge = start_edge().await;
    let platform = edge.db.platform.clone();
    edge.start_workers();
    let (member, _) = signed_in_user(&platform, "member", Role::User).await;
    let work = tempfile::tempdir().unwrap();
    let (key, public) = keygen(work.path(), "member");
    platform.add_ssh_key(Some(&member), "", &public).await.unwrap();
    let site = running_site(&platform, &member, "filesite").await;
    let dir = edge.runtime.borrow().clone().unwrap().directory(&site);
    let uid = 100_000 + u32::try_from(site.id).unwrap();
    let port = start_ssh(&edge, work.path(), shell::SshSettings::default().login_grace).await;

    // A file of every byte value, round-tripped and worked on.
    let payload: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(work.path().join("local.bin"), &payload).unwrap();
    let out = sftp(
        port,
        &key,
        "filesite",
        "put local.bin public/up.bin\nget public/up.bin back.bin\nmkdir tmpdir\nrmdir tmpdir\n\
         chmod 604 public/up.bin\nrename public/up.bin public/moved.bin\nln -s moved.bin public/link.bin\nls -l public\n",
        work.path(),
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    assert!(
        std::fs::read(work.path().join("back.bin")).unwrap() == payload,
        "byte for byte"
    );
    let moved = std::fs::metadata(dir.join("public/moved.bin")).unwrap();
    assert_eq!(
        (moved.uid(), moved.gid(), moved.mode() & 0o777),
        (uid, uid, 0o604)
    );
    assert_eq!(
        std::fs::read_link(dir.join("public/link.bin")).unwrap(),
        Path::new("moved.bin")
    );
    assert!(text(&out.stdout).contains("moved.bin"), "{out:?}");
    // Served by the site at once.
    let served = reqwest::Client::new()
        .get(format!("http://{}/moved.bin", edge.listen))
        .header("host", "filesite.localhost")
        .send()
        .await
        .unwrap();
    let served = served.bytes().await.unwrap();
    assert!(
        served == payload,
        "the site served {} bytes that differ",
        served.len()
    );

    // Escapes: absolute paths and .. stay in the site; symlinks planted on disk pointing out
    // resolve inside it; a link made over SFTP may not point out.
    std::os::unix::fs::symlink("/etc/passwd", dir.join("public/evil")).unwrap();
    std::os::unix::fs::symlink("../../../../../../etc", dir.join("escape")).unwrap();
    for batch in [
        "get /etc/passwd stolen",
        "get ../../../../etc/passwd stolen",
        "get public/evil stolen",
        "get escape/passwd stolen",
        "ln -s ../../etc/passwd public/out",
        "put local.bin ../../../tmp/planted.bin",
    ] {
        let out = sftp(port, &key, "filesite", &format!("{batch}\n"), work.path()).await;
        assert!(!out.status.success(), "{batch}: {out:?}");
        assert!(!work.path().join("stolen").exists(), "{batch}");
    }
    assert!(!Path::new("/tmp/planted.bin").exists());
    // A link planted to point out lists the site itself (its target resolves inside it).
    let out = sftp(port, &key, "filesite", "ls escape/\n", work.path()).await;
    assert!(!text(&out.stdout).contains("passwd"), "{out:?}");
    assert!(std::fs::symlink_metadata(dir.join("public/out")).is_err());

    // scp (the SFTP protocol, as OpenSSH 9 speaks it) both ways.
    let scp = |args: Vec<String>| {
        let mut command = std::process::Command::new("scp");
        command
            .current_dir(work.path())
            .args(["-P", &port.to_string(), "-i"])
            .arg(&key)
            .args(CLIENT_OPTIONS)
            .args(args);
        command.output().unwrap()
    };
    let out = scp(vec![
        "local.bin".into(),
        "filesite@127.0.0.1:public/scp.bin".into(),
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        std::fs::read(dir.join("public/scp.bin")).unwrap() == payload,
        "scp up"
    );
    let out = scp(vec![
        "filesite@127.0.0.1:public/scp.bin".into(),
        "scp-back.bin".into(),
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        std::fs::read(work.path().join("scp-back.bin")).unwrap() == payload,
        "scp down"
    );
    edge.stop.send(true).unwrap();
}

/// Starts `ssh login@… command` and leaves it running.
fn ssh_running(port: u16, key: &Path, login: &str, command: &str) -> tokio::process::Child {
    tokio::process::Command::new("ssh")
        .args(["-p", &port.to_string(), "-i"])
        .arg(key)
        .args(CLIENT_OPTIONS)
        .args(["-o", "PasswordAuthentication=no", "-o", "BatchMode=yes"])
        .arg(format!("{login}@127.0.0.1"))
        .arg(command)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ssh_connection_ends_within_seconds_of_its_access_going() {
    let edge = start_edge().await;
    let platform = edge.db.platform.clone();
    edge.start_workers();
    let (owner, _) = signed_in_user(&platform, "keyowner", Role::User).await;
    let (helper, _) = signed_in_user(&platform, "keyhelper", Role::User).await;
    // Director keeps an active admin: there is one, so the helper can be deactivated.
    create_user(&platform, "keyadmin", Role::Admin).await;
    let keys = tempfile::tempdir().unwrap();
    let (owner_key, owner_pub) = keygen(keys.path(), "owner");
    let (helper_key, helper_pub) = keygen(keys.path(), "helper");
    let owner_key_id = platform
        .add_ssh_key(Some(&owner), "", &owner_pub)
        .await
        .unwrap()
        .id;
    platform
        .add_ssh_key(Some(&helper), "", &helper_pub)
        .await
        .unwrap();
    let site = running_site(&platform, &owner, "sshgone").await;
    platform
        .add_member(Some(&owner), site.id, "keyhelper")
        .await
        .unwrap();

    let port = start_ssh(&edge, keys.path(), shell::SshSettings::default().login_grace).await;
    let dir = edge.runtime.borrow().clone().unwrap().directory(&site);

    // Two long commands, each noting that it started.
    // The owner's command ignores hang-ups, and would leave a mark if it outlived its access.
    let owners = ssh_running(
        port,
        &owner_key,
        "sshgone",
        "trap '' HUP; touch public/owner-in; sleep 6; touch public/owner-survived",
    );
    let helpers = ssh_running(port, &helper_key, "sshgone", "touch public/helper-in; sleep 120");
    for mark in ["owner-in", "helper-in"] {
        let mut there = false;
        for _ in 0..300 {
            if dir.join("public").join(mark).exists() {
                there = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(there, "{mark}: the command runs");
    }

    // The key removed: that connection ends with the reason, within seconds.
    let removed = tokio::time::Instant::now();
    platform.remove_ssh_key(Some(&owner), owner_key_id).await.unwrap();
    let out = tokio::time::timeout(Duration::from_secs(15), owners.wait_with_output())
        .await
        .expect("the owner's connection ends")
        .unwrap();
    assert!(removed.elapsed() < Duration::from_secs(10));
    assert!(
        text(&out.stderr).contains("key this session used was removed"),
        "{out:?}"
    );
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert!(
        !dir.join("public/owner-survived").exists(),
        "the command that trapped SIGHUP was killed"
    );

    // A removed key may be in other hands: the site's terminal container was made anew, so
    // the helper's command ended with it, and a new one starts at once.
    tokio::time::timeout(Duration::from_secs(15), helpers.wait_with_output())
        .await
        .expect("the helper's command ends with the container")
        .unwrap();
    let helpers = ssh_running(
        port,
        &helper_key,
        "sshgone",
        "touch public/helper-again; sleep 120",
    );
    let mut there = false;
    for _ in 0..300 {
        if dir.join("public/helper-again").exists() {
            there = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(there, "the helper's new command runs");

    // The helper's account deactivated: theirs ends too.
    platform
        .set_user_active(Some(&Actor::operator()), helper.user_id, false)
        .await
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(15), helpers.wait_with_output())
        .await
        .expect("the helper's connection ends")
        .unwrap();
    assert!(text(&out.stderr).contains("deactivated"), "{out:?}");
    edge.stop.send(true).unwrap();
}
