//! Failed SSH authentications per client address, over a window.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// Counts failures per address; past `max` within `window`, the address is refused.
#[derive(Debug, Clone)]
pub(crate) struct Limiter {
    failures: Arc<Mutex<HashMap<IpAddr, (u32, Instant)>>>,
    max: u32,
    window: Duration,
}

impl Limiter {
    pub(crate) fn new(max: u32, window: Duration) -> Self {
        Self {
            failures: Arc::default(),
            max,
            window,
        }
    }

    /// Whether `ip` is refused for now.
    pub(crate) fn blocked(&self, ip: IpAddr) -> bool {
        let failures = self.failures.lock().expect("limiter lock");
        failures
            .get(&ip)
            .is_some_and(|(count, since)| *count >= self.max && since.elapsed() < self.window)
    }

    /// Records a failure from `ip`; returns how many it has made in the window.
    pub(crate) fn fail(&self, ip: IpAddr) -> u32 {
        let mut failures = self.failures.lock().expect("limiter lock");
        // Old entries go, so that a scan of many addresses cannot grow the map for ever.
        failures.retain(|_, (_, since)| since.elapsed() < self.window);
        let entry = failures.entry(ip).or_insert((0, Instant::now()));
        entry.0 += 1;
        entry.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_refused_past_the_limit_and_others_are_not() {
        let limiter = Limiter::new(3, Duration::from_secs(60));
        let bad: IpAddr = "192.0.2.1".parse().unwrap();
        let good: IpAddr = "192.0.2.2".parse().unwrap();
        for n in 1..=3 {
            assert!(!limiter.blocked(bad));
            assert_eq!(limiter.fail(bad), n);
        }
        assert!(limiter.blocked(bad));
        assert!(!limiter.blocked(good));
    }
}
