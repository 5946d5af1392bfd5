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

/// One group: the native message on `native_topic` against `envelope` through the mapping,
/// both carrying `n` readings.
fn group(c: &mut Criterion, name: &str, n: u64, native: (&str, &str), envelope: &str) {
    let maps = mapping();
    let m = maps.get("bench").expect("the mapping");
    let origin: Arc<str> = Arc::from("ministry/bench/up");
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(n));
    let mut out = Vec::with_capacity(n as usize + 4);
    g.bench_function("native", |b| {
        b.iter(|| {
            out.clear();
            let (topic, payload) = native;
            let bytes = black_box(payload.as_bytes());
            parse_message("safegate/v1", topic, bytes, 0, Limits::DEFAULT, &mut out);
            black_box(out.len())
        })
    });
    g.bench_function("ministry_envelope", |b| {
        b.iter(|| {
            out.clear();
            let input = Input {
                payload: black_box(envelope.as_bytes()),
                topic: Some("ministry/bench/up"),
                site: None,
                origin: origin.clone(),
                received_ms: 0,
            };
            m.apply(&input, &MapLimits::DEFAULT, &mut out);
            black_box(out.len())
        })
    });
    g.finish();
}

fn bench(c: &mut Criterion) {
    let one = ministry_payload("d7", &beijing_time(1_790_000_000), 12.5);
    let native = payload(1_790_000_000_000, 12.5);
    group(
        c,
        "one_reading",
        1,
        ("safegate/v1/bench/d7/data", &native),
        &one,
    );
    let batch: Vec<String> = (0..500)
        .map(|i| {
            format!(
                r#"{{"device":"d{i}","ts":1790000000000,"values":{{"v":{}.5}}}}"#,
                i % 20
            )
        })
        .collect();
    let batch = format!("[{}]", batch.join(","));
    group(
        c,
        "batch_500",
        500,
        ("safegate/v1/bench/batch", &batch),
        &envelope(500),
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
