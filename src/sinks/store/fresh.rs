//! Batches just committed, handed from the commit to the forwarder in memory, so the forwarder
//! posts them without reading back what was just written and without waiting for the
//! outbox's lock, which a commit holds through its fsync.
//!
//! The outbox on disk stays the truth: this queue is only trusted while it holds every
//! committed batch the forwarder has not posted. It is bounded (`FRESH_BYTES`); a batch that
//! does not fit clears it and marks the gap, and the forwarder then reads from the file until
//! the file holds nothing this queue lacks (`Fresh::covers`). Batches are pushed under the
//! outbox's lock, in the same critical section as their commit (`commit::commit_rows`): what
//! the forwarder sees in the file is already here, so a batch it posts from the file and
//! removes here can never arrive here afterwards and be posted twice.

use super::outbox::Batch;
use std::collections::VecDeque;
use std::sync::Mutex;

/// A few seconds of a fast stream; a backlog (a store that is down) stays on disk only.
pub const FRESH_BYTES: usize = 16 << 20;

#[derive(Default)]
struct Inner {
    queue: VecDeque<Batch>,
    bytes: usize,
    /// A batch was left out since the forwarder last looked.
    gap: bool,
}

#[derive(Default)]
pub struct Fresh {
    inner: Mutex<Inner>,
    cap: usize,
}

impl Fresh {
    pub fn new(cap: usize) -> Fresh {
        Fresh {
            inner: Mutex::default(),
            cap,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Committed batches, in commit order.
    pub fn push(&self, batches: impl IntoIterator<Item = Batch>) {
        let mut q = self.lock();
        for b in batches {
            if q.bytes + b.lines.len() > self.cap {
                // The forwarder is behind (the store is slow or down): it reads the file.
                q.queue.clear();
                q.bytes = 0;
                q.gap = true;
                continue;
            }
            q.bytes += b.lines.len();
            q.queue.push_back(b);
        }
    }

    /// Whether a batch was left out since the last call (then the queue cannot be trusted).
    pub fn take_gap(&self) -> bool {
        std::mem::take(&mut self.lock().gap)
    }

    /// The oldest batches, as many as fit in `max_points` (at least one), taken out.
    pub fn pop_head(&self, max_points: u64) -> Vec<Batch> {
        let mut q = self.lock();
        let mut out = Vec::new();
        let mut points = 0u64;
        while let Some(b) = q.queue.front() {
            if !out.is_empty() && points + b.points as u64 > max_points {
                break;
            }
            points += b.points as u64;
            let b = q.queue.pop_front().expect("front exists");
            q.bytes -= b.lines.len();
            out.push(b);
        }
        out
    }

    /// Whether the queue holds all of `ids` (the oldest unposted batches in the file): then
    /// it holds every batch not yet posted, and the forwarder can take from it.
    pub fn covers(&self, ids: &[i64]) -> bool {
        let q = self.lock();
        ids.iter().all(|id| q.queue.iter().any(|b| b.id == *id))
    }

    /// Drop these batches (posted from the file instead).
    pub fn remove(&self, ids: &[i64]) {
        let mut q = self.lock();
        let before = q.queue.len();
        q.queue.retain(|b| !ids.contains(&b.id));
        if q.queue.len() != before {
            q.bytes = q.queue.iter().map(|b| b.lines.len()).sum();
        }
    }

    pub fn clear(&self) {
        let mut q = self.lock();
        q.queue.clear();
        q.bytes = 0;
    }

    pub fn is_empty(&self) -> bool {
        self.lock().queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(id: i64, points: u32, len: usize) -> Batch {
        Batch {
            id,
            lines: vec![b'x'; len].into(),
            points,
            created_ms: 0,
        }
    }

    #[test]
    fn hands_over_in_order_in_writes_of_at_most_max_points() {
        let f = Fresh::new(1 << 20);
        f.push([batch(1, 3, 10), batch(2, 3, 10), batch(3, 3, 10)]);
        assert!(f.covers(&[1, 2]));
        let ids = |v: Vec<Batch>| v.into_iter().map(|b| b.id).collect::<Vec<_>>();
        assert_eq!(ids(f.pop_head(6)), vec![1, 2]);
        assert_eq!(ids(f.pop_head(1)), vec![3], "at least one");
        assert!(f.is_empty() && !f.take_gap());
    }

    #[test]
    fn a_batch_that_does_not_fit_clears_the_queue_and_marks_the_gap() {
        let f = Fresh::new(25);
        f.push([batch(1, 1, 10), batch(2, 1, 10), batch(3, 1, 10)]);
        // 3 did not fit: 1 and 2 were dropped with it, and the gap is reported once.
        assert!(f.take_gap());
        assert!(!f.take_gap());
        assert!(f.is_empty());
        f.push([batch(4, 1, 10)]);
        assert!(!f.covers(&[3, 4]), "3 is only in the file");
        assert!(f.covers(&[4]));
        f.remove(&[4]);
        assert!(f.is_empty());
        f.push([batch(5, 1, 20)]);
        assert!(
            !f.take_gap(),
            "the bytes of removed batches were given back"
        );
    }
}
