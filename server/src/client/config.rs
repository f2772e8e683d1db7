//! Where the command line keeps the server and token it uses: `DIRECTOR_URL` and
//! `DIRECTOR_TOKEN`, else `$XDG_CONFIG_HOME/director/config.toml` (`~/.config/…`), written by
//! `director login`, readable by its owner only.

use std::{
    io::{BufRead as _, IsTerminal as _, Write as _},
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _},
    path::PathBuf,
};

use serde::{Deserialize, Serialize};

use super::{Api, Failure, Outcome};

/// A server and the token to use it with.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// The manager's address.
    pub url: String,
    /// A personal access token.
    pub token: String,
}

fn path() -> Outcome<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))
        .ok_or_else(|| Failure::Failed("neither XDG_CONFIG_HOME nor HOME is set".to_owned()))?;
    Ok(base.join("director").join("config.toml"))
}

impl ClientConfig {
    /// The server and token to use: the environment's, else the file's.
    pub fn load() -> Outcome<Self> {
        let (url, token) = (
            std::env::var("DIRECTOR_URL").ok(),
            std::env::var("DIRECTOR_TOKEN").ok(),
        );
        if let (Some(url), Some(token)) = (&url, &token) {
            return Ok(Self {
                url: url.clone(),
                token: token.clone(),
            });
        }
        let path = path()?;
        let kept: Self = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text)
                .map_err(|err| Failure::Failed(format!("{} cannot be read: {err}", path.display())))?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(Failure::Refused(
                    "not signed in: run `director login <url>` (or set DIRECTOR_URL and DIRECTOR_TOKEN)"
                        .to_owned(),
                ));
            }
            Err(err) => return Err(Failure::Failed(format!("reading {}: {err}", path.display()))),
        };
        // The kept token goes to the server it was made for only: DIRECTOR_URL alone naming
        // another server needs DIRECTOR_TOKEN too.
        match (url, token) {
            (Some(url), None) if url.trim_end_matches('/') != kept.url => Err(Failure::Refused(format!(
                "the kept token is {}'s: set DIRECTOR_TOKEN for {url}, or run `director login {url}`",
                kept.url
            ))),
            (url, token) => Ok(Self {
                url: url.unwrap_or(kept.url),
                token: token.unwrap_or(kept.token),
            }),
        }
    }

    /// Keeps it for later commands, readable by its owner only.
    fn save(&self) -> Outcome<PathBuf> {
        let path = path()?;
        let fail = |err: std::io::Error| Failure::Failed(format!("writing {}: {err}", path.display()));
        if let Some(dir) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(fail)?;
        }
        let text = toml::to_string(self).map_err(|err| Failure::Failed(err.to_string()))?;
        // Written aside and renamed: the old file stays whole until the new one is. The aside
        // file is made new (whatever was left under its name, a link too, goes first), so it is
        // born 0600 and is nothing but this file.
        let aside = path.with_extension("toml.new");
        match std::fs::remove_file(&aside) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(fail(err)),
            _ => {}
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&aside)
            .map_err(fail)?;
        file.write_all(text.as_bytes()).map_err(fail)?;
        file.sync_all().map_err(fail)?;
        std::fs::rename(&aside, &path).map_err(fail)?;
        Ok(path)
    }
}

/// `director login <url>`: reads a token from standard input, checks it with the server, and
/// keeps both.
pub async fn login(url: &str) -> Outcome {
    let url = url.trim_end_matches('/');
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(Failure::Failed(format!(
            "{url} is not an http:// or https:// address"
        )));
    }
    let local = url::Url::parse(url)
        .ok()
        .and_then(|parsed| parsed.host_str().map(str::to_owned))
        .is_some_and(|host| host == "localhost" || host == "127.0.0.1" || host == "[::1]");
    if url.starts_with("http://") && !local {
        eprintln!("director: warning: {url} is plain HTTP: the token crosses the network unencrypted");
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("Paste a token made on {url}/account: ");
        let _ = std::io::stderr().flush();
    }
    let mut token = String::new();
    stdin
        .lock()
        .read_line(&mut token)
        .map_err(|err| Failure::Failed(format!("reading the token: {err}")))?;
    let token = token.trim().to_owned();
    if token.is_empty() {
        return Err(Failure::Failed("no token given".to_owned()));
    }
    let me = Api::new(url.to_owned(), token.clone()).get("/api/v1/me").await?;
    let path = ClientConfig {
        url: url.to_owned(),
        token,
    }
    .save()?;
    println!(
        "Signed in to {url} as {} ({}); kept in {}.",
        me["username"].as_str().unwrap_or_default(),
        me["scopes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        path.display()
    );
    Ok(())
}
