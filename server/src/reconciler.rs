//! Runs the platform's reconciler: when the edge (re)starts, every 30 seconds, and soon after
//! Docker reports a site's service removed — so a service deleted by hand is back within
//! seconds, and anything else drifting is corrected within half a minute.

use std::time::Duration;

use futures::StreamExt as _;
use platform::{Platform, sites::Runtime};
use tokio::sync::watch;

/// How often everything is compared even when nothing was reported.
const EVERY: Duration = Duration::from_secs(30);
/// Events come in bursts (a service's tasks, several services): wait this long for the rest.
const SETTLE: Duration = Duration::from_millis(500);

/// Reconciles until `shutdown` turns true.
pub async fn run(platform: Platform, mut shutdown: watch::Receiver<bool>) {
    let mut runtime = platform.runtime_changes();
    loop {
        let current = runtime.borrow_and_update().clone();
        let Some(current) = current else {
            tokio::select! {
                _ = runtime.changed() => continue,
                _ = shutdown.changed() => return,
            }
        };
        let mut removals = Box::pin(current.service_removals());
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + EVERY, EVERY);
        loop {
            reconcile(&platform, &current).await;
            tokio::select! {
                _ = tick.tick() => {}
                Some(event) = removals.next() => {
                    if let Ok(site) = event {
                        tracing::debug!(%site, "a site's service was removed");
                    }
                    tokio::time::sleep(SETTLE).await;
                }
                // A new runtime: the edge restarted or moved; start over with it.
                _ = runtime.changed() => break,
                _ = shutdown.changed() => return,
            }
        }
    }
}

async fn reconcile(platform: &Platform, runtime: &Runtime) {
    match platform.reconcile(runtime).await {
        Ok(corrections) if !corrections.is_empty() => {
            tracing::info!(count = corrections.len(), "the reconciler corrected drift");
        }
        Ok(_) => {}
        Err(err) => tracing::warn!(error = %err, "reconciling failed; trying again later"),
    }
}
