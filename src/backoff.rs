//! Capped exponential back-off with full jitter, for reconnects.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    min_ms: u64,
    max_ms: u64,
    attempt: u32,
}

impl Backoff {
    pub fn new(min_ms: u64, max_ms: u64) -> Backoff {
        Backoff {
            min_ms: min_ms.max(1),
            max_ms: max_ms.max(min_ms.max(1)),
            attempt: 0,
        }
    }

    /// The next delay: uniform in [min, min·2^attempt], capped at max, so many gateways
    /// restarting together do not reconnect in lockstep.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .min_ms
            .saturating_mul(1u64 << self.attempt.min(20))
            .min(self.max_ms);
        self.attempt = self.attempt.saturating_add(1);
        Duration::from_millis(fastrand::u64(self.min_ms..=ceiling.max(self.min_ms)))
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn grows_and_caps() {
        let mut b = super::Backoff::new(100, 1000);
        let mut max_seen = 0;
        for _ in 0..50 {
            let d = b.next_delay().as_millis() as u64;
            assert!((100..=1000).contains(&d), "{d}");
            max_seen = max_seen.max(d);
        }
        assert!(
            max_seen > 500,
            "jittered delays should approach the cap, saw {max_seen}"
        );
        b.reset();
        assert!(b.next_delay().as_millis() as u64 <= 100);
    }
}
