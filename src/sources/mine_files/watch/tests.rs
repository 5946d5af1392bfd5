//! The watched folder on a real (temporary) folder, with a manual clock: each scan is run by
//! the test after moving the clock, so nothing waits on the wall clock.

use super::plan::RETRY_MIN_MS;
use super::*;
use crate::sources::mine_files::{TakeError, Taken};
use crate::telemetry::{ManualClock, Metrics};
use futures::future::BoxFuture;
use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

/// 2026-12-01 16:30 UTC (2026-12-02 00:30 in China).
const START_MS: i64 = 1_796_142_600_000;
const A: &str = "150621_CDSS_20260101120000.txt";
const A_DONE: &str = "done/150621/2026-01-01/150621_CDSS_20260101120000.txt";
const WHOLE: &[u8] = b"150621;2026-01-01 12:00:00~||";

/// A taker that answers from a script, then as a real one would: `Incomplete` for a file not
/// ending with `||`, `Duplicate` for a name and content it applied before, else `Applied`.
#[derive(Default)]
struct Fake {
    calls: Mutex<Vec<String>>,
    script: Mutex<VecDeque<Result<Taken, TakeError>>>,
    applied: Mutex<HashSet<(String, Vec<u8>)>>,
    /// While set, a take of this mine's files waits until another mine's file is taken.
    hold_mine: Mutex<Option<(String, Arc<tokio::sync::Notify>)>>,
}

impl Fake {
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
    fn answer(&self, a: Result<Taken, TakeError>) {
        self.script.lock().unwrap().push_back(a);
    }
}

impl Taker for Fake {
    fn take(&self, u: Upload) -> BoxFuture<'static, Result<Taken, TakeError>> {
        assert_eq!((u.login.as_deref(), u.via), (None, Via::Folder));
        self.calls.lock().unwrap().push(u.name.clone());
        let wait = match &*self.hold_mine.lock().unwrap() {
            Some((code, n)) if u.name.starts_with(code.as_str()) => Some(n.clone()),
            Some((_, n)) => {
                n.notify_one();
                None
            }
            None => None,
        };
        let answer = self.script.lock().unwrap().pop_front().unwrap_or_else(|| {
            if !u.bytes.ends_with(b"||") {
                Err(TakeError::Incomplete)
            } else if self.applied.lock().unwrap().insert((u.name, u.bytes)) {
                Ok(Taken::Applied {
                    accepted: 1,
                    refused: 0,
                })
            } else {
                Ok(Taken::Duplicate)
            }
        });
        Box::pin(async move {
            if let Some(n) = wait {
                n.notified().await;
            }
            answer
        })
    }
}

struct H {
    dir: tempfile::TempDir,
    clock: ManualClock,
    taker: Arc<Fake>,
    watch: FolderWatch,
}

fn settings(dir: &Path) -> MineFilesSettings {
    MineFilesSettings {
        watch_dir: Some(dir.to_path_buf()),
        ..MineFilesSettings::default()
    }
}

fn harness(tweak: impl FnOnce(&mut MineFilesSettings)) -> H {
    let dir = tempfile::tempdir().unwrap();
    let taker = Arc::new(Fake::default());
    harness_in(dir, taker, tweak)
}

fn harness_in(
    dir: tempfile::TempDir,
    taker: Arc<Fake>,
    tweak: impl FnOnce(&mut MineFilesSettings),
) -> H {
    let clock = ManualClock::new(START_MS);
    let mut s = settings(dir.path());
    tweak(&mut s);
    let watch = FolderWatch::build(&s, taker.clone(), &Metrics::new(), clock.clock())
        .unwrap()
        .unwrap();
    H {
        dir,
        clock,
        taker,
        watch,
    }
}

impl H {
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    fn write(&self, rel: &str, bytes: &[u8]) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    fn append(&self, rel: &str, bytes: &[u8]) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.path(rel))
            .unwrap();
        f.write_all(bytes).unwrap();
    }
    fn exists(&self, rel: &str) -> bool {
        self.path(rel).exists()
    }
    /// Move the clock by `ms`, then scan.
    async fn scan_after(&mut self, ms: u64) {
        self.clock.advance(Duration::from_millis(ms));
        self.watch.scan_once().await;
    }
    fn outcomes(&self, outcome: &'static str) -> u64 {
        let m = self.watch.metrics();
        let n = m
            .files
            .get_or_create(&metrics::OutcomeLabel { outcome })
            .get();
        n
    }
    fn quarantined(&self, reason: &'static str) -> u64 {
        let m = self.watch.metrics();
        let n = m
            .quarantined
            .get_or_create(&metrics::ReasonLabel { reason })
            .get();
        n
    }
}

#[tokio::test]
async fn a_complete_file_is_taken_once_and_moved_to_done_by_code_and_date() {
    let mut h = harness(|_| {});
    h.write(A, WHOLE);
    h.scan_after(0).await;
    h.scan_after(1_999).await;
    assert!(h.taker.calls().is_empty(), "not settled yet");
    h.scan_after(1).await;
    assert_eq!(h.taker.calls(), vec![A]);
    assert!(!h.exists(A) && h.exists(A_DONE));
    assert_eq!(std::fs::read(h.path(A_DONE)).unwrap(), WHOLE);
    h.scan_after(5_000).await;
    assert_eq!(h.taker.calls().len(), 1);
    assert_eq!(h.outcomes("applied"), 1);
}

#[tokio::test]
async fn a_file_still_growing_is_not_taken_until_it_stops_changing() {
    let mut h = harness(|_| {});
    h.write(A, b"150621;");
    h.scan_after(0).await;
    for _ in 0..4 {
        h.append(A, b"1.0;");
        h.scan_after(1_500).await;
    }
    assert!(h.taker.calls().is_empty());
    h.append(A, b"~||");
    h.scan_after(1_500).await;
    h.scan_after(1_999).await;
    assert!(h.taker.calls().is_empty());
    h.scan_after(1).await;
    assert_eq!(h.taker.calls(), vec![A]);
    assert!(h.exists(A_DONE));
}

#[tokio::test]
async fn one_mines_files_are_taken_in_stamp_order_whatever_order_they_were_written() {
    let mut h = harness(|_| {});
    let names = [
        "150621/150621_CDSS_20260101120020.txt",
        "150621_CDSS_20260101120010.txt",
        "150621/150621_CDDY_20260101120000.txt",
    ];
    for n in names {
        h.write(n, WHOLE);
    }
    h.scan_after(0).await;
    h.scan_after(2_000).await;
    assert_eq!(
        h.taker.calls(),
        vec![
            "150621_CDDY_20260101120000.txt",
            "150621_CDSS_20260101120010.txt",
            "150621_CDSS_20260101120020.txt",
        ]
    );
    assert!(h.exists("done/150621/2026-01-01/150621_CDSS_20260101120020.txt"));
    assert!(!h.exists(names[0]) && !h.exists(names[2]));
}

#[tokio::test]
async fn different_mines_are_taken_side_by_side() {
    let mut h = harness(|_| {});
    let notify = Arc::new(tokio::sync::Notify::new());
    *h.taker.hold_mine.lock().unwrap() = Some(("150621".into(), notify));
    h.write(A, WHOLE);
    h.write("150999_CDSS_20260101120000.txt", WHOLE);
    h.scan_after(0).await;
    // 150621's take finishes only once 150999's has started: one at a time would hang.
    tokio::time::timeout(Duration::from_secs(30), h.scan_after(2_000))
        .await
        .expect("the mines went side by side");
    assert_eq!(h.taker.calls().len(), 2);
    assert!(h.exists(A_DONE));
}

#[tokio::test]
async fn a_refused_file_is_quarantined_with_its_reason_beside_it() {
    let mut h = harness(|_| {});
    h.taker.answer(Err(TakeError::Refused {
        reason: "unknown_mine",
        detail: "no site has mine_code 150621".into(),
    }));
    h.write(&format!("150621/{A}"), WHOLE);
    h.scan_after(0).await;
    h.scan_after(2_000).await;
    let q = format!("quarantine/{A}");
    assert!(h.exists(&q) && !h.exists(&format!("150621/{A}")));
    let why = std::fs::read_to_string(h.path(&format!("{q}.reason.txt"))).unwrap();
    assert!(why.contains("reason: unknown_mine"), "{why}");
    assert!(
        why.contains("detail: no site has mine_code 150621"),
        "{why}"
    );
    assert!(why.contains("file: 150621/"), "{why}");
    assert!(why.contains("quarantined: 2026-12-01T16:30:02"), "{why}");
    assert_eq!(h.quarantined("unknown_mine"), 1);
    // The same name refused again lands beside it, not over it.
    h.taker.answer(Err(TakeError::Refused {
        reason: "unknown_mine",
        detail: "again".into(),
    }));
    h.write(A, WHOLE);
    h.scan_after(0).await;
    h.scan_after(2_000).await;
    assert!(h.exists("quarantine/150621_CDSS_20260101120000.1.txt"));
    assert!(h.exists("quarantine/150621_CDSS_20260101120000.1.txt.reason.txt"));
}

#[tokio::test]
async fn retry_leaves_the_file_and_takes_it_after_a_back_off() {
    let mut h = harness(|_| {});
    h.taker.answer(Err(TakeError::Retry("holding".into())));
    h.taker.answer(Err(TakeError::Retry("holding".into())));
    h.write(A, WHOLE);
    h.scan_after(0).await;
    h.scan_after(2_000).await;
    assert_eq!(h.taker.calls().len(), 1);
    assert!(h.exists(A));
    // Backing off: the scans before the wait is over do not try.
    h.scan_after(RETRY_MIN_MS - 1).await;
    assert_eq!(h.taker.calls().len(), 1);
    h.scan_after(1).await;
    assert_eq!(h.taker.calls().len(), 2);
    // The second wait is twice as long.
    h.scan_after(RETRY_MIN_MS).await;
    assert_eq!(h.taker.calls().len(), 2);
    h.scan_after(RETRY_MIN_MS).await;
    assert_eq!(h.taker.calls().len(), 3);
    assert!(!h.exists(A) && h.exists(A_DONE));
    assert_eq!((h.outcomes("retry"), h.outcomes("applied")), (2, 1));
}

#[tokio::test]
async fn incomplete_waits_for_the_rest_then_is_quarantined_as_truncated() {
    let mut h = harness(|_| {});
    let b = "150999_CDSS_20260101120000.txt";
    h.write(A, b"150621;1.0;");
    h.write(b, b"150999;1.0;");
    h.scan_after(0).await;
    h.scan_after(2_000).await;
    assert_eq!(h.taker.calls().len(), 2);
    // Unchanged: not taken again. A gets its rest and is taken; B never does.
    h.scan_after(1_000).await;
    assert_eq!(h.taker.calls().len(), 2);
    h.append(A, b"~||");
    h.scan_after(0).await;
    h.scan_after(2_000).await;
    assert!(h.exists(A_DONE));
    assert_eq!(h.taker.calls().len(), 3);
    // Called incomplete at 2 000; ten settles (20 000 ms) unchanged after that: truncated.
    h.scan_after(22_000 - 5_000 - 1).await;
    assert!(h.exists(b));
    h.scan_after(1).await;
    assert!(!h.exists(b) && h.exists(&format!("quarantine/{b}")));
    let why = std::fs::read_to_string(h.path(&format!("quarantine/{b}.reason.txt"))).unwrap();
    assert!(why.contains("reason: truncated"), "{why}");
    assert_eq!(h.quarantined("truncated"), 1);
    assert_eq!(h.taker.calls().len(), 3);
}

#[tokio::test]
async fn an_oversize_file_is_quarantined_without_being_taken() {
    let mut h = harness(|s| s.max_file_bytes = 16);
    h.write(A, &[b'x'; 17]);
    h.scan_after(0).await;
    h.scan_after(2_000).await;
    assert!(h.taker.calls().is_empty());
    assert!(h.exists(&format!("quarantine/{A}")));
    assert_eq!(h.quarantined("too_large"), 1);
    let why = std::fs::read_to_string(h.path(&format!("quarantine/{A}.reason.txt"))).unwrap();
    assert!(why.contains("17 bytes, over max_file_bytes (16)"), "{why}");
}

#[tokio::test]
async fn temporary_names_hidden_files_and_the_watchs_own_folders_are_left_alone() {
    let mut h = harness(|_| {});
    let left = [
        "150621_CDSS_20260101120000.txt.tmp",
        "150621_CDSS_20260101120000.part",
        "150621_CDSS_20260101120000.TMP",
        ".150621_CDSS_20260101120000.txt",
        "~$150621_CDSS_20260101120000.txt",
        ".hidden/150621_CDSS_20260101120000.txt",
        "done/150621_CDSS_20260101120000.txt",
        "quarantine/150621_CDSS_20260101120000.txt",
    ];
    for n in left {
        h.write(n, WHOLE);
    }
    h.write("150621_CDSS_20260101120000.TXT", WHOLE);
    h.scan_after(0).await;
    h.scan_after(2_000).await;
    h.scan_after(60_000).await;
    assert_eq!(h.taker.calls(), vec!["150621_CDSS_20260101120000.TXT"]);
    for n in left {
        assert!(h.exists(n), "{n}");
    }
}

#[tokio::test]
async fn a_name_without_code_type_and_stamp_is_quarantined_untaken() {
    let mut h = harness(|_| {});
    h.write("readme.txt", b"hello");
    h.scan_after(0).await;
    h.scan_after(2_000).await;
    assert!(h.taker.calls().is_empty());
    assert!(h.exists("quarantine/readme.txt"));
    assert_eq!(h.quarantined("bad_name"), 1);
}

#[tokio::test]
async fn the_sweep_removes_only_dated_folders_past_keep_days() {
    let h = harness(|s| s.keep_days = 7);
    for d in ["2026-11-24", "2026-11-25", "2026-12-02", "notes"] {
        h.write(&format!("done/150621/{d}/{A}"), WHOLE);
    }
    h.write("done/150999/2026-10-01/x.txt", WHOLE);
    h.write(&format!("quarantine/2026-01-01/{A}"), WHOLE);
    h.watch.sweep_once(h.clock.now_ms()).await;
    assert!(!h.exists("done/150621/2026-11-24"));
    for d in ["2026-11-25", "2026-12-02", "notes"] {
        assert!(h.exists(&format!("done/150621/{d}/{A}")), "{d}");
    }
    assert!(!h.exists("done/150999"), "an emptied mine folder goes too");
    assert!(h.exists(&format!("quarantine/2026-01-01/{A}")));
    assert_eq!(h.watch.metrics().swept.get(), 2);
}

#[tokio::test]
async fn a_file_left_behind_by_a_crash_after_its_commit_is_taken_again_as_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let taker = Arc::new(Fake::default());
    // The last run committed it and stopped before the move.
    taker
        .applied
        .lock()
        .unwrap()
        .insert((A.to_string(), WHOLE.to_vec()));
    std::fs::write(dir.path().join(A), WHOLE).unwrap();
    let mut h = harness_in(dir, taker, |_| {});
    h.scan_after(0).await;
    h.scan_after(2_000).await;
    assert_eq!(h.taker.calls(), vec![A]);
    assert!(h.exists(A_DONE));
    assert_eq!((h.outcomes("duplicate"), h.outcomes("applied")), (1, 0));
}

#[tokio::test]
async fn a_committed_file_that_cannot_be_moved_stays_and_is_moved_once_taken_again() {
    let mut h = harness(|_| {});
    // A file where the mine's folder of done/ should be: the move fails.
    h.write("done/150621", b"in the way");
    h.write(A, WHOLE);
    h.scan_after(0).await;
    h.scan_after(2_000).await;
    assert!(h.exists(A));
    assert_eq!(h.watch.metrics().errors_of("move"), 1);
    std::fs::remove_file(h.path("done/150621")).unwrap();
    h.scan_after(RETRY_MIN_MS).await;
    assert_eq!(h.taker.calls(), vec![A, A]);
    assert!(!h.exists(A) && h.exists(A_DONE));
    // The first attempt counts as failed (committed, not moved), the second as a duplicate.
    assert_eq!((h.outcomes("failed"), h.outcomes("duplicate")), (1, 1));
}

#[cfg(unix)]
#[tokio::test]
async fn a_non_utf8_name_is_skipped_and_counted_and_the_others_go_on() {
    use std::os::unix::ffi::OsStrExt;
    let mut h = harness(|_| {});
    let odd = std::ffi::OsStr::from_bytes(b"150621_\xff\xfe_20260101120000.txt");
    if std::fs::write(h.dir.path().join(odd), WHOLE).is_err() {
        return; // A filesystem that refuses such names: nothing to skip.
    }
    h.write(A, WHOLE);
    h.scan_after(0).await;
    h.scan_after(2_000).await;
    assert_eq!(h.taker.calls(), vec![A]);
    assert!(h.dir.path().join(odd).exists());
    assert!(h.watch.metrics().errors_of("non_utf8_name") >= 2);
}

#[tokio::test]
async fn run_takes_files_and_stops_on_shutdown() {
    let h = harness(|s| s.watch_scan_ms = 100);
    h.write(A, WHOLE);
    let (tx, rx) = broadcast::channel(1);
    let done = h.path(A_DONE);
    let task = tokio::spawn(h.watch.run(rx));
    // Each step of the manual clock lets one scan run; wait for the file, not for a time.
    tokio::time::timeout(Duration::from_secs(30), async {
        while !done.exists() {
            h.clock.advance(Duration::from_millis(100));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("taken by the running watch");
    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("stopped on shutdown")
        .unwrap();
}

#[test]
fn build_is_none_without_watch_dir_and_names_what_is_wrong_with_the_folder() {
    let taker: Arc<dyn Taker> = Arc::new(Fake::default());
    let build = |s: &MineFilesSettings| {
        FolderWatch::build(s, taker.clone(), &Metrics::new(), Clock::system())
    };
    assert!(build(&MineFilesSettings::default()).unwrap().is_none());
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let e = build(&settings(&missing)).err().unwrap();
    assert!(matches!(e, WatchError::Missing { .. }), "{e}");
    assert!(e.to_string().contains("does not exist; create it"), "{e}");
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    let e = build(&settings(&file)).err().unwrap();
    assert!(matches!(e, WatchError::NotADirectory { .. }), "{e}");
    let w = build(&settings(dir.path())).unwrap();
    assert!(w.is_some() && dir.path().join("done").is_dir());
    assert!(dir.path().join("quarantine").is_dir());
}

#[cfg(unix)]
#[test]
fn a_folder_the_gateway_cannot_write_in_is_refused_at_build() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    if std::fs::write(ro.join("probe"), b"").is_ok() {
        return; // Running as root: permissions do not stop it.
    }
    let taker: Arc<dyn Taker> = Arc::new(Fake::default());
    let e = FolderWatch::build(&settings(&ro), taker, &Metrics::new(), Clock::system())
        .err()
        .unwrap();
    assert!(matches!(e, WatchError::NotWritable { .. }), "{e}");
    assert!(e.to_string().contains("cannot write in it"), "{e}");
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn the_watch_settings_have_their_bounds() {
    let mut got = Vec::new();
    MineFilesSettings::default().watch_problems(&mut |k, m| got.push(format!("{k}: {m}")));
    assert!(got.is_empty(), "{got:?}");
    let s = MineFilesSettings {
        watch_dir: Some(PathBuf::new()),
        settle_ms: 0,
        watch_scan_ms: 0,
        watch_concurrency: 0,
        keep_days: 0,
        ..MineFilesSettings::default()
    };
    s.watch_problems(&mut |k, _| got.push(k.to_string()));
    assert_eq!(
        got,
        [
            "mine_files.watch_dir",
            "mine_files.settle_ms",
            "mine_files.watch_scan_ms",
            "mine_files.watch_concurrency",
            "mine_files.keep_days"
        ]
    );
}
