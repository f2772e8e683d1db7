//! A site's output, as its page shows it: the newest lines of its service, across its tasks
//! (so a restart or an update does not lose what came before).

use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use orchestrator::{LogOptions, LogStream, SiteId};

use super::SiteKind;
use crate::{Actor, Error, Platform, Result};

/// The most lines a page asks for at once.
pub const MAX_LOG_LINES: u32 = 500;
/// How long reading the lines may take before what came is returned.
const READ_FOR: std::time::Duration = std::time::Duration::from_secs(5);

/// One line a site wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// When the engine received it.
    pub at: DateTime<Utc>,
    /// Written to standard error.
    pub stderr: bool,
    /// The line.
    pub text: String,
}

impl Platform {
    /// The newest `lines` lines of a site the actor may manage (none for a static site, which
    /// runs no process; none when its service does not exist).
    pub async fn site_logs(&self, actor: Option<&Actor>, site_id: i32, lines: u32) -> Result<Vec<LogEntry>> {
        let site = self.site(actor, site_id).await?;
        if site.kind == SiteKind::Static {
            return Ok(Vec::new());
        }
        let runtime = self.runtime("Logs are")?;
        let options = LogOptions {
            follow: false,
            since: None,
            tail: Some(lines.clamp(1, MAX_LOG_LINES)),
            timestamps: true,
        };
        let stream = runtime
            .orchestrator
            .logs(SiteId(u32::try_from(site.id).unwrap_or(0)), options);
        let mut entries = Vec::new();
        let read = async {
            futures::pin_mut!(stream);
            while let Some(line) = stream.next().await {
                match line {
                    Ok(line) => entries.push(entry(line.stream, &line.text)),
                    Err(orchestrator::Error::NotFound(_)) => break,
                    Err(err) => {
                        tracing::warn!(site = %site.name, error = %err, "reading a site's logs failed");
                        // Docker did not give them: worth trying again, not the request's fault.
                        return Err(Error::EngineUnavailable(
                            "The site's logs could not be read just now.".to_owned(),
                        ));
                    }
                }
            }
            Ok(())
        };
        match tokio::time::timeout(READ_FOR, read).await {
            Ok(result) => result?,
            Err(_) => tracing::warn!(site = %site.name, "reading a site's logs timed out; showing what came"),
        }
        // Tasks' lines arrive task by task; the page reads them in time order.
        entries.sort_by_key(|e| e.at);
        Ok(entries)
    }
}

impl Platform {
    /// A site's output as it is written, from its last `tail` lines on, for as long as the
    /// caller reads (nothing for a static site). The check is made once, here: the stream
    /// carries no credentials further.
    pub async fn follow_site_logs(
        &self,
        actor: Option<&Actor>,
        site_id: i32,
        tail: u32,
    ) -> Result<impl futures::Stream<Item = Result<LogEntry>> + Send + use<>> {
        let site = self.site(actor, site_id).await?;
        let lines = match site.kind {
            SiteKind::Static => None,
            SiteKind::Dynamic => {
                let options = LogOptions {
                    follow: true,
                    since: None,
                    tail: Some(tail.min(MAX_LOG_LINES)),
                    timestamps: true,
                };
                Some(
                    self.runtime("Logs are")?
                        .orchestrator
                        .logs(site.engine_id(), options),
                )
            }
        };
        Ok(futures::stream::iter(lines)
            .flatten()
            .take_while(|line| std::future::ready(!matches!(line, Err(orchestrator::Error::NotFound(_)))))
            .map(move |line| match line {
                Ok(line) => Ok(entry(line.stream, &line.text)),
                Err(err) => {
                    tracing::warn!(site = site_id, error = %err, "following a site's logs failed");
                    Err(Error::EngineUnavailable(
                        "The site's logs could not be read just now.".to_owned(),
                    ))
                }
            }))
    }
}

/// A line with the engine's RFC 3339 timestamp in front.
fn entry(stream: LogStream, raw: &str) -> LogEntry {
    let (at, text) = raw
        .split_once(' ')
        .and_then(|(ts, text)| Some((DateTime::parse_from_rfc3339(ts).ok()?.with_timezone(&Utc), text)))
        .unwrap_or((DateTime::<Utc>::MIN_UTC, raw));
    LogEntry {
        at,
        stderr: stream == LogStream::Stderr,
        text: text.to_owned(),
    }
}
