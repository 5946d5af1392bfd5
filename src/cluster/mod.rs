//! Cluster mode (`[cluster]`, `docs/scaling.md`): the gateways of a deployment share its
//! partitions through leases in a NATS JetStream key-value bucket. The rules are in
//! `crate::core::cluster` (no I/O); here are the bucket, the lease loop and what the API shows.

mod bucket;
pub mod config;
mod error;
pub mod follow;
pub mod ingress;
mod metrics;
pub mod stream;
mod task;

pub use bucket::connect;
pub use config::ClusterSettings;
pub use error::ClusterError;
pub use metrics::ClusterMetrics;
pub use task::ClusterTask;

use crate::core::cluster::{ClusterView, Holder, Lease, Ownership};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

/// What the lease loop last knew, for `GET /api/v1/cluster`. The partitions owned are worked
/// out at the moment of asking from each one's safe time, so a loop stuck on a slow NATS
/// never shows a partition it may no longer work on.
#[derive(Debug)]
pub struct ClusterStatus {
    me: Holder,
    /// The monotonic origin of the ownership rules' time (a wall-clock step cannot stretch a
    /// lease).
    origin: Instant,
    inner: Mutex<Inner>,
    /// How long the core task held its lock for the last checkpoint, µs: checkpoints are
    /// spaced so that they take at most a twentieth of its time.
    checkpoint_cost_us: std::sync::atomic::AtomicU64,
}

#[derive(Debug, Default)]
struct Inner {
    view: ClusterView,
    safe_until: Vec<(u32, i64)>,
    /// When the readings stream this boot follows was created, and the one its checkpoint
    /// is of (ns): a stream created anew numbers its messages from 1 again.
    stream_created_ns: i64,
    resumed_stream_ns: Option<i64>,
}

impl ClusterStatus {
    /// A new boot of instance `instance_id`.
    pub fn new(s: &ClusterSettings) -> ClusterStatus {
        let boot = format!("{:016x}", fastrand::u64(..));
        let me = Holder {
            instance: s.instance_id.clone(),
            boot: boot.clone(),
        };
        let view = ClusterView {
            instance_id: s.instance_id.clone(),
            boot,
            partitions: s.partitions,
            leases: vec![None; s.partitions as usize],
            ..ClusterView::default()
        };
        ClusterStatus {
            me,
            origin: Instant::now(),
            inner: Mutex::new(Inner {
                view,
                ..Inner::default()
            }),
            checkpoint_cost_us: Default::default(),
        }
    }

    /// The core task took `took` for a checkpoint.
    pub fn set_checkpoint_cost(&self, took: std::time::Duration) {
        let us = took.as_micros().min(u128::from(u64::MAX)) as u64;
        (self.checkpoint_cost_us).store(us, std::sync::atomic::Ordering::Relaxed);
    }

    /// See [`ClusterStatus::set_checkpoint_cost`].
    pub fn checkpoint_cost(&self) -> std::time::Duration {
        let us = (self.checkpoint_cost_us).load(std::sync::atomic::Ordering::Relaxed);
        std::time::Duration::from_micros(us)
    }

    pub fn me(&self) -> &Holder {
        &self.me
    }

    /// Milliseconds since this boot: the ownership rules' clock.
    pub fn now(&self) -> i64 {
        self.origin.elapsed().as_millis() as i64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this instance may work on partition `p` right now.
    pub fn owns(&self, p: u32) -> bool {
        let now = self.now();
        self.lock()
            .safe_until
            .iter()
            .any(|&(q, until)| q == p && now < until)
    }

    /// The view, with the partitions owned as of now.
    pub fn view(&self) -> ClusterView {
        let now = self.now();
        let inner = self.lock();
        let mut v = inner.view.clone();
        v.owned = (inner.safe_until.iter())
            .filter(|(_, until)| now < *until)
            .map(|(p, _)| *p)
            .collect();
        v
    }

    /// How far the follower has applied the readings stream.
    pub fn set_applied(&self, c: crate::core::cluster::follow::StreamClock) {
        let mut inner = self.lock();
        inner.view.applied_sequence = c.sequence;
        inner.view.stream_time_ms = c.now_ms;
    }

    /// A checkpoint is committed to the journal.
    pub fn set_checkpoint(&self, sequence: u64, stream_ms: i64) {
        let mut inner = self.lock();
        inner.view.checkpoint_sequence = sequence;
        inner.view.checkpoint_time_ms = stream_ms;
    }

    /// This boot resumes from the checkpoint at `sequence` of the stream created at
    /// `stream_created_ns`: applied and committed so far.
    pub fn resume_at(&self, sequence: u64, stream_ms: i64, stream_created_ns: i64) {
        let mut inner = self.lock();
        inner.resumed_stream_ns = Some(stream_created_ns);
        inner.view.applied_sequence = sequence;
        inner.view.stream_time_ms = stream_ms;
        inner.view.checkpoint_sequence = sequence;
        inner.view.checkpoint_time_ms = stream_ms;
        inner.view.resumed_from = Some(sequence);
    }

    /// The readings stream this boot follows was created at `ns`; returns the one its
    /// checkpoint is of, when that is another.
    pub fn set_stream(&self, ns: i64) -> Option<i64> {
        let mut inner = self.lock();
        inner.stream_created_ns = ns;
        inner.resumed_stream_ns.filter(|r| *r != ns)
    }

    /// See [`ClusterStatus::set_stream`] (0 before the stream is opened).
    pub fn stream_created_ns(&self) -> i64 {
        self.lock().stream_created_ns
    }

    /// `messages` were gone from the stream when this boot resumed.
    pub fn set_gap(&self, messages: u64) {
        self.lock().view.gap = messages;
    }

    fn set_seen(&self, live: &[String], leases: &BTreeMap<u32, Lease>) {
        let mut inner = self.lock();
        inner.view.members = live.to_vec();
        inner.view.leases = task::holders(leases, inner.view.partitions);
    }

    fn set_round(&self, own: &Ownership, ok: bool, error: Option<String>, now_ms: i64) {
        let mut inner = self.lock();
        inner.safe_until = own.safe_until();
        inner.view.nats_ok = ok;
        inner.view.last_error = error;
        inner.view.round_ms = now_ms;
    }
}
