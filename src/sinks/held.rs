//! Cluster mode: the store records (transitions, alarm events) this instance made for sites
//! it did not own at the time. Every instance applies every event, and only a site's owner
//! stores their effects; in the seconds after an owner dies and before its lease expires,
//! nobody does. So each instance keeps what it did not store for a while, and when it takes
//! a site's partition it stores what it kept of that site (the previous owner may have
//! stored some of it: the store keeps one point per series and time). The same holds for the
//! alarm board: the states an alarm went through meanwhile are published when the site is
//! taken, the last one last, so the board ends at the alarm's current state.

use std::collections::{BTreeMap, VecDeque};

/// How long a record is kept: longer than a lease's time to expire and be taken again.
pub const KEEP_MS: i64 = 120_000;
/// At most this many (the oldest go first): a few minutes of a large region's transitions.
pub const MAX: usize = 50_000;
/// How often the kept records are looked through.
const SCAN_EVERY_MS: i64 = 1_000;

struct Entry<T> {
    site: Box<str>,
    made_ms: i64,
    record: T,
}

/// See the module's text.
pub struct Held<T> {
    entries: VecDeque<Entry<T>>,
    next_scan_ms: i64,
    max: usize,
}

impl<T> Default for Held<T> {
    fn default() -> Self {
        Held::with_max(MAX)
    }
}

impl<T> Held<T> {
    /// Keeping at most `max` (the oldest go first).
    pub fn with_max(max: usize) -> Held<T> {
        Held {
            entries: VecDeque::new(),
            next_scan_ms: i64::MIN,
            max: max.max(1),
        }
    }

    /// Keep `record` of `site`, made at `made_ms` (this instance's clock).
    pub fn keep(&mut self, site: &str, made_ms: i64, record: T) {
        if self.entries.len() >= self.max {
            self.entries.pop_front();
        }
        self.entries.push_back(Entry {
            site: site.into(),
            made_ms,
            record,
        });
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// At most every second: let go of what is older than [`KEEP_MS`], and move to `out`
    /// what is of a site `owns` now says is this instance's. How many moved.
    pub fn release(&mut self, now_ms: i64, owns: &dyn Fn(&str) -> bool, out: &mut Vec<T>) -> usize {
        if now_ms < self.next_scan_ms || self.entries.is_empty() {
            return 0;
        }
        self.next_scan_ms = now_ms.saturating_add(SCAN_EVERY_MS);
        // One ownership question a site, not one a record.
        let mut owned: BTreeMap<Box<str>, bool> = BTreeMap::new();
        let (before, mut kept) = (out.len(), VecDeque::with_capacity(self.entries.len()));
        for e in self.entries.drain(..) {
            if now_ms - e.made_ms > KEEP_MS {
                continue;
            }
            let mine = match owned.get(&e.site) {
                Some(m) => *m,
                None => *owned.entry(e.site.clone()).or_insert_with(|| owns(&e.site)),
            };
            if mine {
                out.push(e.record);
            } else {
                kept.push_back(e);
            }
        }
        self.entries = kept;
        out.len() - before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_site_s_new_owner_finds_kept_it_stores_and_the_rest_waits_or_expires() {
        let mut h = Held::default();
        h.keep("a", 0, 1);
        h.keep("b", 0, 2);
        h.keep("a", 500, 3);
        let mut out = Vec::new();
        assert_eq!(h.release(1_000, &|_: &str| false, &mut out), 0);
        assert_eq!(h.len(), 3, "nothing owned: all kept");
        // Within a second of the last look, nothing is looked at.
        assert_eq!(h.release(1_500, &|s: &str| s == "a", &mut out), 0);
        assert_eq!(h.release(2_000, &|s: &str| s == "a", &mut out), 2);
        assert_eq!(out, vec![1, 3], "a's records, in the order made");
        assert_eq!(h.len(), 1);
        // b's, never owned here, go after KEEP_MS.
        assert_eq!(h.release(KEEP_MS + 1, &|_: &str| true, &mut out), 0);
        assert!(h.is_empty());
    }

    #[test]
    fn the_oldest_go_first_beyond_the_bound() {
        let mut h = Held::default();
        for i in 0..MAX + 2 {
            h.keep("a", 0, i);
        }
        let mut out = Vec::new();
        h.release(0, &|_: &str| true, &mut out);
        assert_eq!(out.len(), MAX);
        assert_eq!(out[0], 2);
    }
}
