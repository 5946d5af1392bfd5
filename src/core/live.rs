//! The live inventory: units join, change and leave while the gateway runs, from a TOML
//! reload (`Declared::Config`) or from a source that declares them (`Declared::Source`, a
//! mine's point-definition file). Pure: the caller gives the time, and the registry rows
//! to journal come back in the core's outputs, dated at that time.
//!
//! Indexes stay valid: a unit that leaves keeps its slot, flagged `removed`; a unit that
//! comes back under the same (site, id) takes the same slot again, so its journal key, its
//! registry history and its index are one.

use super::config::inventory::{DeviceConfig, InventoryConfig};
use super::event::Reason;
pub use super::event::SiteDevices;
use super::indicators::history::Reg;
use super::inventory::{Declared, Device, DeviceIdx, Inventory, Site, SiteIdx, UnitKind};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// One row of the registry history: a unit appeared, changed status or left, at `at_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryChange {
    pub kind: UnitKind,
    pub site: Arc<str>,
    pub id: Arc<str>,
    pub status: Reg,
    pub at_ms: i64,
}

/// Units added, changed and removed by one change of the inventory.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub added: usize,
    pub changed: usize,
    pub removed: usize,
}

/// Per kind of unit, what one change did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct InventoryTally {
    pub sites: Tally,
    pub enterprises: Tally,
    pub zones: Tally,
    pub systems: Tally,
    pub devices: Tally,
}

impl InventoryTally {
    fn of(&mut self, k: UnitKind) -> &mut Tally {
        match k {
            UnitKind::Site => &mut self.sites,
            UnitKind::Enterprise => &mut self.enterprises,
            UnitKind::Zone => &mut self.zones,
            UnitKind::System => &mut self.systems,
            UnitKind::Device => &mut self.devices,
        }
    }
    /// Whether anything changed.
    pub fn is_empty(&self) -> bool {
        *self == InventoryTally::default()
    }
}

/// What applying a change did to the devices, for the core to follow (liveness, alarms,
/// last readings), and the registry rows to journal.
#[derive(Debug, Default)]
pub struct Applied {
    pub registry: Vec<RegistryChange>,
    /// Devices that joined: a new slot, or a removed one taken again.
    pub joined: Vec<DeviceIdx>,
    pub changed: Vec<DeviceIdx>,
    pub left: Vec<DeviceIdx>,
    /// Of a source's declaration: (index in its list, slot) of each device taken.
    pub taken: Vec<(usize, DeviceIdx)>,
    /// Of a source's declaration: what was refused, and why.
    pub refused: Vec<(Reason, String)>,
    pub tally: InventoryTally,
}

impl Applied {
    fn row(&mut self, kind: UnitKind, site: &Arc<str>, id: &Arc<str>, status: Reg, at: i64) {
        self.registry.push(RegistryChange {
            kind,
            site: site.clone(),
            id: id.clone(),
            status,
            at_ms: at,
        });
    }
}

/// The live systems, zones and enterprises by (site, id), for devices' references.
#[derive(Default)]
struct Refs {
    enterprises: HashMap<(SiteIdx, Arc<str>), u32>,
    zones: HashMap<(SiteIdx, Arc<str>), u32>,
    systems: HashMap<(SiteIdx, Arc<str>), u32>,
}

impl Refs {
    fn of(inv: &Inventory) -> Refs {
        fn index<'a>(
            units: impl Iterator<Item = (&'a Arc<str>, SiteIdx, bool)>,
        ) -> HashMap<(SiteIdx, Arc<str>), u32> {
            units
                .enumerate()
                .filter(|(_, (_, _, removed))| !removed)
                .map(|(i, (id, s, _))| ((s, id.clone()), i as u32))
                .collect()
        }
        Refs {
            enterprises: index(inv.enterprises.iter().map(|e| (&e.id, e.site, e.removed))),
            zones: index(inv.zones.iter().map(|z| (&z.id, z.site, z.removed))),
            systems: index(inv.systems.iter().map(|s| (&s.id, s.site, s.removed))),
        }
    }
}

/// The fields of a device as declared, resolved in `site` (references by id).
fn device_of<P>(
    inv: &Inventory,
    refs: &Refs,
    site: SiteIdx,
    d: &DeviceConfig<P>,
    declared: Declared,
) -> Result<Device, String> {
    let name = &*inv.sites[site as usize].id;
    let find = |index: &HashMap<(SiteIdx, Arc<str>), u32>, want: &Option<String>, what: &str| {
        let Some(want) = want else { return Ok(None) };
        index
            .get(&(site, Arc::from(want.as_str())))
            .map(|i| Some(*i))
            .ok_or_else(|| format!("{what} {want:?} is not one of site {name:?}'s"))
    };
    let enterprise = find(&refs.enterprises, &d.enterprise, "enterprise")?;
    let zone = find(&refs.zones, &d.zone, "zone")?;
    let system = find(&refs.systems, &d.system, "system")?;
    if !(d.interval_s.is_finite() && d.interval_s > 0.0) {
        return Err(format!(
            "interval_s {} is not a positive number",
            d.interval_s
        ));
    }
    if let Some(o) = d.offline_after_s.filter(|o| !(o.is_finite() && *o > 0.0)) {
        return Err(format!("offline_after_s {o} is not a positive number"));
    }
    Ok(Device {
        id: d.id.as_str().into(),
        site,
        kind: d.kind,
        gas: d.gas.as_deref().map(Arc::from),
        enterprise,
        zone,
        system,
        protocol: d.protocol,
        gb_id: d.gb_id.as_deref().map(Arc::from),
        interval_ms: (d.interval_s * 1000.0).round() as i64,
        offline_after_ms: d.offline_after_ms(),
        status: d.status,
        declared,
        removed: false,
    })
}

/// Whether two declarations of a device differ in what the gateway uses.
fn differs(a: &Device, b: &Device) -> bool {
    (
        a.kind,
        &a.gas,
        a.enterprise,
        a.zone,
        a.system,
        a.protocol,
        &a.gb_id,
    ) != (
        b.kind,
        &b.gas,
        b.enterprise,
        b.zone,
        b.system,
        b.protocol,
        &b.gb_id,
    ) || (a.interval_ms, a.offline_after_ms, a.status)
        != (b.interval_ms, b.offline_after_ms, b.status)
}

/// Put `new` in `slot` (or a new slot) and record what that is: joined, changed or nothing.
fn place(
    inv: &mut Inventory,
    slot: Option<DeviceIdx>,
    new: Device,
    at: i64,
    out: &mut Applied,
) -> DeviceIdx {
    let site_id = inv.sites[new.site as usize].id.clone();
    let status = Reg::from(new.status);
    let Some(i) = slot else {
        let id = new.id.clone();
        let i = inv.push_device(new);
        out.joined.push(i);
        out.tally.devices.added += 1;
        out.row(UnitKind::Device, &site_id, &id, status, at);
        return i;
    };
    let old = &mut inv.devices[i as usize];
    if old.removed {
        out.joined.push(i);
        out.tally.devices.added += 1;
        out.row(UnitKind::Device, &site_id, &new.id, status, at);
    } else if differs(old, &new) || old.declared != new.declared {
        out.changed.push(i);
        out.tally.devices.changed += 1;
        if old.status != new.status {
            out.row(UnitKind::Device, &site_id, &new.id, status, at);
        }
    }
    *old = Device {
        id: old.id.clone(),
        ..new
    };
    i
}

/// Take device `i` out of the inventory at `at`.
fn leave(inv: &mut Inventory, i: DeviceIdx, at: i64, out: &mut Applied) {
    let d = &mut inv.devices[i as usize];
    if d.removed {
        return;
    }
    d.removed = true;
    let (id, site) = (d.id.clone(), d.site);
    out.left.push(i);
    out.tally.devices.removed += 1;
    let site_id = inv.sites[site as usize].id.clone();
    out.row(UnitKind::Device, &site_id, &id, Reg::Removed, at);
}

/// Apply one source's declaration of one site's devices. `pre` holds, per listed device, a
/// refusal the caller already decided (an alarm rule that does not resolve).
pub fn apply_site_devices(
    inv: &mut Inventory,
    sd: &SiteDevices,
    pre: &[Option<String>],
) -> Applied {
    let mut out = Applied::default();
    let Some(site) = inv.site(&sd.site) else {
        out.refused.push((
            Reason::UnknownSite,
            format!(
                "{} declared devices for site {:?}, which is not in the inventory; none was taken",
                sd.source, sd.site
            ),
        ));
        return out;
    };
    let me = Declared::Source(sd.source.clone());
    let key = (site, sd.source.clone());
    if sd.findings.is_empty() {
        inv.findings.remove(&key);
    } else {
        inv.findings.insert(key, sd.findings.clone());
    }
    let refs = Refs::of(inv);
    let mut listed: HashSet<&str> = HashSet::new();
    for (n, d) in sd.devices.iter().enumerate() {
        let refuse = |why: String| {
            (
                Reason::InventoryConflict,
                format!(
                    "{} device {:?} of site {:?}: {why}",
                    sd.source, d.id, sd.site
                ),
            )
        };
        if !listed.insert(&d.id) {
            out.refused
                .push(refuse("listed twice; the first is taken".into()));
            continue;
        }
        if d.site != sd.site {
            out.refused.push(refuse(format!(
                "names site {:?}, not the declaration's",
                d.site
            )));
            continue;
        }
        if let Some(p) = crate::model::id_problem(&d.id) {
            out.refused.push(refuse(p));
            continue;
        }
        if let Some(Some(why)) = pre.get(n) {
            out.refused.push(refuse(why.clone()));
            continue;
        }
        let slot = inv.device_slot(site, &d.id);
        if let Some(other) = slot
            .map(|i| &inv.devices[i as usize])
            .filter(|o| !o.removed && o.declared != me)
        {
            let by = match &other.declared {
                Declared::Config => "the inventory files".to_string(),
                Declared::Source(s) => format!("source {s}"),
            };
            out.refused.push(refuse(format!(
                "collides with a device declared by {by}; nothing was changed"
            )));
            continue;
        }
        match device_of(inv, &refs, site, d, me.clone()) {
            Ok(dev) => {
                let i = place(inv, slot, dev, sd.at_ms, &mut out);
                out.taken.push((n, i));
            }
            Err(why) => out.refused.push(refuse(why)),
        }
    }
    let gone: Vec<DeviceIdx> = (0..inv.devices.len() as DeviceIdx)
        .filter(|&i| {
            let d = &inv.devices[i as usize];
            d.site == site && !d.removed && d.declared == me && !listed.contains(&*d.id)
        })
        .collect();
    for i in gone {
        leave(inv, i, sd.at_ms, &mut out);
    }
    out
}

/// Devices a TOML inventory declares that a source already declared: the reload is refused.
pub fn config_conflicts<P>(inv: &Inventory, cfg: &InventoryConfig<P>) -> Vec<String> {
    cfg.devices
        .iter()
        .filter_map(|d| {
            let s = inv.site(&d.site)?;
            let dev = &inv.devices[inv.device_slot(s, &d.id)? as usize];
            match &dev.declared {
                Declared::Source(src) if !dev.removed => Some(format!(
                    "device {:?} of site {:?} is declared by source {src}; a reload does not take it over (drop it from the file, or from the source)",
                    d.id, d.site
                )),
                _ => None,
            }
        })
        .collect()
}

/// Bring the inventory to what the files declare, at `at`: sites, enterprises, zones,
/// systems and the files' devices are added, changed or removed; devices a source declared
/// stay as they are unless their site left (they leave with it) or a unit they named did
/// (the reference is dropped). Check [`config_conflicts`] first.
pub fn apply_config<P>(inv: &mut Inventory, cfg: &InventoryConfig<P>, at: i64) -> Applied {
    let mut out = Applied::default();
    sync_sites(inv, cfg, at, &mut out);
    sync_groups(inv, cfg, at, &mut out);
    let mut wanted: HashSet<DeviceIdx> = HashSet::new();
    let refs = Refs::of(inv);
    for d in &cfg.devices {
        let Some(site) = inv.site(&d.site) else {
            continue;
        };
        let slot = inv.device_slot(site, &d.id);
        match device_of(inv, &refs, site, d, Declared::Config) {
            Ok(dev) => {
                wanted.insert(place(inv, slot, dev, at, &mut out));
            }
            // Validated before: not reached, but never a panic.
            Err(why) => tracing::error!(site = %d.site, device = %d.id, "not applied: {why}"),
        }
    }
    for i in 0..inv.devices.len() as DeviceIdx {
        let d = &inv.devices[i as usize];
        let site_gone = inv.sites[d.site as usize].removed;
        if !d.removed && ((d.declared == Declared::Config && !wanted.contains(&i)) || site_gone) {
            leave(inv, i, at, &mut out);
        }
    }
    drop_dangling_references(inv, &mut out);
    out
}

fn sync_sites<P>(inv: &mut Inventory, cfg: &InventoryConfig<P>, at: i64, out: &mut Applied) {
    let mut wanted = HashSet::new();
    for s in &cfg.sites {
        let scheme = s.alarms.as_ref().and_then(|a| a.scheme);
        let i = match inv.site_slot(&s.id) {
            Some(i) => {
                let old = &mut inv.sites[i as usize];
                let status_changed = old.status != s.status;
                if old.removed {
                    out.tally.sites.added += 1;
                } else if status_changed
                    || (old.kind, old.alarm_scheme) != (s.kind, scheme)
                    || old.name != s.name
                {
                    out.tally.sites.changed += 1;
                }
                let row = old.removed || status_changed;
                (
                    old.name,
                    old.kind,
                    old.status,
                    old.alarm_scheme,
                    old.removed,
                ) = (s.name.clone(), s.kind, s.status, scheme, false);
                if row {
                    let id = old.id.clone();
                    out.row(UnitKind::Site, &id, &id, Reg::from(s.status), at);
                }
                i
            }
            None => {
                let mut site = Site::new(&s.id, s.name.clone(), s.kind, s.status);
                site.alarm_scheme = scheme;
                let id = site.id.clone();
                out.tally.sites.added += 1;
                out.row(UnitKind::Site, &id, &id, Reg::from(s.status), at);
                inv.push_site(site)
            }
        };
        wanted.insert(i);
    }
    for (i, s) in inv.sites.iter_mut().enumerate() {
        if !s.removed && !wanted.contains(&(i as SiteIdx)) {
            s.removed = true;
            out.tally.sites.removed += 1;
            let id = s.id.clone();
            out.row(UnitKind::Site, &id, &id, Reg::Removed, at);
        }
    }
}

/// A group unit as the files declare it: (site, id, status).
type Group = (SiteIdx, String, Reg);

/// Add, change or remove the units of one kind of group, given each slot's (site, id,
/// status, removed) and how to write a declared one into a slot or a new one.
fn sync_kind(
    out: &mut Applied,
    kind: UnitKind,
    at: i64,
    site_ids: &[Arc<str>],
    slots: Vec<(SiteIdx, Arc<str>, Reg, bool)>,
    wanted: &[Group],
    mut write: impl FnMut(Option<usize>, usize) -> bool,
) -> Vec<usize> {
    let index: HashMap<(SiteIdx, &str), usize> = slots
        .iter()
        .enumerate()
        .map(|(i, (s, id, ..))| ((*s, &**id), i))
        .collect();
    let mut kept = HashSet::new();
    let mut next = slots.len();
    for (n, (g_site, g_id, g_status)) in wanted.iter().enumerate() {
        let slot = index.get(&(*g_site, g_id.as_str())).copied();
        let fields_changed = write(slot, n);
        let site = &site_ids[*g_site as usize];
        let id: Arc<str> = g_id.as_str().into();
        let i = match slot {
            Some(i) => {
                let (_, _, old_status, removed) = &slots[i];
                if *removed {
                    out.tally.of(kind).added += 1;
                    out.row(kind, site, &id, *g_status, at);
                } else if old_status != g_status {
                    out.tally.of(kind).changed += 1;
                    out.row(kind, site, &id, *g_status, at);
                } else if fields_changed {
                    out.tally.of(kind).changed += 1;
                }
                i
            }
            None => {
                out.tally.of(kind).added += 1;
                out.row(kind, site, &id, *g_status, at);
                next += 1;
                next - 1
            }
        };
        kept.insert(i);
    }
    let mut gone = Vec::new();
    for (i, (s, id, _, removed)) in slots.iter().enumerate() {
        if !removed && !kept.contains(&i) {
            out.tally.of(kind).removed += 1;
            out.row(kind, &site_ids[*s as usize], id, Reg::Removed, at);
            gone.push(i);
        }
    }
    gone
}

fn sync_groups<P>(inv: &mut Inventory, cfg: &InventoryConfig<P>, at: i64, out: &mut Applied) {
    use super::inventory::{Enterprise, System, Zone};
    let site_ids: Vec<Arc<str>> = inv.sites.iter().map(|s| s.id.clone()).collect();
    // Validated: every group's site is in the inventory.
    let site_of = |id: &str| inv.site(id).unwrap_or(0);
    let group = |site: &str, id: &'_ str, status: Reg| (site_of(site), id.to_string(), status);
    let ents: Vec<_> = cfg
        .enterprises
        .iter()
        .map(|e| group(&e.site, &e.id, Reg::Built))
        .collect();
    let zones: Vec<_> = cfg
        .zones
        .iter()
        .map(|z| group(&z.site, &z.id, Reg::Built))
        .collect();
    let systems: Vec<_> = cfg
        .systems
        .iter()
        .map(|s| group(&s.site, &s.id, s.status.into()))
        .collect();

    let slots = inv
        .enterprises
        .iter()
        .map(|e| (e.site, e.id.clone(), Reg::Built, e.removed))
        .collect();
    let mut v = std::mem::take(&mut inv.enterprises);
    let gone = sync_kind(
        out,
        UnitKind::Enterprise,
        at,
        &site_ids,
        slots,
        &ents,
        |slot, n| {
            let e = &cfg.enterprises[n];
            let new = Enterprise {
                id: e.id.as_str().into(),
                site: ents[n].0,
                name: e.name.clone(),
                platform: e.platform,
                removed: false,
            };
            write_slot(&mut v, slot, new, |a, b| {
                (&a.name, a.platform) != (&b.name, b.platform)
            })
        },
    );
    gone.into_iter().for_each(|i| v[i].removed = true);
    inv.enterprises = v;

    let slots = inv
        .zones
        .iter()
        .map(|z| (z.site, z.id.clone(), Reg::Built, z.removed))
        .collect();
    let mut v = std::mem::take(&mut inv.zones);
    let gone = sync_kind(
        out,
        UnitKind::Zone,
        at,
        &site_ids,
        slots,
        &zones,
        |slot, n| {
            let z = &cfg.zones[n];
            let new = Zone {
                id: z.id.as_str().into(),
                site: zones[n].0,
                name: z.name.clone(),
                removed: false,
            };
            write_slot(&mut v, slot, new, |a, b| a.name != b.name)
        },
    );
    gone.into_iter().for_each(|i| v[i].removed = true);
    inv.zones = v;

    let slots = inv
        .systems
        .iter()
        .map(|s| (s.site, s.id.clone(), s.status.into(), s.removed))
        .collect();
    let mut v = std::mem::take(&mut inv.systems);
    let gone = sync_kind(
        out,
        UnitKind::System,
        at,
        &site_ids,
        slots,
        &systems,
        |slot, n| {
            let s = &cfg.systems[n];
            let new = System {
                id: s.id.as_str().into(),
                site: systems[n].0,
                name: s.name.clone(),
                kind: s.kind,
                status: s.status,
                removed: false,
            };
            write_slot(&mut v, slot, new, |a, b| {
                (&a.name, a.kind) != (&b.name, b.kind)
            })
        },
    );
    gone.into_iter().for_each(|i| v[i].removed = true);
    inv.systems = v;
}

/// Write `new` into `slot` (or push it); whether fields other than the status changed.
fn write_slot<T>(
    v: &mut Vec<T>,
    slot: Option<usize>,
    new: T,
    fields_differ: impl Fn(&T, &T) -> bool,
) -> bool {
    match slot {
        Some(i) => {
            let changed = fields_differ(&v[i], &new);
            v[i] = new;
            changed
        }
        None => {
            v.push(new);
            false
        }
    }
}

/// Devices that name a system, zone or enterprise that left lose that reference.
fn drop_dangling_references(inv: &mut Inventory, out: &mut Applied) {
    let (ents, zones, systems) = (
        inv.enterprises
            .iter()
            .map(|e| e.removed)
            .collect::<Vec<_>>(),
        inv.zones.iter().map(|z| z.removed).collect::<Vec<_>>(),
        inv.systems.iter().map(|s| s.removed).collect::<Vec<_>>(),
    );
    let gone = |v: &[bool], r: Option<u32>| r.is_some_and(|i| v[i as usize]);
    for (i, d) in inv.devices.iter_mut().enumerate() {
        if d.removed {
            continue;
        }
        let mut changed = false;
        if gone(&ents, d.enterprise) {
            d.enterprise = None;
            changed = true;
        }
        if gone(&zones, d.zone) {
            d.zone = None;
            changed = true;
        }
        if gone(&systems, d.system) {
            d.system = None;
            changed = true;
        }
        if changed && !out.changed.contains(&(i as DeviceIdx)) {
            out.changed.push(i as DeviceIdx);
        }
    }
}

impl super::Core {
    /// A source's declaration of one site's devices, applied at its `at_ms` in order with
    /// readings: what it refuses becomes rejections, the rest joins, changes or leaves.
    pub fn apply_site_devices(&mut self, sd: &SiteDevices, out: &mut super::Outputs) {
        use super::alarms::rules::{resolve, RuleInput};
        let mut inv = (*self.inventory).clone();
        let scheme = inv
            .site(&sd.site)
            .and_then(|s| inv.sites[s as usize].alarm_scheme);
        // Points of one declaration mostly share their thresholds: they share one rule, so a
        // mine's 300 points hold a few rules, not 300 copies (memory per point, issue 14).
        let mut memo: Vec<(RuleInput<'_>, Result<Option<Arc<_>>, _>)> = Vec::new();
        let rules: Vec<_> = sd
            .devices
            .iter()
            .map(|d| {
                let input = RuleInput {
                    kind: d.kind,
                    gas: d.gas.as_deref(),
                    site_scheme: scheme,
                    first_channel: None,
                    device: d.alarm.as_deref(),
                };
                if let Some((_, r)) = memo.iter().find(|(k, _)| *k == input) {
                    return r.clone();
                }
                let r = resolve(&self.alarm_settings, &input).map(|r| r.map(Arc::new));
                memo.push((input, r.clone()));
                r
            })
            .collect();
        let pre: Vec<Option<String>> = rules
            .iter()
            .map(|r| r.as_ref().err().map(|(k, m)| format!("alarm.{k}: {m}")))
            .collect();
        let applied = apply_site_devices(&mut inv, sd, &pre);
        for (reason, detail) in &applied.refused {
            let r = super::Rejection {
                reason: *reason,
                origin: super::Origin {
                    topic: format!("{}/{}", sd.source, sd.site).into(),
                    element: None,
                },
                detail: detail.clone(),
                received_ms: sd.at_ms,
            };
            self.reject(r, out);
        }
        let taken = applied.taken.clone();
        self.follow(inv, applied, sd.at_ms, out);
        for (n, i) in taken {
            if let Some(Ok(rule)) = rules.get(n) {
                self.alarms.set_rule(i, rule.clone());
            }
        }
    }

    /// Bring the inventory to what the files declare, at `at`, keeping every device a
    /// source declared. Refused (nothing changes) when a file's device is a source's.
    pub fn reload_inventory<P: super::config::inventory::ProtocolSection>(
        &mut self,
        cfg: &InventoryConfig<P>,
        at: i64,
        out: &mut super::Outputs,
    ) -> Result<InventoryTally, Vec<String>> {
        use super::alarms::rules::AlarmRules;
        let conflicts = config_conflicts(&self.inventory, cfg);
        if !conflicts.is_empty() {
            return Err(conflicts);
        }
        let mut inv = (*self.inventory).clone();
        let applied = apply_config(&mut inv, cfg, at);
        let tally = applied.tally;
        let mut rules = AlarmRules::from_config(&self.alarm_settings, cfg, &inv);
        rules.devices.resize(inv.devices.len(), None);
        for (i, d) in inv.devices.iter().enumerate() {
            if d.declared != Declared::Config {
                rules.devices[i] = self.alarms.rule(i as DeviceIdx);
            }
        }
        self.alarms.replace_rules(rules);
        self.follow(inv, applied, at, out);
        Ok(tally)
    }

    /// The core's per-device state follows a changed inventory: grown for new slots, reset
    /// for devices that joined again, dropped for those that left.
    fn follow(&mut self, inv: Inventory, applied: Applied, at: i64, out: &mut super::Outputs) {
        let n = inv.devices.len();
        self.last.resize(n, None);
        self.recent_values.resize(n);
        self.alarms.grow(n);
        self.changes
            .chunks
            .resize(n.div_ceil(super::changes::CHUNK), true);
        for &i in &applied.joined {
            let off = inv.devices[i as usize].offline_after_ms;
            if (i as usize) < self.liveness.len() {
                self.liveness.set_offline_after(i, off);
            } else {
                self.liveness.push(off);
            }
            self.last[i as usize] = None;
            self.recent_values.clear(i as usize);
            self.alarms.reset_device(i);
            self.changes.touch(i);
        }
        for &i in &applied.changed {
            self.liveness
                .set_offline_after(i, inv.devices[i as usize].offline_after_ms);
            self.changes.touch(i);
        }
        for &i in &applied.left {
            if let Some(t) = self.liveness.remove(i, at) {
                out.transitions.push(t);
            }
            self.last[i as usize] = None;
            self.recent_values.clear(i as usize);
            self.alarms.set_rule(i, None);
            self.alarms.reset_device(i);
            self.changes.touch(i);
        }
        self.changes.alarms = true;
        out.registry.extend(applied.registry);
        self.inventory = Arc::new(inv);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::event::{Origin, RawReading, ReadingStatus, SourceEvent};
    use crate::core::{Core, Outputs};
    use crate::model::{DeviceKind, Protocol, UnitStatus};
    use serde::de::IgnoredAny;

    const INV: &str = r#"
[[sites]]
id = "m1"
name = "Mine 1"
kind = "mine"

[[systems]]
id = "sys"
site = "m1"
kind = "positioning"

[[devices]]
id = "a"
site = "m1"
kind = "gas_combustible"
protocol = "mqtt"
interval_s = 1
"#;

    fn core() -> Core {
        let f = crate::core::config::inventory::test_file(INV);
        Core::new(Inventory::from_config(&f.inventory), 60_000, 10)
    }

    fn point(id: &str, interval_s: f64) -> DeviceConfig<IgnoredAny> {
        DeviceConfig {
            id: id.into(),
            site: "m1".into(),
            kind: DeviceKind::GasCombustible,
            name: None,
            gas: None,
            enterprise: None,
            zone: None,
            system: Some("sys".into()),
            protocol: Protocol::Mqtt,
            gb_id: None,
            interval_s,
            status: UnitStatus::Built,
            offline_after_s: None,
            modbus: None,
            alarm: None,
        }
    }

    fn declare(c: &mut Core, devices: Vec<DeviceConfig<IgnoredAny>>, at: i64) -> Outputs {
        let mut out = Outputs::default();
        let sd = SiteDevices {
            source: "mine_files".into(),
            site: "m1".into(),
            devices,
            findings: Arc::from([]),
            at_ms: at,
        };
        c.apply(SourceEvent::Devices(Box::new(sd)), &mut out);
        out
    }

    fn reading(dev: &str, v: f64, at: i64) -> SourceEvent {
        SourceEvent::Reading {
            reading: RawReading {
                site: "m1".into(),
                device: dev.into(),
                ts_ms: None,
                values: vec![("lel".into(), v)],
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

    fn rows(out: &Outputs) -> Vec<(&str, Reg, i64)> {
        out.registry
            .iter()
            .map(|r| (&*r.id, r.status, r.at_ms))
            .collect()
    }

    const T0: i64 = 1_700_000_000_000;

    #[test]
    fn a_declared_device_joins_changes_leaves_and_rejoins_in_its_slot() {
        let mut c = core();
        let out = declare(&mut c, vec![point("p1", 10.0), point("p2", 10.0)], T0);
        assert_eq!(
            rows(&out),
            vec![("p1", Reg::Built, T0), ("p2", Reg::Built, T0)]
        );
        assert!(out.rejections.is_empty(), "{:?}", out.rejections);
        let p1 = c.inventory.lookup("m1", "p1").unwrap();
        assert_eq!(
            c.inventory.devices[p1 as usize].declared.as_str(),
            "mine_files"
        );
        assert_eq!(c.counts(None).planned, 3);
        // A reading for a joined device is accepted.
        let mut out = Outputs::default();
        c.apply(reading("p1", 1.0, T0 + 5), &mut out);
        assert_eq!(out.readings.len(), 1, "{:?}", out.rejections);
        assert_eq!(out.transitions.len(), 1);

        // Changed: its interval (no registry row: its status is the same), then its status.
        let out = declare(&mut c, vec![point("p1", 20.0), point("p2", 10.0)], T0 + 10);
        assert!(out.registry.is_empty());
        assert_eq!(c.inventory.devices[p1 as usize].interval_ms, 20_000);
        let mut suspended = point("p2", 10.0);
        suspended.status = UnitStatus::Suspended;
        let out = declare(&mut c, vec![point("p1", 20.0), suspended], T0 + 20);
        assert_eq!(rows(&out), vec![("p2", Reg::Suspended, T0 + 20)]);

        // p1 is dropped from the declaration: it leaves (offline at that time, as it was
        // online), and a reading for it is refused as unknown.
        let out = declare(&mut c, vec![point("p2", 10.0)], T0 + 30);
        assert_eq!(
            rows(&out),
            vec![("p2", Reg::Built, T0 + 30), ("p1", Reg::Removed, T0 + 30)]
        );
        assert_eq!(out.transitions.len(), 1);
        assert_eq!(out.transitions[0].cause, crate::core::Cause::Removed);
        assert!(
            out.alarms.is_empty(),
            "no offline alarm for a unit that left"
        );
        assert!(!c.inventory.counts_as_active(p1));
        assert_eq!(c.counts(None).planned, 2);
        let mut out = Outputs::default();
        c.apply(reading("p1", 1.0, T0 + 35), &mut out);
        assert_eq!(out.rejections[0].reason, Reason::UnknownDevice);

        // It comes back in the same slot, from `never`.
        let out = declare(&mut c, vec![point("p1", 10.0), point("p2", 10.0)], T0 + 40);
        assert_eq!(rows(&out), vec![("p1", Reg::Built, T0 + 40)]);
        assert_eq!(c.inventory.lookup("m1", "p1"), Ok(p1));
        assert_eq!(c.liveness.state(p1), crate::core::DeviceState::Never);
        assert_eq!(c.inventory.devices.len(), 3);
        let snap = c.snapshot(None);
        assert_eq!(snap.site_devices(0).len(), 3);
    }

    #[test]
    fn conflicts_and_unknown_references_are_refused_without_dropping_the_rest() {
        let mut c = core();
        let mut bad_ref = point("p3", 10.0);
        bad_ref.system = Some("nope".into());
        let mut other_site = point("p4", 10.0);
        other_site.site = "m9".into();
        let out = declare(
            &mut c,
            vec![point("a", 10.0), point("p2", 10.0), bad_ref, other_site],
            T0,
        );
        let reasons: Vec<_> = out.rejections.iter().map(|r| r.reason).collect();
        assert_eq!(reasons, vec![Reason::InventoryConflict; 3]);
        assert!(
            out.rejections[0].detail.contains("inventory files"),
            "{}",
            out.rejections[0].detail
        );
        assert!(
            out.rejections[1].detail.contains("system \"nope\""),
            "{}",
            out.rejections[1].detail
        );
        assert_eq!(rows(&out), vec![("p2", Reg::Built, T0)]);
        // The configured device is untouched.
        let a = c.inventory.lookup("m1", "a").unwrap();
        assert_eq!(c.inventory.devices[a as usize].declared, Declared::Config);
        assert_eq!(c.inventory.devices[a as usize].interval_ms, 1_000);
        // An unknown site refuses the whole declaration.
        let mut out = Outputs::default();
        let sd = SiteDevices {
            source: "mine_files".into(),
            site: "m9".into(),
            devices: vec![point("x", 1.0)],
            findings: Arc::from([]),
            at_ms: T0,
        };
        c.apply(SourceEvent::Devices(Box::new(sd)), &mut out);
        assert_eq!(out.rejections[0].reason, Reason::UnknownSite);
        assert!(out.registry.is_empty());
    }

    #[test]
    fn a_joined_device_s_own_alarm_rule_applies() {
        let mut c = core();
        let mut p = point("p1", 10.0);
        p.alarm = Some(Box::new(crate::core::config::alarms::AlarmRuleConfig {
            levels: Some(vec![0.5, 1.0]),
            ..Default::default()
        }));
        declare(&mut c, vec![p], T0);
        let mut out = Outputs::default();
        c.apply(reading("p1", 0.4, T0 + 1), &mut out);
        assert!(out.alarms.is_empty());
        c.apply(reading("p1", 0.7, T0 + 2), &mut out);
        assert_eq!(out.alarms.len(), 1, "the mine's threshold 0.5 raised it");
        assert_eq!(out.alarms[0].record.level(), 1);
    }

    /// Each declaration replaces the source's findings for its site; one without any
    /// clears them.
    #[test]
    fn a_declaration_s_findings_replace_the_source_s_findings_for_the_site() {
        let mut c = core();
        let finding = |check| crate::core::inventory::Finding {
            unit: "p1".into(),
            check,
            declared: Some(1.5),
            limit: "≤ 1 %CH4".into(),
            basis: "rules",
            text: "too loose".into(),
        };
        let mut with = |findings: Vec<crate::core::inventory::Finding>| {
            let mut out = Outputs::default();
            let sd = SiteDevices {
                source: "mine_files".into(),
                site: "m1".into(),
                devices: vec![point("p1", 10.0)],
                findings: Arc::from(findings),
                at_ms: T0,
            };
            c.apply(SourceEvent::Devices(Box::new(sd)), &mut out);
            c.inventory.findings.clone()
        };
        let key = (0, Arc::<str>::from("mine_files"));
        let f = with(vec![finding("a"), finding("b")]);
        assert_eq!(
            f[&key].iter().map(|x| x.check).collect::<Vec<_>>(),
            ["a", "b"]
        );
        let f = with(vec![finding("c")]);
        assert_eq!(f[&key].iter().map(|x| x.check).collect::<Vec<_>>(), ["c"]);
        assert!(with(vec![]).is_empty());
    }

    #[test]
    fn a_reload_adds_changes_and_removes_config_units_and_keeps_the_source_s() {
        let mut c = core();
        declare(&mut c, vec![point("p1", 10.0)], T0);
        let text = r#"
[[sites]]
id = "m1"
name = "Mine 1"
kind = "mine"

[[sites]]
id = "m2"
name = "Mine 2"
kind = "mine"

[[devices]]
id = "b"
site = "m2"
kind = "gas_combustible"
protocol = "mqtt"
interval_s = 2
"#;
        let f = crate::core::config::inventory::test_file(text);
        let mut out = Outputs::default();
        let tally = c
            .reload_inventory(&f.inventory, T0 + 100, &mut out)
            .unwrap();
        assert_eq!(
            tally.sites,
            Tally {
                added: 1,
                changed: 0,
                removed: 0
            }
        );
        assert_eq!(tally.systems.removed, 1);
        assert_eq!(
            tally.devices,
            Tally {
                added: 1,
                changed: 0,
                removed: 1
            }
        );
        let mut got: Vec<_> = out
            .registry
            .iter()
            .map(|r| (r.kind, &*r.site, &*r.id, r.status, r.at_ms))
            .collect();
        got.sort_by_key(|r| (r.1, r.2));
        let at = T0 + 100;
        assert_eq!(
            got,
            vec![
                (UnitKind::Device, "m1", "a", Reg::Removed, at),
                (UnitKind::System, "m1", "sys", Reg::Removed, at),
                (UnitKind::Device, "m2", "b", Reg::Built, at),
                (UnitKind::Site, "m2", "m2", Reg::Built, at),
            ]
        );
        // The source's device stays, its reference to the removed system dropped.
        let p1 = c.inventory.lookup("m1", "p1").unwrap();
        assert_eq!(c.inventory.devices[p1 as usize].system, None);
        assert!(c.inventory.lookup("m1", "a").is_err());
        let mut out = Outputs::default();
        c.apply(reading("b", 1.0, T0 + 101).with_site("m2"), &mut out);
        assert_eq!(out.readings.len(), 1, "{:?}", out.rejections);
        // A file that declares the source's device is refused; nothing changes.
        let claim = format!("{text}\n[[devices]]\nid = \"p1\"\nsite = \"m1\"\nkind = \"gas_combustible\"\nprotocol = \"mqtt\"\ninterval_s = 1\n");
        let f = crate::core::config::inventory::test_file(&claim);
        let before = c.inventory.clone();
        let err = c
            .reload_inventory(&f.inventory, T0 + 200, &mut out)
            .unwrap_err();
        assert!(err[0].contains("mine_files"), "{err:?}");
        assert!(Arc::ptr_eq(&before, &c.inventory));
    }

    impl SourceEvent {
        fn with_site(mut self, site: &str) -> SourceEvent {
            if let SourceEvent::Reading { reading, .. } = &mut self {
                reading.site = site.into();
            }
            self
        }
    }
}
