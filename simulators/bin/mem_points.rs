//! mem-points: where a mine point's memory goes. Builds 1,000 mine sites (as
//! scripts/bench-mine-files.sh does), declares each mine's CDDY of 300 points through the
//! same parser, meaning and core as the gateway, and prints the bytes allocated per point by
//! each part, counted by a wrapping allocator (live bytes, not RSS: no allocator overhead or
//! fragmentation). `mem-points [MINES] [POINTS]`.

use safegate::core::{Core, Outputs, SourceEvent};
use safegate::simulators::mine::{cddy, MineSpec};
use safegate::sources::mine_files::{apply, format};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

fn inventory(mines: usize) -> String {
    let mut s = String::new();
    for i in 0..mines {
        s.push_str(&format!(
            "[[sites]]\nid = \"m{i:04}\"\nname = \"模拟煤矿{i}\"\nkind = \"mine\"\nmine_code = \"{}\"\n\n[[systems]]\nid = \"m{i:04}-kj\"\nsite = \"m{i:04}\"\nkind = \"major_hazard\"\n\n",
            150_621_000_001u64 + i as u64
        ));
    }
    s
}

fn main() -> Result<(), String> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (mines, points) = (
        args.first().copied().unwrap_or(1000),
        args.get(1).copied().unwrap_or(300),
    );
    let offset = time::UtcOffset::from_hms(8, 0, 0).map_err(|e| e.to_string())?;
    let file: safegate::core::inventory::InventoryConfig =
        toml::from_str(&inventory(mines)).map_err(|e| e.to_string())?;
    let sites = safegate::sources::mine_files::mine_sites(&file, &Default::default())
        .map_err(|e| e.to_string())?;
    let base = live();
    let mut core = Core::new(
        safegate::core::Inventory::from_config(&file),
        86_400_000,
        100,
    );
    let with_sites = live();
    let mut states = Vec::with_capacity(mines);
    let (mut in_core, mut in_state) = (0isize, 0isize);
    let at = 1_800_000_000_000;
    for site in &sites {
        let spec = MineSpec::new(&site.mine_code, "模拟煤矿", points, 10, offset)?;
        let text = cddy(&spec, at);
        let name = format!("{}_CDDY_20270115080000.txt", site.mine_code);
        let parsed =
            format::parse_file(&name, text.as_bytes(), 8 * 3600).map_err(|e| e.to_string())?;
        let mut state = apply::MineState::default();
        let s0 = live();
        let (events, _) = apply::apply(&name, &parsed, site, &mut state, at);
        let s1 = live();
        // The events' own size, from a copy: the core consumes (frees) the originals.
        let copy = events.clone();
        let event_bytes = live() - s1;
        let mut out = Outputs::default();
        for e in events {
            if matches!(e, SourceEvent::Devices(_)) {
                core.apply(e, &mut out);
            }
        }
        drop(out);
        let s2 = live();
        drop(copy);
        in_state += s1 - s0 - event_bytes;
        in_core += s2 - s1;
        drop(parsed);
        states.push(state);
    }
    let all = live();
    let snap = core.snapshot(None);
    let with_snapshot = live();
    let n = (mines * points) as f64;
    let per = |b: isize| b as f64 / n;
    println!(
        "{mines} mines × {points} points = {} points",
        mines * points
    );
    println!(
        "sites and systems, no points     {:>8.1} MB",
        (with_sites - base) as f64 / 1e6
    );
    println!(
        "core (inventory, liveness, alarms) per point {:>7.0} B",
        per(in_core)
    );
    println!(
        "mine state (points, rules)       per point {:>7.0} B",
        per(in_state)
    );
    println!(
        "parser and the rest (transient)  per point {:>7.0} B",
        per(all - with_sites - in_core - in_state)
    );
    println!(
        "read model (one snapshot)        per point {:>7.0} B",
        per(with_snapshot - all)
    );
    println!(
        "in all                           per point {:>7.0} B",
        per(with_snapshot - base)
    );
    drop(snap);
    Ok(())
}
