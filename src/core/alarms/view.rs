//! An alarm as operators, platforms and the journal see it: ids as strings, times in epoch
//! milliseconds and RFC 3339. The same shape is served by the API, published on MQTT and
//! stored as a journal row, so what one shows the others show.

use super::book::{AlarmEvent, AlarmRecord};
use super::lifecycle::Outcome;
use crate::core::inventory::Inventory;
use crate::model::rfc3339_ms;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventView {
    pub at_ms: i64,
    pub at: String,
    pub event: String,
    pub level: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
}

impl EventView {
    pub fn of(e: &AlarmEvent) -> EventView {
        EventView {
            at_ms: e.at_ms,
            at: rfc3339_ms(e.at_ms),
            event: e.kind.as_str().into(),
            level: e.level,
            value: e.value,
            by: e.by.clone(),
            note: e.note.clone(),
            via: e.via.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlarmView {
    pub id: u64,
    pub site: String,
    pub device: String,
    /// The device's kind (gas_combustible, methane, …).
    pub kind: String,
    /// value, rate, offline or fault.
    #[serde(rename = "type")]
    pub alarm_type: String,
    pub channel: Option<String>,
    pub scheme: String,
    pub level: u8,
    /// 一级/二级, or 蓝/黄/橙/红.
    pub level_name: String,
    /// active_unacked, active_acked, cleared_unacked, cleared_acked.
    pub state: String,
    pub raised_ms: i64,
    pub raised_at: String,
    pub deadline_ms: i64,
    pub deadline_at: String,
    pub value: Option<f64>,
    pub peak: Option<f64>,
    pub acknowledged_ms: Option<i64>,
    pub acknowledged_at: Option<String>,
    pub acknowledged_by: Option<String>,
    pub note: Option<String>,
    /// http or mqtt.
    pub acknowledged_via: Option<String>,
    pub cleared_ms: Option<i64>,
    pub cleared_at: Option<String>,
    /// Acknowledged − raised, seconds.
    pub response_s: Option<f64>,
    /// responded, late, missed or pending, as known when this view was made.
    pub outcome: String,
    /// The full history, oldest first (empty in lists).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<EventView>,
}

pub fn outcome_str(o: Outcome) -> &'static str {
    match o {
        Outcome::Responded => "responded",
        Outcome::Late => "late",
        Outcome::Missed => "missed",
        Outcome::Pending => "pending",
    }
}

pub fn state_str(s: super::lifecycle::AlarmState) -> &'static str {
    use super::lifecycle::AlarmState::*;
    match s {
        ActiveUnacked => "active_unacked",
        ActiveAcked => "active_acked",
        ClearedUnacked => "cleared_unacked",
        ClearedAcked => "cleared_acked",
    }
}

/// Outcome from the stored times alone (no record needed).
pub fn outcome_of(deadline_ms: i64, ack_ms: Option<i64>, now: i64) -> Outcome {
    match ack_ms {
        Some(a) if a <= deadline_ms => Outcome::Responded,
        Some(_) => Outcome::Late,
        None if now > deadline_ms => Outcome::Missed,
        None => Outcome::Pending,
    }
}

/// State from the stored times alone.
pub fn state_of(acked: bool, cleared: bool) -> &'static str {
    match (cleared, acked) {
        (false, false) => "active_unacked",
        (false, true) => "active_acked",
        (true, false) => "cleared_unacked",
        (true, true) => "cleared_acked",
    }
}

impl AlarmView {
    pub fn of(r: &AlarmRecord, inv: &Inventory, now: i64, with_events: bool) -> AlarmView {
        let d = &inv.devices[r.device as usize];
        let ack = r.alarm.ack.as_ref();
        AlarmView {
            id: r.id,
            site: inv.sites[r.site as usize].id.to_string(),
            device: d.id.to_string(),
            kind: d.kind.as_str().into(),
            alarm_type: r.kind.as_str().into(),
            channel: r.channel.as_deref().map(str::to_string),
            scheme: r.scheme.as_str().into(),
            level: r.level(),
            level_name: r.scheme.level_name(r.level()).into(),
            state: state_str(r.state()).into(),
            raised_ms: r.alarm.raised_ms,
            raised_at: rfc3339_ms(r.alarm.raised_ms),
            deadline_ms: r.deadline_ms,
            deadline_at: rfc3339_ms(r.deadline_ms),
            value: r.value,
            peak: r.peak,
            acknowledged_ms: ack.map(|a| a.at_ms),
            acknowledged_at: ack.map(|a| rfc3339_ms(a.at_ms)),
            acknowledged_by: ack.map(|a| a.by.clone()),
            note: ack.map(|a| a.note.clone()),
            acknowledged_via: ack.map(|a| a.via.clone()),
            cleared_ms: r.alarm.cleared_ms,
            cleared_at: r.alarm.cleared_ms.map(rfc3339_ms),
            response_s: ack.map(|a| (a.at_ms - r.alarm.raised_ms) as f64 / 1000.0),
            outcome: outcome_str(r.outcome(now)).into(),
            events: if with_events {
                r.events.iter().map(EventView::of).collect()
            } else {
                Vec::new()
            },
        }
    }
}
