//! The core's entry point: checks source events against the inventory, updates liveness and
//! the last values, and says what to persist, store and report.

use super::alarms::rules::AlarmRules;
use super::alarms::{AckError, AckReply, AlarmBook, AlarmChange, AlarmId};
pub use super::event::Accepted;
use super::event::{Origin, RawReading, ReadingStatus, Reason, Rejection, SourceEvent};
use super::inventory::{DeviceIdx, Inventory, LookupError};
use super::liveness::{Liveness, Transition};
use std::collections::VecDeque;
use std::sync::Arc;

/// Readings stamped before 2000-01-01 are refused: almost always epoch seconds sent where
/// milliseconds are expected, and a store may reject the whole batch around them.
const EARLIEST_TS_MS: i64 = 946_684_800_000;

/// What one call produced; the caller routes it to sinks, the journal and the logs.
#[derive(Debug, Default)]
pub struct Outputs {
    pub readings: Vec<Accepted>,
    pub transitions: Vec<Transition>,
    /// Devices whose condition (normal, fault, maintenance) or its cause changed.
    pub conditions: Vec<super::liveness::ConditionChange>,
    pub rejections: Vec<Rejection>,
    /// (link, at, up)
    pub links: Vec<(Arc<str>, i64, bool)>,
    /// (link, at, ok): poll outcomes of polled sources.
    pub polls: Vec<(Arc<str>, i64, bool)>,
    /// Alarm raises, escalations, acknowledgements and clears, in order.
    pub alarms: Vec<AlarmChange>,
    /// Receipts of the messages applied, for the caller to complete once their effects are
    /// durable.
    pub receipts: Vec<crate::core::Receipt>,
    /// Registry history rows: units that joined, changed status or left, at their time
    /// (journaled with the round, before its receipts).
    pub registry: Vec<super::live::RegistryChange>,
}

impl Outputs {
    pub fn is_empty(&self) -> bool {
        self.readings.is_empty()
            && self.transitions.is_empty()
            && self.conditions.is_empty()
            && self.rejections.is_empty()
            && self.alarms.is_empty()
            && self.registry.is_empty()
    }
    pub fn clear(&mut self) {
        self.readings.clear();
        self.transitions.clear();
        self.conditions.clear();
        self.rejections.clear();
        self.links.clear();
        self.polls.clear();
        self.alarms.clear();
        self.receipts.clear();
        self.registry.clear();
    }
}

/// The last accepted reading of a device, for the API. One per device, shared with the read
/// model: kept to 40 bytes (the latency is derived, not stored).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LastReading {
    pub ts_ms: i64,
    pub received_ms: i64,
    /// Inline for a device of one channel (most): the last reading is one allocation, 80
    /// bytes, kept for each of 100,000 devices.
    pub values: smallvec::SmallVec<[(crate::core::event::Channel, f64); 1]>,
    pub status: ReadingStatus,
    pub ts_from_gateway: bool,
}

impl LastReading {
    /// Receive time − reading time; `None` when the gateway stamped it.
    pub fn latency_ms(&self) -> Option<i64> {
        (!self.ts_from_gateway).then_some(self.received_ms - self.ts_ms)
    }
}

#[derive(Debug)]
pub struct Core {
    /// Shared read-only with the indicator engine and the API.
    pub inventory: Arc<Inventory>,
    pub liveness: Liveness,
    pub alarms: AlarmBook,
    /// Shared with the published read model (copy on write).
    pub(super) last: Vec<Option<Arc<LastReading>>>,
    /// The last few readings of each device ([`super::recent`]).
    pub(super) recent_values: super::recent::Recent,
    max_future_skew_ms: i64,
    pub(super) rejected_by_reason: [u64; Reason::ALL.len()],
    recent: VecDeque<Rejection>,
    recent_cap: usize,
    pub(super) accepted: u64,
    /// What changed since the last read model ([`Core::snapshot`]): devices, alarms.
    pub(super) changes: super::changes::Changes,
    /// `[alarms]`: the rules of devices that join at runtime are resolved under it.
    pub(super) alarm_settings: crate::core::config::alarms::AlarmSettings,
}

impl Core {
    pub fn new(inventory: Inventory, max_future_skew_ms: i64, recent_cap: usize) -> Core {
        let liveness = Liveness::new(inventory.devices.iter().map(|d| d.offline_after_ms));
        let last = vec![None; inventory.devices.len()];
        let inventory_len = last.len();
        Core {
            alarms: AlarmBook::new(AlarmRules::default(), inventory.devices.len()),
            inventory: Arc::new(inventory),
            liveness,
            max_future_skew_ms,
            rejected_by_reason: [0; Reason::ALL.len()],
            recent: VecDeque::new(),
            recent_cap: recent_cap.max(1),
            accepted: 0,
            changes: super::changes::Changes::new(last.len()),
            recent_values: super::recent::Recent::new(super::recent::DEFAULT_CAP, inventory_len),
            last,
            alarm_settings: Default::default(),
        }
    }

    /// Keep `cap` recent readings a device (`gateway.recent_values`); forgets those kept.
    pub fn set_recent_values(&mut self, cap: u16) {
        self.recent_values = super::recent::Recent::new(cap, self.last.len());
    }

    /// Device `d`'s recent readings: the channel, and (time ms, value) as they arrived.
    pub fn recent_values(&self, d: DeviceIdx) -> (Option<&str>, Vec<(i64, f64)>) {
        self.recent_values.of(d as usize)
    }

    /// `[alarms]`, for the rules of devices that join later (see [`Core::set_alarm_rules`]
    /// for the configured ones).
    pub fn set_alarm_settings(&mut self, s: crate::core::config::alarms::AlarmSettings) {
        self.alarm_settings = s;
    }

    pub fn last_reading(&self, d: DeviceIdx) -> Option<&LastReading> {
        self.last[d as usize].as_deref()
    }

    pub fn accepted_total(&self) -> u64 {
        self.accepted
    }

    /// Rejection counts per reason since start, in [`Reason::ALL`] order.
    pub fn rejection_counts(&self) -> impl Iterator<Item = (Reason, u64)> + '_ {
        Reason::ALL
            .iter()
            .copied()
            .zip(self.rejected_by_reason.iter().copied())
    }

    /// Most recent rejections, newest last.
    pub fn recent_rejections(&self) -> impl DoubleEndedIterator<Item = &Rejection> {
        self.recent.iter()
    }

    /// Use these alarm rules (resolved from the configuration for this inventory).
    pub fn set_alarm_rules(&mut self, rules: AlarmRules) {
        self.alarms = AlarmBook::new(rules, self.inventory.devices.len());
        self.changes.alarms = true;
    }

    /// Advance the clock: devices silent past their deadline go offline.
    pub fn tick(&mut self, now_ms: i64, out: &mut Outputs) {
        let (t0, a0) = (out.transitions.len(), out.alarms.len());
        self.liveness.expire(now_ms, &mut out.transitions);
        self.transition_alarms(out, t0);
        self.changes.alarms |= out.alarms.len() != a0;
    }

    /// Offline alarms follow the liveness transitions made since index `t0`.
    fn transition_alarms(&mut self, out: &mut Outputs, t0: usize) {
        for t in &out.transitions[t0..] {
            self.changes.touch(t.device);
            // A device that left raises no offline alarm.
            if t.cause == super::liveness::Cause::Removed {
                continue;
            }
            self.alarms
                .observe_transition(&self.inventory, t, &mut out.alarms);
        }
    }

    /// Acknowledge an alarm (for `site`, when the acknowledger is bound to one).
    #[allow(clippy::too_many_arguments)]
    pub fn acknowledge(
        &mut self,
        id: AlarmId,
        site: Option<&str>,
        by: &str,
        note: &str,
        via: &str,
        at_ms: i64,
        out: &mut Outputs,
    ) -> Result<AckReply, AckError> {
        let site = match site {
            Some(s) => Some(self.inventory.site(s).unwrap_or(u32::MAX)),
            None => None,
        };
        let a0 = out.alarms.len();
        let res = self
            .alarms
            .acknowledge(id, site, by, note, via, at_ms, &mut out.alarms);
        self.changes.alarms |= out.alarms.len() != a0;
        res
    }

    /// A reading as the core would accept it for the store, changing nothing (cluster mode:
    /// a partition's owner writes its readings from the partition's own consumer); `None`
    /// for a refused reading or another event.
    pub fn accept_for_store(&self, ev: SourceEvent) -> Option<Accepted> {
        match ev {
            SourceEvent::Reading {
                reading,
                origin,
                received_ms,
            }
            | SourceEvent::Stored {
                reading,
                origin,
                received_ms,
            } => self.check(reading, &origin, received_ms).ok(),
            _ => None,
        }
    }

    pub fn next_deadline(&self) -> Option<i64> {
        self.liveness.next_deadline()
    }

    pub fn apply(&mut self, ev: SourceEvent, out: &mut Outputs) {
        let (t0, a0) = (out.transitions.len(), out.alarms.len());
        self.apply_event(ev, out);
        self.transition_alarms(out, t0);
        self.changes.alarms |= out.alarms.len() != a0;
    }

    fn apply_event(&mut self, ev: SourceEvent, out: &mut Outputs) {
        match ev {
            SourceEvent::Reading {
                reading,
                origin,
                received_ms,
            } => {
                self.liveness.expire(received_ms, &mut out.transitions);
                match self.check(reading, &origin, received_ms) {
                    Ok(acc) => {
                        let condition = super::liveness::Condition::of(acc.status);
                        if let Some(t) = self.liveness.observe(
                            acc.device,
                            received_ms,
                            condition,
                            acc.cause.clone(),
                            &mut out.conditions,
                        ) {
                            out.transitions.push(t);
                        }
                        self.remember(&acc, received_ms);
                        self.alarms
                            .observe_reading(&self.inventory, &acc, &mut out.alarms);
                        self.accepted += 1;
                        out.readings.push(acc);
                    }
                    Err(r) => self.reject(r, out),
                }
            }
            SourceEvent::Stored {
                reading,
                origin,
                received_ms,
            } => match self.check(reading, &origin, received_ms) {
                Ok(acc) => {
                    self.accepted += 1;
                    out.readings.push(acc);
                }
                Err(r) => self.reject(r, out),
            },
            SourceEvent::DeviceState {
                site,
                device,
                online,
                origin,
                received_ms,
            } => {
                self.liveness.expire(received_ms, &mut out.transitions);
                match self.inventory.lookup(&site, &device) {
                    Ok(d) => {
                        if let Some(t) = self.liveness.observe_state(d, online, received_ms) {
                            out.transitions.push(t);
                        }
                        // A state message may change what the next reading meets, with no
                        // transition (a device already offline): its checkpoint entry.
                        self.changes.touch(d);
                    }
                    Err(e) => {
                        let r = lookup_rejection(e, &site, &device, origin, received_ms);
                        self.reject(r, out)
                    }
                }
            }
            SourceEvent::Rejected(r) => self.reject(r, out),
            SourceEvent::RecordedAlarm(a) => match self.inventory.lookup(&a.site, &a.device) {
                Ok(d) => self
                    .alarms
                    .record(&self.inventory, d, &a.alarm, &mut out.alarms),
                Err(e) => {
                    let r = lookup_rejection(e, &a.site, &a.device, a.origin, a.received_ms);
                    self.reject(r, out)
                }
            },
            SourceEvent::Ack {
                site,
                alarm,
                by,
                note,
                via,
                origin,
                received_ms,
            } => {
                let reject = |reason, detail| Rejection {
                    reason,
                    origin: origin.clone(),
                    detail,
                    received_ms,
                };
                let Ok(id) = alarm.parse::<AlarmId>() else {
                    let r = reject(
                        Reason::UnknownAlarm,
                        format!("{alarm:?} is not an alarm id (alarm ids are numbers)"),
                    );
                    return self.reject(r, out);
                };
                let res = self.acknowledge(id, Some(&site), &by, &note, &via, received_ms, out);
                match res {
                    Ok(_) => {}
                    Err(AckError::Unknown(_)) => {
                        let r = reject(
                            Reason::UnknownAlarm,
                            format!("no alarm {id} is open or recently closed"),
                        );
                        self.reject(r, out)
                    }
                    Err(AckError::WrongSite { alarm_site, .. }) => {
                        let r = reject(
                            Reason::AlarmOfOtherSite,
                            format!(
                                "alarm {id} belongs to site {:?}, not {site:?}; nothing was changed",
                                self.inventory.sites[alarm_site as usize].id
                            ),
                        );
                        self.reject(r, out)
                    }
                }
            }
            SourceEvent::Link { link, up, at_ms } => out.links.push((link, at_ms, up)),
            SourceEvent::Poll { link, ok, at_ms } => out.polls.push((link, at_ms, ok)),
            SourceEvent::Checkpoint(r) => out.receipts.push(r),
            SourceEvent::Message(m) => self.apply_message(*m, out),
            SourceEvent::Devices(sd) => self.apply_site_devices(&sd, out),
            SourceEvent::Tick { at_ms } => self.liveness.expire(at_ms, &mut out.transitions),
            // Turned into its events before the core (cluster::follow), and taken by the
            // core task (a checkpoint): never sent here.
            SourceEvent::File(_) | SourceEvent::Position { .. } => {}
        }
    }

    /// A message's events in order, then its refusals for the sender and its receipt.
    fn apply_message(&mut self, m: crate::core::event::Message, out: &mut Outputs) {
        let first = out.rejections.len();
        for ev in m.events {
            self.apply_event(ev, out);
        }
        if let Ok(mut refused) = m.refused.lock() {
            refused.extend_from_slice(&out.rejections[first..]);
        }
        out.receipts.push(m.receipt);
    }

    /// Keep the last reading for the API, reusing its allocation when the device sends the
    /// same channels as last time and no published read model still shows the previous one
    /// (the common case: a fresh allocation per reading was a large share of the per-reading
    /// cost; now a device pays one at most once per publication, see `snapshot.rs`).
    fn remember(&mut self, acc: &Accepted, received_ms: i64) {
        self.changes.touch(acc.device);
        if let Some((channel, v)) = acc.values.first() {
            let d = acc.device as usize;
            self.recent_values.push(d, acc.ts_ms, channel, *v);
        }
        let slot = &mut self.last[acc.device as usize];
        let reusable = slot.as_mut().and_then(Arc::get_mut).filter(|l| {
            l.values.len() == acc.values.len()
                && l.values
                    .iter()
                    .zip(&acc.values)
                    .all(|((a, _), (b, _))| **a == **b)
        });
        if let Some(l) = reusable {
            for ((_, v), (_, nv)) in l.values.iter_mut().zip(&acc.values) {
                *v = *nv;
            }
            l.ts_ms = acc.ts_ms;
            l.received_ms = received_ms;
            l.ts_from_gateway = acc.ts_from_gateway;
            l.status = acc.status;
            return;
        }
        *slot = Some(Arc::new(LastReading {
            ts_ms: acc.ts_ms,
            received_ms,
            status: acc.status,
            ts_from_gateway: acc.ts_from_gateway,
            values: acc.values.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        }));
    }

    pub(super) fn reject(&mut self, r: Rejection, out: &mut Outputs) {
        self.rejected_by_reason[r.reason as usize] += 1;
        if self.recent.len() == self.recent_cap {
            self.recent.pop_front();
        }
        self.recent.push_back(r.clone());
        out.rejections.push(r);
    }

    fn check(
        &self,
        r: RawReading,
        origin: &Origin,
        received_ms: i64,
    ) -> Result<Accepted, Rejection> {
        let reject = |reason, detail: String| Rejection {
            reason,
            origin: origin.clone(),
            detail,
            received_ms,
        };
        let device = self
            .inventory
            .lookup(&r.site, &r.device)
            .map_err(|e| lookup_rejection(e, &r.site, &r.device, origin.clone(), received_ms))?;
        // A faulty or maintained sensor may say so without a value (a mine's -9999); a
        // normal reading without one says nothing.
        if r.values.is_empty() && r.status == ReadingStatus::Normal {
            return Err(reject(
                Reason::EmptyValues,
                format!("device {:?} sent a reading with no values", r.device),
            ));
        }
        if let Some(problem) = super::event::channel_names_problem(&r.values) {
            return Err(reject(Reason::InvalidValue, problem));
        }
        if let Some((ch, v)) = r.values.iter().find(|(_, v)| !v.is_finite()) {
            return Err(reject(
                Reason::InvalidValue,
                format!("channel {ch:?} is {v}, not a finite number"),
            ));
        }
        if let Some(ts) = r.ts_ms {
            if ts < EARLIEST_TS_MS {
                return Err(reject(
                    Reason::BadTimestamp,
                    format!(
                        "ts {ts} is before 2000-01-01; epoch timestamps must be in milliseconds, not seconds"
                    ),
                ));
            }
            if ts > received_ms + self.max_future_skew_ms {
                return Err(reject(
                    Reason::FutureTimestamp,
                    format!(
                        "ts is {} s ahead of the gateway clock (limit {} s); check the device clock",
                        (ts - received_ms) / 1000,
                        self.max_future_skew_ms / 1000
                    ),
                ));
            }
        }
        Ok(Accepted {
            device,
            ts_ms: r.ts_ms.unwrap_or(received_ms),
            ts_from_gateway: r.ts_ms.is_none(),
            received_ms,
            values: r.values,
            status: r.status,
            cause: r.cause,
        })
    }
}

fn lookup_rejection(
    e: LookupError,
    site: &str,
    device: &str,
    origin: Origin,
    received_ms: i64,
) -> Rejection {
    let (site, device) = (
        super::event::shorten(site, 64),
        super::event::shorten(device, 64),
    );
    let (reason, detail) = match e {
        LookupError::UnknownSite => (
            Reason::UnknownSite,
            format!("site {site:?} is not in the inventory"),
        ),
        LookupError::UnknownDevice => (
            Reason::UnknownDevice,
            format!("device {device:?} is not registered in site {site:?}"),
        ),
        LookupError::WrongSite => (
            Reason::WrongSite,
            format!("device {device:?} belongs to another site, not {site:?}"),
        ),
    };
    Rejection {
        reason,
        origin,
        detail,
        received_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INV: &str = r#"
[[sites]]
id = "p1"
name = "P1"
kind = "park"

[[sites]]
id = "p2"
name = "P2"
kind = "park"
status = "suspended"

[[devices]]
id = "a"
site = "p1"
kind = "gas_combustible"
protocol = "mqtt"
interval_s = 1

[[devices]]
id = "b"
site = "p1"
kind = "gas_combustible"
protocol = "mqtt"
interval_s = 1

[[devices]]
id = "c"
site = "p2"
kind = "gas_combustible"
protocol = "mqtt"
interval_s = 1
"#;

    fn core() -> Core {
        let f = crate::core::config::inventory::test_file(INV);
        Core::new(Inventory::from_config(&f.inventory), 60_000, 10)
    }

    fn reading(site: &str, dev: &str, ts: Option<i64>, at: i64) -> SourceEvent {
        SourceEvent::Reading {
            reading: RawReading {
                site: site.into(),
                device: dev.into(),
                ts_ms: ts,
                values: vec![("v".into(), 1.0)],
                status: ReadingStatus::Normal,
                cause: None,
            },
            origin: Origin {
                topic: Arc::from("t"),
                element: None,
            },
            received_ms: at,
        }
    }

    #[test]
    fn a_message_reports_only_its_own_refusals_and_then_its_receipt() {
        let mut c = core();
        let mut out = Outputs::default();
        // Another source's refusal earlier in the same round is not the message's.
        c.apply(reading("p1", "zz", None, EARLIEST_TS_MS), &mut out);
        let refused = Arc::new(std::sync::Mutex::new(Vec::new()));
        let done = Arc::new(std::sync::Mutex::new(None));
        let d = done.clone();
        let mut unknown = reading("p1", "nope", None, EARLIEST_TS_MS);
        if let SourceEvent::Reading { origin, .. } = &mut unknown {
            origin.element = Some(1);
        }
        let msg = crate::core::Message {
            events: vec![reading("p1", "a", None, EARLIEST_TS_MS), unknown],
            refused: refused.clone(),
            receipt: crate::core::Receipt::new(move |ok| *d.lock().unwrap() = Some(ok)),
        };
        c.apply(SourceEvent::Message(Box::new(msg)), &mut out);
        let mine = refused.lock().unwrap().clone();
        assert_eq!(mine.len(), 1, "{mine:?}");
        assert_eq!(mine[0].reason, Reason::UnknownDevice);
        assert_eq!(mine[0].origin.element, Some(1));
        assert_eq!(out.readings.len(), 1, "the good element is applied");
        assert_eq!(
            out.rejections.len(),
            2,
            "both refusals are counted as usual"
        );
        assert_eq!(out.receipts.len(), 1);
        assert_eq!(*done.lock().unwrap(), None, "complete only once durable");
        out.receipts.pop().unwrap().done();
        assert_eq!(*done.lock().unwrap(), Some(true));
    }

    #[test]
    fn lookup_and_timestamp_rules() {
        let mut c = core();
        let mut out = Outputs::default();
        c.apply(reading("p1", "c", None, 0), &mut out);
        c.apply(reading("p1", "zz", None, 0), &mut out);
        c.apply(reading("p9", "a", None, 0), &mut out);
        c.apply(reading("p1", "a", Some(1_700_000_000), 0), &mut out);
        c.apply(
            reading("p1", "a", Some(61_001 + EARLIEST_TS_MS), EARLIEST_TS_MS),
            &mut out,
        );
        let reasons: Vec<Reason> = out.rejections.iter().map(|r| r.reason).collect();
        assert_eq!(
            reasons,
            vec![
                Reason::WrongSite,
                Reason::UnknownDevice,
                Reason::UnknownSite,
                Reason::BadTimestamp,
                Reason::FutureTimestamp
            ]
        );
        out.clear();
        c.apply(
            reading("p1", "a", Some(60_000 + EARLIEST_TS_MS), EARLIEST_TS_MS),
            &mut out,
        );
        c.apply(reading("p1", "b", None, EARLIEST_TS_MS + 5), &mut out);
        assert_eq!(out.readings.len(), 2);
        assert_eq!(out.readings[1].ts_ms, EARLIEST_TS_MS + 5);
        assert!(out.readings[1].ts_from_gateway);
        assert_eq!(out.readings[1].latency_ms(), None);
        assert_eq!(c.accepted_total(), 2);
        assert_eq!(
            c.rejection_counts().map(|(_, n)| n).sum::<u64>(),
            5,
            "every rejection is counted"
        );
    }

    #[test]
    fn a_last_reading_of_one_channel_is_one_allocation_of_80_bytes() {
        // 64 bytes in an Arc's 16: jemalloc's 80-byte class, for each device that reported.
        assert_eq!(std::mem::size_of::<LastReading>(), 64);
        let mut l = LastReading {
            ts_ms: 0,
            received_ms: 0,
            values: smallvec::smallvec![("lel".into(), 1.0)],
            status: ReadingStatus::Normal,
            ts_from_gateway: false,
        };
        assert!(!l.values.spilled());
        l.values.push(("ppm".into(), 2.0));
        assert_eq!(
            l.values[1].1, 2.0,
            "more channels spill to the heap, still kept"
        );
    }

    /// Found by tests/it/fuzz_inputs.rs: a channel the store cannot write (or would overwrite)
    /// used to be accepted, then broke or silently lost part of the store's line.
    #[test]
    fn channel_names_the_store_cannot_take_are_invalid_values() {
        let mut c = core();
        let mut out = Outputs::default();
        for values in [
            vec![("status_code".into(), 5.0)],
            vec![("ts_from_gateway".into(), 1.0)],
            vec![("x".into(), 1.0), ("x".into(), 2.0)],
            vec![(crate::core::event::Channel::default(), 1.0)],
            vec![("a\nb".into(), 1.0)],
            vec![("a\\".into(), 1.0)],
            // Past eight channels the repeat is found by sorting.
            (0..10)
                .map(|i| (format!("c{}", i % 9).into(), 1.0))
                .collect(),
        ] {
            let SourceEvent::Reading {
                mut reading,
                origin,
                received_ms,
            } = reading("p1", "a", None, EARLIEST_TS_MS)
            else {
                unreachable!()
            };
            reading.values = values.clone();
            c.apply(
                SourceEvent::Reading {
                    reading,
                    origin,
                    received_ms,
                },
                &mut out,
            );
            assert!(out.readings.is_empty(), "{values:?} was accepted");
            let r = out.rejections.pop().unwrap();
            assert_eq!(r.reason, Reason::InvalidValue, "{values:?}");
            assert!(r.detail.contains("channel"), "{}", r.detail);
        }
        // Names that only need escaping are fine, and so is a long list of distinct ones.
        let SourceEvent::Reading {
            mut reading,
            origin,
            received_ms,
        } = reading("p1", "a", None, EARLIEST_TS_MS)
        else {
            unreachable!()
        };
        reading.values = (0..20)
            .map(|i| (format!("ch {i},=\"温\"").into(), 1.0))
            .collect();
        c.apply(
            SourceEvent::Reading {
                reading,
                origin,
                received_ms,
            },
            &mut out,
        );
        assert_eq!(out.readings.len(), 1, "{:?}", out.rejections);
    }

    #[test]
    fn suspended_sites_are_outside_the_rate_and_expiry_is_exact() {
        let mut c = core();
        let mut out = Outputs::default();
        c.apply(reading("p1", "a", None, 1_000), &mut out);
        c.apply(reading("p2", "c", None, 1_000), &mut out);
        let region = c.counts(None);
        assert_eq!((region.planned, region.online, region.never), (3, 2, 1));
        // c's site is suspended: counted neither above nor below the line.
        assert_eq!(region.online_rate().numerator, 1);
        assert_eq!(region.online_rate().denominator, 2);
        assert_eq!(region.online_rate().value, Some(0.5));
        out.clear();
        c.tick(4_000, &mut out);
        assert_eq!(out.transitions.len(), 2);
        assert!(out
            .transitions
            .iter()
            .all(|t| t.at_ms == 4_000 && !t.online));
        assert_eq!(c.counts(Some(0)).online_rate().value, Some(0.0));
        assert_eq!(c.counts(Some(1)).online_rate().value, None);
    }
}
