//! The alarm board on MQTT: every alarm's current state, retained, on
//! `{prefix}/{site}/alarms/{id}`, so a park platform that connects at any time sees the open
//! alarms at once. Its own client connection (the ingest connection stays read-only).
//!
//! Queue policy: only the latest state of an alarm matters, so states are coalesced per
//! alarm in a map (bounded by the number of alarms with an unpublished change); nothing is
//! dropped and nothing blocks the core. A closed alarm's retained message is removed after
//! `retain_closed_s`, so the broker does not accumulate every alarm ever raised.

use crate::backoff::Backoff;
use crate::core::alarms::view::AlarmView;
use crate::model::now_ms;
use crate::telemetry::{Metrics, RateLimitedLog};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, Notify};

#[derive(Default)]
struct Pending {
    /// topic → (payload, closed)
    latest: BTreeMap<String, (Vec<u8>, bool)>,
}

/// Where the core task hands alarm states to the board.
#[derive(Clone)]
pub struct BoardQueue {
    prefix: Arc<str>,
    pending: Arc<Mutex<Pending>>,
    notify: Arc<Notify>,
}

pub fn topic(prefix: &str, site: &str, id: u64) -> String {
    format!("{prefix}/{site}/alarms/{id}")
}

impl BoardQueue {
    pub fn new(prefix: &str) -> BoardQueue {
        BoardQueue {
            prefix: prefix.into(),
            pending: Arc::default(),
            notify: Arc::default(),
        }
    }

    pub fn publish(&self, view: &AlarmView) {
        let payload = serde_json::to_vec(view).unwrap_or_default();
        let closed = view.state == "cleared_acked";
        let t = topic(&self.prefix, &view.site, view.id);
        self.lock().latest.insert(t, (payload, closed));
        self.notify.notify_one();
    }

    /// The topics waiting to be published.
    #[cfg(test)]
    pub(crate) fn topics(&self) -> Vec<String> {
        self.lock().latest.keys().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publish until shutdown. `closed` are alarms closed before this start, (site, id,
    /// closed at), whose retained message is still to be removed.
    pub async fn run(
        self,
        opts: MqttOptions,
        retain_closed: Duration,
        closed: Vec<(String, u64, i64)>,
        backoff: (u64, u64),
        metrics: Arc<Metrics>,
        mut shutdown: broadcast::Receiver<()>,
    ) {
        let (client, mut eventloop) = AsyncClient::new(opts, 1024);
        let keep = retain_closed.as_millis() as i64;
        let mut removals: BinaryHeap<Reverse<(i64, String)>> = closed
            .into_iter()
            .map(|(site, id, at)| Reverse((at + keep, topic(&self.prefix, &site, id))))
            .collect();
        let mut backoff = Backoff::new(backoff.0, backoff.1);
        let warn = RateLimitedLog::new(30_000);
        loop {
            let next_removal = removals.peek().map(|Reverse((at, _))| *at);
            let wake = tokio::time::Instant::now()
                + Duration::from_millis(
                    next_removal.map_or(3_600_000, |t| (t - now_ms()).clamp(0, 3_600_000) as u64),
                );
            tokio::select! {
                _ = shutdown.recv() => break,
                _ = self.notify.notified() => {}
                _ = tokio::time::sleep_until(wake) => {
                    let now = now_ms();
                    while removals.peek().is_some_and(|Reverse((at, _))| *at <= now) {
                        let Some(Reverse((_, t))) = removals.pop() else { break };
                        // An empty retained message removes the retained one.
                        if client.try_publish(t.clone(), QoS::AtLeastOnce, true, Vec::new()).is_err() {
                            removals.push(Reverse((now + 1_000, t)));
                            break;
                        }
                    }
                }
                ev = eventloop.poll() => match ev {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => backoff.reset(),
                    Ok(_) => {}
                    Err(e) => {
                        if let Some(suppressed) = warn.allow("board", now_ms()) {
                            tracing::warn!(error = %e, suppressed, "alarm board: MQTT connection lost; alarm states are kept and published on reconnect");
                        }
                        tokio::select! {
                            _ = shutdown.recv() => break,
                            _ = tokio::time::sleep(backoff.next_delay()) => {}
                        }
                    }
                },
            }
            // Hand what is pending to the client, as far as its request queue takes it. One
            // state at a time: what the queue does not take stays in the map untouched, so a
            // wake-up costs what it sends, not what is pending.
            loop {
                let Some((t, (payload, closed))) = self.lock().latest.pop_first() else {
                    break;
                };
                match client.try_publish(t.clone(), QoS::AtLeastOnce, true, payload.clone()) {
                    Ok(()) => {
                        metrics.alarms_published.inc();
                        if closed {
                            removals.push(Reverse((now_ms() + keep, t)));
                        }
                    }
                    Err(_) => {
                        // Full: keep it (unless a newer state arrived meanwhile) for the next turn.
                        self.lock().latest.entry(t).or_insert((payload, closed));
                        break;
                    }
                }
            }
        }
        let _ = client.try_disconnect();
        let _ = tokio::time::timeout(Duration::from_millis(300), async {
            while eventloop.poll().await.is_ok() {}
        })
        .await;
    }
}
