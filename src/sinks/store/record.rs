//! What the store receives, and its line-protocol shape (the contract with evaluators):
//!
//! - `reading,site=…,device=…,kind=…[,enterprise=…][,zone=…][,system=…][,gas=…] <channel>=<f64>…,status_code=<0|1|2>[,ts_from_gateway=true] <ts ms>`
//! - `device_state,site=…,device=…,kind=…,cause=… online=<1|0>i <ms>`
//! - `indicator,indicator=…,scope=region|site|enterprise,scope_id=…,window=now|1h|1d|…[,qualifier=…] value=<f64>,numerator=<f64>,denominator=<f64>[,target=<f64>][,completion=<f64>] <ms>`

use crate::core::{Accepted, Inventory, ReadingStatus, Transition};
use influxdb2::models::data_point::DataPointError;
use influxdb2::models::DataPoint;
use std::sync::Arc;

/// What the audit log records (`data_dir/audit.log`), and the store as measurement `audit`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditEvent {
    pub at: String,
    pub at_ms: i64,
    /// `config_loaded`, `alarm_acknowledged`, `api_refused`, `mqtt_refused`.
    pub action: &'static str,
    /// A token name, the `by` of an acknowledgement, or `-` when unknown.
    pub who: String,
    /// A peer address, `mqtt {topic}`, or the gateway itself.
    pub from: String,
    /// How many times (bursts of refusals are one event).
    pub count: u64,
    pub detail: serde_json::Value,
}

#[derive(Debug, Clone)]
pub struct Tags {
    pub site: Arc<str>,
    pub device: Arc<str>,
    pub kind: &'static str,
    pub enterprise: Option<Arc<str>>,
    pub zone: Option<Arc<str>>,
    pub system: Option<Arc<str>>,
    pub gas: Option<Arc<str>>,
}

impl Tags {
    pub fn of(inv: &Inventory, device: u32) -> Tags {
        let d = &inv.devices[device as usize];
        Tags {
            site: inv.sites[d.site as usize].id.clone(),
            device: d.id.clone(),
            kind: d.kind.as_str(),
            enterprise: d.enterprise.map(|e| inv.enterprises[e as usize].id.clone()),
            zone: d.zone.map(|z| inv.zones[z as usize].id.clone()),
            system: d.system.map(|s| inv.systems[s as usize].id.clone()),
            gas: d.gas.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub enum Record {
    Reading {
        tags: Tags,
        ts_ms: i64,
        ts_from_gateway: bool,
        status: ReadingStatus,
        values: crate::core::event::Values,
    },
    DeviceState {
        tags: Tags,
        at_ms: i64,
        online: bool,
        cause: &'static str,
    },
    /// Measurement `indicator`. Boxed, as is `Alarm`: both are rare, and inline they made every
    /// record, readings included, 200 bytes instead of 152. The store queue holds up to
    /// `queue_capacity` records (200,000 by default): 100,000 devices reporting at start fill it.
    Indicator(Box<IndicatorPoint>),
    /// An audit event: measurement `audit`.
    Audit(AuditEvent),
    /// One alarm change: measurement `alarm`.
    Alarm(Box<AlarmPoint>),
}

/// An indicator's value for one scope and window ([`Record::Indicator`]).
#[derive(Debug, Clone)]
pub struct IndicatorPoint {
    pub indicator: &'static str,
    /// System kind, link name.
    pub qualifier: Option<String>,
    pub scope: &'static str,
    pub scope_id: Arc<str>,
    /// `now` for snapshots, `1h`, `1d` … for closed windows (stamped at the window start).
    pub window: Arc<str>,
    pub at_ms: i64,
    pub value: Option<f64>,
    pub numerator: f64,
    pub denominator: f64,
    /// The configured target and the completion against it, when there is one.
    pub target: Option<f64>,
    pub completion: Option<f64>,
}

/// One alarm change ([`Record::Alarm`]).
#[derive(Debug, Clone)]
pub struct AlarmPoint {
    pub site: String,
    pub device: String,
    pub kind: String,
    pub level: u8,
    pub alarm_type: String,
    pub state: String,
    pub event: String,
    pub id: u64,
    pub value: Option<f64>,
    pub response_s: Option<f64>,
    pub at_ms: i64,
}

/// `state_code` of the `alarm` measurement, for stores that keep numeric fields only.
pub fn alarm_state_code(state: &str) -> i64 {
    match state {
        "active_unacked" => 0,
        "active_acked" => 1,
        "cleared_unacked" => 2,
        _ => 3,
    }
}

impl Record {
    pub fn reading(inv: &Inventory, a: Accepted) -> Record {
        Record::Reading {
            tags: Tags::of(inv, a.device),
            ts_ms: a.ts_ms,
            ts_from_gateway: a.ts_from_gateway,
            status: a.status,
            values: a.values,
        }
    }

    pub fn alarm(
        a: &crate::core::alarms::view::AlarmView,
        e: &crate::core::alarms::view::EventView,
    ) -> Record {
        Record::Alarm(Box::new(AlarmPoint {
            site: a.site.clone(),
            device: a.device.clone(),
            kind: a.kind.clone(),
            level: a.level,
            alarm_type: a.alarm_type.clone(),
            state: a.state.clone(),
            event: e.event.clone(),
            id: a.id,
            value: e.value,
            response_s: a.response_s,
            at_ms: e.at_ms,
        }))
    }

    pub fn transition(inv: &Inventory, t: &Transition) -> Record {
        Record::DeviceState {
            tags: Tags::of(inv, t.device),
            at_ms: t.at_ms,
            online: t.online,
            cause: t.cause.as_str(),
        }
    }

    /// The InfluxDB data point, built with the influxdb2 crate (which does the escaping).
    pub fn to_point(&self) -> Result<DataPoint, DataPointError> {
        match self {
            Record::Reading {
                tags,
                ts_ms,
                ts_from_gateway,
                status,
                values,
            } => {
                let mut b = device_tags(DataPoint::builder("reading"), tags);
                for (ch, v) in values {
                    b = b.field(ch.as_str(), *v);
                }
                b = b.field("status_code", *status as i64);
                if *ts_from_gateway {
                    b = b.field("ts_from_gateway", true);
                }
                b.timestamp(*ts_ms).build()
            }
            Record::DeviceState {
                tags,
                at_ms,
                online,
                cause,
            } => device_tags(DataPoint::builder("device_state"), tags)
                .tag("cause", *cause)
                .field("online", *online as i64)
                .timestamp(*at_ms)
                .build(),
            Record::Indicator(p) => {
                let IndicatorPoint {
                    indicator,
                    qualifier,
                    scope,
                    scope_id,
                    window,
                    at_ms,
                    value,
                    numerator,
                    denominator,
                    target,
                    completion,
                } = &**p;
                let mut b = DataPoint::builder("indicator")
                    .tag("indicator", *indicator)
                    .tag("scope", *scope)
                    .tag("scope_id", &**scope_id)
                    .tag("window", &**window)
                    .field("numerator", *numerator)
                    .field("denominator", *denominator);
                if let Some(q) = qualifier {
                    b = b.tag("qualifier", q.as_str());
                }
                for (k, v) in [
                    ("value", value),
                    ("target", target),
                    ("completion", completion),
                ] {
                    if let Some(v) = v {
                        b = b.field(k, *v);
                    }
                }
                b.timestamp(*at_ms).build()
            }
            Record::Audit(a) => DataPoint::builder("audit")
                .tag("action", a.action)
                .tag(
                    "who",
                    if a.who.is_empty() {
                        "-"
                    } else {
                        a.who.as_str()
                    },
                )
                .field("from", a.from.as_str())
                .field("count", a.count as i64)
                .field("detail", a.detail.to_string())
                .timestamp(a.at_ms)
                .build(),
            Record::Alarm(a) => {
                let AlarmPoint {
                    site,
                    device,
                    kind,
                    level,
                    alarm_type,
                    state,
                    event,
                    id,
                    value,
                    response_s,
                    at_ms,
                } = &**a;
                let mut b = DataPoint::builder("alarm")
                    .tag("site", site.as_str())
                    .tag("device", device.as_str())
                    .tag("kind", kind.as_str())
                    .tag("level", level.to_string())
                    .tag("type", alarm_type.as_str())
                    // A tag, not a field: two changes of one alarm in the same millisecond
                    // (escalated and cleared by one batch) must not overwrite each other.
                    .tag("event", event.as_str())
                    .field("state", state.as_str())
                    .field("state_code", alarm_state_code(state))
                    .field("id", *id as i64);
                if let Some(v) = value.filter(|v| v.is_finite()) {
                    b = b.field("value", v);
                }
                if let Some(r) = response_s {
                    b = b.field("response_s", *r);
                }
                b.timestamp(*at_ms).build()
            }
        }
    }
}

/// Why a record cannot be written as one line of line protocol.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error(transparent)]
    Point(#[from] DataPointError),
    /// Line protocol has no NaN or infinity; the crate would write `NaN` and the store would
    /// refuse the whole batch.
    #[error("field {field:?} is {value}, not a finite number")]
    NotFinite { field: String, value: f64 },
    /// A channel name the crate would write unescaped (a newline, a backslash), an empty one,
    /// one of the record's own fields, or a repeated one.
    #[error("{0}")]
    Channels(String),
    #[error("tag {key} = {value:?} is empty, has a control character or ends in a backslash")]
    Tag { key: &'static str, value: String },
}

/// Line-protocol encoder for the store writer. Readings are the hot path: their tag set is
/// the same for every reading of a device, so it is encoded once per device (by the influxdb2
/// crate, which does the escaping) and reused; channel names that need no escaping and
/// finite floats are written directly, anything else goes through the crate. A reading the
/// crate would write as a broken line (NaN, a newline or backslash in a name, a repeated
/// field) is refused. Records other than readings go through the crate's `DataPoint` as is.
#[derive(Default)]
pub struct LineEncoder {
    /// Device id `Arc` address → the fingerprint of the tags it was built from and
    /// `reading,<tags>`. The address finds the entry without hashing strings; the fingerprint
    /// makes it right: a reload that moves a device to another zone keeps its id's `Arc`, and
    /// a device that left may free an address another one gets.
    prefixes: std::collections::HashMap<usize, (u64, Box<[u8]>), foldhash::fast::RandomState>,
    /// The fingerprints' hasher (one seed for the encoder's life).
    print: foldhash::fast::RandomState,
}

impl Tags {
    /// Every tag's text, hashed: equal tags, equal fingerprint.
    fn fingerprint(&self, h: &foldhash::fast::RandomState) -> u64 {
        use std::hash::BuildHasher;
        let opt = |t: &Option<Arc<str>>| t.as_deref().map(str::len);
        // Lengths too, so that moving text from one tag to the next changes the print.
        h.hash_one((
            (&*self.site, &*self.device, self.kind),
            (self.enterprise.as_deref(), self.zone.as_deref()),
            (self.system.as_deref(), self.gas.as_deref()),
            (
                opt(&self.enterprise),
                opt(&self.zone),
                opt(&self.system),
                opt(&self.gas),
            ),
        ))
    }
}

impl LineEncoder {
    /// Append one line; on error nothing is written.
    pub fn encode(&mut self, r: &Record, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        use influxdb2::models::WriteDataPoint;
        let Record::Reading {
            tags,
            ts_ms,
            ts_from_gateway,
            status,
            values,
        } = r
        else {
            let _ = r.to_point()?.write_data_point_to(&mut *out);
            return Ok(());
        };
        if let Some((ch, v)) = values.iter().find(|(_, v)| !v.is_finite()) {
            return Err(EncodeError::NotFinite {
                field: ch.to_string(),
                value: *v,
            });
        }
        if let Some(problem) = crate::core::channel_names_problem(values) {
            return Err(EncodeError::Channels(problem));
        }
        if values.iter().any(|(ch, _)| !plain_key(ch)) {
            check_tags(tags)?;
            let _ = r.to_point()?.write_data_point_to(&mut *out);
            return Ok(());
        }
        let key = Arc::as_ptr(&tags.device) as *const u8 as usize;
        let print = tags.fingerprint(&self.print);
        let cached = self.prefixes.get(&key).filter(|(p, _)| *p == print);
        let prefix = match cached {
            Some((_, line)) => line,
            None => {
                check_tags(tags)?;
                let mut line = Vec::new();
                let p = device_tags(DataPoint::builder("reading"), tags)
                    .field("_", 0i64)
                    .build()?;
                let _ = p.write_data_point_to(&mut line);
                line.truncate(line.len() - " _=0i\n".len());
                let entry = (print, line.into_boxed_slice());
                &self.prefixes.entry(key).insert_entry(entry).into_mut().1
            }
        };
        out.extend_from_slice(prefix);
        // Fields in name order, as the crate writes them.
        // On the stack for the usual few channels: no allocation per reading.
        let mut fields: smallvec::SmallVec<[(&str, FieldText); 8]> = values
            .iter()
            .map(|(k, v)| (k.as_str(), FieldText::F(*v)))
            .collect();
        fields.push(("status_code", FieldText::I(*status as i64)));
        if *ts_from_gateway {
            fields.push(("ts_from_gateway", FieldText::True));
        }
        fields.sort_by(|a, b| a.0.cmp(b.0));
        for (i, (k, v)) in fields.iter().enumerate() {
            out.push(if i == 0 { b' ' } else { b',' });
            out.extend_from_slice(k.as_bytes());
            out.push(b'=');
            match v {
                FieldText::F(f) => push_f64(out, *f),
                FieldText::I(n) => {
                    out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes());
                    out.push(b'i');
                }
                FieldText::True => out.push(b't'),
            }
        }
        out.push(b' ');
        out.extend_from_slice(itoa::Buffer::new().format(*ts_ms).as_bytes());
        out.push(b'\n');
        Ok(())
    }
}

/// A finite float exactly as `Display` writes it (and so as the influxdb2 crate does), with
/// ryu's faster shortest round-trip digits: the same digits, written without an exponent and
/// without a trailing `.0`. Two kinds go through `Display` instead: the rare value ryu writes
/// with an exponent, and values of 16 or more significant digits, the only ones where two
/// shortest strings can be exactly as near to the float (-1141829805648404.25: ryu writes
/// ...404.2, `Display` ...404.3; both read back as the same float, but the line would differ
/// from the crate's). A double's neighbours are 1e-16 apart relative to it, so with 15 digits
/// or fewer only one string is near enough.
fn push_f64(out: &mut Vec<u8>, v: f64) {
    let mut buf = ryu::Buffer::new();
    let s = buf.format_finite(v);
    if s.contains('e') || significant_digits(s) >= 16 {
        use std::io::Write;
        let _ = write!(out, "{v}");
    } else {
        out.extend_from_slice(s.strip_suffix(".0").unwrap_or(s).as_bytes());
    }
}

/// Digits of a plain decimal (ryu's form) from its first non-zero one, the point skipped.
fn significant_digits(s: &str) -> usize {
    let digits = s.bytes().filter(u8::is_ascii_digit);
    let n = digits.clone().count();
    let zeros = digits.take_while(|d| *d == b'0').count();
    // "14.0": ryu's trailing ".0" is not a digit of the value.
    (n - zeros).saturating_sub(s.ends_with(".0") as usize)
}

enum FieldText {
    F(f64),
    I(i64),
    True,
}

/// A field key that line protocol takes as is (no comma, equals sign, space or backslash).
fn plain_key(k: &str) -> bool {
    !k.is_empty()
        && !k
            .bytes()
            .any(|b| matches!(b, b',' | b'=' | b' ' | b'\\' | b'"' | b'\n'))
}

/// Tag values come from the configuration; one the crate would write as a broken line is
/// refused rather than sent.
fn check_tags(t: &Tags) -> Result<(), EncodeError> {
    let optional = [
        ("enterprise", &t.enterprise),
        ("zone", &t.zone),
        ("system", &t.system),
        ("gas", &t.gas),
    ];
    let all = [("site", Some(&t.site)), ("device", Some(&t.device))]
        .into_iter()
        .chain(optional.into_iter().map(|(k, v)| (k, v.as_ref())));
    for (key, value) in all {
        if let Some(v) = value {
            if v.is_empty() || v.chars().any(char::is_control) || escapes_a_delimiter(v) {
                return Err(EncodeError::Tag {
                    key,
                    value: v.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// A backslash at the end, or before a character the crate escapes, would escape the
/// crate's own escape (`x\,` is written `x\\,`) and run into the next tag.
fn escapes_a_delimiter(v: &str) -> bool {
    let b = v.as_bytes();
    b.iter().enumerate().any(|(i, c)| {
        *c == b'\\' && matches!(b.get(i + 1), None | Some(b',' | b'=' | b' ' | b'\\'))
    })
}

fn device_tags(
    b: influxdb2::models::data_point::DataPointBuilder,
    t: &Tags,
) -> influxdb2::models::data_point::DataPointBuilder {
    let mut b = b
        .tag("site", &*t.site)
        .tag("device", &*t.device)
        .tag("kind", t.kind);
    for (k, v) in [
        ("enterprise", &t.enterprise),
        ("zone", &t.zone),
        ("system", &t.system),
        ("gas", &t.gas),
    ] {
        if let Some(v) = v {
            b = b.tag(k, &**v);
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use influxdb2::models::WriteDataPoint;

    fn line(r: &Record) -> String {
        let mut v = Vec::new();
        r.to_point().unwrap().write_data_point_to(&mut v).unwrap();
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn reading_line_has_tags_fields_and_ms_timestamp() {
        let r = Record::Reading {
            tags: Tags {
                site: "park 1".into(),
                device: "gas,1".into(),
                kind: "gas_toxic",
                enterprise: Some("e1".into()),
                zone: None,
                system: None,
                gas: Some("H2S".into()),
            },
            ts_ms: 1_700_000_000_123,
            ts_from_gateway: false,
            status: ReadingStatus::Fault,
            values: vec![("ppm".into(), 4.5)],
        };
        assert_eq!(
            line(&r),
            "reading,device=gas\\,1,enterprise=e1,gas=H2S,kind=gas_toxic,site=park\\ 1 ppm=4.5,status_code=1i 1700000000123\n"
        );
    }

    #[test]
    fn the_fast_path_writes_exactly_what_the_crate_writes() {
        let tags = Tags {
            site: "park 1".into(),
            device: "gas,1=x".into(),
            kind: "gas_toxic",
            enterprise: Some("e\\1".into()),
            zone: Some("z1".into()),
            system: None,
            gas: Some("H2S".into()),
        };
        let mut enc = LineEncoder::default();
        for (values, gw) in [
            (vec![("ppm".into(), 4.5), ("a_temp".into(), -0.125)], false),
            (vec![("zz".into(), 1e21), ("ppm".into(), 3.0)], true),
            (vec![("odd key".into(), 1.0)], false),
        ] {
            let r = Record::Reading {
                tags: tags.clone(),
                ts_ms: 1_700_000_000_123,
                ts_from_gateway: gw,
                status: ReadingStatus::Maintenance,
                values,
            };
            let mut fast = Vec::new();
            enc.encode(&r, &mut fast).unwrap();
            assert_eq!(String::from_utf8(fast).unwrap(), line(&r));
        }
    }

    #[test]
    fn a_device_whose_tags_changed_under_the_same_id_gets_its_new_tags() {
        // A reload moving a device to another zone keeps its id's `Arc` (core::live::place).
        let device: Arc<str> = "d1".into();
        let reading = |zone: &str| Record::Reading {
            tags: Tags {
                site: "p1".into(),
                device: device.clone(),
                kind: "gas_combustible",
                enterprise: None,
                zone: Some(zone.into()),
                system: None,
                gas: None,
            },
            ts_ms: 1,
            ts_from_gateway: false,
            status: ReadingStatus::Normal,
            values: vec![("lel".into(), 1.0)],
        };
        let mut enc = LineEncoder::default();
        for zone in ["z1", "z2", "z1"] {
            let mut out = Vec::new();
            enc.encode(&reading(zone), &mut out).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), line(&reading(zone)));
        }
    }

    /// Exact ties between two 17-digit strings, found by the property tests: written as
    /// `Display` writes them, not as ryu would.
    #[test]
    fn ties_in_the_last_digit_are_written_as_display_writes_them() {
        for v in [
            -1141829805648404.2,
            -2129849558785134.3,
            0.0,
            -0.0,
            14.0,
            0.000123,
        ] {
            let mut out = Vec::new();
            push_f64(&mut out, v);
            assert_eq!(String::from_utf8(out).unwrap(), format!("{v}"));
        }
        assert_eq!(significant_digits("0.0"), 0);
        assert_eq!(significant_digits("-0.000123"), 3);
        assert_eq!(significant_digits("-1141829805648404.2"), 17);
    }

    proptest::proptest! {
        /// The fast float path writes what `Display` (so the crate) writes, for any finite
        /// float: integral ones, negative zero, the tiny and the huge included.
        #[test]
        fn floats_are_written_as_display_writes_them(bits in proptest::num::u64::ANY, small in -1e6f64..1e6) {
            for v in [f64::from_bits(bits), small, small.trunc(), small / 1e9, -0.0, 1e21, 5e-324] {
                if v.is_finite() {
                    let mut out = Vec::new();
                    push_f64(&mut out, v);
                    proptest::prop_assert_eq!(String::from_utf8(out).unwrap(), format!("{v}"));
                }
            }
        }
    }

    /// Found by tests/it/fuzz_inputs.rs: these used to be written as lines the store refuses
    /// (`x=NaN`, a newline inside a key) or that lose a value (`status_code` twice), and a
    /// refused line makes the store drop the whole batch, other devices' readings with it.
    #[test]
    fn readings_line_protocol_cannot_carry_are_refused_and_nothing_is_written() {
        let tags = Tags {
            site: "p1".into(),
            device: "d1".into(),
            kind: "gas_toxic",
            enterprise: None,
            zone: None,
            system: None,
            gas: Some("H2S".into()),
        };
        let reading = |tags: &Tags, values: crate::core::event::Values| Record::Reading {
            tags: tags.clone(),
            ts_ms: 0,
            ts_from_gateway: false,
            status: ReadingStatus::Normal,
            values,
        };
        let mut enc = LineEncoder::default();
        for values in [
            vec![(crate::core::event::Channel::default(), f64::NAN)],
            vec![("x".into(), f64::INFINITY)],
            vec![("odd key".into(), f64::NEG_INFINITY)],
            vec![("status_code".into(), 0.0)],
            vec![("x".into(), 1.0), ("x".into(), 2.0)],
            vec![("a\nb".into(), 1.0)],
            vec![("a\\".into(), 1.0)],
            vec![(crate::core::event::Channel::default(), 1.0)],
        ] {
            let mut out = b"kept\n".to_vec();
            let r = reading(&tags, values.clone());
            assert!(enc.encode(&r, &mut out).is_err(), "{values:?}");
            assert_eq!(out, b"kept\n", "{values:?}");
        }
        for gas in ["H2S\\", "a\\,b", "", "H2S\n"] {
            let tags = Tags {
                device: "d2".into(),
                gas: Some(gas.into()),
                ..tags.clone()
            };
            for ch in ["plain", "needs escaping"] {
                let mut out = Vec::new();
                let r = reading(&tags, vec![(ch.into(), 1.0)]);
                let e = enc.encode(&r, &mut out).unwrap_err();
                assert!(e.to_string().contains("tag gas"), "{e}");
                assert!(out.is_empty());
            }
        }
    }

    /// The store queue holds up to `queue_capacity` records (200,000 by default), and a start
    /// with a large fleet reporting fills it: a rare variant must not make every record larger.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_record_is_no_larger_than_a_reading() {
        assert_eq!(std::mem::size_of::<Record>(), 152);
    }

    #[test]
    fn indicator_line() {
        let r = Record::Indicator(Box::new(IndicatorPoint {
            indicator: "online_rate",
            qualifier: None,
            scope: "site",
            scope_id: "p1".into(),
            window: "1h".into(),
            at_ms: 5,
            value: Some(0.75),
            numerator: 3.0,
            denominator: 4.0,
            target: Some(0.9),
            completion: None,
        }));
        assert_eq!(
            line(&r),
            "indicator,indicator=online_rate,scope=site,scope_id=p1,window=1h denominator=4,numerator=3,target=0.9,value=0.75 5\n"
        );
    }
}
