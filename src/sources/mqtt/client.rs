use super::config::{AckPolicy, MqttSettings};
use super::metrics::MqttMetrics;
use super::payload::{parse_message, parse_topic, Limits, Topic};
use super::signature::SigningKeys;
use crate::backoff::Backoff;
use crate::core::{Origin, Reason, Rejection};
use crate::core::{Receipt, SourceEvent};
use crate::model::now_ms;
use crate::telemetry::{Clock, LinkStatus, RateLimitedLog};
use rumqttc::{
    AsyncClient, ConnAck, ConnectionError, Event, MqttOptions, Packet, Publish, QoS, Transport,
};
use std::borrow::Cow;
use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

#[derive(Debug, thiserror::Error)]
pub enum MqttSourceError {
    #[error("mqtt.url {0:?} is not usable: {1}")]
    BadUrl(String, String),
    #[error("mqtt.password_env names {0:?}, which is not set in the environment")]
    MissingPassword(String),
    #[error("mqtt TLS file {0}: {1}")]
    TlsFile(std::path::PathBuf, std::io::Error),
}

/// Client options from `[mqtt]` (also used by the alarm board's own connection).
pub fn options(cfg: &MqttSettings) -> Result<MqttOptions, MqttSourceError> {
    let url = url::Url::parse(&cfg.url)
        .map_err(|e| MqttSourceError::BadUrl(cfg.url.clone(), e.to_string()))?;
    let tls = match url.scheme() {
        "mqtt" => false,
        "mqtts" => true,
        s => {
            return Err(MqttSourceError::BadUrl(
                cfg.url.clone(),
                format!("scheme {s:?} is not mqtt or mqtts"),
            ))
        }
    };
    let host = url
        .host_str()
        .ok_or_else(|| MqttSourceError::BadUrl(cfg.url.clone(), "no host".into()))?;
    let port = url.port().unwrap_or(if tls { 8883 } else { 1883 });
    let mut o = MqttOptions::new(cfg.client_id.clone(), host, port);
    // A persistent session: the broker queues QoS 1 messages while we are away.
    o.set_clean_session(false);
    o.set_keep_alive(Duration::from_secs(cfg.keep_alive_s.max(5)));
    // Accept packets well past our own payload limit, so an oversize payload is counted as
    // `payload_too_large` instead of tearing the connection down.
    let incoming = (cfg.max_payload_bytes.saturating_mul(4)).max(4 << 20);
    o.set_max_packet_size(incoming, 1 << 20);
    o.set_inflight(1000);
    let password = match (&cfg.password, &cfg.password_env) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(var)) => {
            Some(std::env::var(var).map_err(|_| MqttSourceError::MissingPassword(var.clone()))?)
        }
        (None, None) => None,
    };
    if let Some(user) = &cfg.username {
        o.set_credentials(user.clone(), password.unwrap_or_default());
    }
    if tls {
        let read = |p: &std::path::PathBuf| {
            std::fs::read(p).map_err(|e| MqttSourceError::TlsFile(p.clone(), e))
        };
        let client_auth = match (&cfg.client_cert_file, &cfg.client_key_file) {
            (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
            _ => None,
        };
        match &cfg.ca_file {
            Some(ca) => o.set_transport(Transport::Tls(rumqttc::TlsConfiguration::Simple {
                ca: read(ca)?,
                alpn: None,
                client_auth,
            })),
            None => o.set_transport(Transport::tls_with_default_config()),
        };
    }
    Ok(o)
}

/// QoS 1 messages received and not yet acknowledged, in arrival order: PUBACKs go out in
/// that order, each once its receipt completed durable (`mqtt.ack = "after_commit"`).
#[derive(Default)]
struct Unacked {
    /// (sequence, connection epoch, the publish to acknowledge, completion: None = waiting)
    queue: VecDeque<(u64, u64, Publish, Option<bool>)>,
    next_seq: u64,
}

impl Unacked {
    fn push(&mut self, epoch: u64, p: &Publish) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        // Only what PUBACK needs: the packet id and QoS.
        let mut ack = Publish::new("", p.qos, Vec::<u8>::new());
        ack.pkid = p.pkid;
        self.queue.push_back((seq, epoch, ack, None));
        seq
    }

    fn complete(&mut self, seq: u64, durable: bool) {
        if let Some(front) = self.queue.front().map(|e| e.0) {
            if let Some(e) = seq
                .checked_sub(front)
                .and_then(|i| self.queue.get_mut(i as usize))
            {
                e.3 = Some(durable);
            }
        }
    }

    /// The completed prefix: (epoch, publish, durable).
    fn pop_ready(&mut self) -> Option<(u64, Publish, bool)> {
        match self.queue.front() {
            Some((_, _, _, Some(_))) => self
                .queue
                .pop_front()
                .map(|(_, ep, p, d)| (ep, p, d == Some(true))),
            _ => None,
        }
    }
}

/// Run the MQTT source until shutdown. Events go to `tx`; a full channel blocks us, which
/// stops reading from the socket: the broker holds the rest.
///
/// With `ack = "after_commit"` (and QoS 1), each message is followed by a receipt; its PUBACK
/// is sent only when the receipt completes, after the outbox commit and the journal. A
/// receipt completed as not durable (a failed write) makes us reconnect without
/// acknowledging, so the broker delivers that message and the ones after it again.
pub async fn run(
    source: super::MqttSource,
    tx: mpsc::Sender<SourceEvent>,
    clock: Clock,
    mut shutdown: broadcast::Receiver<()>,
) -> Result<(), MqttSourceError> {
    let super::MqttSource {
        settings: cfg,
        keys,
        mapped,
        status,
        metrics,
    } = source;
    let mut opts = options(&cfg)?;
    let qos = if cfg.qos == 0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    };
    let manual = qos == QoS::AtLeastOnce && cfg.ack == AckPolicy::AfterCommit;
    opts.set_manual_acks(manual);
    // Room for a PUBACK per message the broker may have in flight to us.
    let (client, eventloop) = AsyncClient::new(opts, 8_192);
    let backoff = Backoff::new(cfg.reconnect_min_ms, cfg.reconnect_max_ms);
    // A few events of slack: poller and session each run in bursts instead of waking the
    // other for every packet (still bounded: a full channel stops the polling).
    let (ev_tx, mut ev_rx) = mpsc::channel(64);
    let poller = tokio::spawn(drive(eventloop, backoff, ev_tx));
    // PUBACKs go out through a task of their own: waiting for room in rumqttc's request
    // channel here could deadlock with the poller waiting for us, and dropping one would leak
    // a broker in-flight slot for the life of the connection.
    let (ack_tx, ack_rx) = mpsc::unbounded_channel::<(u64, Publish)>();
    let current_epoch = Arc::new(AtomicU64::new(0));
    let acker = tokio::spawn(send_acks(client.clone(), ack_rx, current_epoch.clone()));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(u64, bool)>();
    let mut filters = vec![format!("{}/#", cfg.topic_prefix)];
    filters.extend(mapped.mappings.topic_filters());
    if cfg.shared {
        // Cluster mode: one group; the broker gives each message to one instance.
        let group = &cfg.shared_group;
        filters = filters
            .into_iter()
            .map(|f| format!("$share/{group}/{f}"))
            .collect();
    }
    let mut s = Session {
        filter: filters.join(", "),
        filters,
        mapped,
        map_limits: crate::sources::mapping::Limits {
            max_records: cfg.max_batch_len,
            max_channels: cfg.max_channels,
            max_id_bytes: cfg.max_id_bytes,
            max_channel_name_bytes: cfg.max_channel_name_bytes,
        },
        limits: limits(&cfg),
        cfg,
        keys,
        tx,
        status,
        metrics,
        clock,
        client,
        qos,
        manual,
        unacked: Unacked::default(),
        epoch: 0,
        current_epoch,
        done_tx,
        ack_tx,
        warn: RateLimitedLog::new(10_000),
        events: Vec::with_capacity(16),
        link: Arc::from(crate::core::event::MQTT_LINK),
    };
    loop {
        let ev = tokio::select! {
            _ = shutdown.recv() => break,
            Some(first) = done_rx.recv() => {
                s.on_receipts(first, &mut done_rx);
                continue;
            }
            ev = ev_rx.recv() => match ev {
                Some(ev) => ev,
                None => break,
            },
        };
        if s.on_event(ev).await.is_break() {
            return Ok(()); // the core has stopped: we are shutting down
        }
        // Hand the core what is parsed once no more is waiting: a burst of messages wakes
        // the core task once, not once a message (the wake-ups cost more than the parsing).
        if ev_rx.is_empty() && s.flush().await.is_break() {
            return Ok(());
        }
    }
    let _ = s.flush().await;
    s.link_down_at_stop().await;
    // Best effort: a clean DISCONNECT keeps the session but skips the broker's keep-alive wait.
    let _ = s.client.try_disconnect();
    let _ = tokio::time::timeout(Duration::from_millis(200), async {
        while ev_rx.recv().await.is_some() {}
    })
    .await;
    poller.abort();
    acker.abort();
    Ok(())
}

/// Events held before they go to the core in one burst (see `run`): about a core batch.
const FLUSH_AT: usize = 512;

/// A whole message refused before it is parsed.
fn rejected(topic: &str, reason: Reason, detail: String, now: i64) -> SourceEvent {
    SourceEvent::Rejected(Rejection {
        reason,
        origin: Origin {
            topic: Arc::from(crate::core::event::shorten(topic, 320)),
            element: None,
        },
        detail,
        received_ms: now,
    })
}

/// The parser's limits, from `[mqtt]`.
fn limits(cfg: &MqttSettings) -> Limits {
    Limits {
        max_payload_bytes: cfg.max_payload_bytes,
        max_batch_len: cfg.max_batch_len,
        max_channels: cfg.max_channels,
        max_id_bytes: cfg.max_id_bytes,
        max_channel_name_bytes: cfg.max_channel_name_bytes,
        max_note_bytes: cfg.max_note_bytes,
    }
}

/// The source's state across connections; [`run`] feeds it events from the poller and
/// completed receipts.
struct Session {
    cfg: MqttSettings,
    keys: SigningKeys,
    tx: mpsc::Sender<SourceEvent>,
    status: Arc<LinkStatus>,
    metrics: Arc<MqttMetrics>,
    /// Stamps receive times and link changes (a test's manual clock, or the wall clock).
    clock: Clock,
    client: AsyncClient,
    qos: QoS,
    /// PUBACKs wait for receipts (`ack = "after_commit"` at QoS 1).
    manual: bool,
    /// What it subscribes to: the gateway's own tree, then every mapping's topic filters.
    filters: Vec<String>,
    /// `filters`, for the log.
    filter: String,
    mapped: crate::sources::Mapped,
    map_limits: crate::sources::mapping::Limits,
    limits: Limits,
    unacked: Unacked,
    /// Bumped on every connection loss: acknowledgements of an older connection are not sent
    /// (the broker delivers those messages again; duplicates are harmless).
    epoch: u64,
    /// `epoch`, as the acknowledging task sees it.
    current_epoch: Arc<AtomicU64>,
    done_tx: mpsc::UnboundedSender<(u64, bool)>,
    ack_tx: mpsc::UnboundedSender<(u64, Publish)>,
    warn: RateLimitedLog,
    /// Reused for each message's events.
    events: Vec<SourceEvent>,
    link: Arc<str>,
}

impl Session {
    fn new_epoch(&mut self) {
        self.epoch += 1;
        self.current_epoch.store(self.epoch, Ordering::Relaxed);
    }

    /// Receipts completed (`first` and any others already waiting): send the PUBACKs now due,
    /// in order, or reconnect when one of them could not be made durable.
    fn on_receipts(
        &mut self,
        first: (u64, bool),
        done_rx: &mut mpsc::UnboundedReceiver<(u64, bool)>,
    ) {
        self.unacked.complete(first.0, first.1);
        while let Ok((seq, durable)) = done_rx.try_recv() {
            self.unacked.complete(seq, durable);
        }
        let mut reconnect = false;
        while let Some((ep, p, durable)) = self.unacked.pop_ready() {
            if ep != self.epoch {
                continue;
            }
            if !durable {
                reconnect = true;
                break;
            }
            let _ = self.ack_tx.send((ep, p));
        }
        self.metrics
            .acks_pending
            .set(self.unacked.queue.len() as i64);
        if reconnect {
            // Everything after the failed message is unacknowledged too: reconnect so the
            // broker delivers it all again.
            if let Some(suppressed) = self.warn.allow("not_durable", now_ms()) {
                tracing::error!(suppressed, "a message could not be made durable; reconnecting so the broker delivers it again");
            }
            self.new_epoch();
            let _ = self.client.try_disconnect();
        }
    }

    /// One event from the poller. Break when the core has stopped.
    async fn on_event(&mut self, ev: Result<Event, ConnectionError>) -> ControlFlow<()> {
        match ev {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => self.on_connack(ack).await,
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                // Ready only once subscribed: before that, publishes would pass us by.
                self.link_up().await?;
                tracing::info!(filter = %self.filter, qos = ?self.qos, "MQTT subscribed");
                ControlFlow::Continue(())
            }
            Ok(Event::Incoming(Packet::Publish(p))) => self.on_publish(p).await,
            Ok(_) => ControlFlow::Continue(()),
            Err(e) => self.on_connection_error(e).await,
        }
    }

    async fn on_connack(&mut self, ack: ConnAck) -> ControlFlow<()> {
        tracing::info!(url = %self.cfg.url, session_present = ack.session_present, "MQTT connected");
        // Always (re)subscribe: a broker restarted without persistence forgot us.
        let filters = self
            .filters
            .iter()
            .map(|f| rumqttc::SubscribeFilter::new(f.clone(), self.qos));
        if let Err(e) = self.client.try_subscribe_many(filters) {
            if let Some(suppressed) = self.warn.allow("subscribe", now_ms()) {
                tracing::error!(error = %e, suppressed, "MQTT subscribe request failed");
            }
        }
        // A kept session still holds our subscription: subscribed already, even if the SUBACK
        // waits behind the messages queued for us (a held outbox).
        if ack.session_present {
            self.link_up().await?;
        }
        ControlFlow::Continue(())
    }

    /// A message: verified (signed sites), parsed, followed by its receipt when its PUBACK
    /// waits for one, and handed to the core.
    async fn on_publish(&mut self, p: Publish) -> ControlFlow<()> {
        self.metrics.messages_received.inc();
        let now = self.clock.now_ms();
        let native = p
            .topic
            .strip_prefix(self.cfg.topic_prefix.as_str())
            .is_some_and(|r| r.starts_with('/'));
        // An Arc of its own, so the mapping can be borrowed while the session fills events.
        let mappings = self.mapped.mappings.clone();
        let mapping = if native {
            None
        } else {
            mappings.for_topic(&p.topic)
        };
        match mapping {
            Some(m) => self.map(m, &p, now),
            None => self.parse_native(&p, now),
        }
        if self.manual && p.qos == QoS::AtLeastOnce {
            let seq = self.unacked.push(self.epoch, &p);
            self.metrics
                .acks_pending
                .set(self.unacked.queue.len() as i64);
            let done = self.done_tx.clone();
            self.events
                .push(SourceEvent::Checkpoint(Receipt::new(move |durable| {
                    let _ = done.send((seq, durable));
                })));
        }
        if self.events.len() >= FLUSH_AT {
            return self.flush().await;
        }
        ControlFlow::Continue(())
    }

    /// Send the events parsed so far to the core, in order. Break when the core is gone.
    async fn flush(&mut self) -> ControlFlow<()> {
        // Room for many events at once: one wait for the channel, not one per event.
        while !self.events.is_empty() {
            let n = self.events.len().min(self.tx.max_capacity());
            let Ok(permits) = self.tx.reserve_many(n).await else {
                return ControlFlow::Break(());
            };
            for (permit, e) in permits.zip(self.events.drain(..n)) {
                permit.send(e);
            }
        }
        ControlFlow::Continue(())
    }

    /// A message on the gateway's own topics.
    fn parse_native(&mut self, p: &Publish, now: i64) {
        match self.verified(p) {
            Ok(payload) => parse_message(
                &self.cfg.topic_prefix,
                &p.topic,
                &payload,
                now,
                self.limits,
                &mut self.events,
            ),
            Err((reason, detail)) => self.events.push(rejected(&p.topic, reason, detail, now)),
        }
    }

    /// A message on a mapping's topic: mapped record by record, then each reading held to
    /// its site's signing rule.
    fn map(&mut self, m: &crate::sources::mapping::Mapping, p: &Publish, now: i64) {
        if p.payload.len() > self.limits.max_payload_bytes {
            let detail = format!(
                "payload is {} bytes, the limit is {} (mqtt.max_payload_bytes)",
                p.payload.len(),
                self.limits.max_payload_bytes
            );
            let r = rejected(&p.topic, Reason::PayloadTooLarge, detail, now);
            self.events.push(r);
            return;
        }
        let (inner, signature) = match self.keys.is_empty() {
            true => (Cow::Borrowed(&p.payload[..]), None),
            false => self.keys.open(&p.payload),
        };
        let input = crate::sources::mapping::Input {
            payload: &inner,
            topic: Some(&p.topic),
            site: None,
            origin: Arc::from(crate::core::event::shorten(&p.topic, 320)),
            received_ms: now,
        };
        let first = self.events.len();
        m.apply(&input, &self.map_limits, &mut self.events);
        let mine = &mut self.events[first..];
        self.keys.check_readings(&inner, signature.as_deref(), mine);
        self.mapped.metrics.count(m.name(), mine);
    }

    /// The message to parse: for a signed site, the verified inside of its envelope (the
    /// gateway's own alarm board is not signed, and ignored by the parser anyway).
    fn verified<'p>(&self, p: &'p Publish) -> Result<Cow<'p, [u8]>, (Reason, String)> {
        let site = match parse_topic(&self.cfg.topic_prefix, &p.topic) {
            _ if self.keys.is_empty() => None,
            Some(
                Topic::Data { site, .. }
                | Topic::State { site, .. }
                | Topic::Batch { site }
                | Topic::AlarmAck { site, .. },
            ) => Some(site),
            _ => None,
        };
        match site {
            Some(site) => self.keys.check(site, &p.payload),
            None => Ok(Cow::Borrowed(&p.payload[..])),
        }
    }

    /// A failed connection or connection attempt: the link goes down (once) and the poller
    /// retries after its back-off.
    async fn on_connection_error(&mut self, e: ConnectionError) -> ControlFlow<()> {
        self.flush().await?;
        let now = self.clock.now_ms();
        self.new_epoch();
        if self.status.set_disconnected(now, e.to_string()) {
            self.metrics.connected.set(0);
            let down = SourceEvent::Link {
                link: self.link.clone(),
                up: false,
                at_ms: now,
            };
            if self.tx.send(down).await.is_err() {
                return ControlFlow::Break(());
            }
            if let Some(suppressed) = self.warn.allow("lost", now) {
                tracing::warn!(url = %self.cfg.url, error = %e, suppressed, "MQTT connection lost; reconnecting with back-off");
            }
        } else if let Some(suppressed) = self.warn.allow("connect", now) {
            tracing::warn!(url = %self.cfg.url, error = %e, suppressed, "MQTT broker unreachable; retrying");
        }
        self.status.count_reconnect();
        self.metrics.reconnects.inc();
        ControlFlow::Continue(())
    }

    /// The link is up (subscribed): tell the core once, and health. Break when the core is
    /// gone.
    async fn link_up(&mut self) -> ControlFlow<()> {
        self.flush().await?;
        let now = self.clock.now_ms();
        if !self.status.connected() {
            let up = SourceEvent::Link {
                link: self.link.clone(),
                up: true,
                at_ms: now,
            };
            if self.tx.send(up).await.is_err() {
                return ControlFlow::Break(());
            }
        }
        self.status.set_connected(now);
        self.metrics.connected.set(1);
        ControlFlow::Continue(())
    }

    /// At shutdown: the link's last state for the core, if it was up.
    async fn link_down_at_stop(&self) {
        if self.status.connected() {
            let _ = self
                .tx
                .send(SourceEvent::Link {
                    link: self.link.clone(),
                    up: false,
                    at_ms: self.clock.now_ms(),
                })
                .await;
        }
    }
}

/// Send PUBACKs in order; those of a connection that has since dropped are skipped (rumqttc
/// also discards the ones still in its channel at a disconnect): the broker delivers those
/// messages again.
async fn send_acks(
    client: AsyncClient,
    mut rx: mpsc::UnboundedReceiver<(u64, Publish)>,
    epoch: Arc<AtomicU64>,
) {
    while let Some((ep, p)) = rx.recv().await {
        if ep != epoch.load(Ordering::Relaxed) {
            continue;
        }
        if client.ack(&p).await.is_err() {
            return; // the event loop is gone: shutting down
        }
    }
}

/// Poll the event loop in a task of its own: `EventLoop::poll` must not be cancelled midway
/// (a packet being read or written would be lost), and the source waits on other things too.
/// After a connection error, wait the back-off before the next attempt (rumqttc itself
/// reconnects at once). A full `tx` stops the polling: the broker holds the rest.
async fn drive(
    mut eventloop: rumqttc::EventLoop,
    mut backoff: Backoff,
    tx: mpsc::Sender<Result<Event, ConnectionError>>,
) {
    loop {
        let ev = eventloop.poll().await;
        let failed = ev.is_err();
        if matches!(ev, Ok(Event::Incoming(Packet::ConnAck(_)))) {
            backoff.reset();
        }
        if tx.send(ev).await.is_err() {
            return;
        }
        if failed {
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }
}
