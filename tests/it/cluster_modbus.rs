//! Cluster mode's polling (issue #19, docs/scaling.md): each Modbus unit is polled by the
//! owner of its site's partition alone, its readings reach every instance through the
//! readings stream, and a killed owner's units are polled by the instance that takes its
//! partitions over, with no device going offline for it. An operator's acknowledgement over
//! the API travels the stream too, and every instance shows it the same. Real parts: a
//! 3-node NATS JetStream cluster, Mosquitto, VictoriaMetrics, two `safegate` processes and
//! the project's Modbus simulator (four endpoints, one site each).

use crate::cluster_data::{cluster_view, owned_of};
use crate::common::nats::NatsCluster;
use crate::common::*;
use safegate::core::cluster::partition_of;
use safegate::simulators::modbus_sim::ModbusSim;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

const PARTITIONS: u32 = 4;
/// On partitions 0, 2, 3 and 1: with gw-a and gw-b live, gw-a owns m16 and gw-b the others
/// (rendezvous placement), so a kill and a return each move sites between live instances.
const SITES: [&str; 4] = ["m1", "m2", "m6", "m16"];
/// Poll period, ms.
const PERIOD_MS: i64 = 500;

fn inventory(ports: &[u16]) -> String {
    let mut inv = Inventory::default();
    for (site, port) in SITES.iter().zip(ports) {
        inv = inv.site(site, &format!("Mine {site}"), "park").raw(&format!(
            "[[devices]]\nid = \"u1\"\nsite = \"{site}\"\nkind = \"gas_combustible\"\nprotocol = \"modbus\"\ninterval_s = 0.5\noffline_after_s = 15\n[devices.modbus]\ntransport = \"tcp\"\naddress = \"127.0.0.1:{port}\"\nunit = 1\ntimeout_ms = 300\nregisters = [{{ channel = \"lel\", table = \"holding\", address = 0, type = \"u16\" }}]\n\n"
        ));
    }
    // A detector over MQTT, for an alarm to acknowledge.
    inv.raw("[[devices]]\nid = \"d1\"\nsite = \"m1\"\nkind = \"gas_combustible\"\nprotocol = \"mqtt\"\ninterval_s = 60\n\n")
        .to_toml()
}

struct Node {
    gw: GatewayProc,
    _cfg: TestConfig,
}

fn node(nats: &NatsCluster, mq: &Mosquitto, vm: &Victoria, id: &str, inv: &str) -> Node {
    let api_port = free_port();
    let cluster = format!(
        "[cluster]\nnats_urls = {}\ninstance_id = \"{id}\"\npartitions = {PARTITIONS}\nlease_ttl_s = 4\nrenew_every_s = 1\n\n",
        nats.urls_toml()
    );
    let settings = settings(&mq.url(), "mb", Some(&vm.url())).replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{api_port}\""),
    );
    let cfg = TestConfig::new(&format!("{cluster}{settings}"), inv);
    Node {
        gw: GatewayProc::new(&cfg, api_port),
        _cfg: cfg,
    }
}

/// Who owns each site now, by instance index, once every instance sees all of `apis` as
/// members, every partition is owned by exactly one, and three looks in a row agree.
async fn stable_owners(apis: &[String]) -> BTreeMap<&'static str, usize> {
    let owned = stable_partitions(apis, PARTITIONS).await;
    SITES
        .iter()
        .map(|s| {
            let p = partition_of(s, PARTITIONS) as u64;
            (*s, owned.iter().position(|o| o.contains(&p)).unwrap())
        })
        .collect()
}

/// The partitions each of `apis` owns, once every instance sees all of them as members,
/// each of `partitions` is owned by exactly one, and three looks in a row agree.
pub(crate) async fn stable_partitions(apis: &[String], partitions: u32) -> Vec<Vec<u64>> {
    let c = reqwest::Client::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let (mut last, mut same) = (None, 0);
    let owned = loop {
        let mut owned = Vec::new();
        let mut members = true;
        for api in apis {
            let v = cluster_view(&c, api).await.unwrap_or_default();
            members &= v["members"]
                .as_array()
                .is_some_and(|m| m.len() == apis.len());
            owned.push(owned_of(&v));
        }
        let mut all: Vec<u64> = owned.concat();
        all.sort_unstable();
        let whole = members && all == (0..partitions as u64).collect::<Vec<_>>();
        same = if whole && last.as_ref() == Some(&owned) {
            same + 1
        } else {
            0
        };
        if same == 2 {
            break owned;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no stable owner for every partition in 60 s: {owned:?}"
        );
        last = Some(owned);
        tokio::time::sleep(Duration::from_millis(800)).await;
    };
    owned
}

/// `(elsewhere, polls)` of each site's endpoint as instance `api` shows it.
async fn endpoints(api: &str) -> BTreeMap<String, (bool, u64)> {
    let (_, v) = get(&format!("{api}/api/v1/endpoints")).await;
    let mut out = BTreeMap::new();
    for e in v["endpoints"].as_array().cloned().unwrap_or_default() {
        let site = e["units"][0]["site"].as_str().unwrap_or("").to_string();
        out.insert(
            site,
            (e["elsewhere"] == true, e["polls"].as_u64().unwrap_or(0)),
        );
    }
    out
}

/// Every site's endpoint is polled by its owner and by no one else, over one poll period
/// or more: the owner's polls grow, the others' stand still and say `elsewhere`.
async fn polled_by_owners_alone(apis: &[String], owners: &BTreeMap<&str, usize>) {
    let before: Vec<_> = futures::future::join_all(apis.iter().map(|a| endpoints(a))).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let now: Vec<_> = futures::future::join_all(apis.iter().map(|a| endpoints(a))).await;
        let grown = |s: &str| now[owners[s]][s].1 >= before[owners[s]][s].1 + 4;
        if SITES.iter().all(|s| grown(s)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "each owner ({owners:?}) polls its sites' units: not within 20 s; before {before:?}, now {now:?}; {:?}",
            futures::future::join_all(apis.iter().map(|a| get_text_owned(format!("{a}/api/v1/cluster")))).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let now: Vec<_> = futures::future::join_all(apis.iter().map(|a| endpoints(a))).await;
    for s in SITES {
        for (i, api) in apis.iter().enumerate() {
            let (elsewhere, polls) = now[i][s];
            if i == owners[s] {
                assert!(!elsewhere, "{api} owns {s} but says it is polled elsewhere");
            } else {
                assert!(
                    elsewhere,
                    "{api} does not own {s}, yet does not say elsewhere"
                );
                assert_eq!(
                    polls, before[i][s].1,
                    "{api} polled {s}, which it does not own"
                );
            }
        }
    }
}

async fn get_text_owned(url: String) -> String {
    get_text(&url).await
}

/// Samples of each site's unit in the store within `[from, to)`.
async fn stored(vm: &Victoria, from: i64, to: i64) -> BTreeMap<String, Vec<i64>> {
    let mut out: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for s in vm.export("reading_lel{device=\"u1\"}").await {
        let ts = s
            .timestamps
            .iter()
            .copied()
            .filter(|t| (from..to).contains(t));
        out.entry(s.label("site").to_string())
            .or_default()
            .extend(ts);
    }
    out
}

/// One poller a unit: over `[from, to)` at most one sample a period (and two for the edges);
/// two instances polling the same unit would give about twice that.
async fn one_poller(vm: &Victoria, from: i64, to: i64) {
    let got = stored(vm, from, to).await;
    let most = (to - from) / PERIOD_MS + 2;
    for s in SITES {
        let n = got.get(s).map_or(0, Vec::len) as i64;
        assert!(
            n >= 1,
            "no reading of {s}/u1 stored in {}..{}: {got:?}",
            from,
            to
        );
        assert!(
            n <= most,
            "{n} readings of {s}/u1 in {} ms: polled twice? {got:?}",
            to - from
        );
    }
}

/// Every unit online on every instance in `apis` (the owner's polls reach all of them);
/// with `since`, online without a break since then.
async fn online_everywhere(apis: &[String], since: Option<i64>) {
    for api in apis {
        for s in SITES {
            let url = format!("{api}/api/v1/devices?site={s}");
            let v = wait_json(&url, Duration::from_secs(30), |v| {
                device(v, "u1")["state"] == "online"
            })
            .await;
            let d = device(&v, "u1");
            let from = d["state_since"]
                .as_str()
                .and_then(safegate::model::parse_time);
            if let Some(t) = since {
                assert!(
                    from.is_some_and(|f| f < t),
                    "{api}: {s}/u1 changed state after {t}: {d}"
                );
            }
        }
    }
}

/// An alarm acknowledged over the API of one instance: in the stream, so both show the same
/// acknowledgement; asked again of the other, the first stands.
async fn acknowledge_over_the_api(mq: &Mosquitto, apis: &[String]) {
    let p = Publisher::connect(mq.port, "mb-platform").await;
    let body = json!({"ts": now_ms(), "values": {"lel": 30.0}}).to_string();
    p.send("safegate/v1/m1/d1/data", body).await;
    let mut id = Value::Null;
    for api in apis {
        let list = wait_json(
            &format!("{api}/api/v1/alarms?site=m1"),
            Duration::from_secs(20),
            |v| v["alarms"].as_array().is_some_and(|a| !a.is_empty()),
        )
        .await;
        id = list["alarms"][0]["id"].clone();
    }
    let c = reqwest::Client::new();
    let ack = |api: &String| {
        c.post(format!("{api}/api/v1/alarms/{id}/ack"))
            .json(&json!({"by": "值班员", "note": "现场确认"}))
            .send()
    };
    let first = ack(&apis[1]).await.unwrap();
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["acknowledged"], true, "{first}");
    let at = first["alarm"]["acknowledged_ms"].clone();
    assert!(at.is_i64(), "{first}");
    for api in apis {
        let v = wait_json(
            &format!("{api}/api/v1/alarms/{id}"),
            Duration::from_secs(20),
            |v| !v["acknowledged_ms"].is_null(),
        )
        .await;
        assert_eq!(v["acknowledged_ms"], at, "{api}: {v}");
        assert_eq!(v["acknowledged_by"], "值班员", "{api}: {v}");
        assert_eq!(v["acknowledged_via"], "http", "{api}: {v}");
    }
    let again: Value = ack(&apis[0]).await.unwrap().json().await.unwrap();
    assert_eq!(again["acknowledged"], false, "{again}");
    assert_eq!(again["alarm"]["acknowledged_ms"], at, "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_unit_is_polled_by_its_sites_owner_alone_through_a_kill() {
    let _load = shared().await;
    let _nats = crate::common::nats::one_at_a_time().await;
    let nats = NatsCluster::start(3);
    let mq = Mosquitto::start();
    let vm = Victoria::start();
    let ports: Vec<u16> = SITES.iter().map(|_| free_port()).collect();
    let inv = inventory(&ports);
    let mut nodes = vec![
        node(&nats, &mq, &vm, "gw-a", &inv),
        node(&nats, &mq, &vm, "gw-b", &inv),
    ];
    let sim = ModbusSim::from_config(&nodes[0]._cfg.load().config, false);
    let serving = sim.serve_tcp().await.unwrap();
    for n in &mut nodes {
        n.gw.start_ready().await;
    }
    let apis: Vec<String> = nodes.iter().map(|n| n.gw.api.clone()).collect();

    let owners = stable_owners(&apis).await;
    let spread: std::collections::BTreeSet<usize> = owners.values().copied().collect();
    assert_eq!(spread.len(), 2, "both instances own sites: {owners:?}");
    online_everywhere(&apis, None).await;
    let from = now_ms();
    polled_by_owners_alone(&apis, &owners).await;
    let to = now_ms();
    acknowledge_over_the_api(&mq, &apis).await;

    // The owner of m1 dies: the survivor takes its partitions and polls its units, and no
    // unit goes offline for it (lease_ttl_s + a renewal is well inside offline_after_s).
    let (dead, alive) = (owners["m1"], 1 - owners["m1"]);
    nodes[dead].gw.kill9();
    let killed = now_ms();
    let survivor = [apis[alive].clone()];
    let all_alive: BTreeMap<&str, usize> = SITES.iter().map(|s| (*s, 0)).collect();
    stable_owners(&survivor).await;
    polled_by_owners_alone(&survivor, &all_alive).await;
    let taken = now_ms();
    let after = stored(&vm, killed, taken + 1).await;
    assert!(
        !after.get("m1").is_none_or(Vec::is_empty),
        "m1/u1 not polled after the kill: {after:?}"
    );
    online_everywhere(&survivor, Some(killed)).await;

    // Back again: the partitions it owned come back to it, still one poller a unit.
    nodes[dead].gw.start_ready().await;
    let owners = stable_owners(&apis).await;
    online_everywhere(&apis, Some(killed)).await;
    let from2 = now_ms();
    polled_by_owners_alone(&apis, &owners).await;
    let to2 = now_ms();
    one_poller(&vm, from, to).await;
    one_poller(&vm, from2, to2).await;
    for n in &mut nodes {
        n.gw.stop();
    }
    serving.iter().for_each(|t| t.abort());
}
