//! The registry's decisions as the core's events, with no I/O: which inventory device a
//! GB/T 28181 ID is, the channels each device's catalog declared, and the readings, states,
//! declarations and refusals that say so (docs/video.md, "Inventory and liveness").
//!
//! Liveness: every sign of life (a successful REGISTER, a keepalive) is a reading of the
//! device and of each of its channels that is on (or faulty), received at the registry's
//! time. The devices' `offline_after_s` is `keepalive_s × keepalive_misses` (set by the
//! configuration's loader), so the core's silence turns them offline at exactly the
//! registry's keepalive deadline. An end of registration (expiry, `Expires: 0`, a closed TCP
//! connection) is an explicit offline state of the device and its channels, at its time.

use super::manscdp::{Alarm, CatalogItem, ChannelStatus};
use super::session::{Change, ChannelChange};
use crate::core::config::inventory::DeviceConfig;
use crate::core::event::{Recorded, RecordedAlarm};
use crate::core::{Origin, RawReading, ReadingStatus, Reason, Rejection, SiteDevices, SourceEvent};
use crate::model::{AlarmType, DeviceKind, Protocol, UnitStatus};
use serde::de::IgnoredAny;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The source name of the channels' declarations (what `declared` shows).
pub const SOURCE: &str = "video";

/// The channel that a sign of life writes (1 per keepalive or registration).
pub const ALIVE_CHANNEL: &str = "alive";

/// When and whence an event is, and whether its device is online then.
struct At<'a> {
    now: i64,
    origin: &'a Origin,
    online: bool,
}

/// A configured GB/T 28181 device: where it stands in the inventory.
#[derive(Debug, Clone, PartialEq)]
pub struct Known {
    pub site: String,
    /// Its inventory id.
    pub device: String,
    pub system: Option<String>,
}

#[derive(Debug, Default)]
struct Channels {
    /// By channel ID (also its inventory id), with its status.
    status: BTreeMap<String, (ChannelStatus, String)>,
}

/// The configured devices by GB/T 28181 ID, and the channels their catalogs declared.
#[derive(Debug)]
pub struct Fleet {
    known: HashMap<String, Known>,
    channels: HashMap<String, Channels>,
    /// The channels' liveness timing (as the configured devices'): seconds.
    interval_s: f64,
    offline_after_s: f64,
}

/// A MANSCDP type code that is a grouping, not a device: platform (200), business group
/// (215), virtual organisation (216).
fn is_grouping(id: &str) -> bool {
    matches!(super::manscdp::type_code(id), Some(200 | 215 | 216))
}

impl Fleet {
    pub fn new(known: HashMap<String, Known>, interval_s: f64, offline_after_s: f64) -> Fleet {
        Fleet {
            known,
            channels: HashMap::new(),
            interval_s,
            offline_after_s,
        }
    }

    pub fn known(&self, gb_id: &str) -> Option<&Known> {
        self.known.get(gb_id)
    }

    /// A channel's status, for tests and the API.
    pub fn channel(&self, gb_id: &str, channel: &str) -> Option<ChannelStatus> {
        let c = self.channels.get(gb_id)?;
        c.status.get(channel).map(|(s, _)| *s)
    }

    fn reading(site: &str, device: &str, status: ReadingStatus) -> RawReading {
        RawReading {
            site: site.into(),
            device: device.into(),
            ts_ms: None,
            values: vec![(ALIVE_CHANNEL.into(), 1.0)],
            status,
            cause: None,
        }
    }

    /// A sign of life of `gb_id` at `now`: a reading of it and of its channels that are on
    /// (normal) or faulty (fault).
    pub fn alive(&self, gb_id: &str, now: i64, origin: &Origin, out: &mut Vec<SourceEvent>) {
        let Some(k) = self.known.get(gb_id) else {
            return;
        };
        let reading = |device: &str, status| SourceEvent::Reading {
            reading: Fleet::reading(&k.site, device, status),
            origin: origin.clone(),
            received_ms: now,
        };
        out.push(reading(&k.device, ReadingStatus::Normal));
        for (ch, (st, _)) in self
            .channels
            .get(gb_id)
            .map(|c| &c.status)
            .into_iter()
            .flatten()
        {
            match st {
                ChannelStatus::Online => out.push(reading(ch, ReadingStatus::Normal)),
                ChannelStatus::Faulty => out.push(reading(ch, ReadingStatus::Fault)),
                ChannelStatus::Offline => {}
            }
        }
    }

    fn state(
        &self,
        k: &Known,
        device: &str,
        online: bool,
        now: i64,
        origin: &Origin,
    ) -> SourceEvent {
        SourceEvent::DeviceState {
            site: k.site.clone(),
            device: device.into(),
            online,
            origin: origin.clone(),
            received_ms: now,
        }
    }

    /// `gb_id`'s registration ended at `now`: it and its channels are offline.
    fn ended(&self, gb_id: &str, now: i64, origin: &Origin, out: &mut Vec<SourceEvent>) {
        let Some(k) = self.known.get(gb_id) else {
            return;
        };
        out.push(self.state(k, &k.device, false, now, origin));
        for ch in self
            .channels
            .get(gb_id)
            .map(|c| c.status.keys())
            .into_iter()
            .flatten()
        {
            out.push(self.state(k, ch, false, now, origin));
        }
    }

    /// The channels of every device of `site`, as one declaration. A channel two devices
    /// list (a camera on two NVRs) is declared once, with the device of the lower ID.
    fn declaration(&self, site: &str, now: i64) -> SourceEvent {
        let mut by_id: BTreeMap<&str, DeviceConfig<IgnoredAny>> = BTreeMap::new();
        let mut of_site: Vec<(&String, &Known)> =
            self.known.iter().filter(|(_, k)| k.site == site).collect();
        of_site.sort_by(|a, b| a.0.cmp(b.0));
        for (gb_id, k) in of_site {
            let Some(c) = self.channels.get(gb_id) else {
                continue;
            };
            for (ch, (_, name)) in &c.status {
                by_id
                    .entry(ch.as_str())
                    .or_insert_with(|| self.channel_config(k, ch, name));
            }
        }
        SourceEvent::Devices(Box::new(SiteDevices {
            source: Arc::from(SOURCE),
            site: site.into(),
            devices: by_id.into_values().collect(),
            findings: std::sync::Arc::from([]),
            at_ms: now,
        }))
    }

    fn channel_config(&self, k: &Known, ch: &str, name: &str) -> DeviceConfig<IgnoredAny> {
        DeviceConfig {
            id: ch.into(),
            site: k.site.clone(),
            kind: DeviceKind::Video,
            name: Some(name.to_string()).filter(|n| !n.is_empty()),
            gas: None,
            enterprise: None,
            zone: None,
            system: k.system.clone(),
            protocol: Protocol::Gb28181,
            gb_id: Some(ch.into()),
            interval_s: self.interval_s,
            status: UnitStatus::Built,
            offline_after_s: Some(self.offline_after_s),
            modbus: None,
            alarm: None,
        }
    }

    /// A whole catalog of `gb_id` at `now`: its channels are these items (groupings, the
    /// device itself and IDs that are not 20 digits left out), declared, and each set to
    /// its status while the device is `online`.
    fn catalog(
        &mut self,
        gb_id: &str,
        items: Vec<CatalogItem>,
        online: bool,
        now: i64,
        origin: &Origin,
        out: &mut Vec<SourceEvent>,
    ) {
        let Some(k) = self.known.get(gb_id).cloned() else {
            return;
        };
        let status = items
            .into_iter()
            .filter(|i| i.device_id != gb_id && super::config::is_gb_id(&i.device_id))
            .filter(|i| !is_grouping(&i.device_id))
            .map(|i| (i.device_id, (i.status, i.name)))
            .collect();
        self.channels.insert(gb_id.into(), Channels { status });
        out.push(self.declaration(&k.site, now));
        let at = At {
            now,
            origin,
            online,
        };
        self.channel_states(gb_id, &k, &at, out);
    }

    /// A channel's event at `now`: a reading while its device is online and it is on
    /// (normal) or faulty (fault), else an offline state.
    fn channel_event(&self, k: &Known, ch: &str, st: ChannelStatus, at: &At<'_>) -> SourceEvent {
        let status = match (at.online, st) {
            (true, ChannelStatus::Online) => ReadingStatus::Normal,
            (true, ChannelStatus::Faulty) => ReadingStatus::Fault,
            _ => return self.state(k, ch, false, at.now, at.origin),
        };
        SourceEvent::Reading {
            reading: Fleet::reading(&k.site, ch, status),
            origin: at.origin.clone(),
            received_ms: at.now,
        }
    }

    fn channel_states(&self, gb_id: &str, k: &Known, at: &At<'_>, out: &mut Vec<SourceEvent>) {
        let Some(c) = self.channels.get(gb_id) else {
            return;
        };
        for (ch, (st, _)) in &c.status {
            out.push(self.channel_event(k, ch, *st, at));
        }
    }

    /// A subscribed change of one channel.
    fn channel_change(
        &mut self,
        gb_id: &str,
        channel: &str,
        change: ChannelChange,
        at: &At<'_>,
        out: &mut Vec<SourceEvent>,
    ) {
        let Some(k) = self.known.get(gb_id).cloned() else {
            return;
        };
        let c = self.channels.entry(gb_id.into()).or_default();
        match change {
            ChannelChange::Removed => {
                if c.status.remove(channel).is_some() {
                    out.push(self.declaration(&k.site, at.now));
                }
            }
            ChannelChange::Status(st) => {
                if !super::config::is_gb_id(channel) || channel == gb_id || is_grouping(channel) {
                    return;
                }
                let fresh = !c.status.contains_key(channel);
                c.status
                    .entry(channel.into())
                    .or_insert((st, String::new()))
                    .0 = st;
                if fresh {
                    out.push(self.declaration(&k.site, at.now));
                }
                out.push(self.channel_event(&k, channel, st, at));
            }
        }
    }

    /// An alarm notification of `gb_id` at `now`: an alarm of type `video` of the channel it
    /// names (the device itself when it names the device, nothing or a channel its catalog
    /// did not list), raised and cleared at `now` (a notification is an event, not a state:
    /// it stays open until acknowledged), its level from its priority (absent: the least
    /// urgent). docs/video.md, "Alarms".
    fn alarm(
        &self,
        gb_id: &str,
        alarm: &Alarm,
        now: i64,
        origin: &Origin,
        out: &mut Vec<SourceEvent>,
    ) {
        let Some(k) = self.known.get(gb_id) else {
            return;
        };
        let listed = self
            .channels
            .get(gb_id)
            .is_some_and(|c| c.status.contains_key(&alarm.device_id));
        let device = if listed {
            alarm.device_id.clone()
        } else {
            k.device.clone()
        };
        let recorded = Recorded {
            kind: AlarmType::Video,
            level: 1,
            priority: Some(alarm.priority.unwrap_or(4)),
            raised_ms: now,
            cleared_ms: Some(now),
            ack: None,
            value: None,
            match_ms: 0,
        };
        out.push(SourceEvent::RecordedAlarm(Box::new(RecordedAlarm {
            site: k.site.clone(),
            device,
            alarm: recorded,
            origin: origin.clone(),
            received_ms: now,
        })));
    }

    /// The core's events for the registry's `changes` at `now`. `online(id)` says whether a
    /// device is online after them. Refusals are not here (see [`refusal`]).
    pub fn apply(
        &mut self,
        changes: &[Change],
        now: i64,
        origin: &Origin,
        online: &dyn Fn(&str) -> bool,
        out: &mut Vec<SourceEvent>,
    ) {
        for c in changes {
            match c {
                Change::Offline { device_id, cause } => {
                    use super::session::OfflineCause;
                    // A keepalive timeout is the core's own silence, at the same instant.
                    if *cause != OfflineCause::KeepaliveTimeout {
                        self.ended(device_id, now, origin, out);
                    }
                }
                Change::Catalog { device_id, items } => {
                    let on = online(device_id);
                    self.catalog(device_id, items.clone(), on, now, origin, out);
                }
                Change::Channel {
                    device_id,
                    channel_id,
                    change,
                } => {
                    let at = At {
                        now,
                        origin,
                        online: online(device_id),
                    };
                    self.channel_change(device_id, channel_id, change.clone(), &at, out);
                }
                Change::Alarm { device_id, alarm } => {
                    self.alarm(device_id, alarm, now, origin, out)
                }
                Change::Online { .. } | Change::CatalogTimedOut { .. } | Change::Refused { .. } => {
                }
            }
        }
    }
}

/// The core's reason for a refusal's metric label (the registry's, `sip`'s or `manscdp`'s
/// `code()`).
pub fn reason(code: &str) -> Reason {
    match code {
        "too_large" => Reason::PayloadTooLarge,
        "unknown_device" => Reason::UnknownDevice,
        "not_registered" => Reason::NotRegistered,
        "rate_limited" => Reason::RateLimited,
        "wrong_password" | "username_mismatch" | "digest_malformed" | "digest_unsupported" => {
            Reason::DigestRefused
        }
        "bad_charset"
        | "xml_doctype"
        | "xml_entity"
        | "xml_malformed"
        | "unknown_cmdtype"
        | "bad_field"
        | "catalog_too_large"
        | "catalog_inconsistent" => Reason::ManscdpMalformed,
        _ => Reason::SipMalformed,
    }
}

/// A refusal for `/api/v1/rejections`: `where_` names the peer and the message
/// (`udp 127.0.0.1:5070 Call-ID …`).
pub fn refusal(code: &str, where_: &str, detail: String, now: i64) -> SourceEvent {
    SourceEvent::Rejected(Rejection {
        reason: reason(code),
        origin: Origin {
            topic: Arc::from(format!("gb28181 {where_}")),
            element: None,
        },
        detail: format!("{code}: {detail}"),
        received_ms: now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, status: &str) -> CatalogItem {
        CatalogItem {
            device_id: id.into(),
            name: String::new(),
            parent_id: None,
            status: ChannelStatus::parse(status),
            status_raw: status.into(),
            event: None,
        }
    }

    /// A declaration's site and its devices' (id, system).
    type Declared = (String, Vec<(String, Option<String>)>);

    #[test]
    fn a_camera_on_two_nvrs_is_declared_once_and_each_site_apart() {
        let known = |device: &str, site: &str, system: &str| Known {
            site: site.into(),
            device: device.into(),
            system: Some(system.into()),
        };
        let (a, b, c) = (
            "34020000001180000001",
            "34020000001180000002",
            "34020000001180000003",
        );
        let mut f = Fleet::new(
            [
                (a.to_string(), known("nvr-a", "m1", "sys-a")),
                (b.to_string(), known("nvr-b", "m1", "sys-b")),
                (c.to_string(), known("nvr-c", "m2", "sys-c")),
            ]
            .into(),
            60.0,
            180.0,
        );
        let origin = Origin {
            topic: "t".into(),
            element: None,
        };
        let shared = "34020000001320000009";
        let mut out = Vec::new();
        let catalog = |id: &str, items| Change::Catalog {
            device_id: id.into(),
            items,
        };
        let changes = [
            catalog(
                b,
                vec![item(shared, "ON"), item("34020000001320000002", "ON")],
            ),
            catalog(a, vec![item(shared, "ON")]),
            catalog(c, vec![item("34020000001320000003", "ON")]),
        ];
        f.apply(&changes, 1_000, &origin, &|_| true, &mut out);
        let declared: Vec<Declared> = out
            .iter()
            .filter_map(|e| match e {
                SourceEvent::Devices(sd) => Some((
                    sd.site.clone(),
                    sd.devices
                        .iter()
                        .map(|d| (d.id.clone(), d.system.clone()))
                        .collect(),
                )),
                _ => None,
            })
            .collect();
        let last_m1 = declared.iter().rev().find(|(s, _)| s == "m1").unwrap();
        assert_eq!(
            last_m1.1,
            vec![
                (
                    "34020000001320000002".to_string(),
                    Some("sys-b".to_string())
                ),
                (shared.to_string(), Some("sys-a".to_string())),
            ]
        );
        let m2 = declared.iter().find(|(s, _)| s == "m2").unwrap();
        assert_eq!(m2.1.len(), 1);
    }

    #[test]
    fn an_alarm_is_its_listed_channel_s_else_the_device_s_raised_and_cleared_at_once() {
        let nvr = "34020000001180000001";
        let cam = "34020000001320000001";
        let known = Known {
            site: "p1".into(),
            device: "nvr-1".into(),
            system: None,
        };
        let mut f = Fleet::new([(nvr.to_string(), known)].into(), 60.0, 180.0);
        let origin = Origin {
            topic: "t".into(),
            element: None,
        };
        let alarm = |of: &str, priority| Alarm {
            sn: 1,
            device_id: of.into(),
            priority,
            method: Some(5),
            alarm_type: None,
            time: None,
            description: None,
        };
        let catalog = Change::Catalog {
            device_id: nvr.into(),
            items: vec![item(cam, "ON")],
        };
        let changes = [
            catalog,
            Change::Alarm {
                device_id: nvr.into(),
                alarm: alarm(cam, Some(1)),
            },
            Change::Alarm {
                device_id: nvr.into(),
                alarm: alarm("34020000001320000077", None),
            },
        ];
        let mut out = Vec::new();
        f.apply(&changes, 5_000, &origin, &|_| true, &mut out);
        let got: Vec<(String, Option<u8>, Option<i64>)> = out
            .iter()
            .filter_map(|e| match e {
                SourceEvent::RecordedAlarm(a) => {
                    assert_eq!((a.alarm.kind, a.alarm.raised_ms), (AlarmType::Video, 5_000));
                    Some((a.device.clone(), a.alarm.priority, a.alarm.cleared_ms))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (cam.to_string(), Some(1), Some(5_000)),
                ("nvr-1".to_string(), Some(4), Some(5_000)),
            ]
        );
    }
}
