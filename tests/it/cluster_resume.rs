//! Cluster mode's checkpoints (issue #19, docs/scaling.md "Checkpoints"): a restarted
//! instance resumes from the last checkpoint its journal committed, so it keeps history the
//! readings stream no longer holds, and its figures stay those of the instance that never
//! stopped; one that comes back after the stream dropped what followed its checkpoint says
//! so. The stream's retention is played by purging it. Real parts: 3 nats-server nodes,
//! Mosquitto, VictoriaMetrics, three `safegate` processes.

use crate::cluster_data::{
    agreed, cluster_view, dev, figures, node, owned_of, settled, silent, site, value, wait_until,
    DEVICES, PARTITIONS, SITES,
};
use crate::common::nats::NatsCluster;
use crate::common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const ROUNDS: u64 = 24;
const KILL_AT: u64 = 12;
const RESTART_AT: u64 = 18;

/// The readings stream, as the test reaches it.
pub(crate) async fn stream(nats: &NatsCluster) -> async_nats::jetstream::stream::Stream {
    let url = format!("nats://127.0.0.1:{}", nats.nodes[0].port);
    let client = async_nats::connect(url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    js.get_stream(safegate::cluster::stream::STREAM)
        .await
        .unwrap()
}

/// Drop every message of the stream before `sequence`, as its retention would.
pub(crate) async fn purge_before(nats: &NatsCluster, sequence: u64) -> u64 {
    let r = stream(nats).await.purge().sequence(sequence).await.unwrap();
    r.purged
}

/// Round `r` of the script: every device not silent reports.
async fn round(p: &mut AckedPublisher, ts: i64, r: u64) {
    for s in 0..SITES {
        for d in 0..DEVICES {
            if !silent(s, d, r) {
                let body = json!({"ts": ts, "values": {"lel": value(d, r)}});
                let topic = format!("safegate/v1/{}/{}/data", site(s), dev(d));
                p.send(&topic, body.to_string()).await;
            }
        }
    }
}

pub(crate) async fn view(api: &str) -> Value {
    cluster_view(&reqwest::Client::new(), api)
        .await
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_instance_resumes_from_its_checkpoint_and_keeps_what_the_stream_dropped() {
    let _load = shared().await;
    let _nats = crate::common::nats::one_at_a_time().await;
    let nats = NatsCluster::start(3);
    let mq = Mosquitto::start_with(|port, _| {
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_inflight_messages 1000\nmax_queued_messages 1000000\nlog_dest none\n")
    });
    let vm = Victoria::start_with_args(&["-dedup.minScrapeInterval=1ms"]);
    let (mut a, mut b) = (node(&nats, &mq, &vm, "gw-1"), node(&nats, &mq, &vm, "gw-2"));
    a.gw.start_ready().await;
    b.gw.start_ready().await;
    let apis = [a.gw.api.clone(), b.gw.api.clone()];
    wait_until(
        Duration::from_secs(60),
        "an owner for every partition",
        || async {
            let mut n = 0;
            for api in &apis {
                n += owned_of(&view(api).await).len();
            }
            n == PARTITIONS as usize
        },
    )
    .await;

    // Both report and checkpoint; gw-2 is killed, and the stream then drops everything up
    // to gw-2's last checkpoint seen (at most the one it will resume from).
    let mut p = AckedPublisher::connect(mq.port, "platforms").await;
    let t0 = now_ms() - now_ms() % 1000 + 1000;
    let start = Instant::now();
    let mut dropped = 0;
    for r in 0..ROUNDS {
        tokio::time::sleep_until((start + Duration::from_secs(r)).into()).await;
        if r == KILL_AT {
            let seen = view(&b.gw.api).await["checkpoint_sequence"]
                .as_u64()
                .unwrap_or(0);
            assert!(seen > 0, "gw-2 checkpointed before the kill");
            b.gw.kill9();
            dropped = seen;
        }
        if r == RESTART_AT {
            let purged = purge_before(&nats, dropped + 1).await;
            eprintln!(
                "stream purged before sequence {}: {purged} messages",
                dropped + 1
            );
            assert!(purged > 1_000, "{purged}");
            b.gw.spawn();
        }
        round(&mut p, t0 + r as i64 * 1000, r).await;
    }
    p.wait_acked(Duration::from_secs(60)).await;
    let (from, end) = (t0 - 1000, t0 + ROUNDS as i64 * 1000);
    let to = end - 2000;

    // gw-3 starts now, with no checkpoint: it can only apply what the stream still holds.
    let mut c = node(&nats, &mq, &vm, "gw-3");
    c.gw.start_ready().await;
    let all = [a.gw.api.clone(), b.gw.api.clone(), c.gw.api.clone()];
    settled(&all, end + 2000, Duration::from_secs(120)).await;
    let resumed = view(&b.gw.api).await;
    assert!(
        resumed["resumed_from"]
            .as_u64()
            .is_some_and(|s| s >= dropped)
            && resumed["gap"] == 0,
        "gw-2 resumed from its checkpoint, nothing missing: {resumed}"
    );
    assert_eq!(view(&c.gw.api).await["resumed_from"], Value::Null);
    // gw-2 holds from its journal what the stream dropped: its figures are gw-1's…
    agreed(&apis, from, to, Duration::from_secs(30)).await;
    // …which they would not be from the stream alone (gw-3).
    let (fa, fc) = (
        figures(&apis[0], from, to).await,
        figures(&all[2], from, to).await,
    );
    assert_ne!(fa["region"], fc["region"], "the purge took history away");

    // gw-2 stops, and the stream drops what came after its checkpoint before it is back:
    // it says what it misses.
    b.gw.stop();
    let last = stream(&nats)
        .await
        .info()
        .await
        .unwrap()
        .state
        .last_sequence;
    purge_before(&nats, last + 1).await;
    b.gw.spawn();
    wait_until(Duration::from_secs(60), "gw-2 to name its gap", || async {
        view(&b.gw.api).await["gap"].as_u64().unwrap_or(0) > 0
    })
    .await;

    // The stream deleted and created anew (say, to change its settings): gw-2's checkpoint
    // is of the old one, whose sequences the new one does not continue. gw-2 sets its
    // state.db aside and stops; started again, it rebuilds from the new stream.
    for n in [&mut a, &mut b, &mut c] {
        n.gw.stop();
    }
    stream(&nats).await; // it exists
    let client = async_nats::connect(format!("nats://127.0.0.1:{}", nats.nodes[0].port))
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client);
    js.delete_stream(safegate::cluster::stream::STREAM)
        .await
        .unwrap();
    b.gw.spawn();
    let status = b.gw.exited(Duration::from_secs(60)).await;
    assert_eq!(status.and_then(|s| s.code()), Some(78), "{}", b.gw.log());
    assert!(
        b.gw.log().contains("state.db is set aside"),
        "{}",
        b.gw.log()
    );
    b.gw.start_ready().await;
    wait_until(
        Duration::from_secs(60),
        "gw-2 to follow the new stream",
        || async {
            let v = view(&b.gw.api).await;
            v["resumed_from"].is_null() && v["applied_sequence"].as_u64() > Some(0)
        },
    )
    .await;
    b.gw.stop();
}
