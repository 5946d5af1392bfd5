//! Warnings that cannot flood the log: at most one line per key per interval, with a count
//! of what was suppressed in between.

use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Debug)]
pub struct RateLimitedLog {
    interval_ms: i64,
    state: Mutex<HashMap<&'static str, (i64, u64)>>,
}

impl RateLimitedLog {
    pub fn new(interval_ms: i64) -> RateLimitedLog {
        RateLimitedLog {
            interval_ms,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(suppressed)` when a line for `key` may be logged now.
    pub fn allow(&self, key: &'static str, now_ms: i64) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let e = s.entry(key).or_insert((i64::MIN, 0));
        if e.0 == i64::MIN || now_ms - e.0 >= self.interval_ms {
            let suppressed = e.1;
            *e = (now_ms, 0);
            Some(suppressed)
        } else {
            e.1 += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_line_per_interval_with_suppressed_count() {
        let l = super::RateLimitedLog::new(1000);
        assert_eq!(l.allow("a", 0), Some(0));
        assert_eq!(l.allow("a", 10), None);
        assert_eq!(l.allow("a", 20), None);
        assert_eq!(l.allow("b", 20), Some(0));
        assert_eq!(l.allow("a", 1000), Some(2));
    }
}
