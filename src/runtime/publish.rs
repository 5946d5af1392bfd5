//! Publishing the core's read model ([`crate::core::snapshot`]) for the API: after a batch
//! when the last publication is [`PUBLISH_EVERY`] old, else when that much time has passed,
//! so a listing is at most that old and a rebuild at 100,000 devices costs the core task a
//! bounded share of its time.

use crate::core::snapshot::Snapshot;
use crate::core::Core;
use arc_swap::ArcSwap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The staleness bound of the API's listings (documented in the README's API section).
pub const PUBLISH_EVERY: Duration = Duration::from_millis(250);

pub struct Publisher {
    last: Instant,
    /// The core changed since the last publication.
    pending: bool,
}

impl Default for Publisher {
    fn default() -> Publisher {
        Publisher {
            last: Instant::now(),
            pending: false,
        }
    }
}

impl Publisher {
    /// The core changed: publish now if the last publication is old enough, else by
    /// [`Publisher::due`].
    pub fn changed(&mut self, core: &mut Core, to: &ArcSwap<Snapshot>) {
        self.pending = true;
        if self.last.elapsed() >= PUBLISH_EVERY {
            self.publish(core, to);
        }
    }

    /// When a change held back must be published; `None` when none is.
    pub fn due(&self) -> Option<Instant> {
        self.pending.then(|| self.last + PUBLISH_EVERY)
    }

    pub fn publish(&mut self, core: &mut Core, to: &ArcSwap<Snapshot>) {
        let next = Arc::new(core.snapshot(Some(&to.load())));
        let prev = to.swap(next);
        // Freeing the last readings replaced since (up to one per device) is not the core
        // task's work.
        tokio::task::spawn_blocking(move || drop(prev));
        self.last = Instant::now();
        self.pending = false;
    }
}
