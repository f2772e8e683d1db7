//! The certificate worker's schedule: it keeps the manager's record of every served host's
//! certificate true to what the edge holds, and makes the edge get certificates before
//! visitors need them. What it does each time is the platform's
//! ([`Platform::check_certificates`], [`Platform::record_certificate_event`]); here is when:
//! a pass every [`PASS_EVERY`] (all hosts every [`FULL_PASS_EVERY`] passes), and each report
//! of Caddy's log as it comes.

use std::time::Duration;

use chrono::Utc;
use futures::StreamExt as _;
use orchestrator::edge::Caddy;
use platform::{Platform, sites::CertificatePass};
use tokio::sync::watch;

/// How often new and failing hosts are looked at.
pub const PASS_EVERY: Duration = Duration::from_secs(5);
/// Every how many passes the certificates already issued are read again from the edge's
/// storage (a renewal also arrives at once through the edge's log): a full pass reads one small
/// file per host, which at thousands of hosts is not for every five seconds.
const FULL_PASS_EVERY: u32 = 60;
/// How long to wait before following the edge's log again after it could not be read (an
/// engine whose log driver keeps no logs, say).
const LOG_RETRY: Duration = Duration::from_secs(30);

/// Runs until `shutdown` turns true, whenever the runtime's edge serves HTTPS.
pub async fn run(platform: Platform, mut shutdown: watch::Receiver<bool>) {
    let mut runtime = platform.runtime_changes();
    loop {
        let edge = runtime
            .borrow_and_update()
            .as_ref()
            .map(|r| r.edge.clone())
            .filter(|edge| edge.acme().is_some());
        match edge {
            Some(edge) => {
                tokio::select! {
                    () = watch_edge(&platform, &edge) => {}
                    changed = runtime.changed() => if changed.is_err() { return },
                    _ = shutdown.changed() => return,
                }
            }
            None => tokio::select! {
                changed = runtime.changed() => if changed.is_err() { return },
                _ = shutdown.changed() => return,
            },
        }
    }
}

/// Passes and log events on one edge, for ever.
async fn watch_edge(platform: &Platform, edge: &Caddy) {
    // Reports from shortly before this start are read too: a restarted manager misses little
    // (reports read twice change nothing).
    let mut events = std::pin::pin!(edge.certificate_events(Utc::now().timestamp() - 600));
    // While the log cannot be followed, passes go on; it is followed again from this instant.
    let mut follow_again: Option<tokio::time::Instant> = None;
    let mut tick = tokio::time::interval(PASS_EVERY);
    let mut passes = 0u32;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let pass = if passes.is_multiple_of(FULL_PASS_EVERY) {
                    CertificatePass::All
                } else {
                    CertificatePass::NotIssued
                };
                passes = passes.wrapping_add(1);
                if let Err(err) = platform.check_certificates(edge, pass).await {
                    tracing::warn!(error = ?err, "checking certificates failed");
                }
            }
            event = events.next(), if follow_again.is_none() => match event {
                Some(Ok(event)) => {
                    if let Err(err) = platform.record_certificate_event(edge, event).await {
                        tracing::warn!(error = ?err, "recording a certificate event failed");
                    }
                }
                Some(Err(err)) => {
                    tracing::warn!(error = %err, retry_in = ?LOG_RETRY, "reading the edge's log failed");
                    follow_again = Some(tokio::time::Instant::now() + LOG_RETRY);
                }
                // The container stopped or was replaced: follow the new one.
                None => follow_again = Some(tokio::time::Instant::now() + Duration::from_secs(1)),
            },
            () = tokio::time::sleep_until(follow_again.unwrap_or_else(tokio::time::Instant::now)), if follow_again.is_some() => {
                follow_again = None;
                events.set(edge.certificate_events(Utc::now().timestamp() - 2));
            }
        }
    }
}
