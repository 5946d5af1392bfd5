//! Alarms end to end on real parts: readings published through Mosquitto raise, escalate
//! and clear alarms; operators acknowledge over HTTP and platforms over MQTT; states are
//! published retained and stored in VictoriaMetrics; the response rate and the report are
//! exact for a known scenario; open alarms survive a restart.

use crate::common::*;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// The alarms matching `query`, once `done` holds for them.
async fn alarms_when(api: &str, query: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let v = wait_json(&format!("{api}/api/v1/alarms?{query}"), WAIT, |v| {
        v["alarms"].as_array().is_some_and(|a| done(a))
    })
    .await;
    v["alarms"].as_array().unwrap().clone()
}

fn of_device<'a>(list: &'a [Value], device: &str, t: &str) -> Vec<&'a Value> {
    list.iter()
        .filter(|a| a["device"] == device && a["type"] == t)
        .collect()
}

async fn post(url: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .expect("HTTP POST");
    let code = r.status().as_u16();
    (code, r.json().await.unwrap_or(Value::Null))
}

fn reading(v: f64) -> String {
    json!({"values": {"lel": v}}).to_string()
}

/// Park p1 with detectors (g2 raises after three readings, o1 goes offline after 1 s) and
/// mine m1, four colours, with a methane and a slope sensor.
fn types_inv() -> String {
    Inventory::park("p1")
        .detector("g1", 60.0)
        .detector("g2", 60.0)
        .with("alarm = { raise_after = 3 }")
        .detector("f1", 60.0)
        .detector("o1", 0.5)
        .with("offline_after_s = 1")
        .site("m1", "Mine", "mine")
        .with("alarms = { scheme = \"four_colour\" }")
        .device("ch4", "methane", 60.0)
        .with("alarm = { levels = [0.5, 0.75, 1.0, 1.5] }")
        .device("s1", "slope_displacement", 60.0)
        .with("alarm = { levels = [100, 200, 300, 400], rate_per_day = [1000, 2000, 3000, 4000], rate_window = \"10s\" }")
        .to_toml()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_alarm_type_through_the_broker_and_into_the_store() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    let vm = Victoria::start();
    let cfg = TestConfig::new(
        &settings(&mq.url(), "gw-alarm-types", Some(&vm.url())),
        &types_inv(),
    );
    let clock = test_clock();
    let (gw, api) = start_ready_on(&cfg, clock.clock()).await;
    let p = Publisher::connect(mq.port, "pub-alarm-types").await;
    let data = |site: &str, d: &str| format!("safegate/v1/{site}/{d}/data");

    // g1: crossing, holding inside the hysteresis band, escalating, clearing below 22.5.
    for v in [10.0, 26.0, 24.0, 23.0, 55.0, 30.0, 22.0] {
        p.send(&data("p1", "g1"), reading(v)).await;
    }
    // g2: raise_after = 3 — two high readings are not enough, three in a row are.
    for v in [30.0, 30.0, 10.0, 30.0, 30.0, 30.0] {
        p.send(&data("p1", "g2"), reading(v)).await;
    }
    // f1: a fault status raises a fault alarm (its value is not judged), normal clears it.
    p.send(
        &data("p1", "f1"),
        json!({"values": {"lel": 80.0}, "status": "fault"}).to_string(),
    )
    .await;
    // o1: reports once, then goes silent: offline after 1 s (below, once it is online).
    p.send(&data("p1", "o1"), reading(1.0)).await;
    // ch4: four colours, straight to 黄 then 红.
    for v in [0.8, 1.6] {
        p.send(
            &data("m1", "ch4"),
            json!({"values": {"ch4": v}}).to_string(),
        )
        .await;
    }
    // s1: 0.5 mm per second = 43 200 mm/d over the 10 s window: 红 (4000 mm/d) on the rate
    // rule, while the displacement itself stays under the 100 mm level.
    let ts0 = clock.now_ms() - 10_000;
    for i in 0..6 {
        let body = json!({"ts": ts0 + i * 1000, "values": {"mm": 1.0 + 0.5 * i as f64}});
        p.send(&data("m1", "s1"), body.to_string()).await;
    }
    // Everything is in: o1's second without a reading can pass.
    wait_json(&format!("{api}/api/v1/devices"), WAIT, |v| {
        device(v, "o1")["state"] == "online" && device(v, "s1")["last_values"]["mm"] == json!(3.5)
    })
    .await;
    clock.advance(Duration::from_secs(1));

    let list = alarms_when(&api, "limit=100", |a| {
        a.iter()
            .any(|x| x["device"] == "o1" && x["type"] == "offline")
            && a.iter().any(|x| x["device"] == "s1")
            && a.iter()
                .any(|x| x["device"] == "g1" && x["state"] == "cleared_unacked")
            && a.iter().any(|x| x["device"] == "g2")
    })
    .await;

    let g1 = of_device(&list, "g1", "value");
    assert_eq!(g1.len(), 1, "hysteresis: one alarm, not a flap: {list:?}");
    let g1 = wait_json(&format!("{api}/api/v1/alarms/{}", g1[0]["id"]), WAIT, |v| {
        v["events"].as_array().is_some_and(|e| e.len() == 3)
    })
    .await;
    let events: Vec<(&str, u64)> = g1["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["event"].as_str().unwrap(), e["level"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        events,
        vec![("raised", 1), ("escalated", 2), ("cleared", 2)],
        "{g1}"
    );
    assert_eq!(g1["value"], json!(26.0));
    assert_eq!(g1["peak"], json!(55.0));
    assert_eq!(g1["level_name"], "二级");
    assert_eq!(g1["events"][2]["value"], json!(22.0));
    // Level 2 deadline (300 s) from the escalation comes before level 1's (900 s).
    let esc = g1["events"][1]["at_ms"].as_i64().unwrap();
    assert_eq!(g1["deadline_ms"].as_i64().unwrap(), esc + 300_000);

    let g2 = of_device(&list, "g2", "value");
    assert_eq!(g2.len(), 1);
    assert_eq!(g2[0]["state"], "active_unacked");
    // The site view counts what is still open: g2 and f1's fault active, o1 offline active,
    // g1 cleared but not acknowledged. The site view is the core's read model, which may
    // trail the journal's alarm list by its publication interval.
    let site = wait_json(&format!("{api}/api/v1/sites/p1"), WAIT, |v| {
        v["alarms"] == json!({"active": 3, "unacknowledged": 4})
    })
    .await;
    assert_eq!(
        site["alarms"],
        json!({"active": 3, "unacknowledged": 4}),
        "{site}"
    );

    let fault = of_device(&list, "f1", "fault");
    assert_eq!(fault.len(), 1);
    assert!(
        of_device(&list, "f1", "value").is_empty(),
        "a fault reading is not judged"
    );
    p.send(&data("p1", "f1"), reading(1.0)).await;
    alarms_when(&api, "type=fault&state=cleared_unacked", |a| a.len() == 1).await;

    let o1 = of_device(&list, "o1", "offline");
    assert_eq!(o1.len(), 1);
    let devs = wait_json(&format!("{api}/api/v1/devices?site=p1"), WAIT, |v| {
        device(v, "o1")["state"] == "offline"
    })
    .await;
    assert_eq!(
        o1[0]["raised_ms"],
        json!(safegate::sources::mqtt::payload::parse_rfc3339_ms(
            device(&devs, "o1")["state_since"].as_str().unwrap()
        )
        .unwrap()),
        "the offline alarm is raised at the offline transition"
    );
    p.send(&data("p1", "o1"), reading(1.0)).await;
    alarms_when(&api, "device=o1&type=offline&state=cleared_unacked", |a| {
        a.len() == 1
    })
    .await;

    let ch4 = of_device(&list, "ch4", "value");
    assert_eq!(ch4.len(), 1);
    let ch4 = get(&format!("{api}/api/v1/alarms/{}", ch4[0]["id"]))
        .await
        .1;
    assert_eq!(ch4["scheme"], "four_colour");
    assert_eq!(ch4["level"], 4);
    assert_eq!(ch4["level_name"], "红");
    assert_eq!(ch4["events"][0]["level"], 2, "0.8 reaches 黄 (0.75)");

    let s1 = &list
        .iter()
        .filter(|a| a["device"] == "s1")
        .collect::<Vec<_>>();
    assert_eq!(s1.len(), 1, "{s1:?}");
    assert_eq!(s1[0]["type"], "rate");
    assert_eq!(s1[0]["level"], 4);
    assert!((s1[0]["value"].as_f64().unwrap() - 43_200.0).abs() < 1.0);

    // Every change is in the store: measurement alarm, tags site/device/kind/level/type.
    let stored = vm
        .wait_for(r#"{__name__="alarm_state_code"}"#, WAIT, |s| {
            s.iter()
                .any(|x| x.label("device") == "g1" && x.label("level") == "2")
                && s.iter().any(|x| x.label("type") == "rate")
        })
        .await;
    let g1: Vec<_> = stored
        .iter()
        .filter(|x| x.label("device") == "g1" && x.label("level") == "2")
        .collect();
    for x in &g1 {
        assert_eq!(x.label("site"), "p1");
        assert_eq!(x.label("kind"), "gas_combustible");
        assert_eq!(x.label("type"), "value");
    }
    let code_of = |event: &str| {
        g1.iter()
            .find(|x| x.label("event") == event)
            .unwrap_or_else(|| panic!("no {event} point in {g1:?}"))
            .values
            .clone()
    };
    // Escalated while active and unacknowledged (0), then cleared unacknowledged (2).
    assert_eq!(code_of("escalated"), vec![0.0]);
    assert_eq!(code_of("cleared"), vec![2.0]);
    let metrics = get_text(&format!("{api}/metrics")).await;
    assert_eq!(
        metric(
            &metrics,
            r#"safegate_alarm_events_total{alarm_type="value",event="raised"}"#
        ),
        Some(3.0),
        "g1, g2, ch4"
    );
    gw.stop().await;
}

/// Level 1 deadline 3 s, a response-rate target for p1; detectors a to e on p1, z on p2.
fn ack_inv() -> String {
    Inventory::default()
        .raw(
            r#"[alarms]
response_deadline_s = { level1 = 3, level2 = 600 }

[[targets]]
indicator = "alarm_response_rate"
scope = "site:p1"
comparator = ">="
value = 95
label = "预警响应率"
"#,
        )
        .site("p1", "Park", "park")
        .detectors(&["a", "b", "c", "d", "e"], 60.0)
        .site("p2", "Other park", "park")
        .detector("z", 60.0)
        .to_toml()
}

/// The retained messages under `filter`: topic → payload. Mosquitto sends a subscription's
/// retained messages right after its SUBACK, so a second subscription's SUBACK marks the end
/// (at QoS 0 no in-flight limit holds any back).
async fn retained(port: u16, filter: &str) -> BTreeMap<String, Value> {
    let mut o = MqttOptions::new("retained-reader", "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30));
    let (client, mut el) = AsyncClient::new(o, 100);
    client.subscribe(filter, QoS::AtMostOnce).await.unwrap();
    client
        .subscribe("safegate-test/end-of-retained", QoS::AtMostOnce)
        .await
        .unwrap();
    let mut out = BTreeMap::new();
    let mut subacks = 0;
    while subacks < 2 {
        let ev = tokio::time::timeout(WAIT, el.poll())
            .await
            .expect("the broker answers the subscriptions");
        match ev {
            Ok(Event::Incoming(Packet::SubAck(_))) => subacks += 1,
            Ok(Event::Incoming(Packet::Publish(p))) if p.retain => {
                let v = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                out.insert(p.topic.clone(), v);
            }
            _ => {}
        }
    }
    out
}

/// `retained`, read again until `done` holds for it (the board publishes after the core).
async fn retained_when(
    port: u16,
    filter: &str,
    done: impl Fn(&BTreeMap<String, Value>) -> bool,
) -> BTreeMap<String, Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let board = retained(port, filter).await;
        if done(&board) {
            return board;
        }
        assert!(tokio::time::Instant::now() < deadline, "{board:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledgements_over_http_and_mqtt_give_the_exact_response_rate() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    let cfg = TestConfig::new(&settings(&mq.url(), "gw-alarm-ack", None), &ack_inv());
    let clock = test_clock();
    let (gw, api) = start_ready_on(&cfg, clock.clock()).await;
    let from = clock.now_ms();
    let p = Publisher::connect(mq.port, "pub-alarm-ack").await;
    // a, b, c, d: level 1 (deadline 3 s); e: level 2 (deadline 600 s, still pending); z: p2.
    for d in ["a", "b", "c", "d"] {
        p.send(&format!("safegate/v1/p1/{d}/data"), reading(30.0))
            .await;
    }
    p.send("safegate/v1/p1/e/data", reading(60.0)).await;
    p.send("safegate/v1/p2/z/data", reading(30.0)).await;
    let list = alarms_when(&api, "", |a| a.len() == 6).await;
    let id = |d: &str| list.iter().find(|a| a["device"] == d).unwrap()["id"].clone();
    let ack_url = |d: &str| format!("{api}/api/v1/alarms/{}/ack", id(d));

    // a: operator over HTTP, in time; a second ack changes nothing.
    let (code, body) = post(
        &ack_url("a"),
        json!({"by": "op-li", "note": "checked the valve"}),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["acknowledged"], true);
    assert_eq!(body["alarm"]["state"], "active_acked");
    assert_eq!(body["alarm"]["acknowledged_by"], "op-li");
    let (code, body) = post(&ack_url("a"), json!({"by": "op-wang"})).await;
    assert_eq!(code, 200);
    assert_eq!(body["acknowledged"], false);
    assert_eq!(
        body["alarm"]["acknowledged_by"], "op-li",
        "the first ack stands"
    );

    // b: the park platform over MQTT, in time.
    p.send(
        &format!("safegate/v1/p1/alarms/{}/ack", id("b")),
        json!({"by": "platform-p1", "note": "dispatched"}).to_string(),
    )
    .await;
    // An ack for c published under p2, and one for an unknown id: refused and counted.
    p.send(
        &format!("safegate/v1/p2/alarms/{}/ack", id("c")),
        json!({"by": "platform-p2"}).to_string(),
    )
    .await;
    p.send(
        "safegate/v1/p1/alarms/999999/ack",
        json!({"by": "platform-p1"}).to_string(),
    )
    .await;
    let b = wait_json(&format!("{api}/api/v1/alarms/{}", id("b")), WAIT, |v| {
        v["state"] == "active_acked"
    })
    .await;
    assert_eq!(b["acknowledged_via"], "mqtt");
    assert_eq!(b["acknowledged_by"], "platform-p1");
    let rej = wait_json(&format!("{api}/api/v1/rejections"), WAIT, |v| {
        v["counts"]["alarm_of_other_site"] == 1 && v["counts"]["unknown_alarm"] == 1
    })
    .await;
    assert!(
        rej.to_string().contains("belongs to site \\\"p1\\\""),
        "{rej}"
    );
    assert_eq!(
        get(&format!("{api}/api/v1/alarms/{}", id("c"))).await.1["state"],
        "active_unacked",
        "another site's ack changed nothing"
    );
    // HTTP: unknown id and another site's alarm are 404 and change nothing.
    let (code, body) = post(
        &format!("{api}/api/v1/alarms/424242/ack"),
        json!({"by": "op"}),
    )
    .await;
    assert_eq!(code, 404, "{body}");
    let (code, _) = post(&ack_url("c"), json!({"by": "op", "site": "p2"})).await;
    assert_eq!(code, 404);
    let (code, body) = post(&ack_url("c"), json!({"note": "no by"})).await;
    assert_eq!(code, 400, "{body}");

    // c: acknowledged after its 3 s deadline; d: never.
    clock.advance(Duration::from_millis(3_500));
    let (code, body) = post(&ack_url("c"), json!({"by": "op-late"})).await;
    assert_eq!(code, 200);
    assert_eq!(body["alarm"]["outcome"], "late");

    // The board: every alarm's state retained under its site.
    let topic = |d: &str| {
        let site = if d == "z" { "p2" } else { "p1" };
        format!("safegate/v1/{site}/alarms/{}", id(d))
    };
    let board = retained_when(mq.port, "safegate/v1/+/alarms/+", |b| {
        b.get(&topic("c"))
            .is_some_and(|c| c["state"] == "active_acked")
    })
    .await;
    let state_of = |d: &str| board[&topic(d)]["state"].clone();
    assert_eq!(board.len(), 6, "{board:?}");
    assert_eq!(state_of("a"), "active_acked");
    assert_eq!(state_of("b"), "active_acked");
    assert_eq!(state_of("c"), "active_acked");
    assert_eq!(state_of("d"), "active_unacked");

    // The response rate of p1: a, b responded; c late; d missed; e pending (not counted), over
    // a window that ends after c's acknowledgement. The indicators read the journal: wait
    // until that acknowledgement is in it.
    alarms_when(&api, "device=c", |a| {
        a.first().is_some_and(|c| c["outcome"] == "late")
    })
    .await;
    clock.advance(Duration::from_millis(200));
    let to = clock.now_ms();
    let ind = get(&format!(
        "{api}/api/v1/indicators?scope=site:p1&from={from}&to={to}"
    ))
    .await
    .1;
    let find = |id: &str, q: Option<&str>| indicator(&ind, id, q);
    let rate = find("alarm_response_rate", None);
    assert_eq!(
        (rate["numerator"].clone(), rate["denominator"].clone()),
        (json!(2.0), json!(4.0)),
        "{rate}"
    );
    assert_eq!(rate["value"], json!(0.5));
    assert_eq!(find("alarms_pending", None)["numerator"], json!(1.0));
    assert_eq!(find("alarms_raised", None)["numerator"], json!(5.0));
    assert_eq!(
        find("alarm_response_rate", Some("level:2"))["denominator"],
        json!(0.0)
    );

    // The report names exactly the late and the never-acknowledged alarm.
    let report = get(&format!("{api}/api/v1/report?from={from}&to={to}"))
        .await
        .1;
    let row = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["indicator"] == "alarm_response_rate")
        .unwrap()
        .clone();
    assert_eq!(row["actual"], "50.00%");
    let named: Vec<String> = row["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    let mut want = vec![id("c").to_string(), id("d").to_string()];
    want.sort();
    let mut named_sorted = named.clone();
    named_sorted.sort();
    assert_eq!(named_sorted, want, "{row}");
    let notes = row["reasons"].to_string();
    assert!(notes.contains("acknowledged late"), "{notes}");
    assert!(
        notes.contains("not acknowledged by its deadline"),
        "{notes}"
    );
    gw.stop().await;
}

/// Level 1 deadline 2 s; detectors a and b.
fn restart_inv() -> String {
    Inventory::default()
        .raw("[alarms]\nresponse_deadline_s = { level1 = 2, level2 = 600 }\n")
        .site("p1", "Park", "park")
        .detectors(&["a", "b"], 60.0)
        .to_toml()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_and_their_deadlines_survive_a_restart() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    let cfg = TestConfig::new(
        &settings(&mq.url(), "gw-alarm-restart", None),
        &restart_inv(),
    );
    let clock = test_clock();
    let (gw, api) = start_ready_on(&cfg, clock.clock()).await;
    let p = Publisher::connect(mq.port, "pub-alarm-restart").await;
    // a: level 2 (600 s deadline); b: level 1 (2 s deadline).
    p.send("safegate/v1/p1/a/data", reading(60.0)).await;
    p.send("safegate/v1/p1/b/data", reading(30.0)).await;
    let before = alarms_when(&api, "", |a| a.len() == 2).await;
    gw.stop().await;
    // b's deadline passes while the gateway is down.
    clock.advance(Duration::from_millis(2_500));

    let (gw, api) = start_ready_on(&cfg, clock.clock()).await;
    let after = get(&format!("{api}/api/v1/alarms")).await.1["alarms"].clone();
    for a in &before {
        let b = after
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == a["id"])
            .expect("the alarm is still listed");
        assert_eq!(b["raised_ms"], a["raised_ms"]);
        assert_eq!(b["deadline_ms"], a["deadline_ms"]);
        assert_eq!(b["state"], "active_unacked");
    }
    let id = |d: &str| before.iter().find(|a| a["device"] == d).unwrap()["id"].clone();
    // Acknowledged after the restart: a within its deadline, b after it.
    let (_, ra) = post(
        &format!("{api}/api/v1/alarms/{}/ack", id("a")),
        json!({"by": "op"}),
    )
    .await;
    assert_eq!(ra["alarm"]["outcome"], "responded", "{ra}");
    let (_, rb) = post(
        &format!("{api}/api/v1/alarms/{}/ack", id("b")),
        json!({"by": "op"}),
    )
    .await;
    assert_eq!(
        rb["alarm"]["outcome"], "late",
        "measured from the original raise: {rb}"
    );
    // The restored alarm continues: another high reading raises nothing new, a low one clears it.
    p.send("safegate/v1/p1/a/data", reading(70.0)).await;
    p.send("safegate/v1/p1/a/data", reading(1.0)).await;
    let list = alarms_when(&api, "device=a", |a| {
        a.len() == 1 && a[0]["state"] == "cleared_acked"
    })
    .await;
    assert_eq!(list[0]["peak"], json!(70.0));
    gw.stop().await;
}
