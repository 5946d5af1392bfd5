//! Cluster mode's mine files (issue #19, docs/scaling.md): a file taken by any instance, over
//! FTP, goes into the readings stream whole, and every instance applies it with the same
//! mine state, so a CDDY uploaded to one instance declares the points on both, a FZSS taken
//! by one marks the points of the CDSS taken by the other, and the store holds each reading
//! once. Real parts: 3 nats-server nodes, Mosquitto, VictoriaMetrics (without
//! de-duplication, so a second write would show), two `safegate` processes, `curl` as the
//! mine's uploader.

use crate::cluster_data::wait_until;
use crate::cluster_modbus::stable_partitions;
use crate::cluster_resume::{purge_before, view};
use crate::common::nats::NatsCluster;
use crate::common::*;
use crate::mine_files::{
    curl_put, inventory, local, mine_file, sample, MINE, PASSWORD, PASSWORD_ENV,
};
use serde_json::Value;
use std::time::Duration;

const PARTITIONS: u32 = 4;
const WAIT: Duration = Duration::from_secs(30);

struct Node {
    gw: GatewayProc,
    ftp: u16,
    _cfg: TestConfig,
}

fn node(nats: &NatsCluster, mq: &Mosquitto, vm: &Victoria, id: &str) -> Node {
    std::env::set_var(PASSWORD_ENV, PASSWORD);
    let (api_port, ftp) = (free_port(), free_port());
    let [p0, p1] = safegate::runtime::demo::passive_range().unwrap();
    let cluster = format!(
        "[cluster]\nnats_urls = {}\ninstance_id = \"{id}\"\npartitions = {PARTITIONS}\nlease_ttl_s = 4\nrenew_every_s = 1\n\n",
        nats.urls_toml()
    );
    let files = format!(
        "[mine_files]\nenabled = true\nlisten = \"127.0.0.1:{ftp}\"\npassive_ports = [{p0}, {p1}]\nupload_timeout_s = 300\n\n"
    );
    let settings = settings(&mq.url(), "mf", Some(&vm.url())).replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{api_port}\""),
    );
    let cfg = TestConfig::new(&format!("{cluster}{files}{settings}"), &inventory(false));
    Node {
        gw: GatewayProc::new(&cfg, api_port),
        ftp,
        _cfg: cfg,
    }
}

/// Upload a sample file to an instance's FTP server; it must answer 226.
async fn upload(n: &Node, name: &str) {
    curl_put(n.ftp, &sample(name), name, MINE)
        .await
        .unwrap_or_else(|e| panic!("{name} not taken by {}: {e}\n{}", n.gw.api, n.gw.log()));
}

/// A point's `last_seen` in a listing (null while it is not listed).
fn last_seen(v: &Value, id: &str) -> Value {
    let found = v["devices"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["id"] == id));
    found.map_or(Value::Null, |d| d["last_seen"].clone())
}

/// The mine's points as `api` lists them, once `done` holds.
async fn points(api: &str, done: impl Fn(&Value) -> bool) -> Value {
    wait_json(
        &format!("{api}/api/v1/devices?site=m1&limit=100"),
        WAIT,
        done,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_taken_by_any_instance_is_applied_alike_by_all_and_stored_once() {
    let _load = shared().await;
    let _nats = crate::common::nats::one_at_a_time().await;
    let nats = NatsCluster::start(3);
    let mq = Mosquitto::start();
    let vm = Victoria::start();
    let mut nodes = vec![node(&nats, &mq, &vm, "gw-a"), node(&nats, &mq, &vm, "gw-b")];
    for n in &mut nodes {
        n.gw.start_ready().await;
    }
    let apis: Vec<String> = nodes.iter().map(|n| n.gw.api.clone()).collect();
    stable_partitions(&apis, PARTITIONS).await;

    // The point definitions to gw-b: both instances know the six points.
    upload(&nodes[1], &format!("{MINE}_CDDY_20260301080000.txt")).await;
    for api in &apis {
        let v = points(api, |v| {
            v["devices"].as_array().is_some_and(|d| d.len() >= 6)
        })
        .await;
        let ch4 = device(&v, "150621011038MN0001");
        assert_eq!(ch4["declared"], "mine_files", "{api}: {ch4}");
        assert_eq!(ch4["kind"], "methane", "{api}: {ch4}");
    }

    // The substations' states to gw-a, the values to gw-b: F002's points are faulty on
    // both, from the state the FZSS left in each instance's mine.
    upload(&nodes[0], &format!("{MINE}_FZSS_20260301080500.txt")).await;
    let cdss = format!("{MINE}_CDSS_20260301080500.txt");
    upload(&nodes[1], &cdss).await;
    let mut seen = Vec::new();
    for api in &apis {
        let v = points(api, |v| last_seen(v, "150621011038MN0001").is_string()).await;
        let (ch4, f002) = (
            device(&v, "150621011038MN0001"),
            device(&v, "150621011038MN0003"),
        );
        assert_eq!(ch4["last_values"]["ch4"], 0.32, "{api}: {ch4}");
        assert_eq!(ch4["faulty"], false, "{api}: {ch4}");
        assert_eq!(f002["faulty"], true, "{api}: on F002, {f002}");
        let (_, mine) = get(&format!("{api}/api/v1/mines/{MINE}")).await;
        assert_eq!(
            mine["last_files"]["CDSS"]["name"],
            cdss.as_str(),
            "{api}: {mine}"
        );
        seen.push((
            ch4["last_seen"].clone(),
            ch4["state_since"].clone(),
            mine["points"].clone(),
        ));
    }
    assert_eq!(seen[0], seen[1], "both instances hold the same mine");

    // The same CDSS again, to the other instance: JetStream keeps it once (the same name
    // and content), so the store holds it once.
    upload(&nodes[0], &cdss).await;
    let text = get_text(&format!("{}/metrics", apis[0])).await;
    let duplicate = "safegate_cluster_published_total{outcome=\"duplicate\"}";
    assert_eq!(metric(&text, duplicate), Some(1.0), "{text}");
    let selector = "reading_ch4{device=\"150621011038MN0001\"}";
    let series = vm.wait_for(selector, WAIT, |s| !s.is_empty()).await;
    let samples: usize = series.iter().map(|s| s.timestamps.len()).sum();
    assert_eq!(samples, 1, "one reading of MN0001, stored once: {series:?}");

    // gw-b killed once its checkpoint holds the files so far; the next values go to gw-a,
    // and the stream drops everything up to that checkpoint (as its retention would: the
    // CDDY and the FZSS with it). Restarted, gw-b knows the mine from its checkpoint (its
    // points, its substations' state) and the later file from the stream.
    let applied = view(&apis[0]).await["applied_sequence"].as_u64().unwrap();
    wait_until(WAIT, "gw-b's checkpoint to hold the files", || async {
        view(&apis[1]).await["checkpoint_sequence"].as_u64() >= Some(applied)
    })
    .await;
    let checkpoint = view(&apis[1]).await["checkpoint_sequence"]
        .as_u64()
        .unwrap();
    nodes[1].gw.kill9();
    let later = format!("{MINE}_CDSS_20260301081000.txt");
    upload(&nodes[0], &later).await;
    let ch4 = "150621011038MN0001";
    let want = points(&apis[0], |v| last_seen(v, ch4) != seen[0].0).await;
    assert!(purge_before(&nats, checkpoint + 1).await > 0);
    nodes[1].gw.start_ready().await;
    let got = points(&apis[1], |v| last_seen(v, ch4) == last_seen(&want, ch4)).await;
    for id in [ch4, "150621011038MN0003"] {
        assert_eq!(
            device(&got, id)["last_values"],
            device(&want, id)["last_values"],
            "{id}"
        );
        assert_eq!(
            device(&got, id)["faulty"],
            device(&want, id)["faulty"],
            "{id}"
        );
    }
    let two = |s: &[Series]| s.iter().map(|s| s.timestamps.len()).sum::<usize>() == 2;
    vm.wait_for(selector, WAIT, two).await;
    let (_, mine) = get(&format!("{}/api/v1/mines/{MINE}", apis[1])).await;
    assert_eq!(mine["points"], seen[0].2, "gw-b: {mine}");

    // A file too large for a NATS message (1 MiB by default) is not taken: answered so
    // that the mine sends it again, and refused at the relay, so what follows it is not
    // held up behind it.
    let dir = tempfile::tempdir().unwrap();
    let cdss = |ms: i64, pad: usize| {
        let (at, _) = local(ms);
        let record = format!("{MINE}MN0001;测点;巷道;0.40;;0;{at}");
        mine_file(dir.path(), MINE, "CDSS", ms, "", &[record], pad)
    };
    let (big, big_path) = cdss(1_772_324_400_000, 1_500_000);
    let refused = curl_put(nodes[0].ftp, &big_path, &big, MINE).await;
    assert!(
        refused.is_err(),
        "a 1.5 MB file was taken whole into the stream"
    );
    let (next, next_path) = cdss(1_772_324_700_000, 0);
    curl_put(nodes[0].ftp, &next_path, &next, MINE)
        .await
        .expect("the next file is taken");
    let three = |s: &[Series]| s.iter().map(|s| s.timestamps.len()).sum::<usize>() == 3;
    vm.wait_for(selector, WAIT, three).await;
    let text = get_text(&format!("{}/metrics", apis[0])).await;
    let too_large = "safegate_cluster_published_total{outcome=\"too_large\"}";
    assert_eq!(metric(&text, too_large), Some(1.0), "{text}");
    // A new instance, with no checkpoint, has only what the stream still holds: no points.
    let mut fresh = node(&nats, &mq, &vm, "gw-c");
    fresh.gw.start_ready().await;
    let (_, mine) = get(&format!("{}/api/v1/mines/{MINE}", fresh.gw.api)).await;
    assert_eq!(mine["points"], 0, "gw-c: {mine}");
    fresh.gw.stop();
    // `safegate report`, run on gw-b's data directory once it stopped, knows the mine's
    // points from the CDDY in its checkpoint: the same findings as the API's.
    let (from, to) = (now_ms() - 600_000, now_ms());
    let (_, online) = get(&format!("{}/api/v1/report?from={from}&to={to}", apis[0])).await;
    for n in &mut nodes {
        n.gw.stop();
    }
    let offline = report_command(&nodes[1]._cfg.path, from, to);
    assert!(
        offline["findings"]
            .as_array()
            .is_some_and(|f| !f.is_empty()),
        "{offline}"
    );
    assert_eq!(offline["findings"], online["findings"]);
}
