//! A receipt for one upstream message: it completes when every holder has made the message's
//! effects durable (the outbox commit, the state journal). Sources use it to acknowledge a
//! message only once nothing in it can be lost.
//!
//! A holder that drops its part without `done` (a failed write, a shutdown) makes the receipt
//! complete as not durable: the source must then leave the message unacknowledged so the
//! broker delivers it again. That is the safe failure.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

pub struct Receipt {
    inner: Arc<Inner>,
    finished: bool,
}

struct Inner {
    holders: AtomicUsize,
    failed: AtomicBool,
    /// Called once, with whether every holder's part is durable.
    on_complete: Box<dyn Fn(bool) + Send + Sync>,
}

impl Receipt {
    /// One holder; `on_complete(durable)` runs once, when the last holder is finished.
    pub fn new(on_complete: impl Fn(bool) + Send + Sync + 'static) -> Receipt {
        Receipt {
            inner: Arc::new(Inner {
                holders: AtomicUsize::new(1),
                failed: AtomicBool::new(false),
                on_complete: Box::new(on_complete),
            }),
            finished: false,
        }
    }

    /// Another holder who must also call `done`.
    pub fn share(&self) -> Receipt {
        self.inner.holders.fetch_add(1, Ordering::AcqRel);
        Receipt {
            inner: self.inner.clone(),
            finished: false,
        }
    }

    /// This holder's part is durable.
    pub fn done(mut self) {
        self.finish(true);
    }

    fn finish(&mut self, durable: bool) {
        if self.finished {
            return;
        }
        self.finished = true;
        if !durable {
            self.inner.failed.store(true, Ordering::Release);
        }
        if self.inner.holders.fetch_sub(1, Ordering::AcqRel) == 1 {
            (self.inner.on_complete)(!self.inner.failed.load(Ordering::Acquire));
        }
    }
}

impl Drop for Receipt {
    fn drop(&mut self) {
        self.finish(false);
    }
}

impl Clone for Receipt {
    fn clone(&self) -> Receipt {
        self.share()
    }
}

impl PartialEq for Receipt {
    fn eq(&self, other: &Receipt) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl std::fmt::Debug for Receipt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Receipt({} holders)",
            self.inner.holders.load(Ordering::Relaxed)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn recorder() -> (Arc<Mutex<Vec<bool>>>, impl Fn(bool) + Send + Sync + 'static) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        (seen, move |durable| s.lock().unwrap().push(durable))
    }

    #[test]
    fn completes_once_when_every_holder_is_done() {
        let (seen, f) = recorder();
        let a = Receipt::new(f);
        let b = a.share();
        a.done();
        assert!(
            seen.lock().unwrap().is_empty(),
            "one holder is not done yet"
        );
        b.done();
        assert_eq!(*seen.lock().unwrap(), vec![true]);
    }

    #[test]
    fn a_part_dropped_without_done_completes_as_not_durable() {
        let (seen, f) = recorder();
        let a = Receipt::new(f);
        let b = a.share();
        drop(b);
        assert!(seen.lock().unwrap().is_empty());
        a.done();
        assert_eq!(*seen.lock().unwrap(), vec![false]);
    }
}
