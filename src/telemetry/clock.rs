//! The runtime's clock: the wall clock, or for tests a manual one that moves only when told to,
//! so deadlines, offline transitions and indicator windows can be reached without waiting.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// What the runtime reads "now" from and sleeps on until an epoch time. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// `None`: the wall clock.
    manual: Option<Arc<watch::Sender<i64>>>,
}

impl Clock {
    /// The wall clock (also the default).
    pub fn system() -> Clock {
        Clock::default()
    }

    /// Epoch milliseconds.
    pub fn now_ms(&self) -> i64 {
        match &self.manual {
            None => super::now_ms(),
            Some(t) => *t.borrow(),
        }
    }

    /// Wait until the clock reads `at_ms` or later. On the wall clock a tokio sleep; on a
    /// manual clock, until it is advanced that far.
    pub async fn sleep_until(&self, at_ms: i64) {
        match &self.manual {
            None => {
                let wait = (at_ms - super::now_ms()).max(0) as u64;
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
            Some(t) => {
                // The sender lives as long as this handle: the wait ends only by advancing.
                let _ = t.subscribe().wait_for(|now| *now >= at_ms).await;
            }
        }
    }
}

/// A clock that stands still until `advance`d, for tests; hand `clock()` to the runtime.
#[derive(Clone, Debug)]
pub struct ManualClock {
    now: Arc<watch::Sender<i64>>,
}

impl ManualClock {
    /// Standing at `start_ms` (epoch milliseconds).
    pub fn new(start_ms: i64) -> ManualClock {
        ManualClock {
            now: Arc::new(watch::Sender::new(start_ms)),
        }
    }

    pub fn now_ms(&self) -> i64 {
        *self.now.borrow()
    }

    /// Move forward by `by`, waking whatever sleeps until a time now reached.
    pub fn advance(&self, by: Duration) {
        self.now.send_modify(|t| *t += by.as_millis() as i64);
    }

    /// A handle the runtime reads and sleeps on.
    pub fn clock(&self) -> Clock {
        Clock {
            manual: Some(self.now.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_clock_wakes_its_sleepers_only_when_advanced_far_enough() {
        let m = ManualClock::new(1_000);
        let clock = m.clock();
        assert_eq!(clock.now_ms(), 1_000);
        let sleeper = tokio::spawn({
            let clock = clock.clone();
            async move { clock.sleep_until(3_000).await }
        });
        m.advance(Duration::from_millis(1_500));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished(), "woken at 2 500 for 3 000");
        m.advance(Duration::from_millis(500));
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .expect("woken at 3 000")
            .unwrap();
        assert_eq!(clock.now_ms(), 3_000);
        // A time already reached does not wait.
        clock.sleep_until(2_000).await;
    }

    #[tokio::test]
    async fn the_system_clock_reads_the_wall_clock() {
        let c = Clock::system();
        let (before, now, after) = (super::super::now_ms(), c.now_ms(), super::super::now_ms());
        assert!(before <= now && now <= after);
        c.sleep_until(now - 1_000).await;
    }
}
