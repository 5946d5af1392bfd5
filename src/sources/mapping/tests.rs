//! The mapping as a whole: a TOML element compiled and applied to messages.

use super::*;

const L: Limits = Limits {
    max_records: 5,
    max_channels: 6,
    max_id_bytes: 32,
    max_channel_name_bytes: 16,
};

fn cfg(toml_text: &str) -> MappingConfig {
    toml::from_str(toml_text).unwrap_or_else(|e| panic!("{e}\n{toml_text}"))
}

fn mapping(toml_text: &str) -> Mapping {
    Mapping::compile(&cfg(toml_text)).unwrap_or_else(|e| panic!("{e:?}"))
}

fn run(m: &Mapping, payload: &str, topic: Option<&str>, site: Option<&str>) -> Vec<SourceEvent> {
    let mut out = Vec::new();
    let input = Input {
        payload: payload.as_bytes(),
        topic,
        site,
        origin: Arc::from(topic.unwrap_or("POST /api/v1/ingest/p1/x")),
        received_ms: 1_000,
    };
    m.apply(&input, &L, &mut out);
    out
}

fn http(m: &Mapping, payload: &str) -> Vec<SourceEvent> {
    run(m, payload, None, Some("p1"))
}

fn reading(ev: &SourceEvent) -> &RawReading {
    match ev {
        SourceEvent::Reading { reading, .. } => reading,
        other => panic!("not a reading: {other:?}"),
    }
}

fn refusal(ev: &SourceEvent) -> (Reason, Option<u32>, &str) {
    match ev {
        SourceEvent::Rejected(r) => (r.reason, r.origin.element, r.detail.as_str()),
        other => panic!("not a rejection: {other:?}"),
    }
}

fn first_refusal(out: Vec<SourceEvent>) -> (Reason, Option<u32>, String) {
    let (r, el, d) = refusal(&out[0]);
    (r, el, d.to_string())
}

fn vals(r: &RawReading) -> Vec<(&str, f64)> {
    r.values.iter().map(|(k, v)| (k.as_str(), *v)).collect()
}

#[test]
fn the_safegate_preset_maps_the_native_batch_element() {
    let m = mapping(r#"name = "native""#);
    let out = http(
        &m,
        r#"[{"device":"gas-1","ts":1700000000000,"values":{"lel":3.5}},
            {"device":"gas-2","ts":"2023-11-14T22:13:20Z","values":{"lel":1},"status":"fault"}]"#,
    );
    assert_eq!(out.len(), 2);
    let r = reading(&out[0]);
    assert_eq!(
        (r.site.as_str(), r.device.as_str(), r.ts_ms, r.status),
        (
            "p1",
            "gas-1",
            Some(1_700_000_000_000),
            ReadingStatus::Normal
        )
    );
    assert_eq!(vals(r), [("lel", 3.5)]);
    assert_eq!(reading(&out[1]).status, ReadingStatus::Fault);
    let SourceEvent::Reading {
        origin,
        received_ms,
        ..
    } = &out[1]
    else {
        unreachable!()
    };
    assert_eq!((origin.element, *received_ms), (Some(1), 1_000));
    let (reason, el, detail) = first_refusal(http(
        &m,
        r#"[{"device":"d","values":{"a":1},"status":"odd"}]"#,
    ));
    assert_eq!((reason, el), (Reason::InvalidValue, Some(0)));
    assert_eq!(
        detail,
        r#"mapping "native", record 0: status at $.status is "odd", which status_map does not list"#
    );
}

#[test]
fn records_are_selected_by_path_and_dollar_is_the_message_itself() {
    let m = mapping(
        r#"name = "one"
           records = "$"
           device = "{$.id}""#,
    );
    let out = http(&m, r#"{"id":"d1","values":{"a":1}}"#);
    assert_eq!(reading(&out[0]).device, "d1");
    let m = mapping(
        r#"name = "deep"
           records = "$.body.items[?@.kind == 'gas']"
           device = "{$.id}""#,
    );
    let out = http(
        &m,
        r#"{"body":{"items":[{"kind":"gas","id":"a","values":{"x":1}},{"kind":"other","id":"b"},{"kind":"gas","id":"c","values":{"x":2}}]}}"#,
    );
    let ids: Vec<&str> = out.iter().map(|e| reading(e).device.as_str()).collect();
    assert_eq!(ids, ["a", "c"]);
}

#[test]
fn whole_message_failures_are_one_rejection_without_an_element() {
    let m = mapping(r#"name = "acme""#);
    let (r, el, d) = first_refusal(http(&m, "not json"));
    assert_eq!((r, el), (Reason::MalformedJson, None));
    assert!(
        d.starts_with(r#"mapping "acme": the message is not JSON"#),
        "{d}"
    );
    // `[*]` selects an array's elements (and an object's members: `{}` has none).
    for empty in ["[]", "{}", "5"] {
        let out = http(&m, empty);
        assert_eq!(out.len(), 1);
        assert_eq!(refusal(&out[0]).0, Reason::MappingFailed);
    }
    let out = http(&m, "[]");
    assert_eq!(
        refusal(&out[0]),
        (
            Reason::MappingFailed,
            None,
            r#"mapping "acme": records $[*]: found nothing"#
        )
    );
    let six = format!("[{}]", [r#"{"device":"d","values":{"a":1}}"#; 6].join(","));
    let out = http(&m, &six);
    assert_eq!(out.len(), 1);
    assert_eq!(
        refusal(&out[0]),
        (
            Reason::BatchTooLarge,
            None,
            r#"mapping "acme": records $[*]: found 6 records, the limit is 5"#
        )
    );
}

#[test]
fn one_bad_record_never_loses_the_others() {
    let m = mapping(r#"name = "acme""#);
    let out = http(
        &m,
        r#"[{"device":"a","values":{"x":1}}, {"values":{"x":1}}, 7, {"device":"c","values":{"x":"oops"}}, {"device":"e","values":{"x":2}}]"#,
    );
    assert_eq!(out.len(), 5);
    assert_eq!(reading(&out[0]).device, "a");
    assert_eq!(
        refusal(&out[1]),
        (
            Reason::MappingFailed,
            Some(1),
            r#"mapping "acme", record 1: device {$.device}: found nothing"#
        )
    );
    assert_eq!(refusal(&out[2]).0, Reason::MappingFailed);
    assert_eq!(
        refusal(&out[3]),
        (
            Reason::InvalidValue,
            Some(3),
            r#"mapping "acme", record 3: value of channel "x" at $.values is "oops", not a number"#
        )
    );
    assert_eq!(reading(&out[4]).device, "e");
}

#[test]
fn placeholders_take_record_and_message_paths_topic_levels_and_the_site() {
    let m = mapping(
        r#"name = "tpl"
           preset = "none"
           topics = ["acme/+/+/up"]
           records = "$.items[*]"
           site = "{topic:1}"
           device = "{msg:$.gw}-{$.code}-{topic:2}"
           values = "$.v""#,
    );
    let out = run(
        &m,
        r#"{"gw":"G1","items":[{"code":7,"v":{"a":1}}]}"#,
        Some("acme/park-3/line2/up"),
        None,
    );
    let r = reading(&out[0]);
    assert_eq!(
        (r.site.as_str(), r.device.as_str()),
        ("park-3", "G1-7-line2")
    );
    // Over HTTP there is no topic: the record is refused and says why.
    let (reason, _, d) = first_refusal(http(&m, r#"{"gw":"G1","items":[{"code":7,"v":{"a":1}}]}"#));
    assert_eq!(reason, Reason::MappingFailed);
    assert_eq!(
        d,
        r#"mapping "tpl", record 0: site {topic:1}: the message has no MQTT topic (it came over HTTP)"#
    );
    // `{site}` over MQTT: refused, pointing at {topic:N}.
    let m = mapping(r#"name = "s""#);
    let (reason, _, d) = first_refusal(run(
        &m,
        r#"[{"device":"d","values":{"a":1}}]"#,
        Some("x/y"),
        None,
    ));
    assert_eq!(reason, Reason::MappingFailed);
    assert!(d.contains("site {site}: no site in the URL"), "{d}");
}

#[test]
fn required_paths_finding_several_values_or_a_non_scalar_are_mapping_failed() {
    let m = mapping(
        r#"name = "m"
           device = "{$.ids[*]}""#,
    );
    let d = first_refusal(http(&m, r#"[{"ids":["a","b"],"values":{"x":1}}]"#)).2;
    assert_eq!(
        d,
        r#"mapping "m", record 0: device {$.ids[*]}: found 2 values"#
    );
    let m = mapping(r#"name = "m""#);
    let out = http(
        &m,
        r#"[{"device":{"id":1},"values":{"x":1}}, {"device":"d","values":[1]}, {"device":"d","values":{"x":1},"ts":{"s":1}}]"#,
    );
    let details: Vec<(Reason, &str)> = out.iter().map(|e| (refusal(e).0, refusal(e).2)).collect();
    assert_eq!(
        details,
        [
            (
                Reason::MappingFailed,
                r#"mapping "m", record 0: device {$.device}: found an object, not a string or number"#
            ),
            (
                Reason::MappingFailed,
                r#"mapping "m", record 1: values at $.values: found an array, not an object of channel → number"#
            ),
            (
                Reason::MappingFailed,
                r#"mapping "m", record 2: time at $.ts: found an object, not a single value"#
            ),
        ]
    );
}

#[test]
fn lists_of_paths_are_tried_in_order_and_null_counts_as_absent() {
    let m = mapping(
        r#"name = "t"
           preset = "none"
           records = "$.d[*]"
           device = "{$.p}"
           time = ["$.t", "msg:$.ct"]
           time_format = "epoch_s"
           [[channels]]
           name = "v"
           path = ["$.value", "$.val"]"#,
    );
    let out = http(
        &m,
        r#"{"ct": 100, "d": [{"p":"a","t":5,"value":1}, {"p":"b","t":null,"val":2}, {"p":"c","value":null,"val":3}]}"#,
    );
    type Got<'a> = Vec<(Option<i64>, Vec<(&'a str, f64)>)>;
    let got: Got = out
        .iter()
        .map(|e| (reading(e).ts_ms, vals(reading(e))))
        .collect();
    assert_eq!(
        got,
        [
            (Some(5_000), vec![("v", 1.0)]),
            (Some(100_000), vec![("v", 2.0)]),
            (Some(100_000), vec![("v", 3.0)]),
        ]
    );
    // No time path finds anything: no device time, the gateway stamps it.
    let out = http(&m, r#"{"d": [{"p":"a","value":1}]}"#);
    assert_eq!(reading(&out[0]).ts_ms, None);
}

#[test]
fn bad_times_are_bad_timestamp_naming_the_path() {
    let m = mapping(
        r#"name = "min"
           preset = "ministry""#,
    );
    let (r, _, d) = first_refusal(http(
        &m,
        r#"{"datas":[{"pointCode":"p","pointValue":1,"dataTime":"yesterday"}]}"#,
    ));
    assert_eq!(r, Reason::BadTimestamp);
    assert!(
        d.starts_with(r#"mapping "min", record 0: time at $.dataTime is "yesterday", which does not fit the pattern"#),
        "{d}"
    );
    let m = mapping(r#"name = "n""#);
    let (r, _, d) = first_refusal(http(&m, r#"[{"device":"d","values":{"a":1},"ts":"soon"}]"#));
    assert_eq!(r, Reason::BadTimestamp);
    assert_eq!(
        d,
        r#"mapping "n", record 0: time at $.ts is "soon", not an RFC 3339 time"#
    );
}

#[test]
fn time_patterns_are_read_in_the_configured_timezone() {
    let base = r#"name = "z"
           preset = "none"
           records = "$"
           device = "d"
           time = "$.t"
           [[channels]]
           name = "v"
           path = "$.v""#;
    let at = |extra: &str, t: &str| {
        let m = mapping(&format!("{extra}\n{base}"));
        reading(&http(&m, &format!(r#"{{"t":{t},"v":1}}"#))[0]).ts_ms
    };
    let want = Some(1_700_000_000_000);
    assert_eq!(
        at(
            r#"time_format = "yyyy-MM-dd HH:mm:ss""#,
            r#""2023-11-15 06:13:20""#
        ),
        want
    );
    assert_eq!(
        at(
            r#"time_format = "yyyyMMddHHmmss"
              timezone = "Z""#,
            r#""20231114221320""#
        ),
        want
    );
    assert_eq!(
        at(
            r#"time_format = "[year]-[month]-[day] [hour]:[minute]:[second]"
              timezone = "-05:00""#,
            r#""2023-11-14 17:13:20""#
        ),
        want
    );
    assert_eq!(
        at(r#"time_format = "epoch_ms""#, r#""1700000000000""#),
        want
    );
    assert_eq!(
        at(
            r#"time_format = "rfc3339""#,
            r#""2023-11-15T06:13:20+08:00""#
        ),
        want
    );
}

#[test]
fn status_codes_are_mapped_with_a_default_for_the_rest() {
    let m = mapping(
        r#"name = "st"
           preset = "ministry"
           status_map = { "0" = "normal", "1" = "fault", "4" = "maintenance" }
           status_default = "reject""#,
    );
    let out = http(
        &m,
        r#"{"datas":[{"pointCode":"a","pointValue":1,"pointStatus":0},{"pointCode":"b","pointValue":1,"pointStatus":"4"},{"pointCode":"c","pointValue":1,"pointStatus":1.0},{"pointCode":"d","pointValue":1,"pointStatus":"9"},{"pointCode":"e","pointValue":1}]}"#,
    );
    assert_eq!(reading(&out[0]).status, ReadingStatus::Normal);
    assert_eq!(reading(&out[1]).status, ReadingStatus::Maintenance);
    assert_eq!(reading(&out[2]).status, ReadingStatus::Fault);
    assert_eq!(
        refusal(&out[3]),
        (
            Reason::InvalidValue,
            Some(3),
            r#"mapping "st", record 3: status at $.pointStatus is "9", which status_map does not list"#
        )
    );
    assert_eq!(reading(&out[4]).status, ReadingStatus::Normal);
    // The ministry preset's own default: an unknown code is a fault.
    let m = mapping(
        r#"name = "min"
                       preset = "ministry""#,
    );
    let out = http(
        &m,
        r#"{"datas":[{"pointCode":"a","pointValue":1,"pointStatus":"00000000"},{"pointCode":"b","pointValue":1,"pointStatus":"00000010"}]}"#,
    );
    assert_eq!(reading(&out[0]).status, ReadingStatus::Normal);
    assert_eq!(reading(&out[1]).status, ReadingStatus::Fault);
}

#[test]
fn values_objects_are_renamed_and_channels_scaled() {
    let m = mapping(
        r#"name = "v"
           device = "{$.device}"
           rename = { CH4 = "ch4", O2 = "o2" }
           [[channels]]
           name = "temp_c"
           path = "$.t_raw"
           scale = 0.1
           offset = -40.0
           [[channels]]
           name = "{$.kind}"
           path = "$.reading""#,
    );
    let out = http(
        &m,
        r#"[{"device":"d","values":{"CH4":"1.5","O2":20.9,"skip":null,"h2s":0},"t_raw":650,"kind":"co","reading":" 12 "}]"#,
    );
    let got = vals(reading(&out[0]));
    assert_eq!(got.len(), 5, "{got:?}");
    assert!(
        got.contains(&("ch4", 1.5)) && got.contains(&("o2", 20.9)) && got.contains(&("h2s", 0.0))
    );
    let t = got.iter().find(|(k, _)| *k == "temp_c").unwrap().1;
    assert!((t - 25.0).abs() < 1e-9, "{t}");
    assert!(got.contains(&("co", 12.0)));
}

#[test]
fn a_record_with_no_channel_left_is_empty_values() {
    let m = mapping(
        r#"name = "e"
                       preset = "ministry""#,
    );
    let out = http(
        &m,
        r#"{"datas":[{"pointCode":"a","pointValue":null},{"pointCode":"b"}]}"#,
    );
    for (i, ev) in out.iter().enumerate() {
        let (r, el, d) = refusal(ev);
        assert_eq!((r, el), (Reason::EmptyValues, Some(i as u32)));
        assert_eq!(
            d,
            format!(
                r#"mapping "e", record {i}: no channel has a value (absent or null): channel "value" at $.pointValue"#
            )
        );
    }
}

#[test]
fn limits_on_channels_ids_and_names_are_kept() {
    let m = mapping(r#"name = "l""#);
    let out = http(
        &m,
        &format!(
            r#"[{{"device":"d","values":{{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7}}}},
                {{"device":"{}","values":{{"a":1}}}},
                {{"device":"d","values":{{"{}":1}}}},
                {{"device":"","values":{{"a":1}}}},
                {{"device":"d","values":{{"status_code":1}}}}]"#,
            "x".repeat(33),
            "n".repeat(17)
        ),
    );
    assert_eq!(refusal(&out[0]).0, Reason::TooManyChannels);
    assert!(
        refusal(&out[0])
            .2
            .contains("more than 6 channels (max_channels)"),
        "{:?}",
        out[0]
    );
    let (r, _, d) = refusal(&out[1]);
    assert_eq!(r, Reason::InvalidValue);
    assert!(
        d.contains("device {$.device} is") && d.contains("33 bytes; ids are at most 32"),
        "{d}"
    );
    let (r, _, d) = refusal(&out[2]);
    assert_eq!(r, Reason::InvalidValue);
    assert!(
        d.contains("channel name") && d.contains("17 bytes, the limit is 16"),
        "{d}"
    );
    assert_eq!(
        refusal(&out[3]),
        (
            Reason::InvalidValue,
            Some(3),
            r#"mapping "l", record 3: device {$.device} is empty"#
        )
    );
    let (r, _, d) = refusal(&out[4]);
    assert_eq!(r, Reason::InvalidValue);
    assert!(d.contains("a field the gateway writes itself"), "{d}");
}

#[test]
fn scale_and_offset_must_give_a_finite_number() {
    let m = mapping(
        r#"name = "f"
           preset = "none"
           records = "$"
           device = "d"
           [[channels]]
           name = "v"
           path = "$.v"
           scale = 1e300"#,
    );
    let (r, _, d) = first_refusal(http(&m, r#"{"v": 1e300}"#));
    assert_eq!(r, Reason::InvalidValue);
    assert!(
        d.contains(r#"value of channel "v" at $.v"#) && d.contains("not a finite number"),
        "{d}"
    );
}

#[test]
fn compile_errors_name_each_key() {
    let e = Mapping::compile(&cfg(r#"name = "Bad Name"
           topics = ["a/#/b"]
           preset = "none"
           site = "{nope}"
           time = ["$.ok", "$.bad["]
           time_format = "yyyy-MM-dd hh"
           timezone = "Asia/Shanghai"
           status_map = { "1" = "broken" }
           status_default = "maybe"
           values = "values"
           [[channels]]
           name = "{$.k"
           path = "$.v"
           scale = inf"#))
    .unwrap_err();
    let keys: Vec<&str> = e.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "name",
            "topics[0]",
            "records",
            "site",
            "device",
            "time[1]",
            "time_format",
            "timezone",
            "status_map.1",
            "status_default",
            "values",
            "channels[0].name",
            "channels[0].scale",
        ],
        "{e:#?}"
    );
    assert!(e[3].1.contains("unknown placeholder {nope}"), "{e:?}");
    let e = Mapping::compile(&cfg(r#"name = "x"
                                     preset = "none"
                                     records = "$"
                                     device = "d""#))
    .unwrap_err();
    assert_eq!(e[0].0, "channels");
    assert!(toml::from_str::<MappingConfig>("name = \"x\"\nrecods = \"$\"").is_err());
}

#[test]
fn mappings_are_found_by_name_and_topic_and_must_not_clash() {
    let ms = Mappings::compile(&[
        cfg(r#"name = "a"
               topics = ["acme/+/t"]"#),
        cfg(r#"name = "b"
               topics = ["acme/#", "other/x"]"#),
    ])
    .unwrap();
    assert_eq!(ms.get("b").map(Mapping::name), Some("b"));
    assert!(ms.get("c").is_none());
    assert_eq!(ms.for_topic("acme/p/t").map(Mapping::name), Some("a"));
    assert_eq!(ms.for_topic("acme/p/q").map(Mapping::name), Some("b"));
    assert!(ms.for_topic("nope").is_none());
    assert_eq!(ms.topic_filters(), ["acme/+/t", "acme/#", "other/x"]);
    assert!(!ms.is_empty() && Mappings::default().is_empty());
    let e = Mappings::compile(&[
        cfg(r#"name = "a"
               topics = ["t/1"]"#),
        cfg(r#"name = "a"
               topics = ["t/1"]
               records = "$["
               "#),
    ])
    .unwrap_err();
    let keys: Vec<&str> = e.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            r#"mappings[1] ("a").name"#,
            r#"mappings[1] ("a").topics[0]"#,
            r#"mappings[1] ("a").records"#
        ],
        "{e:?}"
    );
}
