//! The file manager's transfers against the real router and a real site's directory: uploads
//! (several files, limits per file and per upload, names taken, a plain form post), downloads
//! of a file and of a folder as a zip, and who may do either.

mod common;

use std::{io::Read as _, os::unix::fs::MetadataExt as _};

use common::{TestServer, create_user, edge::start_edge, password, running_site, signed_in_user};
use platform::Role;
use reqwest::multipart::{Form, Part};
use serde_json::Value;

const KIB: usize = 1024;

fn form(files: &[(&str, Vec<u8>)]) -> Form {
    files.iter().fold(Form::new(), |form, (name, bytes)| {
        form.part("file", Part::bytes(bytes.clone()).file_name((*name).to_owned()))
    })
}

fn noise(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}

async fn get(server: &TestServer, client: &reqwest::Client, path: &str) -> reqwest::Response {
    client.get(server.url(path)).send().await.unwrap()
}

async fn upload(
    server: &TestServer,
    client: &reqwest::Client,
    site: i32,
    folder: &str,
    form: Form,
) -> (u16, Value) {
    let res = client
        .post(server.url(&format!("/sites/{site}/files/upload?path={folder}")))
        .header("accept", "application/json")
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

#[tokio::test(flavor = "multi_thread")]
async fn files_go_up_and_come_back_identical_within_their_limits() {
    let edge = start_edge().await;
    let platform = edge.db.platform.clone();
    edge.start_workers();
    let (member, _) = signed_in_user(&platform, "member", Role::User).await;
    create_user(&platform, "other", Role::User).await;
    let site = running_site(&platform, &member, "filesite").await;
    let root = edge.runtime.borrow().clone().unwrap().directory(&site);
    let limits = app::api::UploadLimits {
        file_bytes: 1 << 20,
        total_bytes: 3 << 20,
    };
    let server = TestServer::start_with_limits(platform.clone(), limits).await;
    let client = server.signed_in("member", &password("member")).await;

    // Two files at once, one of them binary, land owned by the site and byte for byte.
    let binary = noise(600 * KIB, 7);
    let (status, report) = upload(
        &server,
        &client,
        site.id,
        "public",
        form(&[("notes.txt", b"hello\n".to_vec()), ("photo.bin", binary.clone())]),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["saved"].as_array().unwrap().len(), 2, "{report}");
    assert_eq!(std::fs::read(root.join("public/photo.bin")).unwrap(), binary);
    assert_eq!(
        std::fs::metadata(root.join("public/notes.txt")).unwrap().uid(),
        platform::sites::Runtime::uid(&site)
    );
    // A path past the kernel's limits is a bad request with its reason, not a failure.
    for path in ["a/".repeat(2100), format!("public/{}", "x".repeat(300))] {
        let answer = get(
            &server,
            &client,
            &format!("/sites/{}/files/download?path={path}", site.id),
        )
        .await;
        assert_eq!(answer.status(), 400, "{}", path.len());
    }
    let res = get(
        &server,
        &client,
        &format!("/sites/{}/files/download?path=public/photo.bin", site.id),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-disposition"],
        "attachment; filename=\"photo.bin\"; filename*=UTF-8''photo.bin"
    );
    assert_eq!(res.bytes().await.unwrap().as_ref(), binary.as_slice());

    // A name that is taken is refused unless replacing is asked for.
    let (status, report) = upload(
        &server,
        &client,
        site.id,
        "public",
        form(&[("notes.txt", b"new".to_vec())]),
    )
    .await;
    assert_eq!(status, 409, "{report}");
    assert_eq!(std::fs::read(root.join("public/notes.txt")).unwrap(), b"hello\n");
    // (The flag comes first: parts are handled as they arrive.)
    let replacing = Form::new()
        .text("replace", "1")
        .part("file", Part::bytes(b"new".to_vec()).file_name("notes.txt"));
    let (status, _) = upload(&server, &client, site.id, "public", replacing).await;
    assert_eq!(status, 200);
    assert_eq!(std::fs::read(root.join("public/notes.txt")).unwrap(), b"new");

    // A file over the per-file limit is refused whole; the small one beside it still lands,
    // and no temporary file is left.
    let (status, report) = upload(
        &server,
        &client,
        site.id,
        "public",
        form(&[
            ("big.bin", noise((1 << 20) + 1, 1)),
            ("small.txt", b"small".to_vec()),
        ]),
    )
    .await;
    assert_eq!(status, 413, "{report}");
    assert_eq!(report["refused"][0]["name"], "big.bin");
    assert!(
        report["refused"][0]["message"]
            .as_str()
            .unwrap()
            .contains("1 MiB a file may be"),
        "{report}"
    );
    assert_eq!(report["saved"][0]["name"], "small.txt");
    assert!(!root.join("public/big.bin").exists());
    let mut names: Vec<String> = std::fs::read_dir(root.join("public"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["index.html", "notes.txt", "photo.bin", "small.txt"]);

    // An upload declaring more than the total is refused before anything is read.
    let (status, report) = upload(
        &server,
        &client,
        site.id,
        "",
        form(&[
            ("a.bin", noise(900 * KIB, 2)),
            ("b.bin", noise(900 * KIB, 3)),
            ("c.bin", noise(900 * KIB, 4)),
            ("d.bin", noise(900 * KIB, 5)),
            ("e.bin", noise(900 * KIB, 6)),
        ]),
    )
    .await;
    assert_eq!(status, 413, "{report}");
    assert!(
        report["refused"][0]["message"]
            .as_str()
            .unwrap()
            .contains("one upload may carry"),
        "{report}"
    );
    assert!(!root.join("a.bin").exists());

    // A folder comes down as a zip: files, subfolders, and a link kept as a link (never the
    // file outside it points to).
    std::fs::create_dir_all(root.join("public/css")).unwrap();
    std::fs::write(root.join("public/css/site.css"), "body { margin: 0 }").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("public/passwd")).unwrap();
    let res = get(
        &server,
        &client,
        &format!("/sites/{}/files/download?path=public", site.id),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-disposition"],
        "attachment; filename=\"filesite-public.zip\"; filename*=UTF-8''filesite-public.zip"
    );
    let bytes = res.bytes().await.unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let mut listed: Vec<String> = zip.file_names().map(|n| n.unwrap().into_owned()).collect();
    listed.sort();
    assert_eq!(
        listed,
        [
            "css/",
            "css/site.css",
            "index.html",
            "notes.txt",
            "passwd",
            "photo.bin",
            "small.txt"
        ]
    );
    let mut photo = Vec::new();
    zip.by_name("photo.bin").unwrap().read_to_end(&mut photo).unwrap();
    assert_eq!(photo, binary);
    let link = zip.by_name("passwd").unwrap();
    assert!(link.is_symlink());
    drop(link);
    let mut target = String::new();
    zip.by_name("passwd")
        .unwrap()
        .read_to_string(&mut target)
        .unwrap();
    assert_eq!(target, "/etc/passwd");

    // A plain form post (no JavaScript) comes back to the folder, which says how it went.
    let res = client
        .post(server.url(&format!("/sites/{}/files/upload?path=public/css", site.id)))
        .header("accept", "text/html")
        .multipart(form(&[("print.css", b"@media print {}".to_vec())]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(
        res.headers()["location"],
        format!("/sites/{}/files?path=public/css&uploaded=1&refused=0", site.id).as_str()
    );

    // Nobody else: another user (404 as for any site they cannot see), no session (401),
    // another origin (403), and nothing lands.
    let other = server.signed_in("other", &password("other")).await;
    let (status, _) = upload(&server, &other, site.id, "", form(&[("x.txt", b"x".to_vec())])).await;
    assert_eq!(status, 404);
    let res = get(
        &server,
        &other,
        &format!("/sites/{}/files/download?path=public/notes.txt", site.id),
    )
    .await;
    assert_eq!(res.status(), 404);
    let res = get(
        &server,
        &reqwest::Client::new(),
        &format!("/sites/{}/files/download?path=public/notes.txt", site.id),
    )
    .await;
    assert_eq!(res.status(), 401);
    let res = client
        .post(server.url(&format!("/sites/{}/files/upload", site.id)))
        .header("origin", "http://filesite.localhost:8081")
        .multipart(form(&[("x.txt", b"x".to_vec())]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(!root.join("x.txt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_fifo_never_holds_the_manager() {
    let edge = start_edge().await;
    let platform = edge.db.platform.clone();
    edge.start_workers();
    let (member, _) = signed_in_user(&platform, "fifo", Role::User).await;
    let site = running_site(&platform, &member, "fifosite").await;
    let root = edge.runtime.borrow().clone().unwrap().directory(&site);
    // `mkfifo /site/pipe` in the site's terminal.
    let made = std::process::Command::new("mkfifo")
        .arg(root.join("pipe"))
        .status()
        .unwrap();
    assert!(made.success());
    let server = TestServer::start(platform.clone()).await;
    let client = server.signed_in("fifo", &password("fifo")).await;
    let id = site.id.to_string();

    // Fifty requests that each opened the FIFO for reading on one of the runtime's two
    // workers, all at once: each is refused with the reason, and the manager keeps answering.
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..50 {
        let (server_base, client, id) = (server.base.clone(), client.clone(), id.clone());
        requests.spawn(async move {
            let res = match i % 3 {
                0 => client
                    .post(format!("{server_base}/fn/open_file"))
                    .header("accept", "application/json")
                    .form(&[("site", id.as_str()), ("path", "pipe")])
                    .send()
                    .await
                    .unwrap(),
                1 => client
                    .post(format!("{server_base}/fn/set_mode"))
                    .header("accept", "application/json")
                    .form(&[("site", id.as_str()), ("path", "pipe"), ("mode", "600")])
                    .send()
                    .await
                    .unwrap(),
                _ => client
                    .get(format!("{server_base}/sites/{id}/files/download?path=pipe"))
                    .send()
                    .await
                    .unwrap(),
            };
            (res.status().as_u16(), res.text().await.unwrap())
        });
    }
    let health = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .unwrap();
    let res = health.get(server.url("/healthz")).send().await;
    assert!(
        res.is_ok_and(|r| r.status() == 200),
        "/healthz answers while they run"
    );
    let answers = tokio::time::timeout(std::time::Duration::from_secs(30), requests.join_all())
        .await
        .expect("every FIFO request is answered");
    for (status, body) in answers {
        assert_eq!(status, 409, "{body}");
        assert!(body.contains("not a file or a folder"), "{body}");
    }
    let res = health.get(server.url("/healthz")).send().await;
    assert!(
        res.is_ok_and(|r| r.status() == 200),
        "/healthz answers after them"
    );
    // The folder's listing still shows the pipe for what it is, and the zip of the site leaves it out.
    let res = get(&server, &client, &format!("/sites/{id}/files/download?path=")).await;
    assert_eq!(res.status(), 200);
    let zip = res.bytes().await.unwrap();
    let archive = zip::ZipArchive::new(std::io::Cursor::new(zip.to_vec())).unwrap();
    assert!(!archive.file_names().any(|n| n.unwrap().contains("pipe")));
}

/// The resident memory of this process (the test server runs in it), in bytes.
fn resident() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// Posts a chunked multipart upload whose body is `head` and then `filler` bytes up to
/// `total`, sent while the answer is read (as a client that does not wait would): the status
/// and body of the answer, which comes before the end of such a body.
async fn raw_upload(
    server: &TestServer,
    cookie: &str,
    site: i32,
    head: String,
    total: usize,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let request = format!(
        "POST /sites/{site}/files/upload?path= HTTP/1.1\r\nHost: {}\r\nOrigin: {}\r\nCookie: {cookie}\r\n\
         Accept: application/json\r\nContent-Type: multipart/form-data; boundary=XB\r\nTransfer-Encoding: chunked\r\n\r\n",
        server.addr, server.base
    );
    let sending = tokio::spawn(async move {
        writer.write_all(request.as_bytes()).await?;
        let mut chunk = head.into_bytes();
        let mut sent = 0;
        while sent < total {
            writer
                .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .await?;
            writer.write_all(&chunk).await?;
            writer.write_all(b"\r\n").await?;
            sent += chunk.len();
            chunk = vec![b'x'; 64 * 1024];
        }
        writer.write_all(b"0\r\n\r\n").await
    });
    let mut answer = Vec::new();
    let mut buffer = vec![0u8; 16 * 1024];
    let read = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        loop {
            let n = reader.read(&mut buffer).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buffer[..n]);
            let text = String::from_utf8_lossy(&answer);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().to_owned())
                    })
                    .and_then(|v| v.parse::<usize>().ok());
                if length.is_some_and(|length| body.len() >= length) {
                    break;
                }
            }
        }
    })
    .await;
    sending.abort();
    read.expect("the server answers before the body ends");
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .parse()
        .unwrap_or(0);
    (status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_with_an_endless_field_or_header_is_refused_and_memory_stays_flat() {
    let edge = start_edge().await;
    let platform = edge.db.platform.clone();
    edge.start_workers();
    let (member, session) = signed_in_user(&platform, "bulk", Role::User).await;
    let site = running_site(&platform, &member, "bulksite").await;
    let limits = app::api::UploadLimits {
        file_bytes: 1 << 30,
        total_bytes: 2 << 30,
    };
    let server = TestServer::start_with_limits(platform.clone(), limits).await;
    let cookie = format!("{}={}", app::ssr::session_cookie_name(false), session.token);
    let before = resident();

    // A `replace` field of 256 MiB: it was read whole into memory.
    let head = "--XB\r\nContent-Disposition: form-data; name=\"replace\"\r\n\r\n".to_owned();
    let (status, answer) = raw_upload(&server, &cookie, site.id, head, 256 << 20).await;
    assert_eq!(status, 413, "{answer}");
    assert!(answer.contains("replace"), "{answer}");

    // A part header that never ends: multer held it whole (and searched it again each time).
    let head =
        "--XB\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\nX-Filler: ".to_owned();
    let (status, answer) = raw_upload(&server, &cookie, site.id, head, 256 << 20).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("headers are longer"), "{answer}");

    let grown = resident().saturating_sub(before);
    assert!(grown < 64 << 20, "memory grew by {} MiB", grown >> 20);
    // Nothing was written.
    let root = edge.runtime.borrow().clone().unwrap().directory(&site);
    let names: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(!names.iter().any(|n| n == "a"), "{names:?}");
}
