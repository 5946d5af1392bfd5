//! Property tests: `apply` never panics, on any JSON or any bytes, for the presets and for a
//! mapping that uses every feature; and a message whose records path finds 1 to
//! `max_records` records gives exactly one event per record, in order, anything else exactly
//! one rejection for the message. `PROPTEST_CASES=20000` runs them longer.

use super::*;
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

fn cases(n: u32) -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = n;
    }
    c.failure_persistence = None;
    c
}

const LIMITS: Limits = Limits {
    max_records: 4,
    max_channels: 3,
    max_id_bytes: 16,
    max_channel_name_bytes: 8,
};

/// Keys the mappings below read, and a few they do not.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "device",
            "ts",
            "values",
            "status",
            "datas",
            "pointCode",
            "pointValue",
            "pointStatus",
            "dataTime",
            "collectTime",
            "gatewayCode",
            "sensorType",
            "CH4",
            "lel",
            "t",
            "st",
        ])
        .prop_map(str::to_string),
        "[a-zA-Z_]{0,6}",
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from), // non-finite becomes null
        prop::sample::select(vec![
            "",
            "0",
            "00000000",
            "1",
            "12.5",
            " 7 ",
            "abc",
            "NaN",
            "1e400",
            "normal",
            "fault",
            "2023-11-15 06:13:20",
            "2023-11-14T22:13:20Z",
            "1700000000",
            "x/y",
            "\u{0}",
            "status_code",
        ])
        .prop_map(Value::from),
        "\\PC{0,20}".prop_map(Value::from),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..7).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..7)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Every feature at once: record and message paths, lists of paths, every placeholder kind,
/// a pattern time, a status map with a default, values with renames, scaled channels.
fn everything() -> Mapping {
    let cfg: MappingConfig = toml::from_str(
        r#"
        name = "all"
        preset = "none"
        topics = ["acme/+/+/up"]
        records = "$.datas[*]"
        site = "{topic:1}"
        device = "{msg:$.gatewayCode}-{$.pointCode}-{topic:2}{{x}}"
        time = ["$.dataTime", "msg:$.collectTime", "$.ts"]
        time_format = "yyyy-MM-dd HH:mm:ss"
        timezone = "+08:00"
        status = ["$.pointStatus", "$.status"]
        status_map = { "0" = "normal", "1" = "fault", "normal" = "normal" }
        status_default = "maintenance"
        values = "$.values"
        rename = { CH4 = "ch4", lel = "status_code" }
        [[channels]]
        name = "{$.sensorType}"
        path = ["$.pointValue", "$.t"]
        scale = 1e300
        offset = -1.0
        [[channels]]
        name = "v"
        path = "$..st"
        "#,
    )
    .expect("the test mapping parses");
    Mapping::compile(&cfg).expect("the test mapping compiles")
}

fn preset(p: &str) -> Mapping {
    let cfg: MappingConfig =
        toml::from_str(&format!("name = \"p\"\npreset = \"{p}\"")).expect("parses");
    Mapping::compile(&cfg).expect("compiles")
}

fn apply(m: &Mapping, payload: &[u8], topic: Option<&str>) -> Vec<SourceEvent> {
    let input = Input {
        payload,
        topic,
        site: Some("p1"),
        origin: Arc::from("fuzz"),
        received_ms: 0,
    };
    let mut out = Vec::new();
    m.apply(&input, &LIMITS, &mut out);
    out
}

/// How many records `[*]` finds on `v`: an array's elements or an object's members.
fn members(v: Option<&Value>) -> usize {
    match v {
        Some(Value::Array(a)) => a.len(),
        Some(Value::Object(o)) => o.len(),
        _ => 0,
    }
}

fn check_counts(out: &[SourceEvent], records: usize) -> Result<(), TestCaseError> {
    let element = |e: &SourceEvent| match e {
        SourceEvent::Reading { origin, .. } => origin.element,
        SourceEvent::Rejected(r) => r.origin.element,
        _ => Some(u32::MAX),
    };
    if (1..=LIMITS.max_records).contains(&records) {
        prop_assert_eq!(out.len(), records);
        for (i, e) in out.iter().enumerate() {
            prop_assert_eq!(element(e), Some(i as u32));
        }
    } else {
        prop_assert_eq!(out.len(), 1);
        prop_assert!(matches!(&out[0], SourceEvent::Rejected(r) if r.origin.element.is_none()));
    }
    for e in out {
        if let SourceEvent::Reading { reading, .. } = e {
            prop_assert!(!reading.values.is_empty());
            prop_assert!(reading.values.len() <= LIMITS.max_channels);
            prop_assert!(reading.values.iter().all(|(_, v)| v.is_finite()));
            prop_assert!(reading.device.len() <= LIMITS.max_id_bytes);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn any_json_gives_one_event_per_record_or_one_rejection(v in json(), wrap in any::<bool>()) {
        // Half the time inside an envelope, so the ministry paths find records.
        let v = if wrap { serde_json::json!({"gatewayCode": "G", "collectTime": "2023-11-15 06:13:20", "datas": v}) } else { v };
        let payload = serde_json::to_vec(&v).expect("serializes");
        check_counts(&apply(&preset("safegate"), &payload, None), members(Some(&v)))?;
        check_counts(&apply(&preset("ministry"), &payload, None), members(v.get("datas")))?;
        let all = everything();
        check_counts(&apply(&all, &payload, Some("acme/p1/gw/up")), members(v.get("datas")))?;
        check_counts(&apply(&all, &payload, Some("short")), members(v.get("datas")))?;
        check_counts(&apply(&all, &payload, None), members(v.get("datas")))?;
    }

    #[test]
    fn any_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        for m in [preset("safegate"), preset("ministry"), everything()] {
            let out = apply(&m, &bytes, Some("acme/p1/gw/up"));
            prop_assert!(!out.is_empty());
            if serde_json::from_slice::<Value>(&bytes).is_err() {
                prop_assert_eq!(out.len(), 1);
                prop_assert!(matches!(&out[0], SourceEvent::Rejected(r) if r.reason == Reason::MalformedJson));
            }
        }
    }
}

/// The paths of `everything` minus its descendant path (`$..st`), which turns pruning off.
fn prunable() -> Mapping {
    let cfg: MappingConfig = toml::from_str(
        r#"
        name = "pr"
        preset = "none"
        records = "$.datas[*]"
        site = "{msg:$.site}"
        device = "{msg:$.gatewayCode}-{$.pointCode}"
        time = ["$.dataTime", "msg:$.collectTime"]
        time_format = "yyyy-MM-dd HH:mm:ss"
        status = ["$.pointStatus", "$.status.code"]
        status_map = { "0" = "normal", "1" = "fault" }
        status_default = "maintenance"
        values = "$.values"
        [[channels]]
        name = "{$.sensorType}"
        path = ["$.pointValue", "$['t'][0]"]
        "#,
    )
    .expect("the test mapping parses");
    Mapping::compile(&cfg).expect("the test mapping compiles")
}

proptest! {
    #![proptest_config(cases(512))]

    /// Skipping what no path reads changes no event: the same readings and the same
    /// refusals, word for word, as parsing the message whole.
    #[test]
    fn pruning_changes_nothing(v in json(), wrap in any::<bool>(), site in any::<bool>()) {
        let v = if wrap {
            let mut env = serde_json::json!({"gatewayCode": "G", "collectTime": "2023-11-15 06:13:20", "datas": v, "dataId": [1, 2]});
            if site { env["site"] = serde_json::json!("p1"); }
            env
        } else { v };
        let payload = serde_json::to_vec(&v).expect("serializes");
        for m in [preset("safegate"), preset("ministry"), prunable()] {
            prop_assert!(m.prunes(), "{} prunes", m.name());
            let whole = m.unpruned();
            prop_assert_eq!(apply(&m, &payload, None), apply(&whole, &payload, None));
        }
        prop_assert!(!everything().prunes(), "a descendant path reads everything");
    }
}

proptest! {
    #![proptest_config(cases(512))]

    /// A path of member names, followed with `Value::get`, finds what the query finds.
    #[test]
    fn the_name_shortcut_finds_what_the_query_finds(v in json()) {
        for p in ["$.datas", "$.pointValue", "$.values.CH4", "$['t']['st']", "msg:$.gatewayCode", "$.a.b.c"] {
            let path = path::Path::compile(p).expect("compiles");
            let scope = Scope { record: &v, msg: &v };
            prop_assert_eq!(path.find(scope), path.queried().find(scope), "{}", p);
        }
    }
}
