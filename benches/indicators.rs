//! All indicators over a one-year window for a large fleet with 30 days of transitions,
//! loaded from the journal (SQLite) and computed: `cargo bench --bench indicators`.
//! Target: ≤ 1 s for 100 000 devices. Also shows how the cost grows with devices and with
//! transitions. Under `cargo test` it runs once on a small fleet.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use safegate::config::load_str;
use safegate::core::indicators::{ledger, Scope};
use safegate::core::Inventory;
use safegate::report::evaluate::Evaluator;
use safegate::state::{Journal, TransitionRow};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

const DAY: i64 = 86_400_000;
const T0: i64 = 1_767_196_800_000; // 2026-01-01T00:00:00+08:00

/// A fleet of `n` devices over 10 park sites, each with `per_day` outages a day for `days`.
fn build(dir: &Path, n: usize, days: i64, per_day: i64) -> Evaluator {
    let mut text = String::new();
    for s in 0..10 {
        text.push_str(&format!(
            "[[sites]]\nid = \"s{s}\"\nname = \"site {s}\"\nkind = \"park\"\n\n[[zones]]\nid = \"z{s}\"\nsite = \"s{s}\"\nname = \"z\"\n\n"
        ));
    }
    for i in 0..n {
        let zone = if i % 100 == 0 {
            format!("zone = \"z{}\"\n", i % 10)
        } else {
            String::new()
        };
        text.push_str(&format!(
            "[[devices]]\nid = \"d{i}\"\nsite = \"s{}\"\nkind = \"gas_combustible\"\nprotocol = \"mqtt\"\ninterval_s = 10\n{zone}\n",
            i % 10
        ));
    }
    let l = load_str(Path::new("bench.toml"), &text, Path::new(".")).expect("inventory");
    let inv = Arc::new(Inventory::from_config(&l.config.inventory));
    let mut j = Journal::open(dir).unwrap();
    j.sync_registry(&inv, T0).unwrap();
    let start = Instant::now();
    let step = DAY / per_day;
    let mut rows = Vec::with_capacity(100_000);
    for k in 0..days * per_day {
        for (i, d) in inv.devices.iter().enumerate() {
            let site = inv.sites[d.site as usize].id.to_string();
            // Each device goes down for 1/10 of each step, at its own phase.
            let base = T0 + k * step + (i as i64 * 7919) % (step / 2);
            for (at, online, cause) in [
                (base, true, "reading"),
                (base + step / 10 * 9, false, "silence"),
            ] {
                rows.push(TransitionRow {
                    site: site.clone(),
                    device: d.id.to_string(),
                    at_ms: at,
                    online,
                    cause: cause.into(),
                });
            }
            if rows.len() >= 100_000 {
                j.append(&rows).unwrap();
                rows.clear();
            }
        }
    }
    j.append(&rows).unwrap();
    // As the running gateway does every 20 000 transitions.
    j.compact().unwrap();
    eprintln!(
        "  built journal: {n} devices × {} transitions in {:.1} s",
        days * per_day * 2,
        start.elapsed().as_secs_f64()
    );
    Evaluator {
        journal: Arc::new(safegate::state::ReadPool::new(dir)),
        inventory: safegate::report::evaluate::live(inv),
        settings: Default::default(),
        targets: vec![],
    }
}

fn bench(c: &mut Criterion) {
    let full = std::env::args().any(|a| a == "--bench");
    let cases: Vec<(usize, i64)> = if full {
        vec![(10_000, 1), (50_000, 1), (100_000, 1), (100_000, 2)]
            .into_iter()
            .filter(|(n, _)| std::env::var("BENCH_ONLY").map_or(true, |v| v == n.to_string()))
            .collect()
    } else {
        vec![(1_000, 1)]
    };
    let mut g = c.benchmark_group("indicators_one_year_window");
    g.sample_size(10);
    for (n, per_day) in cases {
        let dir = tempfile::tempdir().unwrap();
        let ev = build(dir.path(), n, 30, per_day);
        let from = T0 - 335 * DAY;
        let to = T0 + 30 * DAY;
        {
            // Where the time goes, once: reading the journal vs computing.
            let t = Instant::now();
            let j = Journal::open_read(dir.path()).unwrap();
            let h = j.load_history(&ev.inventory(), from, to).unwrap();
            let load = t.elapsed();
            let t = Instant::now();
            let c = safegate::core::indicators::compute(
                &ev.inventory(),
                &h,
                from,
                to,
                to,
                ev.settings.policy(),
            );
            let _ = c.indicators(&ev.inventory(), Scope::Region);
            eprintln!(
                "  load {:.0} ms, compute {:.0} ms",
                load.as_secs_f64() * 1e3,
                t.elapsed().as_secs_f64() * 1e3
            );
        }
        // The overview's figures: one evaluation kept by site (built once, timed once), then
        // any kept window — here the year and the last 24 h — is a subtraction.
        let inv = ev.inventory();
        let offset = 8 * 3_600_000;
        let start = ledger::start(to, offset);
        let t = Instant::now();
        let j = Journal::open_read(dir.path()).unwrap();
        let h = j.load_timelines(&inv, start, to).unwrap();
        let (l, _) = ledger::build(&inv, &h, (start, to), to, ev.settings.policy(), offset);
        eprintln!(
            "  overview ledger built in {:.0} ms",
            t.elapsed().as_secs_f64() * 1e3
        );
        let id = format!("{n}_devices_{}_transitions", n as i64 * 60 * per_day);
        g.bench_function(BenchmarkId::new("overview_window_from_ledger", id), |b| {
            b.iter(|| {
                let year = l.headlines(from, to).expect("kept");
                let day = l.headlines(to - DAY + 12_345, to).expect("kept");
                assert!(year.0.online_rate.ratio.den > day.0.online_rate.ratio.den);
                (year, day)
            })
        });
        let id = BenchmarkId::from_parameter(format!(
            "{n}_devices_{}_transitions",
            n as i64 * 60 * per_day
        ));
        g.bench_function(id, |b| {
            b.iter(|| {
                let c = ev.compute(from, to, to).unwrap();
                let region = c.indicators(&ev.inventory(), Scope::Region);
                let sites: usize = (0..10)
                    .map(|s| c.indicators(&ev.inventory(), Scope::Site(s)).len())
                    .sum();
                assert!(region
                    .iter()
                    .any(|i| i.id == "online_rate" && i.ratio.den > 0));
                sites
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
