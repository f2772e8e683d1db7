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

/// What a checked Dockerfile starts from, and the Dockerfile built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The catalogue images its stages start from or copy from (each once, in order).
    pub bases: Vec<String>,
    /// The Dockerfile as it was checked, one instruction a line: what is sent to the engine,
    /// so that the engine's parser cannot read an instruction this one did not see.
    pub canonical: String,
}

/// The instructions the engine's classic builder knows.
const KEYWORDS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// One instruction: its keyword (upper case), its arguments, and its line.
struct Instruction {
    keyword: String,
    arguments: String,
    line: usize,
}

/// The instructions of `text`: comments dropped, continued lines joined. Only `\` continues a
/// line (an `escape` directive is refused by [`check`]).
fn instructions(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut pending = String::new();
    let mut start = 0;
    for (number, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        // Comments and blank lines are dropped, also between continued lines.
        if trimmed.starts_with('#') || trimmed.is_empty() {
            continue;
        }
        if pending.is_empty() {
            start = number + 1;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
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
    /// The instruction written `text` (keyword and arguments), on line `line`. The keyword
    /// ends at a space or a tab, as the engine reads it.
    fn new(text: &str, line: usize) -> Self {
        let text = text.trim();
        let (keyword, arguments) = text.split_once([' ', '\t']).unwrap_or((text, ""));
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

/// An instruction's options (`--from=x`) and the rest of its words.
fn options(arguments: &str) -> (Vec<(String, String)>, Vec<String>) {
    let mut flags = Vec::new();
    let mut rest = Vec::new();
    for word in arguments.split([' ', '\t']).filter(|w| !w.is_empty()) {
        match word.strip_prefix("--") {
            Some(flag) if rest.is_empty() => {
                let (name, value) = flag.split_once('=').unwrap_or((flag, ""));
                flags.push((name.to_ascii_lowercase(), value.to_owned()));
            }
            _ => rest.push(word.to_owned()),
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
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // Line ends are \n or \r\n; other control characters have no place in a Dockerfile and
    // could be read differently by the engine.
    // Nor has any space but the plain one and the tab: the engine trims Unicode spaces where
    // this check would read a word.
    let stray = text
        .replace("\r\n", "\n")
        .chars()
        .any(|c| (c.is_control() || c.is_whitespace()) && !matches!(c, '\n' | '\t' | ' '));
    if stray {
        return Err(
            "the Dockerfile holds control characters or unusual spaces (only spaces, tabs and line ends are)"
                .to_owned(),
        );
    }
    // Parser directives come first, before any instruction.
    for line in text.lines().map(str::trim).take_while(|l| l.starts_with('#')) {
        let directive = line.trim_start_matches('#').trim_start().to_ascii_lowercase();
        if directive.starts_with("escape") {
            return Err("the escape directive is not supported: lines continue with \\".to_owned());
        }
    }
    let mut stages: Vec<String> = Vec::new();
    let mut bases: Vec<String> = Vec::new();
    let mut canonical = String::new();
    for instruction in &instructions(text) {
        check_instruction(instruction, catalogue, &mut stages, &mut bases)?;
        // A line of the canonical file ending in \ would continue onto the next one.
        if instruction.arguments.ends_with('\\') {
            return Err(format!(
                "line {}: an instruction cannot end with \\",
                instruction.line
            ));
        }
        canonical.push_str(&instruction.keyword);
        if !instruction.arguments.is_empty() {
            canonical.push(' ');
            canonical.push_str(&instruction.arguments);
        }
        canonical.push('\n');
    }
    if stages.is_empty() {
        return Err("the Dockerfile has no FROM".to_owned());
    }
    Ok(Checked { bases, canonical })
}

/// Characters that could make an `ADD` source a URL once the engine expands it (a scheme's
/// colon; variables, escapes and quotes, which expansion turns into other characters).
const NOT_IN_ADD_SOURCES: &[char] = &[':', '$', '\\', '\'', '"', '`'];

fn check_instruction(
    instruction: &Instruction,
    catalogue: &[String],
    stages: &mut Vec<String>,
    bases: &mut Vec<String>,
) -> Result<(), String> {
    let line = instruction.line;
    let keyword = instruction.keyword.as_str();
    let refuse = |why: String| Err(format!("line {line}: {why}"));
    if !KEYWORDS.contains(&keyword) {
        let shown: String = keyword.chars().take(20).collect();
        return refuse(format!("{shown} is not an instruction"));
    }
    // The engine reads options byte by byte, where a byte of a non-ASCII letter can end a
    // word: every option is `--name=value` in plain ASCII, so both read the same words.
    let (flags, _) = options(&instruction.arguments);
    let flag_pattern =
        regex_lite::Regex::new(r"^[a-z][a-z-]*=[A-Za-z0-9._:/@+,=-]+$").expect("a valid pattern");
    for word in instruction.arguments.split([' ', '\t']).filter(|w| !w.is_empty()) {
        let Some(flag) = word.strip_prefix("--") else {
            break;
        };
        if !flag_pattern.is_match(flag) {
            let shown: String = word.chars().take(40).collect();
            return refuse(format!(
                "{shown}: an option is written --name=value, in letters, digits and ._:/@+,=-"
            ));
        }
    }
    if keyword == "RUN" && !flags.is_empty() {
        return refuse("RUN takes no options here".to_owned());
    }
    // Newer engines read `<<` as a heredoc, whose lines would be hidden from this check.
    if matches!(keyword, "RUN" | "COPY" | "ADD") && instruction.arguments.contains("<<") {
        return refuse(format!("{keyword} with <<: heredocs are not supported"));
    }
    let in_catalogue = |image: &str| catalogue.iter().any(|c| c == image);
    let mut base = |image: &str| {
        if !bases.iter().any(|b| b == image) {
            bases.push(image.to_owned());
        }
    };
    match keyword {
        "FROM" => {
            let (flags, rest) = options(&instruction.arguments);
            if let Some((flag, _)) = flags.first() {
                return refuse(format!("FROM --{flag}: FROM takes no options here"));
            }
            let (image, name) = match rest.as_slice() {
                [image] => (image.as_str(), None),
                [image, r#as, name] if r#as.eq_ignore_ascii_case("as") => {
                    (image.as_str(), Some(name.to_ascii_lowercase()))
                }
                _ => return refuse("FROM takes an image and, optionally, AS and a stage name".to_owned()),
            };
            // An earlier stage by its name only: a number would name an image by its id.
            let earlier = stages.iter().any(|stage| stage.eq_ignore_ascii_case(image));
            if in_catalogue(image) {
                base(image);
            } else if !(image == "scratch" || earlier) {
                return refuse(format!(
                    "FROM {image}: a site's build starts from a catalogue image that allows Dockerfiles ({}) or an earlier stage",
                    allowed(catalogue)
                ));
            }
            let name = name.unwrap_or_default();
            let pattern = regex_lite::Regex::new(r"^([a-z][a-z0-9._-]*)?$").expect("a valid pattern");
            if !pattern.is_match(&name) {
                return refuse(format!(
                    "AS {name}: a stage's name starts with a letter, then letters, digits, '.', '_' or '-'"
                ));
            }
            stages.push(name);
        }
        "ARG" if stages.is_empty() => {}
        _ if stages.is_empty() => return refuse(format!("{keyword} before the first FROM")),
        "ADD" | "COPY" => {
            let (flags, rest) = options(&instruction.arguments);
            for (flag, value) in &flags {
                if flag != "from" {
                    continue;
                }
                // Stages before this one: the engine knows a stage by its name only once it
                // ended, and reads the current one's name as an image.
                let earlier = &stages[..stages.len().saturating_sub(1)];
                let index = value.parse::<usize>().is_ok_and(|n| n < earlier.len());
                let named = earlier
                    .iter()
                    .any(|stage| !stage.is_empty() && stage.eq_ignore_ascii_case(value));
                if in_catalogue(value) {
                    base(value);
                } else if !(index || named) {
                    return refuse(format!(
                        "{keyword} --from={value}: only an earlier stage or a catalogue image that allows Dockerfiles"
                    ));
                }
            }
            if keyword == "ADD" {
                if rest.first().is_some_and(|w| w.starts_with('[')) {
                    return refuse(
                        "ADD [\"…\"]: write ADD's sources plainly (COPY takes paths with spaces)".to_owned(),
                    );
                }
                // Every word, the destination too: the engine decides which are sources.
                if let Some(source) = rest.iter().find(|s| s.contains(NOT_IN_ADD_SOURCES)) {
                    return refuse(format!(
                        "ADD {source}: a site's build fetches nothing over the network (it could reach addresses only this server sees), so ADD's sources are plain paths without ':', '$', quotes or '\\'; put the file in the site's folder"
                    ));
                }
            }
        }
        "ONBUILD" => {
            let inner = Instruction::new(&instruction.arguments, line);
            if matches!(inner.keyword.as_str(), "FROM" | "ONBUILD" | "MAINTAINER") {
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

/// The most patterns a `.dockerignore` may have, and the longest pattern: the matching of
/// every path against every pattern stays quick whatever a tenant writes.
const MAX_PATTERNS: usize = 100;
const MAX_PATTERN_BYTES: usize = 256;
/// The most entries (files, folders, links) a context may hold.
pub const MAX_CONTEXT_ENTRIES: usize = 100_000;
/// The most entries the walk of a context goes through, left out by `.dockerignore` or not.
pub const MAX_VISITED: usize = 1_000_000;

/// The patterns of a `.dockerignore`, as the engine's own client reads them: one per line,
/// `#` comments, `!` to take back in what an earlier pattern left out, `*` and `?` within a
/// name, `**` across folders; a pattern that matches a folder leaves out all it holds; the
/// last pattern that matches decides. (The engine's API expects its client to have left out
/// these files, so Director does it; no Rust crate reads this format.)
pub struct Ignore {
    patterns: Vec<(regex_lite::Regex, bool)>,
}

impl Ignore {
    /// The patterns of `text`; an unreadable pattern, or too many, is an error saying which.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut patterns = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if patterns.len() == MAX_PATTERNS {
                return Err(format!(".dockerignore has more than {MAX_PATTERNS} patterns"));
            }
            if line.len() > MAX_PATTERN_BYTES {
                return Err(format!(
                    ".dockerignore: a pattern has at most {MAX_PATTERN_BYTES} bytes"
                ));
            }
            let (pattern, keep) = match line.strip_prefix('!') {
                Some(rest) => (rest.trim(), true),
                None => (line, false),
            };
            let cleaned = crate::files::relative(pattern)
                .map_err(|_| format!(".dockerignore: {pattern:?} is not a pattern"))?;
            let mut cleaned = cleaned.to_string_lossy().into_owned();
            if cleaned == "." {
                continue;
            }
            // `**/**/` matches what one `**/` does.
            while cleaned.contains("**/**/") {
                cleaned = cleaned.replace("**/**/", "**/");
            }
            let regex = regex_lite::Regex::new(&format!("^{}$", translate(&cleaned)))
                .map_err(|_| format!(".dockerignore: {pattern:?} is not a pattern"))?;
            patterns.push((regex, keep));
        }
        Ok(Self { patterns })
    }

    /// Which patterns match `path` or a folder it is in, given which match its folder
    /// (`folder`; empty at the top).
    fn matching(&self, path: &str, folder: &[bool]) -> Vec<bool> {
        self.patterns
            .iter()
            .enumerate()
            .map(|(i, (pattern, _))| folder.get(i).copied().unwrap_or(false) || pattern.is_match(path))
            .collect()
    }

    /// Whether what `matching` found leaves the path out: the last pattern that matches
    /// decides.
    fn decides_out(&self, matching: &[bool]) -> bool {
        self.patterns
            .iter()
            .zip(matching)
            .rev()
            .find(|(_, m)| **m)
            .is_some_and(|((_, keep), _)| !keep)
    }

    /// Whether `path` (from the context's folder, `/`-separated) is left out (as [`pack`]
    /// decides it, one folder after the other).
    #[cfg(test)]
    fn leaves_out(&self, path: &str) -> bool {
        let mut folder = Vec::new();
        let mut at = 0;
        while let Some(slash) = path[at..].find('/') {
            folder = self.matching(&path[..at + slash], &folder);
            at += slash + 1;
        }
        self.decides_out(&self.matching(path, &folder))
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

/// What an entry costs in the tar beyond its contents: its header, and a long name's or a
/// long link's own header and blocks.
fn entry_cost(path: &str, target: &str) -> u64 {
    let long = |s: &str| {
        if s.len() > 99 {
            512 + (s.len() as u64).div_ceil(512) * 512
        } else {
            0
        }
    };
    512 + long(path) + long(target)
}

/// Packs the folder `context` of the site's `files` with `dockerfile` added as
/// [`CONTEXT_DOCKERFILE`], giving up at `deadline`. Only the site's own files go in (a hard
/// link to another owner's file is refused), names must be UTF-8, and what the tar takes —
/// contents and headers — is held to [`MAX_CONTEXT_BYTES`] and [`MAX_CONTEXT_ENTRIES`],
/// measured before any file is read. Blocking: run it on a blocking thread.
pub fn pack(
    files: &SiteFiles,
    context: &str,
    dockerfile: &[u8],
    deadline: std::time::Instant,
) -> Result<Packed, String> {
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
    let uid = files.uid();
    let stop = |why: String| crate::Error::Conflict(why);
    let late = || {
        (std::time::Instant::now() > deadline)
            .then(|| stop("packing the context ran over the build's time limit".to_owned()))
    };
    let too_big = |bytes: u64| {
        format!(
            "the context {context} takes {} after .dockerignore, more than the {} a build may send: leave folders out with .dockerignore",
            model::human_bytes(bytes),
            model::human_bytes(MAX_CONTEXT_BYTES)
        )
    };
    // First, what goes in and what it takes, before a byte is read: the folders' matches are
    // worked out once each (the walk meets a folder before what it holds).
    let mut kept: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut folders: std::collections::HashMap<String, Vec<bool>> = std::collections::HashMap::new();
    let mut total = dockerfile.len() as u64 + entry_cost(CONTEXT_DOCKERFILE, "");
    let mut visited = 0;
    folder
        .walk(&mut |walked| {
            if let Some(err) = late() {
                return Err(err);
            }
            // What .dockerignore leaves out is walked too: it counts, kept or not.
            visited += 1;
            if visited > MAX_VISITED {
                return Err(stop(format!(
                    "the context {context} holds more than {MAX_VISITED} files and folders, left out or not"
                )));
            }
            let (path, size, target, is_folder) = match &walked {
                Walked::Folder { path, .. } => (path, 0, "", true),
                Walked::File { path, size, owner, .. } => {
                    if *owner != uid {
                        return Err(stop(format!(
                            "{path} is not the site's own file (a link to another owner's file?): it is not sent"
                        )));
                    }
                    (path, *size, "", false)
                }
                Walked::Link { path, target } => (path, 0, target.as_str(), false),
            };
            if path.contains('\u{fffd}') || target.contains('\u{fffd}') {
                return Err(stop(format!("{path}: a name that is not UTF-8 cannot be sent")));
            }
            let parent = path.rsplit_once('/').map_or("", |(parent, _)| parent);
            let matching = ignore.matching(path, folders.get(parent).map_or(&[][..], Vec::as_slice));
            let ours = path == CONTEXT_DOCKERFILE || path.starts_with(&format!("{CONTEXT_DOCKERFILE}/"));
            // A folder left out may hold what a later `!` pattern takes back in.
            let out = ours || ignore.decides_out(&matching);
            if is_folder {
                folders.insert(path.clone(), matching);
            }
            if !out {
                total += size + entry_cost(path, target);
                kept.insert(path.clone());
                if kept.len() > MAX_CONTEXT_ENTRIES {
                    return Err(stop(format!(
                        "the context {context} holds more than {MAX_CONTEXT_ENTRIES} files and folders after .dockerignore"
                    )));
                }
            }
            Ok(())
        })
        .map_err(|e: crate::Error| match e {
            crate::Error::Conflict(why) => why,
            other => other.to_string(),
        })?;
    if total > MAX_CONTEXT_BYTES {
        return Err(too_big(total));
    }
    // Then the tar, of what was kept: a file grown since is read no further than the room.
    let mut tar = orchestrator::BuildContext::default();
    let mut sent = dockerfile.len() as u64 + entry_cost(CONTEXT_DOCKERFILE, "");
    let failed = |e: orchestrator::Error| stop(e.to_string());
    folder
        .walk(&mut |walked| {
            if let Some(err) = late() {
                return Err(err);
            }
            match walked {
                Walked::Folder { path, .. } if kept.contains(&path) => {
                    sent += entry_cost(&path, "");
                    if sent > MAX_CONTEXT_BYTES {
                        return Err(stop(too_big(sent)));
                    }
                    tar.add_folder(&path).map_err(failed)?;
                }
                Walked::File {
                    path,
                    file,
                    size,
                    mode,
                    owner,
                    ..
                } if kept.contains(&path) => {
                    if owner != uid {
                        return Err(stop(format!("{path} is not the site's own file: it is not sent")));
                    }
                    sent += entry_cost(&path, "");
                    let room = MAX_CONTEXT_BYTES.saturating_sub(sent);
                    let mut bytes = Vec::with_capacity(usize::try_from(size.min(room)).unwrap_or(0));
                    std::io::Read::read_to_end(&mut std::io::Read::take(file, room + 1), &mut bytes)
                        .map_err(crate::Error::internal)?;
                    sent += bytes.len() as u64;
                    if sent > MAX_CONTEXT_BYTES {
                        return Err(stop(too_big(sent)));
                    }
                    tar.add_file(&path, mode, &bytes).map_err(failed)?;
                }
                Walked::Link { path, target } if kept.contains(&path) => {
                    sent += entry_cost(&path, &target);
                    if sent > MAX_CONTEXT_BYTES {
                        return Err(stop(too_big(sent)));
                    }
                    tar.add_link(&path, &target).map_err(failed)?;
                }
                _ => {}
            }
            Ok::<_, crate::Error>(())
        })
        .map_err(|e| match e {
            crate::Error::Conflict(why) => why,
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
        let good = "\u{feff}# syntax=docker/dockerfile:1\n# a comment\nARG V=1\nFROM director/node:20 AS Assets\nRUN npm ci \\\n\n  # a comment inside\n  && npm run build\nFROM director/python:3\nCOPY --from=assets /out /app\nCOPY --from=0 /x /y\nCOPY [\"a b\", \"/c/\"]\nADD --chown=1:1 app.tar /app/\ncopy\t--from=director/node:20 /usr/bin/node /x\n";
        let checked = check(good.as_bytes(), &catalogue()).unwrap();
        assert_eq!(checked.bases, vec!["director/node:20", "director/python:3"]);
        // What is built is what was read: one instruction a line, nothing else.
        assert_eq!(
            checked.canonical,
            "ARG V=1\nFROM director/node:20 AS Assets\nRUN npm ci  && npm run build\nFROM director/python:3\nCOPY --from=assets /out /app\nCOPY --from=0 /x /y\nCOPY [\"a b\", \"/c/\"]\nADD --chown=1:1 app.tar /app/\nCOPY --from=director/node:20 /usr/bin/node /x\n"
        );
        for (bad, why) in [
            ("FROM debian:bookworm\n", "catalogue image"),
            ("FROM $BASE\n", "catalogue image"),
            ("FROM --platform=linux/arm64 director/python:3\n", "no options"),
            // A number is an image id to the engine, never a stage.
            ("FROM director/python:3\nFROM 0\n", "earlier stage"),
            ("FROM director/python:3 AS 0123\n", "stage's name"),
            (
                "FROM director/python:3\nADD http://169.254.169.254/latest/meta-data /x\n",
                "network",
            ),
            (
                "FROM director/python:3\nADD [\"https://10.0.0.1/x\", \"/x\"]\n",
                "plainly",
            ),
            (
                "FROM director/python:3\nadd \\\n  git@github.com:a/b.git /x\n",
                "network",
            ),
            (
                "FROM director/python:3\nARG U=http://127.0.0.1:2019/\nADD $U /x\n",
                "network",
            ),
            ("FROM director/python:3\nADD ${U} /x\n", "network"),
            ("FROM director/python:3\nADD http:/\\/127.0.0.1/ /x\n", "network"),
            (
                "FROM director/python:3\nADD http:\"//\"127.0.0.1/ /x\n",
                "network",
            ),
            ("FROM director/python:3\nADD [ http://127.0.0.1/x /y\n", "plainly"),
            (
                "FROM director/python:3\nRUN echo \\\u{c}\nADD http://x/ /y\n",
                "control characters",
            ),
            ("# escape=`\nFROM director/python:3\n", "escape"),
            ("#escape\t=\\\nFROM director/python:3\n", "escape"),
            (
                "FROM director/python:3\nCOPY --from=alpine /etc/passwd /x\n",
                "earlier stage",
            ),
            ("FROM director/python:3\nCOPY --from=1 /x /y\n", "earlier stage"),
            (
                "FROM director/python:3\nCOPY --from=$X /x /y\n",
                "an option is written",
            ),
            ("FROM director/python:3\nONBUILD ADD http://x/y /z\n", "network"),
            ("FROM director/python:3\nWGET http://x/y\n", "not an instruction"),
            // A byte of a non-ASCII letter ends a word where the engine reads options.
            (
                "FROM director/python:3\nCOPY --chown=0\u{e0}--from=director/node:20 /x /y\n",
                "an option is written",
            ),
            (
                "FROM director/python:3\nADD --chown=0\u{e0}http://127.0.0.1:18931/x /y\n",
                "an option is written",
            ),
            (
                "FROM director/python:3\nCOPY --chown 0 --from=alpine /a /b\n",
                "an option is written",
            ),
            (
                "FROM director/python:3\nRUN --network=host id\n",
                "RUN takes no options",
            ),
            (
                "FROM director/python:3\nONBUILD RUN <<USER\nFROM director/python:3 AS ubuntu\nUSER\nFROM ubuntu\n",
                "heredocs",
            ),
            // A Unicode space the engine trims, hiding ADD's JSON form from the words here.
            (
                "FROM director/python:3\nADD --chown=0 \u{2003}[\"http://169.254.169.254/\",\"/x\"]\n",
                "unusual spaces",
            ),
            ("FROM director/python:3\nADD a\u{a0}b /x\n", "unusual spaces"),
            // The current stage's own name is an image to the engine.
            (
                "FROM director/python:3 AS alpine\nCOPY --from=alpine / /x\n",
                "earlier stage",
            ),
            (
                "FROM director/python:3 AS ab3\nCOPY --from=ab3 / /stolen\n",
                "earlier stage",
            ),
            ("FROM director/python:3\nCOPY --from=0 / /x\n", "earlier stage"),
            ("RUN id\nFROM director/python:3\n", "before the first FROM"),
            ("# only a comment\n", "no FROM"),
        ] {
            let err = check(bad.as_bytes(), &catalogue()).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        // A line whose \\ continues it never hides the next instruction from the check: both
        // become one instruction in what is sent.
        let joined = check(
            b"FROM director/python:3\nRUN echo \\\\\nADD http://x/ /y\n",
            &catalogue(),
        )
        .unwrap();
        assert!(
            joined.canonical.ends_with("RUN echo \\ ADD http://x/ /y\n"),
            "{}",
            joined.canonical
        );
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
    }

    #[test]
    fn dockerignore_patterns_cannot_take_long_to_match() {
        let many = "x\n".repeat(MAX_PATTERNS + 1);
        assert!(Ignore::parse(&many).is_err());
        assert!(Ignore::parse(&"**/".repeat(100)).is_err());
        let heavy = Ignore::parse(&format!("{}x\n", "**/".repeat(80)).repeat(MAX_PATTERNS)).unwrap();
        let deep = vec!["a"; 120].join("/");
        let started = std::time::Instant::now();
        assert!(!heavy.leaves_out(&deep));
        // Not a timing assertion of the product: a guard that the pattern is collapsed.
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
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
