//! What a cluster instance's core holds beyond its journal, kept with each checkpoint
//! (docs/scaling.md, "Checkpoints"): every device's liveness entry (last seen, since when,
//! an `offline` state message not yet superseded, its condition and cause), the alarm
//! rules' running state (consecutive readings above or below a level, a rate rule's
//! samples) and the counts of what was refused. With the journal's open alarms and history
//! it is the whole state the stream's next message meets, so an instance that resumes from
//! it applies the rest of the stream as if it had never stopped.
//!
//! Each device's last reading is kept too, so every instance shows the same latest values.
//! Not kept, as a single gateway's restart does not keep them either: each device's recent
//! readings (shown again from its next reading), the recent refusals' list, and final alarms
//! answered from memory.

use super::alarms::thresholds::{LevelState, RateState};
use super::event::{Channel, ReadingStatus};
use super::ingest::{Core, LastReading};
use super::inventory::DeviceIdx;
use super::liveness::EntryState;
use crate::model::Reason;
use serde::{Deserialize, Serialize};

/// The format's version; a checkpoint of another is not resumed from.
pub const VERSION: u32 = 1;

/// The core's counts; its devices' entries are kept one by one ([`DeviceEntry`]), each
/// written again only when it changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResumeState {
    pub v: u32,
    pub rejected: Vec<(String, u64)>,
    pub accepted: u64,
}

/// One device, named by site and id (the inventory's order may differ after a restart).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceEntry {
    pub site: String,
    pub device: String,
    pub live: EntryState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<LevelState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<RateState>,
    /// Its last reading, as the API shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<SavedReading>,
}

/// A device's last reading ([`LastReading`]) as a checkpoint keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedReading {
    pub ts_ms: i64,
    pub received_ms: i64,
    pub values: Vec<(Channel, f64)>,
    pub status: ReadingStatus,
    #[serde(default)]
    pub ts_from_gateway: bool,
}

impl SavedReading {
    fn of(l: &LastReading) -> SavedReading {
        SavedReading {
            ts_ms: l.ts_ms,
            received_ms: l.received_ms,
            values: l.values.to_vec(),
            status: l.status,
            ts_from_gateway: l.ts_from_gateway,
        }
    }

    fn to_last(&self) -> LastReading {
        LastReading {
            ts_ms: self.ts_ms,
            received_ms: self.received_ms,
            values: self.values.iter().cloned().collect(),
            status: self.status,
            ts_from_gateway: self.ts_from_gateway,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error("the checkpoint's state cannot be read ({0}); the instance rebuilds from the stream")]
    Unreadable(String),
    #[error("the checkpoint was written in format {0}, this safegate reads {VERSION}; the instance rebuilds from the stream")]
    Version(u32),
}

impl ResumeState {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_bytes(b: &[u8]) -> Result<ResumeState, ResumeError> {
        let s: ResumeState =
            serde_json::from_slice(b).map_err(|e| ResumeError::Unreadable(e.to_string()))?;
        if s.v != VERSION {
            return Err(ResumeError::Version(s.v));
        }
        Ok(s)
    }
}

impl DeviceEntry {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_bytes(b: &[u8]) -> Result<DeviceEntry, ResumeError> {
        serde_json::from_slice(b).map_err(|e| ResumeError::Unreadable(e.to_string()))
    }
}

impl Core {
    /// Note from now on which devices change, for [`Core::resume_state`] (cluster mode).
    pub fn track_checkpoints(&mut self) {
        self.changes.checkpoints = true;
    }

    /// The state to keep with a checkpoint: the counts, and the entries of the devices
    /// changed since the last one (of every device, with `all`).
    pub fn resume_state(&mut self, all: bool) -> (ResumeState, Vec<DeviceEntry>) {
        let changed = self.changes.take_saved();
        let mut devices: Vec<DeviceIdx> = match all {
            true => (0..self.inventory.devices.len() as DeviceIdx).collect(),
            false => changed,
        };
        devices.sort_unstable();
        let entries = devices.into_iter().filter_map(|d| self.entry(d)).collect();
        let rejected = (Reason::ALL.iter().zip(self.rejected_by_reason))
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| (r.as_str().to_string(), n))
            .collect();
        let state = ResumeState {
            v: VERSION,
            rejected,
            accepted: self.accepted,
        };
        (state, entries)
    }

    /// Device `d`'s entry.
    fn entry(&self, d: DeviceIdx) -> Option<DeviceEntry> {
        let inv = &self.inventory;
        let dev = inv.devices.get(d as usize)?;
        let level = self.alarms.level(d);
        let last = self.last.get(d as usize).and_then(|l| l.as_deref());
        Some(DeviceEntry {
            site: inv.sites[dev.site as usize].id.to_string(),
            device: dev.id.to_string(),
            live: self.liveness.entry_state(d)?,
            level: (level != LevelState::default()).then_some(level),
            rate: self.alarms.rate(d).cloned(),
            last: last.map(SavedReading::of),
        })
    }

    /// Put back a checkpoint's state; returns the devices found in the inventory.
    pub fn resume(&mut self, s: &ResumeState, devices: &[DeviceEntry]) -> usize {
        let mut found = 0;
        for e in devices {
            let Ok(d) = self.inventory.lookup(&e.site, &e.device) else {
                continue; // left the inventory since
            };
            self.liveness.set_entry_state(d, &e.live);
            self.alarms.set_running(d, e.level, e.rate.clone());
            if let Some(slot) = self.last.get_mut(d as usize) {
                *slot = e.last.as_ref().map(|l| std::sync::Arc::new(l.to_last()));
            }
            found += 1;
        }
        for (name, n) in &s.rejected {
            if let Some(i) = Reason::ALL.iter().position(|r| r.as_str() == name) {
                self.rejected_by_reason[i] = *n;
            }
        }
        self.accepted = s.accepted;
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::alarms::tests::{core, feed, T0};
    use crate::core::event::{Origin, SourceEvent};
    use crate::core::Outputs;

    /// What the rest of the story does to a core: (alarm changes, transitions).
    fn rest(c: &mut Core) -> (Vec<String>, Vec<String>) {
        let mut alarms: Vec<String> = feed(c, "p1", "slow", &[(10, 80.0)])
            .iter()
            .chain(&feed(c, "m1", "slope", &[(11, 15.0)]))
            .map(|a| format!("{} {:?} {}", a.record.id, a.event.kind, a.event.level))
            .collect();
        let mut out = Outputs::default();
        c.tick(T0 + 120_000, &mut out);
        alarms.extend(out.alarms.iter().map(|a| format!("{:?}", a.event.kind)));
        let transitions = out
            .transitions
            .iter()
            .map(|t| format!("{} {} {}", t.device, t.at_ms, t.online))
            .collect();
        (alarms, transitions)
    }

    #[test]
    fn a_core_resumed_from_a_checkpoint_goes_on_as_the_one_that_never_stopped() {
        let mut a = core();
        a.track_checkpoints();
        // One reading above the level of a rule that raises after two; a slope moving (a
        // rate rule's samples); a device told offline by its state topic, then silent.
        feed(&mut a, "p1", "slow", &[(1, 80.0)]);
        feed(&mut a, "m1", "slope", &[(1, 1.0), (400, 9.0)]);
        feed(&mut a, "m1", "ch4", &[(2, 0.8)]);
        feed(&mut a, "p1", "lel", &[(3, 1.0)]);
        let mut out = Outputs::default();
        a.apply(
            SourceEvent::DeviceState {
                site: "p1".into(),
                device: "lel".into(),
                online: false,
                origin: Origin {
                    topic: "t".into(),
                    element: None,
                },
                received_ms: T0 + 4_000,
            },
            &mut out,
        );
        let (state, devices) = a.resume_state(true);
        let state = ResumeState::from_bytes(&state.to_bytes()).unwrap();
        let devices: Vec<DeviceEntry> = (devices.iter())
            .map(|e| DeviceEntry::from_bytes(&e.to_bytes()).unwrap())
            .collect();

        // What the journal gives back (the open alarms, the next id), then the checkpoint.
        let mut b = core();
        let open: Vec<_> = a.alarms.open_alarms().cloned().collect();
        assert!(!open.is_empty(), "ch4 raised an alarm");
        b.alarms.restore(a.alarms.next_id(), open.clone());
        assert_eq!(b.resume(&state, &devices), b.inventory.devices.len());
        assert_eq!(b.resume_state(true), a.resume_state(true));
        let (expected, resumed) = (rest(&mut a), rest(&mut b));
        assert_eq!(resumed, expected);
        assert!(
            expected.0.iter().any(|s| s.contains("Raised")),
            "{expected:?}"
        );

        // A checkpoint after it holds the devices the story changed, and no other.
        let (_, changed) = a.resume_state(false);
        let names: Vec<&str> = changed.iter().map(|e| e.device.as_str()).collect();
        assert!(
            names.contains(&"slow") && names.contains(&"slope"),
            "{names:?}"
        );
        assert!(
            !names.contains(&"x") && !names.contains(&"planned"),
            "{names:?}"
        );
        assert!(
            a.resume_state(false).1.is_empty(),
            "each change is taken once"
        );

        // Without the checkpoint's state the same story ends otherwise.
        let mut c = core();
        c.alarms.restore(b.alarms.next_id(), open);
        assert_ne!(rest(&mut c), expected);
    }

    #[test]
    fn a_checkpoint_of_another_format_is_not_resumed_from() {
        let (mut s, _) = core().resume_state(true);
        s.v = VERSION + 1;
        assert!(matches!(
            ResumeState::from_bytes(&s.to_bytes()),
            Err(ResumeError::Version(_))
        ));
        assert!(ResumeState::from_bytes(b"{").is_err());
    }
}
