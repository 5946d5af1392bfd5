//! Cluster mode's partition ownership (issue #19, docs/scaling.md) on real parts: a 3-node
//! NATS JetStream cluster, Mosquitto, and three `safegate` processes. Every 100 ms each live
//! instance is asked which partitions it works on (`GET /api/v1/cluster`): never may two
//! claim one, through a `kill -9` of a gateway and its restart, a killed NATS node, and an
//! orderly stop.

use crate::common::nats::NatsCluster;
use crate::common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const PARTITIONS: u32 = 16;
const TTL_S: u64 = 6;

struct Instance {
    id: String,
    gw: GatewayProc,
    live: bool,
    _cfg: TestConfig,
}

fn instance(nats: &NatsCluster, mq: &Mosquitto, id: &str) -> Instance {
    let api_port = free_port();
    let cluster = format!(
        "[cluster]\nnats_urls = {}\ninstance_id = \"{id}\"\npartitions = {PARTITIONS}\nlease_ttl_s = {TTL_S}\nrenew_every_s = 1\n\n",
        nats.urls_toml()
    );
    let settings = settings(&mq.url(), &format!("sg-{id}"), None).replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{api_port}\""),
    );
    let inventory = Inventory::park("p1").detector("d1", 60.0).to_toml();
    let cfg = TestConfig::new(&format!("{cluster}{settings}"), &inventory);
    Instance {
        id: id.into(),
        gw: GatewayProc::new(&cfg, api_port),
        live: false,
        _cfg: cfg,
    }
}

async fn owned(c: &reqwest::Client, inst: &Instance) -> Option<Vec<u32>> {
    let r = c
        .get(format!("{}/api/v1/cluster", inst.gw.api))
        .send()
        .await
        .ok()?;
    let v: Value = r.json().await.ok()?;
    assert_eq!(v["enabled"], true, "{v}");
    let list = v["cluster"]["owned"].as_array()?;
    Some(
        list.iter()
            .filter_map(|p| p.as_u64())
            .map(|p| p as u32)
            .collect(),
    )
}

/// Who claims each partition now. A partition claimed twice in one sweep is asked again of
/// the instance asked first: a handover between the two questions is not an overlap, a
/// second "yes" from both is.
async fn sweep(c: &reqwest::Client, all: &[Instance]) -> BTreeMap<u32, usize> {
    let mut owner: BTreeMap<u32, usize> = BTreeMap::new();
    for (i, inst) in all.iter().enumerate().filter(|(_, x)| x.live) {
        for p in owned(c, inst).await.unwrap_or_default() {
            if let Some(&first) = owner.get(&p) {
                let again = owned(c, &all[first]).await.unwrap_or_default();
                assert!(
                    !again.contains(&p),
                    "partition {p} owned by both {} and {}:\n{}\n{}",
                    all[first].id,
                    inst.id,
                    all[first].gw.log(),
                    inst.gw.log()
                );
            }
            owner.insert(p, i);
        }
    }
    owner
}

/// Sweep every 100 ms until `done` holds; the time it took.
async fn observe(
    c: &reqwest::Client,
    all: &[Instance],
    within: Duration,
    what: &str,
    done: impl Fn(&BTreeMap<u32, usize>) -> bool,
) -> Duration {
    let t0 = Instant::now();
    let mut interval = tokio::time::interval(Duration::from_millis(100));
    loop {
        interval.tick().await;
        let owners = sweep(c, all).await;
        if done(&owners) {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < within,
            "{what} not within {within:?}: {owners:?}"
        );
    }
}

/// Every partition owned, each by a live instance in `by`.
fn covered_by(by: &'static [usize]) -> impl Fn(&BTreeMap<u32, usize>) -> bool {
    move |o| o.len() == PARTITIONS as usize && o.values().all(|i| by.contains(i))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_have_one_owner_through_kills_restarts_and_a_lost_nats_node() {
    let _load = shared().await;
    let _nats = crate::common::nats::one_at_a_time().await;
    let mut nats = NatsCluster::start(3);
    let mq = Mosquitto::start();
    let mut all: Vec<Instance> = ["gw-1", "gw-2", "gw-3"]
        .iter()
        .map(|id| instance(&nats, &mq, id))
        .collect();
    for inst in all.iter_mut() {
        inst.gw.start_ready().await;
        inst.live = true;
    }
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    // JetStream's first election and the bucket's creation come first.
    let all3 = |o: &BTreeMap<u32, usize>| {
        covered_by(&[0, 1, 2])(o) && (0..3).all(|i| o.values().any(|v| *v == i))
    };
    observe(
        &c,
        &all,
        Duration::from_secs(60),
        "a first owner for every partition",
        all3,
    )
    .await;

    // kill -9: its leases stay until they expire; nobody may take them before.
    all[1].gw.kill9();
    all[1].live = false;
    let failover = observe(
        &c,
        &all,
        Duration::from_secs(TTL_S + 5),
        "failover",
        covered_by(&[0, 2]),
    )
    .await;
    eprintln!("failover after kill -9: {failover:?} (lease {TTL_S} s)");
    assert!(
        failover >= Duration::from_secs(TTL_S - 2),
        "taken over in {failover:?}, before the dead owner's lease could expire"
    );

    // The restarted instance (a new boot) gets its preferred partitions back.
    all[1].gw.start_ready().await;
    all[1].live = true;
    observe(
        &c,
        &all,
        Duration::from_secs(30),
        "the restarted instance's return",
        all3,
    )
    .await;

    // A NATS node killed for 10 s, then back: never two owners meanwhile, all owned after.
    nats.kill_node(2);
    let t0 = Instant::now();
    observe(
        &c,
        &all,
        Duration::from_secs(11),
        "the NATS node's 10 s away",
        |_| t0.elapsed() >= Duration::from_secs(10),
    )
    .await;
    nats.start_node(2);
    observe(
        &c,
        &all,
        Duration::from_secs(30),
        "every partition owned again after the NATS node's return",
        all3,
    )
    .await;

    // An orderly stop gives the leases back: taken over before they could have expired.
    all[0].gw.stop();
    all[0].live = false;
    let handover = observe(
        &c,
        &all,
        Duration::from_secs(TTL_S),
        "the handover after an orderly stop",
        covered_by(&[1, 2]),
    )
    .await;
    eprintln!("handover after SIGTERM: {handover:?}");
    let log = all[0].gw.log();
    assert!(log.contains("left the cluster; leases released"), "{log}");
}

/// A reading of site `p{i % 4}` as ingress would hand it on.
fn envelope(i: u32) -> safegate::core::cluster::envelope::Envelope {
    use safegate::core::{Origin, RawReading, ReadingStatus, SourceEvent};
    let e = SourceEvent::Reading {
        reading: RawReading {
            site: format!("p{}", i % 4).as_str().into(),
            device: format!("d{}", i % 10).as_str().into(),
            ts_ms: Some(1_700_000_000_000 + i64::from(i)),
            values: vec![("lel".into(), f64::from(i) / 4.0)],
            status: ReadingStatus::Normal,
            cause: None,
        },
        origin: Origin {
            topic: "safegate/v1/p/d".into(),
            element: None,
        },
        received_ms: 1_700_000_000_000 + i64::from(i),
    };
    safegate::core::cluster::envelope::Envelope::of(&e).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_pass_through_jetstream_once_each_through_redeliveries_and_a_lost_node() {
    use safegate::cluster::stream::Readings;
    let _load = shared().await;
    let _nats = crate::common::nats::one_at_a_time().await;
    let mut nats = NatsCluster::start(3);
    let urls: Vec<String> = (nats.nodes.iter())
        .map(|n| format!("nats://127.0.0.1:{}", n.port))
        .collect();
    let s = safegate::cluster::ClusterSettings {
        nats_urls: urls,
        instance_id: "t1".into(),
        ..Default::default()
    };
    let client = safegate::cluster::connect(&s).await.unwrap();
    let t0 = Instant::now();
    let readings = loop {
        // The first JetStream call may come before the cluster elected its meta leader.
        match Readings::open(client.clone(), &s).await {
            Ok(r) => break r,
            Err(e) => assert!(
                t0.elapsed() < Duration::from_secs(30),
                "stream not created: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let within = Duration::from_secs(30);
    for i in 0..400 {
        if i == 150 {
            nats.kill_node(0); // the leaders there are elected again elsewhere
        }
        let env = envelope(i);
        let first = readings.publish(i % 4, &env, within).await.unwrap();
        // Sent again, as after a gateway died before its MQTT PUBACK.
        let again = readings.publish(i % 4, &env, within).await.unwrap();
        assert!(!first.duplicate, "reading {i} was new");
        assert!(again.duplicate, "reading {i} sent again is a duplicate");
        assert_eq!(again.sequence, first.sequence);
    }
    for p in 0..4 {
        let part = readings.consumer(p, within).await.unwrap();
        let mut got = Vec::new();
        let until = Instant::now() + within;
        while got.len() < 100 {
            // A leader still being elected answers nothing, or an error: ask again.
            let batch = part.fetch(64, Duration::from_secs(2)).await;
            let batch = batch.unwrap_or_default();
            let n = got.len();
            assert!(
                Instant::now() < until,
                "partition {p} stopped at {n} of 100"
            );
            for m in batch {
                let env = m.envelope.as_ref().unwrap().clone();
                m.ack().await.unwrap();
                got.push(env);
            }
        }
        let want: Vec<_> = (0..400).filter(|i| i % 4 == p).map(envelope).collect();
        assert_eq!(
            got, want,
            "partition {p}: each reading once, in the order published"
        );
        // A new owner of the partition gets nothing already acknowledged.
        let next = readings.consumer(p, within).await.unwrap();
        let rest = next.fetch(10, Duration::from_millis(500)).await.unwrap();
        assert!(
            rest.is_empty(),
            "partition {p}: {} delivered again",
            rest.len()
        );
    }

    // An owner takes a batch and dies before acknowledging it; the next owner takes and
    // acknowledges the messages after it. The dead owner's batch still comes again (after
    // the 30 s a consumer waits for an acknowledgement): acknowledging the later ones did
    // not acknowledge it.
    for i in 0..20 {
        readings
            .publish(5, &envelope(1_000 + i), within)
            .await
            .unwrap();
    }
    let dead = readings.consumer(5, within).await.unwrap();
    let taken = dead.fetch(10, Duration::from_secs(2)).await.unwrap();
    assert_eq!(taken.len(), 10);
    let dead_seqs: Vec<u64> = taken.iter().map(|t| t.stream_sequence).collect();
    drop((taken, dead));
    let next = readings.consumer(5, within).await.unwrap();
    let later = next.fetch(10, Duration::from_secs(2)).await.unwrap();
    let seq = |b: &[safegate::cluster::stream::Taken]| -> Vec<u64> {
        b.iter().map(|t| t.stream_sequence).collect()
    };
    let later_seqs = seq(&later);
    safegate::cluster::stream::ack_batch(&later).await.unwrap();
    let mut again = Vec::new();
    let until = Instant::now() + Duration::from_secs(60);
    while again.len() < 10 {
        assert!(
            Instant::now() < until,
            "the dead owner's batch did not come again: {again:?}"
        );
        let b = next
            .fetch(10, Duration::from_secs(2))
            .await
            .unwrap_or_default();
        again.extend(seq(&b));
        safegate::cluster::stream::ack_batch(&b).await.unwrap();
    }
    again.sort_unstable();
    assert_eq!(
        again, dead_seqs,
        "the dead owner's, not the later ones {later_seqs:?}"
    );
}
