//! The devices' registrations and liveness, as a state machine that does no I/O: each call
//! takes an event (a REGISTER, a MANSCDP message, a closed connection, the passing of time)
//! with `now` in epoch milliseconds, and returns a [`Decision`]: the reply to send, the state
//! changes to report, and the requests to send. The transports and the clock live elsewhere.
//!
//! The rules (docs/video.md): a device is online from a successful REGISTER until its
//! registration expires or `keepalive_ms × keepalive_misses` pass without a sign of life
//! (a keepalive, or a REGISTER), whichever comes first; over TCP, until its connection
//! closes. Online deadline = min(registered_at + expires, last_alive + keepalive × misses).

use super::catalog::{Accumulator, CatalogError, Progress};
use super::digest::{self, DigestError};
use super::manscdp::{Alarm, CatalogItem, CatalogPage, ChannelStatus, Message};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;

/// The timing rules, in milliseconds. Defaults are the standard's (see `config.rs`).
#[derive(Debug, Clone, PartialEq)]
pub struct Timing {
    pub keepalive_ms: u64,
    pub keepalive_misses: u32,
    pub max_expires_s: u64,
    pub catalog_interval_ms: u64,
    pub catalog_timeout_ms: u64,
    pub max_catalog_items: usize,
    /// For the `Date` of a 200 to REGISTER.
    pub utc_offset_s: i32,
    /// A challenge's nonce is good this long; after it, a right answer gets `stale=true`.
    pub nonce_ttl_ms: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            keepalive_ms: 60_000,
            keepalive_misses: 3,
            max_expires_s: 86_400,
            catalog_interval_ms: 3_600_000,
            catalog_timeout_ms: 30_000,
            max_catalog_items: 10_000,
            utc_offset_s: 8 * 3600,
            nonce_ttl_ms: 300_000,
        }
    }
}

impl Timing {
    /// How long a device stays online after its last sign of life.
    pub fn alive_ms(&self) -> i64 {
        self.keepalive_ms
            .saturating_mul(u64::from(self.keepalive_misses))
            .min(i64::MAX as u64) as i64
    }
}

/// How a device reaches the gateway: where replies and requests go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    Udp(SocketAddr),
    /// A TCP connection, numbered by the transport; its close takes the device offline.
    Tcp {
        conn: u64,
        peer: SocketAddr,
    },
}

/// A REGISTER, as the transport read it.
#[derive(Debug, Clone)]
pub struct Register<'a> {
    /// The user part of the From URI: the device's 20-digit ID.
    pub device_id: &'a str,
    pub call_id: &'a str,
    pub cseq: u32,
    /// The `Expires` header (or the Contact's `expires` parameter), seconds.
    pub expires: Option<u64>,
    /// The `Authorization` header's value.
    pub authorization: Option<&'a str>,
    pub link: Link,
}

/// The reply to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// 200 to a REGISTER: the granted `Expires` and the `Date` (GB/T 28181 time sync).
    Registered { expires: u64, date: String },
    /// 200 to a MESSAGE.
    Accepted,
    /// 401 with this `WWW-Authenticate`.
    Challenge { www_authenticate: String },
    /// 400, and why (a metric label).
    BadRequest { reason: &'static str },
    /// 403, and why (a metric label).
    Forbidden { reason: &'static str },
}

impl Reply {
    pub fn status(&self) -> u16 {
        match self {
            Reply::Registered { .. } | Reply::Accepted => 200,
            Reply::Challenge { .. } => 401,
            Reply::BadRequest { .. } => 400,
            Reply::Forbidden { .. } => 403,
        }
    }
}

/// Why a device went offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfflineCause {
    KeepaliveTimeout,
    RegistrationExpired,
    /// `Expires: 0`.
    Unregistered,
    ConnectionClosed,
}

/// What became of a channel in a subscribed change.
#[derive(Debug, Clone, PartialEq)]
pub enum ChannelChange {
    Status(ChannelStatus),
    Removed,
}

/// A change of state to report (to the inventory, the liveness, the alarms, the metrics).
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Online {
        device_id: String,
    },
    Offline {
        device_id: String,
        cause: OfflineCause,
    },
    /// A whole catalog: the device's channels now.
    Catalog {
        device_id: String,
        items: Vec<CatalogItem>,
    },
    /// A subscribed change to one channel.
    Channel {
        device_id: String,
        channel_id: String,
        change: ChannelChange,
    },
    Alarm {
        device_id: String,
        alarm: Alarm,
    },
    CatalogTimedOut {
        device_id: String,
        sn: u32,
        have: usize,
        of: u32,
    },
    /// A refused input, by reason (the reply, if any, is in the decision).
    Refused {
        device_id: String,
        reason: &'static str,
    },
}

/// A request the gateway sends.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// A MESSAGE with a catalog query (`manscdp::catalog_query`).
    QueryCatalog {
        device_id: String,
        sn: u32,
        link: Link,
    },
    /// A SUBSCRIBE to catalog changes (the same body); a refusal by the device is fine.
    SubscribeCatalog {
        device_id: String,
        sn: u32,
        link: Link,
    },
    /// A MESSAGE answering an alarm (`manscdp::alarm_response`).
    AnswerAlarm {
        device_id: String,
        sn: u32,
        link: Link,
    },
}

/// What one event decided.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Decision {
    pub reply: Option<Reply>,
    pub changes: Vec<Change>,
    pub actions: Vec<Action>,
}

impl Decision {
    fn reply(reply: Reply) -> Decision {
        Decision {
            reply: Some(reply),
            ..Decision::default()
        }
    }

    fn refuse(device_id: &str, reply: Reply) -> Decision {
        let reason = match &reply {
            Reply::BadRequest { reason } | Reply::Forbidden { reason } => *reason,
            _ => "refused",
        };
        Decision {
            changes: vec![Change::Refused {
                device_id: device_id.into(),
                reason,
            }],
            reply: Some(reply),
            actions: Vec::new(),
        }
    }
}

#[derive(Debug)]
struct Registration {
    call_id: String,
    cseq: u32,
    expires_at: i64,
    last_alive: i64,
    link: Link,
}

#[derive(Debug, Default)]
struct Device {
    /// Its own password, else the registry's.
    password: Option<String>,
    /// Nonces issued to it, with when: the last few.
    nonces: VecDeque<(String, i64)>,
    reg: Option<Registration>,
    online: bool,
    catalog: Accumulator,
    next_catalog: Option<i64>,
    /// The SNs of its last alarms: a notification sent again (its 200 lost on UDP) is
    /// answered again but raises nothing more.
    alarm_sns: VecDeque<u32>,
    /// Its earliest deadline as last indexed (see `Registry::queue`).
    due: Option<i64>,
}

/// Alarm SNs remembered per device.
const ALARM_SNS: usize = 16;

impl Device {
    /// Whether `sn` is a new alarm of this device (remembered if so).
    fn new_alarm(&mut self, sn: u32) -> bool {
        if self.alarm_sns.contains(&sn) {
            return false;
        }
        if self.alarm_sns.len() == ALARM_SNS {
            self.alarm_sns.pop_front();
        }
        self.alarm_sns.push_back(sn);
        true
    }

    /// Its registration ends (expired, `Expires: 0`, its connection closed): the offline
    /// change, if it was online.
    fn end_registration(&mut self, id: &str, cause: OfflineCause) -> Option<Change> {
        self.reg = None;
        self.next_catalog = None;
        std::mem::take(&mut self.online).then(|| Change::Offline {
            device_id: id.into(),
            cause,
        })
    }
}

/// Nonces kept per device (a device may answer an older challenge than the last).
const NONCES: usize = 4;

/// The known devices and their state.
#[derive(Debug)]
pub struct Registry {
    timing: Timing,
    realm: String,
    password: String,
    devices: HashMap<String, Device>,
    next_sn: u32,
    /// (time, device) of every device's earliest deadline, so that a message or a tick
    /// visits only the devices due, not all (10,000 keepalives/s of 10,000 devices). Entries
    /// whose time is no longer the device's `due` are stale and skipped.
    queue: BinaryHeap<Reverse<(i64, Arc<str>)>>,
}

/// GB/T 28181's `Date`: local time at `offset_s`, `yyyy-MM-ddTHH:mm:ss.SSS`, no zone.
pub fn sip_date(now_ms: i64, offset_s: i32) -> String {
    let offset = time::UtcOffset::from_whole_seconds(offset_s).unwrap_or(time::UtcOffset::UTC);
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(now_ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .to_offset(offset);
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]"
    );
    t.format(&f).unwrap_or_default()
}

impl Registry {
    /// `realm` is the domain; `password` the devices' unless `known` gives one its own.
    pub fn new(
        timing: Timing,
        realm: impl Into<String>,
        password: impl Into<String>,
        known: impl IntoIterator<Item = (String, Option<String>)>,
    ) -> Registry {
        let devices = known
            .into_iter()
            .map(|(id, password)| {
                let d = Device {
                    password,
                    ..Device::default()
                };
                (id, d)
            })
            .collect();
        Registry {
            timing,
            realm: realm.into(),
            password: password.into(),
            devices,
            next_sn: 1,
            queue: BinaryHeap::new(),
        }
    }

    fn sn(&mut self) -> u32 {
        let sn = self.next_sn;
        self.next_sn = self.next_sn.checked_add(1).unwrap_or(1);
        sn
    }

    /// Whether the device is online, as of the last event or tick.
    pub fn is_online(&self, device_id: &str) -> bool {
        self.devices.get(device_id).is_some_and(|d| d.online)
    }

    /// When a registered device goes offline unless it shows a sign of life:
    /// min(registration expiry, last sign of life + keepalive × misses).
    pub fn online_until(&self, device_id: &str) -> Option<i64> {
        let reg = self.devices.get(device_id)?.reg.as_ref()?;
        Some(self.deadline_of(reg))
    }

    fn deadline_of(&self, reg: &Registration) -> i64 {
        reg.expires_at
            .min(reg.last_alive.saturating_add(self.timing.alive_ms()))
    }

    /// A REGISTER. `nonce` is a fresh unpredictable value, used if a challenge is sent. The
    /// device's deadlines at `now` apply first (a registration that expired unnoticed ends
    /// before the new one begins).
    pub fn register(&mut self, now: i64, req: &Register<'_>, nonce: &str) -> Decision {
        let out = self.register_at(now, req, nonce);
        self.reindex(req.device_id);
        out
    }

    fn register_at(&mut self, now: i64, req: &Register<'_>, nonce: &str) -> Decision {
        let mut out = self.tick_device(now, req.device_id);
        let decided = self.decide_register(now, req, nonce);
        out.reply = decided.reply;
        out.changes.extend(decided.changes);
        out.actions.extend(decided.actions);
        out
    }

    fn decide_register(&mut self, now: i64, req: &Register<'_>, nonce: &str) -> Decision {
        let Some(expires) = req.expires else {
            return Decision::refuse(
                req.device_id,
                Reply::BadRequest {
                    reason: "missing_expires",
                },
            );
        };
        let Some(header) = req.authorization else {
            return self.challenge(now, req.device_id, nonce, false);
        };
        let creds = match digest::parse(header) {
            Ok(c) => c,
            Err(e) => return Decision::refuse(req.device_id, digest_reply(&e)),
        };
        if creds.username != req.device_id {
            let reason = "username_mismatch";
            return Decision::refuse(req.device_id, Reply::Forbidden { reason });
        }
        let Some(device) = self.devices.get(req.device_id) else {
            let reason = "unknown_device";
            return Decision::refuse(req.device_id, Reply::Forbidden { reason });
        };
        let password = device.password.as_deref().unwrap_or(&self.password);
        if let Err(e) = digest::verify(&creds, "REGISTER", password) {
            return Decision::refuse(req.device_id, digest_reply(&e));
        }
        let fresh = device.nonces.iter().any(|(n, at)| {
            *n == creds.nonce && now.saturating_sub(*at) < self.timing.nonce_ttl_ms as i64
        });
        if !fresh {
            return self.challenge(now, req.device_id, nonce, true);
        }
        if expires == 0 {
            return self.unregister(req.device_id);
        }
        self.bind(now, req, expires.min(self.timing.max_expires_s))
    }

    /// A 401 with a new nonce, kept for a known device (an unknown one is refused once it
    /// answers; nothing is kept for it).
    fn challenge(&mut self, now: i64, device_id: &str, nonce: &str, stale: bool) -> Decision {
        if let Some(d) = self.devices.get_mut(device_id) {
            if d.nonces.len() >= NONCES {
                d.nonces.pop_front();
            }
            d.nonces.push_back((nonce.to_string(), now));
        }
        Decision::reply(Reply::Challenge {
            www_authenticate: digest::challenge(&self.realm, nonce, stale),
        })
    }

    fn unregister(&mut self, device_id: &str) -> Decision {
        let mut out = Decision::reply(Reply::Registered {
            expires: 0,
            date: String::new(),
        });
        if let Some(d) = self.devices.get_mut(device_id) {
            out.changes
                .extend(d.end_registration(device_id, OfflineCause::Unregistered));
        }
        out
    }

    /// A verified REGISTER for `granted` seconds: a refresh on the registration's Call-ID
    /// (CSeq must grow; the same CSeq is a retransmission), a new registration otherwise.
    fn bind(&mut self, now: i64, req: &Register<'_>, granted: u64) -> Decision {
        let date = sip_date(now, self.timing.utc_offset_s);
        let ok = Reply::Registered {
            expires: granted,
            date,
        };
        let interval = self.timing.catalog_interval_ms as i64;
        let Some(d) = self.devices.get_mut(req.device_id) else {
            return Decision::default();
        };
        let same_call = d.reg.as_ref().filter(|r| r.call_id == req.call_id);
        if let Some(r) = same_call {
            if req.cseq < r.cseq {
                let reason = "cseq_out_of_order";
                return Decision::refuse(req.device_id, Reply::BadRequest { reason });
            }
            if req.cseq == r.cseq {
                return Decision::reply(ok);
            }
        }
        let new = same_call.is_none();
        d.reg = Some(Registration {
            call_id: req.call_id.into(),
            cseq: req.cseq,
            expires_at: now.saturating_add(granted.saturating_mul(1000) as i64),
            last_alive: now,
            link: req.link,
        });
        let mut out = Decision::reply(ok);
        if !std::mem::replace(&mut d.online, true) {
            out.changes.push(Change::Online {
                device_id: req.device_id.into(),
            });
        }
        if new {
            d.next_catalog = Some(now.saturating_add(interval));
            let (q, s) = (self.sn(), self.sn());
            let id = req.device_id.to_string();
            out.actions.push(Action::QueryCatalog {
                device_id: id.clone(),
                sn: q,
                link: req.link,
            });
            out.actions.push(Action::SubscribeCatalog {
                device_id: id,
                sn: s,
                link: req.link,
            });
        }
        out
    }

    /// A MANSCDP MESSAGE from `device_id` (the From user), already read. Only a keepalive
    /// is a sign of life; any message from a device that is not registered is refused.
    pub fn message(&mut self, now: i64, device_id: &str, link: Link, msg: Message) -> Decision {
        let out = self.message_at(now, device_id, link, msg);
        self.reindex(device_id);
        out
    }

    fn message_at(&mut self, now: i64, device_id: &str, link: Link, msg: Message) -> Decision {
        let mut out = self.tick_device(now, device_id);
        let keepalive = matches!(msg, Message::Keepalive { .. });
        if let Err(refused) = self.touch(now, device_id, link, keepalive, &mut out) {
            out.reply = refused.reply;
            out.changes.extend(refused.changes);
            return out;
        }
        let decided = match msg {
            Message::Keepalive { .. } | Message::Other { .. } => Decision::reply(Reply::Accepted),
            Message::Catalog(page) if page.is_notify => catalog_changes(device_id, page),
            Message::Catalog(page) => self.catalog_page(now, device_id, page),
            Message::Alarm(alarm) => {
                let fresh = self
                    .devices
                    .get_mut(device_id)
                    .is_some_and(|d| d.new_alarm(alarm.sn));
                Decision {
                    reply: Some(Reply::Accepted),
                    actions: vec![Action::AnswerAlarm {
                        device_id: device_id.into(),
                        sn: alarm.sn,
                        link,
                    }],
                    changes: fresh
                        .then(|| Change::Alarm {
                            device_id: device_id.into(),
                            alarm,
                        })
                        .into_iter()
                        .collect(),
                }
            }
        };
        out.reply = decided.reply;
        out.changes.extend(decided.changes);
        out.actions.extend(decided.actions);
        out
    }

    /// A message from a registered device: its link is where it last spoke from; a
    /// keepalive is its sign of life (and brings it back online while still registered).
    fn touch(
        &mut self,
        now: i64,
        device_id: &str,
        link: Link,
        keepalive: bool,
        out: &mut Decision,
    ) -> Result<(), Decision> {
        let Some(d) = self.devices.get_mut(device_id) else {
            let reason = "unknown_device";
            return Err(Decision::refuse(device_id, Reply::Forbidden { reason }));
        };
        let Some(reg) = d.reg.as_mut() else {
            let reason = "not_registered";
            return Err(Decision::refuse(device_id, Reply::Forbidden { reason }));
        };
        reg.link = link;
        if keepalive {
            reg.last_alive = now;
            if !std::mem::replace(&mut d.online, true) {
                out.changes.push(Change::Online {
                    device_id: device_id.into(),
                });
            }
        }
        Ok(())
    }

    fn catalog_page(&mut self, now: i64, device_id: &str, page: CatalogPage) -> Decision {
        let max = self.timing.max_catalog_items;
        let Some(d) = self.devices.get_mut(device_id) else {
            return Decision::default();
        };
        match d.catalog.page(now, page, max) {
            Ok(Progress::Complete { items, .. }) => Decision {
                reply: Some(Reply::Accepted),
                changes: vec![Change::Catalog {
                    device_id: device_id.into(),
                    items,
                }],
                actions: Vec::new(),
            },
            Ok(_) => Decision::reply(Reply::Accepted),
            Err(e @ (CatalogError::TooMany { .. } | CatalogError::Inconsistent { .. })) => {
                Decision::refuse(device_id, Reply::BadRequest { reason: e.code() })
            }
        }
    }

    /// A TCP connection closed: the devices registered over it are offline at once and
    /// must register again (GB/T 28181-2022).
    pub fn connection_closed(&mut self, conn: u64) -> Decision {
        let mut out = Decision::default();
        for (id, d) in &mut self.devices {
            let on_it = d
                .reg
                .as_ref()
                .is_some_and(|r| matches!(r.link, Link::Tcp { conn: c, .. } if c == conn));
            if on_it {
                out.changes
                    .extend(d.end_registration(id, OfflineCause::ConnectionClosed));
            }
        }
        let ids: Vec<String> = self.devices.keys().cloned().collect();
        for id in ids {
            self.reindex(&id);
        }
        out
    }

    /// The passing of time: deadlines reached at `now` take effect (for the devices due).
    pub fn tick(&mut self, now: i64) -> Decision {
        let mut due: Vec<Arc<str>> = Vec::new();
        while let Some(Reverse((t, id))) = self.queue.peek() {
            if *t > now {
                break;
            }
            let current = self.devices.get(&**id).and_then(|d| d.due) == Some(*t);
            if current && !due.contains(id) {
                due.push(id.clone());
            }
            self.queue.pop();
        }
        let mut out = Decision::default();
        for id in due {
            if let Some(d) = self.devices.get_mut(&*id) {
                d.due = None;
            }
            let d = self.tick_device(now, &id);
            self.reindex(&id);
            out.changes.extend(d.changes);
            out.actions.extend(d.actions);
        }
        out
    }

    /// The earliest time a [`Registry::tick`] would change something.
    pub fn next_deadline(&mut self) -> Option<i64> {
        while let Some(Reverse((t, id))) = self.queue.peek() {
            if self.devices.get(&**id).and_then(|d| d.due) == Some(*t) {
                return Some(*t);
            }
            self.queue.pop();
        }
        None
    }

    /// [`Registry::next_deadline`] the slow way, every device scanned: what the index must
    /// always agree with (tests).
    #[cfg(test)]
    pub(crate) fn next_deadline_by_scan(&self) -> Option<i64> {
        self.devices.values().filter_map(|d| self.due_of(d)).min()
    }

    /// The device's earliest deadline: its liveness (registration expiry or keepalive
    /// deadline), a catalog's timeout, the next catalog query.
    fn due_of(&self, d: &Device) -> Option<i64> {
        let timeout = self.timing.catalog_timeout_ms;
        let alive = d.reg.as_ref().map(|r| {
            if d.online {
                self.deadline_of(r)
            } else {
                r.expires_at
            }
        });
        [alive, d.catalog.deadline(timeout), d.next_catalog]
            .into_iter()
            .flatten()
            .min()
    }

    /// Index device `id`'s earliest deadline after a change to it.
    fn reindex(&mut self, id: &str) {
        let Some(d) = self.devices.get(id) else {
            return;
        };
        let due = self.due_of(d);
        if due == d.due {
            return;
        }
        if let Some(d) = self.devices.get_mut(id) {
            d.due = due;
        }
        if let Some(t) = due {
            self.queue.push(Reverse((t, Arc::from(id))));
        }
    }

    fn tick_device(&mut self, now: i64, id: &str) -> Decision {
        let alive_ms = self.timing.alive_ms();
        let (timeout, interval) = (
            self.timing.catalog_timeout_ms,
            self.timing.catalog_interval_ms as i64,
        );
        let mut out = Decision::default();
        let Some(d) = self.devices.get_mut(id) else {
            return out;
        };
        if let Some(reg) = &d.reg {
            if now >= reg.expires_at {
                let cause = OfflineCause::RegistrationExpired;
                out.changes.extend(d.end_registration(id, cause));
            } else if d.online && now >= reg.last_alive.saturating_add(alive_ms) {
                d.online = false;
                out.changes.push(Change::Offline {
                    device_id: id.into(),
                    cause: OfflineCause::KeepaliveTimeout,
                });
            }
        }
        for t in d.catalog.expire(now, timeout) {
            out.changes.push(Change::CatalogTimedOut {
                device_id: id.into(),
                sn: t.sn,
                have: t.have,
                of: t.of,
            });
        }
        let due = d.next_catalog.is_some_and(|at| now >= at);
        let link = d.reg.as_ref().map(|r| r.link);
        if let (true, Some(link)) = (due, link) {
            d.next_catalog = Some(now.saturating_add(interval));
            let sn = self.sn();
            out.actions.push(Action::QueryCatalog {
                device_id: id.into(),
                sn,
                link,
            });
        }
        out
    }
}

/// The reply to an `Authorization` that does not authenticate.
fn digest_reply(e: &DigestError) -> Reply {
    match e {
        DigestError::Mismatch | DigestError::Algorithm(_) | DigestError::Qop(_) => {
            Reply::Forbidden { reason: e.code() }
        }
        _ => Reply::BadRequest { reason: e.code() },
    }
}

/// A subscribed catalog change: each item's `Event` (ON, OFF, VLOST, DEFECT; DEL removes;
/// ADD and UPDATE carry the item's `Status`).
fn catalog_changes(device_id: &str, page: CatalogPage) -> Decision {
    let changes = page
        .items
        .into_iter()
        .map(|item| {
            let event = item
                .event
                .as_deref()
                .unwrap_or("")
                .trim()
                .to_ascii_uppercase();
            let change = match event.as_str() {
                "DEL" => ChannelChange::Removed,
                "ON" | "OFF" | "VLOST" | "DEFECT" => {
                    ChannelChange::Status(ChannelStatus::parse(&event))
                }
                _ => ChannelChange::Status(item.status),
            };
            Change::Channel {
                device_id: device_id.into(),
                channel_id: item.device_id,
                change,
            }
        })
        .collect();
    Decision {
        reply: Some(Reply::Accepted),
        changes,
        actions: Vec::new(),
    }
}
