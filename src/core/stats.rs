//! Counts per site and for the region, and the snapshot online rate.
//!
//! Online rate (snapshot) = devices online now ÷ devices counted, where a device is counted
//! when it is `built` and its site is `active` (suspended sites and units are excluded, as in
//! the regulators' monthly networking reports). Written down in `docs/indicators.md`.

use super::ingest::Core;
use super::inventory::SiteIdx;
use super::liveness::{Condition, DeviceState};
use crate::model::UnitStatus;
use serde::Serialize;

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Rate {
    /// `numerator / denominator`, or null when nothing is counted.
    pub value: Option<f64>,
    pub numerator: u64,
    pub denominator: u64,
}

impl Rate {
    pub fn new(numerator: u64, denominator: u64) -> Rate {
        Rate {
            value: (denominator > 0).then(|| numerator as f64 / denominator as f64),
            numerator,
            denominator,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Counts {
    /// Every device in the inventory: the plan, whatever its status.
    pub planned: u64,
    /// `status = "built"`.
    pub built: u64,
    /// `status = "suspended"`.
    pub suspended: u64,
    /// Have reported at least once since registration.
    pub reported: u64,
    pub online: u64,
    pub offline: u64,
    /// Never reported.
    pub never: u64,
    /// Online, but their last reading said `status: fault`.
    pub faulty: u64,
    /// Online, but their last reading said `status: maintenance` (not counted meanwhile).
    pub maintenance: u64,
    /// Built devices of active sites, not under maintenance: the online rate's denominator.
    pub counted: u64,
    /// Counted devices online now (a coal mine's point also not faulty): the numerator.
    pub counted_online: u64,
}

impl Counts {
    pub fn online_rate(&self) -> Rate {
        Rate::new(self.counted_online, self.counted)
    }
}

impl Counts {
    /// Count one device of the given status, state and condition, `counted` when it is in
    /// the online rate's denominator; `fault_is_down` for a coal mine's point, whose fault is
    /// not online (docs/indicators.md, "Conditions"). The one definition for the core and
    /// its read model.
    pub fn add(
        &mut self,
        status: UnitStatus,
        state: DeviceState,
        condition: Condition,
        fault_is_down: bool,
        counted: bool,
    ) {
        self.planned += 1;
        match status {
            UnitStatus::Built => self.built += 1,
            UnitStatus::Suspended => self.suspended += 1,
            UnitStatus::Planned => {}
        }
        match state {
            DeviceState::Never => self.never += 1,
            DeviceState::Online => self.online += 1,
            DeviceState::Offline => self.offline += 1,
        }
        if state != DeviceState::Never {
            self.reported += 1;
        }
        let online = state == DeviceState::Online;
        let faulty = online && condition == Condition::Fault;
        let maintenance = online && condition == Condition::Maintenance;
        self.faulty += u64::from(faulty);
        self.maintenance += u64::from(maintenance);
        if counted && !maintenance {
            self.counted += 1;
            if online && !(faulty && fault_is_down) {
                self.counted_online += 1;
            }
        }
    }

    /// Devices in `state`.
    pub fn in_state(&self, state: DeviceState) -> u64 {
        match state {
            DeviceState::Never => self.never,
            DeviceState::Online => self.online,
            DeviceState::Offline => self.offline,
        }
    }
}

impl Core {
    /// Counts for one site, or for the region with `None`.
    pub fn counts(&self, site: Option<SiteIdx>) -> Counts {
        let mut c = Counts::default();
        for (i, d) in self.inventory.devices.iter().enumerate() {
            if d.removed || site.is_some_and(|s| s != d.site) {
                continue;
            }
            let i = i as u32;
            c.add(
                d.status,
                self.liveness.state(i),
                self.liveness.condition(i).0,
                d.protocol == crate::model::Protocol::MineFiles,
                self.inventory.counts_as_active(i),
            );
        }
        c
    }
}
