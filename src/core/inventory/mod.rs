//! The registered fleet, indexed for O(1) lookup of a device by (site, id).

use crate::model::{
    DeviceKind, PlatformStatus, Protocol, Scheme, SiteKind, SiteStatus, SystemKind, UnitStatus,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The id indexes are looked up once or twice per reading. foldhash, not SipHash: the tables
/// are built from the configuration only, so a sender choosing ids can make lookups miss but
/// cannot fill a table with collisions; SipHash was some 4 % of the gateway's CPU per reading.
/// Keyed by the unit's own id (`Device::id` for devices): one allocation per id, not two.
type IdIndex<V> = HashMap<Arc<str>, V, foldhash::fast::RandomState>;

pub use crate::core::config::inventory::{
    DeviceConfig, EnterpriseConfig, InventoryConfig, ProtocolSection, SiteConfig, SystemConfig,
    ZoneConfig,
};

pub type SiteIdx = u32;
pub type DeviceIdx = u32;

/// Who declared a unit: the inventory files, or a source at runtime (`mine_files` from a
/// mine's point-definition file). A TOML reload touches only `Config` devices; a source's
/// declaration only its own.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Declared {
    #[default]
    Config,
    Source(Arc<str>),
}

impl Declared {
    /// `config`, or the source's name (the API's `declared`).
    pub fn as_str(&self) -> &str {
        match self {
            Declared::Config => "config",
            Declared::Source(s) => s,
        }
    }
}

/// The kinds of unit the registry history records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnitKind {
    Site,
    Enterprise,
    Zone,
    System,
    Device,
}

impl UnitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UnitKind::Site => "site",
            UnitKind::Enterprise => "enterprise",
            UnitKind::Zone => "zone",
            UnitKind::System => "system",
            UnitKind::Device => "device",
        }
    }
    pub fn parse(s: &str) -> Option<UnitKind> {
        Some(match s {
            "site" => UnitKind::Site,
            "enterprise" => UnitKind::Enterprise,
            "zone" => UnitKind::Zone,
            "system" => UnitKind::System,
            "device" => UnitKind::Device,
            _ => return None,
        })
    }
}

/// Units are never taken out of the vectors (a handed-out index stays valid): a unit that
/// left the inventory is `removed`, out of the id indexes' lookups and of every count, and a
/// unit that comes back under the same (site, id) takes its old slot again.
#[derive(Debug, Clone)]
pub struct Site {
    pub id: Arc<str>,
    pub name: String,
    pub kind: SiteKind,
    pub status: SiteStatus,
    /// The site's own alarm scheme (`[sites.alarms] scheme`), for devices that join later.
    pub alarm_scheme: Option<Scheme>,
    pub removed: bool,
    /// Device id → index (removed devices too), so lookups borrow the topic's &str
    /// without allocating.
    devices: IdIndex<DeviceIdx>,
}

#[derive(Debug, Clone)]
pub struct Enterprise {
    pub id: Arc<str>,
    pub site: SiteIdx,
    pub name: String,
    pub platform: PlatformStatus,
    pub removed: bool,
}

#[derive(Debug, Clone)]
pub struct Zone {
    pub id: Arc<str>,
    pub site: SiteIdx,
    pub name: String,
    pub removed: bool,
}

#[derive(Debug, Clone)]
pub struct System {
    pub id: Arc<str>,
    pub site: SiteIdx,
    pub name: Option<String>,
    pub kind: SystemKind,
    pub status: UnitStatus,
    pub removed: bool,
}

#[derive(Debug, Clone)]
pub struct Device {
    pub id: Arc<str>,
    pub site: SiteIdx,
    pub kind: DeviceKind,
    pub gas: Option<Arc<str>>,
    pub enterprise: Option<u32>,
    pub zone: Option<u32>,
    pub system: Option<u32>,
    pub protocol: Protocol,
    /// The GB/T 28181 ID of a `gb28181` device (a channel's is its id).
    pub gb_id: Option<Arc<str>>,
    pub interval_ms: i64,
    pub offline_after_ms: i64,
    pub status: UnitStatus,
    pub declared: Declared,
    pub removed: bool,
}

/// Why a (site, device) pair did not resolve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupError {
    UnknownSite,
    UnknownDevice,
    /// The device id exists, but under another site.
    WrongSite,
}

#[derive(Debug, Default, Clone)]
pub struct Inventory {
    pub sites: Vec<Site>,
    pub enterprises: Vec<Enterprise>,
    pub zones: Vec<Zone>,
    pub systems: Vec<System>,
    pub devices: Vec<Device>,
    /// What each source found wrong in what it declared for a site (a mine's CDDY
    /// thresholds looser than the rules), replaced with each declaration.
    pub findings: BTreeMap<(SiteIdx, Arc<str>), Arc<[Finding]>>,
    site_index: IdIndex<SiteIdx>,
}

/// A rule a declared unit's configuration breaks, found by the source that declared it and
/// listed in the report for the auditor; it changes no indicator.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The unit's id (a mine point's code).
    pub unit: String,
    /// A short, fixed code for the check, e.g. `methane_alarm_too_high`.
    pub check: &'static str,
    /// What was declared, in the declaration's unit; `None` when it was left empty.
    pub declared: Option<f64>,
    /// The rule's limit, as text (`≤ 1.0 %CH4`).
    pub limit: String,
    /// Where the rule is written.
    pub basis: &'static str,
    /// One sentence naming the unit, its place, the value and the limit.
    pub text: String,
}

impl Inventory {
    /// Build from a validated configuration (references are known to resolve).
    pub fn from_config<P>(inv: &InventoryConfig<P>) -> Inventory {
        let mut out = Inventory::default();
        for s in &inv.sites {
            let idx = out.sites.len() as SiteIdx;
            out.site_index.insert(Arc::from(s.id.as_str()), idx);
            out.sites.push(Site {
                id: s.id.as_str().into(),
                name: s.name.clone(),
                kind: s.kind,
                status: s.status,
                alarm_scheme: s.alarms.as_ref().and_then(|a| a.scheme),
                removed: false,
                devices: IdIndex::default(),
            });
        }
        let site_of = |id: &str, idx: &IdIndex<SiteIdx>| idx.get(id).copied().unwrap_or(0);
        let mut ent_idx = HashMap::new();
        for e in &inv.enterprises {
            let site = site_of(&e.site, &out.site_index);
            ent_idx.insert((site, e.id.clone()), out.enterprises.len() as u32);
            out.enterprises.push(Enterprise {
                id: e.id.as_str().into(),
                site,
                name: e.name.clone(),
                platform: e.platform,
                removed: false,
            });
        }
        let mut zone_idx = HashMap::new();
        for z in &inv.zones {
            let site = site_of(&z.site, &out.site_index);
            zone_idx.insert((site, z.id.clone()), out.zones.len() as u32);
            out.zones.push(Zone {
                id: z.id.as_str().into(),
                site,
                name: z.name.clone(),
                removed: false,
            });
        }
        let mut sys_idx = HashMap::new();
        for s in &inv.systems {
            let site = site_of(&s.site, &out.site_index);
            sys_idx.insert((site, s.id.clone()), out.systems.len() as u32);
            out.systems.push(System {
                id: s.id.as_str().into(),
                site,
                name: s.name.clone(),
                kind: s.kind,
                status: s.status,
                removed: false,
            });
        }
        // Sized once: grown by doubling, the device array alone kept 2.5 MB of slack at
        // 100,000 devices, for the gateway's lifetime.
        out.devices.reserve_exact(inv.devices.len());
        let mut per_site = vec![0usize; out.sites.len()];
        for d in &inv.devices {
            if let Some(n) = per_site.get_mut(site_of(&d.site, &out.site_index) as usize) {
                *n += 1;
            }
        }
        for (s, n) in out.sites.iter_mut().zip(per_site) {
            s.devices.reserve(n);
        }
        let mut gases: HashMap<String, Arc<str>> = HashMap::new();
        for d in &inv.devices {
            let site = site_of(&d.site, &out.site_index);
            let idx = out.devices.len() as DeviceIdx;
            let id: Arc<str> = d.id.as_str().into();
            out.sites[site as usize].devices.insert(id.clone(), idx);
            let find = |m: &HashMap<(SiteIdx, String), u32>, v: &Option<String>| {
                v.as_ref().and_then(|v| m.get(&(site, v.clone())).copied())
            };
            out.devices.push(Device {
                id,
                site,
                kind: d.kind,
                gas: d.gas.as_ref().map(|g| {
                    gases
                        .entry(g.clone())
                        .or_insert_with(|| g.as_str().into())
                        .clone()
                }),
                enterprise: find(&ent_idx, &d.enterprise),
                zone: find(&zone_idx, &d.zone),
                system: find(&sys_idx, &d.system),
                protocol: d.protocol,
                gb_id: d.gb_id.as_deref().map(Arc::from),
                interval_ms: (d.interval_s * 1000.0).round() as i64,
                offline_after_ms: d.offline_after_ms(),
                status: d.status,
                declared: Declared::Config,
                removed: false,
            });
        }
        out
    }

    /// A site in the inventory (not one that left it).
    pub fn site(&self, id: &str) -> Option<SiteIdx> {
        self.site_slot(id)
            .filter(|&s| !self.sites[s as usize].removed)
    }

    /// A site's slot, whether it is in the inventory or left it.
    pub fn site_slot(&self, id: &str) -> Option<SiteIdx> {
        self.site_index.get(id).copied()
    }

    /// A device's slot in a site, whether it is in the inventory or left it.
    pub fn device_slot(&self, site: SiteIdx, id: &str) -> Option<DeviceIdx> {
        self.sites[site as usize].devices.get(id).copied()
    }

    pub fn lookup(&self, site: &str, device: &str) -> Result<DeviceIdx, LookupError> {
        let Some(s) = self.site(site) else {
            return Err(LookupError::UnknownSite);
        };
        let live = |d: &DeviceIdx| !self.devices[*d as usize].removed;
        if let Some(d) = self.sites[s as usize]
            .devices
            .get(device)
            .filter(|d| live(d))
        {
            return Ok(*d);
        }
        let elsewhere = |s: &Site| !s.removed && s.devices.get(device).is_some_and(live);
        if self.sites.iter().any(elsewhere) {
            Err(LookupError::WrongSite)
        } else {
            Err(LookupError::UnknownDevice)
        }
    }

    /// Whether a device counts in the online-rate denominator: in the inventory, built, in
    /// an active site.
    pub fn counts_as_active(&self, d: DeviceIdx) -> bool {
        let dev = &self.devices[d as usize];
        !dev.removed
            && dev.status == UnitStatus::Built
            && self.sites[dev.site as usize].status == SiteStatus::Active
    }

    /// A new site's slot (its id not yet known).
    pub fn push_site(&mut self, site: Site) -> SiteIdx {
        let idx = self.sites.len() as SiteIdx;
        self.site_index.insert(Arc::from(&*site.id), idx);
        self.sites.push(site);
        idx
    }

    /// A new device's slot (its id not yet known in its site).
    pub fn push_device(&mut self, device: Device) -> DeviceIdx {
        let idx = self.devices.len() as DeviceIdx;
        self.sites[device.site as usize]
            .devices
            .insert(device.id.clone(), idx);
        self.devices.push(device);
        idx
    }
}

impl Site {
    /// A site as a reload adds it, with no devices yet.
    pub fn new(id: &str, name: String, kind: SiteKind, status: SiteStatus) -> Site {
        Site {
            id: id.into(),
            name,
            kind,
            status,
            alarm_scheme: None,
            removed: false,
            devices: IdIndex::default(),
        }
    }
}
