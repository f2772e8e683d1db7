//! The workers that run the operations queue. They wait for the edge (the runtime) to be up,
//! take operations as they are queued — woken at once by this process's own, polling every two
//! seconds for other processes' and abandoned ones — and stop when the manager stops.

use std::time::Duration;

use platform::Platform;
use tokio::sync::watch;

/// How many operations run at once.
pub const WORKERS: usize = 2;

/// Runs operations until `shutdown` turns true.
pub async fn work(platform: Platform, mut shutdown: watch::Receiver<bool>) {
    let mut runtime = platform.runtime_changes();
    loop {
        let current = runtime.borrow_and_update().clone();
        let Some(current) = current else {
            tokio::select! {
                _ = runtime.changed() => continue,
                _ = shutdown.changed() => return,
            }
        };
        // Sites' operations first, then the catalogue's builds.
        let ran = match platform.run_next_operation(&current).await {
            Ok(false) => platform.run_next_catalogue_build(&current).await,
            other => other,
        };
        match ran {
            Ok(true) => {}
            Ok(false) => tokio::select! {
                () = platform.operation_queued(Duration::from_secs(2)) => {}
                _ = shutdown.changed() => return,
            },
            Err(err) => {
                tracing::warn!(error = %err, "running an operation failed; retrying shortly");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    }
}

/// How many deliveries are sent at once (each worker takes one at a time).
pub const DELIVERY_WORKERS: usize = 4;

/// Sends the outbox's deliveries (emails, webhooks' POSTs) as they are queued — woken at once
/// by this process's own, polling every two seconds for other processes' and those due again —
/// until `shutdown`.
pub async fn deliver(platform: Platform, mut shutdown: watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        match platform.deliver_next().await {
            Ok(true) => {}
            Ok(false) => tokio::select! {
                () = platform.delivery_queued(Duration::from_secs(2)) => {}
                _ = shutdown.changed() => return,
            },
            Err(err) => {
                tracing::warn!(error = %err, "sending a delivery failed; retrying shortly");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    }
}

/// How often every site's files are measured against their disk quota.
pub const MEASURE_DISKS_EVERY: Duration = Duration::from_secs(300);

/// Measures every site's disk use now and every [`MEASURE_DISKS_EVERY`], until `shutdown`.
pub async fn measure_disks(platform: Platform, mut shutdown: watch::Receiver<bool>) {
    let mut runtime = platform.runtime_changes();
    loop {
        let current = runtime.borrow_and_update().clone();
        if let Some(current) = current {
            match platform.measure_disks(&current).await {
                Ok(count) => tracing::debug!(count, "sites' disk use measured"),
                Err(err) => tracing::warn!(error = %err, "measuring the sites' disk use failed"),
            }
        }
        tokio::select! {
            () = tokio::time::sleep(MEASURE_DISKS_EVERY) => {}
            _ = runtime.changed() => {}
            _ = shutdown.changed() => return,
        }
    }
}
