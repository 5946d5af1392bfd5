//! `GET /api/v1/events`: device-state and alarm changes as Server-Sent Events, for the web
//! console (and any client that would rather listen than poll).
//!
//! The core task notes what each round changed ([`Outlet::note`]) and hands it on when it
//! publishes the read model ([`Outlet::flush`]), so a client that refetches a listing on an
//! event sees at least that change. One broadcast message per publication, not per change.
//!
//! Each client gets at most one `changes` event per [`THROTTLE`]: what arrives in between is
//! coalesced, the last state of a device and the last view of an alarm winning. The drop policy
//! for slow clients is explicit: the channel holds [`CAPACITY`] publications; a client that
//! falls further behind loses what it missed and gets a `resync` event (`"reason": "lagged"`),
//! as does one whose coalesced batch would exceed [`MAX_BATCH`] changes (`"overflow"`): it must
//! refetch what it shows. The core task never waits for a client.

use super::{ApiError, Shared};
use crate::core::alarms::view::AlarmView;
use crate::core::{Core, Outputs};
use crate::model::rfc3339_ms;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use serde::Serialize;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::time::Instant;

/// Publications held for clients that have not read them yet (a few seconds' worth at the
/// read model's publication rate of at most 4 per second).
pub const CAPACITY: usize = 64;
/// At most one `changes` event per client per this.
pub const THROTTLE: Duration = Duration::from_secs(1);
/// Changes in one event, and noted per publication; beyond it the client is told to resync.
pub const MAX_BATCH: usize = 2000;
/// A comment line this often, so proxies and the browser keep an idle stream open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// A device went online or offline.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DeviceChange {
    #[serde(serialize_with = "shared_str")]
    pub site: Arc<str>,
    #[serde(serialize_with = "shared_str")]
    pub device: Arc<str>,
    /// `online` or `offline`.
    pub state: &'static str,
    /// When the new state began (RFC 3339).
    pub since: String,
    pub faulty: bool,
}

fn shared_str<S: serde::Serializer>(s: &Arc<str>, to: S) -> Result<S::Ok, S::Error> {
    to.serialize_str(s)
}

/// What one publication of the read model changed.
#[derive(Debug, Default)]
pub struct Round {
    pub devices: Vec<DeviceChange>,
    /// Each changed alarm as `GET /api/v1/alarms/{id}` shows it, without its history.
    pub alarms: Vec<AlarmView>,
    /// More than [`MAX_BATCH`] changes: not all are here.
    pub overflow: bool,
}

impl Round {
    fn len(&self) -> usize {
        self.devices.len() + self.alarms.len()
    }
}

/// The core task's end of the feed. Dropping it ends every client's stream (the gateway is
/// stopping), so the API's graceful shutdown does not wait on open streams.
pub struct Outlet {
    tx: broadcast::Sender<Arc<Round>>,
    pending: Round,
}

/// The API's end: subscribes clients while the outlet lives.
#[derive(Clone)]
pub struct Feed {
    tx: broadcast::WeakSender<Arc<Round>>,
}

/// A feed and its outlet.
pub fn channel() -> (Outlet, Feed) {
    let (tx, _) = broadcast::channel(CAPACITY);
    let feed = Feed { tx: tx.downgrade() };
    let outlet = Outlet {
        tx,
        pending: Round::default(),
    };
    (outlet, feed)
}

impl Outlet {
    /// Note a round's device transitions and alarm changes (before they are routed away).
    /// Nothing is built while no client listens.
    pub fn note(&mut self, core: &Core, out: &Outputs, now: i64) {
        if self.tx.receiver_count() == 0 || self.pending.overflow {
            return;
        }
        if self.pending.len() + out.transitions.len() + out.alarms.len() > MAX_BATCH {
            self.pending = Round {
                overflow: true,
                ..Round::default()
            };
            return;
        }
        let inv = &core.inventory;
        for t in &out.transitions {
            let Some(d) = inv.devices.get(t.device as usize) else {
                continue;
            };
            self.pending.devices.push(DeviceChange {
                site: inv.sites[d.site as usize].id.clone(),
                device: d.id.clone(),
                state: if t.online { "online" } else { "offline" },
                since: rfc3339_ms(t.at_ms),
                faulty: core.liveness.is_faulty(t.device),
            });
        }
        for c in &out.alarms {
            self.pending
                .alarms
                .push(AlarmView::of(&c.record, inv, now, false));
        }
    }

    /// The read model with the noted changes is published: hand them to the clients.
    pub fn flush(&mut self) {
        if self.pending.len() == 0 && !self.pending.overflow {
            return;
        }
        let round = std::mem::take(&mut self.pending);
        // No receiver: nobody to tell.
        let _ = self.tx.send(Arc::new(round));
    }
}

impl Feed {
    fn subscribe(&self) -> Option<broadcast::Receiver<Arc<Round>>> {
        self.tx.upgrade().map(|tx| tx.subscribe())
    }
}

/// What a client has been sent nothing about yet: by device and by alarm, the last wins.
#[derive(Default)]
struct Coalesced {
    devices: HashMap<(Arc<str>, Arc<str>), DeviceChange>,
    alarms: HashMap<u64, AlarmView>,
    overflow: bool,
}

impl Coalesced {
    fn add(&mut self, r: &Round) {
        if self.overflow {
            return;
        }
        if r.overflow {
            self.overflow = true;
            return;
        }
        for d in &r.devices {
            let key = (d.site.clone(), d.device.clone());
            self.devices.insert(key, d.clone());
        }
        for a in &r.alarms {
            self.alarms.insert(a.id, a.clone());
        }
        if self.devices.len() + self.alarms.len() > MAX_BATCH {
            self.overflow = true;
        }
    }

    fn take(&mut self) -> Message {
        let c = std::mem::take(self);
        if c.overflow {
            return Message::Resync("overflow");
        }
        let mut devices: Vec<DeviceChange> = c.devices.into_values().collect();
        devices.sort_by(|a, b| (&a.site, &a.device).cmp(&(&b.site, &b.device)));
        let mut alarms: Vec<AlarmView> = c.alarms.into_values().collect();
        alarms.sort_by_key(|a| a.id);
        Message::Changes(serde_json::json!({"devices": devices, "alarms": alarms}))
    }
}

/// What a client is sent.
#[derive(Debug, PartialEq)]
enum Message {
    /// First, at once: the stream is open, with its throttle.
    Hello,
    /// `{"devices": [...], "alarms": [...]}`.
    Changes(serde_json::Value),
    /// Changes were dropped (`lagged`, `overflow`): refetch what is shown.
    Resync(&'static str),
}

impl Message {
    fn event(self) -> Event {
        let (name, body) = match self {
            Message::Hello => (
                "hello",
                serde_json::json!({
                    "throttle_ms": THROTTLE.as_millis() as u64,
                    "max_batch": MAX_BATCH,
                    "capacity": CAPACITY,
                }),
            ),
            Message::Changes(v) => ("changes", v),
            Message::Resync(reason) => ("resync", serde_json::json!({ "reason": reason })),
        };
        Event::default().event(name).data(body.to_string())
    }
}

/// One client's stream.
struct Client {
    _open: Option<StreamGauge>,
    rx: broadcast::Receiver<Arc<Round>>,
    /// When its last event was sent.
    last: Instant,
    greeted: bool,
}

impl Client {
    /// The next event, or `None` when the gateway stops.
    async fn next(&mut self) -> Option<Message> {
        if !self.greeted {
            self.greeted = true;
            return Some(Message::Hello);
        }
        let mut pending = Coalesced::default();
        match self.rx.recv().await {
            Ok(r) => pending.add(&r),
            Err(broadcast::error::RecvError::Lagged(_)) => {
                return Some(self.sent(Message::Resync("lagged")))
            }
            Err(broadcast::error::RecvError::Closed) => return None,
        }
        let until = self.last + THROTTLE;
        loop {
            tokio::select! {
                r = self.rx.recv() => match r {
                    Ok(r) => pending.add(&r),
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        return Some(self.sent(Message::Resync("lagged")));
                    }
                    // Send what is pending; the next call ends the stream.
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = tokio::time::sleep_until(until) => break,
            }
        }
        Some(self.sent(pending.take()))
    }

    fn sent(&mut self, e: Message) -> Message {
        self.last = Instant::now();
        e
    }
}

/// `GET /api/v1/events` (viewer): `hello` at once, then `changes` and `resync` events.
/// Counts a stream in `safegate_event_streams` while it lives (dropped when the client goes).
struct StreamGauge(prometheus_client::metrics::gauge::Gauge);

impl StreamGauge {
    fn open(g: &prometheus_client::metrics::gauge::Gauge) -> StreamGauge {
        g.inc();
        StreamGauge(g.clone())
    }
}

impl Drop for StreamGauge {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/events",
    tag = "live",
    security(("bearer" = [])),
    summary = "Device-state and alarm changes as Server-Sent Events (hello, changes, resync); viewer",
    responses(
        (status = 200, description = "An event stream (docs/console.md)", content_type = "text/event-stream", body = String),
        (status = 503, description = "The gateway is stopping", body = crate::api::ErrorBody),
        (status = 401, description = "No token, or not a valid one", body = crate::api::ErrorBody),
        (status = 403, description = "The token's role may not call this", body = crate::api::ErrorBody)
    )
)]
pub async fn events(
    State(s): State<Arc<Shared>>,
) -> Result<Sse<impl futures::Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let rx = s
        .events
        .subscribe()
        .ok_or_else(|| ApiError::Unavailable("the gateway is stopping".into()))?;
    let now = Instant::now();
    let client = Client {
        _open: Some(StreamGauge::open(&s.metrics.event_streams)),
        rx,
        // The first change goes out at once.
        last: now.checked_sub(THROTTLE).unwrap_or(now),
        greeted: false,
    };
    let stream = futures::stream::unfold(client, |mut c| async move {
        c.next().await.map(|m| (Ok(m.event()), c))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(device: &str, state: &'static str) -> DeviceChange {
        DeviceChange {
            site: "p1".into(),
            device: device.into(),
            state,
            since: "t".into(),
            faulty: false,
        }
    }

    #[test]
    fn the_last_state_of_a_device_wins_and_too_many_is_a_resync() {
        let mut c = Coalesced::default();
        c.add(&Round {
            devices: vec![change("a", "offline"), change("b", "offline")],
            ..Round::default()
        });
        c.add(&Round {
            devices: vec![change("a", "online")],
            ..Round::default()
        });
        assert_eq!(c.devices.len(), 2);
        assert_eq!(c.devices[&("p1".into(), "a".into())].state, "online");
        let Message::Changes(v) = c.take() else {
            panic!("changes")
        };
        assert_eq!(v["devices"][0]["device"], "a", "{v}");
        assert_eq!(v["devices"][0]["state"], "online", "{v}");
        assert!(c.devices.is_empty(), "taken");
        let many: Vec<DeviceChange> = (0..=MAX_BATCH)
            .map(|i| change(&i.to_string(), "offline"))
            .collect();
        c.add(&Round {
            devices: many,
            ..Round::default()
        });
        assert_eq!(c.take(), Message::Resync("overflow"));
    }

    #[tokio::test]
    async fn a_slow_client_is_told_to_resync_and_a_stopped_outlet_ends_the_stream() {
        let (mut outlet, feed) = channel();
        let mut client = Client {
            _open: None,
            rx: feed.subscribe().unwrap(),
            last: Instant::now() - THROTTLE,
            greeted: true,
        };
        for i in 0..CAPACITY + 1 {
            outlet
                .pending
                .devices
                .push(change(&i.to_string(), "online"));
            outlet.flush();
        }
        assert_eq!(client.next().await, Some(Message::Resync("lagged")));
        assert!(
            client.rx.try_recv().is_ok(),
            "after the resync the client reads on from the oldest kept"
        );
        drop(outlet);
        assert!(feed.subscribe().is_none(), "no new client once stopped");
        while client.rx.try_recv().is_ok() {}
        assert!(client.next().await.is_none(), "the stream ends");
    }

    #[tokio::test(start_paused = true)]
    async fn changes_are_sent_at_most_once_per_throttle_and_coalesced() {
        let (mut outlet, feed) = channel();
        let mut client = Client {
            _open: None,
            rx: feed.subscribe().unwrap(),
            last: Instant::now() - THROTTLE,
            greeted: false,
        };
        assert_eq!(client.next().await, Some(Message::Hello));
        outlet.pending.devices.push(change("a", "offline"));
        outlet.flush();
        let Some(Message::Changes(first)) = client.next().await else {
            panic!("changes")
        };
        let sent = Instant::now();
        assert_eq!(first["devices"].as_array().unwrap().len(), 1, "{first}");
        for state in ["online", "offline", "online"] {
            outlet.pending.devices.push(change("a", state));
            outlet.flush();
        }
        outlet.pending.devices.push(change("b", "offline"));
        outlet.flush();
        let Some(Message::Changes(second)) = client.next().await else {
            panic!("changes")
        };
        assert!(
            Instant::now() >= sent + THROTTLE,
            "held back to the throttle"
        );
        let devices = second["devices"].as_array().unwrap();
        assert_eq!(devices.len(), 2, "a's three changes coalesced: {second}");
        assert_eq!(
            devices[0]["state"], "online",
            "the last of a's wins: {second}"
        );
    }
}
