//! Coal mines' networking files end to end: uploaded with independent FTP clients (`curl`,
//! Python's `ftplib`) and dropped in the watched folder; the points a CDDY defines join the
//! inventory, CDSS readings reach VictoriaMetrics as MQTT readings do, bad records are refused
//! with their file and record number, and the system's 联网在线率 over an upload gap equals the
//! value computed by hand (docs/mine-files.md).

use crate::common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub(crate) const MINE: &str = "150621011038";
pub(crate) const PASSWORD_ENV: &str = "SAFEGATE_TEST_MINE_PW";
pub(crate) const PASSWORD: &str = "kj-upload-9";

pub(crate) fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/mine")
        .join(name)
}

/// The mine site with its KJ system (and, when asked, its positioning system).
pub(crate) fn inventory(positioning: bool) -> String {
    let mut s = format!(
        "[[sites]]\nid = \"m1\"\nname = \"示范煤矿\"\nkind = \"mine\"\nmine_code = \"{MINE}\"\nupload_password_env = \"{PASSWORD_ENV}\"\n\n[[systems]]\nid = \"kj\"\nsite = \"m1\"\nkind = \"major_hazard\"\n\n"
    );
    if positioning {
        s.push_str("[[systems]]\nid = \"rydw\"\nsite = \"m1\"\nkind = \"positioning\"\n\n");
    }
    s
}

struct Mine {
    cfg: TestConfig,
    ftp: u16,
    watch: PathBuf,
}

/// A gateway configuration taking mine files over FTP on a free port and from a folder.
fn mine_config(mq: &str, id: &str, store: Option<&str>, positioning: bool) -> Mine {
    std::env::set_var(PASSWORD_ENV, PASSWORD);
    let ftp = free_port();
    let [p0, p1] = safegate::runtime::demo::passive_range().unwrap();
    let dir = tempfile::tempdir().unwrap().keep();
    let watch = dir.join("incoming");
    std::fs::create_dir_all(&watch).unwrap();
    let section = format!(
        "[mine_files]\nenabled = true\nlisten = \"127.0.0.1:{ftp}\"\npassive_ports = [{p0}, {p1}]\nwatch_dir = \"{}\"\nsettle_ms = 200\nwatch_scan_ms = 100\nupload_timeout_s = 300\n\n",
        watch.display()
    );
    let cfg = TestConfig::new(
        &format!("{}{section}", settings(mq, id, store)),
        &inventory(positioning),
    );
    Mine { cfg, ftp, watch }
}

/// Put `extra` (settings, targets) before a mine configuration's own text.
fn add_config(m: &Mine, extra: &str) {
    let text = std::fs::read_to_string(&m.cfg.path).unwrap();
    std::fs::write(&m.cfg.path, format!("{extra}{text}")).unwrap();
}

/// An online-rate target for the mine site, weight 10, `value` %.
fn online_target(value: u32) -> String {
    format!("[[targets]]\nindicator = \"online_rate\"\nscope = \"site:m1\"\ncomparator = \">=\"\nvalue = {value}\nlabel = \"联网在线率\"\nweight = 10\n\n")
}

/// The mine's points as the online-rate units (`mine_units = "devices"`), with a target.
fn points_as_units(target: u32) -> String {
    format!(
        "[indicators]\nmine_units = \"devices\"\n\n{}",
        online_target(target)
    )
}

/// Upload `file` as `name` with curl; Ok(()) on a 226, else curl's error text.
pub(crate) async fn curl_put(port: u16, file: &Path, name: &str, user: &str) -> Result<(), String> {
    let (file, url) = (file.to_path_buf(), format!("ftp://127.0.0.1:{port}/{name}"));
    let login = format!("{user}:{PASSWORD}");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args(["-sS", "--max-time", "30", "-T"])
            .arg(&file)
            .args(["--user", &login, &url])
            .output()
            .expect("curl runs")
    })
    .await
    .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Upload `file` as `name` with Python's ftplib; Ok(()) on a 226, else the error it raised.
async fn ftplib_put(port: u16, file: &Path, name: &str) -> Result<(), String> {
    let script = format!(
        "import ftplib,sys\nf=ftplib.FTP()\nf.connect('127.0.0.1',{port},timeout=30)\nf.login('{MINE}','{PASSWORD}')\nwith open(sys.argv[1],'rb') as fh:\n    print(f.storbinary('STOR {name}', fh))\nf.quit()\n"
    );
    let file = file.to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .args(["-c", &script])
            .arg(&file)
            .output()
            .expect("python3 runs")
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() && text.starts_with("226") {
        Ok(())
    } else {
        Err(format!("{text}{}", String::from_utf8_lossy(&out.stderr)))
    }
}

fn rejections_with(v: &Value, reason: &str) -> Vec<Value> {
    v["recent"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|r| r["reason"] == reason)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_over_ftp_and_the_folder_reach_the_inventory_the_store_and_the_rejections() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    let vm = Victoria::start();
    let m = mine_config(&mq.url(), "gw-mine-a", Some(&vm.url()), true);
    let (_gw, api) = start_ready(&m.cfg).await;

    // The point definitions, by curl: six points join the KJ system.
    let cddy = format!("{MINE}_CDDY_20260301080000.txt");
    curl_put(m.ftp, &sample(&cddy), &cddy, MINE)
        .await
        .expect("CDDY taken");
    let devices = wait_json(
        &format!("{api}/api/v1/devices?site=m1&limit=100"),
        Duration::from_secs(10),
        |v| v["devices"].as_array().is_some_and(|d| d.len() >= 6),
    )
    .await;
    let ch4 = device(&devices, "150621011038MN0001");
    assert_eq!(ch4["declared"], "mine_files", "{ch4}");
    assert_eq!(
        (ch4["kind"].as_str(), ch4["system"].as_str()),
        (Some("methane"), Some("kj"))
    );
    assert_eq!(ch4["protocol"], "mine_files");

    // The substations' states, through the watched folder: F002 通信中断.
    let fzss = format!("{MINE}_FZSS_20260301080500.txt");
    std::fs::copy(sample(&fzss), m.watch.join(&fzss)).unwrap();
    let done = m.watch.join("done").join(MINE);
    wait_until(Duration::from_secs(10), || {
        walk(&done).iter().any(|p| p.ends_with(&fzss))
    })
    .await;
    assert!(!m.watch.join(&fzss).exists(), "moved, not copied");

    // The values, by ftplib: F002's points are faulty, the -9999 CO point is faulty.
    let cdss = format!("{MINE}_CDSS_20260301080500.txt");
    ftplib_put(m.ftp, &sample(&cdss), &cdss)
        .await
        .expect("CDSS taken");
    let devices = wait_json(
        &format!("{api}/api/v1/devices?site=m1&limit=100"),
        Duration::from_secs(10),
        |v| device(v, "150621011038MN0001")["last_seen"].is_string(),
    )
    .await;
    assert_eq!(device(&devices, "150621011038MN0001")["faulty"], false);
    assert_eq!(
        device(&devices, "150621011038MN0003")["faulty"],
        true,
        "on F002"
    );
    assert_eq!(
        device(&devices, "150621011038MN0004")["faulty"],
        true,
        "传感器故障"
    );
    assert_eq!(
        device(&devices, "150621011038MN0001")["last_values"]["ch4"],
        0.32
    );

    // The same measurement shape as an MQTT methane detector's.
    let series = vm
        .wait_for(
            "reading_ch4{device=\"150621011038MN0001\"}",
            Duration::from_secs(20),
            |s| !s.is_empty(),
        )
        .await;
    assert_eq!(series[0].label("site"), "m1");
    assert_eq!(series[0].label("kind"), "methane");
    assert_eq!(series[0].values, vec![0.32]);

    // A GBK file is decoded and counted.
    let gbk = format!("{MINE}_CDSS_20260301081000.txt");
    curl_put(m.ftp, &sample(&gbk), &gbk, MINE)
        .await
        .expect("GBK CDSS taken");
    let metrics = get_text(&format!("{api}/metrics")).await;
    assert_eq!(
        metric(
            &metrics,
            "safegate_mine_files_encodings_total{encoding=\"gb18030\"}"
        ),
        Some(1.0),
        "{metrics}"
    );

    // Bad records are refused one by one, with the file and record number; the good arrive.
    let bad = format!("{MINE}_CDSS_20260301081500.txt");
    ftplib_put(m.ftp, &sample(&bad), &bad)
        .await
        .expect("taken, bad records refused");
    let rej = wait_json(
        &format!("{api}/api/v1/rejections"),
        Duration::from_secs(10),
        |v| !rejections_with(v, "wrong_field_count").is_empty(),
    )
    .await;
    let wrong = &rejections_with(&rej, "wrong_field_count")[0];
    assert_eq!(wrong["topic"], format!("mine_files/{bad}"), "{wrong}");
    assert_eq!(wrong["element"], 3, "{wrong}");
    for reason in ["invalid_value", "bad_timestamp", "bad_code"] {
        assert!(!rejections_with(&rej, reason).is_empty(), "{reason}: {rej}");
    }
    let devices = get(&format!("{api}/api/v1/devices?site=m1&limit=100"))
        .await
        .1;
    assert_eq!(
        device(&devices, "150621011038MN0001")["last_values"]["ch4"],
        0.31
    );

    // Another mine's file under this mine's login, and a truncated file: refused, no 226.
    let other = "150621099999_CDSS_20260301082000.txt";
    let err = curl_put(m.ftp, &sample(&cdss), other, MINE)
        .await
        .unwrap_err();
    assert!(err.contains("55"), "a 55x reply: {err}");
    let truncated = format!("{MINE}_FZSS_20260301082000.txt");
    curl_put(m.ftp, &sample(&truncated), &truncated, MINE)
        .await
        .unwrap_err();
    let rej = wait_json(
        &format!("{api}/api/v1/rejections"),
        Duration::from_secs(10),
        |v| {
            !rejections_with(v, "mine_mismatch").is_empty()
                && !rejections_with(v, "truncated_file").is_empty()
        },
    )
    .await;
    assert!(rejections_with(&rej, "mine_mismatch")[0]["detail"]
        .as_str()
        .unwrap()
        .contains("150621099999"));
    assert_eq!(
        rejections_with(&rej, "truncated_file")[0]["topic"],
        format!("mine_files/{truncated}")
    );

    // The same file again is taken and not applied twice.
    curl_put(m.ftp, &sample(&cdss), &cdss, MINE)
        .await
        .expect("a duplicate is answered 226");
    let metrics = get_text(&format!("{api}/metrics")).await;
    assert_eq!(
        metric(&metrics, "safegate_mine_files_duplicate_total"),
        Some(1.0)
    );

    // What the mine looks like to an operator.
    let (status, mine) = get(&format!("{api}/api/v1/mines/{MINE}")).await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(mine["site"], "m1");
    assert_eq!(mine["points"], 6);
    assert_eq!(mine["last_files"]["CDSS"]["name"], bad.as_str());
    assert_eq!(mine["files_duplicate"], 1);
    assert_eq!(mine["files_refused"]["mine_mismatch"], 1);
    let f002 = mine["substations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["code"] == "150621011038F002")
        .cloned();
    assert_eq!(
        f002.map(|s| s["run"].clone()),
        Some(json!("comm_interrupted"))
    );
}

/// `yyyy-MM-dd HH:mm:ss` and `yyyyMMddHHmmss` of `ms` at +08:00.
pub fn local(ms: i64) -> (String, String) {
    let t = time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .unwrap()
        .to_offset(time::UtcOffset::from_hms(8, 0, 0).unwrap());
    let (y, mo, d, h, mi, s) = (
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
    );
    (
        format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}"),
        format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}"),
    )
}

/// A file of `ty` at `ms` with `records` (each without its `~`), written by hand from the
/// layout; returns its name and path.
fn write_file(
    dir: &Path,
    ty: &str,
    ms: i64,
    header_extra: &str,
    records: &[String],
) -> (String, PathBuf) {
    mine_file(dir, MINE, ty, ms, header_extra, records, 0)
}

/// A file of mine `mine` (also `mine_files_crash`'s); `pad` blank bytes in an empty record,
/// which the parser skips, make it as large as a test needs.
pub fn mine_file(
    dir: &Path,
    mine: &str,
    ty: &str,
    ms: i64,
    header_extra: &str,
    records: &[String],
    pad: usize,
) -> (String, PathBuf) {
    let (at, stamp) = local(ms);
    let name = format!("{mine}_{ty}_{stamp}.txt");
    let mut text = format!("{mine};示范煤矿;{header_extra}{at}~");
    for r in records {
        text.push_str(r);
        text.push('~');
    }
    if pad > 0 {
        text.push_str(&" ".repeat(pad));
        text.push('~');
    }
    text.push_str("||");
    let path = dir.join(&name);
    std::fs::write(&path, text).unwrap();
    (name, path)
}

fn cddy(dir: &Path, ms: i64) -> (String, PathBuf) {
    let (at, _) = local(ms);
    let point = |code: &str, station: &str, ty: &str, unit: &str, alarm: &str| {
        format!("{MINE}{code};01;{MINE}{station};{ty};MN;{unit};4.00;0.00;{alarm};{alarm};-9999;-9999;-9999;-9999;-9999;-9999;;;巷道;;;;;{at}")
    };
    let records = [
        point("MN0001", "F001", "0001", "%CH4", "0.80"),
        point("MN0002", "F001", "0001", "%CH4", "0.80"),
        point("MN0004", "F002", "0004", "ppm", "24"),
    ];
    write_file(
        dir,
        "CDDY",
        ms,
        "KJ95X;安全监控系统;厂家;2028-12-31;",
        &records,
    )
}

fn cdss(dir: &Path, ms: i64, points: &[&str]) -> (String, PathBuf) {
    let (at, _) = local(ms);
    let records: Vec<String> = points
        .iter()
        .map(|p| {
            let v = if p.starts_with("MN0004") { "5" } else { "0.30" };
            format!("{MINE}{p};测点;巷道;{v};;0;{at}")
        })
        .collect();
    write_file(dir, "CDSS", ms, "", &records)
}

/// A point's state and since when (`("", None)` while it is not listed).
fn state<'a>(v: &'a Value, id: &str) -> (&'a str, Option<i64>) {
    let code = format!("{MINE}{id}");
    let Some(d) = v["devices"]
        .as_array()
        .and_then(|a| a.iter().find(|d| d["id"] == code.as_str()))
    else {
        return ("", None);
    };
    let since = d["state_since"]
        .as_str()
        .and_then(safegate::sources::mqtt::payload::parse_rfc3339_ms);
    (d["state"].as_str().unwrap_or(""), since)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twenty_minute_upload_gap_is_measured_exactly_and_the_mine_s_responses_count() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    let m = mine_config(&mq.url(), "gw-mine-b", None, false);
    add_config(&m, &online_target(90));
    let clock = test_clock();
    let (_gw, api) = start_ready_on(&m.cfg, clock.clock()).await;
    let files = tempfile::tempdir().unwrap();
    let dir = files.path();
    let devices = format!("{api}/api/v1/devices?site=m1&limit=100");
    let put = |(name, path): (String, PathBuf)| async move {
        curl_put(m.ftp, &path, &name, MINE).await.expect("taken");
    };

    // t0: the points are defined and report; the KJ system was registered at start (t0).
    let t0 = clock.now_ms();
    put(cddy(dir, t0)).await;
    put(cdss(dir, t0, &["MN0001", "MN0002", "MN0004"])).await;
    wait_json(&devices, Duration::from_secs(10), |v| {
        ["MN0001", "MN0002", "MN0004"]
            .iter()
            .all(|p| state(v, p).0 == "online")
    })
    .await;

    // Every minute to t0 + 600 s, without MN0002: it is offline at t0 + 300 s exactly.
    for k in 1..=10 {
        clock.advance(Duration::from_secs(60));
        put(cdss(dir, t0 + k * 60_000, &["MN0001", "MN0004"])).await;
    }
    // The mine's anomaly log: MN0001 over its limit 100–200 s, answered at 160 s; MN0004's
    // sensor cut off at 100 s, never answered.
    let (a100, _) = local(t0 + 100_000);
    let (a160, _) = local(t0 + 160_000);
    let (a200, _) = local(t0 + 200_000);
    let (now, _) = local(t0 + 600_000);
    let ycbj = [
        format!("{MINE}MN0001;环境瓦斯;巷道;%CH4;001;{a100};{a200};1.10;{a100};0.85;{a200};0.95;涌出;加强通风;{a160};王工;{now}"),
        format!("{MINE}MN0004;一氧化碳;巷道;ppm;004;{a100};;-9999;;-9999;;-9999;断线;;;;{now}"),
    ];
    put(write_file(dir, "YCBJ", t0 + 600_000, "", &ycbj)).await;
    let v = get(&devices).await.1;
    assert_eq!(state(&v, "MN0002"), ("offline", Some(t0 + 300_000)), "{v}");

    // No file for 20 minutes: every point is offline at t0 + 900 s (last arrival + 300 s).
    clock.advance(Duration::from_secs(1200));
    let v = wait_json(&devices, Duration::from_secs(10), |v| {
        state(v, "MN0001").0 == "offline"
    })
    .await;
    assert_eq!(state(&v, "MN0001"), ("offline", Some(t0 + 900_000)));
    put(cdss(dir, t0 + 1_800_000, &["MN0001", "MN0002", "MN0004"])).await;
    clock.advance(Duration::from_secs(300));
    wait_json(&devices, Duration::from_secs(10), |v| {
        state(v, "MN0001").0 == "offline"
    })
    .await;

    // 联网在线率 of the mine (its one system) over [t0, t0 + 2100 s): online t0 … t0 + 900 s
    // and t0 + 1800 s … t0 + 2100 s: 1,200,000 of 2,100,000 unit-ms.
    let (t1, t2) = (t0, t0 + 2_100_000);
    let (status, ind) = get(&format!(
        "{api}/api/v1/indicators?scope=site:m1&from={t1}&to={t2}"
    ))
    .await;
    assert_eq!(status, 200, "{ind}");
    let find = |id: &str, q: Option<&str>| indicator(&ind, id, q);
    let online = find("online_rate", None);
    assert_eq!(online["exact"]["num"], 1_200_000, "{online}");
    assert_eq!(online["exact"]["den"], 2_100_000, "{online}");
    // The report says what the shortfall is: the mine's uploads stopped.
    let (_, report) = get(&format!(
        "{api}/api/v1/report?from={t1}&to={t2}&format=markdown"
    ))
    .await;
    let text = report.as_str().unwrap_or_default();
    assert!(
        text.contains("system m1/kj: no real-time file (CDSS) kept it networked for 15 min"),
        "{text}"
    );
    // The recorded response inside the 15-minute deadline counts; the unanswered one misses.
    let value = find("alarm_response_rate", Some("type:value"));
    assert_eq!(
        (value["numerator"].clone(), value["denominator"].clone()),
        (json!(1.0), json!(1.0)),
        "{value}"
    );
    let fault = find("alarm_response_rate", Some("type:fault"));
    assert_eq!(
        (fault["numerator"].clone(), fault["denominator"].clone()),
        (json!(0.0), json!(1.0)),
        "{fault}"
    );
}

/// CDSS records of (point, value, 测点状态) at `ms`.
fn cdss_with(dir: &Path, ms: i64, points: &[(&str, &str, &str)]) -> (String, PathBuf) {
    let (at, _) = local(ms);
    let records: Vec<String> = points
        .iter()
        .map(|(p, v, status)| format!("{MINE}{p};测点;巷道;{v};;{status};{at}"))
        .collect();
    write_file(dir, "CDSS", ms, "", &records)
}

/// Substation F002's 运行状态 at `ms` (0 通信正常, 1 通信中断).
fn fzss(dir: &Path, ms: i64, run: u8) -> (String, PathBuf) {
    let (at, _) = local(ms);
    write_file(dir, "FZSS", ms, "", &[format!("{MINE}F002;{run};0;{at}")])
}

/// With the points as the mine's units: 传感器故障 and a substation's 通信中断 are counted but
/// not online, 标校 is not counted at all, each to the unit-millisecond; the report names
/// each fault by its cause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_are_down_and_maintenance_is_not_counted_point_by_point() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    let m = mine_config(&mq.url(), "gw-mine-g", None, false);
    add_config(&m, &points_as_units(95));
    let clock = test_clock();
    let (_gw, api) = start_ready_on(&m.cfg, clock.clock()).await;
    let files = tempfile::tempdir().unwrap();
    let dir = files.path();
    let devices = format!("{api}/api/v1/devices?site=m1&limit=100");
    let put = |(name, path): (String, PathBuf)| async move {
        curl_put(m.ftp, &path, &name, MINE).await.expect("taken");
    };
    let normal = [
        ("MN0001", "0.30", "0"),
        ("MN0002", "0.30", "0"),
        ("MN0004", "5", "0"),
    ];

    let t0 = clock.now_ms();
    put(cddy(dir, t0)).await;
    put(cdss_with(dir, t0, &normal)).await;
    wait_json(&devices, Duration::from_secs(10), |v| {
        ["MN0001", "MN0002", "MN0004"]
            .iter()
            .all(|p| state(v, p).0 == "online")
    })
    .await;
    // t0 + 60 s: MN0001's sensor fails (128, no value), MN0002 is calibrated (4).
    clock.advance(Duration::from_secs(60));
    put(cdss_with(
        dir,
        t0 + 60_000,
        &[
            ("MN0001", "-9999", "128"),
            ("MN0002", "0.30", "4"),
            ("MN0004", "5", "0"),
        ],
    ))
    .await;
    // t0 + 120 s: both back, but substation F002 (MN0004's) loses its link.
    clock.advance(Duration::from_secs(60));
    put(fzss(dir, t0 + 120_000, 1)).await;
    put(cdss_with(dir, t0 + 120_000, &normal)).await;
    // t0 + 180 s: the substation is back; t0 + 240 s: all normal.
    clock.advance(Duration::from_secs(60));
    put(fzss(dir, t0 + 180_000, 0)).await;
    put(cdss_with(dir, t0 + 180_000, &normal)).await;
    clock.advance(Duration::from_secs(60));
    put(cdss_with(dir, t0 + 240_000, &normal)).await;
    let t2 = t0 + 240_000;
    let report_url = format!("{api}/api/v1/report?from={t0}&to={t2}&format=markdown");
    // MN0001 180 of 240 s, MN0002 180 of 180 s (60 s calibrating), MN0004 180 of 240 s.
    let url = format!("{api}/api/v1/indicators?scope=site:m1&from={t0}&to={t2}");
    let ind = wait_json(&url, Duration::from_secs(10), |v| {
        indicator(v, "online_rate", None)["exact"]["den"] == 660_000
    })
    .await;
    let online = indicator(&ind, "online_rate", None);
    assert_eq!(online["exact"]["num"], 540_000, "{online}");
    let md = get_text(&report_url).await;
    assert!(
        md.contains(
            "device m1/150621011038MN0001: 传感器故障 1 min in the window (faulty, not online)"
        ),
        "{md}"
    );
    assert!(
        md.contains("device m1/150621011038MN0004: substation 150621011038F002 通信中断 1 min in the window (faulty, not online)"),
        "{md}"
    );
    assert!(
        !md.contains("m1/150621011038MN0002"),
        "calibration costs nothing: {md}"
    );
}

/// Every file under `dir`, recursively (none when it does not exist).
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

async fn wait_until(within: Duration, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + within;
    while !done() {
        assert!(std::time::Instant::now() < deadline, "condition never held");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_the_mine_s_points_are_known_without_a_new_cddy() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    let m = mine_config(&mq.url(), "gw-mine-c", None, false);
    let (gw, _) = start_ready(&m.cfg).await;
    let cddy = format!("{MINE}_CDDY_20260301080000.txt");
    curl_put(m.ftp, &sample(&cddy), &cddy, MINE)
        .await
        .expect("CDDY taken");
    gw.stop().await;

    // Restarted, the mine sends only its values, as its uploader does between definitions.
    let (_gw, api2) = start_ready(&m.cfg).await;
    let cdss = format!("{MINE}_CDSS_20260301080500.txt");
    curl_put(m.ftp, &sample(&cdss), &cdss, MINE)
        .await
        .expect("CDSS taken");
    let v = wait_json(
        &format!("{api2}/api/v1/devices?site=m1&limit=100"),
        Duration::from_secs(10),
        |v| state(v, "MN0001").0 == "online",
    )
    .await;
    assert_eq!(device(&v, "150621011038MN0001")["declared"], "mine_files");
    let (_, rej) = get(&format!("{api2}/api/v1/rejections")).await;
    assert_eq!(rej["counts"]["unknown_device"], 0, "{rej}");
}

/// A CDDY with thresholds looser than 煤矿安全规程: its findings are in the API's report
/// (JSON and Markdown), and `safegate report`, run after the gateway stopped, knows the
/// mine's points from the kept CDDY: same findings, same figures as the API's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loose_thresholds_are_findings_in_the_report_online_and_offline() {
    let _load = shared().await;
    let mq = Mosquitto::start();
    let m = mine_config(&mq.url(), "gw-mine-f", None, false);
    // Points as the online-rate units, so the offline report counts them only if it knows them.
    add_config(&m, &points_as_units(90));
    let (gw, api) = start_ready(&m.cfg).await;
    let from = safegate::telemetry::now_ms() - 1_000;
    let cddy = format!("{MINE}_CDDY_20260301120000.txt");
    ftplib_put(m.ftp, &sample(&cddy), &cddy)
        .await
        .expect("CDDY taken");
    let to = safegate::telemetry::now_ms() + 1_000;
    let url = format!("{api}/api/v1/report?from={from}&to={to}");
    // Only a report asked for after `to` measures the whole window (time after the server's
    // now is not measured): a check of the clock after the answer came could pass on one
    // computed a few ms before `to`.
    while safegate::telemetry::now_ms() <= to {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let report = wait_json(&url, Duration::from_secs(20), |v| {
        v["findings"].as_array().is_some_and(|f| f.len() == 5)
            && v["rows"][0]["denominator"]
                .as_f64()
                .is_some_and(|d| d > 0.0)
    })
    .await;
    let checks: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["check"].as_str().unwrap())
        .collect();
    assert_eq!(
        checks,
        [
            "methane_alarm_too_high",
            "methane_cut_too_high",
            "methane_restore_too_high",
            "methane_cut_missing",
            "co_alarm_too_high"
        ],
        "{report}"
    );
    assert_eq!(report["findings"][0]["site"], "m1");
    assert_eq!(report["findings"][0]["unit"], "150621011038MN0001");
    assert_eq!(report["findings"][4]["declared"], 50.0);
    let md = get_text(&format!("{url}&format=markdown")).await;
    assert!(
        md.contains("| m1 | 150621011038MN0004 | co_alarm_too_high | 50 | ≤ 24 ppm |"),
        "{md}"
    );
    gw.stop().await;

    let offline = report_command(&m.cfg.path, from, to);
    assert_eq!(offline["findings"], report["findings"]);
    assert_eq!(
        offline["rows"], report["rows"],
        "the same points, the same figures"
    );
}

/// `mine-sim --from-interval K --only CDSS` continues a run's data times at interval K and
/// writes that type alone: what the benchmark's timed runs rely on (scripts/bench-mine-files.sh).
#[test]
fn mine_sim_from_interval_and_only_write_the_later_cdss_alone() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mine-sim"))
        .args([
            "--mines",
            "2",
            "--first-code",
            "150621000001",
            "--points",
            "4",
        ])
        .args([
            "--start",
            "2026-12-01 08:00:00",
            "--interval-s",
            "10",
            "--fast",
        ])
        .args([
            "--from-interval",
            "3",
            "--files",
            "2",
            "--only",
            "cdss",
            "--dir",
        ])
        .arg(dir.path())
        .output()
        .expect("mine-sim runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "150621000001_CDSS_20261201080030.txt",
            "150621000001_CDSS_20261201080040.txt",
            "150621000002_CDSS_20261201080030.txt",
            "150621000002_CDSS_20261201080040.txt",
        ]
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(summary.lines().last().unwrap()).unwrap();
    assert_eq!(
        (v["files_ok"].as_u64(), v["points"].as_u64()),
        (Some(4), Some(16))
    );
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_mine-sim"))
        .args(["--mine-code", "150621000001", "--only", "XXXX", "--dir"])
        .arg(dir.path())
        .output()
        .expect("mine-sim runs");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--only"));
}
