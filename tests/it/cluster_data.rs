//! Cluster mode's data path (issue #19, docs/scaling.md) on real parts: a 3-node NATS
//! JetStream cluster, Mosquitto, VictoriaMetrics (with de-duplication, as deployed) and three
//! `safegate` processes sharing one MQTT subscription. 300 devices over 12 sites report every
//! second for about a minute, with scripted silences and alarms acknowledged over MQTT; one
//! gateway is killed (`kill -9`) and restarted 20 s later, and a NATS node is stopped for
//! 10 s. Then: no partition ever had two owners; every reading is in the store once; the
//! three instances, and a fourth that replays the stream afterwards, give the same figures.

use crate::common::nats::NatsCluster;
use crate::common::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) const PARTITIONS: u32 = 16;
const TTL_S: u64 = 6;
pub(crate) const SITES: usize = 12;
pub(crate) const DEVICES: usize = 25;
const ROUNDS: u64 = 65;
/// The gateway is killed at a random moment of rounds 13 to 18 (after the alarms were
/// acknowledged, before the NATS node stops), and restarted 20 s after.
const KILL_FROM: u64 = 13;
const KILL_ROUNDS: u64 = 6;
const DOWN_S: u64 = 20;
const NATS_DOWN_AT: u64 = 45;
const NATS_UP_AT: u64 = 55;

pub(crate) fn site(s: usize) -> String {
    format!("s{:02}", s + 1)
}

pub(crate) fn dev(d: usize) -> String {
    format!("d{:02}", d + 1)
}

/// 12 parks of 25 detectors reporting every second, offline after 5 s of silence, in two
/// public zones (za: d01 alone; zb: the others); level 1 alarms must be acknowledged within
/// 20 s.
fn inventory() -> String {
    let mut inv =
        Inventory::default().raw("[alarms]\nresponse_deadline_s = { level1 = 20, level2 = 600 }\n");
    for s in 0..SITES {
        inv = inv
            .site(&site(s), &format!("Park {s}"), "park")
            .zone("za", "Tank farm")
            .zone("zb", "Loading bay");
        for d in 0..DEVICES {
            let zone = if d == 0 {
                "zone = \"za\""
            } else {
                "zone = \"zb\""
            };
            inv = inv
                .detector(&dev(d), 1.0)
                .with("offline_after_s = 5")
                .with(zone);
        }
    }
    inv.to_toml()
}

/// The script: which devices are silent in round `r`.
pub(crate) fn silent(s: usize, d: usize, r: u64) -> bool {
    (d == 0 && (10..20).contains(&r)) || (d == 1 && s < 6 && (30..42).contains(&r))
}

/// Device d03 of every site reads 30 % LEL (a level 1 alarm) in round 8.
pub(crate) fn value(d: usize, r: u64) -> f64 {
    if d == 2 && r == 8 {
        30.0
    } else {
        5.0
    }
}

pub(crate) struct Node {
    pub(crate) gw: GatewayProc,
    _cfg: TestConfig,
}

pub(crate) fn node(nats: &NatsCluster, mq: &Mosquitto, vm: &Victoria, id: &str) -> Node {
    let api_port = free_port();
    let cluster = format!(
        "[cluster]\nnats_urls = {}\ninstance_id = \"{id}\"\npartitions = {PARTITIONS}\nlease_ttl_s = {TTL_S}\nrenew_every_s = 1\n\n",
        nats.urls_toml()
    );
    let settings = settings(&mq.url(), "sg", Some(&vm.url())).replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{api_port}\""),
    );
    let cfg = TestConfig::new(&format!("{cluster}{settings}"), &inventory());
    Node {
        gw: GatewayProc::new(&cfg, api_port),
        _cfg: cfg,
    }
}

pub(crate) async fn cluster_view(c: &reqwest::Client, api: &str) -> Option<Value> {
    let r = c.get(format!("{api}/api/v1/cluster")).send().await.ok()?;
    let v: Value = r.json().await.ok()?;
    Some(v["cluster"].clone())
}

pub(crate) fn owned_of(v: &Value) -> Vec<u64> {
    v["owned"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

/// Samples every 100 ms who owns what, from every live instance; notes a partition claimed
/// by two (asked again of the first, so a handover between the questions is not one) and
/// the times at which every partition was owned.
#[derive(Default)]
struct Sampler {
    overlaps: Mutex<Vec<String>>,
    /// (ms since start, every partition owned by a live instance)
    covered: Mutex<Vec<(u128, bool)>>,
}

async fn sample(
    apis: Vec<String>,
    live: Arc<Vec<AtomicBool>>,
    out: Arc<Sampler>,
    stop: Arc<AtomicBool>,
) {
    let c = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let t0 = Instant::now();
    let mut every = tokio::time::interval(Duration::from_millis(100));
    while !stop.load(Ordering::Relaxed) {
        every.tick().await;
        let mut owner: BTreeMap<u64, usize> = BTreeMap::new();
        for (i, api) in apis.iter().enumerate() {
            if !live[i].load(Ordering::Relaxed) {
                continue;
            }
            let Some(v) = cluster_view(&c, api).await else {
                continue;
            };
            for p in owned_of(&v) {
                if let Some(&first) = owner.get(&p) {
                    let again = cluster_view(&c, &apis[first]).await;
                    if again.is_some_and(|a| owned_of(&a).contains(&p)) {
                        out.overlaps
                            .lock()
                            .unwrap()
                            .push(format!("partition {p}: {first} and {i}"));
                    }
                }
                owner.insert(p, i);
            }
        }
        let all = owner.len() == PARTITIONS as usize;
        out.covered
            .lock()
            .unwrap()
            .push((t0.elapsed().as_millis(), all));
    }
}

/// Wait until every instance in `apis` has applied the stream past `at_ms` of stream time
/// and committed a checkpoint there (its journal, so its figures, come to it): the stream's
/// time never runs back, so nothing applied later can change a window that ends before it.
/// Returns the lowest sequence applied.
pub(crate) async fn settled(apis: &[String], at_ms: i64, within: Duration) -> u64 {
    let c = reqwest::Client::new();
    let deadline = Instant::now() + within;
    loop {
        let mut seqs = Vec::new();
        let mut behind = false;
        for api in apis {
            let v = cluster_view(&c, api).await.unwrap_or(Value::Null);
            seqs.push(v["applied_sequence"].as_u64().unwrap_or(0));
            behind |= v["checkpoint_time_ms"].as_i64().unwrap_or(0) < at_ms;
        }
        if !behind {
            return seqs.into_iter().min().unwrap_or(0);
        }
        assert!(
            Instant::now() < deadline,
            "instances did not reach {at_ms}: {seqs:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// What an instance answers for the window: every scope's indicators and the report, with
/// the answer's own time taken out.
pub(crate) async fn figures(api: &str, from: i64, to: i64) -> Value {
    let mut out = serde_json::Map::new();
    let mut scopes = vec!["region".to_string()];
    scopes.extend((0..SITES).map(|s| format!("site:{}", site(s))));
    for scope in scopes {
        let (code, v) = get(&format!(
            "{api}/api/v1/indicators?scope={scope}&from={from}&to={to}"
        ))
        .await;
        assert_eq!(code, 200, "{v}");
        out.insert(scope, v["indicators"].clone());
    }
    let (code, report) = get(&format!("{api}/api/v1/report?from={from}&to={to}")).await;
    assert_eq!(code, 200, "{report}");
    out.insert("report".into(), report["rows"].clone());
    Value::Object(out)
}

/// The figures of every instance once they are all the same (panics with the differences
/// after `within`).
pub(crate) async fn agreed(apis: &[String], from: i64, to: i64, within: Duration) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let f: Vec<Value> =
            futures::future::join_all(apis.iter().map(|a| figures(a, from, to))).await;
        if f.iter().all(|x| *x == f[0]) {
            return f;
        }
        if Instant::now() > deadline {
            for (i, x) in f.iter().enumerate().skip(1) {
                same(&f[0], x, &format!("gw-1 and instance {}", i + 1));
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// From each device's online spans: each site's online device-ms, and its covered zone-ms
/// (zone za: d01 alone; zone zb: any of the others online).
fn expected(
    spans: &BTreeMap<(String, String), Vec<(i64, i64)>>,
) -> (BTreeMap<String, i64>, BTreeMap<String, i64>) {
    let (mut online, mut covered) = (BTreeMap::new(), BTreeMap::new());
    let mut zb: BTreeMap<&str, Vec<(i64, i64)>> = BTreeMap::new();
    for ((site, device), list) in spans {
        let ms: i64 = list.iter().map(|(a, b)| b - a).sum();
        *online.entry(site.clone()).or_insert(0) += ms;
        if device == "d01" {
            *covered.entry(site.clone()).or_insert(0) += ms;
        } else {
            zb.entry(site).or_default().extend(list);
        }
    }
    for (site, mut list) in zb {
        list.sort();
        let (mut ms, mut end) = (0, i64::MIN);
        for (a, b) in list {
            let a = a.max(end);
            if b > a {
                ms += b - a;
                end = b;
            }
        }
        *covered.entry(site.to_string()).or_insert(0) += ms;
    }
    (online, covered)
}

/// The offline recomputation, independent of the gateway's code: the stream's readings in
/// its order at their ingress times (never earlier than what came before), each device
/// online from a reading until 5 s after its last. Returns each site's online device-ms in
/// [from, to). Also names the readings whose ingress came more than 5 s after their device
/// time (held in a dead instance's broker session, or through the NATS election).
async fn recompute(
    nats: &NatsCluster,
    from: i64,
    to: i64,
) -> BTreeMap<(String, String), Vec<(i64, i64)>> {
    use futures::StreamExt;
    let urls: Vec<String> = nats
        .nodes
        .iter()
        .map(|n| format!("nats://127.0.0.1:{}", n.port))
        .collect();
    let s = safegate::cluster::ClusterSettings {
        nats_urls: urls,
        instance_id: "reader".into(),
        ..Default::default()
    };
    let client = safegate::cluster::connect(&s).await.unwrap();
    let readings = safegate::cluster::stream::Readings::open(client, &s)
        .await
        .unwrap();
    let mut all = readings.follow(1).await.unwrap();
    let (mut held, mut longest, mut total, mut clock) = (0usize, 0i64, 0usize, 0i64);
    // Per device: (spans closed, online since, last seen).
    type Spans = (Vec<(i64, i64)>, i64, i64);
    let mut devs: BTreeMap<(String, String), Spans> = BTreeMap::new();
    while let Ok(Some(Ok((_, payload)))) =
        tokio::time::timeout(Duration::from_secs(5), all.next()).await
    {
        let env = safegate::core::cluster::envelope::Envelope::from_json(&payload).unwrap();
        let t = env.received_ms.max(clock);
        if t >= to {
            break; // the instances' ticks go on for ever
        }
        clock = t;
        let Some(ts) = env.ts_ms else { continue };
        total += 1;
        if env.received_ms - ts > 5_000 {
            held += 1;
            longest = longest.max(env.received_ms - ts);
        }
        let d = devs
            .entry((env.site, env.device))
            .or_insert((Vec::new(), t, t));
        if t > d.2 + 5_000 {
            d.0.push((d.1, d.2 + 5_000));
            d.1 = t;
        }
        d.2 = t;
    }
    eprintln!("readings in the stream before the window's end {total}; held more than 5 s: {held}, the longest {longest} ms");
    let clip = |(a, b): (i64, i64)| (a.max(from), b.min(to));
    devs.into_iter()
        .map(|(k, (mut spans, since, last))| {
            spans.push((since, last + 5_000));
            let spans = spans.into_iter().map(clip).filter(|(a, b)| b > a).collect();
            (k, spans)
        })
        .collect()
}

/// Panics naming the first places where `a` and `b` differ.
fn same(a: &Value, b: &Value, what: &str) {
    let mut out = Vec::new();
    differences(a, b, String::new(), &mut out);
    assert!(
        out.is_empty(),
        "{what} differ:\n{}",
        out.iter().take(12).cloned().collect::<Vec<_>>().join("\n")
    );
}

fn differences(a: &Value, b: &Value, at: String, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys()).collect::<BTreeSet<_>>() {
                let (u, v) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                differences(u, v, format!("{at}.{k}"), out);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (u, v)) in x.iter().zip(y).enumerate() {
                let name = u["id"]
                    .as_str()
                    .or(u["indicator"].as_str())
                    .map_or(i.to_string(), str::to_string);
                differences(u, v, format!("{at}[{name}]"), out);
            }
        }
        _ if a != b => out.push(format!("{at}: {a} vs {b}")),
        _ => {}
    }
}

fn inds_find<'a>(inds: &'a Value, id: &str, q: &str) -> &'a Value {
    inds.as_array()
        .and_then(|a| a.iter().find(|i| i["id"] == id && i["qualifier"] == q))
        .unwrap_or_else(|| panic!("no {id} {q} in {inds}"))
}

fn find<'a>(inds: &'a Value, id: &str) -> &'a Value {
    inds.as_array()
        .and_then(|a| a.iter().find(|i| i["id"] == id && i["qualifier"].is_null()))
        .unwrap_or_else(|| panic!("no {id} in {inds}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_gateways_give_one_gateways_figures_through_a_kill_and_a_lost_nats_node() {
    let _load = alone().await;
    let mut nats = NatsCluster::start(3);
    // A killed gateway's share waits in its session until it returns: room for it.
    let mq = Mosquitto::start_with(|port, _| {
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_inflight_messages 1000\nmax_queued_messages 1000000\nlog_dest none\n")
    });
    let vm = Victoria::start_with_args(&["-dedup.minScrapeInterval=1ms"]);
    let mut nodes: Vec<Node> = ["gw-1", "gw-2", "gw-3"]
        .iter()
        .map(|id| node(&nats, &mq, &vm, id))
        .collect();
    for n in nodes.iter_mut() {
        n.gw.start_ready().await;
    }
    let apis: Vec<String> = nodes.iter().map(|n| n.gw.api.clone()).collect();
    let c = reqwest::Client::new();
    // Every partition owned before traffic starts.
    wait_until(
        Duration::from_secs(60),
        "a first owner for every partition",
        || async {
            let mut n = 0;
            for api in &apis {
                n += cluster_view(&c, api)
                    .await
                    .map_or(0, |v| owned_of(&v).len());
            }
            n == PARTITIONS as usize
        },
    )
    .await;
    let live = Arc::new((0..3).map(|_| AtomicBool::new(true)).collect::<Vec<_>>());
    let sampler = Arc::new(Sampler::default());
    let stop = Arc::new(AtomicBool::new(false));
    let sampling = tokio::spawn(sample(
        apis.clone(),
        live.clone(),
        sampler.clone(),
        stop.clone(),
    ));

    let mut p = AckedPublisher::connect(mq.port, "platforms").await;
    let t0 = now_ms() - now_ms() % 1000 + 1000;
    let from = t0 - 1000;
    let start = Instant::now();
    let mut sent: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    let mut kill_at = None;
    let kill_round = KILL_FROM + fastrand::u64(0..KILL_ROUNDS);
    let kill_ms = fastrand::u64(0..1000);
    for r in 0..ROUNDS {
        tokio::time::sleep_until((start + Duration::from_secs(r)).into()).await;
        match r {
            _ if r == kill_round => {
                tokio::time::sleep(Duration::from_millis(kill_ms)).await;
                nodes[1].gw.kill9();
                live[1].store(false, Ordering::Relaxed);
                kill_at = Some(start.elapsed().as_millis());
                eprintln!(
                    "gw-2 killed {} ms after the start (round {r})",
                    kill_at.unwrap()
                );
            }
            _ if r == kill_round + DOWN_S => {
                nodes[1].gw.spawn();
                live[1].store(true, Ordering::Relaxed);
            }
            NATS_DOWN_AT => nats.kill_node(2),
            NATS_UP_AT => nats.start_node(2),
            _ => {}
        }
        let ts = t0 + (r as i64) * 1000;
        for s in 0..SITES {
            for d in 0..DEVICES {
                if silent(s, d, r) {
                    continue;
                }
                let body = json!({"ts": ts, "values": {"lel": value(d, r)}});
                p.send(
                    &format!("safegate/v1/{}/{}/data", site(s), dev(d)),
                    body.to_string(),
                )
                .await;
                sent.entry(format!("{}/{}", site(s), dev(d)))
                    .or_default()
                    .insert(ts);
            }
        }
        // Sites s01..s08 acknowledge their alarm over MQTT, 4 s after it was raised.
        if r == 12 {
            acknowledge(&apis[0], &mut p).await;
        }
    }
    let end = t0 + (ROUNDS as i64) * 1000;
    p.wait_acked(Duration::from_secs(120)).await;
    stop.store(true, Ordering::Relaxed);
    sampling.await.unwrap();

    // 2. Never two owners; every partition owned again within lease + 5 s of the kill.
    let overlaps = sampler.overlaps.lock().unwrap().clone();
    assert!(overlaps.is_empty(), "two owners: {overlaps:?}");
    let kill_at = kill_at.unwrap();
    let covered = sampler.covered.lock().unwrap().clone();
    let back = covered
        .iter()
        .find(|(t, all)| *t > kill_at + 100 && *all)
        .map(|(t, _)| t - kill_at)
        .expect("every partition owned again after the kill");
    eprintln!("after kill -9: every partition owned again in {back} ms (lease {TTL_S} s)");
    assert!(back <= u128::from(TTL_S + 5) * 1000, "{back} ms");

    // 4. The three instances agree, after each applied the whole stream; the killed one
    // resumed from its last checkpoint, not from the stream's start.
    let to = end - 2000;
    settled(&apis, end + 2000, Duration::from_secs(120)).await;
    let back = cluster_view(&c, &apis[1]).await.unwrap();
    assert!(
        back["resumed_from"].as_u64().is_some_and(|s| s > 0) && back["gap"] == 0,
        "{back}"
    );
    // A fourth instance, started now, replays the stream: the offline recomputation.
    let mut oracle = node(&nats, &mq, &vm, "gw-4");
    oracle.gw.start_ready().await;
    let all4: Vec<String> = apis
        .iter()
        .cloned()
        .chain([oracle.gw.api.clone()])
        .collect();
    settled(&all4, end + 2000, Duration::from_secs(120)).await;
    // Latency histograms reach the journal every 5 s: the figures agree once they have.
    let f = agreed(&all4, from, to, Duration::from_secs(20)).await;
    let spans = recompute(&nats, from, to).await;
    let (online, covered) = expected(&spans);
    for (scope, ms) in online
        .iter()
        .map(|(s, ms)| (format!("site:{s}"), *ms))
        .chain([("region".to_string(), online.values().sum())])
    {
        let rate = find(&f[0][&scope], "online_rate");
        let devices = if scope == "region" {
            SITES * DEVICES
        } else {
            DEVICES
        };
        let den = devices as i64 * (to - from);
        assert_eq!(rate["exact"]["den"], json!(den), "{scope}: {rate}");
        assert_eq!(rate["exact"]["num"], json!(ms), "{scope}: {rate}");
    }
    for (scope, ms) in covered
        .iter()
        .map(|(s, ms)| (format!("site:{s}"), *ms))
        .chain([("region".to_string(), covered.values().sum())])
    {
        let rate = find(&f[0][&scope], "coverage_rate");
        assert_eq!(rate["exact"]["num"], json!(ms), "{scope}: {rate}");
    }

    // What the figures must be, from the script alone: s01..s06 lost d02 for 12 s
    // (offline 7 s after 5 s of grace); every site lost d01 for 10 s (offline 5 s).
    let (_, alarms) = get(&format!("{}/api/v1/alarms?limit=1000", apis[0])).await;
    let mut by_second: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for a in alarms["alarms"].as_array().unwrap() {
        let at = (a["raised_ms"].as_i64().unwrap() - t0) / 1000;
        by_second
            .entry(at)
            .or_default()
            .push(format!("{}/{}:{}", a["site"], a["device"], a["type"]));
    }
    for (at, list) in &by_second {
        eprintln!(
            "round {at}: {} alarms, e.g. {:?}",
            list.len(),
            &list[..list.len().min(3)]
        );
    }
    let region = &f[0]["region"];
    let online = find(region, "online_rate");
    eprintln!("region online rate: {online}");
    eprintln!(
        "region online rate at the end: {}",
        find(region, "online_rate_at_end")
    );
    let response = inds_find(region, "alarm_response_rate", "type:value");
    assert_eq!(
        (
            response["numerator"].clone(),
            response["denominator"].clone()
        ),
        (json!(8.0), json!(12.0)),
        "{response}"
    );

    // 3. Every reading sent is in the store, once per (device, time).
    let logs = || {
        nodes
            .iter()
            .map(|n| n.gw.log())
            .collect::<Vec<_>>()
            .join("\n")
    };
    wait_stored(&vm, &sent, Duration::from_secs(90), logs).await;
    // …and every transition, those made while a partition had no owner (after the kill)
    // too: the store holds each device's timeline as the journal has it.
    transitions_stored(&vm, &apis[0]).await;
    let inserted = vm.rows_inserted().await;
    eprintln!(
        "store rows posted {inserted}, readings {}",
        sent.values().map(BTreeSet::len).sum::<usize>()
    );
    for n in nodes.iter_mut() {
        n.gw.stop();
    }
    oracle.gw.stop();
}

/// The open alarms of sites s01..s08 acknowledged by their platforms over MQTT.
async fn acknowledge(api: &str, p: &mut AckedPublisher) {
    let list = wait_json(
        &format!("{api}/api/v1/alarms"),
        Duration::from_secs(20),
        |v| v["alarms"].as_array().is_some_and(|a| a.len() >= SITES),
    )
    .await;
    for a in list["alarms"].as_array().unwrap() {
        let s = a["site"].as_str().unwrap();
        if s <= "s08" {
            let topic = format!("safegate/v1/{s}/alarms/{}/ack", a["id"]);
            p.send(&topic, json!({"by": format!("platform-{s}")}).to_string())
                .await;
        }
    }
}

/// `log`: what to show beside the shortfall (the gateways' logs).
async fn wait_stored(
    vm: &Victoria,
    want: &BTreeMap<String, BTreeSet<i64>>,
    within: Duration,
    log: impl Fn() -> String,
) {
    let deadline = Instant::now() + within;
    loop {
        let mut got: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for s in vm.export("reading_lel").await {
            let k = format!("{}/{}", s.label("site"), s.label("device"));
            got.entry(k)
                .or_default()
                .extend(s.timestamps.iter().copied());
        }
        let exact = want.iter().all(|(k, ts)| {
            got.get(k).is_some_and(|g| {
                g.len() == ts.len() && g.iter().copied().collect::<BTreeSet<_>>() == *ts
            })
        });
        if exact && got.len() == want.len() {
            return;
        }
        if Instant::now() > deadline {
            let short: Vec<String> = want
                .iter()
                .filter(|(k, ts)| got.get(*k).map(Vec::len) != Some(ts.len()))
                .take(10)
                .map(|(k, ts)| format!("{k}: {} of {}", got.get(k).map_or(0, Vec::len), ts.len()))
                .collect();
            let log = log();
            let tail: Vec<&str> = log.lines().rev().take(80).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!(
                "the store does not hold each reading once: {}\n{}",
                short.join(", "),
                tail.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Every device's transitions in the store (`device_state`) are the journal's, as instance
/// `api` shows them: the same times, the same states, none missing, none more. The last ones
/// may be on their way (made while their partition was between owners, they are stored by
/// the next owner once it has taken it): asked again for up to a minute.
async fn transitions_stored(vm: &Victoria, api: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let missing = transitions_missing(vm, api).await;
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "transitions not as the journal's:\n{}",
            missing.join("\n")
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The devices whose transitions in the store are not the journal's.
async fn transitions_missing(vm: &Victoria, api: &str) -> Vec<String> {
    let mut stored: BTreeMap<String, Vec<(i64, bool)>> = BTreeMap::new();
    for s in vm.export("device_state_online").await {
        let key = format!("{}/{}", s.label("site"), s.label("device"));
        let e = stored.entry(key).or_default();
        e.extend(
            s.timestamps
                .iter()
                .zip(&s.values)
                .map(|(t, v)| (*t, *v == 1.0)),
        );
    }
    let mut missing = Vec::new();
    for s in 0..SITES {
        for d in 0..DEVICES {
            let (s, d) = (site(s), dev(d));
            let from = now_ms() - 3_600_000;
            let url = format!("{api}/api/v1/devices/{s}/{d}/history?from={from}");
            let (status, h) = get(&url).await;
            assert_eq!(status, 200, "{url}: {h}");
            let journal: Vec<(i64, bool)> = (h["transitions"].as_array().cloned())
                .unwrap_or_default()
                .iter()
                .filter_map(|t| {
                    let at = safegate::model::parse_time(t["at"].as_str()?)?;
                    Some((at, t["online"].as_bool()?))
                })
                .collect();
            let mut got = stored.remove(&format!("{s}/{d}")).unwrap_or_default();
            got.sort_unstable();
            got.dedup();
            if got != journal {
                missing.push(format!("{s}/{d}: journal {journal:?}, store {got:?}"));
            }
        }
    }
    missing
}

pub(crate) async fn wait_until<F, Fut>(within: Duration, what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !done().await {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The gateway's `safegate_mqtt_acks_pending`: messages it holds unacknowledged.
async fn acks_pending(api: &str) -> f64 {
    let text = get_text(&format!("{api}/metrics")).await;
    metric(&text, "safegate_mqtt_acks_pending").unwrap_or(-1.0)
}

/// 5. Without NATS a gateway acknowledges nothing to the broker, so nothing it was given can
/// be lost: killed meanwhile, it gets every message again from its session and stores each
/// once when NATS is back. An operator's acknowledgement over the API waits for NATS as
/// well: the operator is told it is not taken yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_nats_nothing_is_acknowledged_and_nothing_is_lost() {
    /// The reading of s05/d01 that raises an alarm.
    const ALARM_AT: i64 = 1_000;
    let _load = shared().await;
    let _nats = crate::common::nats::one_at_a_time().await;
    let mut nats = NatsCluster::start(3);
    let mq = Mosquitto::start_with(|port, _| {
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_inflight_messages 1000\nmax_queued_messages 100000\nlog_dest none\n")
    });
    let vm = Victoria::start_with_args(&["-dedup.minScrapeInterval=1ms"]);
    let mut gw = node(&nats, &mq, &vm, "gw-a");
    gw.gw.start_ready().await;
    let api = gw.gw.api.clone();
    let c = reqwest::Client::new();
    wait_until(Duration::from_secs(60), "every partition owned", || async {
        cluster_view(&c, &api)
            .await
            .is_some_and(|v| owned_of(&v).len() == PARTITIONS as usize)
    })
    .await;
    let mut p = AckedPublisher::connect(mq.port, "platform-a").await;
    let t0 = now_ms() - 100_000;
    let mut sent: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    let mut reading = |i: i64| {
        let (s, d) = (site((i % 12) as usize), dev((i % 25) as usize));
        sent.entry(format!("{s}/{d}")).or_default().insert(t0 + i);
        let lel = if i == ALARM_AT { 30.0 } else { 1.0 };
        let body = json!({"ts": t0 + i, "values": {"lel": lel}}).to_string();
        (format!("safegate/v1/{s}/{d}/data"), body)
    };
    for i in 0..20 {
        let (topic, body) = reading(i);
        p.send(&topic, body).await;
    }
    // s05/d01 at 30 % LEL: a level 1 alarm, to acknowledge over the API.
    let (topic, body) = reading(ALARM_AT);
    p.send(&topic, body).await;
    p.wait_acked(Duration::from_secs(20)).await;
    wait_until(
        Duration::from_secs(20),
        "the first readings acknowledged",
        || async { acks_pending(&api).await == 0.0 },
    )
    .await;
    let alarms = wait_json(
        &format!("{api}/api/v1/alarms?site=s05"),
        Duration::from_secs(20),
        |v| v["alarms"].as_array().is_some_and(|a| !a.is_empty()),
    )
    .await;
    let ack_url = format!("{api}/api/v1/alarms/{}/ack", alarms["alarms"][0]["id"]);

    // NATS gone: the next 30 are held, unacknowledged.
    for i in 0..3 {
        nats.kill_node(i);
    }
    for i in 20..50 {
        let (topic, body) = reading(i);
        p.send(&topic, body).await;
    }
    wait_until(Duration::from_secs(20), "30 messages held", || async {
        acks_pending(&api).await == 30.0
    })
    .await;
    // An operator's acknowledgement waits for NATS too, and the operator is told so.
    let held = c
        .post(&ack_url)
        .json(&json!({"by": "op"}))
        .send()
        .await
        .unwrap();
    assert_eq!(held.status(), 503);
    let held = held.text().await.unwrap();
    assert!(
        held.contains("NATS has not taken the acknowledgement"),
        "{held}"
    );
    // Killed while holding them; NATS back; the gateway back: each message comes again.
    gw.gw.kill9();
    for i in 0..3 {
        nats.start_node(i);
    }
    gw.gw.start_ready().await;
    // A whole NATS cluster restarting recovers its streams from disk and elects their
    // leaders again: once, on a loaded 2-core CI machine, that took longer than 90 s.
    wait_stored(&vm, &sent, Duration::from_secs(180), || gw.gw.log()).await;
    wait_until(
        Duration::from_secs(20),
        "every message acknowledged",
        || async { acks_pending(&api).await == 0.0 },
    )
    .await;
    // The held acknowledgement died with the instance (it never reached the stream); with
    // NATS back, the operator's next one goes through.
    let acked: Value = c
        .post(&ack_url)
        .json(&json!({"by": "op"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(acked["acknowledged"], true, "{acked}");
    assert_eq!(acked["alarm"]["acknowledged_by"], "op", "{acked}");
    gw.gw.stop();
}
