//! The host's mount table, read and changed: what the sites' disks and the edge's view of the
//! sites are made of. Changes go through util-linux's `mount`/`umount` (they set up loop devices
//! and know every option's flag), each as its own process so that nothing blocks the runtime.

use std::path::Path;

use crate::{Error, Result};

/// One line of `/proc/self/mountinfo`: what is mounted at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mounted {
    /// The per-mount options (`ro,nosuid,nodev,nosymfollow,…`).
    pub options: String,
    /// The file system's type (`ext4`, `tmpfs`, …).
    pub fstype: String,
    /// What is mounted (`/dev/loop3`, a tmpfs's name).
    pub source: String,
}

/// mountinfo escapes spaces, tabs, newlines and backslashes in paths as octal.
fn escape(path: &Path) -> String {
    let mut out = String::new();
    for c in path.to_string_lossy().chars() {
        match c {
            ' ' | '\t' | '\n' | '\\' => out.push_str(&format!("\\{:03o}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// The mount table: path (as mountinfo escapes it) to the topmost mount there.
pub(crate) type Table = std::collections::HashMap<String, Mounted>;

/// Parses mountinfo. Where several mounts stack at one path, the topmost is the one no other
/// at that path is mounted on (the file's order does not say: a mount moved onto a newer one
/// is listed before it).
pub(crate) fn parse(info: &str) -> Table {
    // path -> [(id, parent, mount)]
    let mut stacks: std::collections::HashMap<String, Vec<(u64, u64, Mounted)>> =
        std::collections::HashMap::new();
    for line in info.lines() {
        // id parent major:minor root mount-point options [optional fields…] - fstype source super-options
        let (before, after) = line.split_once(" - ").unwrap_or((line, ""));
        let fields: Vec<&str> = before.split(' ').collect();
        let (Some(id), Some(parent), Some(point), Some(options)) = (
            fields.first().and_then(|f| f.parse().ok()),
            fields.get(1).and_then(|f| f.parse().ok()),
            fields.get(4),
            fields.get(5),
        ) else {
            continue;
        };
        let mut rest = after.split(' ');
        let (fstype, source) = (rest.next().unwrap_or_default(), rest.next().unwrap_or_default());
        stacks.entry((*point).to_owned()).or_default().push((
            id,
            parent,
            Mounted {
                options: (*options).to_owned(),
                fstype: fstype.to_owned(),
                source: source.to_owned(),
            },
        ));
    }
    stacks
        .into_iter()
        .filter_map(|(point, stack)| {
            let parents: std::collections::HashSet<u64> =
                stack.iter().map(|(_, parent, _)| *parent).collect();
            let top = stack
                .iter()
                .rev()
                .find(|(id, _, _)| !parents.contains(id))
                .or(stack.last())
                .map(|(_, _, mount)| mount.clone())?;
            Some((point, top))
        })
        .collect()
}

/// The whole mount table, read off the async workers.
pub(crate) async fn table() -> Result<Table> {
    let info = tokio::fs::read_to_string("/proc/self/mountinfo")
        .await
        .map_err(|source| Error::Io {
            context: "reading the mount table".to_owned(),
            source,
        })?;
    Ok(parse(&info))
}

/// What is mounted at exactly `path`, if anything.
pub(crate) async fn at(path: &Path) -> Result<Option<Mounted>> {
    Ok(table().await?.remove(&escape(path)))
}

/// What `table` has mounted at exactly `path`.
pub(crate) fn in_table(table: &Table, path: &Path) -> Option<Mounted> {
    table.get(&escape(path)).cloned()
}

/// Runs `program` with `args`; its error output becomes the error.
pub(crate) async fn run(program: &str, args: &[&std::ffi::OsStr], what: &str) -> Result<()> {
    let out = tokio::process::Command::new(program)
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|source| Error::Io {
            context: format!("running {program}"),
            source,
        })?;
    if out.status.success() {
        Ok(())
    } else {
        let said = String::from_utf8_lossy(&out.stderr);
        let said: Vec<&str> = said.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        Err(Error::Disk(format!("{what} failed: {}", said.join("; "))))
    }
}

/// Detaches whatever is mounted at `path` and beneath it, at once even if files there are open
/// (they keep what they had; the mount goes when the last is closed). Nothing mounted is fine.
pub(crate) async fn detach(path: &Path) -> Result<()> {
    if at(path).await?.is_none() {
        return Ok(());
    }
    run(
        "umount",
        &["--recursive".as_ref(), "--lazy".as_ref(), path.as_os_str()],
        &format!("unmounting {}", path.display()),
    )
    .await
}

/// [`detach`], for `Drop`s and other places that cannot wait.
pub fn detach_blocking(path: &Path) {
    let _ = std::process::Command::new("umount")
        .args(["--recursive", "--lazy"])
        .arg(path)
        .stderr(std::process::Stdio::null())
        .status();
}

/// Mounts a small tmpfs named `name` at `path` (made if missing) unless it is there, with
/// `propagation` (`--make-shared`, `--make-private`) set on it; returns whether it mounted
/// one. Whatever was mounted there stays, beneath it.
pub(crate) async fn ensure_tmpfs(path: &Path, name: &str, mode: &str, propagation: &str) -> Result<bool> {
    tokio::fs::create_dir_all(path)
        .await
        .map_err(|source| Error::Io {
            context: format!("making {}", path.display()),
            source,
        })?;
    if is_tmpfs(&at(path).await?, name) {
        return Ok(false);
    }
    let options = format!("mode={mode},size=1m,nosuid,nodev,noexec");
    run(
        "mount",
        &[
            "-t".as_ref(),
            "tmpfs".as_ref(),
            "-o".as_ref(),
            options.as_ref(),
            name.as_ref(),
            path.as_os_str(),
        ],
        &format!("mounting a tmpfs at {} (needs root)", path.display()),
    )
    .await?;
    run(
        "mount",
        &[propagation.as_ref(), path.as_os_str()],
        &format!("setting {propagation} on {}", path.display()),
    )
    .await?;
    Ok(true)
}

/// Whether `mounted` is Director's tmpfs `name`.
pub(crate) fn is_tmpfs(mounted: &Option<Mounted>, name: &str) -> bool {
    mounted
        .as_ref()
        .is_some_and(|m| m.fstype == "tmpfs" && m.source == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_topmost_of_stacked_mounts_is_the_one_nothing_is_mounted_on() {
        // 90 was moved onto 95 (mountinfo lists it first), and the view bind 97 sits on 61.
        let info = "61 27 0:50 / /srv/view rw - tmpfs director-edge-view rw\n\
                    90 95 7:2 / /srv/sites/0042 ro,nosymfollow - ext4 /dev/loop2 rw\n\
                    95 27 7:1 / /srv/sites/0042 rw - ext4 /dev/loop1 rw\n\
                    97 61 7:2 / /srv/view/0042 ro - ext4 /dev/loop2 rw\n";
        let table = parse(info);
        assert_eq!(table["/srv/sites/0042"].source, "/dev/loop2");
        assert_eq!(table["/srv/sites/0042"].options, "ro,nosymfollow");
        assert_eq!(table["/srv/view"].fstype, "tmpfs");
        assert_eq!(table.len(), 3);
    }

    #[test]
    fn mountinfo_paths_are_escaped_as_the_kernel_escapes_them() {
        assert_eq!(escape(Path::new("/srv/a b\\c")), "/srv/a\\040b\\134c");
        assert_eq!(escape(Path::new("/srv/plain")), "/srv/plain");
    }
}
