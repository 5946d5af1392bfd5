//! The price of reading a platform's own shape: one reading as the gateway's native message
//! (parse_message) against the same reading in the ministry-family envelope through the
//! `ministry` preset (Mapping::apply), per message; and a 500-point envelope against a
//! 500-element native batch. `cargo bench --bench mapping`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use safegate::simulators::loadgen::{beijing_time, ministry_payload, payload};
use safegate::sources::mapping::{Input, Limits as MapLimits, MappingConfig, Mappings};
use safegate::sources::mqtt::payload::{parse_message, Limits};
use std::sync::Arc;

// The gateway's allocator, so that the JSON tree's allocations cost what they cost there.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn mapping() -> Mappings {
    let cfg: MappingConfig = toml::from_str(
        r#"name = "bench"
preset = "ministry"
topics = ["ministry/+/up"]
site = "{topic:1}"
channels = [{ name = "v", path = "$.pointValue" }]"#,
    )
    .expect("bench mapping");
    Mappings::compile(&[cfg]).expect("compiles")
}

fn envelope(points: usize) -> String {
    let t = beijing_time(1_790_000_000);
    let items: Vec<String> = (0..points)
        .map(|i| {
            format!(
                r#"{{"pointCode":"d{i}","sensorType":"0001","pointValue":{}.5,"valueUnit":"%LEL","pointStatus":"00000000","dataTime":"{t}"}}"#,
                i % 20
            )
        })
        .collect();
    format!(
        r#"{{"dataId":"1","enterpriseCode":"bench","gatewayCode":"gw1","collectTime":"{t}","isConnectDataSource":true,"reportType":"report","dataType":"realtime","datas":[{}]}}"#,
        items.join(",")
    )
}

fn bench(c: &mut Criterion) {
    let maps = mapping();
    let m = maps.get("bench").expect("the mapping");
    let limits = MapLimits::DEFAULT;
    let origin: Arc<str> = Arc::from("ministry/bench/up");
    let one = ministry_payload("d7", &beijing_time(1_790_000_000), 12.5);
    let native = payload(1_790_000_000_000, 12.5);
    let mut g = c.benchmark_group("one_reading");
    g.throughput(Throughput::Elements(1));
    g.bench_function("native", |b| {
        let mut out = Vec::with_capacity(4);
        b.iter(|| {
            out.clear();
            parse_message(
                "safegate/v1",
                "safegate/v1/bench/d7/data",
                black_box(native.as_bytes()),
                0,
                Limits::DEFAULT,
                &mut out,
            );
            black_box(out.len())
        })
    });
    g.bench_function("ministry_envelope", |b| {
        let mut out = Vec::with_capacity(4);
        b.iter(|| {
            out.clear();
            let input = Input {
                payload: black_box(one.as_bytes()),
                topic: Some("ministry/bench/up"),
                site: None,
                origin: origin.clone(),
                received_ms: 0,
            };
            m.apply(&input, &limits, &mut out);
            black_box(out.len())
        })
    });
    g.finish();

    let big = envelope(500);
    let batch: Vec<String> = (0..500)
        .map(|i| {
            format!(
                r#"{{"device":"d{i}","ts":1790000000000,"values":{{"v":{}.5}}}}"#,
                i % 20
            )
        })
        .collect();
    let batch = format!("[{}]", batch.join(","));
    let mut g = c.benchmark_group("batch_500");
    g.throughput(Throughput::Elements(500));
    g.bench_function("native", |b| {
        let mut out = Vec::with_capacity(512);
        b.iter(|| {
            out.clear();
            parse_message(
                "safegate/v1",
                "safegate/v1/bench/batch",
                black_box(batch.as_bytes()),
                0,
                Limits::DEFAULT,
                &mut out,
            );
            black_box(out.len())
        })
    });
    g.bench_function("ministry_envelope", |b| {
        let mut out = Vec::with_capacity(512);
        b.iter(|| {
            out.clear();
            let input = Input {
                payload: black_box(big.as_bytes()),
                topic: Some("ministry/bench/up"),
                site: None,
                origin: origin.clone(),
                received_ms: 0,
            };
            m.apply(&input, &limits, &mut out);
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
