//! Property tests of the parsers that take outside input: the MQTT payload parser, the
//! line-protocol encoder (which must write what the influxdb2 crate writes, or refuse), the
//! configuration loader, and the embedded broker guard's packet judge. They run in the normal suite; `PROPTEST_CASES=20000 cargo test
//! --test it fuzz_inputs` runs them longer. The `cargo fuzz` targets in fuzz/ take the same entry points;
//! see docs/fuzzing.md.

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use safegate::config::{load_str, DeviceKind};
use safegate::core::{ReadingStatus, Reason, SourceEvent};
use safegate::sinks::record::{LineEncoder, Record, Tags};
use safegate::sources::mqtt::payload::{parse_message, Limits, MAX_CHANNEL_LEN, MAX_ID_LEN};
use std::path::Path;
use std::sync::Arc;

/// `cases` unless PROPTEST_CASES says otherwise.
fn cases(n: u32) -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = n;
    }
    c.failure_persistence = None;
    c
}

const PREFIX: &str = "p/v1";

fn parse(topic: &str, payload: &[u8], limits: Limits) -> Vec<SourceEvent> {
    let mut out = Vec::new();
    parse_message(PREFIX, topic, payload, 1_767_225_600_000, limits, &mut out);
    out
}

/// Room for any generated message; batches and channel lists sometimes go past their limits.
const ROOMY: Limits = Limits {
    max_payload_bytes: 1 << 20,
    max_batch_len: 4,
    max_channels: 4,
    ..Limits::DEFAULT
};

/// Reason and detail of a rejection, `None` for any other event.
fn rejection(ev: &SourceEvent) -> Option<(Reason, &str)> {
    match ev {
        SourceEvent::Rejected(r) => Some((r.reason, r.detail.as_str())),
        _ => None,
    }
}

/// A JSON string literal.
fn js(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// A JSON object from already-encoded values, keys in the given order (duplicates kept).
fn obj(entries: &[(String, String)]) -> String {
    let body: Vec<String> = entries
        .iter()
        .map(|(k, v)| format!("{}:{v}", js(k)))
        .collect();
    format!("{{{}}}", body.join(","))
}

fn id() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._:-]{1,24}"
}

// ---------------------------------------------------------------------------------------------
// The payload parser on anything
// ---------------------------------------------------------------------------------------------

/// Topic segments that reach every branch of the topic parser, and some that reach none.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        id(),
        Just("data".to_string()),
        Just("state".to_string()),
        Just("batch".to_string()),
        Just("alarms".to_string()),
        Just("ack".to_string()),
        "[0-9]{1,6}",
        Just(String::new()),
        "\\PC{0,6}",
        // Past the longest id: refused as a bad topic whatever the shape.
        (120usize..140).prop_map(|n| "s".repeat(n)),
    ]
}

fn any_topic() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(segment(), 0..6).prop_map(|s| format!("{PREFIX}/{}", s.join("/"))),
        ".{0,40}",
        prop::collection::vec(segment(), 0..5).prop_map(|s| format!("p/v1x/{}", s.join("/"))),
    ]
}

/// Any JSON document, to get past the tokenizer into the parser's own checks.
fn any_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        "\\PC{0,12}".prop_map(serde_json::Value::from),
        prop_oneof![
            Just("ts"),
            Just("values"),
            Just("status"),
            Just("device"),
            Just("by"),
            Just("note"),
            Just("online"),
            Just("normal"),
        ]
        .prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("ts".to_string()),
                        Just("values".to_string()),
                        Just("status".to_string()),
                        Just("device".to_string()),
                        Just("by".to_string()),
                        Just("note".to_string()),
                        "\\PC{0,8}",
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|kv| serde_json::Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn any_payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        any_json().prop_map(|v| v.to_string().into_bytes()),
        // JSON with a byte changed, cut short or with garbage after it.
        (any_json(), any::<prop::sample::Index>(), any::<u8>()).prop_map(|(v, i, b)| {
            let mut p = v.to_string().into_bytes();
            let at = i.index(p.len());
            p[at] = b;
            p
        }),
        (any_json(), any::<prop::sample::Index>()).prop_map(|(v, i)| {
            let mut p = v.to_string().into_bytes();
            p.truncate(i.index(p.len() + 1));
            p
        }),
        prop_oneof![
            Just("NaN"),
            Just("Infinity"),
            Just("-Infinity"),
            Just("1e999"),
            Just("online"),
            Just("\"offline\""),
            Just(""),
            Just("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"),
        ]
        .prop_map(|s| s.as_bytes().to_vec()),
    ]
}

/// The topic an event names: the message's own, shortened when it is long.
fn assert_origin(named: &str, topic: &str) {
    if topic.len() <= 2 * MAX_ID_LEN + 64 {
        assert_eq!(named, topic);
    } else {
        let kept = named.strip_suffix('…').unwrap_or(named);
        assert!(
            topic.starts_with(kept) && named.len() < topic.len(),
            "{named:?}"
        );
    }
}

/// What holds for every message, whatever its topic and payload.
fn check_any_message(topic: &str, payload: &[u8], limits: Limits, out: &[SourceEvent]) {
    let bound = limits.max_batch_len.max(1);
    assert!(
        out.len() <= bound,
        "{} events for one message, the bound is {bound}: {out:?}",
        out.len()
    );
    if payload.len() > limits.max_payload_bytes {
        assert!(
            matches!(out, [ev] if rejection(ev).map(|r| r.0) == Some(Reason::PayloadTooLarge)),
            "an oversized payload is one payload_too_large: {out:?}"
        );
        return;
    }
    let long_level = topic
        .strip_prefix(PREFIX)
        .is_some_and(|r| r.split('/').any(|l| l.len() > MAX_ID_LEN));
    if long_level || safegate::sources::mqtt::payload::parse_topic(PREFIX, topic).is_none() {
        assert!(
            matches!(out, [ev] if rejection(ev).map(|r| r.0) == Some(Reason::BadTopic)),
            "a topic outside the contract is one bad_topic: {out:?}"
        );
        return;
    }
    for (i, ev) in out.iter().enumerate() {
        match ev {
            SourceEvent::Rejected(r) => {
                assert!(
                    !r.detail.trim().is_empty(),
                    "a rejection without detail: {r:?}"
                );
                assert_origin(&r.origin.topic, topic);
                assert!(r.origin.element.is_none_or(|e| e as usize == i), "{out:?}");
            }
            SourceEvent::Reading {
                reading, origin, ..
            } => {
                assert_origin(&origin.topic, topic);
                assert!(origin.element.is_none_or(|e| e as usize == i), "{out:?}");
                assert!(!reading.site.is_empty() && !reading.site.contains('/'));
                assert!(topic.starts_with(&format!("{PREFIX}/{}/", reading.site)));
                for (ch, v) in &reading.values {
                    assert!(v.is_finite(), "channel {ch:?} = {v} passed the parser");
                }
            }
            SourceEvent::DeviceState { site, device, .. } => {
                assert_eq!(out.len(), 1);
                assert_eq!(topic, format!("{PREFIX}/{site}/{device}/state"));
            }
            SourceEvent::Ack {
                site, alarm, by, ..
            } => {
                assert_eq!(out.len(), 1);
                assert_eq!(topic, format!("{PREFIX}/{site}/alarms/{alarm}/ack"));
                assert!(!by.trim().is_empty());
            }
            other => panic!("the MQTT parser made a {other:?}"),
        }
    }
}

proptest! {
    #![proptest_config(cases(1000))]

    /// Any topic, any bytes, any limits: no panic, at most `max_batch_len` events (one for a
    /// message rejected whole), every rejection explained.
    #[test]
    fn payload_parser_takes_any_input(
        topic in any_topic(),
        payload in any_payload(),
        max_payload_bytes in 0usize..256,
        max_batch_len in 1usize..5,
    ) {
        let limits = Limits { max_payload_bytes, max_batch_len, max_channels: 3, ..Limits::DEFAULT };
        let out = parse(&topic, &payload, limits);
        check_any_message(&topic, &payload, limits, &out);
    }

    /// Structure-aware: a well-formed topic of each kind with any JSON.
    #[test]
    fn payload_parser_takes_any_json_on_each_topic(
        site in id(),
        device in id(),
        alarm in "[0-9]{1,20}",
        kind in 0..5usize,
        payload in any_json(),
    ) {
        let topic = match kind {
            0 => format!("{PREFIX}/{site}/{device}/data"),
            1 => format!("{PREFIX}/{site}/batch"),
            2 => format!("{PREFIX}/{site}/{device}/state"),
            3 => format!("{PREFIX}/{site}/alarms/{alarm}/ack"),
            _ => format!("{PREFIX}/{site}/alarms/{alarm}"),
        };
        let payload = payload.to_string().into_bytes();
        let out = parse(&topic, &payload, ROOMY);
        check_any_message(&topic, &payload, ROOMY, &out);
        match kind {
            0 | 3 => prop_assert_eq!(out.len(), 1),
            4 => prop_assert!(out.is_empty(), "the board's own echo is ignored: {:?}", out),
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The payload parser on readings shaped like the contract, against a model of the contract
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum TsGen {
    Absent,
    Null,
    /// Epoch milliseconds (or, wrongly, seconds: the core rejects those, the parser takes them).
    Int(i64),
    /// Beyond i64.
    Huge(u64),
    Float(f64),
    /// An RFC 3339 text and the instant it names.
    Rfc(String, i64),
    Garbage(String),
}

impl TsGen {
    fn json(&self) -> Option<String> {
        match self {
            TsGen::Absent => None,
            TsGen::Null => Some("null".into()),
            TsGen::Int(v) => Some(v.to_string()),
            TsGen::Huge(v) => Some(v.to_string()),
            TsGen::Float(v) => Some(serde_json::to_string(v).unwrap()),
            TsGen::Rfc(s, _) | TsGen::Garbage(s) => Some(js(s)),
        }
    }
    /// `Ok(ts_ms)` or `Err(())` for bad_timestamp.
    fn expect(&self) -> Result<Option<i64>, ()> {
        match self {
            TsGen::Absent | TsGen::Null => Ok(None),
            TsGen::Int(v) => Ok(Some(*v)),
            TsGen::Huge(_) | TsGen::Garbage(_) => Err(()),
            TsGen::Float(v) if v.abs() < 9.0e15 => Ok(Some(*v as i64)),
            TsGen::Float(_) => Err(()),
            TsGen::Rfc(_, ms) => Ok(Some(*ms)),
        }
    }
}

/// An RFC 3339 time built from its parts; the expected instant comes from `time`'s
/// constructors, not from its parser.
fn rfc3339() -> impl Strategy<Value = TsGen> {
    (
        1000i32..=9999,
        1u8..=12,
        1u8..=28,
        0u8..24,
        0u8..60,
        0u8..60,
        prop::option::of(0u16..1000),
        prop::option::of((any::<bool>(), 0u8..24, 0u8..60)),
    )
        .prop_map(|(y, mo, d, h, mi, s, ms, off)| {
            let month = time::Month::try_from(mo).unwrap();
            let date = time::Date::from_calendar_date(y, month, d).unwrap();
            let t = time::Time::from_hms_milli(h, mi, s, ms.unwrap_or(0)).unwrap();
            let (offset, offset_text) = match off {
                None => (time::UtcOffset::UTC, "Z".to_string()),
                Some((neg, oh, om)) => {
                    let sign = if neg { -1 } else { 1 };
                    (
                        time::UtcOffset::from_hms(sign * oh as i8, sign * om as i8, 0).unwrap(),
                        format!("{}{oh:02}:{om:02}", if neg { '-' } else { '+' }),
                    )
                }
            };
            let at = time::PrimitiveDateTime::new(date, t).assume_offset(offset);
            let frac = ms.map(|ms| format!(".{ms:03}")).unwrap_or_default();
            TsGen::Rfc(
                format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}{offset_text}"),
                (at.unix_timestamp_nanos() / 1_000_000) as i64,
            )
        })
}

fn ts_gen() -> impl Strategy<Value = TsGen> {
    prop_oneof![
        Just(TsGen::Absent),
        Just(TsGen::Null),
        any::<i64>().prop_map(TsGen::Int),
        (946_684_800_000i64..4_102_444_800_000).prop_map(TsGen::Int),
        (i64::MAX as u64 + 1..=u64::MAX).prop_map(TsGen::Huge),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |v| v.is_finite())
            .prop_map(TsGen::Float),
        (-1.0e16f64..1.0e16).prop_map(TsGen::Float),
        rfc3339(),
        prop_oneof![
            "[a-z ]{0,12}",
            "[0-9]{1,12}",
            Just("2026-13-01T00:00:00Z".to_string()),
            Just("2026-02-30T00:00:00Z".to_string()),
            Just("2026-01-01 08:00:00".to_string()),
        ]
        .prop_map(TsGen::Garbage),
    ]
}

#[derive(Debug, Clone)]
enum ValGen {
    Float(f64),
    Int(i64),
    Str(String),
    Bool(bool),
    Null,
    Array,
    Object,
}

impl ValGen {
    fn json(&self) -> String {
        match self {
            ValGen::Float(v) => serde_json::to_string(v).unwrap(),
            ValGen::Int(v) => v.to_string(),
            ValGen::Str(s) => js(s),
            ValGen::Bool(b) => b.to_string(),
            ValGen::Null => "null".into(),
            ValGen::Array => "[1,2]".into(),
            ValGen::Object => "{\"v\":1}".into(),
        }
    }
    fn number(&self) -> Option<f64> {
        match self {
            ValGen::Float(v) => Some(*v),
            ValGen::Int(v) => Some(*v as f64),
            _ => None,
        }
    }
}

fn val_gen() -> impl Strategy<Value = ValGen> {
    prop_oneof![
        6 => any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |v| v.is_finite())
            .prop_map(ValGen::Float),
        2 => any::<i64>().prop_map(ValGen::Int),
        1 => "\\PC{0,6}".prop_map(ValGen::Str),
        1 => any::<bool>().prop_map(ValGen::Bool),
        1 => Just(ValGen::Null),
        1 => Just(ValGen::Array),
        1 => Just(ValGen::Object),
    ]
}

/// Channel names: plain ones, a few that repeat, and any text at all.
fn channel() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z][a-z0-9_]{0,8}",
        1 => prop_oneof![Just("lel"), Just("ppm"), Just("t")].prop_map(String::from),
        1 => "\\PC{0,8}",
        1 => ".{0,8}",
        // Around the longest channel name.
        1 => (60usize..70).prop_map(|n| "c".repeat(n)),
    ]
}

#[derive(Debug, Clone)]
enum StatusGen {
    Absent,
    Null,
    Is(String),
}

fn status_gen() -> impl Strategy<Value = StatusGen> {
    prop_oneof![
        Just(StatusGen::Absent),
        Just(StatusGen::Null),
        prop_oneof![Just("normal"), Just("fault"), Just("maintenance")]
            .prop_map(|s| StatusGen::Is(s.into())),
        prop_oneof![
            Just("Normal".to_string()),
            Just("".to_string()),
            "\\PC{0,10}"
        ]
        .prop_map(StatusGen::Is),
    ]
}

/// A reading's `ts_ms`, values and status, as the contract says they come out.
type Expected = (Option<i64>, Vec<(String, f64)>, ReadingStatus);

#[derive(Debug, Clone)]
struct ReadingGen {
    /// For batch elements; also sent (and ignored) on a data topic.
    device: Option<String>,
    ts: TsGen,
    /// `None`: no `values` key.
    values: Option<Vec<(String, ValGen)>>,
    status: StatusGen,
    /// An unknown key, which the parser ignores.
    extra: bool,
}

impl ReadingGen {
    fn json(&self) -> String {
        let mut e = Vec::new();
        if let Some(d) = &self.device {
            e.push(("device".into(), js(d)));
        }
        if let Some(ts) = self.ts.json() {
            e.push(("ts".into(), ts));
        }
        if let Some(vs) = &self.values {
            let vs: Vec<(String, String)> = vs.iter().map(|(k, v)| (k.clone(), v.json())).collect();
            e.push(("values".into(), obj(&vs)));
        }
        match &self.status {
            StatusGen::Absent => {}
            StatusGen::Null => e.push(("status".into(), "null".into())),
            StatusGen::Is(s) => e.push(("status".into(), js(s))),
        }
        if self.extra {
            e.push(("firmware".into(), "\"1.2\"".into()));
        }
        obj(&e)
    }

    /// The contract: too many channels first, then a bad channel name or value, then a bad
    /// timestamp, then a bad status; otherwise a reading with every channel in payload order.
    fn expect(&self, limits: Limits) -> Result<Expected, Reason> {
        let vs = self.values.clone().unwrap_or_default();
        // Channels counted: the numbers, and the first non-number.
        let numbers = vs.iter().filter(|(_, v)| v.number().is_some()).count();
        let others = vs.len() > numbers;
        if numbers + others as usize > limits.max_channels {
            return Err(Reason::TooManyChannels);
        }
        let bad_name = |k: &str| k.is_empty() || k.len() > MAX_CHANNEL_LEN;
        if vs.iter().any(|(k, v)| v.number().is_none() || bad_name(k)) {
            return Err(Reason::InvalidValue);
        }
        let ts = self.ts.expect().map_err(|()| Reason::BadTimestamp)?;
        let status = match &self.status {
            StatusGen::Absent | StatusGen::Null => ReadingStatus::Normal,
            StatusGen::Is(s) => match s.as_str() {
                "normal" => ReadingStatus::Normal,
                "fault" => ReadingStatus::Fault,
                "maintenance" => ReadingStatus::Maintenance,
                _ => return Err(Reason::InvalidValue),
            },
        };
        let values = vs
            .iter()
            .map(|(k, v)| (k.clone(), v.number().unwrap()))
            .collect();
        Ok((ts, values, status))
    }
}

fn reading_gen(device: impl Strategy<Value = Option<String>>) -> impl Strategy<Value = ReadingGen> {
    (
        device,
        ts_gen(),
        prop::option::weighted(0.9, prop::collection::vec((channel(), val_gen()), 0..5)),
        status_gen(),
        any::<bool>(),
    )
        .prop_map(|(device, ts, values, status, extra)| ReadingGen {
            device,
            ts,
            values,
            status,
            extra,
        })
}

/// serde_json's default float parser is fast, not correctly rounded: a number far from 1
/// (1e-196, 1e96) can come out a few ulps away from the one sent. Sensor values never need
/// 15 significant digits; a relative 1e-14 (and 1e-300 absolute, for subnormals) is allowed,
/// anything more is a parser bug. Exact parsing is serde_json's `float_roundtrip` feature.
fn close(got: f64, want: f64) -> bool {
    got == want || (got - want).abs() <= want.abs() * 1e-14 + 1e-300
}

/// One event against the model of one reading.
fn check_reading(
    ev: &SourceEvent,
    r: &ReadingGen,
    site: &str,
    device: &str,
    element: Option<u32>,
    limits: Limits,
) -> Result<(), TestCaseError> {
    match (ev, r.expect(limits)) {
        (
            SourceEvent::Reading {
                reading, origin, ..
            },
            Ok((ts, values, status)),
        ) => {
            prop_assert_eq!(&reading.site, site);
            prop_assert_eq!(&reading.device, device);
            match (&r.ts, reading.ts_ms) {
                // The float may come out a little off (see `close`), then is truncated.
                (TsGen::Float(v), Some(got)) => prop_assert!(
                    (got as f64 - v).abs() <= 1.0 + v.abs() * 1e-14,
                    "ts {} from {}",
                    got,
                    v
                ),
                _ => prop_assert_eq!(reading.ts_ms, ts),
            }
            prop_assert_eq!(reading.values.len(), values.len());
            for ((ch, got), (want_ch, want)) in reading.values.iter().zip(&values) {
                prop_assert_eq!(ch, want_ch);
                prop_assert!(close(*got, *want), "{:?}: {:e} for {:e}", ch, got, want);
            }
            prop_assert_eq!(reading.status, status);
            prop_assert_eq!(origin.element, element);
        }
        (SourceEvent::Rejected(got), Err(want)) => {
            prop_assert_eq!(got.reason, want, "{:?}", got);
            prop_assert!(!got.detail.is_empty());
            prop_assert_eq!(got.origin.element, element);
        }
        (got, want) => prop_assert!(false, "got {:?}, the contract says {:?}", got, want),
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum ElementGen {
    Reading(ReadingGen),
    /// Not an object: `1`, `"x"`, `null`, `[]`.
    NotAnObject(&'static str),
}

#[derive(Debug, Clone)]
struct AckGen {
    by: Option<String>,
    note: Option<String>,
    extra: bool,
}

impl AckGen {
    fn json(&self) -> String {
        let mut e = Vec::new();
        if let Some(by) = &self.by {
            e.push(("by".into(), js(by)));
        }
        if let Some(note) = &self.note {
            e.push(("note".into(), js(note)));
        }
        if self.extra {
            e.push(("at".into(), "1".into()));
        }
        obj(&e)
    }
}

fn ack_gen() -> impl Strategy<Value = AckGen> {
    let by = prop_oneof![
        "[a-z-]{1,20}",
        "[ \t]{0,3}",
        "\\PC{0,10}",
        (120usize..140).prop_map(|n| "b".repeat(n)),
    ];
    let note = prop_oneof!["\\PC{0,30}", (1990usize..2010).prop_map(|n| "n".repeat(n))];
    (
        prop::option::weighted(0.9, by),
        prop::option::of(note),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(by, note, extra)| AckGen { by, note, extra })
}

/// A state payload and what it means: `Some(Some(online))`, `Some(None)` for a rejection,
/// `None` for a cleared retained message (no event).
fn state_gen() -> impl Strategy<Value = (Vec<u8>, Option<Option<bool>>)> {
    let word = prop_oneof![Just(("online", true)), Just(("offline", false))];
    prop_oneof![
        (word, any::<bool>(), any::<bool>(), "[ \t\r\n]{0,2}").prop_map(
            |((w, online), upper, quoted, pad)| {
                let w = if upper {
                    w.to_uppercase()
                } else {
                    w.to_string()
                };
                let w = if quoted { format!("\"{w}\"") } else { w };
                (format!("{pad}{w}{pad}").into_bytes(), Some(Some(online)))
            }
        ),
        Just((Vec::new(), None)),
        prop_oneof![
            Just("maybe".to_string()),
            Just("onlin".to_string()),
            Just("{\"state\":\"online\"}".to_string()),
            Just(" ".to_string()),
            "[a-z]{1,8}".prop_filter("not a state word", |s| !matches!(
                s.as_str(),
                "online" | "offline"
            )),
        ]
        .prop_map(|s| (s.into_bytes(), Some(None))),
        Just((b"\xffonline".to_vec(), Some(None))),
    ]
}

proptest! {
    #![proptest_config(cases(1000))]

    #[test]
    fn data_messages_follow_the_contract(site in id(), device in id(), r in reading_gen(prop::option::of(id()))) {
        let topic = format!("{PREFIX}/{site}/{device}/data");
        let payload = r.json();
        let out = parse(&topic, payload.as_bytes(), ROOMY);
        check_any_message(&topic, payload.as_bytes(), ROOMY, &out);
        prop_assert_eq!(out.len(), 1, "{:?}", out);
        // On a data topic the topic names the device, whatever the payload says.
        check_reading(&out[0], &r, &site, &device, None, ROOMY)?;
    }

    #[test]
    fn batches_follow_the_contract(
        site in id(),
        elements in prop::collection::vec(
            prop_oneof![
                8 => reading_gen(prop::option::weighted(0.9, id())).prop_map(ElementGen::Reading),
                1 => prop_oneof![Just("1"), Just("\"x\""), Just("null"), Just("[]")]
                    .prop_map(ElementGen::NotAnObject),
            ],
            0..7,
        ),
    ) {
        let topic = format!("{PREFIX}/{site}/batch");
        let texts: Vec<String> = elements
            .iter()
            .map(|e| match e {
                ElementGen::Reading(r) => r.json(),
                ElementGen::NotAnObject(s) => s.to_string(),
            })
            .collect();
        let payload = format!("[{}]", texts.join(","));
        let out = parse(&topic, payload.as_bytes(), ROOMY);
        check_any_message(&topic, payload.as_bytes(), ROOMY, &out);
        if elements.len() > ROOMY.max_batch_len {
            prop_assert!(
                matches!(&out[..], [ev] if rejection(ev).map(|r| r.0) == Some(Reason::BatchTooLarge)),
                "{:?}", out
            );
            return Ok(());
        }
        prop_assert_eq!(out.len(), elements.len());
        for (i, (ev, e)) in out.iter().zip(&elements).enumerate() {
            let element = Some(i as u32);
            match e {
                ElementGen::Reading(r) => match &r.device {
                    Some(d) => check_reading(ev, r, &site, d, element, ROOMY)?,
                    None => {
                        prop_assert_eq!(rejection(ev).map(|r| r.0), Some(Reason::MalformedJson));
                    }
                },
                ElementGen::NotAnObject(_) => {
                    prop_assert_eq!(rejection(ev).map(|r| r.0), Some(Reason::MalformedJson));
                }
            }
        }
    }

    #[test]
    fn acks_follow_the_contract(site in id(), alarm in "[0-9]{1,20}", a in ack_gen()) {
        let topic = format!("{PREFIX}/{site}/alarms/{alarm}/ack");
        let payload = a.json();
        let out = parse(&topic, payload.as_bytes(), ROOMY);
        check_any_message(&topic, payload.as_bytes(), ROOMY, &out);
        prop_assert_eq!(out.len(), 1);
        let note = a.note.clone().unwrap_or_default();
        let want = match &a.by {
            _ if a.extra => Err(Reason::MalformedJson),
            None => Err(Reason::MalformedJson),
            Some(by) if by.trim().is_empty() || by.len() > 128 => Err(Reason::InvalidValue),
            Some(_) if note.len() > 2000 => Err(Reason::InvalidValue),
            Some(by) => Ok(by.clone()),
        };
        match (&out[0], want) {
            (SourceEvent::Ack { site: s, alarm: id, by, note: n, .. }, Ok(want_by)) => {
                prop_assert_eq!(s, &site);
                prop_assert_eq!(id, &alarm);
                prop_assert_eq!(by, &want_by);
                prop_assert_eq!(n, &note);
            }
            (SourceEvent::Rejected(r), Err(reason)) => prop_assert_eq!(r.reason, reason),
            (got, want) => prop_assert!(false, "got {:?}, the contract says {:?}", got, want),
        }
    }

    #[test]
    fn states_follow_the_contract(site in id(), device in id(), (payload, want) in state_gen()) {
        let topic = format!("{PREFIX}/{site}/{device}/state");
        let out = parse(&topic, &payload, ROOMY);
        check_any_message(&topic, &payload, ROOMY, &out);
        match want {
            None => prop_assert!(out.is_empty(), "{:?}", out),
            Some(None) => prop_assert!(
                matches!(&out[..], [ev] if rejection(ev).map(|r| r.0) == Some(Reason::InvalidValue)),
                "{:?}", out
            ),
            Some(Some(online)) => prop_assert!(
                matches!(&out[..], [SourceEvent::DeviceState { site: s, device: d, online: o, .. }]
                    if *s == site && *d == device && *o == online),
                "{:?}", out
            ),
        }
    }

    /// A reading the size limit cuts is refused whole, before its JSON is read.
    #[test]
    fn the_size_limit_comes_first(site in id(), device in id(), r in reading_gen(Just(None)), limit in 0usize..200) {
        let topic = format!("{PREFIX}/{site}/{device}/data");
        let payload = r.json();
        let limits = Limits { max_payload_bytes: limit, max_batch_len: 1, max_channels: 4, ..Limits::DEFAULT };
        let out = parse(&topic, payload.as_bytes(), limits);
        check_any_message(&topic, payload.as_bytes(), limits, &out);
        if payload.len() <= limit {
            check_reading(&out[0], &r, &site, &device, None, limits)?;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The line-protocol encoder against the influxdb2 crate
// ---------------------------------------------------------------------------------------------

fn crate_line(r: &Record) -> Vec<u8> {
    use influxdb2::models::WriteDataPoint;
    let mut v = Vec::new();
    r.to_point().unwrap().write_data_point_to(&mut v).unwrap();
    v
}

fn tags() -> impl Strategy<Value = Tags> {
    (
        id(),
        id(),
        0..DeviceKind::ALL.len(),
        prop::option::of(id()),
        prop::option::of(id()),
        prop::option::of(id()),
        prop::option::of(prop_oneof![
            Just("H2S".to_string()),
            Just("NH3 (ammonia)".to_string()),
            "[A-Za-z0-9 ,=\"]{1,8}",
            "\\PC{1,6}",
        ]),
    )
        .prop_map(|(site, device, kind, enterprise, zone, system, gas)| Tags {
            site: site.into(),
            device: device.into(),
            kind: DeviceKind::ALL[kind].as_str(),
            enterprise: enterprise.map(Arc::from),
            zone: zone.map(Arc::from),
            system: system.map(Arc::from),
            gas: gas.map(Arc::from),
        })
}

fn reading_status() -> impl Strategy<Value = ReadingStatus> {
    prop_oneof![
        Just(ReadingStatus::Normal),
        Just(ReadingStatus::Fault),
        Just(ReadingStatus::Maintenance),
    ]
}

fn finite() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("finite", |v| v.is_finite()),
        -1.0e6f64..1.0e6,
        Just(0.0),
        Just(-0.0),
        Just(f64::MIN_POSITIVE),
        Just(f64::MAX),
        Just(1e21),
        Just(1e-7),
    ]
}

fn any_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => finite(),
        1 => prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY)],
    ]
}

/// Channel names that need escaping, or cannot be written at all.
fn odd_channel() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z ,=\"\\\\]{0,8}",
        "\\PC{0,8}",
        ".{0,8}",
        Just("status_code".to_string()),
        Just("ts_from_gateway".to_string()),
        Just("a\nb".to_string()),
        Just("温度".to_string()),
    ]
}

fn reading_record(
    channels: impl Strategy<Value = String>,
    value: impl Strategy<Value = f64>,
) -> impl Strategy<Value = Record> {
    (
        tags(),
        any::<i64>(),
        any::<bool>(),
        reading_status(),
        prop::collection::vec((channels, value), 0..6),
    )
        .prop_map(
            |(tags, ts_ms, ts_from_gateway, status, values)| Record::Reading {
                tags,
                ts_ms,
                ts_from_gateway,
                status,
                values: values.into_iter().map(|(k, v)| (k.into(), v)).collect(),
            },
        )
}

proptest! {
    #![proptest_config(cases(1000))]

    /// Plain channel names and finite values: the fast path writes byte for byte what the
    /// crate writes, the first time (tag prefix built) and the second (prefix reused).
    #[test]
    fn the_fast_path_writes_what_the_crate_writes(
        r in reading_record("[A-Za-z0-9._:-]{1,12}", finite())
            .prop_filter("storable: unique names, not the record's own fields", storable)
    ) {
        let mut enc = LineEncoder::default();
        let want = crate_line(&r);
        for _ in 0..2 {
            let mut out = b"previous line\n".to_vec();
            enc.encode(&r, &mut out).unwrap();
            prop_assert_eq!(
                String::from_utf8_lossy(&out[14..]),
                String::from_utf8_lossy(&want)
            );
        }
    }

    /// Any channel names, any values, any gas tag: one complete line, identical to the
    /// crate's, or an error and nothing written; an error exactly when line protocol cannot
    /// carry the reading.
    #[test]
    fn the_encoder_writes_one_valid_line_or_nothing(r in reading_record(odd_channel(), any_f64())) {
        let mut enc = LineEncoder::default();
        let mut out = b"previous line\n".to_vec();
        let res = enc.encode(&r, &mut out);
        let written = &out[14..];
        let storable = storable(&r);
        match res {
            Ok(()) => {
                prop_assert!(storable, "written: {:?}", String::from_utf8_lossy(written));
                let want = crate_line(&r);
                prop_assert_eq!(
                    String::from_utf8_lossy(written),
                    String::from_utf8_lossy(&want)
                );
                prop_assert!(
                    written.ends_with(b"\n") && written.iter().filter(|b| **b == b'\n').count() == 1,
                    "not one line: {:?}", String::from_utf8_lossy(written)
                );
            }
            Err(e) => {
                prop_assert!(!storable, "refused: {}", e);
                prop_assert_eq!(written.len(), 0, "written despite {}", e);
                prop_assert!(!e.to_string().is_empty());
            }
        }
    }
}

/// What line protocol can carry, written out independently of the encoder: finite values;
/// channel names that are non-empty, have no control character or backslash, are not the
/// record's own fields and do not repeat; tag values without a control character or a
/// backslash that would escape the crate's own escape.
fn storable(r: &Record) -> bool {
    let Record::Reading { tags, values, .. } = r else {
        unreachable!()
    };
    let name_ok = |k: &str| {
        !k.is_empty()
            && !k.chars().any(|c| c.is_control() || c == '\\')
            && k != "status_code"
            && k != "ts_from_gateway"
    };
    let mut names: Vec<&str> = values.iter().map(|(k, _)| k.as_str()).collect();
    names.sort_unstable();
    let distinct = names.windows(2).all(|w| w[0] != w[1]);
    let tag_ok = |v: &str| {
        let b = v.as_bytes();
        !v.is_empty()
            && !v.chars().any(char::is_control)
            && !(0..b.len())
                .any(|i| b[i] == b'\\' && (i + 1 == b.len() || b",= \\".contains(&b[i + 1])))
    };
    values.iter().all(|(k, v)| v.is_finite() && name_ok(k))
        && distinct
        && tags.gas.as_deref().is_none_or(tag_ok)
}

/// One site, one gas_toxic device `p1/d1`.
fn core_for_encoding() -> safegate::core::Core {
    let text = "[[sites]]\nid = \"p1\"\nname = \"P\"\nkind = \"park\"\n\n\
                [[devices]]\nid = \"d1\"\nsite = \"p1\"\nkind = \"gas_toxic\"\ngas = \"H2S\"\n\
                protocol = \"mqtt\"\ninterval_s = 1\n";
    let l = load_str(Path::new("t.toml"), text, Path::new(".")).unwrap();
    safegate::core::Core::new(
        safegate::core::Inventory::from_config(&l.config.inventory),
        300_000,
        10,
    )
}

proptest! {
    #![proptest_config(cases(1000))]

    /// Whatever the core accepts from the MQTT parser, the store can write: the encoder
    /// writes it as the crate would, as one line.
    #[test]
    fn what_the_core_accepts_the_encoder_writes(r in reading_gen(Just(None)), received_ms in 946_684_800_000i64..4_102_444_800_000) {
        let mut core = core_for_encoding();
        let mut events = Vec::new();
        let topic = format!("{PREFIX}/p1/d1/data");
        parse_message(PREFIX, &topic, r.json().as_bytes(), received_ms, ROOMY, &mut events);
        let mut out = safegate::core::Outputs::default();
        for ev in events {
            core.apply(ev, &mut out);
        }
        let mut enc = LineEncoder::default();
        for acc in out.readings.drain(..) {
            let rec = Record::reading(&core.inventory, acc);
            let mut line = Vec::new();
            enc.encode(&rec, &mut line).unwrap();
            let want = crate_line(&rec);
            prop_assert_eq!(String::from_utf8_lossy(&line), String::from_utf8_lossy(&want));
            prop_assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
        }
        for rej in &out.rejections {
            prop_assert!(!rej.detail.is_empty());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The configuration loader
// ---------------------------------------------------------------------------------------------

/// A valid main file with every section: settings, targets, alarms, the whole inventory,
/// a Modbus device. No `include` (it would read files relative to the working directory).
const VALID: &str = r#"
[gateway]
data_dir = "var/fuzz"
max_future_skew_s = 300
recent_rejections = 200

[mqtt]
url = "mqtt://127.0.0.1:1883"
client_id = "safegate-fuzz"
topic_prefix = "safegate/v1"
qos = 1
max_payload_bytes = 65536
max_batch_len = 500
keep_alive_s = 30
reconnect_min_ms = 500
reconnect_max_ms = 30000

[store]
url = "http://127.0.0.1:8086"
org = "xj-safety"
bucket = "safegate"
batch_size = 5000
flush_interval_ms = 1000
queue_capacity = 100000
indicator_interval_s = 60
timeout_ms = 10000

[api]
listen = "127.0.0.1:8080"

[indicators]
denominator = "active"
mine_units = "systems"
online_quorum = "any"
system_online_share = 0.9

[alarms]
response_deadline_s = { level1 = 60, level2 = 30 }
retain_closed_s = 86400

[[targets]]
indicator = "online_rate"
comparator = ">="
value = 100
label = "联网在线率"
level1 = "产出指标"
level2 = "质量指标"
weight = 10

[[targets]]
indicator = "budget_execution"
comparator = ">="
value = 13135
declared = 4945.46
unit = "万元"
label = "预算执行率"
level1 = "预算执行"
weight = 10

[[sites]]
id = "zd-park"
name = "准东经济技术开发区"
kind = "park"

[[sites]]
id = "m1"
name = "Mine"
kind = "mine"
alarms = { scheme = "four_colour", response_deadline_s = 20 }

[[enterprises]]
id = "e-001"
site = "zd-park"
name = "Example enterprise"
platform = "built"

[[zones]]
id = "gate-north"
site = "zd-park"
name = "North gate"

[[systems]]
id = "slope"
site = "m1"
kind = "slope_monitoring"

[[devices]]
id = "gd-0001"
site = "zd-park"
kind = "gas_combustible"
enterprise = "e-001"
protocol = "mqtt"
interval_s = 30
alarm = { raise_after = 2, clear_after = 2 }

[[devices]]
id = "gt-0001"
site = "zd-park"
kind = "gas_toxic"
gas = "H2S"
zone = "gate-north"
protocol = "mqtt"
interval_s = 30
offline_after_s = 120

[[devices]]
id = "sd-01"
site = "m1"
kind = "slope_displacement"
system = "slope"
protocol = "mqtt"
interval_s = 60
alarm = { levels = [10, 20, 30, 40], rate_per_day = [100, 200, 300, 400], rate_window = "1h" }

[[devices]]
id = "lel-07"
site = "zd-park"
kind = "gas_combustible"
protocol = "modbus"
interval_s = 2
[devices.modbus]
transport = "tcp"
address = "10.0.3.20:502"
unit = 7
timeout_ms = 500
registers = [
  { channel = "lel",  table = "holding", address = 0, type = "u16", scale = 0.01 },
  { channel = "temp", table = "input",   address = 4, type = "f32", word_order = "little" },
]
status = { table = "holding", address = 1, fault_mask = 0x0004 }
"#;

/// Load, then build what the gateway builds from a loaded configuration.
fn load(text: &str) -> Result<(), Vec<safegate::config::ConfigError>> {
    let l = load_str(Path::new("t.toml"), text, Path::new("."))?;
    let inv = safegate::core::Inventory::from_config(&l.config.inventory);
    let rules = safegate::core::alarms::rules::AlarmRules::from_config(
        &l.config.alarms,
        &l.config.inventory,
        &inv,
    );
    let _ = safegate::config::summary(&l.config);
    let mut core = safegate::core::Core::new(inv, 300_000, l.config.gateway.recent_rejections);
    core.set_alarm_rules(rules);
    Ok(())
}

fn check_config_outcome(text: &str) {
    if let Err(errors) = load(text) {
        assert!(!errors.is_empty(), "an error result with no error");
        for e in &errors {
            assert!(
                !e.message.trim().is_empty(),
                "an error without a message: {e:?}"
            );
            assert!(!e.to_string().is_empty());
        }
    }
}

#[test]
fn the_unmutated_configuration_loads() {
    load(VALID).unwrap();
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete(prop::sample::Index),
    Duplicate(prop::sample::Index),
    Swap(prop::sample::Index, prop::sample::Index),
    /// Replace the n-th number of the text.
    Number(prop::sample::Index, String),
    /// Replace the n-th string value of the text.
    Text(prop::sample::Index, String),
}

fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|v| v.to_string()),
        (-5i64..5).prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| format!("{v:?}")),
        prop_oneof![
            Just("nan"),
            Just("+inf"),
            Just("-inf"),
            Just("-0.0"),
            Just("9223372036854775807"),
            Just("9223372036854775808"),
            Just("18446744073709551615"),
            Just("1e308"),
            Just("0x7fffffffffffffff"),
            Just("\"12\""),
            Just("true"),
            Just("[]"),
        ]
        .prop_map(String::from),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        1 => any::<prop::sample::Index>().prop_map(Mutation::Delete),
        1 => any::<prop::sample::Index>().prop_map(Mutation::Duplicate),
        1 => (any::<prop::sample::Index>(), any::<prop::sample::Index>())
            .prop_map(|(a, b)| Mutation::Swap(a, b)),
        3 => (any::<prop::sample::Index>(), number_text()).prop_map(|(i, n)| Mutation::Number(i, n)),
        3 => (
            any::<prop::sample::Index>(),
            prop_oneof!["\\PC{0,12}", "[a-z_]{1,12}", Just(String::new()), Just("../../etc".into())]
        )
            .prop_map(|(i, s)| Mutation::Text(i, s)),
    ]
}

type Span = (usize, usize);

/// Byte ranges of the numbers (digits after `=`, `[`, `,` or a space) and of the quoted
/// strings in `text`.
fn spans(text: &str) -> (Vec<Span>, Vec<Span>) {
    let b = text.as_bytes();
    let (mut nums, mut strs) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'"' {
            let end = text[i + 1..].find('"').map_or(b.len(), |e| i + 1 + e);
            strs.push((i + 1, end));
            i = end + 1;
        } else if b[i].is_ascii_digit() && i > 0 && matches!(b[i - 1], b' ' | b'[' | b'=') {
            let end = text[i..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.'))
                .map_or(b.len(), |e| i + e);
            nums.push((i, end));
            i = end;
        } else {
            i += 1;
        }
    }
    (nums, strs)
}

fn mutate(text: &str, ms: &[Mutation]) -> String {
    let mut text = text.to_string();
    for m in ms {
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        let (nums, strs) = spans(&text);
        // An earlier mutation may have left nothing of the kind this one changes.
        let nothing = match m {
            Mutation::Number(..) => nums.is_empty(),
            Mutation::Text(..) => strs.is_empty(),
            _ => lines.is_empty(),
        };
        if nothing {
            continue;
        }
        match m {
            Mutation::Delete(i) => {
                lines.remove(i.index(lines.len()));
            }
            Mutation::Duplicate(i) => {
                let at = i.index(lines.len());
                lines.insert(at, lines[at].clone());
            }
            Mutation::Swap(a, b) => {
                let (a, b) = (a.index(lines.len()), b.index(lines.len()));
                lines.swap(a, b);
            }
            Mutation::Number(i, n) => {
                let (s, e) = nums[i.index(nums.len())];
                text.replace_range(s..e, n);
                continue;
            }
            Mutation::Text(i, t) => {
                let (s, e) = strs[i.index(strs.len())];
                // The new text is a TOML string's content: escape what would end it.
                let t = t.replace('\\', "\\\\").replace('"', "\\\"");
                text.replace_range(s..e, &t);
                continue;
            }
        }
        text = lines.join("\n");
    }
    text
}

/// Text that could name an include; the loader would glob the filesystem for it.
fn may_include(text: &str) -> bool {
    text.contains("include") || text.contains("\\u") || text.contains("\\U")
}

proptest! {
    #![proptest_config(cases(500))]

    /// Any text: no panic; an error always says what is wrong.
    #[test]
    fn the_config_loader_takes_any_text(text in prop_oneof![".{0,200}", "[\\[\\]a-z_=\" 0-9.\n{},]{0,300}"]) {
        prop_assume!(!may_include(&text));
        check_config_outcome(&text);
    }

    /// A valid file with lines deleted, duplicated or swapped, numbers and strings replaced:
    /// it loads, or every error says what is wrong; a configuration that loads can be built.
    #[test]
    fn mutated_configurations_load_or_say_why(ms in prop::collection::vec(mutation(), 1..4)) {
        let text = mutate(VALID, &ms);
        prop_assume!(!may_include(&text));
        check_config_outcome(&text);
    }
}

// ---------------------------------------------------------------------------------------------
// The embedded broker's guard: MQTT packets from any client.

use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{Connect, Publish, Subscribe};
use rumqttc::mqttbytes::QoS;
use safegate::config::broker_acl::Acl;
use safegate::runtime::broker_guard::{take_frame, Session, Verdict};

fn guard_acl() -> Acl {
    let text = "[[sites]]\nid = \"p1\"\nname = \"P1\"\nkind = \"park\"\nplatforms = [\"plat-a\"]\n\n[[sites]]\nid = \"p2\"\nname = \"P2\"\nkind = \"park\"\nplatforms = [\"plat-b\"]\n";
    let cfg = load_str(Path::new("t.toml"), text, Path::new("."))
        .unwrap()
        .config;
    Acl::from_config(&cfg, "safegate")
}

/// Feed `bytes` through the guard's framing and judge, as a connection would after its
/// CONNECT: no panic; a frame error or a `Close` ends it, as the connection would end.
fn judge_stream(acl: &Acl, who: &str, bytes: &[u8], max: usize) -> Vec<Verdict> {
    let mut buf = BytesMut::from(bytes);
    let mut session = Session::new(acl, who);
    let mut out = Vec::new();
    while let Ok(Some((fh, frame))) = take_frame(&mut buf, max) {
        assert_eq!(frame.len(), fh.frame_length());
        if matches!(
            fh.packet_type(),
            Ok(rumqttc::mqttbytes::PacketType::Connect)
        ) {
            let _ = Connect::read(fh, frame.clone());
        }
        let v = session.inspect(fh, &frame);
        let end = matches!(v, Verdict::Close(_));
        out.push(v);
        if end {
            break;
        }
    }
    out
}

fn topic_level() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("safegate".to_string()),
        Just("v1".to_string()),
        Just("p1".to_string()),
        Just("p2".to_string()),
        Just("alarms".to_string()),
        Just("data".to_string()),
        Just("ack".to_string()),
        Just("+".to_string()),
        Just("#".to_string()),
        Just(String::new()),
        "[a-z0-9$]{1,6}",
    ]
}

fn topic() -> impl Strategy<Value = String> {
    prop::collection::vec(topic_level(), 1..7).prop_map(|l| l.join("/"))
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn who() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("plat-a"),
        Just("plat-b"),
        Just("safegate"),
        Just("nobody")
    ]
}

proptest! {
    #![proptest_config(cases(1000))]

    /// Any bytes, as any identity, under any size limit: no panic, and every frame taken is
    /// exactly as long as its header says.
    #[test]
    fn the_guard_takes_any_bytes(who in who(), bytes in prop::collection::vec(any::<u8>(), 0..600), max in 0usize..2048) {
        judge_stream(&guard_acl(), who, &bytes, max);
    }

    /// Well-formed packets, any topics and filters, possibly cut short or with a byte changed:
    /// a whole PUBLISH is forwarded exactly when the ACL allows it, and a SUBSCRIBE exactly
    /// when the ACL allows every filter; denied ones answer as their QoS requires.
    #[test]
    fn the_guard_judges_publishes_and_subscriptions_by_the_acl(
        who in who(),
        packets in prop::collection::vec((topic(), qos(), 1u16..=u16::MAX, any::<bool>(), prop::collection::vec(topic(), 1..4)), 1..8),
        cut in prop::option::of(0usize..400),
        flip in prop::option::of((0usize..400, any::<u8>())),
    ) {
        let acl = guard_acl();
        let mut bytes = BytesMut::new();
        let mut expect = Vec::new();
        for (t, q, pkid, is_sub, filters) in &packets {
            if *is_sub {
                let mut s = Subscribe::new(filters[0].clone(), *q);
                for f in &filters[1..] {
                    s.add(f.clone(), *q);
                }
                s.pkid = *pkid;
                if s.write(&mut bytes).is_err() {
                    return Ok(());
                }
                expect.push(filters.iter().all(|f| acl.may_subscribe(who, f)));
            } else {
                let mut p = Publish::new(t.clone(), *q, b"{}".to_vec());
                p.pkid = if *q == QoS::AtMostOnce { 0 } else { *pkid };
                if p.write(&mut bytes).is_err() {
                    return Ok(());
                }
                expect.push(acl.may_publish(who, t));
            }
        }
        let mutated = cut.is_some() || flip.is_some();
        let mut raw = bytes.to_vec();
        if let Some(c) = cut {
            raw.truncate(c.min(raw.len()));
        }
        if let Some((i, b)) = flip {
            if let Some(x) = raw.get_mut(i) {
                *x ^= b | 1;
            }
        }
        let verdicts = judge_stream(&acl, who, &raw, 1 << 16);
        if !mutated {
            prop_assert_eq!(verdicts.len(), packets.len());
            for ((v, allowed), (_, q, _, is_sub, _)) in verdicts.iter().zip(&expect).zip(&packets) {
                match v {
                    Verdict::Forward => prop_assert!(*allowed, "{:?} forwarded", v),
                    Verdict::Refuse { answer, reason, .. } => {
                        prop_assert!(!*allowed);
                        prop_assert_eq!(*reason, if *is_sub { "subscribe_denied" } else { "publish_denied" });
                        // No answer only to a denied QoS 0 publish.
                        prop_assert_eq!(answer.is_empty(), !*is_sub && *q == QoS::AtMostOnce);
                    }
                    other => prop_assert!(false, "unexpected {:?}", other),
                }
            }
        }
    }
}
