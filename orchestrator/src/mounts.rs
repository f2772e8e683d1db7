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

/// The whole mount table, read once: path (as mountinfo escapes it) to the topmost mount there.
pub(crate) fn table() -> Result<std::collections::HashMap<String, Mounted>> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").map_err(|source| Error::Io {
        context: "reading the mount table".to_owned(),
        source,
    })?;
    let mut mounts = std::collections::HashMap::new();
    for line in info.lines() {
        // id parent major:minor root mount-point options [optional fields…] - fstype source super-options
        let (before, after) = line.split_once(" - ").unwrap_or((line, ""));
        let mut fields = before.split(' ');
        let (Some(point), Some(options)) = (fields.nth(4), fields.next()) else {
            continue;
        };
        let mut rest = after.split(' ');
        let (fstype, source) = (rest.next().unwrap_or_default(), rest.next().unwrap_or_default());
        // Later lines are mounted over earlier ones at the same path.
        mounts.insert(
            point.to_owned(),
            Mounted {
                options: options.to_owned(),
                fstype: fstype.to_owned(),
                source: source.to_owned(),
            },
        );
    }
    Ok(mounts)
}

/// What is mounted at exactly `path`, if anything.
pub(crate) fn at(path: &Path) -> Result<Option<Mounted>> {
    Ok(table()?.remove(&escape(path)))
}

/// Whether `table` has a mount at exactly `path`.
pub(crate) fn in_table(table: &std::collections::HashMap<String, Mounted>, path: &Path) -> Option<Mounted> {
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
    if at(path)?.is_none() {
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

/// Mounts a small tmpfs at `path` (made if missing) unless one is there, with `propagation`
/// (`--make-shared`, `--make-private`) set on it; returns whether it mounted one.
pub(crate) async fn ensure_tmpfs(path: &Path, name: &str, mode: &str, propagation: &str) -> Result<bool> {
    std::fs::create_dir_all(path).map_err(|source| Error::Io {
        context: format!("making {}", path.display()),
        source,
    })?;
    if at(path)?.is_some_and(|m| m.fstype == "tmpfs" && m.source == name) {
        return Ok(false);
    }
    detach(path).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_paths_are_escaped_as_the_kernel_escapes_them() {
        assert_eq!(escape(Path::new("/srv/a b\\c")), "/srv/a\\040b\\134c");
        assert_eq!(escape(Path::new("/srv/plain")), "/srv/plain");
    }
}
