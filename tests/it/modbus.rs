//! Modbus end to end: the gateway polls modbus-sim (in process), an independent pymodbus
//! server, and modbus-sim over a socat pseudo-terminal pair (RTU); `mbpoll` checks that
//! modbus-sim serves what the configuration says. Readings reach VictoriaMetrics in the same
//! shape as MQTT readings.

use crate::common::*;
use safegate::config::modbus::{DataType, ModbusConfig};
use safegate::simulators::modbus_sim::{expected_values, raw_value, Fault, ModbusSim};
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

const PARK: &str = "[[sites]]\nid = \"p1\"\nname = \"Park\"\nkind = \"park\"\n\n";

/// A Modbus device entry. `modbus` is the body of `[devices.modbus]`.
fn mb_device(id: &str, modbus: &str) -> String {
    format!(
        "[[devices]]\nid = \"{id}\"\nsite = \"p1\"\nkind = \"gas_combustible\"\nprotocol = \"modbus\"\ninterval_s = 0.5\noffline_after_s = 1.5\n[devices.modbus]\n{modbus}\n\n"
    )
}

fn tcp(port: u16, unit: u8, extra: &str) -> String {
    format!("transport = \"tcp\"\naddress = \"127.0.0.1:{port}\"\nunit = {unit}\ntimeout_ms = 300\n{extra}\n")
}

/// Every data type, word order and byte swap, in holding and input registers, coils and
/// discrete inputs; gaps to merge over and one register far away (a second request).
const ALL_TYPES: &str = r#"registers = [
  { channel = "u16", table = "holding", address = 0, type = "u16" },
  { channel = "i16", table = "holding", address = 1, type = "i16" },
  { channel = "i16_swap", table = "holding", address = 2, type = "i16", byte_swap = true },
  { channel = "u32_abcd", table = "holding", address = 4, type = "u32" },
  { channel = "u32_cdab", table = "holding", address = 6, type = "u32", word_order = "little" },
  { channel = "u32_badc", table = "holding", address = 8, type = "u32", byte_swap = true },
  { channel = "u32_dcba", table = "holding", address = 10, type = "u32", word_order = "little", byte_swap = true },
  { channel = "i32_abcd", table = "holding", address = 14, type = "i32" },
  { channel = "i32_cdab", table = "holding", address = 16, type = "i32", word_order = "little" },
  { channel = "i32_badc", table = "holding", address = 18, type = "i32", byte_swap = true },
  { channel = "i32_dcba", table = "holding", address = 20, type = "i32", word_order = "little", byte_swap = true },
  { channel = "f32_abcd", table = "holding", address = 22, type = "f32" },
  { channel = "f32_cdab", table = "holding", address = 24, type = "f32", word_order = "little" },
  { channel = "f32_badc", table = "holding", address = 26, type = "f32", byte_swap = true },
  { channel = "f32_dcba", table = "holding", address = 28, type = "f32", word_order = "little", byte_swap = true },
  { channel = "flag_word", table = "holding", address = 30, type = "bool" },
  { channel = "scaled", table = "holding", address = 40000, type = "i16", scale = 0.1, offset = -5.0 },
  { channel = "in_u16", table = "input", address = 3, type = "u16", scale = 0.01 },
  { channel = "in_f32", table = "input", address = 5, type = "f32", word_order = "little" },
  { channel = "coil", table = "coil", address = 1, type = "bool" },
  { channel = "discrete", table = "discrete", address = 7, type = "bool" },
]
"#;

/// Equal up to the last bit or two: serde_json's default float parser is not always
/// correctly rounded, so values read back from the API may differ by an ulp.
fn assert_value(got: &Value, want: f64, what: &str) {
    let g = got
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: {got} is not a number"));
    assert!(
        (g - want).abs() <= want.abs() * 1e-12,
        "{what}: got {g}, want {want}"
    );
}

fn modbus_of(cfg: &safegate::config::Config, id: &str) -> ModbusConfig {
    cfg.inventory
        .devices
        .iter()
        .find(|d| d.id == id)
        .and_then(|d| d.modbus.as_deref().cloned())
        .unwrap()
}

async fn wait_ready(api: &str) {
    wait_json(&format!("{api}/readyz"), WAIT, |v| {
        v["mqtt"]["connected"] == true
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_and_word_order_decodes_against_modbus_sim_and_reaches_the_store() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    let vm = Victoria::start();
    let port = free_port();
    let mut inv = PARK.to_string();
    inv.push_str(&mb_device("types-1", &tcp(port, 1, ALL_TYPES)));
    inv.push_str(&mb_device("types-9", &tcp(port, 9, ALL_TYPES)));
    inv.push_str("[[devices]]\nid = \"mqtt-1\"\nsite = \"p1\"\nkind = \"gas_combustible\"\nprotocol = \"mqtt\"\ninterval_s = 10\n");
    let cfg = TestConfig::new(&settings(&mq.url(), "gw-mb1", Some(&vm.url())), &inv);
    let loaded = cfg.load();
    let sim = ModbusSim::from_config(&loaded.config, false);
    let tasks = sim.serve_tcp().await.unwrap();
    let expected: Vec<(String, Vec<(String, f64)>)> = ["types-1", "types-9"]
        .iter()
        .map(|id| {
            (
                id.to_string(),
                expected_values(&modbus_of(&loaded.config, id)),
            )
        })
        .collect();
    let gw = safegate::runtime::start(loaded).await.unwrap();
    let api = format!("http://{}", gw.api_addr);
    wait_ready(&api).await;

    let list = wait_json(&format!("{api}/api/v1/devices?site=p1"), WAIT, |v| {
        ["types-1", "types-9"]
            .iter()
            .all(|id| device(v, id)["state"] == "online")
    })
    .await;
    for (id, values) in &expected {
        let d = device(&list, id);
        for (ch, v) in values {
            assert_value(&d["last_values"][ch], *v, &format!("{id} channel {ch}"));
        }
        assert_eq!(d["last_status"], "normal");
        let m = &d["modbus"];
        assert_eq!(m["timeouts"], 0, "{m}");
        assert_eq!(m["exceptions"], json!({}), "{m}");
        assert!(m["successes"].as_u64().unwrap() >= 1);
    }
    // Sanity of the fixed values themselves: both words of 32-bit values are used.
    assert!(raw_value(DataType::U32, 3, 1, 0.0) > 65_535.0);
    assert!(raw_value(DataType::I32, 7, 1, 0.0) < -65_535.0);

    // The same reading shape in the store as an MQTT reading: same measurement, tags, fields.
    let publisher = Publisher::connect(mq.port, "pub-mb1").await;
    publisher
        .send(
            "safegate/v1/p1/mqtt-1/data",
            json!({"values": {"u16": 1.0}}).to_string(),
        )
        .await;
    let series = vm
        .wait_for(r#"{__name__="reading_u16"}"#, WAIT, |s| s.len() == 3)
        .await;
    let keys = |s: &Series| -> Vec<String> {
        let mut k: Vec<String> = s.labels.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let mqtt = series
        .iter()
        .find(|s| s.label("device") == "mqtt-1")
        .unwrap();
    for s in series.iter().filter(|s| s.label("device") != "mqtt-1") {
        assert_eq!(keys(s), keys(mqtt), "tags of {s:?} vs {mqtt:?}");
        assert_eq!(s.label("site"), "p1");
        assert_eq!(s.label("kind"), "gas_combustible");
        let (_, values) = expected
            .iter()
            .find(|(id, _)| id == s.label("device"))
            .unwrap();
        let want = values.iter().find(|(c, _)| c == "u16").unwrap().1;
        assert!(s.values.iter().all(|v| *v == want), "{s:?}");
    }
    let f32s = vm
        .wait_for(
            r#"{__name__="reading_f32_dcba",device="types-9"}"#,
            WAIT,
            |s| s.len() == 1,
        )
        .await;
    let want = expected[1]
        .1
        .iter()
        .find(|(c, _)| c == "f32_dcba")
        .unwrap()
        .1;
    assert!(f32s[0].values.iter().all(|v| *v == want), "{f32s:?}");
    vm.wait_for(
        r#"{__name__="reading_status_code",device="types-1"}"#,
        WAIT,
        |s| s.len() == 1 && s[0].values.iter().all(|v| *v == 0.0),
    )
    .await;
    gw.stop().await;
    for t in tasks {
        t.abort();
    }
}

/// pymodbus, started as a separate process, serving the values in `spec` (encoded in Python).
struct PyModbus {
    child: std::process::Child,
    pub port: u16,
    /// Kept open: a closed pipe would kill the server at its next write.
    _stdout: std::process::ChildStdout,
}

impl PyModbus {
    /// Start on a free port; a port taken in between (by another test's connection) is
    /// retried on another one.
    fn start(spec: &Value) -> PyModbus {
        let mut last = String::new();
        for _ in 0..3 {
            match PyModbus::try_start(free_port(), spec) {
                Ok(p) => return p,
                Err(e) => last = e,
            }
        }
        panic!("pymodbus server did not start (is pymodbus installed?): {last}");
    }

    fn try_start(port: u16, spec: &Value) -> Result<PyModbus, String> {
        use std::io::Read;
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/pymodbus_server.py");
        let errlog = std::env::temp_dir().join(format!("pymodbus-{port}.log"));
        let mut child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .arg(spec.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&errlog).map_err(|e| e.to_string())?)
            .spawn()
            .map_err(|e| format!("python3 does not run: {e}"))?;
        let mut out = child.stdout.take().unwrap();
        let mut line = String::new();
        let mut buf = [0u8; 64];
        // Bounded: the script exits by itself when it cannot listen within 10 s.
        while !line.contains("ready") {
            match out.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => line.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
        if line.contains("ready") {
            return Ok(PyModbus {
                child,
                port,
                _stdout: out,
            });
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(std::fs::read_to_string(&errlog).unwrap_or_default())
    }
}

impl Drop for PyModbus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_and_word_order_decodes_against_pymodbus() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    // (channel, table, address, type, word_order, byte_swap, raw value)
    let cases: Vec<(&str, &str, u32, &str, &str, bool, f64)> = vec![
        ("u16", "holding", 0, "u16", "big", false, 65000.0),
        ("u16_swap", "holding", 1, "u16", "big", true, 4660.0),
        ("i16", "holding", 2, "i16", "big", false, -2.0),
        ("u32_abcd", "holding", 4, "u32", "big", false, 305_419_896.0),
        (
            "u32_cdab",
            "holding",
            6,
            "u32",
            "little",
            false,
            305_419_896.0,
        ),
        ("u32_badc", "holding", 8, "u32", "big", true, 305_419_896.0),
        (
            "u32_dcba",
            "holding",
            10,
            "u32",
            "little",
            true,
            305_419_896.0,
        ),
        (
            "i32_abcd",
            "holding",
            12,
            "i32",
            "big",
            false,
            -123_456_789.0,
        ),
        (
            "i32_cdab",
            "holding",
            14,
            "i32",
            "little",
            false,
            -123_456_789.0,
        ),
        (
            "i32_dcba",
            "holding",
            16,
            "i32",
            "little",
            true,
            -123_456_789.0,
        ),
        ("f32_abcd", "holding", 20, "f32", "big", false, -273.25),
        (
            "f32_cdab",
            "holding",
            22,
            "f32",
            "little",
            false,
            1.5e-3_f32 as f64,
        ),
        ("f32_badc", "holding", 24, "f32", "big", true, 98765.5),
        ("f32_dcba", "holding", 26, "f32", "little", true, -0.125),
        ("in_i32", "input", 0, "i32", "little", false, -70_000.0),
        ("coil", "coil", 5, "bool", "big", false, 1.0),
        ("discrete", "discrete", 2, "bool", "big", false, 1.0),
        ("discrete0", "discrete", 3, "bool", "big", false, 0.0),
    ];
    let spec: Vec<Value> = cases
        .iter()
        .map(|(_, table, address, ty, order, swap, raw)| {
            json!({"unit": 3, "table": table, "address": address, "type": ty,
                   "word_order": order, "byte_swap": swap, "raw": raw})
        })
        .collect();
    let py = PyModbus::start(&Value::Array(spec));
    let port = py.port;
    let mut regs = String::from("registers = [\n");
    for (ch, table, address, ty, order, swap, _) in &cases {
        let order = if *ty == "u32" || *ty == "i32" || *ty == "f32" {
            format!(", word_order = \"{order}\"")
        } else {
            String::new()
        };
        let swap = if *swap { ", byte_swap = true" } else { "" };
        regs.push_str(&format!(
            "  {{ channel = \"{ch}\", table = \"{table}\", address = {address}, type = \"{ty}\"{order}{swap} }},\n"
        ));
    }
    regs.push_str("]\n");
    let inv = format!("{PARK}{}", mb_device("py-3", &tcp(port, 3, &regs)));
    let cfg = TestConfig::new(&settings(&mq.url(), "gw-mb2", None), &inv);
    let gw = safegate::runtime::start(cfg.load()).await.unwrap();
    let api = format!("http://{}", gw.api_addr);
    let list = wait_json(&format!("{api}/api/v1/devices"), WAIT, |v| {
        device(v, "py-3")["state"] == "online"
    })
    .await;
    let d = device(&list, "py-3");
    for (ch, _, _, _, _, _, raw) in &cases {
        assert_value(&d["last_values"][ch], *raw, &format!("channel {ch}"));
    }
    assert_eq!(d["modbus"]["exceptions"], json!({}), "{d}");
    gw.stop().await;
}

/// Run mbpoll once against 127.0.0.1:`port`; the value of its single result line.
fn mbpoll(port: u16, unit: u8, table: &str, address: u32, big_words: bool) -> f64 {
    let mut c = Command::new("mbpoll");
    c.args(["-m", "tcp", "-a", &unit.to_string(), "-0", "-1", "-o", "2"])
        .args(["-r", &address.to_string(), "-c", "1", "-t", table]);
    if big_words {
        c.arg("-B");
    }
    let out = c
        .args(["-p", &port.to_string(), "127.0.0.1"])
        .output()
        .expect("mbpoll runs (./scripts/test.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("[{address}]:")))
        .unwrap_or_else(|| panic!("no result line in mbpoll output:\n{text}"));
    let v = line.split(':').nth(1).unwrap().trim();
    // Signed 16-bit values are shown as "64740 (-796)".
    let v = match v.split_once('(') {
        Some((_, signed)) => signed.trim_end_matches(')'),
        None => v,
    };
    v.parse()
        .unwrap_or_else(|_| panic!("mbpoll value {v:?} in {line:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mbpoll_reads_from_modbus_sim_what_the_config_says() {
    let _load = shared().await;
    let port = free_port();
    let regs = r#"registers = [
  { channel = "a", table = "holding", address = 10, type = "u16" },
  { channel = "b", table = "holding", address = 11, type = "i16" },
  { channel = "c", table = "holding", address = 12, type = "u32" },
  { channel = "d", table = "holding", address = 14, type = "i32", word_order = "little" },
  { channel = "e", table = "holding", address = 16, type = "f32" },
  { channel = "f", table = "input", address = 100, type = "f32", word_order = "little" },
  { channel = "g", table = "coil", address = 3, type = "bool" },
  { channel = "h", table = "discrete", address = 4, type = "bool" },
  { channel = "i", table = "input", address = 0, type = "u16" },
]
"#;
    let inv = format!(
        "{PARK}{}{}",
        mb_device("s-2", &tcp(port, 2, regs)),
        mb_device("s-5", &tcp(port, 5, regs))
    );
    let cfg = TestConfig::new(&settings("mqtt://127.0.0.1:1", "unused", None), &inv);
    let loaded = cfg.load();
    let sim = ModbusSim::from_config(&loaded.config, false);
    let tasks = sim.serve_tcp().await.unwrap();
    for unit in [2u8, 5] {
        let m = modbus_of(&loaded.config, &format!("s-{unit}"));
        for (k, r) in m.registers.iter().enumerate() {
            let want = raw_value(r.data_type, k, unit, 0.0);
            let table = match (r.table.as_str(), r.data_type) {
                ("holding", DataType::U32 | DataType::I32) => "4:int",
                ("holding", DataType::F32) => "4:float",
                ("holding", _) => "4",
                ("input", DataType::F32) => "3:float",
                ("input", _) => "3",
                ("coil", _) => "0",
                _ => "1",
            };
            let big = r.word_order == safegate::config::modbus::WordOrder::Big;
            let port2 = port;
            let address = r.address;
            let got = tokio::task::spawn_blocking(move || mbpoll(port2, unit, table, address, big))
                .await
                .unwrap();
            assert_eq!(got, want, "unit {unit} {} ({table})", r.channel);
        }
    }
    // An address the map does not have is an exception, as on a real device.
    let out = Command::new("mbpoll")
        .args([
            "-m", "tcp", "-a", "2", "-0", "-1", "-r", "500", "-c", "1", "-t", "4",
        ])
        .args(["-p", &port.to_string(), "127.0.0.1"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Illegal data address"),
        "{out:?}"
    );
    for t in tasks {
        t.abort();
    }
}

fn mb(list: &Value, id: &str) -> Value {
    device(list, id)["modbus"].clone()
}

fn endpoint<'a>(list: &'a Value, key: &str) -> &'a Value {
    list["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["endpoint"] == key)
        .unwrap_or_else(|| panic!("endpoint {key} not listed in {list}"))
}

const TWO_REGS: &str = r#"backoff_max_s = 2
registers = [
  { channel = "lel", table = "holding", address = 0, type = "u16", scale = 0.1 },
  { channel = "temp", table = "input", address = 0, type = "f32" },
]
status = { table = "holding", address = 1, fault_mask = 0x0004 }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_modes_are_counted_apart_and_a_dead_unit_does_not_hold_up_its_neighbours() {
    let _alone = alone().await;
    let mq = Mosquitto::start();
    let (pa, pb, pc, pd) = (free_port(), free_port(), free_port(), free_port());
    let mut inv = PARK.to_string();
    for (id, port, unit) in [
        ("a1", pa, 1),
        ("a2", pa, 2),
        ("a3", pa, 3),
        ("b1", pb, 1),
        ("b2", pb, 2),
        ("b3", pb, 3),
        ("b4", pb, 4),
        ("c1", pc, 1),
        ("c2", pc, 2),
        ("d1", pd, 1),
    ] {
        inv.push_str(&mb_device(id, &tcp(port, unit, TWO_REGS)));
    }
    let cfg = TestConfig::new(&settings(&mq.url(), "gw-mb4", None), &inv);
    let loaded = cfg.load();
    let mut sim = ModbusSim::from_config(&loaded.config, true);
    // Nothing listens on pd: connection refused.
    sim.retain(|address| address != format!("127.0.0.1:{pd}"));
    let sim_tasks: Vec<_> = sim.serve_tcp().await.unwrap().into_iter().collect();
    let a = |p: u16| format!("127.0.0.1:{p}");
    sim.faults.set(&a(pb), 1, Fault::Exception(2));
    sim.faults
        .set(&a(pb), 2, Fault::Slow(Duration::from_millis(600)));
    sim.faults.set(&a(pb), 3, Fault::StatusFault);
    sim.faults.set(&a(pc), 1, Fault::DropConnection);
    let gw = safegate::runtime::start(loaded).await.unwrap();
    let api = format!("http://{}", gw.api_addr);
    let devices = format!("{api}/api/v1/devices");

    // Everyone healthy on endpoint A first, then unit 3 stops answering.
    wait_json(&devices, WAIT, |v| {
        ["a1", "a2", "a3"]
            .iter()
            .all(|id| device(v, id)["state"] == "online")
    })
    .await;
    sim.faults.set(&a(pa), 3, Fault::NoAnswer);
    let list = wait_json(&devices, WAIT, |v| {
        device(v, "a3")["state"] == "offline"
            && mb(v, "a3")["backoff_until"].is_string()
            && mb(v, "c2")["successes"].as_u64() > Some(3)
            && mb(v, "b2")["timeouts"].as_u64() > Some(1)
            && mb(v, "d1")["transport_errors"].as_u64() > Some(1)
    })
    .await;
    let a3 = mb(&list, "a3");
    assert!(a3["timeouts"].as_u64().unwrap() >= 2, "{a3}");
    assert_eq!(a3["transport_errors"], 0, "{a3}");
    assert_eq!(a3["exceptions"], json!({}), "{a3}");
    assert!(
        a3["last_error"]
            .as_str()
            .unwrap()
            .contains("did not answer"),
        "{a3}"
    );
    // Healthy neighbours: online, never failing, and late by at most the dead unit's
    // timeout (300 ms) on their 500 ms period, plus scheduling slack.
    for id in ["a1", "a2", "b4", "c2"] {
        let d = device(&list, id);
        assert_eq!(d["state"], "online", "{d}");
        assert_eq!(d["modbus"]["timeouts"], 0, "{d}");
    }
    for id in ["a1", "a2"] {
        let m = mb(&list, id);
        let max = m["achieved_period_ms"]["max"].as_f64().unwrap();
        assert!(
            max <= 500.0 + 300.0 + 150.0,
            "{id} period max {max} ms: {m}"
        );
        assert_eq!(m["transport_errors"], 0, "{m}");
    }
    // Exception: reachable but refused, counted by code, never as a timeout.
    let b1 = device(&list, "b1");
    assert!(
        b1["modbus"]["exceptions"]["0x02"].as_u64() > Some(0),
        "{b1}"
    );
    assert_eq!(b1["modbus"]["timeouts"], 0, "{b1}");
    assert_eq!(b1["modbus"]["transport_errors"], 0, "{b1}");
    assert_eq!(b1["modbus"]["backoff_until"], Value::Null, "{b1}");
    assert_eq!(b1["state"], "never", "{b1}");
    // Slow answer beyond timeout_ms: a timeout.
    let b2 = device(&list, "b2");
    assert_eq!(b2["modbus"]["exceptions"], json!({}), "{b2}");
    assert_ne!(b2["state"], "online", "{b2}");
    // The status register's fault bit makes the reading a fault reading.
    let b3 = device(&list, "b3");
    assert_eq!(b3["state"], "online", "{b3}");
    assert_eq!(b3["last_status"], "fault", "{b3}");
    assert_eq!(b3["faulty"], true, "{b3}");
    // … and raises a fault alarm.
    let fault = wait_json(
        &format!("{api}/api/v1/alarms?device=b3&type=fault"),
        WAIT,
        |v| v["count"] == 1,
    )
    .await;
    assert_eq!(fault["alarms"][0]["state"], "active_unacked", "{fault}");
    // A dropped connection: transport errors and reconnects, the neighbour keeps reading.
    let c1 = mb(&list, "c1");
    assert!(c1["transport_errors"].as_u64().unwrap() > 0, "{c1}");
    assert_eq!(c1["timeouts"], 0, "{c1}");
    // Refused: transport errors, never online.
    assert_eq!(device(&list, "d1")["state"], "never");

    let eps = wait_json(&format!("{api}/api/v1/endpoints"), WAIT, |v| {
        endpoint(v, &format!("tcp://{}", a(pc)))["reconnects"].as_u64() > Some(0)
    })
    .await;
    let d = endpoint(&eps, &format!("tcp://{}", a(pd)));
    assert_eq!(d["connected"], false, "{d}");
    assert!(
        d["last_error"].as_str().unwrap().contains("cannot connect"),
        "{d}"
    );
    let b = endpoint(&eps, &format!("tcp://{}", a(pb)));
    assert_eq!(b["connected"], true, "{b}");
    assert!(b["exceptions"]["0x02"].as_u64() > Some(0), "{b}");
    assert!(b["timeouts"].as_u64() > Some(0), "{b}");
    assert_eq!(b["devices"], 4);

    let text = get_text(&format!("{api}/metrics")).await;
    let exc = metric(
        &text,
        &format!(
            "safegate_modbus_exceptions_total{{endpoint=\"tcp://{}\",device=\"p1/b1\",code=\"0x02\"}}",
            a(pb)
        ),
    );
    assert!(exc > Some(0.0), "{text}");
    let to = metric(
        &text,
        &format!(
            "safegate_modbus_timeouts_total{{endpoint=\"tcp://{}\",device=\"p1/a3\"}}",
            a(pa)
        ),
    );
    assert!(to >= Some(2.0), "{text}");
    // The same, summed per endpoint.
    let ep_exc = metric(
        &text,
        &format!(
            "safegate_modbus_endpoint_exceptions_total{{endpoint=\"tcp://{}\",code=\"0x02\"}}",
            a(pb)
        ),
    );
    assert_eq!(ep_exc, exc, "{text}");
    let ep_to = metric(
        &text,
        &format!(
            "safegate_modbus_endpoint_timeouts_total{{endpoint=\"tcp://{}\"}}",
            a(pa)
        ),
    );
    assert!(ep_to >= to, "{text}");
    let reconnects = metric(
        &text,
        &format!(
            "safegate_modbus_reconnects_total{{endpoint=\"tcp://{}\"}}",
            a(pc)
        ),
    );
    assert!(reconnects > Some(0.0), "{text}");

    // The dead unit answers again: polled again within its back-off cap, back online.
    sim.faults.set(&a(pa), 3, Fault::None);
    let list = wait_json(&devices, Duration::from_secs(10), |v| {
        device(v, "a3")["state"] == "online"
    })
    .await;
    let a3 = mb(&list, "a3");
    assert_eq!(a3["consecutive_failures"], 0, "{a3}");
    assert_eq!(a3["backoff_until"], Value::Null, "{a3}");
    // Its offline spell was an offline alarm, cleared when it came back.
    wait_json(
        &format!("{api}/api/v1/alarms?device=a3&type=offline&state=cleared_unacked"),
        WAIT,
        |v| v["count"] == 1,
    )
    .await;
    gw.stop().await;
    for t in sim_tasks {
        t.abort();
    }
}

/// A socat pseudo-terminal pair, killed on drop.
struct PtyPair {
    child: std::process::Child,
    pub gateway_end: String,
    pub device_end: String,
}

impl PtyPair {
    fn start(dir: &std::path::Path) -> PtyPair {
        let (g, d) = (dir.join("gw-tty"), dir.join("dev-tty"));
        let child = Command::new("socat")
            .arg(format!("pty,raw,echo=0,link={}", g.display()))
            .arg(format!("pty,raw,echo=0,link={}", d.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat runs (./scripts/test.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(g.exists() && d.exists()) {
            assert!(Instant::now() < deadline, "socat made no pty pair");
            std::thread::sleep(Duration::from_millis(20));
        }
        PtyPair {
            child,
            gateway_end: g.display().to_string(),
            device_end: d.display().to_string(),
        }
    }
}

impl Drop for PtyPair {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtu_over_a_pty_pair_and_rtu_over_tcp_read_the_same_values() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    let tmp = tempfile::tempdir().unwrap();
    let pty = PtyPair::start(tmp.path());
    let port = free_port();
    let rtu = |unit: u8| {
        format!(
            "transport = \"rtu\"\nserial = \"{}\"\nbaud = 19200\nunit = {unit}\ntimeout_ms = 300\n{ALL_TYPES}",
            pty.gateway_end
        )
    };
    let over_tcp = format!(
        "transport = \"rtu_over_tcp\"\naddress = \"127.0.0.1:{port}\"\nunit = 4\ntimeout_ms = 300\n{ALL_TYPES}"
    );
    let inv = format!(
        "{PARK}{}{}{}{}",
        mb_device("rtu-1", &rtu(1)),
        mb_device("rtu-2", &rtu(2)),
        mb_device("rtu-3", &rtu(3)),
        mb_device("rtutcp-4", &over_tcp)
    );
    let cfg = TestConfig::new(&settings(&mq.url(), "gw-mb5", None), &inv);
    let loaded = cfg.load();
    let sim = ModbusSim::from_config(&loaded.config, false);
    let mut tasks = sim.serve_tcp().await.unwrap();
    tasks.push(
        sim.serve_serial(&pty.gateway_end, &pty.device_end, 19200)
            .unwrap(),
    );
    // Unit 3 is dead on the serial line: the others must not suffer for it.
    sim.faults.set(&pty.gateway_end, 3, Fault::NoAnswer);
    let expected: Vec<(String, Vec<(String, f64)>)> = ["rtu-1", "rtu-2", "rtutcp-4"]
        .iter()
        .map(|id| {
            (
                id.to_string(),
                expected_values(&modbus_of(&loaded.config, id)),
            )
        })
        .collect();
    let gw = safegate::runtime::start(loaded).await.unwrap();
    let api = format!("http://{}", gw.api_addr);
    let list = wait_json(&format!("{api}/api/v1/devices"), WAIT, |v| {
        expected
            .iter()
            .all(|(id, _)| device(v, id)["modbus"]["successes"].as_u64() >= Some(3))
            && mb(v, "rtu-3")["timeouts"].as_u64() >= Some(2)
    })
    .await;
    for (id, values) in &expected {
        let d = device(&list, id);
        assert_eq!(d["state"], "online", "{d}");
        for (ch, v) in values {
            assert_value(&d["last_values"][ch], *v, &format!("{id} channel {ch}"));
        }
    }
    assert_eq!(device(&list, "rtu-3")["state"], "never");
    let eps = get(&format!("{api}/api/v1/endpoints")).await.1;
    let serial = endpoint(&eps, &format!("rtu://{}", pty.gateway_end));
    assert_eq!(serial["transport"], "rtu");
    assert_eq!(serial["devices"], 3);
    gw.stop().await;
    for t in tasks {
        t.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_endpoint_takes_its_units_offline_and_they_come_back_when_it_returns() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    let port = free_port();
    let inv = format!(
        "{PARK}{}{}",
        mb_device("r1", &tcp(port, 1, TWO_REGS)),
        mb_device("r2", &tcp(port, 2, TWO_REGS))
    );
    let cfg = TestConfig::new(&settings(&mq.url(), "gw-mb6", None), &inv);
    let loaded = cfg.load();
    let sim = ModbusSim::from_config(&loaded.config, true);
    let tasks = sim.serve_tcp().await.unwrap();
    let t0 = now_ms();
    let gw = safegate::runtime::start(loaded).await.unwrap();
    let api = format!("http://{}", gw.api_addr);
    let devices = format!("{api}/api/v1/devices");
    let endpoints = format!("{api}/api/v1/endpoints");
    let key = format!("tcp://127.0.0.1:{port}");
    let both = |v: &Value, state: &str| {
        ["r1", "r2"]
            .iter()
            .all(|id| device(v, id)["state"] == state)
    };
    wait_json(&devices, WAIT, |v| both(v, "online")).await;

    // The server goes away (its connections are closed, the port refuses).
    for t in tasks {
        t.abort();
    }
    let list = wait_json(&devices, WAIT, |v| both(v, "offline")).await;
    for id in ["r1", "r2"] {
        let m = mb(&list, id);
        assert!(m["transport_errors"].as_u64() > Some(0), "{m}");
        assert_eq!(m["timeouts"], 0, "{m}");
    }
    let eps = wait_json(&endpoints, WAIT, |v| {
        endpoint(v, &key)["connected"] == false
    })
    .await;
    assert!(
        endpoint(&eps, &key)["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot connect") || e.contains("failed")),
        "{eps}"
    );

    // It comes back: the gateway reconnects (within its 10 s back-off cap) and both units
    // report again.
    let tasks = sim.serve_tcp().await.unwrap();
    wait_json(&devices, WAIT, |v| both(v, "online")).await;
    let eps = wait_json(&endpoints, WAIT, |v| endpoint(v, &key)["connected"] == true).await;
    assert!(
        endpoint(&eps, &key)["reconnects"].as_u64() > Some(0),
        "{eps}"
    );
    // The outage shows in 稳定性: the endpoint's uptime share and its poll success ratio
    // over the window are both below 1 and above 0.
    let link = format!("modbus:{key}");
    let url = format!("{api}/api/v1/indicators?from={t0}&to={}", now_ms());
    let (_, v) = get(&url).await;
    for id in ["link_stability", "poll_success_ratio"] {
        let ind = v["indicators"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == id && i["qualifier"] == link.as_str())
            .unwrap_or_else(|| panic!("{id} for {link} missing: {v}"));
        let x = ind["value"].as_f64().unwrap();
        assert!(x > 0.0 && x < 1.0, "{id} = {x}: {ind}");
    }
    gw.stop().await;
    for t in tasks {
        t.abort();
    }
}
