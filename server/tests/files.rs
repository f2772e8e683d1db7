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
    let server = TestServer::start_with_limits(platform.clone(), edge.runtime.clone(), limits).await;
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
