//! `POST /api/v1/alarms/{id}/ack` in cluster mode: every instance must apply an
//! acknowledgement at the same point of the readings stream, so the API publishes it there
//! (as a platform's MQTT acknowledgement is) and answers once JetStream holds it and this
//! instance has applied it. See docs/scaling.md.

use super::{ApiError, Shared};
use crate::core::alarms::view::AlarmView;
use crate::core::event::{Origin, SourceEvent};
use crate::core::Receipt;
use std::sync::Arc;
use std::time::Duration;

/// How long the caller waits for NATS to take the acknowledgement; it stays queued after.
const STREAM_WITHIN: Duration = Duration::from_secs(10);
/// How long for this instance's core to apply it once JetStream has it.
const APPLIED_WITHIN: Duration = Duration::from_secs(10);

/// What the caller asked.
pub struct Asked {
    pub id: crate::core::alarms::AlarmId,
    pub site: Option<String>,
    pub by: String,
    pub note: String,
    pub via: String,
}

/// What became of it: the alarm as this instance shows it once applied, and whether this
/// request's acknowledgement is the one that stands. `None`: not in the live book (closed
/// long ago, or never), for the caller's journal lookup.
pub async fn acknowledge(s: &Arc<Shared>, a: Asked) -> Result<Option<(AlarmView, bool)>, ApiError> {
    let Some((site, acked)) = live(s, a.id) else {
        return Ok(None);
    };
    if let Some(asked) = a.site.as_deref().filter(|asked| *asked != site) {
        return Err(ApiError::NotFound(format!(
            "alarm {} belongs to site {site:?}, not {asked:?}; nothing was changed",
            a.id
        )));
    }
    if !acked {
        publish(s, &a, site).await?;
        applied(s, a.id).await?;
    }
    let core = s.core();
    let now = s.clock.now_ms();
    let Some(r) = core.alarms.get(a.id) else {
        return Ok(None);
    };
    let view = AlarmView::of(r, &core.inventory, now, true);
    let first = !acked
        && view.acknowledged_by.as_deref() == Some(a.by.as_str())
        && view.acknowledged_via.as_deref() == Some(a.via.as_str());
    Ok(Some((view, first)))
}

/// The alarm's site and whether it is acknowledged already, from the live book.
fn live(s: &Shared, id: crate::core::alarms::AlarmId) -> Option<(String, bool)> {
    let core = s.core();
    let r = core.alarms.get(id)?;
    let site = core.inventory.sites.get(r.site as usize)?.id.to_string();
    Some((site, r.alarm.ack.is_some()))
}

/// Into the stream, through this instance's relay; back once JetStream acknowledged it.
async fn publish(s: &Shared, a: &Asked, site: String) -> Result<(), ApiError> {
    let Some(tx) = &s.into_stream else {
        return Err(ApiError::Internal("no readings stream".into()));
    };
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<bool>();
    let done_tx = std::sync::Mutex::new(Some(done_tx));
    let receipt = Receipt::new(move |durable| {
        if let Some(t) = done_tx.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.send(durable);
        }
    });
    let ev = SourceEvent::Ack {
        site,
        alarm: a.id.to_string(),
        by: a.by.clone(),
        note: a.note.clone(),
        via: a.via.clone(),
        origin: Origin {
            topic: Arc::from(format!("api:/api/v1/alarms/{}/ack", a.id)),
            element: None,
        },
        received_ms: s.clock.now_ms(),
    };
    let stopping = || ApiError::Internal("the gateway is shutting down".into());
    tx.send(ev).await.map_err(|_| stopping())?;
    tx.send(SourceEvent::Checkpoint(receipt))
        .await
        .map_err(|_| stopping())?;
    match tokio::time::timeout(STREAM_WITHIN, done_rx).await {
        Ok(Ok(true)) => Ok(()),
        Ok(_) => Err(stopping()),
        Err(_) => Err(ApiError::Unavailable(format!(
            "NATS has not taken the acknowledgement of alarm {} within {} s; it stays queued and is applied when NATS does (see GET /api/v1/cluster)",
            a.id,
            STREAM_WITHIN.as_secs()
        ))),
    }
}

/// Until this instance's core has applied an acknowledgement of `id` (its own or another's
/// that came first in the stream).
async fn applied(s: &Shared, id: crate::core::alarms::AlarmId) -> Result<(), ApiError> {
    let deadline = tokio::time::Instant::now() + APPLIED_WITHIN;
    loop {
        if live(s, id).is_none_or(|(_, acked)| acked) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ApiError::Unavailable(format!(
                "the acknowledgement of alarm {id} is in the stream but not applied here within {} s; it will be",
                APPLIED_WITHIN.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
