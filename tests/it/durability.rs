//! Nothing lost: the durability guarantee (docs/durability.md) shown with real processes that
//! the harness kills and restarts: the gateway binary (SIGKILL), Mosquitto with persistence
//! (restarted), VictoriaMetrics (stopped for two minutes). Every reading is counted back from
//! VictoriaMetrics per device.

use crate::common::proxy::{Rules, StoreProxy};
use crate::common::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

/// Site p1 with `n` MQTT gas detectors d0… and `extra_devices`; long intervals, so no
/// liveness noise.
fn inventory(n: usize, extra_devices: &[&str]) -> String {
    let ids: Vec<String> = (0..n).map(|i| format!("d{i}")).collect();
    let mut all: Vec<&str> = ids.iter().map(String::as_str).collect();
    all.extend_from_slice(extra_devices);
    Inventory::park("p1").detectors(&all, 3600.0).to_toml()
}

/// Settings for the gateway binary: a fixed API port (the test must know it) and `extra`.
fn proc_settings(mqtt: &str, client_id: &str, store: &str, api_port: u16, extra: &str) -> String {
    settings(mqtt, client_id, Some(store)).replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{api_port}\""),
    ) + extra
}

/// One batch message: `(device, ts)` readings with a value below every alarm threshold.
fn batch(items: impl IntoIterator<Item = (String, i64)>) -> String {
    Value::Array(
        items
            .into_iter()
            .map(|(d, ts)| json!({"device": d, "ts": ts, "values": {"lel": (ts % 200) as f64 / 10.0}}))
            .collect(),
    )
    .to_string()
}

/// Distinct reading timestamps per device in the store.
fn per_device(series: &[Series]) -> BTreeMap<String, BTreeSet<i64>> {
    let mut m: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    for s in series {
        m.entry(s.label("device").to_string())
            .or_default()
            .extend(s.timestamps.iter().copied());
    }
    m
}

/// Wait until the store holds exactly `want` for each of its devices (panics with the
/// shortfall). Other devices (a polled Modbus unit) are not compared.
async fn wait_all_stored(vm: &Victoria, want: &BTreeMap<String, BTreeSet<i64>>, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let mut got = per_device(&vm.export("reading_lel{site=\"p1\"}").await);
        got.retain(|d, _| want.contains_key(d));
        if &got == want {
            return;
        }
        if Instant::now() > deadline {
            let short: Vec<String> = want
                .iter()
                .map(|(d, ts)| {
                    let have = got.get(d).map_or(0, |g| g.intersection(ts).count());
                    format!("{d}: {have} of {}", ts.len())
                })
                .collect();
            panic!("the store is missing readings: {}", short.join(", "));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A small xorshift generator: the kill moments differ per run and the seed is printed.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_loses_no_acknowledged_reading() {
    let _load = shared().await;
    const DEVICES: usize = 10;
    const PER_DEVICE: usize = 10_000;
    const PER_MESSAGE: usize = 20;
    let mq = Mosquitto::start_tuned();
    let vm = Victoria::start();
    let api_port = free_port();
    let cfg = TestConfig::new(
        &proc_settings(&mq.url(), "gw-kill", &vm.url(), api_port, ""),
        &inventory(DEVICES, &[]),
    );
    let mut gw = GatewayProc::new(&cfg, api_port);
    gw.start_ready().await;

    let ts0 = now_ms() - 3_600_000;
    let mut want: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    for j in 0..DEVICES * PER_DEVICE {
        want.entry(format!("d{}", j % DEVICES))
            .or_default()
            .insert(ts0 + (j / DEVICES) as i64 * 10);
    }
    let port = mq.port;
    let publishing = tokio::spawn(async move {
        let mut p = AckedPublisher::connect(port, "pub-kill").await;
        for (m, first) in (0..DEVICES * PER_DEVICE).step_by(PER_MESSAGE).enumerate() {
            let items = (first..first + PER_MESSAGE)
                .map(|j| (format!("d{}", j % DEVICES), ts0 + (j / DEVICES) as i64 * 10));
            p.send("safegate/v1/p1/batch", batch(items)).await;
            // About 1,000 messages (20,000 readings) a second: the kills land mid-stream.
            if m % 100 == 99 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        p.wait_acked(Duration::from_secs(120)).await;
        p
    });

    let mut seed = (now_ms() as u64) | 1;
    eprintln!("kill schedule seed {seed}");
    let mut first_kill_at = None;
    for round in 1..=4 {
        let wait = 300 + next(&mut seed) % 1200;
        tokio::time::sleep(Duration::from_millis(wait)).await;
        first_kill_at.get_or_insert(now_ms());
        gw.kill9();
        eprintln!("round {round}: SIGKILL after {wait} ms");
        gw.start_ready().await;
    }
    let _publisher = publishing.await.unwrap();
    wait_all_stored(&vm, &want, Duration::from_secs(180)).await;
    let total: usize = want.values().map(BTreeSet::len).sum();
    assert_eq!(total, DEVICES * PER_DEVICE);
    let (_, health) = get(&format!("{}/healthz", gw.api)).await;
    assert_eq!(health["outbox"]["state"], "ok", "{health}");
    // Nor was the gateway's own state rewound: every device has been online since its first
    // reading, before the first kill, not since a restart.
    let (_, list) = get(&format!("{}/api/v1/devices?site=p1", gw.api)).await;
    for d in 0..DEVICES {
        let dev = device(&list, &format!("d{d}"));
        assert_eq!(dev["state"], "online", "{dev}");
        let since = safegate::sources::mqtt::payload::parse_rfc3339_ms(
            dev["state_since"].as_str().unwrap(),
        )
        .unwrap();
        assert!(
            since < first_kill_at.unwrap(),
            "online since a restart: {dev}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_minute_store_outage_loses_nothing_and_keeps_order_per_device() {
    const DEVICES: usize = 5;
    let mq = Mosquitto::start_tuned();
    let mut vm = Victoria::start();
    let proxy = StoreProxy::start(vm.url(), Rules::default()).await;
    let cfg = TestConfig::new(
        &settings(&mq.url(), "gw-outage", Some(&proxy.url())),
        &inventory(DEVICES, &[]),
    );
    let (gw, api) = start_ready(&cfg).await;
    let mut p = AckedPublisher::connect(mq.port, "pub-outage").await;
    let ts0 = now_ms() - 3_600_000;
    let mut seq = 0i64;
    let mut want: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    // One reading per device every 100 ms for `secs`.
    let mut publish_for = async |secs: u64, seq: &mut i64| {
        let until = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < until {
            let ts = ts0 + *seq * 100;
            let items: Vec<(String, i64)> = (0..DEVICES).map(|d| (format!("d{d}"), ts)).collect();
            for (d, ts) in &items {
                want.entry(d.clone()).or_default().insert(*ts);
            }
            p.send("safegate/v1/p1/batch", batch(items)).await;
            *seq += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    publish_for(3, &mut seq).await;
    vm.stop();
    let outage = Instant::now();
    publish_for(60, &mut seq).await;
    let (_, h) = get(&format!("{api}/healthz")).await;
    assert!(
        h["outbox"]["backlog_points"].as_u64().unwrap() >= 60 * 10 * DEVICES as u64 * 9 / 10,
        "the outage's readings wait in the outbox: {h}"
    );
    assert!(
        h["outbox"]["oldest_pending_age_s"].as_f64().unwrap() >= 50.0,
        "{h}"
    );
    let (code, ready) = get(&format!("{api}/readyz")).await;
    assert_eq!(code, 503, "{ready}");
    assert_eq!(ready["store"]["health"], "failing", "{ready}");
    publish_for(60, &mut seq).await;
    assert!(outage.elapsed() >= Duration::from_secs(120));
    vm.start_again();
    publish_for(3, &mut seq).await;
    p.wait_acked(WAIT).await;
    wait_all_stored(&vm, &want, Duration::from_secs(120)).await;

    // In order per device, each reading once: what the store accepted, in the order written.
    let mut seen: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for line in proxy.accepted_lines() {
        if !line.starts_with("reading,") {
            continue;
        }
        let device = line
            .split([',', ' '])
            .find_map(|t| t.strip_prefix("device="))
            .unwrap()
            .to_string();
        let ts: i64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        seen.entry(device).or_default().push(ts);
    }
    for (d, ts) in &seen {
        assert!(
            ts.windows(2).all(|w| w[0] < w[1]),
            "{d}: written out of order or twice"
        );
        assert_eq!(ts.len(), want[d].len(), "{d}");
    }
    assert_eq!(seen.len(), DEVICES);
    let h = wait_json(&format!("{api}/healthz"), WAIT, |v| {
        v["outbox"]["backlog_points"] == 0
    })
    .await;
    assert_eq!(h["outbox"]["state"], "ok");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_mid_stream_loses_nothing() {
    let _load = shared().await;
    const DEVICES: usize = 10;
    const MESSAGES: usize = 1_000;
    let mut mq = Mosquitto::start_tuned();
    let vm = Victoria::start();
    let api_port = free_port();
    let cfg = TestConfig::new(
        &proc_settings(&mq.url(), "gw-brestart", &vm.url(), api_port, ""),
        &inventory(DEVICES, &[]),
    );
    let mut gw = GatewayProc::new(&cfg, api_port);
    gw.start_ready().await;
    let ts0 = now_ms() - 3_600_000;
    let mut want: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    let mut p = AckedPublisher::connect(mq.port, "pub-brestart").await;
    let mut publish = async |from: usize, to: usize, p: &mut AckedPublisher| {
        for m in from..to {
            let ts = ts0 + m as i64 * 10;
            let items: Vec<(String, i64)> = (0..DEVICES).map(|d| (format!("d{d}"), ts)).collect();
            for (d, ts) in &items {
                want.entry(d.clone()).or_default().insert(*ts);
            }
            p.send("safegate/v1/p1/batch", batch(items)).await;
        }
    };
    // Mid-stream, deterministically: the gateway is frozen while the broker takes 10,000
    // readings for it, so at the restart some are in flight to the gateway (sent, not
    // acknowledged) and the rest queued in its session.
    gw.pause(true);
    publish(0, MESSAGES, &mut p).await;
    p.wait_acked(WAIT).await;
    // SIGTERM: Mosquitto saves its persistence file, as a service restart would.
    mq.restart();
    gw.pause(false);
    // The stream goes on while the gateway, having seen the restart, reconnects and drains
    // the backlog.
    gw.wait_log("MQTT connection lost", WAIT).await;
    publish(MESSAGES, 2 * MESSAGES, &mut p).await;
    p.wait_acked(Duration::from_secs(60)).await;
    wait_all_stored(&vm, &want, Duration::from_secs(90)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_disk_budget_holds_acks_pauses_modbus_and_loses_nothing() {
    let _load = shared().await;
    use safegate::simulators::modbus_sim::ModbusSim;
    const DEVICES: usize = 5;
    const MESSAGES: usize = 800;
    let mq = Mosquitto::start_tuned();
    let mut vm = Victoria::start();
    vm.stop();
    let mb_port = free_port();
    let mut inv = inventory(DEVICES, &[]);
    inv.push_str(&format!(
        "[[devices]]\nid = \"mb1\"\nsite = \"p1\"\nkind = \"gas_combustible\"\nprotocol = \"modbus\"\ninterval_s = 0.2\noffline_after_s = 3600\n[devices.modbus]\ntransport = \"tcp\"\naddress = \"127.0.0.1:{mb_port}\"\nunit = 1\ntimeout_ms = 100\nregisters = [{{ channel = \"lel\", table = \"holding\", address = 0, type = \"u16\", scale = 0.01 }}]\n\n"
    ));
    let cfg = TestConfig::new(
        &(settings(&mq.url(), "gw-budget", Some(&vm.url()))
            + "[outbox]\nmax_bytes = 16384\ncommit_interval_ms = 20\n\n"),
        &inv,
    );
    let loaded = cfg.load();
    let sim = ModbusSim::from_config(&loaded.config, false);
    let _sim = sim.serve_tcp().await.unwrap();
    let gw = safegate::runtime::start(loaded).await.unwrap();
    let api = format!("http://{}", gw.api_addr);
    wait_json(&format!("{api}/readyz"), WAIT, |v| {
        v["mqtt"]["connected"] == true
    })
    .await;

    let mut p = AckedPublisher::connect(mq.port, "pub-budget").await;
    let ts0 = now_ms() - 3_600_000;
    let mut want: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    for m in 0..MESSAGES {
        let ts = ts0 + m as i64 * 10;
        let items: Vec<(String, i64)> = (0..DEVICES).map(|d| (format!("d{d}"), ts)).collect();
        for (d, ts) in &items {
            want.entry(d.clone()).or_default().insert(*ts);
        }
        p.send("safegate/v1/p1/batch", batch(items)).await;
    }
    // Back-pressure, visible in health, readiness and metrics.
    let h = wait_json(&format!("{api}/healthz"), WAIT, |v| {
        v["outbox"]["state"] == "full"
    })
    .await;
    // Never over the budget, but for the one batch an empty outbox always takes.
    assert!(
        h["outbox"]["backlog_bytes"].as_u64().unwrap() <= 16384
            || h["outbox"]["backlog_batches"] == 1,
        "never over the budget: {h}"
    );
    assert_eq!(h["outbox"]["max_bytes"], 16384);
    let (code, ready) = get(&format!("{api}/readyz")).await;
    assert_eq!(code, 503);
    assert_eq!(ready["outbox"]["state"], "full", "{ready}");
    let text = get_text(&format!("{api}/metrics")).await;
    assert_eq!(metric(&text, "safegate_outbox_full"), Some(1.0), "{text}");
    assert!(metric(&text, "safegate_mqtt_acks_pending").unwrap() > 0.0);
    assert!(metric(&text, "safegate_outbox_bytes").unwrap() > 0.0);
    // Modbus polling is paused: the endpoint's task waits at the outbox's hold (it says so)
    // and its polls stand still while it does.
    let polls = |v: &Value| device(v, "mb1")["modbus"]["polls"].as_u64().unwrap();
    let paused = |v: &Value| v["endpoints"][0]["paused"] == true;
    wait_json(&format!("{api}/api/v1/endpoints"), WAIT, paused).await;
    let (_, before) = get(&format!("{api}/api/v1/devices")).await;
    // One task per endpoint polls one device at a time: while it waits at the hold no poll
    // can start, so across an observation that still finds it paused the count stands.
    let (_, eps) = get(&format!("{api}/api/v1/endpoints")).await;
    let (_, after) = get(&format!("{api}/api/v1/devices")).await;
    assert!(paused(&eps), "still held: {eps}");
    assert_eq!(
        polls(&after),
        polls(&before),
        "polling goes on while the outbox is full"
    );

    vm.start_again();
    p.wait_acked(Duration::from_secs(60)).await;
    wait_all_stored(&vm, &want, Duration::from_secs(90)).await;
    let h = wait_json(&format!("{api}/healthz"), WAIT, |v| {
        v["outbox"]["state"] == "ok"
    })
    .await;
    assert_eq!(h["outbox"]["state"], "ok");
    let text = get_text(&format!("{api}/metrics")).await;
    assert_eq!(metric(&text, "safegate_outbox_full"), Some(0.0));
    // And polling resumed.
    let resumed = polls(&get(&format!("{api}/api/v1/devices")).await.1);
    wait_json(&format!("{api}/api/v1/devices"), WAIT, |v| {
        polls(v) >= resumed + 3
    })
    .await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_outbox_or_state_file_stops_the_start_or_is_moved_aside_never_deleted() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    let mut vm = Victoria::start();
    vm.stop(); // the store is down: what the gateway receives stays in the outbox
    let api_port = free_port();
    let cfg = TestConfig::new(
        &proc_settings(&mq.url(), "gw-damage", &vm.url(), api_port, ""),
        &inventory(5, &[]),
    );
    let data = cfg.dir.path().join("state");
    let outbox = data.join("outbox.db");
    let mut gw = GatewayProc::new(&cfg, api_port);
    gw.start_ready().await;
    let mut p = AckedPublisher::connect(mq.port, "pub-damage").await;
    let ts0 = now_ms() - 3_600_000;
    for m in 0..300 {
        let ts = ts0 + m * 10;
        p.send(
            "safegate/v1/p1/batch",
            batch((0..5).map(|d| (format!("d{d}"), ts))),
        )
        .await;
    }
    p.wait_acked(WAIT).await;
    wait_json(&format!("{}/healthz", gw.api), WAIT, |v| {
        v["outbox"]["backlog_points"].as_u64().unwrap_or(0) >= 1500
    })
    .await;
    gw.stop();
    // Fold the WAL into the main file, so the damage below is not masked by it.
    let c = rusqlite::Connection::open(&outbox).unwrap();
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
    drop(c);
    let good = std::fs::read(&outbox).unwrap();
    assert!(good.len() > 64 * 1024, "a backlog of several pages");

    let refused =
        async |gw: &mut GatewayProc, file: &str, damaged: &[u8], path: &std::path::Path| {
            let before = gw.log().len();
            gw.spawn();
            let status = gw
                .wait_exit(Duration::from_secs(20))
                .await
                .expect("the gateway refuses to start");
            assert!(!status.success());
            let log = gw.log()[before..].to_string();
            assert!(
                log.contains(&format!("{file} is damaged")) && log.contains("nothing was deleted"),
                "the error names the file: {log}"
            );
            assert!(log.contains("on_damaged_file"), "and the option: {log}");
            assert_eq!(
                std::fs::read(path).unwrap(),
                damaged,
                "{file} left as it was"
            );
        };

    // Truncated: the second half of the file is gone.
    let truncated = good[..good.len() / 2].to_vec();
    std::fs::write(&outbox, &truncated).unwrap();
    refused(&mut gw, "outbox.db", &truncated, &outbox).await;

    // Corrupted: 8 KiB of garbage in the middle.
    let mut corrupted = good.clone();
    let mid = corrupted.len() / 2;
    for (i, b) in corrupted[mid..mid + 8192].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(151) ^ 0x5a;
    }
    std::fs::write(&outbox, &corrupted).unwrap();
    refused(&mut gw, "outbox.db", &corrupted, &outbox).await;

    // The state journal is held to the same rule.
    std::fs::write(&outbox, &good).unwrap();
    let state = data.join("state.db");
    let c = rusqlite::Connection::open(&state).unwrap();
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
    drop(c);
    let mut bad_state = std::fs::read(&state).unwrap();
    let n = bad_state.len();
    bad_state[n - 4096..].fill(0xee);
    bad_state[100..4096].fill(0xee);
    std::fs::write(&state, &bad_state).unwrap();
    refused(&mut gw, "state.db", &bad_state, &state).await;
    std::fs::remove_file(&state).unwrap();

    // The documented option: move it aside (kept, byte for byte) and start afresh.
    std::fs::write(&outbox, &corrupted).unwrap();
    let text = std::fs::read_to_string(&cfg.path).unwrap().replace(
        "[gateway]\n",
        "[gateway]\non_damaged_file = \"move_aside\"\n",
    );
    std::fs::write(&cfg.path, text).unwrap();
    gw.start_ready().await;
    let aside: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("outbox.db.damaged-")
                && !p.to_string_lossy().ends_with("-wal")
                && !p.to_string_lossy().ends_with("-shm")
        })
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(std::fs::read(&aside[0]).unwrap(), corrupted);
    assert!(gw.log().contains("moved aside"), "the log says where");
    let (_, h) = get(&format!("{}/healthz", gw.api)).await;
    assert_eq!(h["outbox"]["state"], "ok", "{h}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_line_is_dead_lettered_and_everything_else_arrives() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    let vm = Victoria::start();
    // The store answers the first write with 429 and Retry-After: 2, refuses (413) any write
    // over 2 KiB, and refuses (400, as InfluxDB refuses a field type conflict) any batch
    // holding a reading of `d-poison`.
    let proxy = StoreProxy::start(
        vm.url(),
        Rules {
            refuse_device: Some("d-poison".into()),
            max_body_bytes: Some(2048),
            throttle_first: 1,
            retry_after_s: 2,
        },
    )
    .await;
    let cfg = TestConfig::new(
        &settings(&mq.url(), "gw-dead", Some(&proxy.url())),
        &inventory(5, &["d-poison"]),
    );
    let (gw, api) = start_ready(&cfg).await;
    let mut p = AckedPublisher::connect(mq.port, "pub-dead").await;
    let ts0 = now_ms() - 3_600_000;
    let mut want: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    let mut items = Vec::new();
    for k in 0..4 {
        for d in 0..5 {
            items.push((format!("d{d}"), ts0 + k * 10));
        }
        if k == 1 {
            items.push(("d-poison".to_string(), ts0 + 15));
        }
    }
    for (d, ts) in items.iter().filter(|i| i.0 != "d-poison") {
        want.entry(d.clone()).or_default().insert(*ts);
    }
    p.send("safegate/v1/p1/batch", batch(items)).await;
    p.wait_acked(WAIT).await;
    wait_all_stored(&vm, &want, WAIT).await;

    // Later traffic is not blocked behind the refused line.
    let later: Vec<(String, i64)> = (0..5).map(|d| (format!("d{d}"), ts0 + 1000)).collect();
    for (d, ts) in &later {
        want.get_mut(d).unwrap().insert(*ts);
    }
    p.send("safegate/v1/p1/batch", batch(later)).await;
    wait_all_stored(&vm, &want, WAIT).await;

    let (_, o) = get(&format!("{api}/api/v1/outbox")).await;
    let dead = o["dead_letter_lines"].as_array().unwrap();
    assert_eq!(dead.len(), 1, "{o}");
    assert!(
        dead[0]["line"]
            .as_str()
            .unwrap()
            .starts_with("reading,device=d-poison,"),
        "{o}"
    );
    assert_eq!(dead[0]["status"], 400);
    assert!(
        dead[0]["store_said"]
            .as_str()
            .unwrap()
            .contains("field type conflict"),
        "{o}"
    );
    assert_eq!(o["dead_letters"], 1);
    let text = get_text(&format!("{api}/metrics")).await;
    assert_eq!(
        metric(&text, "safegate_outbox_dead_letters_total"),
        Some(1.0)
    );
    assert!(vm
        .export("reading_lel{device=\"d-poison\"}")
        .await
        .is_empty());

    // Retry-After was honoured: the second write came at least 2 s after the 429; batches
    // over the store's size limit were split (413) until they fitted, and nothing was lost.
    let answers = proxy.answers();
    assert!(answers.iter().any(|a| a.1 == 413), "{answers:?}");
    assert_eq!(answers[0].1, 429);
    let gap = answers[1].0 - answers[0].0;
    assert!(gap >= Duration::from_millis(1950), "retried after {gap:?}");
    gw.stop().await;
}

/// The disk settings of the full-disk tests, on an 8 MiB tmpfs: commits stop while less than
/// 3 MiB would stay free, a 512 KiB reserve, WALs bounded at 256 KiB.
const SMALL_DISK: u64 = 8 << 20;
const DISK_FLOOR: u64 = 3 << 20;
const RESERVE: u64 = 512 << 10;
const WAL_MAX: u64 = 256 << 10;
/// `store.batch_size` in the test settings: the largest transaction is one commit of it.
const BATCH_POINTS: u64 = 500;
/// The documented bound (docs/durability.md): wal_max_bytes plus one transaction, at most
/// 512 bytes of WAL per point of a commit.
const WAL_BOUND: u64 = WAL_MAX + BATCH_POINTS * 512;
/// SIGTERM ends the process within this (docs/durability.md).
const STOP_BOUND: Duration = Duration::from_secs(10);

fn disk_settings() -> String {
    format!(
        "[outbox]\ncommit_interval_ms = 20\nmin_free_bytes = {DISK_FLOOR}\nmin_free_percent = 100\nreserve_bytes = {RESERVE}\nwal_max_bytes = {WAL_MAX}\n\n"
    )
}

/// The gateway binary, subscribed, with `data_dir` on an 8 MiB tmpfs (`disk_settings`), tuned
/// Mosquitto, the store down. Bind its fields so the gateway drops before its disk is
/// unmounted, and the disk before its directory is removed.
struct OnSmallDisk {
    gw: GatewayProc,
    disk: SmallDisk,
    _cfg: TestConfig,
    vm: Victoria,
    mq: Mosquitto,
}

async fn on_small_disk(client_id: &str, devices: usize) -> OnSmallDisk {
    let mq = Mosquitto::start_tuned();
    let mut vm = Victoria::start();
    vm.stop();
    let api_port = free_port();
    let settings = proc_settings(&mq.url(), client_id, &vm.url(), api_port, &disk_settings());
    let cfg = TestConfig::new(&settings, &inventory(devices, &[]));
    let disk = SmallDisk::mount(&cfg.dir.path().join("state"), SMALL_DISK);
    let mut gw = GatewayProc::new(&cfg, api_port);
    gw.start_ready().await;
    OnSmallDisk {
        gw,
        disk,
        _cfg: cfg,
        vm,
        mq,
    }
}

/// Publish `messages` batches of one reading per device (`devices` of them), timestamps
/// from `ts0` on; adds what was sent to `want`.
async fn publish_readings(
    p: &mut AckedPublisher,
    devices: usize,
    messages: usize,
    ts0: i64,
    want: &mut BTreeMap<String, BTreeSet<i64>>,
) {
    for m in 0..messages {
        let ts = ts0 + m as i64 * 10;
        let items: Vec<(String, i64)> = (0..devices).map(|d| (format!("d{d}"), ts)).collect();
        for (d, ts) in &items {
            want.entry(d.clone()).or_default().insert(*ts);
        }
        p.send("safegate/v1/p1/batch", batch(items)).await;
    }
}

/// SIGTERM, and the time until the process is gone (panics past twice the bound).
async fn terminate_timed(gw: &mut GatewayProc) -> Duration {
    let t = Instant::now();
    gw.terminate();
    gw.wait_exit(STOP_BOUND * 2).await.unwrap_or_else(|| {
        panic!(
            "still running {:?} after SIGTERM:\n{}",
            STOP_BOUND * 2,
            gw.log()
        )
    });
    t.elapsed()
}

/// The largest size each WAL of `dir` reached while watched, sampled every 10 ms.
struct WalWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<(u64, u64)>,
}

impl WalWatch {
    fn start(dir: &std::path::Path) -> WalWatch {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (s, dir) = (stop.clone(), dir.to_path_buf());
        let task = tokio::spawn(async move {
            let size = |f: &str| std::fs::metadata(dir.join(f)).map_or(0, |m| m.len());
            let (mut outbox, mut state) = (0, 0);
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                outbox = outbox.max(size("outbox.db-wal"));
                state = state.max(size("state.db-wal"));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (outbox, state)
        });
        WalWatch { stop, task }
    }

    /// (outbox.db-wal, state.db-wal) at their largest.
    async fn finish(self) -> (u64, u64) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

/// A disk smaller than the backlog: the watermark holds acknowledgements before the disk is
/// full, SIGTERM ends the process within its bound in that state, and once the store is back
/// every reading arrives, each sent a bounded number of times, with both WALs in bounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_disk_holds_acks_before_it_fills_and_then_drains_every_reading() {
    let _load = shared().await;
    const DEVICES: usize = 20;
    const MESSAGES: usize = 5_000; // 100,000 readings, about 8.5 MB of line protocol
                                   // Bound in this order, dropped in the reverse: the gateway first, even on a panic.
    let OnSmallDisk {
        mq,
        mut vm,
        _cfg,
        disk,
        mut gw,
    } = on_small_disk("gw-disk", DEVICES).await;
    let api = gw.api.clone();

    let mut p = AckedPublisher::connect(mq.port, "pub-disk").await;
    let mut want = BTreeMap::new();
    publish_readings(&mut p, DEVICES, MESSAGES, now_ms() - 3_600_000, &mut want).await;
    p.wait_acked(Duration::from_secs(60)).await; // Mosquitto has them all

    // Held at the watermark, well before the disk is full.
    let h = wait_json(&format!("{api}/healthz"), Duration::from_secs(60), |v| {
        v["outbox"]["state"] == "disk_low"
    })
    .await;
    assert!(
        disk.free() > 1 << 20,
        "held with room to spare: {} bytes free",
        disk.free()
    );
    assert_eq!(h["outbox"]["disk"]["low"], true, "{h}");
    assert_eq!(h["outbox"]["disk"]["floor_bytes"], DISK_FLOOR, "{h}");
    assert_eq!(
        h["outbox"]["disk"]["reserve_bytes"], RESERVE,
        "the reserve is untouched: {h}"
    );
    let (code, ready) = get(&format!("{api}/readyz")).await;
    assert_eq!(code, 503, "{ready}");
    assert_eq!(ready["outbox"]["state"], "disk_low", "{ready}");
    let text = get_text(&format!("{api}/metrics")).await;
    assert_eq!(metric(&text, "safegate_disk_low"), Some(1.0), "{text}");
    assert!(metric(&text, "safegate_disk_free_bytes").unwrap() > 0.0);
    assert!(
        metric(&text, "safegate_mqtt_acks_pending").unwrap() > 0.0,
        "acks held"
    );
    assert!(
        !gw.log().contains("disk is full"),
        "the disk never filled:\n{}",
        gw.log()
    );

    // SIGTERM while held ends the process within the bound; the restart holds again.
    let took = terminate_timed(&mut gw).await;
    eprintln!("SIGTERM while held: stopped in {took:?}");
    assert!(took < STOP_BOUND, "stopped in {took:?}:\n{}", gw.log());
    gw.start_ready().await;
    assert!(
        !gw.log().contains("did not stop cleanly"),
        "the stop while held was orderly (its link-down journaled):\n{}",
        gw.log()
    );
    wait_json(&format!("{api}/healthz"), WAIT, |v| {
        v["outbox"]["state"] == "disk_low"
    })
    .await;

    // The store returns: everything drains and nothing is posted in a loop.
    let wal = WalWatch::start(&disk.path);
    vm.start_again();
    wait_all_stored(&vm, &want, Duration::from_secs(240)).await;
    let (outbox_wal, state_wal) = wal.finish().await;
    let h = wait_json(&format!("{api}/healthz"), WAIT, |v| {
        v["outbox"]["state"] == "ok" && v["outbox"]["backlog_points"] == 0
    })
    .await;
    assert_eq!(h["outbox"]["disk"]["low"], false, "{h}");
    let readings = (DEVICES * MESSAGES) as f64;
    let rows = vm.rows_inserted().await;
    // Two rows per reading line (the value and status_code), device states and audit
    // events besides: a few times that at most, never the hot loop of issue #12.
    assert!(
        rows <= 3.0 * 2.0 * readings,
        "the store was sent {rows} rows for {readings} readings"
    );
    eprintln!(
        "small disk: {rows} rows sent for {readings} readings ({:.2} per reading line), WAL at most {outbox_wal} (outbox) / {state_wal} (state) of {WAL_BOUND}",
        rows / readings
    );
    assert!(
        outbox_wal <= WAL_BOUND && state_wal <= WAL_BOUND,
        "WAL sizes {outbox_wal} (outbox) and {state_wal} (state) over the bound {WAL_BOUND}"
    );
    let took = terminate_timed(&mut gw).await;
    assert!(took < STOP_BOUND, "stopped in {took:?}");
}

/// Another process fills the disk to the last block while the gateway runs: the API still
/// answers, nothing more is acknowledged, the backlog drains through the reserve once the
/// store is back, the log does not flood, SIGTERM ends the process within its bound, it
/// starts again on the full disk, and once the filler is gone everything arrives by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_filled_by_another_process_stalls_nothing_and_recovers_by_itself() {
    let _load = shared().await;
    const DEVICES: usize = 10;
    const MESSAGES: usize = 500; // per phase: 5,000 readings
                                 // Bound in this order, dropped in the reverse: the gateway first, even on a panic.
    let OnSmallDisk {
        mq,
        mut vm,
        _cfg,
        disk,
        mut gw,
    } = on_small_disk("gw-filled", DEVICES).await;
    let api = gw.api.clone();
    let mut p = AckedPublisher::connect(mq.port, "pub-filled").await;
    let ts0 = now_ms() - 3_600_000;

    // Phase 1 is committed (and acknowledged) while the disk has room.
    let mut first = BTreeMap::new();
    publish_readings(&mut p, DEVICES, MESSAGES, ts0, &mut first).await;
    let per_phase = (DEVICES * MESSAGES) as u64;
    wait_json(&format!("{api}/healthz"), WAIT, |v| {
        v["outbox"]["backlog_points"].as_u64().unwrap_or(0) >= per_phase
    })
    .await;
    let text = get_text(&format!("{api}/metrics")).await;
    assert_eq!(metric(&text, "safegate_mqtt_acks_pending"), Some(0.0));

    // Filled to 100 % by dd; phase 2 arrives and is held, unacknowledged.
    disk.fill();
    assert!(disk.free() < 4096, "{} bytes still free", disk.free());
    let lines_before = gw.log().lines().count();
    let window = Instant::now();
    let mut all = first.clone();
    publish_readings(&mut p, DEVICES, MESSAGES, ts0 + 100_000, &mut all).await;
    let h = wait_json(&format!("{api}/healthz"), WAIT, |v| {
        v["outbox"]["state"] == "disk_low"
    })
    .await;
    assert_eq!(h["outbox"]["disk"]["free_bytes"], 0, "{h}");
    let pending = |t: &str| metric(t, "safegate_mqtt_acks_pending").unwrap_or(0.0);
    let text = get_text(&format!("{api}/metrics")).await;
    assert!(pending(&text) > 0.0, "phase 2 is not acknowledged: {text}");
    // Twenty seconds and more on the full disk, told by the backlog's own age: every retry
    // loop has had time to repeat.
    let h = wait_json(&format!("{api}/healthz"), Duration::from_secs(60), |v| {
        v["outbox"]["oldest_pending_age_s"].as_f64().unwrap_or(0.0) >= 25.0
    })
    .await;
    assert_eq!(h["outbox"]["state"], "disk_low", "{h}");

    // The store returns while the disk is still full: phase 1 drains (the reserve gives the
    // deletes their room), phase 2 stays held.
    vm.start_again();
    wait_all_stored(&vm, &first, Duration::from_secs(120)).await;
    let h = wait_json(&format!("{api}/healthz"), WAIT, |v| {
        v["outbox"]["backlog_points"] == 0
    })
    .await;
    assert_eq!(h["outbox"]["state"], "disk_low", "{h}");
    let (code, _) = get(&format!("{api}/api/v1/devices")).await;
    assert_eq!(code, 200, "the API answers on a full disk");
    assert!(pending(&get_text(&format!("{api}/metrics")).await) > 0.0);

    // No log flood while the disk was full.
    let lines = gw.log().lines().count() - lines_before;
    let per_minute = lines as f64 * 60.0 / window.elapsed().as_secs_f64().max(1.0);
    eprintln!(
        "filled disk: {lines} log lines in {:?} ({per_minute:.0} a minute)",
        window.elapsed()
    );
    assert!(
        per_minute <= 60.0,
        "{lines} log lines in {:?} on a full disk:\n{}",
        window.elapsed(),
        gw.log()
    );

    // SIGTERM on the full disk, and a start on it.
    let took = terminate_timed(&mut gw).await;
    eprintln!("SIGTERM while held: stopped in {took:?}");
    assert!(took < STOP_BOUND, "stopped in {took:?}:\n{}", gw.log());
    gw.start_ready().await;
    let (code, _) = get(&format!("{api}/healthz")).await;
    assert_eq!(code, 200);

    // The filler goes: phase 2 is committed, acknowledged and stored, by itself.
    disk.unfill();
    wait_all_stored(&vm, &all, Duration::from_secs(120)).await;
    let h = wait_json(&format!("{api}/healthz"), WAIT, |v| {
        v["outbox"]["state"] == "ok" && v["outbox"]["disk"]["reserve_bytes"] == RESERVE
    })
    .await;
    assert_eq!(h["outbox"]["backlog_points"], 0, "{h}");
    wait_json(&format!("{api}/readyz"), WAIT, |v| v["ready"] == true).await;
    let text = get_text(&format!("{api}/metrics")).await;
    assert_eq!(pending(&text), 0.0, "{text}");
    let took = terminate_timed(&mut gw).await;
    assert!(took < STOP_BOUND, "stopped in {took:?}");
}

/// The embedded broker lets platforms in only once the gateway's own subscription is in
/// place: a platform that connects the moment the port accepts, on each of three starts,
/// has every acknowledged reading accepted (before the fix: 0 of 50).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_broker_acknowledges_nothing_before_the_gateway_listens() {
    let _load = shared().await;
    const READINGS: usize = 50;
    let (port, api_port) = (free_port(), free_port());
    let cfg = TestConfig::new(
        &format!(
            "[mqtt]\nembedded = true\nlisten = \"127.0.0.1:{port}\"\nclient_id = \"gw-embedded\"\n\n[api]\nlisten = \"127.0.0.1:{api_port}\"\n\n"
        ),
        &inventory(1, &[]),
    );
    let mut gw = GatewayProc::new(&cfg, api_port);
    for round in 0..3 {
        gw.spawn();
        // Connect at port-open, as a platform retrying every millisecond would.
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "port never opened:\n{}",
                gw.log()
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let mut p = AckedPublisher::connect(port, &format!("platform-{round}")).await;
        let ts0 = now_ms() - 60_000 + round * 1_000;
        for i in 0..READINGS as i64 {
            p.send("safegate/v1/p1/batch", batch([("d0".to_string(), ts0 + i)]))
                .await;
        }
        p.wait_acked(Duration::from_secs(30)).await;
        let accepted = |t: &str| metric(t, "safegate_readings_accepted_total").unwrap_or(0.0);
        let deadline = Instant::now() + WAIT;
        loop {
            // The API may open a moment after the broker's port: not an answer yet.
            let text = match reqwest::get(format!("{}/metrics", gw.api)).await {
                Ok(r) => r.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if accepted(&text) >= READINGS as f64 {
                assert_eq!(accepted(&text), READINGS as f64, "round {round}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: {} of {READINGS} acknowledged readings accepted:\n{}",
                accepted(&text),
                gw.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop(p);
        let took = terminate_timed(&mut gw).await;
        assert!(took < STOP_BOUND, "stopped in {took:?}");
    }
}
