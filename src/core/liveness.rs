//! Device liveness: a pure state machine driven by readings, state messages and the clock.
//!
//! A device is online while its last accepted reading (by receive time) is younger than its
//! `offline_after`, unless a state message said `offline` after that reading. Silence turns a
//! device offline at exactly `last_seen + offline_after`, whenever the expiry is evaluated, so
//! transition times do not depend on task scheduling.

use super::inventory::DeviceIdx;
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    /// Never reported since it was registered.
    Never,
    Online,
    Offline,
}

impl DeviceState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceState::Never => "never",
            DeviceState::Online => "online",
            DeviceState::Offline => "offline",
        }
    }
    pub fn parse(s: &str) -> Option<DeviceState> {
        match s {
            "never" => Some(DeviceState::Never),
            "online" => Some(DeviceState::Online),
            "offline" => Some(DeviceState::Offline),
            _ => None,
        }
    }
}

/// Why a device changed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The first reading the gateway ever accepted from it.
    FirstReading,
    /// A reading after an outage.
    Reading,
    /// No reading for `offline_after`.
    Silence,
    /// Its `state` topic said `offline` (e.g. its last will).
    StateOffline,
    /// It left the inventory (a reload, or the source that declared it dropped it).
    Removed,
}

impl Cause {
    pub const ALL: [Cause; 5] = [
        Cause::FirstReading,
        Cause::Reading,
        Cause::Silence,
        Cause::StateOffline,
        Cause::Removed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Cause::FirstReading => "first_reading",
            Cause::Reading => "reading",
            Cause::Silence => "silence",
            Cause::StateOffline => "state_offline",
            Cause::Removed => "removed",
        }
    }
    pub fn parse(s: &str) -> Option<Cause> {
        match s {
            "first_reading" => Some(Cause::FirstReading),
            "reading" => Some(Cause::Reading),
            "silence" => Some(Cause::Silence),
            "state_offline" => Some(Cause::StateOffline),
            "removed" => Some(Cause::Removed),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub device: DeviceIdx,
    /// Epoch milliseconds, gateway clock.
    pub at_ms: i64,
    pub online: bool,
    pub cause: Cause,
}

/// What an online device's readings say of themselves: normal, faulty (reachable, but the
/// value cannot be trusted), or under maintenance (标校, 不巡检, 暂停: not counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    #[default]
    Normal,
    Fault,
    Maintenance,
}

impl Condition {
    pub fn of(status: crate::core::ReadingStatus) -> Condition {
        match status {
            crate::core::ReadingStatus::Normal => Condition::Normal,
            crate::core::ReadingStatus::Fault => Condition::Fault,
            crate::core::ReadingStatus::Maintenance => Condition::Maintenance,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Normal => "normal",
            Condition::Fault => "fault",
            Condition::Maintenance => "maintenance",
        }
    }
    pub fn parse(s: &str) -> Option<Condition> {
        match s {
            "normal" => Some(Condition::Normal),
            "fault" => Some(Condition::Fault),
            "maintenance" => Some(Condition::Maintenance),
            _ => None,
        }
    }
}

/// A device's condition (or its cause) changed with a reading at `at_ms`. It holds until the
/// next change; it says something only while the device is online.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionChange {
    pub device: DeviceIdx,
    pub at_ms: i64,
    pub condition: Condition,
    pub cause: Option<Arc<str>>,
}

/// A time that may be missing, in 8 bytes where `Option<i64>` takes 16: an entry per device,
/// so 2.4 MB at 100,000. `i64::MIN` (not a time any clock gives) is none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct At(i64);

impl At {
    const NONE: At = At(i64::MIN);

    fn of(t: Option<i64>) -> At {
        t.map_or(At::NONE, At)
    }

    fn get(self) -> Option<i64> {
        (self != At::NONE).then_some(self.0)
    }
}

#[derive(Debug, Clone)]
struct Entry {
    state: DeviceState,
    /// Receive time of the last accepted reading; none if never.
    last_seen: At,
    offline_after: i64,
    /// Time of the last `offline` state message not yet superseded by a reading.
    state_offline_at: At,
    /// The last reading's condition; `None` when unknown (restored after a restart), so the
    /// next reading's is recorded whatever it is.
    condition: Option<Condition>,
    /// When the current state began (the last transition), if ever.
    since: At,
    in_heap: bool,
}

impl Entry {
    fn fresh(offline_after: i64) -> Entry {
        Entry {
            state: DeviceState::Never,
            last_seen: At::NONE,
            offline_after,
            state_offline_at: At::NONE,
            condition: Some(Condition::Normal),
            since: At::NONE,
            in_heap: false,
        }
    }
}

/// One device's entry as a checkpoint keeps it (`core::resume`): all a later reading or
/// silence is judged by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntryState {
    pub state: DeviceState,
    pub last_seen: Option<i64>,
    pub since: Option<i64>,
    pub state_offline_at: Option<i64>,
    pub condition: Option<Condition>,
    pub cause: Option<Box<str>>,
}

/// Liveness of every registered device.
#[derive(Debug, Default)]
pub struct Liveness {
    entries: Vec<Entry>,
    /// Min-heap of (deadline, device). A deadline may be earlier than the device's real one
    /// (it got newer readings since); it is then pushed again with the real one. Each online
    /// device has exactly one entry, so a reading costs O(1) and an expiry O(log n).
    heap: BinaryHeap<Reverse<(i64, DeviceIdx)>>,
    /// The cause of each device's current fault or maintenance, where the source gave one
    /// (few devices at a time: kept aside, not in every entry).
    causes: HashMap<DeviceIdx, Arc<str>>,
}

impl Liveness {
    /// One entry per device, with its `offline_after` in milliseconds.
    pub fn new(offline_after_ms: impl IntoIterator<Item = i64>) -> Liveness {
        Liveness {
            entries: offline_after_ms.into_iter().map(Entry::fresh).collect(),
            heap: BinaryHeap::new(),
            causes: HashMap::new(),
        }
    }

    pub fn state(&self, d: DeviceIdx) -> DeviceState {
        self.entries[d as usize].state
    }
    pub fn last_seen(&self, d: DeviceIdx) -> Option<i64> {
        self.entries[d as usize].last_seen.get()
    }
    /// Time of the device's last transition.
    pub fn since(&self, d: DeviceIdx) -> Option<i64> {
        self.entries[d as usize].since.get()
    }
    pub fn is_faulty(&self, d: DeviceIdx) -> bool {
        let e = &self.entries[d as usize];
        e.state == DeviceState::Online && e.condition == Some(Condition::Fault)
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn arm(&mut self, d: DeviceIdx) {
        let e = &mut self.entries[d as usize];
        if !e.in_heap {
            if let Some(seen) = e.last_seen.get() {
                e.in_heap = true;
                self.heap.push(Reverse((seen + e.offline_after, d)));
            }
        }
    }

    /// An accepted reading received at `now`, faulty or normal (see [`Liveness::observe`]).
    pub fn observe_reading(&mut self, d: DeviceIdx, now: i64, fault: bool) -> Option<Transition> {
        let c = if fault {
            Condition::Fault
        } else {
            Condition::Normal
        };
        self.observe(d, now, c, None, &mut Vec::new())
    }

    /// An accepted reading received at `now` with its condition and cause; a change of either
    /// is pushed to `changes`. Call [`Liveness::expire`] with `now` first so an outage that
    /// ended with this reading is recorded.
    pub fn observe(
        &mut self,
        d: DeviceIdx,
        now: i64,
        condition: Condition,
        cause: Option<Arc<str>>,
        changes: &mut Vec<ConditionChange>,
    ) -> Option<Transition> {
        self.note_condition(d, now, condition, cause, changes);
        let e = &mut self.entries[d as usize];
        e.last_seen = At(e.last_seen.get().map_or(now, |s| s.max(now)));
        if let Some(t) = e.state_offline_at.get() {
            if now < t {
                return None;
            }
            e.state_offline_at = At::NONE;
        }
        if e.state == DeviceState::Online {
            return None;
        }
        let cause = if e.state == DeviceState::Never {
            Cause::FirstReading
        } else {
            Cause::Reading
        };
        e.state = DeviceState::Online;
        e.since = At(now);
        self.arm(d);
        Some(Transition {
            device: d,
            at_ms: now,
            online: true,
            cause,
        })
    }

    fn note_condition(
        &mut self,
        d: DeviceIdx,
        now: i64,
        condition: Condition,
        cause: Option<Arc<str>>,
        changes: &mut Vec<ConditionChange>,
    ) {
        let e = &mut self.entries[d as usize];
        // The common case, a normal reading of a normal device: no lookup of its cause.
        if condition == Condition::Normal && e.condition == Some(Condition::Normal) {
            return;
        }
        let cause = cause.filter(|_| condition != Condition::Normal);
        let same = e.condition == Some(condition) && self.causes.get(&d) == cause.as_ref();
        e.condition = Some(condition);
        if same {
            return;
        }
        match &cause {
            Some(c) => self.causes.insert(d, c.clone()),
            None => self.causes.remove(&d),
        };
        changes.push(ConditionChange {
            device: d,
            at_ms: now,
            condition,
            cause,
        });
    }

    /// The condition of an online device, and its cause.
    pub fn condition(&self, d: DeviceIdx) -> (Condition, Option<&Arc<str>>) {
        let c = self.entries[d as usize].condition.unwrap_or_default();
        (c, self.causes.get(&d))
    }

    /// The device's `state` topic said online or offline at `now`.
    pub fn observe_state(&mut self, d: DeviceIdx, online: bool, now: i64) -> Option<Transition> {
        let e = &mut self.entries[d as usize];
        if online {
            // Only clears the override: the next reading proves it is back.
            e.state_offline_at = At::NONE;
            return None;
        }
        e.state_offline_at = At(now);
        if e.state != DeviceState::Online {
            return None;
        }
        e.state = DeviceState::Offline;
        e.since = At(now);
        Some(Transition {
            device: d,
            at_ms: now,
            online: false,
            cause: Cause::StateOffline,
        })
    }

    /// Turn offline every device silent past its deadline at `now`; transitions are stamped
    /// with the deadline itself, in time order.
    pub fn expire(&mut self, now: i64, out: &mut Vec<Transition>) {
        let first = out.len();
        while let Some(Reverse((deadline, d))) = self.heap.peek().copied() {
            if deadline > now {
                break;
            }
            self.heap.pop();
            let e = &mut self.entries[d as usize];
            e.in_heap = false;
            if e.state != DeviceState::Online {
                continue;
            }
            let Some(seen) = e.last_seen.get() else {
                continue;
            };
            let real = seen + e.offline_after;
            if real <= now {
                e.state = DeviceState::Offline;
                e.since = At(real);
                out.push(Transition {
                    device: d,
                    at_ms: real,
                    online: false,
                    cause: Cause::Silence,
                });
            } else {
                self.arm(d);
            }
        }
        // In time order, not the heap's: a heap rebuilt at a restart (a checkpoint) holds
        // other stale deadlines, and the alarms these raise take their ids in this order.
        out[first..].sort_by_key(|t| (t.at_ms, t.device));
    }

    /// The earliest time at which [`Liveness::expire`] may have something to do.
    pub fn next_deadline(&self) -> Option<i64> {
        self.heap.peek().map(|Reverse((t, _))| *t)
    }

    /// A device that joined the inventory: never reported, silent after `offline_after`.
    pub fn push(&mut self, offline_after: i64) -> DeviceIdx {
        self.entries.push(Entry::fresh(offline_after));
        (self.entries.len() - 1) as DeviceIdx
    }

    /// A device's expected silence changed (a reload); its next deadline follows.
    pub fn set_offline_after(&mut self, d: DeviceIdx, offline_after: i64) {
        self.entries[d as usize].offline_after = offline_after;
        // A shorter bound than the armed deadline must still be met: arm again (a stale
        // heap entry is recomputed when it is reached).
        let e = &mut self.entries[d as usize];
        if e.state == DeviceState::Online {
            if let Some(seen) = e.last_seen.get() {
                self.heap.push(Reverse((seen + offline_after, d)));
                e.in_heap = true;
            }
        }
    }

    /// A device left the inventory at `now`: it is forgotten (a rejoin starts from `never`)
    /// and, if it was online, goes offline then with cause `removed`.
    pub fn remove(&mut self, d: DeviceIdx, now: i64) -> Option<Transition> {
        let e = &mut self.entries[d as usize];
        let was_online = e.state == DeviceState::Online;
        let offline_after = e.offline_after;
        let in_heap = e.in_heap;
        *e = Entry::fresh(offline_after);
        // A heap entry left behind finds the device `never` and is dropped.
        e.in_heap = in_heap;
        self.causes.remove(&d);
        was_online.then_some(Transition {
            device: d,
            at_ms: now,
            online: false,
            cause: Cause::Removed,
        })
    }

    /// Restore a device's persisted state after a restart.
    pub fn restore(
        &mut self,
        d: DeviceIdx,
        state: DeviceState,
        since: Option<i64>,
        last_seen: Option<i64>,
        fault: bool,
    ) {
        let e = &mut self.entries[d as usize];
        e.state = state;
        e.since = At::of(since);
        e.last_seen = At::of(last_seen);
        // Unknown: the journal's last condition may be maintenance, which the snapshot does
        // not keep; the next reading's condition is recorded whatever it is.
        e.condition = if fault { Some(Condition::Fault) } else { None };
        if state == DeviceState::Online {
            self.arm(d);
        }
    }
}

impl Liveness {
    /// Device `d`'s entry, for a checkpoint.
    pub fn entry_state(&self, d: DeviceIdx) -> Option<EntryState> {
        let e = self.entries.get(d as usize)?;
        Some(EntryState {
            state: e.state,
            last_seen: e.last_seen.get(),
            since: e.since.get(),
            state_offline_at: e.state_offline_at.get(),
            condition: e.condition,
            cause: self.causes.get(&d).map(|c| c.as_ref().into()),
        })
    }

    /// Put back device `d`'s entry from a checkpoint.
    pub fn set_entry_state(&mut self, d: DeviceIdx, s: &EntryState) {
        let Some(e) = self.entries.get_mut(d as usize) else {
            return;
        };
        e.state = s.state;
        e.last_seen = At::of(s.last_seen);
        e.since = At::of(s.since);
        e.state_offline_at = At::of(s.state_offline_at);
        e.condition = s.condition;
        match &s.cause {
            Some(c) => self.causes.insert(d, Arc::from(c.as_ref())),
            None => self.causes.remove(&d),
        };
        if s.state == DeviceState::Online {
            self.arm(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(n: usize, off: i64) -> Liveness {
        Liveness::new(std::iter::repeat_n(off, n))
    }

    #[test]
    fn an_entry_is_40_bytes_and_a_missing_time_reads_back_as_missing() {
        assert_eq!(std::mem::size_of::<Entry>(), 40);
        assert_eq!(At::of(None).get(), None);
        assert_eq!(At::of(Some(0)).get(), Some(0));
        assert_eq!(At::of(Some(-5)).get(), Some(-5));
    }

    /// A change of condition or of its cause is noted once; the same again is not. After a
    /// restore the next reading's condition is noted whatever it is.
    #[test]
    fn conditions_are_noted_when_they_or_their_causes_change() {
        let mut l = live(1, 60_000);
        let mut ch = Vec::new();
        let cause = |s: &str| Some(Arc::<str>::from(s));
        l.observe(0, 1, Condition::Normal, None, &mut ch);
        assert!(ch.is_empty(), "a fresh device is normal");
        l.observe(0, 2, Condition::Fault, cause("传感器故障"), &mut ch);
        l.observe(0, 3, Condition::Fault, cause("传感器故障"), &mut ch);
        l.observe(0, 4, Condition::Fault, cause("分站故障"), &mut ch);
        assert!(l.is_faulty(0));
        assert_eq!(
            l.condition(0),
            (Condition::Fault, cause("分站故障").as_ref())
        );
        l.observe(0, 5, Condition::Normal, cause("ignored"), &mut ch);
        let seen: Vec<(i64, Condition, Option<Arc<str>>)> = ch
            .iter()
            .map(|c| (c.at_ms, c.condition, c.cause.clone()))
            .collect();
        assert_eq!(
            seen,
            vec![
                (2, Condition::Fault, cause("传感器故障")),
                (4, Condition::Fault, cause("分站故障")),
                (5, Condition::Normal, None),
            ]
        );
        assert_eq!(l.condition(0), (Condition::Normal, None));
        l.restore(0, DeviceState::Online, Some(5), Some(5), false);
        ch.clear();
        l.observe(0, 6, Condition::Normal, None, &mut ch);
        assert_eq!(ch.len(), 1, "unknown after a restore: noted");
    }

    #[test]
    fn first_reading_then_silence_turns_offline_at_deadline() {
        let mut l = live(1, 3_000);
        let t = l.observe_reading(0, 1_000, false).unwrap();
        assert_eq!(
            (t.at_ms, t.online, t.cause),
            (1_000, true, Cause::FirstReading)
        );
        let mut out = vec![];
        l.observe_reading(0, 2_000, false);
        l.expire(4_999, &mut out);
        assert!(out.is_empty());
        // Evaluated late, stamped at the real deadline.
        l.expire(9_000, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].at_ms, out[0].online, out[0].cause),
            (5_000, false, Cause::Silence)
        );
        assert_eq!(l.state(0), DeviceState::Offline);
        assert_eq!(l.since(0), Some(5_000));
        let back = l.observe_reading(0, 9_500, false).unwrap();
        assert_eq!((back.at_ms, back.cause), (9_500, Cause::Reading));
    }

    #[test]
    fn never_reported_device_stays_never() {
        let mut l = live(2, 1_000);
        l.observe_reading(0, 0, false);
        let mut out = vec![];
        l.expire(10_000, &mut out);
        assert_eq!(l.state(1), DeviceState::Never);
        assert_eq!(out.len(), 1);
        assert_eq!(l.next_deadline(), None);
    }

    #[test]
    fn state_offline_wins_until_a_newer_reading() {
        let mut l = live(1, 10_000);
        l.observe_reading(0, 0, false);
        let t = l.observe_state(0, false, 1_000).unwrap();
        assert_eq!(
            (t.at_ms, t.online, t.cause),
            (1_000, false, Cause::StateOffline)
        );
        assert_eq!(l.state(0), DeviceState::Offline);
        // No double transition from the stale heap entry.
        let mut out = vec![];
        l.expire(20_000, &mut out);
        assert!(out.is_empty());
        assert!(l.observe_reading(0, 21_000, false).is_some());
        assert_eq!(l.state(0), DeviceState::Online);
        l.expire(31_000, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].at_ms, 31_000);
    }

    #[test]
    fn fault_is_reachable_but_counted_apart() {
        let mut l = live(1, 1_000);
        l.observe_reading(0, 0, true);
        assert_eq!(l.state(0), DeviceState::Online);
        assert!(l.is_faulty(0));
        l.observe_reading(0, 500, false);
        assert!(!l.is_faulty(0));
    }

    #[test]
    fn each_device_has_one_heap_entry() {
        let mut l = live(3, 1_000);
        for t in 0..100 {
            for d in 0..3 {
                l.observe_reading(d, t * 10, false);
            }
        }
        assert_eq!(l.heap.len(), 3);
        let mut out = vec![];
        l.expire(2_000, &mut out);
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|t| t.at_ms == 1_990));
    }
}
