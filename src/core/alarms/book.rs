//! The alarm book: which alarms are active per device, their lifecycle, and the changes the
//! gateway must persist, store and publish. Plain synchronous code; time comes in with each
//! call. Per reading it costs one rule lookup and O(1) threshold work; a hash lookup only
//! while the device has an active value alarm.

use super::lifecycle::{AckResult, Alarm, AlarmState, Outcome};
use super::rules::AlarmRules;
use super::thresholds::{Change, LevelState, RateState};
use crate::core::event::Accepted;
use crate::core::event::ReadingStatus;
use crate::core::inventory::{DeviceIdx, Inventory, SiteIdx};
use crate::core::liveness::Transition;
use crate::model::Scheme;
use crate::model::{SiteStatus, UnitStatus};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};

pub type AlarmId = u64;

pub use crate::model::AlarmType;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Raised,
    Escalated,
    Acknowledged,
    Cleared,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Raised => "raised",
            EventKind::Escalated => "escalated",
            EventKind::Acknowledged => "acknowledged",
            EventKind::Cleared => "cleared",
        }
    }
    pub fn parse(s: &str) -> Option<EventKind> {
        [
            EventKind::Raised,
            EventKind::Escalated,
            EventKind::Acknowledged,
            EventKind::Cleared,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// One entry of an alarm's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlarmEvent {
    pub at_ms: i64,
    pub kind: EventKind,
    /// The alarm's level after the event.
    pub level: u8,
    /// The reading (or rate) that caused it, when one did.
    pub value: Option<f64>,
    pub by: Option<String>,
    pub note: Option<String>,
    pub via: Option<String>,
}

/// An alarm with everything the API, the journal and the indicator need.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmRecord {
    pub id: AlarmId,
    pub device: DeviceIdx,
    pub site: SiteIdx,
    pub kind: AlarmType,
    /// The channel of a value or rate alarm.
    pub channel: Option<Box<str>>,
    pub scheme: Scheme,
    pub alarm: Alarm,
    /// Response deadline, fixed at the raise (an escalation can only bring it forward).
    pub deadline_ms: i64,
    /// The value that raised it, and the highest seen while active.
    pub value: Option<f64>,
    pub peak: Option<f64>,
    pub events: Vec<AlarmEvent>,
}

impl AlarmRecord {
    pub fn state(&self) -> AlarmState {
        self.alarm.state()
    }
    pub fn level(&self) -> u8 {
        self.alarm.level()
    }
    /// Cleared and acknowledged: nothing more can happen to it.
    pub fn is_final(&self) -> bool {
        self.alarm.cleared_ms.is_some() && self.alarm.ack.is_some()
    }
    /// When it became final.
    pub fn closed_ms(&self) -> Option<i64> {
        Some(self.alarm.cleared_ms?.max(self.alarm.ack.as_ref()?.at_ms))
    }
    pub fn outcome(&self, now: i64) -> Outcome {
        self.alarm.outcome_by(self.deadline_ms, now)
    }
}

/// One change to one alarm: the alarm as it is after the change, and the change.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmChange {
    pub record: AlarmRecord,
    pub event: AlarmEvent,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AckReply {
    pub record: AlarmRecord,
    /// False when an earlier acknowledgement stands (this one changed nothing).
    pub first: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckError {
    /// No such alarm (or one closed long ago and no longer held in memory).
    Unknown(AlarmId),
    /// The alarm belongs to another site than the one acknowledging it.
    WrongSite { id: AlarmId, alarm_site: SiteIdx },
}

/// Add an event to an alarm's history at its exact size. An alarm has a few events (raised,
/// cleared, acknowledged), and one cleared but not yet acknowledged is kept until someone
/// acknowledges it, however long: a vector grown by doubling held room for 4 events of 104
/// bytes where 2 were used, a quarter of what each such alarm costs.
pub(super) fn push_event(events: &mut Vec<AlarmEvent>, ev: AlarmEvent) {
    events.reserve_exact(1);
    events.push(ev);
}

pub use crate::core::event::{Recorded, RecordedAck};

enum Matched {
    Open(AlarmId),
    /// Cleared and acknowledged already: nothing left to record.
    Final,
}

/// Final alarms kept in memory, so a repeated acknowledgement is answered without the disk.
const CLOSED_KEEP: usize = 10_000;

#[derive(Debug, Default)]
pub struct AlarmBook {
    rules: AlarmRules,
    levels: Vec<LevelState>,
    rates: HashMap<DeviceIdx, RateState>,
    active: HashMap<(DeviceIdx, AlarmType), AlarmId>,
    open: HashMap<AlarmId, AlarmRecord>,
    closed: HashMap<AlarmId, AlarmRecord>,
    closed_order: VecDeque<AlarmId>,
    next_id: AlarmId,
    raised: [u64; AlarmType::ALL.len()],
}

impl AlarmBook {
    pub fn new(rules: AlarmRules, devices: usize) -> AlarmBook {
        AlarmBook {
            rules,
            levels: vec![LevelState::default(); devices],
            next_id: 1,
            ..AlarmBook::default()
        }
    }

    /// Put back what the journal holds: the alarms not yet final, and the next id.
    pub fn restore(&mut self, next_id: AlarmId, open: Vec<AlarmRecord>) {
        self.next_id = self.next_id.max(next_id);
        for r in open {
            self.next_id = self.next_id.max(r.id + 1);
            if r.alarm.cleared_ms.is_none() {
                self.active.insert((r.device, r.kind), r.id);
                let level = r.level();
                match r.kind {
                    AlarmType::Value => {
                        if let Some(s) = self.levels.get_mut(r.device as usize) {
                            *s = LevelState::resume(level);
                        }
                    }
                    AlarmType::Rate => {
                        self.rates.entry(r.device).or_default().level = LevelState::resume(level)
                    }
                    _ => {}
                }
            }
            self.open.insert(r.id, r);
        }
    }

    /// Device `d`'s value rule state, for a checkpoint.
    pub fn level(&self, d: DeviceIdx) -> LevelState {
        self.levels.get(d as usize).copied().unwrap_or_default()
    }

    /// Device `d`'s rate rule state, for a checkpoint.
    pub fn rate(&self, d: DeviceIdx) -> Option<&RateState> {
        self.rates.get(&d)
    }

    /// Put back a device's running state from a checkpoint.
    pub fn set_running(
        &mut self,
        d: DeviceIdx,
        level: Option<LevelState>,
        rate: Option<RateState>,
    ) {
        self.grow(d as usize + 1);
        if let Some(l) = level {
            self.levels[d as usize] = l;
        }
        if let Some(r) = rate {
            self.rates.insert(d, r);
        }
    }

    /// The device's rule, if it has one.
    pub fn rule(&self, d: DeviceIdx) -> Option<std::sync::Arc<super::rules::DeviceRule>> {
        self.rules.devices.get(d as usize).cloned().flatten()
    }

    /// Give device `d` its rule (a device that joined, or whose rule changed), growing the
    /// book to it.
    pub fn set_rule(
        &mut self,
        d: DeviceIdx,
        rule: Option<std::sync::Arc<super::rules::DeviceRule>>,
    ) {
        let n = (d as usize + 1).max(self.levels.len());
        self.grow(n);
        self.rules.devices[d as usize] = rule;
    }

    /// Room for `n` devices; new ones have no rule yet.
    pub fn grow(&mut self, n: usize) {
        if self.levels.len() < n {
            self.levels.resize(n, LevelState::default());
        }
        if self.rules.devices.len() < n {
            self.rules.devices.resize(n, None);
        }
    }

    /// A device joined again: its value and rate states start over (its alarms still open
    /// stay as they are, to be acknowledged).
    pub fn reset_device(&mut self, d: DeviceIdx) {
        if let Some(l) = self.levels.get_mut(d as usize) {
            *l = LevelState::default();
        }
        self.rates.remove(&d);
    }

    /// Rules from a reload: every device's and every site's deadlines; the book's alarm
    /// states are kept.
    pub fn replace_rules(&mut self, rules: AlarmRules) {
        let n = rules.devices.len();
        self.rules = rules;
        self.grow(n);
    }

    pub fn get(&self, id: AlarmId) -> Option<&AlarmRecord> {
        self.open.get(&id).or_else(|| self.closed.get(&id))
    }

    /// Alarms not yet final (active, or cleared but unacknowledged).
    pub fn open_alarms(&self) -> impl Iterator<Item = &AlarmRecord> {
        self.open.values()
    }

    pub fn active_count(&self) -> usize {
        self.active.len()
    }

    /// Alarms raised since start, by type in [`AlarmType::ALL`] order.
    pub fn raised_counts(&self) -> [u64; AlarmType::ALL.len()] {
        self.raised
    }

    pub fn next_id(&self) -> AlarmId {
        self.next_id
    }

    /// Evaluate an accepted reading. Readings with status `maintenance` (calibration gas) or
    /// `fault` do not drive value alarms; `fault` raises a fault alarm, `normal` clears it.
    pub fn observe_reading(&mut self, inv: &Inventory, acc: &Accepted, out: &mut Vec<AlarmChange>) {
        let d = acc.device;
        let Some(Some(rule)) = self.rules.devices.get(d as usize) else {
            return;
        };
        let at = acc.received_ms;
        let fault = match acc.status {
            ReadingStatus::Fault if rule.fault => Some(true),
            ReadingStatus::Normal => Some(false),
            _ => None,
        };
        let mut level_change = None;
        let mut rate_change = None;
        let mut value = None;
        let mut channel_name = "";
        if acc.status == ReadingStatus::Normal {
            if let Some((c, v)) = acc
                .values
                .iter()
                .find(|(c, _)| **c == *rule.channel)
                .or_else(|| (acc.values.len() == 1).then(|| &acc.values[0]))
            {
                value = Some(*v);
                channel_name = c;
            }
            if let Some(v) = value {
                if let Some(r) = &rule.level {
                    level_change = self.levels[d as usize].observe(r, v);
                }
                if let Some(r) = &rule.rate {
                    let (rate, c) = self.rates.entry(d).or_default().observe(r, acc.ts_ms, v);
                    rate_change = c.map(|c| (c, rate));
                }
            }
        }
        let scheme = rule.scheme;
        let channel: Option<Box<str>> =
            (level_change.is_some() || rate_change.is_some()).then(|| channel_name.into());

        match fault {
            Some(true) if !self.active.contains_key(&(d, AlarmType::Fault)) => {
                self.raise(inv, d, AlarmType::Fault, 1, at, None, None, scheme, out)
            }
            Some(false) => self.clear(d, AlarmType::Fault, at, None, out),
            _ => {}
        }
        if let Some(v) = value {
            if self.levels[d as usize].level > 0 {
                if let Some(r) = self
                    .active
                    .get(&(d, AlarmType::Value))
                    .and_then(|id| self.open.get_mut(id))
                {
                    r.peak = Some(r.peak.map_or(v, |p| p.max(v)));
                }
            }
            if let Some(c) = level_change {
                self.change(
                    inv,
                    d,
                    AlarmType::Value,
                    c,
                    at,
                    v,
                    channel.clone(),
                    scheme,
                    out,
                );
            }
        }
        if let Some((c, rate)) = rate_change {
            let v = rate.unwrap_or(0.0);
            self.change(inv, d, AlarmType::Rate, c, at, v, channel, scheme, out);
        }
    }

    /// A liveness transition: a built device of an active site going offline raises an
    /// offline alarm; coming back clears it.
    pub fn observe_transition(
        &mut self,
        inv: &Inventory,
        t: &Transition,
        out: &mut Vec<AlarmChange>,
    ) {
        let Some(Some(rule)) = self.rules.devices.get(t.device as usize) else {
            return;
        };
        if !rule.offline {
            return;
        }
        let scheme = rule.scheme;
        if t.online {
            self.clear(t.device, AlarmType::Offline, t.at_ms, None, out);
            return;
        }
        let dev = &inv.devices[t.device as usize];
        let counted = dev.status == UnitStatus::Built
            && inv.sites[dev.site as usize].status == SiteStatus::Active;
        if counted && !self.active.contains_key(&(t.device, AlarmType::Offline)) {
            self.raise(
                inv,
                t.device,
                AlarmType::Offline,
                1,
                t.at_ms,
                None,
                None,
                scheme,
                out,
            );
        }
    }

    /// Acknowledge alarm `id` (for `site`, when the acknowledger is bound to one).
    #[allow(clippy::too_many_arguments)]
    pub fn acknowledge(
        &mut self,
        id: AlarmId,
        site: Option<SiteIdx>,
        by: &str,
        note: &str,
        via: &str,
        at: i64,
        out: &mut Vec<AlarmChange>,
    ) -> Result<AckReply, AckError> {
        if let Some(r) = self.closed.get(&id) {
            return match site {
                Some(s) if s != r.site => Err(AckError::WrongSite {
                    id,
                    alarm_site: r.site,
                }),
                _ => Ok(AckReply {
                    record: r.clone(),
                    first: false,
                }),
            };
        }
        let Some(r) = self.open.get_mut(&id) else {
            return Err(AckError::Unknown(id));
        };
        if let Some(s) = site.filter(|s| *s != r.site) {
            let _ = s;
            return Err(AckError::WrongSite {
                id,
                alarm_site: r.site,
            });
        }
        match r.alarm.acknowledge(by, note, at, via) {
            AckResult::AlreadyAcknowledged(_) => Ok(AckReply {
                record: r.clone(),
                first: false,
            }),
            AckResult::Acknowledged => {
                let ev = AlarmEvent {
                    at_ms: at,
                    kind: EventKind::Acknowledged,
                    level: r.level(),
                    value: None,
                    by: Some(by.to_string()),
                    note: Some(note.to_string()),
                    via: Some(via.to_string()),
                };
                push_event(&mut r.events, ev.clone());
                let record = r.clone();
                out.push(AlarmChange {
                    record: record.clone(),
                    event: ev,
                });
                self.finish_if_final(id);
                Ok(AckReply {
                    record,
                    first: true,
                })
            }
        }
    }

    /// An alarm its sender recorded itself (a mine's anomaly log, YCBJ): raised, cleared and
    /// acknowledged at the times the record gives. One excursion is one alarm: the record is
    /// the device's active alarm of that type if it has one (raised by the gateway from the
    /// same readings), else one of that type raised within `match_ms` of the record's start,
    /// else a new alarm. A device whose alarms are off records nothing.
    pub fn record(
        &mut self,
        inv: &Inventory,
        d: DeviceIdx,
        r: &Recorded,
        out: &mut Vec<AlarmChange>,
    ) {
        let Some(Some(rule)) = self.rules.devices.get(d as usize) else {
            return;
        };
        let scheme = rule.scheme;
        let id = match self.matching(d, r) {
            Some(Matched::Final) => return,
            Some(Matched::Open(id)) => id,
            None => {
                let id = self.next_id;
                let level = r
                    .priority
                    .map_or(r.level, |p| super::rules::priority_level(p, scheme));
                self.raise(
                    inv,
                    d,
                    r.kind,
                    level,
                    r.raised_ms,
                    r.value,
                    None,
                    scheme,
                    out,
                );
                id
            }
        };
        if let (Some(at), true) = (r.cleared_ms, self.active.get(&(d, r.kind)) == Some(&id)) {
            let raised = self.open.get(&id).map_or(at, |a| a.alarm.raised_ms);
            self.clear(d, r.kind, at.max(raised), r.value, out);
        }
        if let Some(ack) = &r.ack {
            let _ = self.acknowledge(id, None, &ack.by, &ack.note, "mine_file", ack.at_ms, out);
        }
    }

    /// The alarm a recorded one is, if the book has it.
    fn matching(&self, d: DeviceIdx, r: &Recorded) -> Option<Matched> {
        if let Some(id) = self.active.get(&(d, r.kind)) {
            return Some(Matched::Open(*id));
        }
        let near = |a: &AlarmRecord| {
            a.device == d
                && a.kind == r.kind
                && (a.alarm.raised_ms - r.raised_ms).abs() <= r.match_ms
        };
        if let Some(a) = self
            .open
            .values()
            .filter(|a| near(a))
            .min_by_key(|a| ((a.alarm.raised_ms - r.raised_ms).abs(), a.id))
        {
            return Some(Matched::Open(a.id));
        }
        self.closed.values().any(near).then_some(Matched::Final)
    }

    #[allow(clippy::too_many_arguments)]
    fn change(
        &mut self,
        inv: &Inventory,
        d: DeviceIdx,
        kind: AlarmType,
        c: Change,
        at: i64,
        v: f64,
        channel: Option<Box<str>>,
        scheme: Scheme,
        out: &mut Vec<AlarmChange>,
    ) {
        match c {
            Change::Raised(level) | Change::Escalated { to: level, .. } => {
                match self.active.get(&(d, kind)).copied() {
                    Some(id) => self.escalate(inv, id, level, at, v, out),
                    None => self.raise(inv, d, kind, level, at, Some(v), channel, scheme, out),
                }
            }
            Change::Cleared => self.clear(d, kind, at, Some(v), out),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn raise(
        &mut self,
        inv: &Inventory,
        d: DeviceIdx,
        kind: AlarmType,
        level: u8,
        at: i64,
        value: Option<f64>,
        channel: Option<Box<str>>,
        scheme: Scheme,
        out: &mut Vec<AlarmChange>,
    ) {
        let id = self.next_id;
        self.next_id += 1;
        let site = inv.devices[d as usize].site;
        let alarm = Alarm::raise(at, level);
        let deadline_ms = self
            .rules
            .deadlines
            .get(site as usize)
            .map_or(i64::MAX / 4, |dl| alarm.deadline_ms(dl));
        let ev = AlarmEvent {
            at_ms: at,
            kind: EventKind::Raised,
            level,
            value,
            by: None,
            note: None,
            via: None,
        };
        let record = AlarmRecord {
            id,
            device: d,
            site,
            kind,
            channel,
            scheme,
            alarm,
            deadline_ms,
            value,
            peak: value,
            events: vec![ev.clone()],
        };
        self.raised[kind as usize] += 1;
        self.active.insert((d, kind), id);
        out.push(AlarmChange {
            record: record.clone(),
            event: ev,
        });
        self.open.insert(id, record);
    }

    fn escalate(
        &mut self,
        _inv: &Inventory,
        id: AlarmId,
        level: u8,
        at: i64,
        v: f64,
        out: &mut Vec<AlarmChange>,
    ) {
        let Some(r) = self.open.get_mut(&id) else {
            return;
        };
        if level <= r.level() {
            return;
        }
        r.alarm.escalate(at, level);
        if let Some(dl) = self.rules.deadlines.get(r.site as usize) {
            r.deadline_ms = r.deadline_ms.min(r.alarm.deadline_ms(dl));
        }
        r.peak = Some(r.peak.map_or(v, |p| p.max(v)));
        let ev = AlarmEvent {
            at_ms: at,
            kind: EventKind::Escalated,
            level,
            value: Some(v),
            by: None,
            note: None,
            via: None,
        };
        push_event(&mut r.events, ev.clone());
        out.push(AlarmChange {
            record: r.clone(),
            event: ev,
        });
    }

    fn clear(
        &mut self,
        d: DeviceIdx,
        kind: AlarmType,
        at: i64,
        v: Option<f64>,
        out: &mut Vec<AlarmChange>,
    ) {
        let Some(id) = self.active.remove(&(d, kind)) else {
            return;
        };
        let Some(r) = self.open.get_mut(&id) else {
            return;
        };
        r.alarm.clear(at);
        let ev = AlarmEvent {
            at_ms: at,
            kind: EventKind::Cleared,
            level: r.level(),
            value: v,
            by: None,
            note: None,
            via: None,
        };
        push_event(&mut r.events, ev.clone());
        out.push(AlarmChange {
            record: r.clone(),
            event: ev,
        });
        self.finish_if_final(id);
    }

    fn finish_if_final(&mut self, id: AlarmId) {
        if !self.open.get(&id).is_some_and(AlarmRecord::is_final) {
            return;
        }
        if let Some(r) = self.open.remove(&id) {
            if self.closed_order.len() == CLOSED_KEEP {
                if let Some(old) = self.closed_order.pop_front() {
                    self.closed.remove(&old);
                }
            }
            self.closed_order.push_back(id);
            self.closed.insert(id, r);
        }
    }
}
