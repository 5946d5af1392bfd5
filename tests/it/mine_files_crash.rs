//! Acceptance 3 of the mine files: `kill -9` during an FTP upload and during a watched
//! folder's apply. After the restart every file answered 226 has all its points in the store
//! once per (device, time), and the file that got no 226 is either wholly in or not at all
//! until it is sent again (docs/mine-files.md, "After a crash").
//!
//! "Once" is the store's: InfluxDB 2 keeps one point per series and time, and a batch the
//! outbox posts again after a kill (the store's 2xx came, the delete had not) overwrites
//! itself there. VictoriaMetrics keeps such a replay as a second sample, so the check here is
//! InfluxDB's: one value per (device, time), each file's values distinct from the others'.

use crate::common::*;
use crate::mine_files::local;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

const MINE: &str = "150621011039";
const PASSWORD_ENV: &str = "SAFEGATE_TEST_MINE_CRASH_PW";
const PASSWORD: &str = "kj-crash-7";
const POINTS: [&str; 3] = ["MN0001", "MN0002", "MN0003"];

/// A file of this test's mine, written by hand from the layout (see `mine_files::mine_file`).
fn write_file(
    dir: &Path,
    ty: &str,
    ms: i64,
    extra: &str,
    recs: &[String],
    pad: usize,
) -> (String, PathBuf) {
    crate::mine_files::mine_file(dir, MINE, ty, ms, extra, recs, pad)
}

fn cddy(dir: &Path, ms: i64) -> (String, PathBuf) {
    let (at, _) = local(ms);
    let recs: Vec<String> = POINTS
        .iter()
        .map(|p| format!("{MINE}{p};01;{MINE}F001;0001;MN;%CH4;4.00;0.00;0.80;0.80;-9999;-9999;-9999;-9999;-9999;-9999;;;巷道;;;;;{at}"))
        .collect();
    write_file(
        dir,
        "CDDY",
        ms,
        "KJ95X;安全监控系统;厂家;2028-12-31;",
        &recs,
        0,
    )
}

fn cdss(dir: &Path, ms: i64, pad: usize) -> (String, PathBuf) {
    let (at, _) = local(ms);
    let recs: Vec<String> = POINTS
        .iter()
        .map(|p| format!("{MINE}{p};环境瓦斯;巷道;{};%CH4;0;{at}", value_at(ms)))
        .collect();
    write_file(dir, "CDSS", ms, "", &recs, pad)
}

fn curl(port: u16, file: &Path, name: &str, rate: Option<&str>) -> std::process::Command {
    let mut c = std::process::Command::new("curl");
    c.args(["-sS", "--max-time", "60", "-T"]).arg(file);
    if let Some(r) = rate {
        c.args(["--limit-rate", r]);
    }
    c.args(["--user", &format!("{MINE}:{PASSWORD}")])
        .arg(format!("ftp://127.0.0.1:{port}/{name}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    c
}

/// Upload with curl; Ok on a 226.
async fn put(port: u16, (name, file): &(String, PathBuf)) -> Result<(), String> {
    let mut c = curl(port, file, name, None);
    let out = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Each file's own methane value (0.10..0.59 by its minute), so that a sample of one file
/// stored at another's time would show as two values at one (device, time).
fn value_at(ms: i64) -> String {
    format!("{:.2}", 0.10 + (ms / 60_000 % 50) as f64 / 100.0)
}

/// Per point, the distinct times stored for it, and every (device, time) that holds two
/// different values (a point InfluxDB would not hold once). Identical samples at one time, a
/// batch posted again, are counted in the third.
async fn stored(vm: &Victoria) -> (Vec<Vec<i64>>, Vec<String>, usize) {
    let series = vm.export("reading_ch4{site=\"m1\"}").await;
    let (mut conflicts, mut replays) = (Vec::new(), 0);
    let per: Vec<Vec<i64>> = POINTS
        .iter()
        .map(|p| {
            let id = format!("{MINE}{p}");
            let mut at: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
            for s in series.iter().filter(|s| s.label("device") == id) {
                for (ts, v) in s.timestamps.iter().zip(&s.values) {
                    if !at.entry(*ts).or_default().insert(format!("{v:.2}")) {
                        replays += 1;
                    }
                }
            }
            for (ts, vs) in &at {
                if vs.len() > 1 {
                    conflicts.push(format!("{id} at {ts}: {vs:?}"));
                }
            }
            at.into_keys().collect()
        })
        .collect();
    (per, conflicts, replays)
}

/// Wait until every point holds exactly the data times `want`, one value each; prints how
/// many samples were posted again (one point each in InfluxDB 2).
async fn stored_exactly(vm: &Victoria, want: &[i64], gw: &GatewayProc) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (per, conflicts, replays) = stored(vm).await;
        assert!(
            conflicts.is_empty(),
            "two values at one (device, time): {conflicts:?}"
        );
        if per.iter().all(|ts| ts == want) {
            eprintln!(
                "{replays} sample(s) stored again by a replay (one point each in InfluxDB 2)"
            );
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "want {want:?}, stored {per:?}\n{}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn wait_port(port: u16) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "FTP port {port} never opened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_an_ftp_upload_loses_no_file_answered_226_and_half_applies_none() {
    let _load = shared().await;
    std::env::set_var(PASSWORD_ENV, PASSWORD);
    let mq = Mosquitto::start();
    let vm = Victoria::start();
    let (api_port, ftp) = (free_port(), free_port());
    let [p0, p1] = safegate::runtime::demo::passive_range().unwrap();
    let section = format!("[mine_files]\nenabled = true\nlisten = \"127.0.0.1:{ftp}\"\npassive_ports = [{p0}, {p1}]\nupload_timeout_s = 300\n\n");
    let inventory = format!("[[sites]]\nid = \"m1\"\nname = \"示范煤矿\"\nkind = \"mine\"\nmine_code = \"{MINE}\"\nupload_password_env = \"{PASSWORD_ENV}\"\n\n[[systems]]\nid = \"kj\"\nsite = \"m1\"\nkind = \"major_hazard\"\n\n");
    let cfg = TestConfig::new(
        &(settings(&mq.url(), "gw-mine-crash", Some(&vm.url())).replace(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{api_port}\""),
        ) + &section),
        &inventory,
    );
    let files = tempfile::tempdir().unwrap();
    let dir = files.path();
    let t0 = (now_ms() - 3_600_000) / 1000 * 1000;
    let at = |k: i64| t0 + k * 60_000;
    let mut gw = GatewayProc::new(&cfg, api_port);
    gw.start_ready().await;
    wait_port(ftp).await;

    // Answered 226: the definitions and two intervals.
    let def = cddy(dir, at(0));
    put(ftp, &def).await.expect("CDDY taken");
    for k in [1, 2] {
        put(ftp, &cdss(dir, at(k), 0)).await.expect("CDSS taken");
    }

    // Interval 3 is uploaded slowly (64 KiB at 8 KiB/s) and the gateway killed while its
    // session is open and curl has no 226.
    let slow = cdss(dir, at(3), 64 * 1024);
    let mut child = curl(ftp, &slow.1, &slow.0, Some("8k")).spawn().unwrap();
    let metrics = format!("{}/metrics", gw.api);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while metric(
        &get_text(&metrics).await,
        "safegate_mine_files_ftp_sessions_open",
    ) != Some(1.0)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the upload never began"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the upload is in flight"
    );
    gw.kill9();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(!status.success(), "no 226 for the file in flight");

    // After the restart, before anything is sent again: intervals 1 and 2 are stored, once
    // each; interval 3 wholly or not at all.
    gw.start_ready().await;
    wait_port(ftp).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (per, conflicts, _) = stored(&vm).await;
        assert!(
            conflicts.is_empty(),
            "two values at one (device, time): {conflicts:?}"
        );
        let all = per
            .iter()
            .all(|ts| ts.contains(&at(1)) && ts.contains(&at(2)));
        if all {
            let n3 = per.iter().filter(|ts| ts.contains(&at(3))).count();
            assert!(
                n3 == 0 || n3 == POINTS.len(),
                "interval 3 half applied: {per:?}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "226'd files not stored: {per:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // The uploader sends again what got no 226, and goes on. The points a CDDY declared are
    // forgotten by a restart (the mine's state is in memory), so the CDDY goes first.
    put(ftp, &def).await.expect("CDDY taken again");
    put(ftp, &slow).await.expect("interval 3 taken");
    put(ftp, &cdss(dir, at(4), 0))
        .await
        .expect("interval 4 taken");
    let want: Vec<i64> = (1..=4).map(at).collect();
    stored_exactly(&vm, &want, &gw).await;
}

/// Every file under `dir`, recursively.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_folder_apply_ends_with_every_file_in_done_and_stored_once() {
    let _load = shared().await;
    std::env::set_var(PASSWORD_ENV, PASSWORD);
    let mq = Mosquitto::start();
    let vm = Victoria::start();
    let api_port = free_port();
    let root = tempfile::tempdir().unwrap();
    let watch = root.path().join("incoming");
    std::fs::create_dir_all(&watch).unwrap();
    let section = format!("[mine_files]\nenabled = true\nlisten = \"\"\nwatch_dir = \"{}\"\nsettle_ms = 200\nwatch_scan_ms = 100\n\n", watch.display());
    let inventory = format!("[[sites]]\nid = \"m1\"\nname = \"示范煤矿\"\nkind = \"mine\"\nmine_code = \"{MINE}\"\nupload_password_env = \"{PASSWORD_ENV}\"\n\n[[systems]]\nid = \"kj\"\nsite = \"m1\"\nkind = \"major_hazard\"\n\n");
    let cfg = TestConfig::new(
        &(settings(&mq.url(), "gw-mine-crash-dir", Some(&vm.url())).replace(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{api_port}\""),
        ) + &section),
        &inventory,
    );
    let t0 = (now_ms() - 3_600_000) / 1000 * 1000;
    let at = |k: i64| t0 + k * 60_000;
    let mut gw = GatewayProc::new(&cfg, api_port);
    gw.start_ready().await;
    let done = watch.join("done");
    let in_done = |n: &str| walk(&done).iter().any(|p| p.ends_with(n));

    // A CDDY and eight CDSS files; the kill comes once the CDDY and one CDSS are in done/.
    let (def, _) = cddy(&watch, at(0));
    let names: Vec<String> = (1..=8).map(|k| cdss(&watch, at(k), 0).0).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !(in_done(&def) && in_done(&names[0])) {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing taken:\n{}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    gw.kill9();
    let left = names.iter().filter(|n| watch.join(n).exists()).count();
    eprintln!(
        "SIGKILL with {left} of {} CDSS files still in place",
        names.len()
    );

    // The points are forgotten by the restart: the mine sends its CDDY again (the same
    // name, so done/ keeps both, the second numbered). Files left in place are taken again.
    cddy(&watch, at(0));
    gw.start_ready().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !names.iter().all(|n| in_done(n)) || watch.join(&def).exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "not all in done/:\n{}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let want: Vec<i64> = (1..=8).map(at).collect();
    stored_exactly(&vm, &want, &gw).await;
}
