//! Topic and payload parsing for the MQTT contract. Pure: no I/O, no inventory.
//!
//! Topics under the prefix:
//! - `{site}/{device}/data`: one reading `{"ts", "values", "status"}`
//! - `{site}/batch`: a JSON array of `{"device", "ts", "values", "status"}`
//! - `{site}/{device}/state`: `online` / `offline`
//! - `{site}/alarms/{id}/ack`: `{"by", "note"}`, a platform acknowledging an alarm
//! - `{site}/alarms/{id}`: the gateway's own retained alarm states, ignored on the way in

use crate::core::{Origin, RawReading, ReadingStatus, Rejection, SourceEvent};
use crate::model::Reason;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// Limits the parser enforces before anything reaches the core.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_payload_bytes: usize,
    pub max_batch_len: usize,
    pub max_channels: usize,
    /// Topic levels (site, device, alarm id) and an acknowledgement's `by`.
    pub max_id_bytes: usize,
    pub max_channel_name_bytes: usize,
    /// An acknowledgement's `note`.
    pub max_note_bytes: usize,
}

impl Limits {
    /// The defaults of `[mqtt]`.
    pub const DEFAULT: Limits = Limits {
        max_payload_bytes: 256 * 1024,
        max_batch_len: 10_000,
        max_channels: 64,
        max_id_bytes: MAX_ID_LEN,
        max_channel_name_bytes: MAX_CHANNEL_LEN,
        max_note_bytes: MAX_ACK_NOTE,
    };
}

/// Ids are at most this long (the configuration's rule): a longer topic level cannot name a
/// site or device, and is not echoed whole into logs.
pub const MAX_ID_LEN: usize = 128;
// (The defaults below are `[mqtt]`'s; `Limits` carries the configured values.)
/// Channel names become store field keys.
pub const MAX_CHANNEL_LEN: usize = 64;

pub use crate::core::event::shorten;

#[derive(Debug, PartialEq, Eq)]
pub enum Topic<'a> {
    Data {
        site: &'a str,
        device: &'a str,
    },
    State {
        site: &'a str,
        device: &'a str,
    },
    Batch {
        site: &'a str,
    },
    AlarmAck {
        site: &'a str,
        alarm: &'a str,
    },
    /// The gateway's own alarm board, echoed back by the `#` subscription.
    AlarmState,
}

/// Longest `by` and `note` of an acknowledgement.
pub const MAX_ACK_BY: usize = 128;
pub const MAX_ACK_NOTE: usize = 2_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AckMsg {
    by: String,
    #[serde(default)]
    note: String,
}

pub fn parse_topic<'a>(prefix: &str, topic: &'a str) -> Option<Topic<'a>> {
    let rest = topic.strip_prefix(prefix)?.strip_prefix('/')?;
    let mut parts = rest.split('/');
    let a = parts.next()?;
    let b = parts.next()?;
    let c = parts.next();
    let d = parts.next();
    // Alarm ids are numbers, so `{site}/alarms/{id}` never collides with a device named
    // `alarms` (whose topics end in /data or /state).
    if b == "alarms" && c.is_some_and(|c| !c.is_empty() && c.bytes().all(|x| x.is_ascii_digit())) {
        return match (d, parts.next()) {
            (None, _) => Some(Topic::AlarmState),
            (Some("ack"), None) if !a.is_empty() => Some(Topic::AlarmAck {
                site: a,
                alarm: c.unwrap_or_default(),
            }),
            _ => None,
        };
    }
    if d.is_some() || a.is_empty() || b.is_empty() {
        return None;
    }
    match (b, c) {
        ("batch", None) => Some(Topic::Batch { site: a }),
        (device, Some("data")) => Some(Topic::Data { site: a, device }),
        (device, Some("state")) => Some(Topic::State { site: a, device }),
        _ => None,
    }
}

/// A JSON number as f64, or a note of what else it was.
struct Num(Result<f64, &'static str>);

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Num;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_f64<E>(self, v: f64) -> Result<Num, E> {
                Ok(Num(Ok(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Num, E> {
                Ok(Num(Ok(v as f64)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Num, E> {
                Ok(Num(Ok(v as f64)))
            }
            fn visit_str<E>(self, _: &str) -> Result<Num, E> {
                Ok(Num(Err("a string")))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Num, E> {
                Ok(Num(Err("a boolean")))
            }
            fn visit_unit<E>(self) -> Result<Num, E> {
                Ok(Num(Err("null")))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<Num, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Num(Err("an array")))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Num, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Num(Err("an object")))
            }
        }
        d.deserialize_any(V)
    }
}

/// `values`: channel → number; the first non-number is remembered, not fatal to parsing.
#[derive(Default)]
struct Values {
    items: crate::core::event::Values,
    bad: Option<(String, &'static str)>,
}

impl<'de> Deserialize<'de> for Values {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Values;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of channel: number")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Values, A::Error> {
                let mut out = Values::default();
                while let Some(k) = a.next_key::<crate::core::event::Channel>()? {
                    match a.next_value::<Num>()?.0 {
                        Ok(v) => out.items.push((k, v)),
                        Err(what) => {
                            out.bad.get_or_insert((k.to_string(), what));
                        }
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_map(V)
    }
}

/// `ts`: epoch milliseconds or an RFC 3339 string.
enum Ts {
    Ms(i64),
    Bad(String),
}

impl<'de> Deserialize<'de> for Ts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ts;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("epoch milliseconds or an RFC 3339 string")
            }
            fn visit_i64<E>(self, v: i64) -> Result<Ts, E> {
                Ok(Ts::Ms(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Ts, E> {
                Ok(i64::try_from(v)
                    .map_or_else(|_| Ts::Bad(format!("{v} is out of range")), Ts::Ms))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Ts, E> {
                if v.is_finite() && v.abs() < 9.0e15 {
                    Ok(Ts::Ms(v as i64))
                } else {
                    Ok(Ts::Bad(format!("{v} is out of range")))
                }
            }
            fn visit_str<E>(self, s: &str) -> Result<Ts, E> {
                Ok(parse_rfc3339_ms(s)
                    .map_or_else(|| Ts::Bad(format!("{s:?} is not an RFC 3339 time")), Ts::Ms))
            }
        }
        d.deserialize_any(V)
    }
}

pub use crate::model::parse_rfc3339_ms;

/// One reading; `device` is used in batches (on a data topic the topic names the device).
/// Strings are borrowed from the payload where they have no escapes (no copy per reading).
#[derive(Deserialize)]
struct DataMsg<'a> {
    #[serde(default, borrow)]
    device: Option<Text<'a>>,
    #[serde(default)]
    ts: Option<Ts>,
    #[serde(default)]
    values: Option<Values>,
    #[serde(default, borrow)]
    status: Option<Text<'a>>,
}

/// A string field, borrowed unless it has escapes (serde borrows a `Cow` only directly, not
/// inside an `Option`, hence the newtype).
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

/// Parse one MQTT message into events appended to `out`.
pub fn parse_message(
    prefix: &str,
    topic: &str,
    payload: &[u8],
    received_ms: i64,
    limits: Limits,
    out: &mut Vec<SourceEvent>,
) {
    let origin = Origin {
        topic: origin_topic(topic),
        element: None,
    };
    let parsed = match route(prefix, topic, payload.len(), limits) {
        Ok(parsed) => parsed,
        Err((reason, detail)) => {
            out.push(rejected(reason, detail, origin, received_ms));
            return;
        }
    };
    match parsed {
        Topic::AlarmState => {}
        Topic::AlarmAck { site, alarm } => {
            out.push(ack_event(site, alarm, payload, origin, received_ms, limits))
        }
        Topic::Data { site, device } => {
            out.push(match serde_json::from_slice::<DataMsg>(payload) {
                Ok(msg) => reading_event(site, device, msg, origin, received_ms, limits),
                Err(e) => rejected(Reason::MalformedJson, e.to_string(), origin, received_ms),
            })
        }
        Topic::State { site, device } => {
            out.extend(state_event(site, device, payload, origin, received_ms))
        }
        Topic::Batch { site } => batch_events(site, payload, origin, received_ms, limits, out),
    }
}

/// Topics are named in rejections and logs; a hostile one is kept to a readable length.
fn origin_topic(topic: &str) -> Arc<str> {
    if topic.len() > 2 * MAX_ID_LEN + 64 {
        Arc::from(shorten(topic, 2 * MAX_ID_LEN))
    } else {
        Arc::from(topic)
    }
}

fn rejected(reason: Reason, detail: String, origin: Origin, received_ms: i64) -> SourceEvent {
    SourceEvent::Rejected(Rejection {
        reason,
        origin,
        detail,
        received_ms,
    })
}

/// What the message is, from its topic, or why it is refused before its payload is read: too
/// large, a topic level too long to be an id, or a topic outside the contract.
fn route<'a>(
    prefix: &str,
    topic: &'a str,
    payload_len: usize,
    limits: Limits,
) -> Result<Topic<'a>, (Reason, String)> {
    if payload_len > limits.max_payload_bytes {
        return Err((
            Reason::PayloadTooLarge,
            format!(
                "payload is {} bytes, the limit is {} (mqtt.max_payload_bytes)",
                payload_len, limits.max_payload_bytes
            ),
        ));
    }
    if let Some(level) = topic
        .strip_prefix(prefix)
        .into_iter()
        .flat_map(|r| r.split('/'))
        .find(|l| l.len() > limits.max_id_bytes)
    {
        return Err((
            Reason::BadTopic,
            format!(
                "a topic level is {} bytes ({:?}); ids are at most {} (mqtt.max_id_bytes)",
                level.len(),
                shorten(level, 32),
                limits.max_id_bytes
            ),
        ));
    }
    parse_topic(prefix, topic).ok_or_else(|| {
        (
            Reason::BadTopic,
            format!(
                "expected {prefix}/{{site}}/{{device}}/data, …/state, {prefix}/{{site}}/batch or {prefix}/{{site}}/alarms/{{id}}/ack"
            ),
        )
    })
}

/// `{site}/alarms/{id}/ack`: a platform acknowledging an alarm.
fn ack_event(
    site: &str,
    alarm: &str,
    payload: &[u8],
    origin: Origin,
    received_ms: i64,
    limits: Limits,
) -> SourceEvent {
    match serde_json::from_slice::<AckMsg>(payload) {
        Ok(m) if m.by.trim().is_empty() || m.by.len() > limits.max_id_bytes => rejected(
            Reason::InvalidValue,
            format!(
                "\"by\" must name who acknowledged, 1 to {} bytes (mqtt.max_id_bytes)",
                limits.max_id_bytes
            ),
            origin,
            received_ms,
        ),
        Ok(m) if m.note.len() > limits.max_note_bytes => rejected(
            Reason::InvalidValue,
            format!(
                "\"note\" is {} bytes, the limit is {} (mqtt.max_note_bytes)",
                m.note.len(),
                limits.max_note_bytes
            ),
            origin,
            received_ms,
        ),
        Ok(m) => SourceEvent::Ack {
            site: site.to_string(),
            alarm: alarm.to_string(),
            by: m.by,
            note: m.note,
            via: "mqtt".into(),
            origin,
            received_ms,
        },
        Err(e) => rejected(
            Reason::MalformedJson,
            format!("an acknowledgement is {{\"by\": \"…\", \"note\": \"…\"}}: {e}"),
            origin,
            received_ms,
        ),
    }
}

/// `{site}/{device}/state`: `online` or `offline` (bare or as a JSON string); none for an
/// empty payload, a cleared retained message.
fn state_event(
    site: &str,
    device: &str,
    payload: &[u8],
    origin: Origin,
    received_ms: i64,
) -> Option<SourceEvent> {
    let text = std::str::from_utf8(payload).unwrap_or("").trim();
    let text = text.trim_matches('"');
    let online = if text.eq_ignore_ascii_case("online") {
        true
    } else if text.eq_ignore_ascii_case("offline") {
        false
    } else if payload.is_empty() {
        return None;
    } else {
        return Some(rejected(
            Reason::InvalidValue,
            "a state payload must be `online` or `offline`".into(),
            origin,
            received_ms,
        ));
    };
    Some(SourceEvent::DeviceState {
        site: site.to_string(),
        device: device.to_string(),
        online,
        origin,
        received_ms,
    })
}

/// The batch format (`{site}/batch`, and the body of an HTTP push without a mapping): a JSON
/// array of `{"device", "ts", "values", "status"}`, events appended to `out`.
pub fn parse_batch(
    site: &str,
    payload: &[u8],
    origin: Arc<str>,
    received_ms: i64,
    limits: Limits,
    out: &mut Vec<SourceEvent>,
) {
    let origin = Origin {
        topic: origin,
        element: None,
    };
    batch_events(site, payload, origin, received_ms, limits, out)
}

/// `{site}/batch`: a JSON array of readings, each naming its device; one event per element
/// (its index in the origin), or one rejection for the whole batch.
fn batch_events(
    site: &str,
    payload: &[u8],
    origin: Origin,
    received_ms: i64,
    limits: Limits,
    out: &mut Vec<SourceEvent>,
) {
    // The common case, every element good, in one pass straight into `out`; otherwise what
    // it pushed is taken back and each element is parsed on its own, so that one bad element
    // costs only itself.
    let start = out.len();
    let mut de = serde_json::Deserializer::from_slice(payload);
    let elements = Elements {
        out: &mut *out,
        site,
        topic: &origin.topic,
        received_ms,
        limits,
    };
    if de::DeserializeSeed::deserialize(elements, &mut de)
        .and_then(|()| de.end())
        .is_ok()
    {
        return;
    }
    out.truncate(start);
    // Elements stay borrowed from the payload until each is parsed on its own.
    let items: Vec<&RawValue> = match serde_json::from_slice(payload) {
        Ok(v) => v,
        Err(e) => {
            let detail = format!("a batch must be a JSON array of readings: {e}");
            out.push(rejected(Reason::MalformedJson, detail, origin, received_ms));
            return;
        }
    };
    if items.len() > limits.max_batch_len {
        let detail = format!(
            "batch has {} elements, the limit is {} (mqtt.max_batch_len)",
            items.len(),
            limits.max_batch_len
        );
        out.push(rejected(Reason::BatchTooLarge, detail, origin, received_ms));
        return;
    }
    for (i, raw) in items.into_iter().enumerate() {
        let origin = Origin {
            topic: origin.topic.clone(),
            element: Some(i as u32),
        };
        out.push(batch_element(site, raw, origin, received_ms, limits));
    }
}

/// A batch's elements as events pushed to `out` as the array is read (no vector of parsed
/// elements between); an error at the first element that does not parse, or past
/// `max_batch_len` elements.
struct Elements<'o, 'c> {
    out: &'o mut Vec<SourceEvent>,
    site: &'c str,
    topic: &'c Arc<str>,
    received_ms: i64,
    limits: Limits,
}

impl<'de> de::DeserializeSeed<'de> for Elements<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Elements<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of readings")
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0u32;
        while let Some(msg) = seq.next_element::<DataMsg<'de>>()? {
            if i as usize >= self.limits.max_batch_len {
                return Err(de::Error::custom("too many elements"));
            }
            let origin = Origin {
                topic: self.topic.clone(),
                element: Some(i),
            };
            let ev = element_event(self.site, msg, origin, self.received_ms, self.limits);
            self.out.push(ev);
            i += 1;
        }
        Ok(())
    }
}

fn batch_element(
    site: &str,
    raw: &RawValue,
    origin: Origin,
    received_ms: i64,
    limits: Limits,
) -> SourceEvent {
    match serde_json::from_str::<DataMsg>(raw.get()) {
        Ok(msg) => element_event(site, msg, origin, received_ms, limits),
        Err(e) => rejected(Reason::MalformedJson, e.to_string(), origin, received_ms),
    }
}

fn element_event(
    site: &str,
    mut msg: DataMsg<'_>,
    origin: Origin,
    received_ms: i64,
    limits: Limits,
) -> SourceEvent {
    match msg.device.take() {
        Some(Text(device)) => reading_event(site, &device, msg, origin, received_ms, limits),
        None => rejected(
            Reason::MalformedJson,
            "batch element has no \"device\"".into(),
            origin,
            received_ms,
        ),
    }
}

fn reading_event(
    site: &str,
    device: &str,
    msg: DataMsg<'_>,
    origin: Origin,
    received_ms: i64,
    limits: Limits,
) -> SourceEvent {
    let reject = |reason, detail| {
        SourceEvent::Rejected(Rejection {
            reason,
            origin: origin.clone(),
            detail,
            received_ms,
        })
    };
    let values = msg.values.unwrap_or_default();
    let channels = values.items.len() + values.bad.is_some() as usize;
    if channels > limits.max_channels {
        return reject(
            Reason::TooManyChannels,
            format!(
                "the reading has {channels} channels, the limit is {} (mqtt.max_channels)",
                limits.max_channels
            ),
        );
    }
    if let Some((ch, _)) = values
        .items
        .iter()
        .find(|(c, _)| c.is_empty() || c.len() > limits.max_channel_name_bytes)
    {
        return reject(
            Reason::InvalidValue,
            format!(
                "channel name {:?} is {} bytes; channel names are 1 to {} bytes (mqtt.max_channel_name_bytes)",
                shorten(ch, 32),
                ch.len(),
                limits.max_channel_name_bytes
            ),
        );
    }
    if let Some((ch, what)) = values.bad {
        return reject(
            Reason::InvalidValue,
            format!("channel {:?} is {what}, not a number", shorten(&ch, 32)),
        );
    }
    let ts_ms = match msg.ts {
        None => None,
        Some(Ts::Ms(v)) => Some(v),
        Some(Ts::Bad(why)) => return reject(Reason::BadTimestamp, format!("ts: {why}")),
    };
    let status = match msg.status.as_ref().map(|t| &*t.0) {
        None | Some("normal") => ReadingStatus::Normal,
        Some("fault") => ReadingStatus::Fault,
        Some("maintenance") => ReadingStatus::Maintenance,
        Some(other) => {
            return reject(
                Reason::InvalidValue,
                format!("status {other:?} is not normal, fault or maintenance"),
            )
        }
    };
    SourceEvent::Reading {
        reading: RawReading {
            site: site.into(),
            device: device.into(),
            ts_ms,
            values: values.items,
            status,
            cause: None,
        },
        origin,
        received_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limits = Limits {
        max_payload_bytes: 1024,
        max_batch_len: 3,
        max_channels: 4,
        ..Limits::DEFAULT
    };

    fn parse(topic: &str, payload: &str) -> Vec<SourceEvent> {
        let mut out = vec![];
        parse_message("p/v1", topic, payload.as_bytes(), 1_000, L, &mut out);
        out
    }

    fn reason(ev: &SourceEvent) -> Option<Reason> {
        match ev {
            SourceEvent::Rejected(r) => Some(r.reason),
            _ => None,
        }
    }

    #[test]
    fn alarm_topics_acks_and_the_boards_own_echo() {
        // The gateway's retained alarm states come back through `#`: ignored, not rejected.
        assert!(parse("p/v1/s/alarms/12", r#"{"state":"active_unacked"}"#).is_empty());
        assert!(parse("p/v1/s/alarms/12", "").is_empty());
        let ack = parse("p/v1/s/alarms/12/ack", r#"{"by":"platform","note":"ok"}"#);
        assert!(
            matches!(&ack[..], [SourceEvent::Ack { site, alarm, by, note, .. }]
                if site == "s" && alarm == "12" && by == "platform" && note == "ok"),
            "{ack:?}"
        );
        // A device may be called `alarms`: its data topic is still a reading.
        assert!(matches!(
            parse("p/v1/s/alarms/data", r#"{"values":{"v":1}}"#)[..],
            [SourceEvent::Reading { .. }]
        ));
        for (payload, want) in [
            ("not json", Reason::MalformedJson),
            (r#"{"note":"no by"}"#, Reason::MalformedJson),
            (r#"{"by":"x","extra":1}"#, Reason::MalformedJson),
            (r#"{"by":"  "}"#, Reason::InvalidValue),
        ] {
            let got = parse("p/v1/s/alarms/12/ack", payload);
            assert_eq!(reason(&got[0]), Some(want), "{payload}");
        }
        let long = format!(r#"{{"by":"{}"}}"#, "x".repeat(MAX_ACK_BY + 1));
        assert_eq!(
            reason(&parse("p/v1/s/alarms/12/ack", &long)[0]),
            Some(Reason::InvalidValue)
        );
        assert_eq!(
            reason(&parse("p/v1/s/alarms/12/ack/more", "{}")[0]),
            Some(Reason::BadTopic)
        );
    }

    #[test]
    fn topics() {
        assert_eq!(
            parse_topic("p/v1", "p/v1/s/d/data"),
            Some(Topic::Data {
                site: "s",
                device: "d"
            })
        );
        assert_eq!(
            parse_topic("p/v1", "p/v1/s/batch"),
            Some(Topic::Batch { site: "s" })
        );
        assert_eq!(
            parse_topic("p/v1", "p/v1/s/d/state"),
            Some(Topic::State {
                site: "s",
                device: "d"
            })
        );
        for bad in [
            "p/v1/s",
            "p/v1/s/d/x",
            "p/v1/s/d/data/x",
            "q/v1/s/d/data",
            "p/v1//d/data",
            "p/v1x/s/d/data",
        ] {
            assert_eq!(parse_topic("p/v1", bad), None, "{bad}");
        }
    }

    #[test]
    fn reading_with_rfc3339_and_epoch_ts() {
        let ev = parse(
            "p/v1/s/d/data",
            r#"{"ts":"2026-01-01T00:00:00+08:00","values":{"lel":12.5,"t":3},"status":"fault"}"#,
        );
        let SourceEvent::Reading { reading, .. } = &ev[0] else {
            panic!("{ev:?}")
        };
        assert_eq!(reading.ts_ms, Some(1_767_196_800_000));
        assert_eq!(
            reading.values,
            vec![("lel".into(), 12.5), ("t".into(), 3.0)]
        );
        assert_eq!(reading.status, ReadingStatus::Fault);
        let ev = parse("p/v1/s/d/data", r#"{"ts":1767196800000,"values":{"x":1}}"#);
        let SourceEvent::Reading { reading, .. } = &ev[0] else {
            panic!()
        };
        assert_eq!(reading.ts_ms, Some(1_767_196_800_000));
        let ev = parse("p/v1/s/d/data", r#"{"values":{"x":1}}"#);
        let SourceEvent::Reading { reading, .. } = &ev[0] else {
            panic!()
        };
        assert_eq!(reading.ts_ms, None);
    }

    #[test]
    fn bad_inputs_have_reasons() {
        assert_eq!(
            reason(&parse("p/v1/s/d/data", "{nope")[0]),
            Some(Reason::MalformedJson)
        );
        assert_eq!(
            reason(&parse("p/v1/s/d/data", r#"{"values":{"x":"1"}}"#)[0]),
            Some(Reason::InvalidValue)
        );
        assert_eq!(
            reason(&parse("p/v1/s/d/data", r#"{"values":{"x":null}}"#)[0]),
            Some(Reason::InvalidValue)
        );
        assert_eq!(
            reason(&parse("p/v1/s/d/data", r#"{"values":{"x":1e999}}"#)[0]),
            Some(Reason::MalformedJson)
        );
        assert_eq!(
            reason(&parse("p/v1/s/d/data", r#"{"ts":"yesterday","values":{"x":1}}"#)[0]),
            Some(Reason::BadTimestamp)
        );
        assert_eq!(
            reason(&parse("p/v1/s/d/data", r#"{"values":{"x":1},"status":"broken"}"#)[0]),
            Some(Reason::InvalidValue)
        );
        assert_eq!(
            reason(&parse("p/v1/s/d/nope", "{}")[0]),
            Some(Reason::BadTopic)
        );
        assert_eq!(
            reason(&parse("p/v1/s/d/data", &"x".repeat(2000))[0]),
            Some(Reason::PayloadTooLarge)
        );
        assert_eq!(
            reason(&parse("p/v1/s/d/state", "maybe")[0]),
            Some(Reason::InvalidValue)
        );
        assert_eq!(
            reason(&parse("p/v1/s/batch", "[1,2,3,4]")[0]),
            Some(Reason::BatchTooLarge)
        );
        // Empty values parse; the core rejects them (it owns that rule).
        let ev = parse("p/v1/s/d/data", r#"{"values":{}}"#);
        assert!(
            matches!(&ev[0], SourceEvent::Reading { reading, .. } if reading.values.is_empty())
        );
    }

    #[test]
    fn one_bad_batch_element_rejects_only_itself() {
        let ev = parse(
            "p/v1/s/batch",
            r#"[{"device":"a","values":{"x":1}},{"values":{"x":2}},{"device":"c","values":{"x":"bad"}}]"#,
        );
        assert_eq!(ev.len(), 3);
        assert!(matches!(&ev[0], SourceEvent::Reading { reading, .. } if reading.device == "a"));
        assert_eq!(reason(&ev[1]), Some(Reason::MalformedJson));
        assert_eq!(reason(&ev[2]), Some(Reason::InvalidValue));
        let SourceEvent::Rejected(r) = &ev[2] else {
            panic!()
        };
        assert_eq!(r.origin.element, Some(2));
    }

    #[test]
    fn state_messages() {
        let ev = parse("p/v1/s/d/state", "offline");
        assert!(matches!(
            &ev[0],
            SourceEvent::DeviceState { online: false, .. }
        ));
        let ev = parse("p/v1/s/d/state", "\"online\"");
        assert!(matches!(
            &ev[0],
            SourceEvent::DeviceState { online: true, .. }
        ));
        assert!(parse("p/v1/s/d/state", "").is_empty());
    }
}
