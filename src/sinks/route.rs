//! Output routing: where each of the core's outputs goes. Readings, transitions and alarm
//! events become store records (through the outbox); transitions, links, polls, alarm rows,
//! latency histograms and receipts go to the journal; alarm states to the board; alarm
//! acknowledgements received over MQTT to the audit log; counts to the metrics; rejections
//! to the metrics and a rate-limited log line. The core task calls [`Router::route`] under the
//! core's lock and [`Router::deliver`] after releasing it.

use crate::core::alarms::view::{AlarmView, EventView};
use crate::core::indicators::history::latency_bucket;
use crate::core::{Core, Inventory, Outputs};
use crate::model::now_ms;
use crate::sinks::alarm_board::BoardQueue;
use crate::sinks::audit::AuditLog;
use crate::sinks::store::{Item, StoreQueue};
use crate::sinks::Record;
use crate::state::{ConditionRow, JournalMsg, TransitionRow};
use crate::telemetry::{Clock, Metrics, RateLimitedLog};
use std::sync::Arc;
use tokio::sync::mpsc;

pub struct Router {
    audit: Arc<AuditLog>,
    store: Option<StoreQueue>,
    /// The commit task has ended (shutdown, with the outbox holding): records can no longer
    /// be made durable, so receipts are dropped (never acknowledged) while the state
    /// changes, the last link-downs among them, still reach the journal.
    store_gone: bool,
    /// Records of this round, sent after the core lock is released (in a vector of their own
    /// size; this one keeps its room for the next round).
    to_store: Vec<Record>,
    board: BoardQueue,
    metrics: Arc<Metrics>,
    warn: RateLimitedLog,
    latency: LatencyAcc,
    /// Alarm views are dated by it.
    clock: Clock,
    /// Cluster mode: whether this instance has a site's effects now (by site id). Readings
    /// are then stored by their partition's writer, not here.
    owner: Option<Owner>,
    /// Cluster mode: records of sites not owned here when made, for when they are.
    held: super::held::Held<Record>,
    /// Cluster mode: the alarm states not published to the board for the same reason.
    held_board: super::held::Held<AlarmView>,
}

/// Alarm states kept for the board while their site is not owned here (a view is some
/// hundreds of bytes; a few minutes of alarm changes is far fewer).
const BOARD_HELD: usize = 10_000;

/// See [`Router::set_owner`].
pub type Owner = Arc<OwnerFn>;
type OwnerFn = dyn Fn(&str) -> bool + Send + Sync;

impl Router {
    pub fn new(
        audit: Arc<AuditLog>,
        store: Option<StoreQueue>,
        board: BoardQueue,
        metrics: Arc<Metrics>,
        clock: Clock,
    ) -> Router {
        Router {
            audit,
            store,
            store_gone: false,
            to_store: Vec::new(),
            board,
            metrics,
            warn: RateLimitedLog::new(10_000),
            latency: LatencyAcc::default(),
            clock,
            owner: None,
            held: Default::default(),
            held_board: super::held::Held::with_max(BOARD_HELD),
        }
    }

    /// Cluster mode: store transitions and alarm events and publish alarm states only for
    /// the sites `owner` says this instance owns now, and leave readings to the partition
    /// writers (every instance applies every event; one has its effects).
    pub fn set_owner(&mut self, owner: Owner) {
        self.owner = Some(owner);
    }

    fn owns(&self, site: &str) -> bool {
        self.owner.as_ref().is_none_or(|o| o(site))
    }

    /// The store's queue, for records made outside a round (indicator snapshots).
    pub fn store(&self) -> Option<&StoreQueue> {
        self.store.as_ref()
    }

    /// The latency histograms gathered since the last call, for the journal.
    pub fn take_latency(&mut self, inv: &Inventory) -> Vec<crate::state::LatencyRow> {
        self.latency.take(inv)
    }

    /// Route one round of the core's outputs (called under the core lock, so it only
    /// collects): records for the store, alarm states for the board, messages for the
    /// journal (returned), counts for the metrics.
    pub fn route(&mut self, core: &Core, out: &mut Outputs) -> Vec<JournalMsg> {
        let to_store = self.store.is_some().then_some(&mut self.to_store);
        let owner = self.owner.as_deref();
        let mut elsewhere = Vec::new();
        let mut msgs = route_round(
            core,
            out,
            to_store.map(|v| (v, owner, &mut elsewhere)),
            &self.metrics,
            &self.warn,
            &mut self.latency,
        );
        if !out.alarms.is_empty() {
            let now = self.clock.now_ms();
            let mut rows = Vec::with_capacity(out.alarms.len());
            for c in out.alarms.drain(..) {
                let view = AlarmView::of(&c.record, &core.inventory, now, false);
                let ev = EventView::of(&c.event);
                // HTTP acknowledgements are audited by the API, which knows the peer.
                if c.event.kind == crate::core::alarms::EventKind::Acknowledged
                    && ev.via.as_deref() == Some("mqtt")
                {
                    self.audit.record(
                        "alarm_acknowledged",
                        ev.by.as_deref().unwrap_or("-"),
                        &format!("mqtt {}/alarms/{}/ack", view.site, view.id),
                        1,
                        serde_json::json!({
                            "alarm": view.id,
                            "site": view.site,
                            "device": view.device,
                            "via": "mqtt",
                            "note": ev.note,
                            "outcome": view.outcome,
                        }),
                    );
                }
                if self.owns(&view.site) {
                    if self.store.is_some() {
                        self.to_store.push(Record::alarm(&view, &ev));
                    }
                    self.board.publish(&view);
                } else if self.owner.is_some() {
                    if self.store.is_some() {
                        elsewhere.push((view.site.clone(), Record::alarm(&view, &ev)));
                    }
                    self.held_board.keep(&view.site, now, view.clone());
                }
                self.metrics
                    .alarm_events
                    .get_or_create(&crate::telemetry::AlarmLabel {
                        alarm_type: c.record.kind.as_str(),
                        event: c.event.kind.as_str(),
                    })
                    .inc();
                rows.push((view, ev));
            }
            self.metrics
                .alarms_active
                .set(core.alarms.active_count() as i64);
            msgs.push(JournalMsg::Alarms(rows));
        }
        if !out.receipts.is_empty() {
            msgs.push(JournalMsg::Receipts(std::mem::take(&mut out.receipts)));
        }
        self.hold(elsewhere);
        msgs
    }

    /// Cluster mode: keep the records of sites not owned here, and store those of sites
    /// this instance has taken since (see `sinks::held`).
    fn hold(&mut self, elsewhere: Vec<(String, Record)>) {
        let Some(owner) = &self.owner else { return };
        let now = self.clock.now_ms();
        for (site, r) in elsewhere {
            self.held.keep(&site, now, r);
        }
        let n = self.held.release(now, owner.as_ref(), &mut self.to_store);
        let mut views = Vec::new();
        let published = self.held_board.release(now, owner.as_ref(), &mut views);
        for v in &views {
            self.board.publish(v);
        }
        if n + published > 0 {
            tracing::info!(records = n, alarm_states = published, "partition taken: storing the transitions and alarm events made while it had no owner here, and publishing their alarm states");
        }
    }

    /// Hand a round's results on, outside the core lock: state changes to the journal, then
    /// records to the outbox commit (waiting for room: nothing is dropped). A message's
    /// receipt goes to both, behind its effects, and completes when both have committed.
    pub async fn deliver(
        &mut self,
        journal: &mpsc::Sender<JournalMsg>,
        msgs: Vec<JournalMsg>,
    ) -> Result<(), ()> {
        let mut for_store = Vec::new();
        for m in msgs {
            let m = match (m, &self.store) {
                // Dropped: completes as not durable, so nothing is acknowledged.
                (JournalMsg::Receipts(_), _) if self.store_gone => continue,
                (JournalMsg::Receipts(rs), Some(_)) => {
                    for_store = rs.iter().map(crate::core::Receipt::share).collect();
                    JournalMsg::Receipts(rs)
                }
                (m, _) => m,
            };
            journal.send(m).await.map_err(|_| ())?;
        }
        if self.store_gone {
            self.to_store.clear();
            return Ok(());
        }
        if let Some(q) = &self.store {
            let sent = match self.to_store.is_empty() {
                true => Ok(()),
                false => {
                    // Exactly the round's size: a queued round's spare room is held until the
                    // outbox commits it, and a round is often a few messages. With a new
                    // 1,024-record vector a round, the queued rounds were 46 MB at the peak of
                    // a start with 100,000 devices reporting; sized to fit, 12 MB.
                    let records: Vec<Record> = self.to_store.drain(..).collect();
                    q.send(Item::Records(records)).await
                }
            };
            let sent = match (sent, for_store.is_empty()) {
                (Ok(()), false) => q.send(Item::Receipts(for_store)).await,
                (r, _) => r,
            };
            if sent.is_err() {
                self.store_gone = true;
            }
        }
        Ok(())
    }
}

/// Per-minute latency histograms per site, flushed to the journal with the persist tick.
#[derive(Default)]
struct LatencyAcc {
    counts: std::collections::HashMap<(u32, i64, u32), u64>,
}

impl LatencyAcc {
    fn add(&mut self, site: u32, received_ms: i64, latency_ms: i64) {
        let minute = received_ms - received_ms.rem_euclid(60_000);
        *self
            .counts
            .entry((site, minute, latency_bucket(latency_ms)))
            .or_default() += 1;
    }

    fn take(&mut self, inv: &Inventory) -> Vec<crate::state::LatencyRow> {
        self.counts
            .drain()
            .map(|((s, m, b), n)| (inv.sites[s as usize].id.to_string(), m, b, n))
            .collect()
    }
}

/// One round's readings and transitions to the store, transitions to the
/// journal (returned), rejections to metrics and the log. Also refreshes device gauges.
/// Where a round's records go: the store's list, the owner (cluster mode), and the list of
/// records of sites not owned here.
type StoreSide<'a> = (
    &'a mut Vec<Record>,
    Option<&'a OwnerFn>,
    &'a mut Vec<(String, Record)>,
);

/// In cluster mode (`owner` given) the records of sites not owned here go to `elsewhere`.
fn route_round(
    core: &Core,
    out: &mut Outputs,
    store: Option<StoreSide<'_>>,
    metrics: &Metrics,
    warn: &RateLimitedLog,
    latency: &mut LatencyAcc,
) -> Vec<JournalMsg> {
    let inv = &core.inventory;
    let (mut store, owner, mut elsewhere) = match store {
        Some((q, owner, e)) => (Some(q), owner, Some(e)),
        None => (None, None, None),
    };
    metrics.readings_accepted.inc_by(out.readings.len() as u64);
    for a in out.readings.drain(..) {
        if let Some(l) = a.latency_ms() {
            metrics.reading_latency.observe(l.max(0) as f64 / 1000.0);
            latency.add(inv.devices[a.device as usize].site, a.received_ms, l);
        }
        if let (Some(q), None) = (store.as_deref_mut(), owner) {
            q.push(Record::reading(inv, a));
        }
    }
    let owns = |site: u32| owner.is_none_or(|o| o(&inv.sites[site as usize].id));
    let now = now_ms();
    for r in out.rejections.drain(..) {
        metrics
            .readings_rejected
            .get_or_create(&crate::telemetry::metrics_reason(r.reason))
            .inc();
        if let Some(suppressed) = warn.allow(r.reason.as_str(), now) {
            tracing::warn!(topic = %r.origin, reason = r.reason.as_str(), detail = %r.detail, suppressed, "input rejected");
        }
    }
    let mut msgs = Vec::new();
    // Before the transitions: a device that joined this round is registered before its
    // first transition, and one that left goes offline at its leave time.
    if !out.registry.is_empty() {
        msgs.push(JournalMsg::Registry(std::mem::take(&mut out.registry)));
    }
    let mut rows = Vec::with_capacity(out.transitions.len());
    if !out.transitions.is_empty() {
        metrics.transitions.inc_by(out.transitions.len() as u64);
        for t in out.transitions.drain(..) {
            let d = &inv.devices[t.device as usize];
            match (store.as_deref_mut(), owns(d.site)) {
                (Some(q), true) => q.push(Record::transition(inv, &t)),
                (Some(_), false) => {
                    if let Some(e) = elsewhere.as_deref_mut() {
                        let site = inv.sites[d.site as usize].id.to_string();
                        e.push((site, Record::transition(inv, &t)));
                    }
                }
                (None, _) => {}
            }
            rows.push(TransitionRow {
                site: inv.sites[d.site as usize].id.to_string(),
                device: d.id.to_string(),
                at_ms: t.at_ms,
                online: t.online,
                cause: t.cause.as_str().to_string(),
            });
        }
    }
    if !rows.is_empty() {
        msgs.push(JournalMsg::Transitions(rows));
    }
    if !out.conditions.is_empty() {
        let rows = out.conditions.drain(..).map(|c| {
            let d = &inv.devices[c.device as usize];
            ConditionRow {
                site: inv.sites[d.site as usize].id.to_string(),
                device: d.id.to_string(),
                at_ms: c.at_ms,
                condition: c.condition.as_str(),
                cause: c.cause.map(|x| x.to_string()),
            }
        });
        msgs.push(JournalMsg::Conditions(rows.collect()));
    }
    if !out.polls.is_empty() {
        let mut counts: std::collections::BTreeMap<(String, i64), (u64, u64)> = Default::default();
        for (link, at, ok) in out.polls.drain(..) {
            let e = counts
                .entry((link.to_string(), at - at.rem_euclid(60_000)))
                .or_default();
            if ok {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
        }
        msgs.push(JournalMsg::Polls(
            counts
                .into_iter()
                .map(|((l, m), (ok, f))| (l, m, ok, f))
                .collect(),
        ));
    }
    if !out.links.is_empty() {
        msgs.push(JournalMsg::Links(
            out.links
                .drain(..)
                .map(|(l, at, up)| (l.to_string(), at, up))
                .collect(),
        ));
    }
    msgs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::alarms::tests::{core, feed};
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Cluster mode: an alarm raised while its site is not owned here goes neither to the
    /// store nor to the board then, and goes to both once the site is taken.
    #[test]
    fn what_was_made_while_the_site_was_not_owned_here_goes_out_once_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let audit = Arc::new(AuditLog::open(dir.path()).unwrap());
        let metrics = Arc::new(Metrics::new());
        let (store, _rx) = StoreQueue::new(1_000, 100, metrics.clone());
        let board = BoardQueue::new("sg");
        let clock = crate::telemetry::ManualClock::new(crate::core::alarms::tests::T0);
        let mut router = Router::new(audit, Some(store), board.clone(), metrics, clock.clock());
        let owned = Arc::new(AtomicBool::new(false));
        let o = owned.clone();
        router.set_owner(Arc::new(move |_: &str| o.load(Ordering::Relaxed)));
        let mut c = core();
        let mut out = Outputs {
            alarms: feed(&mut c, "p2", "x", &[(0, 90.0)]),
            ..Outputs::default()
        };
        assert!(!out.alarms.is_empty(), "a value alarm raised");
        router.route(&c, &mut out);
        assert!(
            router.to_store.is_empty(),
            "not owned: nothing for the store"
        );
        assert!(board.topics().is_empty(), "nor for the board");
        owned.store(true, Ordering::Relaxed);
        clock.advance(std::time::Duration::from_secs(2));
        router.route(&c, &mut Outputs::default());
        assert!(
            router
                .to_store
                .iter()
                .any(|r| matches!(r, Record::Alarm(_))),
            "taken: the alarm's event is stored"
        );
        assert_eq!(board.topics().len(), 1, "and its state is on the board");
    }
}
