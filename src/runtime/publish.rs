//! Publishing the core's read model ([`crate::core::snapshot`]) for the API: after a batch
//! when the last publication is [`PUBLISH_EVERY`] old, else when that much time has passed,
//! so a listing is at most that old and a rebuild at 100,000 devices costs the core task a
//! bounded share of its time.
//!
//! What a publication makes visible is handed at the same time to the live feed
//! (`GET /api/v1/events`, [`crate::api::events`]): a client that refetches on an event sees it.

use crate::api::events::Outlet;
use crate::core::snapshot::Snapshot;
use crate::core::{Core, Outputs};
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
    /// The changes noted since, for the live feed.
    outlet: Outlet,
}

impl Publisher {
    pub fn new(outlet: Outlet) -> Publisher {
        Publisher {
            last: Instant::now(),
            pending: false,
            outlet,
        }
    }

    /// Note a round's device-state and alarm changes for the live feed (before the round's
    /// outputs are routed away); they go out with the next publication.
    pub fn note(&mut self, core: &Core, out: &Outputs, now: i64) {
        self.outlet.note(core, out, now);
    }

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
        self.outlet.flush();
    }
}
