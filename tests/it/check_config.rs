//! `safegate check-config`: every invalid-inventory case is named, with file and key; a good
//! configuration prints its summary.

use std::path::Path;
use std::process::Command;

fn check(dir: &Path, main: &str, files: &[(&str, &str)]) -> (i32, String) {
    std::fs::create_dir_all(dir.join("inventory")).unwrap();
    let path = dir.join("safegate.toml");
    std::fs::write(&path, main).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_safegate"))
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

const SITES: &str = r#"
[[sites]]
id = "p1"
name = "Park"
kind = "park"

[[sites]]
id = "m1"
name = "Mine"
kind = "mine"

[[enterprises]]
id = "e1"
site = "p1"
name = "E"

[[zones]]
id = "z1"
site = "p1"
name = "Z"

[[systems]]
id = "s1"
site = "m1"
kind = "slope_monitoring"
"#;

fn dev(id: &str, site: &str, extra: &str) -> String {
    format!("\n[[devices]]\nid = \"{id}\"\nsite = \"{site}\"\nkind = \"gas_combustible\"\nprotocol = \"mqtt\"\ninterval_s = 10\n{extra}\n")
}

/// One bad case per row: (inventory snippet, text the error must contain).
#[test]
fn each_invalid_case_is_reported_by_name() {
    let cases: Vec<(String, &str)> = vec![
        (
            dev("d1", "p1", "colour = \"red\""),
            "unknown field `colour`",
        ),
        (
            format!("{}{}", dev("d1", "p1", ""), dev("d1", "p1", "")),
            "duplicate device id \"d1\" in site \"p1\"",
        ),
        (
            dev("d1", "nowhere", ""),
            "devices[0] (id \"d1\").site: unknown site \"nowhere\"",
        ),
        (
            dev("d1", "p1", "enterprise = \"e9\""),
            "unknown enterprise \"e9\" in site \"p1\"",
        ),
        (dev("d1", "p1", "zone = \"z9\""), "unknown zone \"z9\""),
        (dev("d1", "m1", "system = \"s9\""), "unknown system \"s9\""),
        // An enterprise of another site does not resolve either.
        (
            dev("d1", "m1", "enterprise = \"e1\""),
            "unknown enterprise \"e1\" in site \"m1\"",
        ),
        (
            dev("d1", "p1", "").replace("interval_s = 10", "interval_s = 0"),
            "interval_s: must be a positive number",
        ),
        (
            dev("d1", "p1", "").replace("interval_s = 10", "interval_s = -5"),
            "interval_s: must be a positive number",
        ),
        (
            dev("d1", "p1", "offline_after_s = 5"),
            "shorter than interval_s",
        ),
        (
            dev("d1", "p1", "").replace("gas_combustible", "gas_toxic"),
            "must name its gas",
        ),
        (
            dev("d1", "p1", "").replace("gas_combustible", "plasma"),
            "unknown variant `plasma`",
        ),
        (dev("d/1", "p1", ""), "contains '/'"),
        (
            "\n[[sites]]\nid = \"p1\"\nname = \"again\"\nkind = \"park\"\n".into(),
            "duplicate site id \"p1\"",
        ),
        (
            "\n[[zones]]\nid = \"z2\"\nsite = \"m1\"\nname = \"x\"\n".into(),
            "belong to a Park",
        ),
    ];
    for (snippet, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        let (code, out) = check(dir.path(), &format!("{SITES}{snippet}"), &[]);
        assert_eq!(code, 2, "exit code for {want:?}:\n{out}");
        assert!(out.contains(want), "expected {want:?} in:\n{out}");
        assert!(out.contains("safegate.toml"), "the file is named:\n{out}");
        if want.contains("unknown") && want.contains('`') {
            assert!(
                out.contains("line "),
                "a syntax-level error names its line:\n{out}"
            );
        }
    }
}

/// Alarm rules are resolved as the gateway resolves them; each problem names its key.
#[test]
fn alarm_rules_are_checked_like_the_rest() {
    let four_colour_mine = "\n[[sites]]\nid = \"m2\"\nname = \"M\"\nkind = \"mine\"\nalarms = { scheme = \"four_colour\" }\n";
    let cases: Vec<(String, &str)> = vec![
        (
            "\n[alarms.kinds.plasma]\nlevels = [1]\n".into(),
            "alarms.kinds.plasma: \"plasma\" is not a device kind",
        ),
        (
            dev("d1", "p1", "alarm = { levels = [50, 25] }"),
            "devices[0] (id \"d1\").alarm.levels: levels [50.0, 25.0] must be strictly ascending",
        ),
        (
            dev("d1", "p1", "alarm = { levles = [1] }"),
            "unknown field `levles`",
        ),
        (
            format!(
                "{four_colour_mine}{}",
                dev("d1", "m2", "").replace("gas_combustible", "methane")
            ),
            "the four_colour scheme needs four thresholds (蓝, 黄, 橙, 红) (the built-in methane default)",
        ),
        (
            dev("d1", "p1", "gas = \"VOC\"").replace("gas_combustible", "gas_toxic"),
            "no occupational exposure limit is known for gas \"VOC\"",
        ),
        (
            dev("d1", "p1", "gas = \"H2S\\\\\"").replace("gas_combustible", "gas_toxic"),
            "devices[0] (id \"d1\").gas: \"H2S\\\\\" must name the gas, without control characters or backslashes",
        ),
        (
            "\n[alarms]\nresponse_deadline_s = { level2 = 300 }\n".into(),
            "from level1 up without gaps",
        ),
        (
            "\n[alarms]\nhysteresis = 1.5\n".into(),
            "alarms.hysteresis: 1.5 is not a share in (0, 1]",
        ),
        (
            dev("d1", "p1", "alarm = { rate_per_day = [10], rate_window = \"soon\" }"),
            "alarm.rate_window: \"soon\" is not a window",
        ),
        (
            dev("d1", "p1", "alarm = { clear_below = 30 }"),
            "alarm.clear_below: 30 must be a number not above the first level (25)",
        ),
        (
            "\n[[sites]]\nid = \"p3\"\nname = \"P\"\nkind = \"park\"\nalarms = { response_deadline_s = -5 }\n".into(),
            "sites[2] (id \"p3\").alarms.response_deadline_s: -5 is not a number of seconds",
        ),
    ];
    for (snippet, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        let (code, out) = check(dir.path(), &format!("{SITES}{snippet}"), &[]);
        assert_eq!(code, 2, "exit code for {want:?}:\n{out}");
        assert!(out.contains(want), "expected {want:?} in:\n{out}");
    }
    // A good alarm section passes.
    let dir = tempfile::tempdir().unwrap();
    let good = format!(
        "{SITES}\n[alarms]\nresponse_deadline_s = {{ level1 = 600, level2 = 120 }}\n[alarms.kinds.slope_displacement]\nrate_per_day = [5, 10]\nrate_window = \"6h\"\n{}",
        dev("d1", "p1", "alarm = { levels = [20, 40], raise_after = 2 }")
    );
    let (code, out) = check(dir.path(), &good, &[]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn tokens_are_checked() {
    let good = "a".repeat(64);
    let cases = [
        (
            "[[tokens]]\nname = \"ops\"\nrole = \"operator\"\nsha256 = \"s3cret\"\n".to_string(),
            "tokens[0] (\"ops\").sha256: must be the 64 hex digits",
        ),
        (
            format!("[[tokens]]\nname = \"ops\"\nrole = \"operator\"\nsha256 = \"{good}\"\n[[tokens]]\nname = \"ops\"\nrole = \"viewer\"\nsha256 = \"{}\"\n", "b".repeat(64)),
            "duplicate token name \"ops\"",
        ),
        (
            format!("[[tokens]]\nname = \"a\"\nrole = \"operator\"\nsha256 = \"{good}\"\n[[tokens]]\nname = \"b\"\nrole = \"viewer\"\nsha256 = \"{good}\"\n"),
            "the same token is configured twice",
        ),
        (
            format!("[[tokens]]\nname = \"a\"\nrole = \"root\"\nsha256 = \"{good}\"\n"),
            "unknown variant `root`",
        ),
        (
            "[mqtt]\nembedded = true\n[[sites]]\nid = \"p9\"\nname = \"P\"\nkind = \"park\"\nplatforms = [\"plat-x\"]\n".to_string(),
            "mqtt.username: sites list platforms, so the embedded broker requires logins",
        ),
        (
            "[mqtt]\nusername = \"plat-x\"\n[[sites]]\nid = \"p9\"\nname = \"P\"\nkind = \"park\"\nplatforms = [\"plat-x\"]\n".to_string(),
            "mqtt.username: \"plat-x\" is also a platform of a site",
        ),
        (
            "[mqtt]\nembedded = true\nlisten_tls_client_ca_file = \"ca.pem\"\n".to_string(),
            "mqtt.listen_tls_client_ca_file: client certificates need TLS",
        ),
        (
            "[mqtt]\nlisten_tls_cert_file = \"c.pem\"\nlisten_tls_key_file = \"k.pem\"\n".to_string(),
            "the listen_tls_* settings are for the embedded broker",
        ),
        (
            "[mqtt]\nlisten_max_connections = 0\n".to_string(),
            "mqtt.listen_max_connections: 0 is not between 1 and 10000",
        ),
    ];
    for (snippet, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        let (code, out) = check(dir.path(), &format!("{snippet}{SITES}"), &[]);
        assert_eq!(code, 2, "exit code for {want:?}:\n{out}");
        assert!(out.contains(want), "expected {want:?} in:\n{out}");
    }
}

#[test]
fn all_errors_are_listed_at_once_with_the_included_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let main =
        format!("include = [\"inventory/*.toml\"]\n\n[mqtt]\nurl = \"http://x\"\nqos = 2\n{SITES}");
    let inv = format!(
        "{}{}",
        dev("a", "p9", ""),
        dev("b", "p1", "zone = \"nope\"")
    );
    let (code, out) = check(dir.path(), &main, &[("inventory/devices.toml", &inv)]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("4 error(s)"), "{out}");
    assert!(out.contains("mqtt.url"), "{out}");
    assert!(out.contains("mqtt.qos"), "{out}");
    assert!(
        out.contains("inventory/devices.toml: devices[0] (id \"a\").site: unknown site \"p9\""),
        "{out}"
    );
    assert!(
        out.contains("inventory/devices.toml: devices[1] (id \"b\").zone"),
        "{out}"
    );
}

/// Values the runtime would have panicked on (an Instant or capacity overflow) or turned into
/// nonsense: each is an error with its key, all listed at once.
#[test]
fn settings_past_their_bounds_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let huge = i64::MAX;
    let main = format!(
        "[gateway]\nmax_future_skew_s = {huge}\nrecent_rejections = 100001\n\n\
         [mqtt]\nmax_payload_bytes = {huge}\nkeep_alive_s = 65536\n\n\
         [store]\nurl = \"http://127.0.0.1:8086\"\norg = \"o\"\nbucket = \"b\"\n\
         batch_size = {huge}\nqueue_capacity = {huge}\nflush_interval_ms = {huge}\n\
         indicator_interval_s = 86401\ntimeout_ms = {huge}\n\n\
         [alarms]\nretain_closed_s = {huge}\n{SITES}"
    );
    let (code, out) = check(dir.path(), &main, &[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("10 error(s)"), "{out}");
    for key in [
        "gateway.max_future_skew_s: 9223372036854775807 is above 2592000 (30 days)",
        "gateway.recent_rejections: 100001 is above 100000",
        "mqtt.max_payload_bytes",
        "mqtt.keep_alive_s: 65536 is above 65535",
        "store.batch_size",
        "store.queue_capacity",
        "store.flush_interval_ms",
        "store.indicator_interval_s: 86401 is above 86400 (a day)",
        "store.timeout_ms",
        "alarms.retain_closed_s",
    ] {
        assert!(out.contains(key), "{key} missing from {out}");
    }
}

#[test]
fn a_syntax_error_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = check(dir.path(), "[[sites]]\nid = \"p1\"\nname = \n", &[]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("safegate.toml") && out.contains("line 3"),
        "{out}"
    );
}

#[test]
fn a_missing_include_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = check(dir.path(), "include = [\"inventory/none-*.toml\"]\n", &[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("matches no file"), "{out}");
}

#[test]
fn a_good_configuration_prints_its_summary() {
    let dir = tempfile::tempdir().unwrap();
    let main = format!("include = [\"inventory/*.toml\"]\n{SITES}");
    let inv = format!(
        "{}{}{}",
        dev("a", "p1", "enterprise = \"e1\""),
        dev("b", "p1", "zone = \"z1\"\nstatus = \"planned\""),
        dev("c", "m1", "system = \"s1\"").replace("gas_combustible", "slope_displacement")
    );
    let (code, out) = check(dir.path(), &main, &[("inventory/devices.toml", &inv)]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("sites: 2 (1 park, 1 mine; 0 suspended)"),
        "{out}"
    );
    assert!(out.contains("devices: 3"), "{out}");
    assert!(
        out.contains("by kind: gas_combustible 2, slope_displacement 1"),
        "{out}"
    );
    assert!(out.contains("by protocol: mqtt 3"), "{out}");
    assert!(out.contains("by status: built 2, planned 1"), "{out}");
}

#[test]
fn the_shipped_configurations_are_valid() {
    for f in ["config/demo/safegate.toml", "config/example/safegate.toml"] {
        let out = Command::new(env!("CARGO_BIN_EXE_safegate"))
            .arg("check-config")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(f))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{f}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn mdev(id: &str, modbus: &str) -> String {
    format!("\n[[devices]]\nid = \"{id}\"\nsite = \"p1\"\nkind = \"gas_combustible\"\nprotocol = \"modbus\"\ninterval_s = 10\n[devices.modbus]\n{modbus}\n")
}

const MB_TCP: &str = "transport = \"tcp\"\naddress = \"127.0.0.1:502\"\n";

fn regs(list: &str) -> String {
    format!("{MB_TCP}registers = [\n{list}\n]\n")
}

/// Every Modbus map mistake is named with its key down to the register.
#[test]
fn each_invalid_modbus_map_is_reported_by_name() {
    let cases: Vec<(String, &str)> = vec![
        (
            dev("d1", "p1", "").replace("\"mqtt\"", "\"modbus\""),
            "devices[0] (id \"d1\").modbus: a modbus device needs a [devices.modbus] table",
        ),
        (
            format!("{}[devices.modbus]\n{}", dev("d1", "p1", ""), regs("{ channel = \"a\", table = \"holding\", address = 0, type = \"u16\" }")),
            "only protocol = \"modbus\" devices take",
        ),
        (
            mdev("d1", &regs("{ channel = \"a\", table = \"holding\", address = 0, type = \"u32\" },\n{ channel = \"b\", table = \"holding\", address = 1, type = \"u16\" }")),
            "modbus.registers[1].address: overlaps registers[0]: holding address 1",
        ),
        (
            mdev("d1", &regs("{ channel = \"a\", table = \"coil\", address = 0, type = \"f32\" }")),
            "modbus.registers[0].type: a coil holds single bits: its type can only be bool, not f32",
        ),
        (
            mdev("d1", &regs("{ channel = \"a\", table = \"input\", address = 65535, type = \"i32\" }")),
            "modbus.registers[0].address: i32 input at 65535 ends at 65536, past 65535",
        ),
        (
            mdev("d1", &regs("{ channel = \"a\", table = \"holding\", address = 70000, type = \"u16\" }")),
            "past 65535",
        ),
        (
            mdev("d1", &regs("{ channel = \"a\", table = \"holding\", address = 0, type = \"u16\" },\n{ channel = \"a\", table = \"holding\", address = 5, type = \"u16\" }")),
            "modbus.registers[1].channel: channel \"a\" is already read by registers[0]",
        ),
        (
            mdev("d1", &regs("{ channel = \"status_code\", table = \"holding\", address = 0, type = \"u16\" }")),
            "modbus.registers[0].channel: \"status_code\" is a field the gateway writes itself",
        ),
        (
            mdev("d1", &regs("{ channel = \"a\", table = \"holding\", address = 0, type = \"u16\", word_order = \"little\" }")),
            "modbus.registers[0].word_order: a u16 is one word",
        ),
        (
            mdev("d1", &regs("{ channel = \"a\", table = \"holding\", address = 0, type = \"u64\" }")),
            "unknown variant `u64`",
        ),
        (
            mdev("d1", &format!("{}status = {{ table = \"holding\", address = 0 }}\n", regs("{ channel = \"a\", table = \"holding\", address = 0, type = \"u16\" }"))),
            "modbus.status.address: overlaps registers[0]",
        ),
        (
            mdev("d1", "transport = \"tcp\"\nregisters = [{ channel = \"a\", table = \"holding\", address = 0, type = \"u16\" }]\n"),
            "modbus.address: transport \"tcp\" needs address",
        ),
        (
            mdev("d1", "transport = \"rtu\"\nregisters = [{ channel = \"a\", table = \"holding\", address = 0, type = \"u16\" }]\n"),
            "modbus.serial: transport \"rtu\" needs serial",
        ),
        (
            mdev("d1", &format!("{MB_TCP}registers = []\n")),
            "modbus.registers: a modbus device needs at least one register",
        ),
        (
            mdev("d1", &format!("timeout_ms = 20000\n{}", regs("{ channel = \"a\", table = \"holding\", address = 0, type = \"u16\" }"))),
            "modbus.timeout_ms: 20000 ms is longer than the poll period",
        ),
        (
            mdev("d1", &format!("poll_s = 1e12\n{}", regs("{ channel = \"a\", table = \"holding\", address = 0, type = \"u16\" }"))),
            "modbus.poll_s: must be a positive number of seconds up to 86400",
        ),
        (
            mdev("d1", &format!("unit = 250\n{}", regs("{ channel = \"a\", table = \"holding\", address = 0, type = \"u16\" }"))),
            "modbus.unit: 250 is past 247",
        ),
        (
            format!(
                "{}{}",
                mdev("d1", &regs("{ channel = \"a\", table = \"holding\", address = 0, type = \"u16\" }")),
                mdev("d2", &regs("{ channel = \"a\", table = \"holding\", address = 0, type = \"u16\" }"))
            ),
            "devices[1] (id \"d2\").modbus.unit: unit 1 on tcp://127.0.0.1:502 is already polled as device \"d1\"",
        ),
        (
            format!(
                "{}{}",
                mdev("d1", "transport = \"rtu\"\nserial = \"/dev/ttyS1\"\nbaud = 9600\nregisters = [{ channel = \"a\", table = \"holding\", address = 0, type = \"u16\" }]\n"),
                mdev("d2", "transport = \"rtu\"\nserial = \"/dev/ttyS1\"\nbaud = 19200\nunit = 2\nregisters = [{ channel = \"a\", table = \"holding\", address = 0, type = \"u16\" }]\n")
            ),
            "serial line \"/dev/ttyS1\" is also used by device \"d1\" with other settings",
        ),
        (
            mdev("d1", &format!("{MB_TCP}registers = [{{ channel = \"a\", table = \"holding\", address = 0, type = \"u16\", colour = 1 }}]\n")),
            "unknown field `colour`",
        ),
    ];
    for (snippet, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        let (code, out) = check(dir.path(), &format!("{SITES}{snippet}"), &[]);
        assert_eq!(code, 2, "exit code for {want:?}:\n{out}");
        assert!(out.contains(want), "expected {want:?} in:\n{out}");
    }
}

#[test]
fn a_good_modbus_map_passes() {
    let dir = tempfile::tempdir().unwrap();
    let inv = format!(
        "{}{}",
        mdev("d1", &format!("{}status = {{ table = \"discrete\", address = 0 }}\n", regs("{ channel = \"a\", table = \"holding\", address = 0, type = \"u32\", word_order = \"little\", byte_swap = true },\n{ channel = \"b\", table = \"holding\", address = 2, type = \"f32\", scale = 0.5, offset = -1 },\n{ channel = \"c\", table = \"coil\", address = 65535, type = \"bool\" }"))),
        mdev("d2", "transport = \"rtu\"\nserial = \"/dev/ttyS1\"\nparity = \"even\"\nstop_bits = 2\nunit = 7\nregisters = [{ channel = \"a\", table = \"input\", address = 65534, type = \"i32\" }]\n")
    );
    let (code, out) = check(dir.path(), &format!("{SITES}{inv}"), &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("by protocol: modbus 2"), "{out}");
}

/// `check-config --sample`: what a message becomes through a mapping, one line per record;
/// exit 0 when every record maps, 1 when one is refused, 2 for an unknown mapping.
#[test]
fn a_sample_is_run_through_a_mapping() {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/mappings");
    let dir = tempfile::tempdir().unwrap();
    let main = std::fs::read_to_string(format!("{data}/vendor_array.toml")).unwrap();
    let path = dir.path().join("safegate.toml");
    std::fs::write(&path, &main).unwrap();
    let run = |sample: &str, mapping: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_safegate"))
            .arg("check-config")
            .arg(&path)
            .args(["--sample", sample, "--mapping", mapping])
            .args(["--topic", "acme/park-7/readings"])
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    };
    let (code, text) = run(&format!("{data}/vendor_array.json"), "acme");
    assert_eq!(code, 1, "{text}");
    for line in std::fs::read_to_string(format!("{data}/vendor_array.out"))
        .unwrap()
        .lines()
    {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    let good = dir.path().join("good.json");
    std::fs::write(
        &good,
        r#"[{"sn":"TK-01-LT","kind":"level","val":"2.75","t":1700000000,"st":0}]"#,
    )
    .unwrap();
    let (code, text) = run(good.to_str().unwrap(), "acme");
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("reading record 0: site park-7 device TK-01-LT"),
        "{text}"
    );
    let (code, text) = run(good.to_str().unwrap(), "nope");
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("no mapping named \"nope\""), "{text}");
}

#[test]
fn mappings_are_checked_by_index_and_name() {
    let dir = tempfile::tempdir().unwrap();
    let (code, text) = check(
        dir.path(),
        "[[mappings]]\nname = \"acme\"\ntopics = [\"safegate/v1/#\"]\ndevice = \"{nope}\"\n",
        &[],
    );
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains(r#"mappings[0] ("acme").device: template "{nope}": unknown placeholder"#),
        "{text}"
    );
    assert!(text.contains(r#"mappings[0] ("acme").topics[0]: topic filter "safegate/v1/#" reaches into the native tree"#), "{text}");
}
