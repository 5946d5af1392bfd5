//! Micro-benchmarks of the hot path: payload parsing and the core's per-reading work,
//! threshold evaluation included; and the read model the API answers from.
//! `cargo bench --bench core` (one group: `cargo bench --bench core -- read_model`).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use safegate::config::load_str;
use safegate::core::alarms::rules::AlarmRules;
use safegate::core::alarms::EventKind;
use safegate::core::snapshot::Snapshot;
use safegate::core::{Core, Inventory, Outputs, SourceEvent};
use safegate::core::{Origin, RawReading, ReadingStatus};
use safegate::simulators::loadgen::{inventory_toml, payload, value};
use safegate::sources::mqtt::payload::{parse_message, Limits};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const LIMITS: Limits = Limits {
    max_payload_bytes: 256 * 1024,
    max_batch_len: 10_000,
    max_channels: 64,
    ..Limits::DEFAULT
};

fn core_with(n: usize) -> Core {
    let text = inventory_toml("bench", n, 10.0);
    let loaded = load_str(Path::new("bench.toml"), &text, Path::new(".")).expect("bench inventory");
    let inv = Inventory::from_config(&loaded.config.inventory);
    let rules = AlarmRules::from_config(&loaded.config.alarms, &loaded.config.inventory, &inv);
    let mut core = Core::new(inv, 300_000, 100);
    core.set_alarm_rules(rules);
    core
}

/// Parsed reading events for devices d0…d999, with values from `value(…, alarm_every)`.
fn events(alarm_every: Option<u64>) -> Vec<SourceEvent> {
    (0..2000u64)
        .flat_map(|i| {
            let mut out = Vec::new();
            parse_message(
                "safegate/v1",
                &format!("safegate/v1/bench/d{}/data", i % 1000),
                payload(1_700_000_000_000 + i as i64, value(i, 1000, alarm_every)).as_bytes(),
                1_700_000_000_000,
                LIMITS,
                &mut out,
            );
            out
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let payloads: Vec<(String, String)> = (0..1000)
        .map(|i| {
            (
                format!("safegate/v1/bench/d{i}/data"),
                payload(1_700_000_000_000 + i as i64, value(i, 1000, None)),
            )
        })
        .collect();

    let mut g = c.benchmark_group("ingest");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse_message", |b| {
        let mut out = Vec::with_capacity(4);
        let mut i = 0;
        b.iter(|| {
            let (t, p) = &payloads[i % payloads.len()];
            i += 1;
            parse_message(
                "safegate/v1",
                t,
                p.as_bytes(),
                1_700_000_000_000,
                LIMITS,
                &mut out,
            );
            black_box(out.drain(..).count())
        })
    });

    // Per reading, with threshold evaluation on: quiet (no crossing), and a storm where every
    // other reading of a device raises an alarm and the next clears it. The same cost at 1k
    // and 100k devices shows the evaluation is O(1) per reading.
    for (name, every) in [("core_apply", None), ("core_apply_alarm_storm", Some(2))] {
        let events = events(every);
        for n in [1_000usize, 100_000] {
            let mut core = core_with(n);
            let mut out = Outputs::default();
            let mut i = 0usize;
            g.bench_function(format!("{name}/{n}_devices"), |b| {
                b.iter(|| {
                    let mut ev = events[i % events.len()].clone();
                    if let SourceEvent::Reading { received_ms, .. } = &mut ev {
                        *received_ms = 1_700_000_000_000 + i as i64;
                    }
                    i += 1;
                    core.apply(ev, &mut out);
                    // An operator acknowledges each alarm, so cleared alarms close and the
                    // book stays bounded over millions of iterations.
                    let raised: Vec<u64> = out
                        .alarms
                        .iter()
                        .filter(|a| a.event.kind == EventKind::Raised)
                        .map(|a| a.record.id)
                        .collect();
                    out.clear();
                    for id in raised {
                        let _ = core.acknowledge(id, None, "op", "", "http", 0, &mut out);
                    }
                    black_box(out.alarms.len());
                    out.clear();
                })
            });
        }
    }
    g.finish();
}

/// A reading of device `d{i}`, received at `at`.
fn reading(i: usize, at: i64) -> SourceEvent {
    SourceEvent::Reading {
        reading: RawReading {
            site: "bench".into(),
            device: format!("d{i}").into(),
            ts_ms: Some(at),
            values: vec![("v".into(), value(i as u64, 1000, None))],
            status: ReadingStatus::Normal,
            cause: None,
        },
        origin: Origin {
            topic: Arc::from("safegate/v1/bench/data"),
            element: None,
        },
        received_ms: at,
    }
}

/// Readings from devices `from..to` (wrapping at the fleet's size) at `at`.
fn feed(core: &mut Core, out: &mut Outputs, from: usize, to: usize, at: i64) {
    let n = core.inventory.devices.len();
    for i in from..to {
        core.apply(reading(i % n, at), out);
        out.clear();
    }
}

/// Build times of the read model at 100,000 devices, as the core task pays them when it
/// publishes (the previous snapshot is freed off the core task, so not timed): from scratch;
/// after every device reported (the load benchmark's case, scripts/bench-api.sh); after
/// 1,000 devices reported (a quiet fleet).
fn read_model(c: &mut Criterion) {
    const N: usize = 100_000;
    const T0: i64 = 1_700_000_000_000;
    let mut g = c.benchmark_group("read_model");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    let mut core = core_with(N);
    let mut out = Outputs::default();
    feed(&mut core, &mut out, 0, N, T0);
    g.bench_function(format!("full/{N}_devices"), |b| {
        b.iter_with_large_drop(|| core.snapshot(None))
    });
    for touched in [N, 1_000] {
        let mut prev: Snapshot = core.snapshot(None);
        let mut at = T0;
        g.bench_function(format!("after_{touched}_reported/{N}_devices"), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for k in 0..iters as usize {
                    // 10 ms apart: no device goes silent long enough to go offline.
                    at += 10;
                    feed(&mut core, &mut out, k * touched, (k + 1) * touched, at);
                    let t = Instant::now();
                    let next = core.snapshot(Some(&prev));
                    spent += t.elapsed();
                    drop(std::mem::replace(&mut prev, next));
                }
                black_box(&prev);
                spent
            })
        });
    }
    g.finish();
}

/// Cluster mode's checkpoint of the core (`core::resume`), every second the stream moved:
/// the entries of the devices changed since the last one (here all 100,000, the worst
/// case), taken under the core's lock and encoded; and putting them back at a restart.
fn checkpoint(c: &mut Criterion) {
    use safegate::core::resume::{DeviceEntry, ResumeState};
    const N: usize = 100_000;
    let mut g = c.benchmark_group("checkpoint");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    let mut core = core_with(N);
    feed(&mut core, &mut Outputs::default(), 0, N, 1_700_000_000_000);
    let encode = |(s, d): (ResumeState, Vec<DeviceEntry>)| {
        let entries: Vec<Vec<u8>> = d.iter().map(DeviceEntry::to_bytes).collect();
        (s.to_bytes(), entries)
    };
    g.bench_function(format!("take_all_changed/{N}_devices"), |b| {
        b.iter(|| black_box(encode(core.resume_state(true)).1.len()))
    });
    let (state, entries) = encode(core.resume_state(true));
    let bytes: usize = entries.iter().map(Vec::len).sum();
    eprintln!("checkpoint of {N} changed devices: {bytes} bytes");
    g.bench_function(format!("resume/{N}_devices"), |b| {
        b.iter_with_large_drop(|| {
            let mut fresh = core_with(N);
            let state = ResumeState::from_bytes(&state).expect("its own checkpoint");
            let devices: Vec<DeviceEntry> = (entries.iter())
                .map(|e| DeviceEntry::from_bytes(e).expect("its own entry"))
                .collect();
            fresh.resume(&state, &devices);
            fresh
        })
    });
    g.finish();
}

/// The batch path's per-reading work in one thread, as phase T of `scripts/bench-ingest.sh`
/// feeds it (messages of 250 readings on `{site}/batch`): parse, the core, the store record,
/// its line. Per reading; what is left of phase T's CPU is MQTT, the outbox and HTTP.
fn batch_path(c: &mut Criterion) {
    use safegate::sinks::record::{LineEncoder, Record};
    const PER: usize = 250;
    let bodies: Vec<String> = (0..40u64)
        .map(|m| {
            let items: Vec<String> = (0..PER as u64)
                .map(|k| {
                    let i = m * PER as u64 + k;
                    format!(
                        r#"{{"device":"d{}","ts":{},"values":{{"v":{:?}}},"status":"normal"}}"#,
                        i % 1000,
                        1_700_000_000_000 + i as i64,
                        value(i, 1000, None)
                    )
                })
                .collect();
            format!("[{}]", items.join(","))
        })
        .collect();
    let mut core = core_with(1000);
    let inv = core.inventory.clone();
    let mut g = c.benchmark_group("batch_path");
    g.throughput(Throughput::Elements(PER as u64));
    let (mut events, mut out, mut lines) = (Vec::new(), Outputs::default(), Vec::new());
    let mut enc = LineEncoder::default();
    let mut m = 0usize;
    g.bench_function("parse_core_encode_250", |b| {
        b.iter(|| {
            let body = &bodies[m % bodies.len()];
            m += 1;
            parse_message(
                "safegate/v1",
                "safegate/v1/bench/batch",
                body.as_bytes(),
                1_700_000_000_000,
                LIMITS,
                &mut events,
            );
            for ev in events.drain(..) {
                core.apply(ev, &mut out);
            }
            lines.clear();
            for a in out.readings.drain(..) {
                let r = Record::reading(&inv, a);
                enc.encode(&r, &mut lines).expect("a good reading encodes");
            }
            out.clear();
            black_box(lines.len())
        })
    });
    g.finish();
}

criterion_group!(benches, bench, read_model, batch_path, checkpoint);
criterion_main!(benches);
