//! A site's own Dockerfile (#20): read from the site's files and checked before anything is
//! built — UTF-8, at most [`MAX_DOCKERFILE_BYTES`], starting only from catalogue images that
//! allow Dockerfiles (or its own earlier stages), fetching nothing over the network — and its
//! context packed from a folder of the site through descriptors that never follow a link:
//! links go into the context as links, pipes and devices not at all, `.dockerignore` is
//! honoured, and a context over [`MAX_CONTEXT_BYTES`] is refused before a byte is read.

use crate::files::{Opened, SiteFiles, Walked};

/// The largest Dockerfile built.
pub const MAX_DOCKERFILE_BYTES: u64 = 1 << 20;
/// The largest build context sent to the engine (what `.dockerignore` leaves out is not
/// counted).
pub const MAX_CONTEXT_BYTES: u64 = 256 << 20;
/// Where the checked Dockerfile goes in the context: what is built is what was checked, even
/// if the site's copy changes meanwhile. A file of the site by that name is left out.
pub const CONTEXT_DOCKERFILE: &str = ".director-dockerfile";

/// What a checked Dockerfile starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The catalogue images its stages start from (each once, in order).
    pub bases: Vec<String>,
}

/// One instruction: its keyword (upper case), its arguments, and its line.
struct Instruction {
    keyword: String,
    arguments: String,
    line: usize,
}

/// The instructions of `text`: parser directives and comments dropped, continued lines joined.
fn instructions(text: &str) -> Vec<Instruction> {
    let mut escape = '\\';
    let mut directives = true;
    let mut out = Vec::new();
    let mut pending = String::new();
    let mut start = 0;
    for (number, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if directives {
            // `# escape=`` ` and other directives come first, before any comment or instruction.
            let directive = trimmed
                .strip_prefix('#')
                .and_then(|d| d.split_once('='))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim()));
            match directive {
                Some((key, value)) if key == "escape" => {
                    if value == "`" {
                        escape = '`';
                    }
                    continue;
                }
                Some((key, _)) if key == "syntax" || key == "check" => continue,
                _ => directives = false,
            }
        }
        // Comments and blank lines are dropped, also between continued lines.
        if trimmed.starts_with('#') || (trimmed.is_empty() && pending.is_empty()) {
            continue;
        }
        if pending.is_empty() {
            start = number + 1;
        }
        if let Some(head) = trimmed.strip_suffix(escape) {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(trimmed);
        out.push(Instruction::new(&std::mem::take(&mut pending), start));
    }
    // A last line that continues onto nothing ends there.
    if !pending.trim().is_empty() {
        out.push(Instruction::new(&pending, start));
    }
    out
}

impl Instruction {
    /// The instruction written `text` (keyword and arguments), on line `line`.
    fn new(text: &str, line: usize) -> Self {
        let (keyword, arguments) = text
            .trim()
            .split_once(char::is_whitespace)
            .unwrap_or((text.trim(), ""));
        Self {
            keyword: keyword.to_ascii_uppercase(),
            arguments: arguments.trim().to_owned(),
            line,
        }
    }
}

/// Whether `text` has a `FROM` instruction (a pasted Dockerfile is otherwise not checked).
pub fn has_from(text: &str) -> bool {
    instructions(text).iter().any(|i| i.keyword == "FROM")
}

/// An instruction's options (`--from=x`) and the rest of its arguments.
fn options(arguments: &str) -> (Vec<(String, String)>, Vec<String>) {
    let mut flags = Vec::new();
    let mut rest = Vec::new();
    let words = if arguments.trim_start().starts_with('[') {
        // The JSON form of ADD and COPY: ["source", "destination"].
        serde_json::from_str::<Vec<String>>(arguments).unwrap_or_else(|_| vec![arguments.to_owned()])
    } else {
        arguments.split_whitespace().map(str::to_owned).collect()
    };
    for word in words {
        match word.strip_prefix("--") {
            Some(flag) if rest.is_empty() => {
                let (name, value) = flag.split_once('=').unwrap_or((flag, ""));
                flags.push((name.to_ascii_lowercase(), value.to_owned()));
            }
            _ => rest.push(word),
        }
    }
    (flags, rest)
}

/// Checks `bytes` as a Dockerfile whose stages may start from `catalogue` (the references of
/// the images that allow Dockerfiles). The refusal says which line and why.
pub fn check(bytes: &[u8], catalogue: &[String]) -> Result<Checked, String> {
    if bytes.len() as u64 > MAX_DOCKERFILE_BYTES {
        return Err(format!(
            "the Dockerfile has {}, more than the {} a Dockerfile may have",
            model::human_bytes(bytes.len() as u64),
            model::human_bytes(MAX_DOCKERFILE_BYTES)
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| "the Dockerfile is not UTF-8 text".to_owned())?;
    let mut stages: Vec<Option<String>> = Vec::new();
    let mut bases: Vec<String> = Vec::new();
    let all = instructions(text);
    for instruction in &all {
        check_instruction(instruction, catalogue, &mut stages, &mut bases)?;
    }
    if stages.is_empty() {
        return Err("the Dockerfile has no FROM".to_owned());
    }
    Ok(Checked { bases })
}

fn check_instruction(
    instruction: &Instruction,
    catalogue: &[String],
    stages: &mut Vec<Option<String>>,
    bases: &mut Vec<String>,
) -> Result<(), String> {
    let line = instruction.line;
    let refuse = |why: String| Err(format!("line {line}: {why}"));
    let earlier_stage = |name: &str, stages: &[Option<String>]| {
        name.parse::<usize>().is_ok_and(|n| n < stages.len())
            || stages
                .iter()
                .flatten()
                .any(|stage| stage.eq_ignore_ascii_case(name))
    };
    match instruction.keyword.as_str() {
        "FROM" => {
            let (flags, rest) = options(&instruction.arguments);
            if let Some((flag, _)) = flags.first() {
                return refuse(format!("FROM --{flag}: FROM takes no options here"));
            }
            let (image, name) = match rest.as_slice() {
                [image] => (image.as_str(), None),
                [image, r#as, name] if r#as.eq_ignore_ascii_case("as") => {
                    (image.as_str(), Some(name.clone()))
                }
                _ => return refuse("FROM takes an image and, optionally, AS and a stage name".to_owned()),
            };
            if image.contains('$') {
                return refuse(format!(
                    "FROM {image}: an image named by a variable cannot be checked; name it"
                ));
            }
            if !(image == "scratch" || earlier_stage(image, stages)) {
                if !catalogue.iter().any(|c| c == image) {
                    return refuse(format!(
                        "FROM {image}: a site's build starts from a catalogue image that allows Dockerfiles ({})",
                        allowed(catalogue)
                    ));
                }
                if !bases.iter().any(|b| b == image) {
                    bases.push(image.to_owned());
                }
            }
            stages.push(name);
        }
        "ARG" if stages.is_empty() => {}
        _ if stages.is_empty() => {
            return refuse(format!("{} before the first FROM", instruction.keyword));
        }
        "ADD" | "COPY" => {
            let (flags, rest) = options(&instruction.arguments);
            for (flag, value) in &flags {
                if flag == "from" && !earlier_stage(value, stages) && !catalogue.iter().any(|c| c == value) {
                    return refuse(format!(
                        "{} --from={value}: only an earlier stage or a catalogue image that allows Dockerfiles",
                        instruction.keyword
                    ));
                }
            }
            let sources = rest.split_last().map(|(_, sources)| sources).unwrap_or_default();
            if let Some(remote) = sources
                .iter()
                .find(|s| s.contains("://") || s.starts_with("git@"))
            {
                return refuse(format!(
                    "{} {remote}: a site's build fetches nothing over the network this way (it could reach addresses only this server sees); put the file in the site's folder",
                    instruction.keyword
                ));
            }
        }
        "ONBUILD" => {
            let inner = Instruction::new(&instruction.arguments, line);
            if matches!(inner.keyword.as_str(), "FROM" | "ONBUILD") {
                return refuse(format!("ONBUILD {}: not allowed", inner.keyword));
            }
            check_instruction(&inner, catalogue, stages, bases)?;
        }
        _ => {}
    }
    Ok(())
}

fn allowed(catalogue: &[String]) -> String {
    if catalogue.is_empty() {
        "an administrator allows none yet".to_owned()
    } else {
        catalogue.join(", ")
    }
}

/// The patterns of a `.dockerignore`, as the engine's own client reads them: one per line,
/// `#` comments, `!` to take back in what an earlier pattern left out, `*` and `?` within a
/// name, `**` across folders; a pattern that matches a folder leaves out all it holds; the
/// last pattern that matches decides. (The engine's API expects its client to have left out
/// these files, so Director does it; no Rust crate reads this format.)
pub struct Ignore {
    patterns: Vec<(regex_lite::Regex, bool)>,
}

impl Ignore {
    /// The patterns of `text`; an unreadable pattern is an error saying which.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut patterns = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (pattern, keep) = match line.strip_prefix('!') {
                Some(rest) => (rest.trim(), true),
                None => (line, false),
            };
            let cleaned = crate::files::relative(pattern)
                .map_err(|_| format!(".dockerignore: {pattern:?} is not a pattern"))?;
            let cleaned = cleaned.to_string_lossy();
            if cleaned == "." {
                continue;
            }
            let regex = regex_lite::Regex::new(&format!("^{}$", translate(&cleaned)))
                .map_err(|_| format!(".dockerignore: {pattern:?} is not a pattern"))?;
            patterns.push((regex, keep));
        }
        Ok(Self { patterns })
    }

    /// Whether `path` (from the context's folder, `/`-separated) is left out.
    pub fn leaves_out(&self, path: &str) -> bool {
        let mut out = false;
        for (pattern, keep) in &self.patterns {
            // A pattern matching the path or a folder it is in.
            let mut prefixes = path.match_indices('/').map(|(i, _)| &path[..i]);
            if pattern.is_match(path) || prefixes.any(|p| pattern.is_match(p)) {
                out = !keep;
            }
        }
        out
    }
}

/// A `.dockerignore` pattern as a regular expression.
fn translate(pattern: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                if chars.get(i) == Some(&'/') {
                    // `**/` is any number of folders, none included.
                    out.push_str("(.*/)?");
                    i += 1;
                } else {
                    out.push_str(".*");
                }
                continue;
            }
            '*' => out.push_str("[^/]*"),
            '?' => out.push_str("[^/]"),
            '[' => {
                // A class as written up to its `]`; negation as `^` or `!`.
                let end = chars[i + 1..].iter().position(|&c| c == ']').map(|p| p + i + 1);
                match end {
                    Some(end) if end > i + 1 => {
                        out.push('[');
                        for (k, &c) in chars[i + 1..end].iter().enumerate() {
                            match c {
                                '!' if k == 0 => out.push('^'),
                                '\\' | '[' => {
                                    out.push('\\');
                                    out.push(c);
                                }
                                _ => out.push(c),
                            }
                        }
                        out.push(']');
                        i = end + 1;
                        continue;
                    }
                    _ => out.push_str("\\["),
                }
            }
            '\\' if i + 1 < chars.len() => {
                i += 1;
                out.push_str(&regex_lite::escape(&chars[i].to_string()));
            }
            c => out.push_str(&regex_lite::escape(&c.to_string())),
        }
        i += 1;
    }
    out
}

/// A packed context: the tar and its digest.
pub struct Packed {
    /// The tar, uncompressed.
    pub tar: Vec<u8>,
    /// SHA-256 of the tar, in hex.
    pub digest: String,
}

/// Packs the folder `context` of the site's `files` with `dockerfile` added as
/// [`CONTEXT_DOCKERFILE`]. Blocking: run it on a blocking thread.
pub fn pack(files: &SiteFiles, context: &str, dockerfile: &[u8]) -> Result<Packed, String> {
    let folder = match files.open_read(context) {
        Ok(Opened::Folder(folder)) => folder,
        Ok(Opened::File { .. }) => return Err(format!("the context {context} is a file, not a folder")),
        Err(err) => return Err(format!("the context folder {context}: {err}")),
    };
    let ignore = match files.read_versioned(&format!("{context}/.dockerignore"), 64 * 1024) {
        Ok(read) => match read.bytes {
            Some(bytes) => Ignore::parse(&String::from_utf8_lossy(&bytes))?,
            None => return Err(".dockerignore is over 64 KiB".to_owned()),
        },
        Err(crate::Error::NotFound(_)) => Ignore { patterns: Vec::new() },
        Err(err) => return Err(format!(".dockerignore: {err}")),
    };
    let kept = |path: &str| path != CONTEXT_DOCKERFILE && !ignore.leaves_out(path);
    // What the files take is known before any is read: a context over the limit is refused
    // at once, with the limit.
    let mut total = dockerfile.len() as u64;
    folder
        .walk(&mut |walked| {
            if let Walked::File { path, size, .. } = walked
                && kept(&path)
            {
                total += size;
            }
            Ok::<_, crate::Error>(())
        })
        .map_err(|e| e.to_string())?;
    let too_big = |total: u64| {
        format!(
            "the context {context} holds {} after .dockerignore, more than the {} a build may send: leave folders out with .dockerignore",
            model::human_bytes(total),
            model::human_bytes(MAX_CONTEXT_BYTES)
        )
    };
    if total > MAX_CONTEXT_BYTES {
        return Err(too_big(total));
    }
    let mut tar = orchestrator::BuildContext::default();
    let mut sent = dockerfile.len() as u64;
    let failed = |e: orchestrator::Error| crate::Error::Conflict(e.to_string());
    folder
        .walk(&mut |walked| {
            match walked {
                Walked::Folder { path, .. } if kept(&path) => tar.add_folder(&path).map_err(failed)?,
                Walked::File {
                    path,
                    file,
                    size,
                    mode,
                    ..
                } if kept(&path) => {
                    // A file grown since it was measured is read no further than the room left.
                    let room = MAX_CONTEXT_BYTES.saturating_sub(sent);
                    let mut bytes = Vec::with_capacity(usize::try_from(size.min(room)).unwrap_or(0));
                    std::io::Read::read_to_end(&mut std::io::Read::take(file, room + 1), &mut bytes)
                        .map_err(crate::Error::internal)?;
                    sent += bytes.len() as u64;
                    if sent > MAX_CONTEXT_BYTES {
                        return Err(crate::Error::TooLarge(too_big(sent)));
                    }
                    tar.add_file(&path, mode, &bytes).map_err(failed)?;
                }
                Walked::Link { path, target } if kept(&path) => {
                    tar.add_link(&path, &target).map_err(failed)?
                }
                _ => {}
            }
            Ok::<_, crate::Error>(())
        })
        .map_err(|e| match e {
            crate::Error::TooLarge(why) | crate::Error::Conflict(why) => why,
            other => other.to_string(),
        })?;
    tar.add_file(CONTEXT_DOCKERFILE, 0o644, dockerfile)
        .map_err(|e| e.to_string())?;
    let tar = tar.finish().map_err(|e| e.to_string())?;
    let digest = hex_digest(&tar);
    Ok(Packed { tar, digest })
}

/// SHA-256 of `bytes`, in hex.
pub(crate) fn hex_digest(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalogue() -> Vec<String> {
        vec!["director/python:3".to_owned(), "director/node:20".to_owned()]
    }

    #[test]
    fn a_dockerfile_starts_from_allowed_images_and_its_own_stages_only() {
        let good = "# escape=\\\n# a comment\nARG V=1\nFROM director/node:20 AS assets\nRUN npm ci \\\n  && npm run build\nFROM director/python:3\nCOPY --from=assets /out /app\nCOPY --from=0 /x /y\nADD --chown=1:1 app.tar /app/\n";
        let checked = check(good.as_bytes(), &catalogue()).unwrap();
        assert_eq!(checked.bases, vec!["director/node:20", "director/python:3"]);
        for (bad, why) in [
            ("FROM debian:bookworm\n", "catalogue image"),
            ("FROM $BASE\n", "variable"),
            ("FROM --platform=linux/arm64 director/python:3\n", "no options"),
            (
                "FROM director/python:3\nADD http://169.254.169.254/latest/meta-data /x\n",
                "network",
            ),
            (
                "FROM director/python:3\nADD [\"https://10.0.0.1/x\", \"/x\"]\n",
                "network",
            ),
            (
                "FROM director/python:3\nadd \\\n  git@github.com:a/b.git /x\n",
                "network",
            ),
            (
                "FROM director/python:3\nCOPY --from=alpine /etc/passwd /x\n",
                "earlier stage",
            ),
            ("FROM director/python:3\nCOPY --from=1 /x /y\n", "earlier stage"),
            ("FROM director/python:3\nONBUILD ADD http://x/y /z\n", "network"),
            ("RUN id\nFROM director/python:3\n", "before the first FROM"),
            ("# only a comment\n", "no FROM"),
        ] {
            let err = check(bad.as_bytes(), &catalogue()).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        assert!(
            check(b"FROM director/python:3\n\xff\n", &catalogue())
                .unwrap_err()
                .contains("UTF-8")
        );
        let huge = format!("FROM director/python:3\n{}", "#".repeat(10 << 20));
        assert!(
            check(huge.as_bytes(), &catalogue())
                .unwrap_err()
                .contains("more than")
        );
        // With ` as its escape, a backslash ends nothing.
        let windowsy = "# escape=`\nFROM director/python:3\nRUN echo a `\n  b\nCOPY C:\\ /x\n";
        check(windowsy.as_bytes(), &catalogue()).unwrap();
    }

    #[test]
    fn dockerignore_patterns_leave_out_what_the_engines_client_would() {
        let ignore = Ignore::parse("# comment\nnode_modules\n*.log\n**/secret*\n!keep.log\n/build/\ndocs/**/*.md\nfile?.txt\n[ab].c\n").unwrap();
        for out in [
            "node_modules",
            "node_modules/x/y.js",
            "a.log",
            "deep/er/secret.key",
            "secret",
            "build/x",
            "docs/a/b/c.md",
            "docs/c.md",
            "file1.txt",
            "a.c",
        ] {
            assert!(ignore.leaves_out(out), "{out}");
        }
        for kept in [
            "keep.log",
            "src/a.log",
            "src/node_modules",
            "docs/a.txt",
            "file10.txt",
            "c.c",
            "app.py",
        ] {
            assert!(!ignore.leaves_out(kept), "{kept}");
        }
    }
}
