//! `director` as a client of a Director server's REST API: what a member does in the browser,
//! from a terminal or a script.
//!
//! Exit codes scripts can rely on: 0 done, 1 failed (an operation failed, the server refused
//! for another reason, or could not be reached), 2 usage, 3 not found, not allowed or not
//! signed in. `--json` prints the API's own JSON.

mod config;
mod follow;

use std::{io::Write as _, process::ExitCode};

use clap::{Args, Subcommand};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub use config::ClientConfig;

/// Client commands (`director sites …`, `director logs …`, …).
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Remember a server and a personal access token (made on its account page); the token is
    /// read from standard input. `DIRECTOR_URL` and `DIRECTOR_TOKEN` override what is kept.
    Login {
        /// The manager's address, e.g. https://director.example.org
        url: String,
    },
    /// Sites.
    #[command(subcommand)]
    Sites(SitesCommand),
    /// A dynamic site's output (`-f` follows it as it is written).
    Logs {
        /// The site's name.
        site: String,
        /// Follow new lines until interrupted.
        #[arg(short, long)]
        follow: bool,
        /// How many of the newest lines.
        #[arg(long, default_value_t = 100)]
        lines: u32,
    },
    /// A site's files.
    #[command(subcommand)]
    Files(FilesCommand),
    /// A site's own domains.
    #[command(subcommand)]
    Domains(DomainsCommand),
    /// Operations.
    #[command(subcommand)]
    Ops(OpsCommand),
    /// Opens a shell in a site's terminal over SSH (runs `ssh` with this server's host and port).
    Ssh {
        /// The site's name.
        site: String,
    },
}

/// `director sites …`
#[derive(Debug, Subcommand)]
pub enum SitesCommand {
    /// Your sites (`--all`: every site, with an admin token).
    Ls {
        #[arg(long)]
        all: bool,
        /// Only those with this in their name.
        #[arg(long)]
        name: Option<String>,
    },
    /// Makes a site and waits until it is made.
    Create(NewSiteArgs),
    /// One site.
    Show { site: String },
    /// Deletes a site and everything it has.
    Rm {
        site: String,
        /// Do not wait for the deletion to finish.
        #[arg(long)]
        no_wait: bool,
    },
    /// Restarts a dynamic site and waits for its new task.
    Restart { site: String },
    /// Prints the site's address and opens it in a browser when one is at hand.
    Open { site: String },
}

/// `director sites create`
#[derive(Debug, Args)]
pub struct NewSiteArgs {
    /// Its name: it is served at `<name>.<sites domain>`.
    pub name: String,
    /// `static` or `dynamic`.
    #[arg(long, default_value = "static")]
    pub kind: String,
    /// A catalogue image (dynamic sites).
    #[arg(long, default_value = "")]
    pub image: String,
    #[arg(long, default_value = "")]
    pub description: String,
    /// Do not wait for it to be made.
    #[arg(long)]
    pub no_wait: bool,
}

/// `director files …`
#[derive(Debug, Subcommand)]
pub enum FilesCommand {
    /// A folder's entries.
    Ls {
        site: String,
        #[arg(default_value = "")]
        path: String,
    },
    /// Downloads a file (a folder as a zip) to `--output` or standard output.
    Get {
        site: String,
        path: String,
        #[arg(short, long)]
        output: Option<std::path::PathBuf>,
    },
    /// Uploads local files into a folder of the site.
    Put {
        site: String,
        /// Local files.
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
        /// The site's folder to put them in.
        #[arg(long, default_value = "")]
        to: String,
        /// Overwrite files of the same names.
        #[arg(long)]
        replace: bool,
    },
    /// Deletes a file, a link or a folder with everything in it.
    Rm { site: String, path: String },
}

/// `director domains …`
#[derive(Debug, Subcommand)]
pub enum DomainsCommand {
    /// The site's domains, and the TXT record that proves each.
    Ls { site: String },
    /// Adds a domain (served once its TXT record proves it).
    Add { site: String, host: String },
    /// Checks a domain's TXT record now.
    Verify { site: String, host: String },
    /// Removes a domain.
    Rm { site: String, host: String },
}

/// `director ops …`
#[derive(Debug, Subcommand)]
pub enum OpsCommand {
    /// Waits for an operation to end, showing its progress; fails if it failed.
    Wait { id: i64 },
}

/// Why a command did not succeed, and the exit code that says so.
#[derive(Debug)]
pub enum Failure {
    /// It failed (1).
    Failed(String),
    /// Not found, not allowed, not signed in (3).
    Refused(String),
}

impl Failure {
    fn exit_code(&self) -> ExitCode {
        match self {
            Self::Failed(_) => ExitCode::from(1),
            Self::Refused(_) => ExitCode::from(3),
        }
    }

    fn message(&self) -> &str {
        match self {
            Self::Failed(message) | Self::Refused(message) => message,
        }
    }
}

type Outcome<T = ()> = Result<T, Failure>;

/// Runs a client command, printing what it did (or its JSON) and why it failed.
pub async fn run(command: ClientCommand, as_json: bool) -> ExitCode {
    let outcome = match command {
        ClientCommand::Login { url } => config::login(&url).await,
        other => match Api::from_config() {
            Ok(api) => {
                let out = Out { json: as_json };
                api.run(other, out).await
            }
            Err(failure) => Err(failure),
        },
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("director: {}", failure.message());
            failure.exit_code()
        }
    }
}

/// Where results go: people's words or the API's JSON.
#[derive(Debug, Clone, Copy)]
struct Out {
    json: bool,
}

impl Out {
    /// Prints `value` as JSON, or `human` for people.
    fn show(self, value: &Value, human: impl FnOnce(&Value) -> String) {
        let text = if self.json {
            serde_json::to_string_pretty(value).unwrap_or_default()
        } else {
            human(value)
        };
        let mut stdout = std::io::stdout().lock();
        // A closed pipe (`| head`) is not the command's failure.
        let _ = writeln!(stdout, "{}", text.trim_end());
    }
}

/// A server's API, with the token to use it.
#[derive(Debug, Clone)]
struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    fn from_config() -> Outcome<Self> {
        let config = ClientConfig::load()?;
        Ok(Self::new(config.url, config.token))
    }

    fn new(base: String, token: String) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            token,
            // No redirect is followed: one to another scheme on the same host would carry the
            // token along (reqwest keeps it while host and port stay), over plain HTTP too.
            http: reqwest::Client::builder()
                .user_agent(concat!("director-cli/", env!("CARGO_PKG_VERSION")))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
        }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    /// Sends a request and reads its JSON answer (Null for an empty one).
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Outcome<Value> {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(unreachable)?;
        answer(response).await
    }

    async fn get(&self, path: &str) -> Outcome<Value> {
        self.call(Method::GET, path, None).await
    }

    /// The id of the site called `name` — or, written `#12`, of site 12 (a site's name may be
    /// all digits: a number alone is always a name).
    async fn site_id(&self, name: &str) -> Outcome<i64> {
        if let Some(id) = name.strip_prefix('#').and_then(|id| id.parse::<i64>().ok()) {
            return Ok(id);
        }
        for all in ["false", "true"] {
            let mut after: Option<String> = None;
            loop {
                let mut query = format!("/api/v1/sites?limit=200&all={all}&name={}", urlencode(name));
                if let Some(after) = &after {
                    query.push_str(&format!("&after={}", urlencode(after)));
                }
                let page = match self.get(&query).await {
                    Ok(page) => page,
                    // Not an admin's token: the caller's own sites were all there was to look in.
                    Err(Failure::Refused(_)) if all == "true" => break,
                    Err(failure) => return Err(failure),
                };
                let found = page["sites"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|site| site["name"] == name)
                    .and_then(|site| site["id"].as_i64());
                if let Some(id) = found {
                    return Ok(id);
                }
                match page["next"].as_str() {
                    Some(next) => after = Some(next.to_owned()),
                    None => break,
                }
            }
        }
        Err(Failure::Refused(format!(
            "no site called {name} that you may manage"
        )))
    }

    async fn run(&self, command: ClientCommand, out: Out) -> Outcome {
        match command {
            ClientCommand::Login { .. } => Ok(()),
            ClientCommand::Sites(command) => self.sites(command, out).await,
            ClientCommand::Logs { site, follow, lines } => {
                let id = self.site_id(&site).await?;
                if follow {
                    follow::logs(self, id, lines, out).await
                } else {
                    let lines = self
                        .get(&format!("/api/v1/sites/{id}/logs?lines={lines}"))
                        .await?;
                    out.show(&lines, |lines| {
                        lines
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|line| format!("{}\n", line["text"].as_str().unwrap_or_default()))
                            .collect()
                    });
                    Ok(())
                }
            }
            ClientCommand::Files(command) => self.files(command, out).await,
            ClientCommand::Domains(command) => self.domains(command, out).await,
            ClientCommand::Ops(OpsCommand::Wait { id }) => follow::operation(self, id, out).await,
            ClientCommand::Ssh { site } => self.ssh(&site).await,
        }
    }

    async fn sites(&self, command: SitesCommand, out: Out) -> Outcome {
        match command {
            SitesCommand::Ls { all, name } => {
                let mut sites = Vec::new();
                let mut after: Option<String> = None;
                loop {
                    let mut query = format!("/api/v1/sites?limit=200&all={all}");
                    if let Some(name) = &name {
                        query.push_str(&format!("&name={}", urlencode(name)));
                    }
                    if let Some(after) = &after {
                        query.push_str(&format!("&after={}", urlencode(after)));
                    }
                    let page = self.get(&query).await?;
                    sites.extend(page["sites"].as_array().cloned().unwrap_or_default());
                    match page["next"].as_str() {
                        Some(next) => after = Some(next.to_owned()),
                        None => break,
                    }
                }
                out.show(&Value::Array(sites), |sites| {
                    table(
                        &["NAME", "KIND", "STATE", "URL"],
                        sites.as_array().into_iter().flatten().map(|site| {
                            vec![
                                text(&site["name"]),
                                text(&site["kind"]),
                                text(&site["state"]),
                                text(&site["url"]),
                            ]
                        }),
                    )
                });
                Ok(())
            }
            SitesCommand::Create(new) => {
                let made = self
                    .call(
                        Method::POST,
                        "/api/v1/sites",
                        Some(json!({
                            "name": new.name,
                            "kind": new.kind,
                            "image": new.image,
                            "description": new.description,
                        })),
                    )
                    .await?;
                let operation = made["operation"].as_i64().unwrap_or_default();
                if !new.no_wait {
                    follow::operation(self, operation, Out { json: false }).await?;
                }
                let site = self.get(&format!("/api/v1/sites/{}", made["site"]["id"])).await?;
                out.show(&site, |site| {
                    format!("{} is at {}", text(&site["name"]), text(&site["url"]))
                });
                Ok(())
            }
            SitesCommand::Show { site } => {
                let id = self.site_id(&site).await?;
                let site = self.get(&format!("/api/v1/sites/{id}")).await?;
                out.show(&site, |site| {
                    let mut lines = String::new();
                    for key in [
                        "name",
                        "kind",
                        "state",
                        "availability",
                        "image",
                        "url",
                        "description",
                    ] {
                        lines.push_str(&format!("{key:<13}{}\n", text(&site[key])));
                    }
                    let domains: Vec<String> = site["domains"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(text)
                        .collect();
                    lines.push_str(&format!("{:<13}{}\n", "domains", domains.join(", ")));
                    lines
                });
                Ok(())
            }
            SitesCommand::Rm { site, no_wait } => {
                let id = self.site_id(&site).await?;
                let queued = self
                    .call(Method::DELETE, &format!("/api/v1/sites/{id}"), None)
                    .await?;
                if !no_wait {
                    follow::operation(
                        self,
                        queued["operation"].as_i64().unwrap_or_default(),
                        Out { json: false },
                    )
                    .await?;
                }
                out.show(&queued, |_| format!("{site} deleted"));
                Ok(())
            }
            SitesCommand::Restart { site } => {
                let id = self.site_id(&site).await?;
                let queued = self
                    .call(Method::POST, &format!("/api/v1/sites/{id}/restart"), None)
                    .await?;
                follow::operation(
                    self,
                    queued["operation"].as_i64().unwrap_or_default(),
                    Out { json: false },
                )
                .await?;
                out.show(&queued, |_| format!("{site} restarted"));
                Ok(())
            }
            SitesCommand::Open { site } => {
                let id = self.site_id(&site).await?;
                let site = self.get(&format!("/api/v1/sites/{id}")).await?;
                let url = text(&site["url"]);
                out.show(&site, |_| url.clone());
                // Opening is a convenience: without a desktop, the address printed is the answer.
                let _ = std::process::Command::new("xdg-open")
                    .arg(&url)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn();
                Ok(())
            }
        }
    }

    async fn files(&self, command: FilesCommand, out: Out) -> Outcome {
        match command {
            FilesCommand::Ls { site, path } => {
                let id = self.site_id(&site).await?;
                let entries = self
                    .get(&format!("/api/v1/sites/{id}/files?path={}", urlencode(&path)))
                    .await?;
                out.show(&entries, |entries| {
                    table(
                        &["MODE", "SIZE", "NAME"],
                        entries.as_array().into_iter().flatten().map(|entry| {
                            let mut name = text(&entry["name"]);
                            if entry["kind"] == "folder" {
                                name.push('/');
                            }
                            vec![text(&entry["mode"]), text(&entry["size"]), name]
                        }),
                    )
                });
                Ok(())
            }
            FilesCommand::Get { site, path, output } => {
                let id = self.site_id(&site).await?;
                let response = self
                    .request(
                        Method::GET,
                        &format!("/api/v1/sites/{id}/files/download?path={}", urlencode(&path)),
                    )
                    .send()
                    .await
                    .map_err(unreachable)?;
                if !response.status().is_success() {
                    answer(response).await?;
                    return Ok(());
                }
                // Written as it arrives: a large file or folder is never held whole.
                let write_error =
                    |err: std::io::Error| Failure::Failed(format!("writing the file out: {err}"));
                let mut out: Box<dyn tokio::io::AsyncWrite + Unpin + Send> = match &output {
                    Some(file) => Box::new(tokio::fs::File::create(file).await.map_err(write_error)?),
                    None => Box::new(tokio::io::stdout()),
                };
                let mut body = response.bytes_stream();
                while let Some(chunk) = futures::StreamExt::next(&mut body).await {
                    let chunk = chunk.map_err(unreachable)?;
                    tokio::io::AsyncWriteExt::write_all(&mut out, &chunk)
                        .await
                        .map_err(write_error)?;
                }
                tokio::io::AsyncWriteExt::flush(&mut out)
                    .await
                    .map_err(write_error)?;
                Ok(())
            }
            FilesCommand::Put {
                site,
                files,
                to,
                replace,
            } => {
                let id = self.site_id(&site).await?;
                let mut form = reqwest::multipart::Form::new();
                if replace {
                    form = form.text("replace", "1");
                }
                for file in &files {
                    let name = file
                        .file_name()
                        .and_then(|name| name.to_str())
                        .ok_or_else(|| Failure::Failed(format!("{} has no file name", file.display())))?
                        .to_owned();
                    // Sent as it is read: a large file is never held whole.
                    let read_error =
                        |err: std::io::Error| Failure::Failed(format!("reading {}: {err}", file.display()));
                    let opened = tokio::fs::File::open(file).await.map_err(read_error)?;
                    let length = opened.metadata().await.map_err(read_error)?.len();
                    let part =
                        reqwest::multipart::Part::stream_with_length(reqwest::Body::from(opened), length);
                    form = form.part("file", part.file_name(name));
                }
                let response = self
                    .request(
                        Method::POST,
                        &format!("/api/v1/sites/{id}/files/upload?path={}", urlencode(&to)),
                    )
                    .multipart(form)
                    .send()
                    .await
                    .map_err(unreachable)?;
                let status = response.status();
                let report: Value = response.json().await.map_err(unreachable)?;
                let refused: Vec<String> = report["refused"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| format!("{}: {}", text(&r["name"]), text(&r["message"])))
                    .collect();
                if report.get("saved").is_none() && !status.is_success() {
                    return Err(failure_of(status, &report));
                }
                out.show(&report, |report| {
                    report["saved"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|s| format!("saved {} ({} bytes)\n", text(&s["name"]), text(&s["size"])))
                        .collect()
                });
                if refused.is_empty() {
                    Ok(())
                } else {
                    Err(Failure::Failed(format!("refused: {}", refused.join("; "))))
                }
            }
            FilesCommand::Rm { site, path } => {
                let id = self.site_id(&site).await?;
                self.call(
                    Method::DELETE,
                    &format!("/api/v1/sites/{id}/files?path={}", urlencode(&path)),
                    None,
                )
                .await?;
                out.show(&json!({"deleted": path}), |_| format!("deleted {path}"));
                Ok(())
            }
        }
    }

    async fn domains(&self, command: DomainsCommand, out: Out) -> Outcome {
        let (site, host) = match &command {
            DomainsCommand::Ls { site } => (site, None),
            DomainsCommand::Add { site, host }
            | DomainsCommand::Verify { site, host }
            | DomainsCommand::Rm { site, host } => (site, Some(host.to_ascii_lowercase())),
        };
        let id = self.site_id(site).await?;
        let list = format!("/api/v1/sites/{id}/domains");
        let domain_id = |domains: &Value, host: &str| {
            domains
                .as_array()
                .into_iter()
                .flatten()
                .find(|d| d["host"] == host)
                .and_then(|d| d["id"].as_i64())
                .ok_or_else(|| Failure::Refused(format!("{host} is not a domain of {site}")))
        };
        let show_one = |domain: &Value| {
            let state = if domain["verified"] == true {
                "verified, served"
            } else {
                "waiting for its TXT record"
            };
            format!(
                "{}: {state}\n  TXT {} = {}\n",
                text(&domain["host"]),
                text(&domain["txt_name"]),
                text(&domain["txt_value"])
            )
        };
        match command {
            DomainsCommand::Ls { .. } => {
                let domains = self.get(&list).await?;
                out.show(&domains, |domains| {
                    domains.as_array().into_iter().flatten().map(show_one).collect()
                });
            }
            DomainsCommand::Add { .. } => {
                let domain = self
                    .call(Method::POST, &list, Some(json!({ "host": host })))
                    .await?;
                out.show(&domain, show_one);
            }
            DomainsCommand::Verify { .. } => {
                let domains = self.get(&list).await?;
                let domain_id = domain_id(&domains, host.as_deref().unwrap_or_default())?;
                let domain = self
                    .call(Method::POST, &format!("{list}/{domain_id}/verify"), None)
                    .await?;
                out.show(&domain, show_one);
            }
            DomainsCommand::Rm { .. } => {
                let domains = self.get(&list).await?;
                let domain_id = domain_id(&domains, host.as_deref().unwrap_or_default())?;
                self.call(Method::DELETE, &format!("{list}/{domain_id}"), None)
                    .await?;
                out.show(&json!({ "removed": host }), |_| {
                    format!("removed {}", host.unwrap_or_default())
                });
            }
        }
        Ok(())
    }

    /// Replaces this process with `ssh -p <port> <site>@<host>`.
    async fn ssh(&self, site: &str) -> Outcome {
        let me = self.get("/api/v1/me").await?;
        let port = me["ssh_port"]
            .as_u64()
            .ok_or_else(|| Failure::Failed("SSH is turned off on this server".to_owned()))?;
        let host = url::Url::parse(&self.base)
            .ok()
            .and_then(|url| url.host_str().map(str::to_owned))
            .ok_or_else(|| Failure::Failed(format!("{} has no host name", self.base)))?;
        let error = std::os::unix::process::CommandExt::exec(
            std::process::Command::new("ssh")
                .arg("-p")
                .arg(port.to_string())
                .arg(format!("{site}@{host}")),
        );
        Err(Failure::Failed(format!("running ssh: {error}")))
    }
}

/// The JSON of a successful answer, or the failure its problem describes.
async fn answer(response: reqwest::Response) -> Outcome<Value> {
    let status = response.status();
    let bytes = response.bytes().await.map_err(unreachable)?;
    let body: Value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    if status.is_success() {
        Ok(body)
    } else {
        Err(failure_of(status, &body))
    }
}

fn failure_of(status: StatusCode, problem: &Value) -> Failure {
    let detail = problem["detail"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| problem.as_str().map(str::to_owned))
        .unwrap_or_else(|| status.to_string());
    match status {
        StatusCode::UNAUTHORIZED => Failure::Refused(format!(
            "the server did not take the token ({detail}); make one on your account page and run `director login`"
        )),
        StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => Failure::Refused(detail),
        _ => Failure::Failed(detail),
    }
}

fn unreachable(err: reqwest::Error) -> Failure {
    Failure::Failed(format!("the server could not be reached: {err}"))
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// A JSON value as people read it (strings without quotes).
fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Rows under a header, in columns as wide as their widest cell.
fn table(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let rows: Vec<Vec<String>> = std::iter::once(header.iter().map(|h| (*h).to_owned()).collect())
        .chain(rows)
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|column| {
            rows.iter()
                .map(|row| row[column].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            format!("{}\n", cells.join("  ").trim_end())
        })
        .collect()
}
