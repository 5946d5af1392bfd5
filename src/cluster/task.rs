//! The lease loop: every `renew_every_s`, say we are alive, read the members and leases, ask
//! the ownership rules what to write, write it, and publish what we own.

use super::bucket::{connect, Bucket, Written};
use super::config::ClusterSettings;
use super::error::ClusterError;
use super::metrics::ClusterMetrics;
use super::ClusterStatus;
use crate::core::cluster::{Holder, Lease, Ownership, Step};
use crate::telemetry::{Clock, RateLimitedLog};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

pub struct ClusterTask {
    settings: ClusterSettings,
    bucket: Option<Bucket>,
    own: Ownership,
    status: Arc<ClusterStatus>,
    metrics: Arc<ClusterMetrics>,
    clock: Clock,
    warn: RateLimitedLog,
}

impl ClusterTask {
    pub fn new(
        settings: &ClusterSettings,
        status: Arc<ClusterStatus>,
        metrics: Arc<ClusterMetrics>,
        clock: Clock,
    ) -> ClusterTask {
        let me = status.me().clone();
        let ttl_ms = settings.lease_ttl_s as i64 * 1000;
        let margin_ms = settings.renew_every_s as i64 * 1000;
        ClusterTask {
            own: Ownership::new(me, settings.partitions, ttl_ms, margin_ms),
            settings: settings.clone(),
            bucket: None,
            status,
            metrics,
            clock,
            warn: RateLimitedLog::new(30_000),
        }
    }

    pub async fn run(mut self, mut shutdown: broadcast::Receiver<()>) {
        let every = Duration::from_secs(self.settings.renew_every_s);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let client = tokio::select! {
            c = connect(&self.settings) => c,
            _ = shutdown.recv() => return,
        };
        let client = match client {
            Ok(c) => c,
            Err(e) => return tracing::error!(error = %e, "cluster mode off"),
        };
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.recv() => break,
            }
            // A round never outlasts its period, so an owner that cannot reach NATS still
            // checks its safe time each period.
            let result = match tokio::time::timeout(every, self.round(&client)).await {
                Ok(r) => r,
                Err(_) => Err(ClusterError::Slow(self.settings.renew_every_s)),
            };
            self.finish_round(result);
        }
        self.leave().await;
    }

    fn finish_round(&mut self, result: Result<(), ClusterError>) {
        let lost = self.own.expire(self.status.now());
        self.count_lost(&lost);
        let ok = result.is_ok();
        let outcome = if ok { "ok" } else { "failed" };
        self.metrics.count(&self.metrics.rounds, outcome, 1);
        if let Err(e) = &result {
            if let Some(suppressed) = self.warn.allow("cluster_round", self.clock.now_ms()) {
                tracing::warn!(error = %e, suppressed, "cluster lease round failed");
            }
        }
        let error = result.err().map(|e| e.to_string());
        self.status
            .set_round(&self.own, ok, error, self.clock.now_ms());
        self.metrics.owned.set(self.own.owned().len() as i64);
    }

    fn count_lost(&self, lost: &[u32]) {
        if !lost.is_empty() {
            tracing::warn!(partitions = ?lost, "partitions given up: their leases could not be renewed in time");
            self.metrics
                .count(&self.metrics.changes, "lost", lost.len());
        }
    }

    async fn round(&mut self, client: &async_nats::Client) -> Result<(), ClusterError> {
        if self.bucket.is_none() {
            self.bucket = Some(Bucket::open(client.clone(), &self.settings).await?);
            tracing::info!(bucket = %self.settings.bucket, "cluster lease bucket open");
        }
        let Some(bucket) = self.bucket.as_ref() else {
            return Ok(());
        };
        let lost = self.own.expire(self.status.now());
        self.count_lost(&lost);
        bucket.heartbeat(self.own.me()).await?;
        let live = bucket.members().await?;
        let leases = bucket.leases().await?;
        self.status.set_seen(&live, &leases);
        let (steps, changes) = self.own.plan(&live, &leases);
        if !changes.stopped.is_empty() {
            tracing::info!(partitions = ?changes.stopped, "partitions stopped for a handover or lost");
            self.metrics
                .count(&self.metrics.changes, "handed_over", changes.stopped.len());
            // Published before the leases are released: nobody may see us owning them after.
            self.status
                .set_round(&self.own, true, None, self.clock.now_ms());
        }
        for step in steps {
            let sent = self.status.now();
            let written = bucket.write(&step, self.own.me()).await?;
            apply(&mut self.own, &self.metrics, &step, written, sent);
        }
        Ok(())
    }

    /// Orderly shutdown: stop, give every lease back, leave the member list. Bounded by one
    /// period, so a lost NATS cannot hold up the gateway's stop (the leases then expire).
    async fn leave(&mut self) {
        let held = self.own.stop_all();
        self.status
            .set_round(&self.own, true, None, self.clock.now_ms());
        let Some(bucket) = &self.bucket else { return };
        let me = self.own.me();
        let releases = held.into_iter().map(|(partition, revision)| async move {
            let _ = bucket
                .write(
                    &Step::Release {
                        partition,
                        revision,
                    },
                    me,
                )
                .await;
        });
        let all = async {
            futures::future::join_all(releases).await;
            bucket.leave(me).await;
        };
        let bound = Duration::from_secs(self.settings.renew_every_s);
        match tokio::time::timeout(bound, all).await {
            Ok(()) => tracing::info!("left the cluster; leases released"),
            Err(_) => tracing::warn!(
                lease_ttl_s = self.settings.lease_ttl_s,
                "left the cluster without releasing every lease (NATS did not answer in time); the rest expire"
            ),
        }
    }
}

/// Feed one write's answer to the ownership rules.
fn apply(own: &mut Ownership, m: &ClusterMetrics, step: &Step, written: Written, sent: i64) {
    let p = match *step {
        Step::Acquire(p) | Step::Renew { partition: p, .. } => p,
        Step::Release { .. } => return,
    };
    match written {
        Written::Held(rev) if own.written(p, rev, sent) => {
            tracing::info!(partition = p, "partition taken");
            m.count(&m.changes, "started", 1);
        }
        Written::Refused if own.refused(p) => {
            tracing::warn!(
                partition = p,
                "partition lost: its lease was taken or expired"
            );
            m.count(&m.changes, "lost", 1);
        }
        _ => {}
    }
}

/// The holder names of the leases as read, one per partition.
pub(super) fn holders(leases: &BTreeMap<u32, Lease>, partitions: u32) -> Vec<Option<String>> {
    (0..partitions)
        .map(|p| {
            let holder = leases.get(&p).and_then(|l| l.holder.as_ref());
            holder.map(|h: &Holder| h.instance.clone())
        })
        .collect()
}
