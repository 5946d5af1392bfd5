//! Micro-benchmarks of the hot path: payload parsing and the core's per-reading work.
//! `cargo bench --bench core`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use safegate::config::load_str;
use safegate::core::{Core, Inventory, Outputs, SourceEvent};
use safegate::simulators::loadgen::{inventory_toml, payload};
use safegate::sources::mqtt::payload::{parse_message, Limits};
use std::path::Path;

const LIMITS: Limits = Limits {
    max_payload_bytes: 256 * 1024,
    max_batch_len: 10_000,
};

fn core_with(n: usize) -> Core {
    let text = inventory_toml("bench", n, 10.0);
    let loaded = load_str(Path::new("bench.toml"), &text, Path::new(".")).expect("bench inventory");
    Core::new(Inventory::from_config(&loaded.config), 300_000, 100)
}

fn bench(c: &mut Criterion) {
    let payloads: Vec<(String, String)> = (0..1000)
        .map(|i| {
            (
                format!("safegate/v1/bench/d{i}/data"),
                payload(i, 1_700_000_000_000 + i as i64),
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

    let events: Vec<SourceEvent> = payloads
        .iter()
        .flat_map(|(t, p)| {
            let mut out = Vec::new();
            parse_message(
                "safegate/v1",
                t,
                p.as_bytes(),
                1_700_000_000_000,
                LIMITS,
                &mut out,
            );
            out
        })
        .collect();
    for n in [1_000usize, 100_000] {
        let mut core = core_with(n);
        let mut out = Outputs::default();
        let mut i = 0usize;
        g.bench_function(format!("core_apply/{n}_devices"), |b| {
            b.iter(|| {
                let mut ev = events[i % events.len()].clone();
                if let SourceEvent::Reading { received_ms, .. } = &mut ev {
                    *received_ms = 1_700_000_000_000 + i as i64;
                }
                i += 1;
                core.apply(ev, &mut out);
                out.clear();
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
