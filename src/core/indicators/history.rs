//! What the indicator engine reads: the registration and status history of every unit and
//! the liveness transitions of every device, up to the end of the window. Plain data, so
//! tests can build timelines by hand and the journal can load them from disk.

use crate::core::inventory::Inventory;
use crate::model::{SiteStatus, UnitStatus};

/// A unit's registry status over time. Before its first entry a unit was not registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reg {
    Planned,
    Built,
    Suspended,
    /// Gone from the inventory.
    Removed,
}

impl Reg {
    pub fn as_str(self) -> &'static str {
        match self {
            Reg::Planned => "planned",
            Reg::Built => "built",
            Reg::Suspended => "suspended",
            Reg::Removed => "removed",
        }
    }
    pub fn parse(s: &str) -> Option<Reg> {
        match s {
            "planned" => Some(Reg::Planned),
            "built" | "active" => Some(Reg::Built),
            "suspended" => Some(Reg::Suspended),
            "removed" => Some(Reg::Removed),
            _ => None,
        }
    }
}

impl From<UnitStatus> for Reg {
    fn from(s: UnitStatus) -> Reg {
        match s {
            UnitStatus::Planned => Reg::Planned,
            UnitStatus::Built => Reg::Built,
            UnitStatus::Suspended => Reg::Suspended,
        }
    }
}

/// Sites are active (`Built`) or `Suspended`.
impl From<SiteStatus> for Reg {
    fn from(s: SiteStatus) -> Reg {
        match s {
            SiteStatus::Active => Reg::Built,
            SiteStatus::Suspended => Reg::Suspended,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct DeviceHistory {
    /// (time, status), time-ordered.
    pub status: Vec<(i64, Reg)>,
    /// (time, online), time-ordered: the liveness journal.
    pub transitions: Vec<(i64, bool)>,
    /// (time, condition, cause), time-ordered: what its readings said of themselves from
    /// then on (meaningful while online).
    pub conditions: Vec<(i64, crate::core::Condition, Option<std::sync::Arc<str>>)>,
}

/// An alarm raised in the window, as the response rate needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmFact {
    pub id: u64,
    pub device: u32,
    pub alarm_type: crate::core::alarms::AlarmType,
    /// Highest level reached.
    pub level: u8,
    pub raised_ms: i64,
    pub deadline_ms: i64,
    pub ack_ms: Option<i64>,
}

/// Histogram of latencies: (bucket, count); see [`latency_bucket`].
pub type LatencyHist = Vec<(u32, u64)>;

#[derive(Debug, Clone, Default)]
pub struct History {
    /// By device index of the inventory.
    pub devices: Vec<DeviceHistory>,
    /// By site index: active (`Built`) / `Suspended` / `Removed` over time.
    pub sites: Vec<Vec<(i64, Reg)>>,
    /// By system index.
    pub systems: Vec<Vec<(i64, Reg)>>,
    /// By zone index: registration time.
    pub zones: Vec<Option<i64>>,
    /// By enterprise index: registration time.
    pub enterprises: Vec<Option<i64>>,
    /// By zone index: registered (`Built`) and `Removed` over time, when the journal has
    /// them; empty: registered from `zones[i]` on.
    pub zone_status: Vec<Vec<(i64, Reg)>>,
    /// By enterprise index: as `zone_status`.
    pub enterprise_status: Vec<Vec<(i64, Reg)>>,
    /// By site index: latency histogram of readings received in the window.
    pub latency: Vec<LatencyHist>,
    /// Upstream links (`mqtt`, Modbus endpoints): (time, up) changes.
    pub links: Vec<(String, Vec<(i64, bool)>)>,
    /// Polled links: (link, successful polls, failed polls) in the window.
    pub polls: Vec<(String, u64, u64)>,
    /// Alarms raised in the window.
    pub alarms: Vec<AlarmFact>,
}

impl History {
    /// Every unit registered at `at` with its current status, no transitions: the starting
    /// point for hand-built timelines.
    pub fn registered_at(inv: &Inventory, at: i64) -> History {
        History {
            devices: inv
                .devices
                .iter()
                .map(|d| DeviceHistory {
                    status: vec![(at, d.status.into())],
                    transitions: vec![],
                    conditions: vec![],
                })
                .collect(),
            sites: inv
                .sites
                .iter()
                .map(|s| vec![(at, s.status.into())])
                .collect(),
            systems: inv
                .systems
                .iter()
                .map(|s| vec![(at, s.status.into())])
                .collect(),
            zones: vec![Some(at); inv.zones.len()],
            enterprises: vec![Some(at); inv.enterprises.len()],
            zone_status: Vec::new(),
            enterprise_status: Vec::new(),
            latency: vec![Vec::new(); inv.sites.len()],
            links: Vec::new(),
            polls: Vec::new(),
            alarms: Vec::new(),
        }
    }
}

/// Latency buckets: 1 ms wide below 1 s, 100 ms wide to 60 s, 10 s wide beyond (capped at
/// one day). A percentile is reported as the upper edge of its bucket, so below 1 s it is
/// exact to the millisecond.
pub fn latency_bucket(ms: i64) -> u32 {
    let ms = ms.clamp(0, 86_400_000);
    if ms < 1_000 {
        ms as u32
    } else if ms < 60_000 {
        1_000 + ((ms - 1_000) / 100) as u32
    } else {
        1_590 + ((ms - 60_000) / 10_000) as u32
    }
}

/// The largest latency a bucket holds (its upper edge), in ms.
pub fn bucket_upper_ms(b: u32) -> i64 {
    let b = b as i64;
    if b < 1_000 {
        b
    } else if b < 1_590 {
        1_000 + (b - 1_000 + 1) * 100 - 1
    } else {
        60_000 + (b - 1_590 + 1) * 10_000 - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotone_and_exact_below_one_second() {
        let mut prev = 0;
        for ms in (0..200_000).step_by(7) {
            let b = latency_bucket(ms);
            assert!(b >= prev);
            prev = b;
            assert!(bucket_upper_ms(b) >= ms, "{ms}");
            if ms < 1000 {
                assert_eq!(bucket_upper_ms(b), ms);
            }
        }
        assert_eq!(latency_bucket(-5), 0);
    }
}
