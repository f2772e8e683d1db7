//! A site's files through `SiteFiles`: a table of hostile paths and symlink setups, none of
//! which reaches outside the site's directory; atomic writes owned by the site's uid.

use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _, symlink};

use platform::{
    Error,
    files::{Existing, SiteFiles, relative},
};

const UID: u32 = 100_999;

struct Setup {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    outside: std::path::PathBuf,
    files: SiteFiles,
}

/// `<tmp>/site` with `public/index.html`, beside `<tmp>/outside/secret`; in the site, links
/// that point out: `abs -> /etc`, `up -> ../outside`, `public/evil -> <tmp>/outside/secret`.
fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("site");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(root.join("public")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(root.join("public/index.html"), "<h1>site</h1>").unwrap();
    std::fs::write(outside.join("secret"), "secret").unwrap();
    symlink("/etc", root.join("abs")).unwrap();
    symlink("../outside", root.join("up")).unwrap();
    symlink(outside.join("secret"), root.join("public/evil")).unwrap();
    let files = SiteFiles::open(&root, UID).unwrap();
    Setup {
        _dir: dir,
        root,
        outside,
        files,
    }
}

#[test]
fn paths_are_cleaned_to_components_inside_the_root() {
    for (given, want) in [
        ("", "."),
        ("/", "."),
        ("..", "."),
        ("../../..", "."),
        ("/../../etc/passwd", "etc/passwd"),
        ("public/../../x", "x"),
        ("./a//b/./c", "a/b/c"),
    ] {
        assert_eq!(relative(given).unwrap().to_str().unwrap(), want, "{given:?}");
    }
    assert!(matches!(relative("a\0b"), Err(Error::Invalid { .. })));
    // Past the kernel's limits: a reason, not a failure.
    for long in ["a/".repeat(2048), format!("public/{}", "x".repeat(256))] {
        assert!(
            matches!(relative(&long), Err(Error::Invalid { .. })),
            "{}",
            long.len()
        );
    }
    assert!(relative(&format!("public/{}", "x".repeat(255))).is_ok());
}

#[test]
fn hostile_paths_and_symlinks_never_read_outside() {
    let s = setup();
    for hostile in [
        "../outside/secret",
        "/../../outside/secret",
        "up/secret",
        "abs/passwd",
        "public/evil",
        "/etc/passwd",
        "public/../../../etc/passwd",
    ] {
        match s.files.read(hostile, 1 << 20) {
            Ok(bytes) => {
                assert_ne!(bytes, b"secret", "{hostile} read the secret");
                panic!("{hostile} read something: {bytes:?}");
            }
            Err(Error::NotFound(_) | Error::Conflict(_)) => {}
            Err(other) => panic!("{hostile}: {other:?}"),
        }
    }
    assert_eq!(
        s.files.read("public/index.html", 1 << 20).unwrap(),
        b"<h1>site</h1>"
    );
    assert_eq!(
        s.files.read("/../public/./index.html", 1 << 20).unwrap(),
        b"<h1>site</h1>"
    );
    // Listing `..` lists the site itself; a link that points out lists nothing outside.
    let names = |path: &str| {
        s.files
            .list(path)
            .map(|e| e.into_iter().map(|e| e.name).collect::<Vec<_>>())
    };
    assert_eq!(names("..").unwrap(), names("/").unwrap());
    assert_eq!(names("/").unwrap(), ["public", "abs", "up"]);
    assert!(names("up").is_err());
    assert!(names("abs").is_err());
}

#[test]
fn hostile_paths_and_symlinks_never_write_outside() {
    let s = setup();
    s.files.write("../../planted.txt", b"x").unwrap();
    assert!(s.root.join("planted.txt").exists(), "clamped into the site");
    assert!(!s.root.parent().unwrap().join("planted.txt").exists());
    for hostile in ["public/evil", "up/secret", "abs/passwd"] {
        assert!(s.files.write(hostile, b"pwned").is_err(), "{hostile}");
    }
    assert_eq!(std::fs::read(s.outside.join("secret")).unwrap(), b"secret");
    assert!(s.files.mkdir("up/new").is_err());
    assert!(!s.outside.join("new").exists());
    // Removing a link removes the link, never its target.
    s.files.remove("up").unwrap();
    s.files.remove("public/evil").unwrap();
    assert!(s.outside.join("secret").exists());
    assert!(s.files.rename("public/index.html", "../../stolen.html").is_ok());
    assert!(
        s.root.join("stolen.html").exists(),
        "a rename lands inside the site too"
    );
    assert!(matches!(s.files.remove("/"), Err(Error::Conflict(_))));
}

#[test]
fn writes_are_atomic_and_owned_by_the_site() {
    let s = setup();
    s.files.mkdir("docs").unwrap();
    s.files.write("docs/a.txt", b"first").unwrap();
    let meta = std::fs::metadata(s.root.join("docs/a.txt")).unwrap();
    assert_eq!((meta.uid(), meta.gid(), meta.mode() & 0o777), (UID, UID, 0o644));
    assert_eq!(std::fs::metadata(s.root.join("docs")).unwrap().uid(), UID);
    s.files.chmod("docs/a.txt", 0o4755).unwrap();
    assert_eq!(
        std::fs::metadata(s.root.join("docs/a.txt")).unwrap().mode() & 0o7777,
        0o755,
        "never set-uid"
    );
    s.files.write("docs/a.txt", b"second").unwrap();
    let meta = std::fs::metadata(s.root.join("docs/a.txt")).unwrap();
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o755,
        "an existing file keeps its mode"
    );
    assert_eq!(std::fs::read(s.root.join("docs/a.txt")).unwrap(), b"second");
    let left: Vec<_> = std::fs::read_dir(s.root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["a.txt"], "no temporary file left behind");
    assert!(
        matches!(
            s.files.rename("docs/a.txt", "public/index.html"),
            Err(Error::Conflict(_))
        ),
        "never replaces"
    );
    assert!(
        matches!(s.files.read("docs/a.txt", 3), Err(Error::TooLarge(_))),
        "over the limit"
    );
    let read = s.files.read_versioned("docs/a.txt", 3).unwrap();
    assert_eq!(
        (read.size, read.bytes),
        (6, None),
        "over the limit: its size, no bytes"
    );
    assert_eq!(read.version, s.files.version("docs/a.txt").unwrap());
    assert!(
        matches!(s.files.remove("public"), Err(Error::Conflict(_))),
        "a folder that is not empty"
    );
}

#[test]
fn a_save_refuses_to_overwrite_a_file_changed_since_it_was_read() {
    let s = setup();
    let opened = s.files.version("public/index.html").unwrap();
    let saved = s.files.save("public/index.html", b"mine", Some(&opened)).unwrap();
    assert_ne!(saved, opened);
    // Someone else changes it on disk (the terminal, SFTP, another tab).
    std::fs::write(s.root.join("public/index.html"), "theirs").unwrap();
    assert!(matches!(
        s.files.save("public/index.html", b"mine again", Some(&saved)),
        Err(Error::Conflict(_))
    ));
    assert_eq!(
        std::fs::read(s.root.join("public/index.html")).unwrap(),
        b"theirs"
    );
    // Removed meanwhile: refused too; a new file needs no version.
    std::fs::remove_file(s.root.join("public/index.html")).unwrap();
    assert!(matches!(
        s.files.save("public/index.html", b"x", Some(&saved)),
        Err(Error::Conflict(_))
    ));
    s.files.save("public/new.html", b"new", None).unwrap();
}

#[test]
fn a_streamed_write_over_its_limit_is_refused_and_leaves_nothing() {
    let s = setup();
    let big = vec![7u8; 10_000];
    let refused = s
        .files
        .write_from("public/big.bin", &mut &big[..], 9_999, Existing::Refuse);
    assert!(matches!(refused, Err(Error::TooLarge(_))), "{refused:?}");
    assert!(!s.root.join("public/big.bin").exists());
    assert_eq!(
        std::fs::read_dir(s.root.join("public")).unwrap().count(),
        2,
        "only index.html and evil: no temporary file left"
    );
    let written = s
        .files
        .write_from("public/big.bin", &mut &big[..], 10_000, Existing::Refuse)
        .unwrap();
    assert_eq!(written, 10_000);
    assert_eq!(std::fs::read(s.root.join("public/big.bin")).unwrap(), big);
    assert_eq!(
        std::fs::metadata(s.root.join("public/big.bin")).unwrap().uid(),
        UID
    );
}

#[test]
fn a_streamed_write_without_replace_never_overwrites() {
    let s = setup();
    let refused = s
        .files
        .write_from("public/index.html", &mut &b"new"[..], 100, Existing::Refuse);
    assert!(matches!(refused, Err(Error::Conflict(_))), "{refused:?}");
    assert_eq!(
        std::fs::read(s.root.join("public/index.html")).unwrap(),
        b"<h1>site</h1>"
    );
    s.files
        .write_from("public/index.html", &mut &b"new"[..], 100, Existing::Replace)
        .unwrap();
    assert_eq!(std::fs::read(s.root.join("public/index.html")).unwrap(), b"new");
}

#[test]
fn a_source_that_fails_midway_leaves_the_old_file_whole() {
    struct Failing(usize);
    impl std::io::Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "gone"));
            }
            self.0 -= 1;
            buf[0] = b'x';
            Ok(1)
        }
    }
    let s = setup();
    let failed = s
        .files
        .write_from("public/index.html", &mut Failing(3), 100, Existing::Replace);
    assert!(matches!(failed, Err(Error::Conflict(_))), "{failed:?}");
    assert_eq!(
        std::fs::read(s.root.join("public/index.html")).unwrap(),
        b"<h1>site</h1>"
    );
    assert_eq!(std::fs::read_dir(s.root.join("public")).unwrap().count(), 2);
}

#[test]
fn a_walk_reports_links_without_following_them() {
    use platform::files::{Opened, Walked};
    let s = setup();
    std::fs::create_dir_all(s.root.join("public/css")).unwrap();
    std::fs::write(s.root.join("public/css/site.css"), "body{}").unwrap();
    let Opened::Folder(folder) = s.files.open_read("/").unwrap() else {
        panic!("the root is a folder");
    };
    let mut seen = Vec::new();
    folder
        .walk(&mut |walked| -> Result<(), Error> {
            seen.push(match walked {
                Walked::Folder { path, .. } => format!("dir {path}"),
                Walked::File {
                    path, mut file, size, ..
                } => {
                    let mut text = String::new();
                    std::io::Read::read_to_string(&mut file, &mut text).unwrap();
                    format!("file {path} {size} {text}")
                }
                Walked::Link { path, target } => format!("link {path} -> {target}"),
            });
            Ok(())
        })
        .unwrap();
    let outside = s.outside.join("secret");
    assert_eq!(
        seen,
        [
            "link abs -> /etc".to_owned(),
            "dir public".to_owned(),
            "dir public/css".to_owned(),
            "file public/css/site.css 6 body{}".to_owned(),
            format!("link public/evil -> {}", outside.display()),
            "file public/index.html 13 <h1>site</h1>".to_owned(),
            "link up -> ../outside".to_owned(),
        ]
    );
    assert!(matches!(
        s.files.open_read("up"),
        Ok(Opened::Folder(_)) | Err(Error::NotFound(_))
    ));
}

#[test]
fn removing_a_folder_removes_what_it_holds_but_never_through_a_link() {
    let s = setup();
    std::fs::create_dir_all(s.root.join("public/deep/er")).unwrap();
    std::fs::write(s.root.join("public/deep/er/x"), "x").unwrap();
    symlink(&s.outside, s.root.join("public/deep/out")).unwrap();
    s.files.remove_all("public").unwrap();
    assert!(!s.root.join("public").exists());
    assert_eq!(std::fs::read(s.outside.join("secret")).unwrap(), b"secret");
    // A link named as the thing to remove goes, and what it points to stays.
    s.files.remove_all("up").unwrap();
    assert!(s.outside.join("secret").exists());
    assert!(matches!(
        s.files.remove_all("nothing/here"),
        Err(Error::NotFound(_))
    ));
}

/// Makes a FIFO at `path` (as a tenant's `mkfifo` would).
fn mkfifo(path: &std::path::Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_bits_truncate(0o644),
        0,
    )
    .unwrap();
}

#[test]
fn a_fifo_is_refused_at_once_and_never_waited_on() {
    let s = setup();
    mkfifo(&s.root.join("pipe"));
    symlink("../pipe", s.root.join("public/to-pipe")).unwrap();
    // Each of these opened the FIFO for reading with a blocking open, and waited for a writer
    // that never comes. Here every one answers (the test would hang otherwise).
    let started = std::time::Instant::now();
    for path in ["pipe", "/pipe", "public/to-pipe"] {
        let read = s.files.read_versioned(path, 1024);
        assert!(
            matches!(&read, Err(Error::Conflict(m)) if m.contains("not a file or a folder")),
            "{path}: {read:?}"
        );
        assert!(
            matches!(s.files.open_read(path), Err(Error::Conflict(_))),
            "{path}"
        );
        assert!(
            matches!(s.files.chmod(path, 0o600), Err(Error::Conflict(_))),
            "{path}"
        );
        assert!(
            matches!(s.files.read(path, 1024), Err(Error::Conflict(_))),
            "{path}"
        );
    }
    // Writing over it is refused too, and the FIFO stays a FIFO.
    assert!(matches!(s.files.write("pipe", b"x"), Err(Error::Conflict(_))));
    assert!(
        std::fs::symlink_metadata(s.root.join("pipe"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    // A folder walked for a zip leaves the FIFO out.
    let Ok(platform::files::Opened::Folder(folder)) = s.files.open_read("") else {
        panic!("the site's folder opens");
    };
    let mut seen = Vec::new();
    folder
        .walk::<Error>(&mut |walked| {
            if let platform::files::Walked::File { path, .. } = walked {
                seen.push(path);
            }
            Ok(())
        })
        .unwrap();
    assert!(!seen.iter().any(|p| p.contains("pipe")), "{seen:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn starter_files_are_made_whole_and_never_through_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let sites = dir.path().join("sites");
    std::fs::create_dir(&sites).unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "root's").unwrap();

    let files = platform::files::make_site_directory(&sites, "0001", UID).unwrap();
    let root = sites.join("0001");
    assert_eq!(std::fs::metadata(&root).unwrap().uid(), UID);
    files.ensure_folder("public").unwrap();
    assert_eq!(std::fs::metadata(root.join("public")).unwrap().uid(), UID);
    assert_eq!(
        files.create("run.sh", b"#!/bin/sh\n", 0o755).unwrap(),
        platform::files::Created::Written
    );
    let run = std::fs::metadata(root.join("run.sh")).unwrap();
    assert_eq!((run.uid(), run.gid(), run.mode() & 0o777), (UID, UID, 0o755));
    // Made again: what is there stays as the tenant left it.
    std::fs::write(root.join("run.sh"), "mine").unwrap();
    assert_eq!(
        files.create("run.sh", b"#!/bin/sh\n", 0o755).unwrap(),
        platform::files::Created::Kept
    );
    assert_eq!(std::fs::read_to_string(root.join("run.sh")).unwrap(), "mine");

    // A tenant's links in the starter files' places: none is followed out of the site.
    std::fs::remove_file(root.join("run.sh")).unwrap();
    symlink(&victim, root.join("run.sh")).unwrap();
    std::fs::remove_dir(root.join("public")).unwrap();
    symlink("../0002", root.join("public")).unwrap();
    std::fs::create_dir(sites.join("0002")).unwrap();
    let files = platform::files::make_site_directory(&sites, "0001", UID).unwrap();
    assert_eq!(
        files.create("run.sh", b"#!/bin/sh\n", 0o755).unwrap(),
        platform::files::Created::Kept
    );
    // `../0002` resolves inside the site (to nothing): refused, the other site's folder untouched.
    assert!(matches!(files.ensure_folder("public"), Err(Error::Conflict(_))));
    assert!(matches!(
        files.create("public/index.html", b"x", 0o644),
        Err(Error::NotFound(_))
    ));
    assert_eq!(std::fs::metadata(sites.join("0002")).unwrap().uid(), 0);
    let victim_now = std::fs::metadata(&victim).unwrap();
    assert_eq!((victim_now.uid(), victim_now.mode() & 0o777), (0, 0o644));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root's");

    // A site's directory that is a link is not entered either.
    symlink(dir.path(), sites.join("0003")).unwrap();
    assert!(platform::files::make_site_directory(&sites, "0003", UID).is_err());
    assert_eq!(std::fs::metadata(dir.path()).unwrap().uid(), 0);

    // Removing a site's directory removes the links, never what they point to, and a tree
    // nested deeper than any walk goes (a tenant's `mkdir -p` 300 levels down) all the same.
    let deep = root.join(vec!["d"; 300].join("/"));
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join("f"), "x").unwrap();
    symlink(&victim, deep.join("to-victim")).unwrap();
    platform::files::remove_site_directory(&sites, "0001").unwrap();
    assert!(!root.exists());
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root's");
    assert!(sites.join("0002").is_dir());
    platform::files::remove_site_directory(&sites, "0001").unwrap();
}

#[test]
fn of_many_saves_from_one_version_exactly_one_is_written() {
    let s = setup();
    for round in 0..20 {
        let opened = s.files.version("public/index.html").unwrap();
        let barrier = std::sync::Barrier::new(6);
        let written: Vec<_> = std::thread::scope(|scope| {
            let savers: Vec<_> = (0..6)
                .map(|n| {
                    let (files, opened, barrier) = (&s.files, &opened, &barrier);
                    scope.spawn(move || {
                        barrier.wait();
                        files
                            .save(
                                "public/index.html",
                                format!("{round}-{n}").as_bytes(),
                                Some(opened),
                            )
                            .is_ok()
                    })
                })
                .collect();
            savers.into_iter().map(|s| s.join().unwrap()).collect()
        });
        assert_eq!(
            written.iter().filter(|w| **w).count(),
            1,
            "round {round}: {written:?}"
        );
    }
}

#[test]
fn a_tenants_lock_on_a_folder_never_holds_a_save() {
    let s = setup();
    let opened = s.files.version("public/index.html").unwrap();
    // The site's own code holds an flock on the folder, and never lets go.
    let folder = std::fs::File::open(s.root.join("public")).unwrap();
    rustix::fs::flock(&folder, rustix::fs::FlockOperation::LockExclusive).unwrap();
    let started = std::time::Instant::now();
    s.files.save("public/index.html", b"mine", Some(&opened)).unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    assert_eq!(std::fs::read(s.root.join("public/index.html")).unwrap(), b"mine");
}
