//! HTTP push: park platforms that cannot publish MQTT POST their readings to the API's
//! listener (`POST /api/v1/ingest/{site}`, or `/api/v1/ingest/{site}/{mapping}` in their own
//! shape). The API authenticates and routes; this source parses, hands the request to the
//! core as one [`Message`], and answers only once the readings are committed: the same
//! guarantee as a QoS 1 PUBACK after commit.

pub mod config;
pub mod metrics;

use super::mqtt::payload::{parse_batch, Limits};
use super::mqtt::signature::{MissingKey, SigningKeys};
use crate::core::inventory::SiteConfig;
use crate::core::{Message, Origin, Receipt, Rejection, SourceEvent};
use crate::model::{Reason, Role};
use crate::telemetry::{Clock, Metrics};
use config::IngestSettings;
use metrics::IngestMetrics;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// What the API calls to push: built with the source, connected to the core when it starts.
pub struct HttpIngest {
    settings: IngestSettings,
    limits: Limits,
    keys: SigningKeys,
    mapped: super::Mapped,
    map_limits: super::mapping::Limits,
    /// Site → the platform identities (token names) that may push for it.
    sites: HashMap<String, Vec<String>>,
    link: Mutex<Option<Link>>,
    metrics: Arc<IngestMetrics>,
    clock: Clock,
}

struct Link {
    events: mpsc::Sender<SourceEvent>,
    hold: watch::Receiver<bool>,
}

/// One push request, as the API has it.
pub struct Push<'a> {
    pub site: &'a str,
    pub mapping: Option<&'a str>,
    pub body: &'a [u8],
    /// Who pushes (the token's name and role); `None` on an API without tokens.
    pub caller: Option<(&'a str, Role)>,
}

/// A committed request: how many readings were stored and which elements were refused.
#[derive(Debug)]
pub struct Pushed {
    pub accepted: usize,
    pub refused: Vec<Rejection>,
}

/// Why a request was not taken. Nothing of it was committed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("no site {0:?} is configured")]
    UnknownSite(String),
    #[error("no mapping {0:?} is configured (see [[mappings]] in docs/mappings.md)")]
    UnknownMapping(String),
    #[error("token {name:?} may push only for the sites that list it in `platforms`; site {site:?} does not")]
    NotYourSite { name: String, site: String },
    #[error("the gateway is holding new readings (the outbox is at its budget or the disk at its floor, see /healthz); retry later")]
    Holding,
    #[error("the gateway is starting or stopping; retry later")]
    Stopping,
    #[error("the readings could not be made durable; nothing is acknowledged, push again")]
    NotDurable,
    #[error("the readings were not committed within {0} s (ingest.commit_timeout_s); push again, a repeated reading is stored once")]
    Timeout(u64),
}

impl PushError {
    fn outcome(&self) -> &'static str {
        match self {
            PushError::UnknownSite(_) => "unknown_site",
            PushError::UnknownMapping(_) => "unknown_mapping",
            PushError::NotYourSite { .. } => "forbidden",
            PushError::Holding => "holding",
            PushError::Stopping => "stopping",
            PushError::NotDurable => "not_durable",
            PushError::Timeout(_) => "timeout",
        }
    }
}

impl HttpIngest {
    /// From `[ingest]`, the MQTT bounds on ids and channels (the same rules for both), and
    /// the sites' platforms and signing keys.
    pub fn build(
        settings: &IngestSettings,
        mqtt: &super::mqtt::config::MqttSettings,
        sites: &[SiteConfig],
        mapped: &super::Mapped,
        gateway_metrics: &Metrics,
        clock: Clock,
    ) -> Result<HttpIngest, MissingKey> {
        let limits = Limits {
            max_payload_bytes: settings.max_body_bytes,
            max_batch_len: settings.max_records,
            max_channels: mqtt.max_channels,
            max_id_bytes: mqtt.max_id_bytes,
            max_channel_name_bytes: mqtt.max_channel_name_bytes,
            max_note_bytes: mqtt.max_note_bytes,
        };
        Ok(HttpIngest {
            settings: settings.clone(),
            limits,
            keys: SigningKeys::from_config(sites)?,
            mapped: mapped.clone(),
            map_limits: super::mapping::Limits {
                max_records: settings.max_records,
                max_channels: mqtt.max_channels,
                max_id_bytes: mqtt.max_id_bytes,
                max_channel_name_bytes: mqtt.max_channel_name_bytes,
            },
            sites: sites
                .iter()
                .map(|s| (s.id.clone(), s.platforms.clone()))
                .collect(),
            link: Mutex::new(None),
            metrics: IngestMetrics::register(gateway_metrics),
            clock,
        })
    }

    pub fn settings(&self) -> &IngestSettings {
        &self.settings
    }

    /// Parse the request, hand it to the core and wait for its commit.
    pub async fn push(&self, p: Push<'_>) -> Result<Pushed, PushError> {
        let res = self.try_push(p).await;
        match &res {
            Ok(r) if r.refused.is_empty() => self.metrics.outcome("committed"),
            Ok(r) if r.accepted > 0 => self.metrics.outcome("partial"),
            Ok(_) => self.metrics.outcome("refused"),
            Err(e) => self.metrics.outcome(e.outcome()),
        }
        if let Ok(r) = &res {
            self.metrics.readings.inc_by(r.accepted as u64);
        }
        res
    }

    async fn try_push(&self, p: Push<'_>) -> Result<Pushed, PushError> {
        self.may_push(&p)?;
        let (events, hold) = self.connected()?;
        if *hold.borrow() {
            return Err(PushError::Holding);
        }
        self.metrics.messages_received.inc();
        let parsed = self.parse(&p)?;
        let elements = parsed.len();
        let refused = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = oneshot::channel();
        let tx = Mutex::new(Some(tx));
        let receipt = Receipt::new(move |durable| {
            if let Some(tx) = tx.lock().ok().and_then(|mut t| t.take()) {
                let _ = tx.send(durable);
            }
        });
        let msg = Message {
            events: parsed,
            refused: refused.clone(),
            receipt,
        };
        // The bound covers the wait for room in the core's channel too: a core that falls
        // behind answers 503, it does not hold connections open without end.
        let wait = Duration::from_secs(self.settings.commit_timeout_s);
        let committed = tokio::time::timeout(wait, async {
            if events
                .send(SourceEvent::Message(Box::new(msg)))
                .await
                .is_err()
            {
                return Err(PushError::Stopping);
            }
            match rx.await {
                Ok(true) => Ok(()),
                _ => Err(PushError::NotDurable),
            }
        });
        match committed.await {
            Ok(r) => r?,
            Err(_) => return Err(PushError::Timeout(self.settings.commit_timeout_s)),
        }
        let refused = std::mem::take(&mut *refused.lock().unwrap_or_else(|p| p.into_inner()));
        Ok(Pushed {
            accepted: elements.saturating_sub(refused.len()),
            refused,
        })
    }

    /// The site exists, and a platform token is one of its platforms.
    fn may_push(&self, p: &Push<'_>) -> Result<(), PushError> {
        let Some(platforms) = self.sites.get(p.site) else {
            return Err(PushError::UnknownSite(p.site.to_string()));
        };
        match p.caller {
            Some((name, Role::Platform)) if !platforms.iter().any(|x| x == name) => {
                Err(PushError::NotYourSite {
                    name: name.to_string(),
                    site: p.site.to_string(),
                })
            }
            _ => Ok(()),
        }
    }

    fn connected(&self) -> Result<(mpsc::Sender<SourceEvent>, watch::Receiver<bool>), PushError> {
        let link = self.link.lock().unwrap_or_else(|p| p.into_inner());
        link.as_ref()
            .map(|l| (l.events.clone(), l.hold.clone()))
            .ok_or(PushError::Stopping)
    }

    /// The request's events: one per element, readings or refusals.
    fn parse(&self, p: &Push<'_>) -> Result<Vec<SourceEvent>, PushError> {
        let received_ms = self.clock.now_ms();
        let origin: Arc<str> = match p.mapping {
            None => format!("POST /api/v1/ingest/{}", p.site).into(),
            Some(m) => format!("POST /api/v1/ingest/{}/{m}", p.site).into(),
        };
        let mapping = match p.mapping {
            Some(name) => Some(
                self.mapped
                    .mappings
                    .get(name)
                    .ok_or_else(|| PushError::UnknownMapping(name.to_string()))?,
            ),
            None => None,
        };
        let mut out = Vec::new();
        let body = match self.keys.check(p.site, p.body) {
            Ok(body) => body,
            Err((reason, detail)) => {
                out.push(whole(reason, detail, origin, received_ms));
                return Ok(out);
            }
        };
        let Some(m) = mapping else {
            parse_batch(p.site, &body, origin, received_ms, self.limits, &mut out);
            return Ok(out);
        };
        let input = super::mapping::Input {
            payload: &body,
            topic: None,
            site: Some(p.site),
            origin,
            received_ms,
        };
        m.apply(&input, &self.map_limits, &mut out);
        only_for(p.site, &mut out);
        self.mapped.metrics.count(m.name(), &out);
        Ok(out)
    }
}

/// A push lands readings only for the site its URL names (the one its token was checked
/// for): a mapped record naming another site is refused.
fn only_for(site: &str, events: &mut [SourceEvent]) {
    for ev in events.iter_mut() {
        let SourceEvent::Reading {
            reading, origin, ..
        } = ev
        else {
            continue;
        };
        if reading.site != site {
            let detail = format!(
                "the record names site {:?}, but was pushed to {}; a push stores readings only for the site in its URL",
                crate::core::event::shorten(&reading.site, 64),
                origin.topic
            );
            ev.refuse(Reason::WrongSite, detail);
        }
    }
}

fn whole(reason: Reason, detail: String, topic: Arc<str>, received_ms: i64) -> SourceEvent {
    SourceEvent::Rejected(Rejection {
        reason,
        origin: Origin {
            topic,
            element: None,
        },
        detail,
        received_ms,
    })
}

/// The source the registry starts: it connects the [`HttpIngest`] the API holds to the core
/// and lets go of the core's channel at shutdown.
pub struct HttpSource {
    ingest: Arc<HttpIngest>,
}

impl HttpSource {
    pub fn new(ingest: Arc<HttpIngest>) -> HttpSource {
        HttpSource { ingest }
    }
}

impl super::Source for HttpSource {
    fn name(&self) -> &'static str {
        "http"
    }

    fn spawn(self: Box<Self>, cx: &super::SourceContext) -> Vec<tokio::task::JoinHandle<()>> {
        *self.ingest.link.lock().unwrap_or_else(|p| p.into_inner()) = Some(Link {
            events: cx.events.clone(),
            hold: cx.hold.clone(),
        });
        let mut stop = cx.shutdown.subscribe();
        let ingest = self.ingest;
        vec![tokio::spawn(async move {
            let _ = stop.recv().await;
            ingest.link.lock().unwrap_or_else(|p| p.into_inner()).take();
        })]
    }
}
