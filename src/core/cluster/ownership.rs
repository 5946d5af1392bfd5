//! Partition ownership by leases, as a state machine without I/O (in the manner of rumqttc's
//! `state.rs`): the cluster task reads the lease bucket, asks [`Ownership::plan`] what to
//! write, writes it, and reports each answer back. Time is an input (milliseconds).
//!
//! The one property: **never two owners of a partition.** An owner works on a partition only
//! until `sent + ttl − margin`, where `sent` is when it *sent* the write the bucket last
//! accepted for its lease. The bucket keeps that write for `ttl` after it *received* it, so
//! the lease is still on the server, and nobody else can create it, while the owner may still
//! work; a handover stops the work before the lease is deleted.

use super::placement::preferred_owner;
use std::collections::BTreeMap;

/// Who holds a lease: the instance and the boot it was taken in, so a restarted instance does
/// not mistake its dead predecessor's lease for its own (the predecessor may be frozen, not
/// dead: only expiry proves it stopped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub instance: String,
    pub boot: String,
}

impl Holder {
    /// The value stored under a lease or member key: `instance boot`.
    pub fn encode(&self) -> String {
        format!("{} {}", self.instance, self.boot)
    }

    /// `None` for a value this version did not write (it is then nobody's, and left to expire).
    pub fn decode(value: &[u8]) -> Option<Holder> {
        let text = std::str::from_utf8(value).ok()?;
        let (instance, boot) = text.split_once(' ')?;
        (!instance.is_empty() && !boot.is_empty()).then(|| Holder {
            instance: instance.to_string(),
            boot: boot.to_string(),
        })
    }
}

/// A lease as read from the bucket: its holder and the revision a compare-and-swap needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub holder: Option<Holder>,
    pub revision: u64,
}

/// A write the cluster task is to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Create the lease (only if absent).
    Acquire(u32),
    /// Rewrite our lease if it is still at `revision`.
    Renew { partition: u32, revision: u64 },
    /// Delete our lease if it is still at `revision` (work on it has already stopped).
    Release { partition: u32, revision: u64 },
}

#[derive(Debug, Clone, Copy)]
struct Held {
    revision: u64,
    sent_ms: i64,
}

/// What changed for this instance in one call.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub started: Vec<u32>,
    pub stopped: Vec<u32>,
}

/// This instance's view of partition ownership.
#[derive(Debug)]
pub struct Ownership {
    me: Holder,
    partitions: u32,
    ttl_ms: i64,
    margin_ms: i64,
    held: BTreeMap<u32, Held>,
}

impl Ownership {
    /// `margin_ms` < `ttl_ms`: work stops that long before the lease could expire.
    pub fn new(me: Holder, partitions: u32, ttl_ms: i64, margin_ms: i64) -> Ownership {
        Ownership {
            me,
            partitions,
            ttl_ms,
            margin_ms: margin_ms.min(ttl_ms),
            held: BTreeMap::new(),
        }
    }

    pub fn me(&self) -> &Holder {
        &self.me
    }

    /// The partitions held (call [`Ownership::expire`] first for the ones it may work on).
    pub fn owned(&self) -> Vec<u32> {
        self.held.keys().copied().collect()
    }

    /// Whether this instance may work on `p` at `now_ms`: held, and its safe time not over.
    pub fn owns(&self, p: u32, now_ms: i64) -> bool {
        let limit = self.ttl_ms - self.margin_ms;
        self.held
            .get(&p)
            .is_some_and(|h| now_ms - h.sent_ms < limit)
    }

    /// Drop every lease whose safe time has run out (renewals failed, say during a NATS
    /// election): its work must stop now, whatever the bucket says later.
    pub fn expire(&mut self, now_ms: i64) -> Vec<u32> {
        let limit = self.ttl_ms - self.margin_ms;
        let gone: Vec<u32> = (self.held.iter())
            .filter(|(_, h)| now_ms - h.sent_ms >= limit)
            .map(|(p, _)| *p)
            .collect();
        for p in &gone {
            self.held.remove(p);
        }
        gone
    }

    /// The writes for one round, given the live instances and the leases as just read.
    /// Partitions handed over are stopped here, before their release is written.
    pub fn plan(&mut self, live: &[String], leases: &BTreeMap<u32, Lease>) -> (Vec<Step>, Changes) {
        let mut steps = Vec::new();
        let mut changes = Changes::default();
        for p in 0..self.partitions {
            let mine = preferred_owner(p, live) == Some(self.me.instance.as_str());
            let lease = leases.get(&p);
            let ours = lease.filter(|l| l.holder.as_ref() == Some(&self.me));
            match (self.held.get(&p).copied(), ours) {
                // Gone from the bucket or someone else's: our safe time is over.
                (Some(_), None) => {
                    self.held.remove(&p);
                    changes.stopped.push(p);
                }
                (Some(_), Some(l)) if !mine => {
                    self.held.remove(&p);
                    changes.stopped.push(p);
                    steps.push(Step::Release {
                        partition: p,
                        revision: l.revision,
                    });
                }
                (_, Some(l)) if mine => steps.push(Step::Renew {
                    partition: p,
                    revision: l.revision,
                }),
                (None, Some(l)) => steps.push(Step::Release {
                    partition: p,
                    revision: l.revision,
                }),
                (None, None) if mine && lease.is_none() => steps.push(Step::Acquire(p)),
                _ => {}
            }
        }
        (steps, changes)
    }

    /// The bucket accepted a create or renewal of `p`, now at `revision`, sent at `sent_ms`.
    /// True when this starts our ownership of `p`.
    pub fn written(&mut self, p: u32, revision: u64, sent_ms: i64) -> bool {
        let held = Held { revision, sent_ms };
        self.held.insert(p, held).is_none()
    }

    /// The bucket refused a write of `p` (someone else's now, or already gone). True when
    /// this ends our ownership.
    pub fn refused(&mut self, p: u32) -> bool {
        self.held.remove(&p).is_some()
    }

    /// Stop everything (shutdown): the partitions to release, with their revisions.
    pub fn stop_all(&mut self) -> Vec<(u32, u64)> {
        let all = std::mem::take(&mut self.held);
        all.into_iter().map(|(p, h)| (p, h.revision)).collect()
    }

    /// Each held partition with the time its safe time ends (work on it must stop by then).
    pub fn safe_until(&self) -> Vec<(u32, i64)> {
        let limit = self.ttl_ms - self.margin_ms;
        self.held
            .iter()
            .map(|(p, h)| (*p, h.sent_ms + limit))
            .collect()
    }

    /// The revision we hold `p` at, if we do.
    pub fn revision(&self, p: u32) -> Option<u64> {
        self.held.get(&p).map(|h| h.revision)
    }
}
