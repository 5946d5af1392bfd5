//! Whole-file tests: every file type, both encodings, every status bit and anomaly code, every
//! refusal; then the hand-written samples in tests/data/mine/.

use super::*;
use crate::model::DeviceKind;
use proptest::prelude::*;

const CST: i32 = 8 * 3600;
const MINE: &str = "150621011038";

/// Epoch ms of a local time on 2026-03-01 at +08:00 (08:00 local is 00:00 UTC).
fn at(h: i64, m: i64, s: i64) -> i64 {
    1_772_323_200_000 + ((h - 8) * 3600 + m * 60 + s) * 1000
}

fn name(kind: &str) -> String {
    format!("{MINE}_{kind}_20260301080500.txt")
}

/// A file of `kind` with the short header and these records.
fn file(records: &[&str]) -> String {
    let mut s = format!("{MINE};示范煤矿;2026-03-01 08:05:00~");
    for r in records {
        s.push_str(r);
        s.push('~');
    }
    s.push_str("||");
    s
}

fn parse(kind: &str, text: &str) -> ParsedFile {
    parse_file(&name(kind), text.as_bytes(), CST).unwrap()
}

fn only(p: &ParsedFile) -> &Record {
    assert!(p.refused.is_empty(), "{:?}", p.refused);
    assert_eq!(p.records.len(), 1, "{:?}", p.records);
    &p.records[0].1
}

fn refused(kind: &str, record: &str) -> RecordError {
    let p = parse(kind, &file(&[record]));
    assert!(p.records.is_empty(), "{:?}", p.records);
    assert_eq!(p.refused.len(), 1);
    p.refused[0].clone()
}

const CDDY_HEADER: &str =
    "150621011038;示范煤矿;KJ95X;安全监控系统;示范监控科技有限公司;2028-12-31;2026-03-01 08:00:00~";

fn cddy(record: &str) -> String {
    format!("{CDDY_HEADER}{record}~||")
}

#[test]
fn a_cddy_point_has_its_thresholds_and_no_value_for_9999() {
    let text = cddy("P1;01;F1;0001;MN;%CH4;4.00;0.00;0.80;0.75;-9999;;1.50;1.00;-9999;-9999;;;回风巷;1.5;-2;;D-K1:B-P1;2026-03-01 08:00:00");
    let p = parse_file(&name("CDDY"), text.as_bytes(), CST).unwrap();
    assert_eq!(p.header.fields.len(), 7);
    assert_eq!(p.header.data_ms, at(8, 0, 0));
    let Record::Point(d) = only(&p) else { panic!() };
    assert_eq!(
        (
            d.code.as_str(),
            d.system_code.as_str(),
            d.substation.as_str()
        ),
        ("P1", "01", "F1")
    );
    assert_eq!(d.value_type, ValueType::Analog);
    assert_eq!(
        sensor_kind(&d.sensor_type, d.value_type),
        DeviceKind::Methane
    );
    assert_eq!((d.range_high, d.range_low), (Some(4.0), Some(0.0)));
    assert_eq!((d.alarm_high, d.alarm_high_clear), (Some(0.8), Some(0.75)));
    assert_eq!((d.alarm_low, d.alarm_low_clear), (None, None));
    assert_eq!(
        (d.cut_high, d.restore_high, d.cut_low, d.restore_low),
        (Some(1.5), Some(1.0), None, None)
    );
    assert_eq!(d.xyz, [Some(1.5), Some(-2.0), None]);
    assert_eq!(
        (d.location.as_str(), d.relation.as_str()),
        ("回风巷", "D-K1:B-P1")
    );
    assert_eq!(d.data_ms, at(8, 0, 0));
}

#[test]
fn value_types_and_sensor_types_map_to_device_kinds() {
    for (code, vt, kind) in [
        ("MN", ValueType::Analog, DeviceKind::Other),
        ("KG", ValueType::Switch, DeviceKind::Switch),
        ("LJ", ValueType::Cumulative, DeviceKind::Cumulative),
        ("DT", ValueType::MultiState, DeviceKind::Switch),
    ] {
        let rec = format!("P1;01;F1;0014;{code};;;;;;;;;;;;;;;;;;;2026-03-01 08:00:00");
        let p = parse_file(&name("CDDY"), cddy(&rec).as_bytes(), CST).unwrap();
        let Record::Point(d) = only(&p) else { panic!() };
        assert_eq!(d.value_type, vt);
        assert_eq!(sensor_kind(&d.sensor_type, d.value_type), kind, "{code}");
    }
    for (t, kind) in [
        ("0001", DeviceKind::Methane),
        ("0043", DeviceKind::Methane),
        ("0002", DeviceKind::WindSpeed),
        ("0003", DeviceKind::Temperature),
        ("0004", DeviceKind::CarbonMonoxide),
        ("0012", DeviceKind::Oxygen),
        ("0013", DeviceKind::CarbonDioxide),
        ("0005", DeviceKind::Other),
        ("9999", DeviceKind::Other),
    ] {
        assert_eq!(sensor_kind(t, ValueType::Analog), kind, "{t}");
    }
    assert_eq!(sensor_kind("0001", ValueType::Switch), DeviceKind::Switch);
    assert_eq!(
        sensor_kind("3001", ValueType::Cumulative),
        DeviceKind::Cumulative
    );
    assert_eq!(sensor_name("0001"), Some("环境瓦斯"));
    assert_eq!(sensor_name("1010"), Some("主通风机"));
    assert_eq!(sensor_name("4002"), Some("电源状态"));
    assert_eq!(sensor_name("0000"), None);
}

#[test]
fn a_cdss_value_parses_with_its_status() {
    let p = parse(
        "CDSS",
        &file(&["P1;环境瓦斯;回风巷;0.32;%CH4;3;2026-03-01 08:05:00"]),
    );
    let Record::Value(v) = only(&p) else { panic!() };
    assert_eq!(v.value, Some(0.32));
    assert_eq!(v.status, PointStatus(3));
    assert!(v.status.is_alarm() && v.status.is_cut());
    assert_eq!(v.status.names(), ["报警", "断电"]);
    assert_eq!(v.data_ms, at(8, 5, 0));
    assert_eq!(p.records[0].0, 2);
    assert_eq!(p.header.mine_name, "示范煤矿");
    assert_eq!(p.encoding, Encoding::Utf8);
}

#[test]
fn every_status_bit_reads_in_decimal_and_in_binary() {
    let bits: [(u16, &str, &str); 8] = [
        (PointStatus::ALARM, "00000001", "报警"),
        (PointStatus::CUT, "00000010", "断电"),
        (PointStatus::CALIBRATING, "00000100", "标校"),
        (PointStatus::OVER_RANGE, "00001000", "超量程"),
        (PointStatus::SUBSTATION_FAULT, "00010000", "分站故障"),
        (PointStatus::NOT_POLLED, "00100000", "不巡检"),
        (PointStatus::PAUSED, "01000000", "暂停"),
        (PointStatus::SENSOR_FAULT, "10000000", "传感器故障"),
    ];
    for (bit, binary, zh) in bits {
        for spelling in [bit.to_string(), binary.to_string()] {
            let rec = format!("P1;开关;井口;1;;{spelling};2026-03-01 08:05:00");
            let p = parse("CDSS", &file(&[&rec]));
            let Record::Value(v) = only(&p) else { panic!() };
            assert_eq!(v.status, PointStatus(bit), "{spelling}");
            assert_eq!(v.status.names(), [zh]);
            assert_eq!(v.value, Some(1.0));
        }
    }
    assert_eq!(PointStatus::parse("0"), Some(PointStatus(0)));
    assert_eq!(PointStatus(0).names(), ["正常"]);
    assert_eq!(PointStatus::parse("00000000"), Some(PointStatus(0)));
    assert_eq!(PointStatus::parse("255"), Some(PointStatus(255)));
    assert_eq!(PointStatus::parse("11111111"), Some(PointStatus(255)));
    // Not 8 characters: decimal, so 7 binary-looking digits are a decimal number.
    assert_eq!(PointStatus::parse("0000001"), Some(PointStatus(1)));
    assert_eq!(PointStatus::parse("000000012"), Some(PointStatus(12)));
    for bad in ["", "256", "-1", "0x01", "1.0", "100000000", "0000000a"] {
        assert_eq!(PointStatus::parse(bad), None, "{bad}");
    }
    let s = PointStatus(PointStatus::CALIBRATING | PointStatus::SENSOR_FAULT);
    assert!(s.is_maintenance() && s.is_fault() && !s.is_alarm() && !s.is_cut());
    assert!(PointStatus(PointStatus::NOT_POLLED).is_maintenance());
    assert!(PointStatus(PointStatus::PAUSED).is_maintenance());
    assert!(PointStatus(PointStatus::SUBSTATION_FAULT).is_fault());
    assert!(!PointStatus(PointStatus::OVER_RANGE).is_fault());
}

#[test]
fn every_anomaly_code_reads_with_leading_zeros_or_without() {
    let kinds = [
        ("001", AnomalyKind::OverLimit, "over_limit", "超限报警"),
        ("002", AnomalyKind::CutOff, "cut_off", "断电报警"),
        (
            "003",
            AnomalyKind::FeedAbnormal,
            "feed_abnormal",
            "馈电异常",
        ),
        (
            "004",
            AnomalyKind::SensorDisconnected,
            "sensor_disconnected",
            "传感器断线",
        ),
        (
            "005",
            AnomalyKind::StationPowerOff,
            "station_power_off",
            "基站断电",
        ),
        (
            "006",
            AnomalyKind::StationUnreachable,
            "station_unreachable",
            "基站不通",
        ),
        ("007", AnomalyKind::Calibrating, "calibrating", "标校"),
        ("008", AnomalyKind::OverRange, "over_range", "超量程"),
        (
            "009",
            AnomalyKind::OverUpperWarning,
            "over_upper_warning",
            "超上限预警",
        ),
        (
            "010",
            AnomalyKind::UnderLowerWarning,
            "under_lower_warning",
            "超下限预警",
        ),
    ];
    for (code, kind, snake, zh) in kinds {
        let rec = format!("P1;环境瓦斯;回风巷;%CH4;{code};2026-03-01 08:00:00;;1.2;2026-03-01 08:01:00;0.9;;1.0;原因;;;;2026-03-01 08:05:00");
        let p = parse("YCBJ", &file(&[&rec]));
        let Record::Anomaly(a) = only(&p) else {
            panic!()
        };
        assert_eq!(a.kind, kind);
        assert_eq!((kind.as_str(), kind.zh()), (snake, zh));
        assert_eq!((a.start_ms, a.end_ms), (at(8, 0, 0), None));
        assert_eq!(
            (a.max, a.max_ms, a.min, a.min_ms),
            (Some(1.2), Some(at(8, 1, 0)), Some(0.9), None)
        );
        assert_eq!((a.measure.as_str(), a.entered_ms), ("", None));
        assert_eq!(
            AnomalyKind::from_code(code.trim_start_matches('0')),
            Some(kind)
        );
    }
    for bad in ["", "000", "011", "1a", "-1"] {
        assert_eq!(AnomalyKind::from_code(bad), None, "{bad}");
    }
}

#[test]
fn substations_and_base_stations_parse_with_their_states() {
    let p = parse("FZDY", &file(&["F1;变电所;1;2;3;2026-03-01 08:00:00"]));
    let Record::Substation(s) = only(&p) else {
        panic!()
    };
    assert_eq!((s.code.as_str(), s.location.as_str()), ("F1", "变电所"));
    assert_eq!(s.xyz, [Some(1.0), Some(2.0), Some(3.0)]);

    let runs = [
        ("0", RunState::Normal),
        ("1", RunState::CommInterrupted),
        ("2", RunState::Fault),
        ("9", RunState::Unknown),
    ];
    let powers = [
        ("0", PowerState::Dc),
        ("1", PowerState::Ac),
        ("2", PowerState::PowerFault),
        ("9", PowerState::Unknown),
    ];
    for ((r, run), (w, power)) in runs.into_iter().zip(powers) {
        let rec = format!("S1;{r};{w};2026-03-01 08:05:00");
        let fz = parse("FZSS", &file(&[&rec]));
        let expected = StationState {
            code: "S1".into(),
            run,
            power,
            data_ms: at(8, 5, 0),
        };
        assert_eq!(only(&fz), &Record::SubstationState(expected.clone()));
        let jz = parse("JZSS", &file(&[&rec]));
        assert_eq!(only(&jz), &Record::BaseStation(expected));
    }
    assert_eq!(
        refused("FZSS", "S1;3;0;2026-03-01 08:05:00").reason,
        RecordReason::BadCode
    );
    let e = refused("JZSS", "S1;0;;2026-03-01 08:05:00");
    assert_eq!(e.reason, RecordReason::BadCode);
    assert!(e.detail.contains("供电状态"), "{}", e.detail);
}

#[test]
fn a_person_parses_and_their_name_stays_out_of_debug() {
    let p = parse("RYSS", &file(&["C1;张三;1;2026-03-01 07:40:00;;Q1;2026-03-01 07:55:00;J1;2026-03-01 07:58:00;三八制;-3.5;求救;1;;J0&2026-03-01 07:40:00, J1&2026-03-01 07:58:00,J2"]));
    let Record::Person(r) = only(&p) else {
        panic!()
    };
    assert_eq!(
        (r.card.as_str(), r.name.as_str(), r.underground),
        ("C1", "张三", true)
    );
    assert_eq!((r.entered_ms, r.left_ms), (Some(at(7, 40, 0)), None));
    assert_eq!((r.area.as_str(), r.area_ms), ("Q1", Some(at(7, 55, 0))));
    assert_eq!(
        (r.station.as_str(), r.station_ms),
        ("J1", Some(at(7, 58, 0)))
    );
    assert_eq!(
        (r.shift_mode.as_str(), r.distance_m, r.work_status.as_str()),
        ("三八制", Some(-3.5), "求救")
    );
    assert_eq!((r.is_leader, r.is_special), (Some(true), None));
    let track: Vec<_> = r
        .track
        .iter()
        .map(|t| (t.station.as_str(), t.at_ms))
        .collect();
    assert_eq!(
        track,
        [
            ("J0", Some(at(7, 40, 0))),
            ("J1", Some(at(7, 58, 0))),
            ("J2", None)
        ]
    );
    let debug = format!("{:?}", p);
    assert!(
        !debug.contains("张三") && debug.contains("<redacted>"),
        "{debug}"
    );

    for (flag, underground) in [("0", false), ("2", false)] {
        let rec = format!("C1;李四;{flag};;;;;;;;;;;;");
        let Record::Person(r) = only(&parse("RYSS", &file(&[&rec]))).clone() else {
            panic!()
        };
        assert_eq!((r.underground, r.in_out_flag.as_str()), (underground, flag));
        assert!(r.track.is_empty());
    }
    assert_eq!(
        refused("RYSS", "C1;李四;3;;;;;;;;;;;;").reason,
        RecordReason::BadCode
    );
    assert_eq!(
        refused("RYSS", "C1;李四;1;;;;;;;;;;2;;").reason,
        RecordReason::BadCode
    );
    assert_eq!(
        refused("RYSS", "C1;李四;1;;;;;;;;;;;;J1&08:00").reason,
        RecordReason::BadTime
    );
    assert_eq!(
        refused("RYSS", ";李四;1;;;;;;;;;;;;").reason,
        RecordReason::EmptyCode
    );
}

#[test]
fn base_station_and_area_definitions_parse() {
    let p = parse("RYJZ", &file(&["J1;回风巷口;a;;b;"]));
    let Record::BaseStationDef(d) = only(&p) else {
        panic!()
    };
    assert_eq!((d.code.as_str(), d.location.as_str()), ("J1", "回风巷口"));
    assert_eq!(d.rest, ["a", "", "b", ""]);
    let p = parse("RYQY", &file(&["重点区域;Q1;30;工作面"]));
    let Record::Area(a) = only(&p) else { panic!() };
    assert_eq!(
        (
            a.code.as_str(),
            a.kind.as_str(),
            a.capacity,
            a.name.as_str()
        ),
        ("Q1", "重点区域", Some(30), "工作面")
    );
    assert_eq!(
        refused("RYQY", "重点区域;Q1;三十;工作面").reason,
        RecordReason::BadNumber
    );
}

#[test]
fn every_record_refusal_names_the_field_and_keeps_the_rest() {
    let p = parse(
        "CDSS",
        &file(&[
            "P1;环境瓦斯;回风巷;0.3;%CH4;0;2026-03-01 08:05:00",
            "P2;环境瓦斯;回风巷;0.3;%CH4;0",
            "P3;环境瓦斯;回风巷;abc;%CH4;0;2026-03-01 08:05:00",
            "P4;环境瓦斯;回风巷;0.3;%CH4;0;2026-03-01",
            "P5;环境瓦斯;回风巷;0.3;%CH4;x;2026-03-01 08:05:00",
            ";环境瓦斯;回风巷;0.3;%CH4;0;2026-03-01 08:05:00",
            "P7;环境瓦斯;回风巷;NaN;%CH4;0;2026-03-01 08:05:00",
            "P8;环境瓦斯;回风巷;;%CH4;0;2026-03-01 08:05:00",
        ]),
    );
    let kept: Vec<_> = p.records.iter().map(|(n, _)| *n).collect();
    assert_eq!(kept, [2, 9]);
    let Record::Value(v) = &p.records[1].1 else {
        panic!()
    };
    assert_eq!(v.value, None);
    let got: Vec<_> = p
        .refused
        .iter()
        .map(|e| (e.record, e.reason.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (3, "wrong_field_count"),
            (4, "bad_number"),
            (5, "bad_time"),
            (6, "bad_code"),
            (7, "empty_code"),
            (8, "bad_number"),
        ]
    );
    assert_eq!(p.refused[0].detail, "CDSS record has 6 fields, expected 7");
    assert_eq!(p.refused[1].detail, "监测值 `abc` is not a number");
    assert!(p.refused[2].detail.starts_with("数据时间 `2026-03-01`"));
    assert!(p.refused[3].detail.starts_with("测点状态 `x`"));
    assert!(p.refused[4].detail.starts_with("测点编码"));
    assert_eq!(
        p.refused[0].to_string(),
        "record 3: wrong_field_count: CDSS record has 6 fields, expected 7"
    );
}

#[test]
fn a_record_code_must_be_an_identifier() {
    for bad in ["P 1", "P\u{7}1", &"P".repeat(65)] {
        let e = refused("FZSS", &format!("{bad};0;0;2026-03-01 08:05:00"));
        assert_eq!(e.reason, RecordReason::BadCode, "{bad}");
        assert!(e.detail.starts_with("分站编码"), "{}", e.detail);
    }
    let ok = "P".repeat(64);
    let p = parse("FZSS", &file(&[&format!("{ok};0;0;2026-03-01 08:05:00")]));
    assert_eq!(p.records.len(), 1);
}

#[test]
fn a_long_value_is_shortened_in_the_detail() {
    let long = "9".repeat(30) + &"x".repeat(30);
    let e = refused(
        "CDSS",
        &format!("P1;环境瓦斯;回风巷;{long};%CH4;0;2026-03-01 08:05:00"),
    );
    assert!(
        e.detail.contains('…') && e.detail.len() < 80,
        "{}",
        e.detail
    );
}

#[test]
fn bom_crlf_and_blank_records_are_cleaned() {
    let text = "\u{feff}150621011038;示范煤矿;\r\n2026-03-01 08:05:00~\r\nS1;0;\r\n1;2026-03-01 08:05:00~\r\n~ \r\n||\r\n";
    let p = parse("FZSS", text);
    assert_eq!(p.header.data_ms, at(8, 5, 0));
    assert!(matches!(only(&p), Record::SubstationState(s) if s.power == PowerState::Ac));
}

#[test]
fn a_gbk_file_parses_and_says_so() {
    let text = file(&["P1;环境瓦斯;一采区回风巷;0.32;%CH4;0;2026-03-01 08:05:00"]);
    let (bytes, _, unmappable) = encoding_rs::GBK.encode(&text);
    assert!(!unmappable);
    assert!(std::str::from_utf8(&bytes).is_err());
    let p = parse_file(&name("CDSS"), &bytes, CST).unwrap();
    assert_eq!(p.encoding, Encoding::Gb18030);
    assert_eq!(p.header.mine_name, "示范煤矿");
    let Record::Value(v) = only(&p) else { panic!() };
    assert_eq!(
        (v.type_name.as_str(), v.location.as_str()),
        ("环境瓦斯", "一采区回风巷")
    );
}

#[test]
fn every_file_refusal_has_its_reason_and_message() {
    let ok = file(&[]);
    let cases: Vec<(String, Vec<u8>, &str, &str)> = vec![
        (
            "bad.txt".into(),
            ok.clone().into_bytes(),
            "bad_name",
            "bad file name",
        ),
        (
            name("CDSS"),
            vec![0xCA, 0xBE, 0xFF],
            "undecodable",
            "at byte 2",
        ),
        (
            name("CDSS"),
            format!("{MINE}；示范煤矿;2026-03-01 08:05:00~||").into_bytes(),
            "full_width_separator",
            "record 1",
        ),
        (
            name("CDSS"),
            ok.trim_end_matches("||").as_bytes().to_vec(),
            "truncated",
            "`||`",
        ),
        (name("CDSS"), b"||".to_vec(), "no_header", "no header"),
        (name("CDSS"), b"~P1;a~||".to_vec(), "no_header", "no header"),
        (
            name("CDSS"),
            format!("{MINE};示范煤矿~||").into_bytes(),
            "bad_header",
            "expected 3",
        ),
        (
            name("CDDY"),
            ok.clone().into_bytes(),
            "bad_header",
            "CDDY header has 3 fields, expected 7",
        ),
        (
            name("CDSS"),
            format!("{MINE};示范煤矿;2026-03-01~||").into_bytes(),
            "bad_header",
            "数据时间",
        ),
        (
            name("CDSS"),
            ";示范煤矿;2026-03-01 08:05:00~||".as_bytes().to_vec(),
            "bad_header",
            "矿井编码",
        ),
        (
            name("CDSS"),
            "150621011039;示范煤矿;2026-03-01 08:05:00~||"
                .as_bytes()
                .to_vec(),
            "mine_mismatch",
            "`150621011039`",
        ),
    ];
    for (n, bytes, reason, text) in cases {
        let err = parse_file(&n, &bytes, CST).unwrap_err();
        assert_eq!(err.reason(), reason, "{n}: {err}");
        assert!(err.to_string().contains(text), "{err}");
    }
    let err = parse_file(&name("CDSS"), ok.as_bytes(), 100_000).unwrap_err();
    assert_eq!(err.reason(), "bad_offset");
}

#[test]
fn a_header_may_carry_more_fields_than_its_layout() {
    let p = parse(
        "JZSS",
        &format!("{MINE};示范煤矿;2026-03-01 08:05:00;309~||"),
    );
    assert_eq!(p.header.fields.len(), 4);
    assert_eq!(p.header.data_ms, at(8, 5, 0));
    assert!(p.records.is_empty() && p.refused.is_empty());
}

#[test]
fn a_regional_mine_code_must_match_its_header() {
    let code = "150622B0012000200092";
    let n = format!("{code}_RYSS_20260301080500.txt");
    let text = format!("{code};示范煤矿;2026-03-01 08:05:00~C1;张三;1;;;;;;;;;;;;~||");
    let p = parse_file(&n, text.as_bytes(), CST).unwrap();
    assert_eq!(p.name.mine_code, code);
    assert_eq!(p.records.len(), 1);
}

#[test]
fn every_layout_field_name_is_unique() {
    for l in tables::LAYOUTS {
        let mut names = l.fields.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), l.fields.len(), "{}", l.code);
        assert_eq!(tables::layout_of(l.file_type).code, l.code);
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), kind in 0usize..9) {
        let code = tables::LAYOUTS[kind].code;
        let _ = parse_file(&name(code), &bytes, CST);
    }

    #[test]
    fn arbitrary_records_never_panic(
        fields in proptest::collection::vec("[0-9a-z;~| :.\\-&,]{0,12}", 0..30),
        kind in 0usize..9,
    ) {
        let code = tables::LAYOUTS[kind].code;
        let header = if code == "CDDY" { CDDY_HEADER.to_string() } else { format!("{MINE};示范煤矿;2026-03-01 08:05:00~") };
        let text = format!("{header}{}~||", fields.join(";"));
        let p = parse_file(&name(code), text.as_bytes(), CST);
        prop_assert!(p.is_ok());
    }

    #[test]
    fn arbitrary_bodies_after_a_good_header_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..512),
        kind in 0usize..9,
    ) {
        let code = tables::LAYOUTS[kind].code;
        let mut bytes = format!("{MINE};示范煤矿;2026-03-01 08:05:00~").into_bytes();
        bytes.extend_from_slice(&body);
        bytes.extend_from_slice(b"~||");
        let _ = parse_file(&name(code), &bytes, CST);
    }

    #[test]
    fn arbitrary_names_never_panic(n in "\\PC{0,40}", tz in any::<i32>()) {
        let _ = parse_name(&n, tz);
        let _ = parse_tz(&n);
    }
}

mod samples {
    use super::*;

    fn sample(file: &str) -> ParsedFile {
        let path = format!("{}/tests/data/mine/{file}", env!("CARGO_MANIFEST_DIR"));
        let bytes = std::fs::read(&path).unwrap();
        parse_file(file, &bytes, CST).unwrap()
    }

    fn clean(p: &ParsedFile) -> Vec<&Record> {
        assert!(p.refused.is_empty(), "{:?}", p.refused);
        p.records.iter().map(|(_, r)| r).collect()
    }

    #[test]
    fn the_point_definitions() {
        let p = sample("150621011038_CDDY_20260301080000.txt");
        assert_eq!(p.header.fields[2], "KJ95X");
        assert_eq!(p.header.fields[5], "2028-12-31");
        let defs: Vec<_> = clean(&p)
            .into_iter()
            .map(|r| match r {
                Record::Point(d) => d.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        let kinds: Vec<_> = defs
            .iter()
            .map(|d| sensor_kind(&d.sensor_type, d.value_type))
            .collect();
        use DeviceKind::*;
        assert_eq!(
            kinds,
            [Methane, Methane, WindSpeed, CarbonMonoxide, Switch, Switch]
        );
        let m1 = &defs[0];
        assert_eq!(m1.code, "150621011038MN0001");
        assert_eq!(
            (m1.alarm_high, m1.cut_high, m1.restore_high),
            (Some(0.8), Some(0.8), Some(0.75))
        );
        assert_eq!((m1.alarm_low, m1.cut_low), (None, None));
        assert_eq!(m1.xyz, [Some(120.5), Some(340.2), Some(-350.0)]);
        assert_eq!(m1.relation, "D-150621011038KG0003:B-150621011038MN0001");
        assert_eq!(defs[1].cut_high, Some(1.2));
        assert_eq!(
            (defs[2].unit.as_str(), defs[2].alarm_low),
            ("m/s", Some(0.25))
        );
        assert_eq!(defs[3].xyz[2], None);
        assert_eq!(
            (defs[4].on_desc.as_str(), defs[4].off_desc.as_str()),
            ("开", "停")
        );
        assert_eq!(defs[4].range_high, None);
        assert_eq!(
            (defs[5].sensor_type.as_str(), defs[5].location.as_str()),
            ("4001", "二号分站")
        );
        assert!(defs.iter().all(|d| d.data_ms == at(8, 0, 0)));
    }

    #[test]
    fn the_values() {
        let p = sample("150621011038_CDSS_20260301080500.txt");
        assert_eq!(p.name.stamp_ms, at(8, 5, 0));
        let values: Vec<_> = clean(&p)
            .into_iter()
            .map(|r| match r {
                Record::Value(v) => (v.value, v.status.0),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            values,
            [
                (Some(0.32), 0),
                (Some(1.25), 3),
                (Some(2.4), 0),
                (None, 128),
                (Some(1.0), 0),
                (Some(0.0), 16),
            ]
        );
    }

    #[test]
    fn the_anomalies() {
        let p = sample("150621011038_YCBJ_20260301090000.txt");
        let recs = clean(&p);
        let Record::Anomaly(a) = recs[0] else {
            panic!()
        };
        assert_eq!(a.kind, AnomalyKind::OverLimit);
        assert_eq!((a.start_ms, a.end_ms), (at(8, 4, 30), Some(at(8, 12, 10))));
        assert_eq!(
            (a.max, a.max_ms, a.min, a.avg),
            (Some(1.25), Some(at(8, 5, 0)), Some(0.81), Some(0.98))
        );
        assert_eq!(a.measure, "加强通风，撤出作业人员，切断工作面电源");
        assert_eq!(
            (a.entered_ms, a.entered_by.as_str()),
            (Some(at(8, 30, 0)), "王工")
        );
        let Record::Anomaly(b) = recs[1] else {
            panic!()
        };
        assert_eq!(b.kind, AnomalyKind::SensorDisconnected);
        assert_eq!((b.end_ms, b.max, b.min, b.avg), (None, None, None, None));
        assert_eq!(
            (b.measure.as_str(), b.entered_ms, b.cause.as_str()),
            ("", None, "传感器断线")
        );
        assert_eq!(b.data_ms, at(9, 0, 0));
    }

    #[test]
    fn the_substations_with_a_bom() {
        let p = sample("150621011038_FZDY_20260301080000.txt");
        let recs = clean(&p);
        assert_eq!(p.header.mine_code, MINE);
        let Record::Substation(s) = recs[1] else {
            panic!()
        };
        assert_eq!(
            (s.code.as_str(), s.location.as_str(), s.xyz),
            ("150621011038F002", "一采区回风巷口", [None; 3])
        );
    }

    #[test]
    fn the_substation_states_with_crlf() {
        let p = sample("150621011038_FZSS_20260301080500.txt");
        let states: Vec<_> = clean(&p)
            .into_iter()
            .map(|r| match r {
                Record::SubstationState(s) => (s.run, s.power),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            states,
            [
                (RunState::Normal, PowerState::Ac),
                (RunState::CommInterrupted, PowerState::Unknown)
            ]
        );
    }

    #[test]
    fn the_base_stations() {
        let p = sample("150621011038_JZSS_20260301080500.txt");
        let recs = clean(&p);
        assert!(p.name.file_type.is_realtime());
        let Record::BaseStation(j) = recs[1] else {
            panic!()
        };
        assert_eq!(
            (j.code.as_str(), j.run, j.power),
            ("150621011038J002", RunState::Fault, PowerState::PowerFault)
        );
        let p = sample("150621011038_RYJZ_20260301080000.txt");
        let Record::BaseStationDef(d) = clean(&p)[0] else {
            panic!()
        };
        assert_eq!(d.location, "一采区回风巷口");
        let p = sample("150621011038_RYQY_20260301080000.txt");
        let Record::Area(a) = clean(&p)[0] else {
            panic!()
        };
        assert_eq!((a.code.as_str(), a.capacity), ("150621011038Q01", Some(30)));
    }

    #[test]
    fn the_people() {
        let p = sample("150621011038_RYSS_20260301080500.txt");
        let recs = clean(&p);
        let Record::Person(a) = recs[0] else { panic!() };
        assert!(a.underground);
        assert_eq!(
            (a.name.as_str(), a.station.as_str(), a.distance_m),
            ("张三", "150621011038J001", Some(12.5))
        );
        assert_eq!(a.track.len(), 2);
        assert_eq!(a.track[1].at_ms, Some(at(7, 58, 0)));
        assert_eq!((a.is_leader, a.is_special), (Some(false), Some(true)));
        let Record::Person(b) = recs[1] else { panic!() };
        assert!(!b.underground);
        assert_eq!(
            (b.entered_ms, b.left_ms),
            (Some(at(0, 10, 0)), Some(at(7, 50, 0)))
        );
        assert_eq!(
            (b.area.as_str(), b.station_ms, b.is_leader),
            ("", None, Some(true))
        );
    }

    #[test]
    fn the_gbk_file_reads_as_its_utf8_source() {
        let p = sample("150621011038_CDSS_20260301081000.txt");
        assert_eq!(p.encoding, Encoding::Gb18030);
        let source = std::fs::read(format!(
            "{}/tests/data/mine/gbk-source.utf8.txt",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let same = parse_file("150621011038_CDSS_20260301081000.txt", &source, CST).unwrap();
        assert_eq!(same.encoding, Encoding::Utf8);
        assert_eq!((&p.header, &p.records), (&same.header, &same.records));
        let Record::Value(v) = &p.records[1].1 else {
            panic!()
        };
        assert_eq!(
            (v.type_name.as_str(), v.status.is_maintenance()),
            ("一氧化碳", true)
        );
    }

    #[test]
    fn the_bad_records_are_refused_one_by_one() {
        let p = sample("150621011038_CDSS_20260301081500.txt");
        let kept: Vec<_> = p.records.iter().map(|(n, _)| *n).collect();
        assert_eq!(kept, [2, 8]);
        let got: Vec<_> = p.refused.iter().map(|e| (e.record, e.reason)).collect();
        use RecordReason::*;
        assert_eq!(
            got,
            [
                (3, WrongFieldCount),
                (4, BadNumber),
                (5, BadTime),
                (6, BadCode),
                (7, EmptyCode)
            ]
        );
    }

    #[test]
    fn the_truncated_file_is_refused() {
        let path = format!(
            "{}/tests/data/mine/150621011038_FZSS_20260301082000.txt",
            env!("CARGO_MANIFEST_DIR")
        );
        let bytes = std::fs::read(path).unwrap();
        let err = parse_file("150621011038_FZSS_20260301082000.txt", &bytes, CST).unwrap_err();
        assert_eq!(err, FileError::Truncated);
    }
}
