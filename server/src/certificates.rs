//! The certificate worker: keeps the manager's record of every served host's certificate true
//! to what the edge holds, and makes the edge get certificates before visitors need them.
//!
//! Caddy does the ACME work (on demand, with its own retries); this worker
//! - every [`PASS_EVERY`], reads each served host's certificate from Caddy's storage (issued,
//!   expiry — renewals show as a new expiry), and starts a handshake for hosts that have none
//!   and are due ([`CertificateRecord::due`]): new hosts, lost requests, failures the edge
//!   did not retry;
//! - follows Caddy's log for failures (the CA's reason), retry times and successes.
//!
//! A CA that no longer knows the stored ACME account (`accountDoesNotExist`) gets a new one:
//! Caddy would otherwise fail with the old one forever.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use orchestrator::edge::{Caddy, Certificate, CertificateEvent};
use platform::{
    Platform,
    sites::{CertificateRecord, CertificateState, wildcard_over},
};
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
/// Handshakes started per pass at most: the CA's rate limits are the edge's to respect, and a
/// thousand new hosts at once would only queue there.
const REQUESTS_PER_PASS: usize = 10;

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
                let full = passes.is_multiple_of(FULL_PASS_EVERY);
                passes = passes.wrapping_add(1);
                if let Err(err) = pass(platform, edge, full).await {
                    tracing::warn!(error = %err, "checking certificates failed");
                }
            }
            event = events.next(), if follow_again.is_none() => match event {
                Some(Ok(event)) => {
                    if let Err(err) = record(platform, edge, event).await {
                        tracing::warn!(error = %err, "recording a certificate event failed");
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

/// Compares served hosts' records with the edge's storage (all of them when `full`, else those
/// not issued), and asks for what is due.
async fn pass(platform: &Platform, edge: &Caddy, full: bool) -> anyhow::Result<()> {
    let served = platform.served_hosts().await?;
    let records: HashMap<String, CertificateRecord> = platform
        .certificate_records()
        .await?
        .into_iter()
        .map(|r| (r.host.clone(), r))
        .collect();
    let now = Utc::now();
    let mut requests = 0;
    // A wildcard's names get their certificates one by one as visitors come: none to ask for.
    for host in served.iter().filter(|h| !h.host.starts_with("*.")) {
        let record = records.get(&host.host);
        if !full && record.is_some_and(|r| r.state == CertificateState::Issued) {
            continue;
        }
        match edge.certificate(&host.host) {
            Ok(Some(certificate)) => {
                let not_after = expiry(certificate);
                // A failing renewal keeps its failure on show until a new certificate lands.
                let known = record
                    .is_some_and(|r| r.not_after == Some(not_after) && r.state != CertificateState::Pending);
                if !known {
                    platform.certificate_issued(&host.host, not_after).await?;
                }
            }
            Ok(None) if requests < REQUESTS_PER_PASS && CertificateRecord::due(record, now) => {
                requests += 1;
                platform.certificate_requested(&host.host).await?;
                let (edge, platform, name) = (edge.clone(), platform.clone(), host.host.clone());
                tokio::spawn(async move {
                    match edge.request_certificate(&name).await {
                        Ok(outcome) => tracing::debug!(host = %name, ?outcome, "certificate requested"),
                        Err(err) => {
                            tracing::warn!(host = %name, error = %err, "requesting a certificate failed");
                            if let Err(err) = platform.certificate_request_lost(&name).await {
                                tracing::warn!(host = %name, error = %err, "recording a lost request failed");
                            }
                        }
                    }
                });
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(host = %host.host, error = %err, "reading a certificate failed"),
        }
    }
    // Kept: served hosts, and the names under served wildcards that have records.
    let wildcards: HashSet<&str> = served
        .iter()
        .map(|h| h.host.as_str())
        .filter(|h| h.starts_with("*."))
        .collect();
    let covered = records
        .keys()
        .filter(|host| wildcard_over(host).is_some_and(|w| wildcards.contains(w.as_str())));
    let keep: Vec<String> = served
        .iter()
        .map(|h| h.host.clone())
        .chain(covered.cloned())
        .collect();
    platform.forget_certificates_except(&keep).await?;
    Ok(())
}

async fn record(platform: &Platform, edge: &Caddy, event: CertificateEvent) -> anyhow::Result<()> {
    match event {
        CertificateEvent::Obtained { host } => {
            if let Some(certificate) = edge.certificate(&host)? {
                platform.certificate_issued(&host, expiry(certificate)).await?;
            }
        }
        CertificateEvent::Failed { host, reason, at } => {
            platform.certificate_failed(&host, &reason, timestamp(at)).await?;
            if reason.contains("accountDoesNotExist") {
                tracing::warn!(
                    "the CA does not know the edge's ACME account; a new one is registered at the next attempt"
                );
                edge.forget_acme_account()?;
            }
        }
        CertificateEvent::WillRetry { host, at, .. } => {
            platform.certificate_retry(&host, timestamp(at)).await?;
        }
    }
    Ok(())
}

fn expiry(certificate: Certificate) -> DateTime<Utc> {
    DateTime::from_timestamp(certificate.not_after, 0).unwrap_or_default()
}

/// Seconds since the Unix epoch as a time (Caddy's log times are fractional).
#[allow(clippy::cast_possible_truncation)]
fn timestamp(seconds: f64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis((seconds * 1000.0) as i64).unwrap_or_default()
}
